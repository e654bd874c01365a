"""Representational similarity analysis (Kriegeskorte, Mur & Bandettini 2008; METHODS.md §2.10).

Each representation gives an n × n representational dissimilarity matrix (RDM) between samples;
RSA correlates the two RDMs over their strict upper triangles (the n(n−1)/2 pairs i < j). The
RDMs are computed a block of rows at a time straight into those condensed vectors, so no n × n
matrix is ever held; the vectors themselves (n(n−1)/2 float64 values each) are.

Invariances depend on the RDM, and a :class:`~congruence.similarity._measure.MeasureInfo` is per
function, so the choice (documented here and in :data:`RSA_VARIANTS`) is: :func:`rsa` declares the
invariances of its **default** correlation RDM (isotropic scaling, feature permutation), and the
Euclidean RDMs are registered as their own measures, :func:`rsa_euclidean` and
:func:`rsa_sqeuclidean` (orthogonal, scaling, translation, permutation), thin wrappers around
``rsa(..., rdm=...)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from .._arrays import as_host_array
from .._resources import MemoryBudgetError, format_bytes, resolve_memory_limit
from .._engine import check_choice
from ._common import warn
from ._measure import measure
from .kernel_cka import (
    TILE_ENTRIES,
    _as_float64_matrix,
    _centre,
    _check_same_samples,
    _row_sqnorms,
    _strict_upper_mask,
    _upper_sqdist,
)

__all__ = ["RDMS", "COMPARISONS", "RSA_MAX_SAMPLES", "RSA_VARIANTS", "rsa", "rsa_euclidean", "rsa_sqeuclidean"]

RDMS = ("correlation", "euclidean", "sqeuclidean")
COMPARISONS = ("spearman", "pearson", "kendall_tau_a")
#: Exact RSA holds n(n−1)/2 dissimilarities per RDM; beyond this many samples it would need an
#: external sort (out of scope), so larger inputs are refused.
RSA_MAX_SAMPLES = 20_000
#: Peak bytes per RDM entry (measured): the two condensed RDMs plus the comparison's work arrays
#: (ranks for Spearman; scipy's sorts for Kendall), and the tiles of the RDM pass.
_BYTES_PER_PAIR = {"pearson": 24, "spearman": 40, "kendall_tau_a": 64}
#: Bytes of the RDM pass per tile entry (the tile, its mask and the extracted upper part).
_TILE_BYTES_PER_ENTRY = 32

#: Row constancy across features (Pearson RDM), as METHODS.md §1.3 for float64.
_CONSTANT_RTOL = 1e-10

_REFERENCE = "Kriegeskorte, Mur & Bandettini 2008, Front. Syst. Neurosci. 2:4"


def _correlation_panel(A: np.ndarray, name: str) -> np.ndarray:
    """Rows centred across features and scaled to unit norm, so that zᵢᵀzⱼ = Pearson(xᵢ, xⱼ).

    A sample whose values are constant across its features has an undefined correlation; as the
    library's ``zero_var="zero"`` default (METHODS.md §1.3) its correlations are taken as 0
    (dissimilarity 1), with a warning.
    """
    A -= A.mean(axis=1, keepdims=True)
    ss = _row_sqnorms(A)
    bad = ss == 0  # _mark_constant_rows has zeroed the (numerically) constant rows
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(bad, 0.0, 1.0 / np.sqrt(np.where(bad, 1.0, ss)))
    A *= scale[:, None]
    count = int(bad.sum())
    if count:
        from .._engine import ConstantFeatureWarning

        first = np.flatnonzero(bad)[:5].tolist()
        warn(f"{name} has {count} sample(s) (rows; first indices {first}) that are constant across features, so "
             "their Pearson correlations with other samples are undefined; they are set to 0 (dissimilarity 1)",
             ConstantFeatureWarning)
    return A


def _mark_constant_rows(A: np.ndarray) -> np.ndarray:
    """Rows with std ≤ 1e-10 · rms (METHODS.md §1.3) are made exactly constant (zero after centring)."""
    mean = A.mean(axis=1, keepdims=True)
    var = ((A - mean) ** 2).mean(axis=1)
    rms2 = (A * A).mean(axis=1)
    const = (var == 0) | (var <= (_CONSTANT_RTOL ** 2) * rms2)
    A[const] = 0.0
    return A


def _condensed_rdm(A: np.ndarray, rdm: str, name: str) -> np.ndarray:
    """The strict upper triangle (i < j, row-major) of the n × n RDM, computed in row blocks."""
    n = A.shape[0]
    N = n * (n - 1) // 2
    out = np.empty(N)
    if rdm == "correlation":
        Z = _correlation_panel(_mark_constant_rows(A), name)
    else:
        Z = _centre(A)
        sq = _row_sqnorms(Z)
    block = max(1, min(n, TILE_ENTRIES // n))
    pos = 0
    for r0 in range(0, n - 1, block):
        r1 = min(n, r0 + block)
        if rdm == "correlation":
            G = Z[r0:r1] @ Z[r0:].T
            np.subtract(1.0, G, out=G)
        else:
            G = _upper_sqdist(Z, sq, r0, r1)
            if rdm == "euclidean":
                np.sqrt(G, out=G)
        vals = G[_strict_upper_mask(r1 - r0, n - r0)]
        out[pos:pos + vals.size] = vals
        pos += vals.size
    return out


def _pearson(u: np.ndarray, v: np.ndarray, what: str) -> float:
    """Pearson correlation of two vectors, in place (both are consumed)."""
    u -= u.mean()
    v -= v.mean()
    den = float(u @ u) * float(v @ v)
    if not den > 0.0:
        warn(f"rsa: {what} of one RDM are all equal, so its correlation with the other is undefined; returning NaN",
             RuntimeWarning)
        return math.nan
    return float(np.clip(float(u @ v) / math.sqrt(den), -1.0, 1.0))


def _tie_pairs(x: np.ndarray) -> int:
    """Σ t(t−1)/2 over the groups of equal values."""
    s = np.sort(x)
    edges = np.flatnonzero(np.diff(s) != 0)
    sizes = np.diff(np.concatenate(([0], edges + 1, [s.size]))).astype(np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def _kendall_tau_a(u: np.ndarray, v: np.ndarray) -> float:
    """τ_a = (n_c − n_d)/(N(N−1)/2); pairs tied in either vector count as neither.

    n_c − n_d comes from scipy's O(N log N) Kendall τ_b, τ_b = (n_c − n_d)/√((n₀ − n₁)(n₀ − n₂)),
    n₀ = N(N−1)/2 and n₁, n₂ the pairs tied in u, in v.
    """
    from scipy.stats import kendalltau

    N = u.size
    n0 = N * (N - 1) // 2
    n1, n2 = _tie_pairs(u), _tie_pairs(v)
    if n1 == n0 or n2 == n0:  # one vector constant: no pair is concordant or discordant
        return 0.0
    tau_b = float(kendalltau(u, v).statistic)
    s = tau_b * math.sqrt(float(n0 - n1)) * math.sqrt(float(n0 - n2))
    return float(np.clip(s / n0, -1.0, 1.0))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Replace x (consumed) by its 1-based ranks, tied values sharing their mean rank.

    Peak extra memory ≈ 17 bytes per value (the argsort, a sorted copy or the group edges, a tie
    mask); the ranks are written back into x a chunk at a time.
    """
    N = x.size
    order = np.argsort(x)  # any sort: the order among equal values does not change their mean rank
    xs = x[order]
    boundary = np.empty(N + 1, dtype=bool)
    boundary[0] = boundary[-1] = True
    np.not_equal(xs[1:], xs[:-1], out=boundary[1:-1])
    del xs
    edges = np.flatnonzero(boundary)  # group g holds sorted positions edges[g] .. edges[g + 1] - 1
    del boundary
    chunk = TILE_ENTRIES
    for s in range(0, N, chunk):
        pos = np.arange(s, min(N, s + chunk))
        g = np.searchsorted(edges, pos, side="right") - 1
        x[order[s:s + chunk]] = 0.5 * (edges[g] + edges[g + 1] + 1)
    return x


