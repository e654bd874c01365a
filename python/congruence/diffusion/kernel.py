"""The sparsified Gaussian kernel of a diffusion map (METHODS.md §6.1, §6.3).

K_ij = exp(−d²_ij / (2ε)) on candidate pairs only: each point's k nearest neighbours from the
pairwise engine (:func:`congruence.knn`, float64 squared distances), the exponential applied to
those survivors alone, then symmetrised ½(K + Kᵀ) (missing entries 0; "max" keeps the union's
larger value, "min" only mutual pairs). ``k=None`` keeps every pair (a dense kernel, for analytic
checks and small N). The bandwidth is a number, ``"median"``: the median of the stored
non-self squared distances (METHODS §6.1's Library choice), or ``"bgh"`` (Berry, Giannakis &
Harlim 2015): the ε that maximises the slope d log S / d log ε of the kernel sum
S(ε) = Σ_ij K_ij(ε) over the stored pairs, where S grows like ε^{d/2} for a d-dimensional set
(so the maximal slope also estimates d/2). For a given ε, a warning says when the k-th neighbour
still carries weight (median over points of exp(−d²_(k)/(2ε)) > 1e-3, §6.3).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

__all__ = ["GaussianKernel", "knn_gaussian_kernel", "bgh_epsilon", "SYMMETRIZE", "EPSILON_RULES"]

SYMMETRIZE = ("average", "max", "min")
EPSILON_RULES = ("median", "bgh")
#: Non-self pairs sampled (evenly, deterministically) for the BGH slope scan.
BGH_MAX_PAIRS = 1 << 18


class KernelBandwidthWarning(UserWarning):
    """The k-th neighbour still carries weight: k is too small for ε (METHODS §6.3)."""


@dataclass(frozen=True)
class GaussianKernel:
    """A symmetric sparse kernel matrix and how it was built.

    Attributes
    ----------
    K : scipy.sparse.csr_matrix, shape (N, N)
        Symmetric, diagonal 1 (each point is its own neighbour at distance 0).
    epsilon : float
    k : int or None
    d2_kth : ndarray of float64, shape (N,)
        Each point's squared distance to its k-th neighbour (the candidate radius), or inf if dense.
    """

    K: Any
    epsilon: float
    k: Optional[int]
    d2_kth: np.ndarray


def screen_margin(k: int) -> int:
    """Extra float32 candidates per point kept for the float64 recheck."""
    return max(8, k // 4)


def _neighbours(points: np.ndarray, k: Optional[int], num_threads: Optional[int]):
    """(rows, cols, d²) of every candidate pair i→j, self pairs included (d² = 0), and each point's
    k-th neighbour d².

    The k nearest come from a float32 screen of k + margin candidates computed from the upper
    triangle of the product only (:mod:`congruence._knn_screen`: half the FLOPs at twice the
    float64 rate), rechecked with explicit float64 differences; the k smallest exact d² are kept
    (ties to the lower index). A true neighbour is missed only if more than the margin candidates lie
    within float32 rounding of the k-th distance, i.e. for near-duplicate points, where the kernel
    weights are equal anyway."""
    from .. import _cpu
    from .._knn_screen import self_join_candidates
    from .._resources import resolve_threads

    N = points.shape[0]
    if k is None or k >= N - 1:
        sq = np.einsum("ij,ij->i", points, points)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * points @ points.T, 0.0)
        np.fill_diagonal(d2, 0.0)
        rows = np.repeat(np.arange(N), N)
        return rows, np.tile(np.arange(N), N), d2.ravel(), np.full(N, np.inf)
    kc = min(N - 1, k + screen_margin(k))
    threads = resolve_threads(num_threads)
    cand = np.ascontiguousarray(self_join_candidates(points, kc, threads), dtype=np.int64)
    exact = np.empty(cand.size)
    _cpu.squared_distance_pairs(points, np.repeat(np.arange(N, dtype=np.int64), kc), cand.ravel(), exact, threads)
    exact = exact.reshape(N, kc)
    order = np.lexsort((cand, exact), axis=-1)[:, :k]  # by exact d², ties to the lower index
    d2 = np.take_along_axis(exact, order, axis=1)
    idx = np.take_along_axis(cand, order, axis=1)
    rows = np.concatenate([np.arange(N), np.repeat(np.arange(N), k)])
    cols = np.concatenate([np.arange(N), idx.ravel()])
    vals = np.concatenate([np.zeros(N), d2.ravel()])
    return rows, cols, vals, d2[:, -1].copy()


def _check_common(X: np.ndarray, k: Optional[int], symmetrize: str) -> None:
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"points must be a 2-D array of at least 2 rows (N, D); got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("points contain NaN or Inf values")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k must be a positive integer or None; got {k!r}")
    if symmetrize not in SYMMETRIZE:
        raise ValueError(f"symmetrize must be one of {SYMMETRIZE}; got {symmetrize!r}")


def bgh_epsilon(d2_pairs: np.ndarray, n_points: int) -> tuple[float, float]:
    """ε maximising d log S / d log ε, S(ε) = n_points + Σ exp(−d²/(2ε)) over the given non-self
    pair d² (each point's self pair adds 1), scanned on a log₂ grid of step 1/4 from 2⁻²⁴ to 2⁸
    times their median. Returns (ε, the maximal slope ≈ intrinsic dimension / 2)."""
    d2 = np.asarray(d2_pairs, dtype=np.float64)
    scale = 1.0
    if d2.size > BGH_MAX_PAIRS:  # an even subsample; the sum is rescaled to the full count
        step = -(-d2.size // BGH_MAX_PAIRS)
        scale = d2.size / d2[::step].size
        d2 = d2[::step]
    med = float(np.median(d2)) if d2.size else 0.0
    if not med > 0:
        raise ValueError("the median neighbour distance is 0 (duplicate points); give epsilon explicitly")
    log_eps = np.log(med) + np.log(2.0) * np.arange(-24.0, 8.0 + 1e-9, 0.25)
    log_S = np.array([np.log(n_points + scale * np.exp(-d2 / (2.0 * np.exp(le))).sum()) for le in log_eps])
    slope = np.gradient(log_S, log_eps)
    best = int(np.argmax(slope))
    return float(np.exp(log_eps[best])), float(slope[best])


def assemble_kernel(rows: np.ndarray, cols: np.ndarray, d2: np.ndarray, N: int, *, epsilon: Union[float, str],
                    symmetrize: str, k: Optional[int], d2_kth: np.ndarray) -> GaussianKernel:
    """exp(−d²/(2ε)) on the given pairs (self pairs included), symmetrised; ε by the median rule
    over the non-self pairs when ``epsilon == "median"``, by the BGH slope rule for ``"bgh"``."""
    import scipy.sparse as sp

    if isinstance(epsilon, str):
        if epsilon not in EPSILON_RULES:
            raise ValueError(f"epsilon must be a positive number, 'median' or 'bgh'; got {epsilon!r}")
        off = d2[rows != cols]
        if epsilon == "bgh":
            eps = bgh_epsilon(off, N)[0]
        else:
            eps = float(np.median(off)) if off.size else 0.0
            if not eps > 0:
                raise ValueError("the median neighbour distance is 0 (duplicate points); give epsilon explicitly")
    else:
        if isinstance(epsilon, bool) or not np.isfinite(epsilon) or epsilon <= 0:
            raise ValueError(f"epsilon must be a positive number, 'median' or 'bgh'; got {epsilon!r}")
        eps = float(epsilon)
    K = sp.csr_matrix((np.exp(-d2 / (2.0 * eps)), (rows, cols)), shape=(N, N))
    K.sum_duplicates()
    if symmetrize == "average":
        K = (K + K.T) * 0.5
    elif symmetrize == "max":
        K = K.maximum(K.T)
    else:
        K = K.minimum(K.T)
    K = K.tocsr()
    K.eliminate_zeros()
    # Only for a given ε: under the median rule the bandwidth follows k, and the k-th neighbour's
    # weight is then e^{-1/2}-ish by construction (the kernel is truncated on purpose).
    if k is not None and not isinstance(epsilon, str) and np.isfinite(d2_kth).all():
        tail = float(np.median(np.exp(-d2_kth / (2.0 * eps))))
        if tail > 1e-3:
            warnings.warn(f"the k-th neighbour still has kernel weight {tail:.2g} (median over points) for "
                          f"epsilon={eps:.3g}: k={k} is too small for this bandwidth and the kernel is truncated",
                          KernelBandwidthWarning, stacklevel=3)
    return GaussianKernel(K=K, epsilon=eps, k=None if k is None else int(k), d2_kth=d2_kth)


def knn_gaussian_kernel(points: Any, *, k: Optional[int] = 30, epsilon: Union[float, str] = "median",
                        symmetrize: str = "average", num_threads: Optional[int] = None) -> GaussianKernel:
    """The kNN-sparsified Gaussian kernel of ``points`` (rows, shape (N, D)).

    Parameters
    ----------
    points : array_like, shape (N, D)
    k : int or None
        Neighbours per point (self excluded); None keeps every pair.
    epsilon : float, "median" or "bgh"
        K = exp(−d²/(2ε)); "median" takes the median non-self candidate d²; "bgh" the
        Berry–Giannakis–Harlim maximal-slope ε over the candidate pairs.
    symmetrize : {"average", "max", "min"}
    num_threads : int, optional

    Returns
    -------
    GaussianKernel
    """
    X = np.asarray(points, dtype=np.float64)
    _check_common(X, k, symmetrize)
    rows, cols, d2, kth = _neighbours(X, None if k is None else int(k), num_threads)
    return assemble_kernel(rows, cols, d2, X.shape[0], epsilon=epsilon, symmetrize=symmetrize, k=k, d2_kth=kth)
