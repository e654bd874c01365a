"""Mutual k-nearest-neighbour alignment (Huh, Cheung, Wang & Isola 2024; METHODS.md §2.11).

For every sample i, N_X(i) is the set of its k nearest *other* samples in representation X and
N_Y(i) the same in Y; the score is the mean overlap (1/n)Σ_i |N_X(i) ∩ N_Y(i)|/k. Neighbours come
from :func:`congruence.knn` (tiled, never n × n; self-join excluding each sample by index; ties to
the lowest index).

MeasureInfo is per function and the invariances depend on the metric, so :func:`mutual_knn`
declares those of its default cosine metric (orthogonal, isotropic scaling, feature permutation)
and the Euclidean variant is registered as its own measure, :func:`mutual_knn_euclidean`
(orthogonal, isotropic scaling, translation, feature permutation); see :data:`MUTUAL_KNN_VARIANTS`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .._engine import check_choice
from ..neighbors import knn
from ._measure import measure
from .kernel_cka import _as_float64_matrix, _check_same_samples

__all__ = ["MUTUAL_KNN_VARIANTS", "mutual_knn", "mutual_knn_chance", "mutual_knn_euclidean"]

METRICS = ("cosine", "sqeuclidean", "euclidean")

_REFERENCE = "Huh, Cheung, Wang & Isola 2024, arXiv:2405.07987 (minyoungg/platonic-rep)"


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if k > n - 1:
        raise ValueError(f"k={k} exceeds the number of other samples (n − 1 = {n - 1})")
    return int(k)


def mutual_knn_chance(n: int, k: int = 10) -> float:
    """Expected mutual kNN score of unrelated representations: k/(n − 1).

    If N_X(i) and N_Y(i) were independent uniformly random k-subsets of the n − 1 other samples,
    E|N_X(i) ∩ N_Y(i)| = k²/(n − 1), so the expected score is k/(n − 1).

    Parameters
    ----------
    n : int
        Number of samples (≥ 2).
    k : int, default 10
        Neighbours per sample, 1 ≤ k ≤ n − 1.

    Returns
    -------
    float
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer ≥ 2; got {n!r}")
    return _check_k(k, int(n)) / (int(n) - 1)


def _mutual_knn(X: Any, Y: Any, k: Any, metric: str, num_threads: Optional[int]) -> float:
    metric = check_choice(metric, METRICS, "metric")
    A = _as_float64_matrix(X, "X", measure_name="mutual_knn", min_rows=2)
    B = _as_float64_matrix(Y, "Y", measure_name="mutual_knn", min_rows=2)
    _check_same_samples(A, B)
    n = A.shape[0]
    k = _check_k(k, n)
    engine_metric = "cosine" if metric == "cosine" else "sqeuclidean"  # same neighbours for euclidean
    _, ia = knn(A, None, k, metric=engine_metric, precision="float64", num_threads=num_threads)
    del A
    _, ib = knn(B, None, k, metric=engine_metric, precision="float64", num_threads=num_threads)
    del B
    # Neighbour lists hold distinct indices per row: tag each with its row and intersect once.
    base = np.arange(n, dtype=np.int64)[:, None] * n
    common = np.intersect1d((ia + base).ravel(), (ib + base).ravel(), assume_unique=True)
    return float(common.size / (n * k))


@measure("mutual_knn", invariances=("orthogonal", "isotropic_scaling", "permutation"), symmetric=True,
         streamable=False, reference=_REFERENCE)
def mutual_knn(
    X: Any,
    Y: Any,
    *,
    k: int = 10,
    metric: str = "cosine",
    num_threads: Optional[int] = None,
) -> float:
    """Mutual k-nearest-neighbour alignment between two representations (METHODS.md §2.11).

    m = (1/n) Σ_i |N_X(i) ∩ N_Y(i)| / k, where N_X(i) are the k nearest other samples of sample i
    in X (and N_Y(i) in Y).

    Parameters
    ----------
    X : array, shape (n, p)
        Activations, one row per sample (host numpy array, CPU torch tensor or array-protocol
        object; float16, bfloat16, float32 or float64; any strides). Copied to float64.
    Y : array, shape (n, q)
        Activations of the same n samples (rows aligned with X).
    k : int, default 10
        Neighbours per sample, 1 ≤ k ≤ n − 1.
    metric : {"cosine", "sqeuclidean", "euclidean"}, default "cosine"
        "cosine": inner product of L2-normalised rows, larger is nearer, as platonic-rep (a zero
        row has similarity 0 to every sample). "sqeuclidean" / "euclidean" (the same neighbours):
        squared Euclidean distance via ‖a‖² + ‖b‖² − 2aᵀb after centring, clamped at 0.
    num_threads : int, optional
        Threads of the kNN engine (default: all cores).

    Returns
    -------
    float
        In [0, 1]; 1 when the neighbour sets agree for every sample. The chance level of unrelated
        representations is k/(n − 1) (:func:`mutual_knn_chance`).

    Notes
    -----
    Neighbours come from :func:`congruence.knn` in float64 (tiled; O(n²(p + q)) flops, no n × n
    storage): a self-join that excludes each sample by index (not by zero distance, so duplicated
    samples are each other's neighbours), ties resolved to the lowest index. platonic-rep sorts
    with an unstable argsort, so on exactly tied similarities it may pick other neighbours.

    Invariant to orthogonal transforms, isotropic scaling and feature permutation with the cosine
    metric; also to translation with the Euclidean metric (registered as
    :func:`mutual_knn_euclidean`; ``mutual_knn.info`` declares the invariances of the default
    cosine metric). Symmetric. Needs n ≥ 2. Runs on the host; GPU arrays raise ValueError (move
    them explicitly).

    References
    ----------
    Huh, Cheung, Wang & Isola (2024), "The Platonic Representation Hypothesis", ICML,
    arXiv:2405.07987.
    """
    return _mutual_knn(X, Y, k, metric, num_threads)


@measure("mutual_knn_euclidean", invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
         symmetric=True, streamable=False, reference=_REFERENCE)
def mutual_knn_euclidean(X: Any, Y: Any, *, k: int = 10, num_threads: Optional[int] = None) -> float:
    """Mutual kNN alignment with Euclidean neighbours: ``mutual_knn(X, Y, k=k, metric="sqeuclidean")``.

    Registered as its own measure because Euclidean neighbours are also translation invariant
    (orthogonal, isotropic scaling, translation, feature permutation). See :func:`mutual_knn` for
    parameters, shapes, dtypes and the formula; chance level k/(n − 1).

    References
    ----------
    Huh, Cheung, Wang & Isola (2024), arXiv:2405.07987.
    """
    return _mutual_knn(X, Y, k, "sqeuclidean", num_threads)


#: The registered mutual kNN measure for each metric (each carries its invariances in ``.info``).
MUTUAL_KNN_VARIANTS: dict[str, Callable[..., float]] = {
    "cosine": mutual_knn,
    "sqeuclidean": mutual_knn_euclidean,
}