def _compare(rdms: list, compare: str) -> float:
    """Compare the two condensed RDMs in ``rdms`` (the list is emptied: both are consumed)."""
    v = rdms.pop()
    u = rdms.pop()
    if compare == "pearson":
        return _pearson(u, v, "the dissimilarities")
    if compare == "spearman":
        return _pearson(_average_ranks(u), _average_ranks(v), "the dissimilarities")
    return _kendall_tau_a(u, v)


def _rsa(X: Any, Y: Any, rdm: str, compare: str, memory_limit: Optional[float]) -> float:
    rdm = check_choice(rdm, RDMS, "rdm")
    compare = check_choice(compare, COMPARISONS, "compare")
    budget = resolve_memory_limit(memory_limit)
    min_cols = 2 if rdm == "correlation" else 1
    for x, name in ((X, "X"), (Y, "Y")):  # refuse too many samples before copying anything
        shape = tuple(as_host_array(x, name).shape)
        if len(shape) == 2 and shape[0] > RSA_MAX_SAMPLES:
            raise ValueError(f"rsa is exact up to n = {RSA_MAX_SAMPLES} samples (n(n−1)/2 dissimilarities per RDM); "
                             f"{name} has n = {shape[0]}. Larger inputs would need an external sort, which is not "
                             "implemented: subsample the samples")
    A = _as_float64_matrix(X, "X", measure_name=f"rsa (rdm={rdm!r})", min_rows=3, min_cols=min_cols)
    B = _as_float64_matrix(Y, "Y", measure_name=f"rsa (rdm={rdm!r})", min_rows=3, min_cols=min_cols)
    _check_same_samples(A, B)
    n = A.shape[0]
    N = n * (n - 1) // 2
    need = _BYTES_PER_PAIR[compare] * N + _TILE_BYTES_PER_ENTRY * min(n * n, TILE_ENTRIES)
    if need > budget:
        raise MemoryBudgetError(f"rsa with n = {n} samples needs about {format_bytes(need)} ({N} dissimilarities "
                                f"per RDM) but memory_limit is {format_bytes(budget)}; raise memory_limit or "
                                "subsample the samples")
    rdms = [_condensed_rdm(A, rdm, "X")]
    del A
    rdms.append(_condensed_rdm(B, rdm, "Y"))
    del B
    return _compare(rdms, compare)


@measure("rsa", invariances=("isotropic_scaling", "permutation"), symmetric=True, streamable=False,
         reference=_REFERENCE)
def rsa(
    X: Any,
    Y: Any,
    *,
    rdm: str = "correlation",
    compare: str = "spearman",
    memory_limit: Optional[float] = None,
) -> float:
    """Representational similarity analysis: correlation between two RDMs (METHODS.md §2.10).

    Parameters
    ----------
    X : array, shape (n, p)
        Activations, one row per sample (host numpy array, CPU torch tensor or array-protocol
        object; float16, bfloat16, float32 or float64; any strides). Copied to float64.
    Y : array, shape (n, q)
        Activations of the same n samples (rows aligned with X).
    rdm : {"correlation", "euclidean", "sqeuclidean"}, default "correlation"
        Dissimilarity between samples i and j: "correlation" is 1 − Pearson(x_i, x_j) across the
        features (needs p ≥ 2; a sample constant across its features gets correlation 0, i.e.
        dissimilarity 1, with a ConstantFeatureWarning); "euclidean" ‖x_i − x_j‖; "sqeuclidean"
        ‖x_i − x_j‖² (‖a‖² + ‖b‖² − 2aᵀb after column centring, float64, clamped at 0).
    compare : {"spearman", "pearson", "kendall_tau_a"}, default "spearman"
        Correlation of the two condensed RDMs u, v (the n(n−1)/2 entries i < j): Spearman's ρ
        (Pearson of average ranks, ties get the mean rank), Pearson's r, or Kendall's τ_a =
        (n_c − n_d)/(N(N−1)/2) over the N = n(n−1)/2 entries (ties count as neither).
    memory_limit : float, optional
        Bytes the call may use (default: half of the available RAM); refused up front with a
        MemoryBudgetError when the peak does not fit: about c·n(n−1)/2 bytes plus at most 128 MiB
        of tiles, c = 24 (Pearson), 40 (Spearman), 64 (Kendall).

    Returns
    -------
    float
        In [−1, 1]. NaN with a RuntimeWarning when one RDM is constant (Pearson / Spearman
        undefined); τ_a is then 0.

    Notes
    -----
    Needs n ≥ 3 samples; exact up to n = 20,000 (``RSA_MAX_SAMPLES``; n(n−1)/2 ≈ 2·10⁸ values per
    RDM, a peak of ≈ 5 GB (Pearson) / 8 GB (Spearman) / 13 GB (Kendall) at that size); larger n
    raises ValueError (an external sort is out of scope). Spearman and Kendall sort the n(n−1)/2
    values: O(n² log n); the RDMs cost n²(p + q) flops. Spearman ranks with average ranks for ties
    (as ``scipy.stats.rankdata``); Kendall's τ_a uses scipy's O(N log N) τ_b and the tie counts.

    Invariances depend on the RDM: correlation RDM: isotropic scaling and feature permutation only
    (not orthogonal, not translation: both change the per-sample statistics across features);
    Euclidean RDMs: orthogonal, isotropic scaling, translation, feature permutation. ``rsa.info``
    declares those of the default (correlation) RDM; the Euclidean variants are registered as
    :func:`rsa_euclidean` and :func:`rsa_sqeuclidean`. Symmetric in (X, Y).

    Runs on the host in float64; GPU arrays raise ValueError (move them explicitly).

    References
    ----------
    Kriegeskorte, Mur & Bandettini (2008), "Representational similarity analysis – connecting the
    branches of systems neuroscience", Front. Syst. Neurosci. 2:4.
    """
    return _rsa(X, Y, rdm, compare, memory_limit)


@measure("rsa_euclidean", invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
         symmetric=True, streamable=False, reference=_REFERENCE)
def rsa_euclidean(X: Any, Y: Any, *, compare: str = "spearman", memory_limit: Optional[float] = None) -> float:
    """RSA with Euclidean RDMs: ``rsa(X, Y, rdm="euclidean", compare=compare)``.

    Registered as its own measure because its invariances (orthogonal, isotropic scaling,
    translation, feature permutation) differ from those of the default correlation RDM. See
    :func:`rsa` for parameters, shapes, dtypes and the formula.

    References
    ----------
    Kriegeskorte, Mur & Bandettini (2008), Front. Syst. Neurosci. 2:4.
    """
    return _rsa(X, Y, "euclidean", compare, memory_limit)


@measure("rsa_sqeuclidean", invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
         symmetric=True, streamable=False, reference=_REFERENCE)
def rsa_sqeuclidean(X: Any, Y: Any, *, compare: str = "spearman", memory_limit: Optional[float] = None) -> float:
    """RSA with squared-Euclidean RDMs: ``rsa(X, Y, rdm="sqeuclidean", compare=compare)``.

    Same ranks as :func:`rsa_euclidean` (so the same Spearman and Kendall values); Pearson
    differs. Invariances: orthogonal, isotropic scaling, translation, feature permutation. See
    :func:`rsa` for parameters, shapes, dtypes and the formula.

    References
    ----------
    Kriegeskorte, Mur & Bandettini (2008), Front. Syst. Neurosci. 2:4.
    """
    return _rsa(X, Y, "sqeuclidean", compare, memory_limit)


#: The registered RSA measure for each RDM (each carries the invariances of that RDM in ``.info``).
RSA_VARIANTS: dict[str, Callable[..., float]] = {
    "correlation": rsa,
    "euclidean": rsa_euclidean,
    "sqeuclidean": rsa_sqeuclidean,
}
