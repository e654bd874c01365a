"""Kernel CKA in sample space: RBF CKA (tiled, median-heuristic bandwidth) and minibatch CKA.

Both measures work on n × n kernel (Gram) matrices between *samples* (METHODS.md §2.3, §2.4).

* :func:`rbf_cka` is a fixed function of (X, Y). It never holds an n × n matrix: the kernel
  matrices are produced a block of rows at a time (at most ``block_size × n`` entries per tile)
  and reduced on the fly to the few sums CKA needs.
* :func:`minibatch_cka` is a labelled **estimator** (Nguyen, Raghu & Kornblith 2021): it sums the
  unbiased HSIC terms of separate batches. Its value depends on the batch size and composition and
  differs from full-data CKA; it is never used as a silent fallback.

Both run on the host in float64 (the inputs are copied to float64 first). GPU arrays are refused
with a ValueError that says so (move them with ``tensor.cpu()`` / ``cupy.asnumpy``); nothing is
copied between devices silently.

The private helpers ``_as_float64_matrix`` / ``_check_same_samples`` / ``_warn`` at the top of
this module are the input validation shared by the sample-space measures
(:mod:`congruence.similarity.rsa`, :mod:`congruence.similarity.neighbors_alignment`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np

from .._arrays import BFLOAT16, as_host_array
from .._engine import check_choice
from ._common import warn
from ._measure import measure

__all__ = [
    "DroppedBatchWarning",
    "RBFCKADetails",
    "SampledMedianWarning",
    "minibatch_cka",
    "rbf_cka",
]

#: Up to this many samples the median of the pairwise squared distances is exact (Library choice,
#: METHODS.md §2.3); beyond it, the median of MEDIAN_SAMPLE_PAIRS sampled pairs (flagged).
EXACT_MEDIAN_MAX_N = 20_000
#: Number of random sample pairs whose median estimates the bandwidth beyond EXACT_MEDIAN_MAX_N.
MEDIAN_SAMPLE_PAIRS = 1_000_000
#: Default tile: at most this many entries (float64) of an n × n matrix per block of rows.
TILE_ENTRIES = 1 << 22
#: Inputs whose magnitude exceeds this overflow float64 when squared and summed.
MAX_ABS = 1e150


class SampledMedianWarning(UserWarning):
    """The RBF bandwidth came from a median of sampled pairs, not the exact median."""


class DroppedBatchWarning(UserWarning):
    """minibatch_cka dropped batches with fewer than 4 rows."""


# ------------------------------------------------------------------------- shared validation


def _as_float64_matrix(x: Any, name: str, *, measure_name: str, min_rows: int = 1, min_cols: int = 1) -> np.ndarray:
    """A C-contiguous float64 copy of a host (n_samples, n_features) input, validated.

    Raises TypeError for non-arrays and non-floating dtypes, ValueError for GPU arrays, wrong ndim,
    empty inputs, too few rows/columns, NaN/Inf and magnitudes whose squares overflow float64.
    """
    h = as_host_array(x, name)  # TypeError: non-float / not an array; ValueError: GPU array
    shape = tuple(h.shape)
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {shape}); need at least one sample (row) and one feature (column)")
    if shape[0] < min_rows:
        raise ValueError(f"{measure_name} needs at least {min_rows} samples (rows); {name} has {shape[0]}")
    if shape[1] < min_cols:
        raise ValueError(f"{measure_name} needs at least {min_cols} features (columns); {name} has {shape[1]}")
    arr = h.array
    if h.code == BFLOAT16:  # viewed as uint16 bits: widen to float32 exactly
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    a = np.array(arr, dtype=np.float64, order="C")  # always a private copy (centred in place later)
    top = float(np.max(np.abs(a)))
    if not math.isfinite(top):
        raise ValueError(f"{name} contains NaN or Inf values")
    if top > MAX_ABS:
        raise ValueError(f"{name} has values of magnitude {top:.3g} whose squares overflow float64 "
                         f"(at most {MAX_ABS:g} is supported); rescale it")
    return a


def _check_same_samples(a: np.ndarray, b: np.ndarray, names: tuple = ("X", "Y")) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same number of samples (rows); "
                         f"got {a.shape[0]} and {b.shape[0]}")


def _centre(a: np.ndarray) -> np.ndarray:
    """Subtract the column means in place (float64): pairwise distances are unchanged and the
    ‖a‖² + ‖b‖² − 2aᵀb expansion no longer cancels (METHODS.md §1.5)."""
    a -= a.mean(axis=0)
    return a


def _row_sqnorms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a)


def _block_rows(n: int, block_size: Optional[int]) -> int:
    if block_size is None:
        return max(1, min(n, TILE_ENTRIES // max(n, 1)))
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer (rows per tile) or None; got {block_size!r}")
    return int(min(block_size, n))


def _upper_sqdist(A: np.ndarray, sq: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """Squared distances between rows r0..r1-1 and rows r0..n-1, shape (r1 - r0, n - r0).

    d² = ‖a‖² + ‖b‖² − 2aᵀb on centred float64 rows, clamped at +0 (never −0, so the bit
    patterns of the values order like the values). Only the strictly upper part (column > row,
    globally) is meaningful to the callers.
    """
    G = A[r0:r1] @ A[r0:].T
    G *= -2.0
    G += sq[r0:r1, None]
    G += sq[None, r0:]
    np.maximum(G, 0.0, out=G)
    G += 0.0  # -0.0 -> +0.0
    return G


def _strict_upper_mask(b: int, width: int) -> np.ndarray:
    return np.arange(width)[None, :] > np.arange(b)[:, None]


def _condensed_sqdist_blocks(A: np.ndarray, sq: np.ndarray, block: int) -> Iterator[np.ndarray]:
    """The n(n−1)/2 squared distances d²(i, j), i < j, in row-major order, a block of rows at a time."""
    n = A.shape[0]
    for r0 in range(0, n - 1, block):
        r1 = min(n, r0 + block)
        G = _upper_sqdist(A, sq, r0, r1)
        yield G[_strict_upper_mask(r1 - r0, n - r0)]


# ---------------------------------------------------------------------------- the median


def _median_ranks(n: int, convention: str) -> tuple[int, int]:
    """0-based ranks (r, r or r + 1) in the sorted list of the n(n−1)/2 pair distances whose mean
    is the median of the chosen convention."""
    N = n * (n - 1) // 2
    if convention == "pairs":
        return (N - 1) // 2, N // 2
    # "all_entries": the n² entries of the distance matrix, sorted, are the n zeros of the diagonal
    # followed by every off-diagonal value twice; np.median takes entries (n²−1)//2 and n²//2.
    total = n * n
    k1, k2 = (total - 1) // 2, total // 2
    return (k1 - n) // 2, (k2 - n) // 2  # n >= 3 puts both beyond the zeros of the diagonal


def _exact_sqdist_order_stats(A: np.ndarray, sq: np.ndarray, ra: int, rb: int, block: int) -> tuple[float, float]:
    """The order statistics ra and rb (rb ∈ {ra, ra + 1}) of the pair squared distances, exactly.

    A radix selection on the float64 bit patterns (non-negative floats order like their bits read
    as int64): each sweep recomputes the distance tiles and histograms the next 16 bits of the
    values that share the prefix found so far, until at most ``block × n`` candidates remain; a last
    sweep collects them (and the smallest value above them, for rb). Nothing beyond a tile and the
    candidates is held.
    """
    n = A.shape[0]
    N = n * (n - 1) // 2
    limit = max(block * n, 1)
    prefix, nbits, below, count = 0, 0, 0, N
    while count > limit and nbits < 64:
        shift = 64 - nbits - 16
        counts = np.zeros(1 << 16, dtype=np.int64)
        for vals in _condensed_sqdist_blocks(A, sq, block):
            bits = vals.view(np.int64)
            if nbits:
                bits = bits[(bits >> (64 - nbits)) == prefix]
            counts += np.bincount((bits >> shift) & 0xFFFF, minlength=1 << 16)
        cum = np.cumsum(counts)
        d = int(np.searchsorted(cum, ra - below, side="right"))
        below += int(cum[d - 1]) if d else 0
        prefix = (prefix << 16) | d
        nbits += 16
        count = int(counts[d])
    need_next = rb != ra
    collect = count <= limit
    pieces, min_above = [], math.inf
    if collect or (need_next and ra + 1 - below >= count):
        for vals in _condensed_sqdist_blocks(A, sq, block):
            if nbits == 0:
                pieces.append(vals)
                continue
            top = vals.view(np.int64) >> (64 - nbits)
            if collect:
                pieces.append(vals[top == prefix])
            if need_next:
                above = vals[top > prefix]
                if above.size:
                    min_above = min(min_above, float(above.min()))
    if collect:
        cand = np.concatenate(pieces)
        i = ra - below
        kth = [i, i + 1] if need_next and i + 1 < cand.size else [i]
        part = np.partition(cand, kth)
        va = float(part[i])
        vb = va if not need_next else (float(part[i + 1]) if i + 1 < cand.size else min_above)
    else:  # every candidate has the same 64 bits: the value is the prefix itself
        va = float(np.array(prefix, dtype=np.int64).view(np.float64))
        vb = va if (not need_next or ra + 1 - below < count) else min_above
    return va, vb


def _sampled_sqdist_quantile(A: np.ndarray, sq: np.ndarray, q: float, n_pairs: int, seed: int) -> float:
    """Quantile q of the squared distances of ``n_pairs`` uniformly drawn pairs i ≠ j (seeded)."""
    n, p = A.shape
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=n_pairs)
    j = rng.integers(0, n - 1, size=n_pairs)
    j += j >= i
    d = np.empty(n_pairs)
    chunk = max(1, TILE_ENTRIES // p)
    for s in range(0, n_pairs, chunk):
        ii, jj = i[s:s + chunk], j[s:s + chunk]
        d[s:s + chunk] = sq[ii] + sq[jj] - 2.0 * np.einsum("ij,ij->i", A[ii], A[jj])
    np.maximum(d, 0.0, out=d)
    return float(np.quantile(d, q))


def _median_sqdist(A: np.ndarray, sq: np.ndarray, convention: str, block: int, seed: int) -> tuple[float, bool]:
    """(median squared distance, exact?) of centred rows A."""
    n = A.shape[0]
    ra, rb = _median_ranks(n, convention)
    if n <= EXACT_MEDIAN_MAX_N:
        va, vb = _exact_sqdist_order_stats(A, sq, ra, rb, block)
        return 0.5 * (va + vb), True
    N = n * (n - 1) // 2
    return _sampled_sqdist_quantile(A, sq, (ra + rb) / (2.0 * (N - 1)), MEDIAN_SAMPLE_PAIRS, seed), False


# ---------------------------------------------------------------------------- RBF CKA


@dataclass(frozen=True)
class RBFCKADetails:
    """What :func:`rbf_cka` computed, returned with ``return_details=True``.

    Attributes
    ----------
    value : float
        The RBF CKA.
    median_sqdist_x, median_sqdist_y : float
        Median squared distance between the samples of X (of Y) in the chosen convention.
    sigma2_x, sigma2_y : float
        Bandwidths σ² = fraction² · median.
    median_exact : bool
        False when n > ``EXACT_MEDIAN_MAX_N`` and the medians come from ``MEDIAN_SAMPLE_PAIRS``
        sampled pairs (a :class:`SampledMedianWarning` was issued).
    n_samples : int
    debiased : bool
    median : str
        The median convention ("pairs" or "all_entries").
    """

    value: float
    median_sqdist_x: float
    median_sqdist_y: float
    sigma2_x: float
    sigma2_y: float
    median_exact: bool
    n_samples: int
    debiased: bool
    median: str


def _rbf_offdiagonal_sums(A, sqa, ga, B, sqb, gb, block):
    """Σ_{i≠j} K∘L, K∘K, L∘L and the off-diagonal row sums of K and L, a block of rows at a time
    over the upper triangle (K_ij = exp(−ga·d²_ij), L likewise; K_ii = L_ii = 1 are left out)."""
    n = A.shape[0]
    rk, rl = np.zeros(n), np.zeros(n)
    skl = skk = sll = 0.0
    for r0 in range(0, n - 1, block):
        r1 = min(n, r0 + block)
        b = r1 - r0
        lower = np.tril_indices(b)  # the diagonal and below, inside the leading b × b square
        K = _upper_sqdist(A, sqa, r0, r1)
        K *= -ga
        np.exp(K, out=K)
        K[lower] = 0.0
        L = _upper_sqdist(B, sqb, r0, r1)
        L *= -gb
        np.exp(L, out=L)
        L[lower] = 0.0
        skl += float(np.vdot(K, L))
        skk += float(np.vdot(K, K))
        sll += float(np.vdot(L, L))
        rk[r0:r1] += K.sum(axis=1)
        rk[r0:] += K.sum(axis=0)
        rl[r0:r1] += L.sum(axis=1)
        rl[r0:] += L.sum(axis=0)
    return 2.0 * skl, 2.0 * skk, 2.0 * sll, rk, rl


def _hsic_from_sums(n: int, s: float, r1: np.ndarray, r2: np.ndarray, debiased: bool) -> float:
    """HSIC from Σ_{i≠j}K_ijL_ij = s and off-diagonal row sums r1, r2 (unit diagonals).

    HSIC₁ = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − (2/(n−2))·1ᵀK̃L̃1]/(n(n−3)), K̃ = K − I;
    HSIC₀ = ⟨HKH, HLH⟩/(n−1)² = [ΣK∘L − (2/n)Σ_i r^K_i r^L_i + (1ᵀK1)(1ᵀL1)/n²]/(n−1)².
    """
    if debiased:
        return (s + r1.sum() * r2.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(r1 @ r2)) / (n * (n - 3))
    f1, f2 = r1 + 1.0, r2 + 1.0
    return (s + n - 2.0 / n * float(f1 @ f2) + f1.sum() * f2.sum() / (n * n)) / ((n - 1) ** 2)


def _cka_ratio(hkl: float, hkk: float, hll: float, what: str) -> float:
    den = hkk * hll
    if not den > 0.0:
        warn(f"{what}: the self-similarity terms HSIC(K, K)·HSIC(L, L) = {den:.3g} are not positive, so CKA is "
             "undefined; returning NaN", RuntimeWarning)
        return math.nan
    return float(hkl / math.sqrt(den))


def _check_fraction(fraction: Any) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(fraction)) or not float(fraction) > 0:
        raise ValueError(f"fraction must be a positive finite number (σ² = fraction² · median); got {fraction!r}")
    return float(fraction)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


@measure(
    "rbf_cka",
    invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
    symmetric=True,
    streamable=False,
    reference="Kornblith, Norouzi, Lee & Hinton 2019, arXiv:1905.00414 (RBF kernel, median-heuristic bandwidth); "
              "Song et al. 2012 (unbiased HSIC)",
)
def rbf_cka(
    X: Any,
    Y: Any,
    *,
    fraction: float = 1.0,
    debiased: bool = False,
    median: str = "pairs",
    block_size: Optional[int] = None,
    seed: int = 0,
    return_details: bool = False,
) -> "float | RBFCKADetails":
    """CKA with Gaussian (RBF) kernels and the median-heuristic bandwidth (METHODS.md §2.3).

    Parameters
    ----------
    X : array, shape (n, p)
        Activations, one row per sample. Host numpy arrays, CPU torch tensors or array-protocol
        objects; float16, bfloat16, float32 or float64; any strides. Copied to float64.
    Y : array, shape (n, q)
        Activations of the same n samples (rows aligned with X).
    fraction : float, default 1.0
        t in σ² = t² · median: Kornblith et al. use 0.2, 0.4, 0.8; the google-research demo 1.0.
    debiased : bool, default False
        False: the biased HSIC₀ (Kornblith et al.); True: the unbiased HSIC₁ (Song et al. 2012),
        whose CKA can be negative.
    median : {"pairs", "all_entries"}, default "pairs"
        "pairs" (Library choice): the median over the n(n−1)/2 distinct pairs i < j.
        "all_entries": ``np.median`` over all n² entries of the distance matrix including its zero
        diagonal, which reproduces the google-research ``representation_similarity`` demo
        (differences in the 3rd–4th digit at n = 100).
    block_size : int, optional
        Rows per tile. No n × n matrix is ever held: each sweep holds a few ``block_size × n``
        float64 tiles. Default: ``2**22 // n`` rows (≈ 32 MiB per tile), at most n.
    seed : int, default 0
        Seed of the pair sampling used for the bandwidth when n > ``EXACT_MEDIAN_MAX_N`` (20,000).
    return_details : bool, default False
        Return an :class:`RBFCKADetails` (value, medians, bandwidths, whether the median was exact)
        instead of the float.

    Returns
    -------
    float
        CKA = HSIC(K, L)/√(HSIC(K, K)·HSIC(L, L)) (NaN with a RuntimeWarning if the denominator is
        not positive), or :class:`RBFCKADetails` with ``return_details=True``.

    Notes
    -----
    K_ij = exp(−‖x_i − x_j‖²/(2σ_X²)), σ_X² = t²·median_{i<j}‖x_i − x_j‖², and L likewise with its
    own σ_Y. Squared distances use ‖a‖² + ‖b‖² − 2aᵀb on column-centred float64 data, clamped at 0.

    * HSIC₀(K, L) = tr(KHLH)/(n−1)² = [ΣK∘L − (2/n)Σ_i r^K_i r^L_i + (1ᵀK1)(1ᵀL1)/n²]/(n−1)²
      with row sums r.
    * HSIC₁(K, L) = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − (2/(n−2))·1ᵀK̃L̃1]/(n(n−3)),
      K̃ = K with a zero diagonal (equal to the U-centred ⟨Ǩ, Ľ⟩/(n(n−3))).

    Sweeps: the median of X and of Y by an exact radix selection over the distance tiles (one
    sweep while n(n−1)/2 ≤ block_size·n, else 2–5, each recomputing the tiles); then one sweep
    over the upper triangle accumulating ΣK∘L, ΣK∘K, ΣL∘L and the row sums. Cost about
    (2–6)·n²(p + q) flops. For n > 20,000 the bandwidth is the median of 10⁶ uniformly sampled
    pairs (seeded; Library choice), flagged by a :class:`SampledMedianWarning` and
    ``RBFCKADetails.median_exact``.

    Invariant to orthogonal transforms, isotropic scaling (the median bandwidth scales with the
    data), translation and feature permutation of either argument; symmetric. Needs n ≥ 4. A
    median of 0 (at least half of the pairs are identical points) raises ValueError.

    Runs on the host in float64; GPU arrays raise ValueError (move them explicitly).

    References
    ----------
    Kornblith, Norouzi, Lee & Hinton (2019), "Similarity of Neural Network Representations
    Revisited", ICML, arXiv:1905.00414. Song, Smola, Gretton, Bedo & Borgwardt (2012), "Feature
    Selection via Dependence Maximization", JMLR 13.
    """
    fraction = _check_fraction(fraction)
    debiased = _check_bool(debiased, "debiased")
    median = check_choice(median, ("pairs", "all_entries"), "median")
    return_details = _check_bool(return_details, "return_details")
    A = _as_float64_matrix(X, "X", measure_name="rbf_cka", min_rows=4)
    B = _as_float64_matrix(Y, "Y", measure_name="rbf_cka", min_rows=4)
    _check_same_samples(A, B)
    n = A.shape[0]
    block = _block_rows(n, block_size)
    _centre(A)
    _centre(B)
    sqa, sqb = _row_sqnorms(A), _row_sqnorms(B)
    med_a, exact_a = _median_sqdist(A, sqa, median, block, seed)
    med_b, exact_b = _median_sqdist(B, sqb, median, block, seed)
    for name, med in (("X", med_a), ("Y", med_b)):
        if not med > 0.0:
            raise ValueError(f"{name}: the median squared distance between samples is 0 (at least half of the sample "
                             "pairs are identical points), so the median-heuristic RBF bandwidth is 0")
    exact = exact_a and exact_b
    if not exact:
        warn(f"rbf_cka: n = {n} > {EXACT_MEDIAN_MAX_N}, so the bandwidths come from the median of "
             f"{MEDIAN_SAMPLE_PAIRS} randomly sampled pairs (seed={seed}), not the exact median",
             SampledMedianWarning)
    s2a, s2b = fraction * fraction * med_a, fraction * fraction * med_b
    skl, skk, sll, rk, rl = _rbf_offdiagonal_sums(A, sqa, 0.5 / s2a, B, sqb, 0.5 / s2b, block)
    hkl = _hsic_from_sums(n, skl, rk, rl, debiased)
    hkk = _hsic_from_sums(n, skk, rk, rk, debiased)
    hll = _hsic_from_sums(n, sll, rl, rl, debiased)
    value = _cka_ratio(hkl, hkk, hll, "rbf_cka")
    if return_details:
        return RBFCKADetails(value=value, median_sqdist_x=med_a, median_sqdist_y=med_b, sigma2_x=s2a, sigma2_y=s2b,
                             median_exact=exact, n_samples=n, debiased=debiased, median=median)
    return value


# ---------------------------------------------------------------------------- minibatch CKA


def _centred_gram(K: np.ndarray, debiased: bool) -> np.ndarray:
    """H K H (biased) or the U-centred Ǩ (debiased; Székely & Rizzo 2014), as a new array.

    Ǩ_ij = K_ij − r_i/(n−2) − r_j/(n−2) + R/((n−1)(n−2)) for i ≠ j, Ǩ_ii = 0, with r_i = Σ_{l≠i}K_il,
    R = Σ_i r_i; then HSIC₁ = ⟨Ǩ, Ľ⟩/(n(n−3)) and HSIC₀ = ⟨HKH, HLH⟩/(n−1)².
    """
    n = K.shape[0]
    G = np.array(K, dtype=np.float64)
    if debiased:
        np.fill_diagonal(G, 0.0)
        r = G.sum(axis=0)
        c = r / (n - 2) - r.sum() / (2.0 * (n - 1) * (n - 2))
        G -= c[:, None]
        G -= c[None, :]
        np.fill_diagonal(G, 0.0)
    else:
        m = G.mean(axis=0)
        G -= m[:, None]
        G -= m[None, :]
        G += m.mean()
    return G


def _batch_gram(A: np.ndarray, kernel: str, fraction: float, name: str) -> np.ndarray:
    """b × b Gram matrix of one batch (rows centred first; both kernels are translation invariant)."""
    A = _centre(A)
    G = A @ A.T
    if kernel == "linear":
        return G
    sq = np.diag(G).copy()
    D = sq[:, None] + sq[None, :] - 2.0 * G
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    med = float(np.median(D[np.triu_indices(A.shape[0], 1)]))
    if not med > 0.0:
        raise ValueError(f"{name}: the median squared distance between its samples is 0, so the median-heuristic "
                         "RBF bandwidth is 0")
    return np.exp(D * (-0.5 / (fraction * fraction * med)))


def _iter_batches(batches: Any, Y: Any, batch_size: Any) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, X_b, Y_b) as validated float64 copies, from either input form."""
    if Y is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"with arrays X, Y, batch_size must be a positive integer (rows per batch); "
                             f"got {batch_size!r}")
        A = _as_float64_matrix(batches, "X", measure_name="minibatch_cka")
        B = _as_float64_matrix(Y, "Y", measure_name="minibatch_cka")
        _check_same_samples(A, B)
        for b, s in enumerate(range(0, A.shape[0], int(batch_size))):
            yield b, A[s:s + batch_size].copy(), B[s:s + batch_size].copy()
        return
    if batch_size is not None:
        raise ValueError("batch_size is only used with arrays (minibatch_cka(X, Y, batch_size=...)); "
                         "an iterable of (X_b, Y_b) pairs is batched already")
    if hasattr(batches, "shape") or hasattr(batches, "__array__") or isinstance(batches, (str, bytes)):
        raise TypeError("batches must be an iterable of (X_b, Y_b) pairs; to batch two arrays pass "
                        "minibatch_cka(X, Y, batch_size=...)")
    try:
        it = iter(batches)
    except TypeError:
        raise TypeError(f"batches must be an iterable of (X_b, Y_b) pairs; got {type(batches).__name__}") from None
    for b, item in enumerate(it):
        try:
            xb, yb = item
        except (TypeError, ValueError):
            raise TypeError(f"batch {b} must be a pair (X_b, Y_b) of arrays; got {type(item).__name__}") from None
        A = _as_float64_matrix(xb, f"X_b (batch {b})", measure_name="minibatch_cka")
        B = _as_float64_matrix(yb, f"Y_b (batch {b})", measure_name="minibatch_cka")
        _check_same_samples(A, B, (f"X_b (batch {b})", f"Y_b (batch {b})"))
        yield b, A, B


@measure(
    "minibatch_cka",
    invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
    symmetric=True,
    streamable=True,
    estimator=True,
    reference="Nguyen, Raghu & Kornblith 2021, arXiv:2010.15327",
)
def minibatch_cka(
    batches: Any,
    Y: Any = None,
    *,
    batch_size: Optional[int] = None,
    kernel: str = "linear",
    debiased: bool = True,
    fraction: float = 1.0,
    return_n_batches: bool = False,
) -> "float | tuple[float, int]":
    """Minibatch CKA, a labelled ESTIMATOR (Nguyen, Raghu & Kornblith 2021; METHODS.md §2.4).

    CKA_mb = Σ_b HSIC(K_b, L_b) / √(Σ_b HSIC(K_b, K_b) · Σ_b HSIC(L_b, L_b)), the three sums
    accumulated over the batches b (per-batch CKA values are never averaged). It depends on the
    batch size and on which samples share a batch, and differs from full-data CKA (with one batch
    holding all samples it equals full-data (debiased) CKA). It is exposed only under this name,
    never as a silent fallback.

    Parameters
    ----------
    batches : iterable of (X_b, Y_b) pairs, or array
        Each X_b of shape (b, p) and Y_b of shape (b, q): activations of the same b samples (host
        numpy / CPU torch / array-protocol, any float dtype; copied to float64 one batch at a time).
        p and q must be the same in every batch. The iterable is consumed once (a generator or a
        data loader works). Alternatively pass the full X of shape (n, p) here together with ``Y``
        and ``batch_size``.
    Y : array, shape (n, q), optional
        With an array X in ``batches``: split both into consecutive batches of ``batch_size`` rows
        (the last one may be smaller).
    batch_size : int, optional
        Rows per batch when X and Y are given as arrays.
    kernel : {"linear", "rbf"}, default "linear"
        "linear": K_b = X_b X_bᵀ. "rbf": exp(−d²/(2σ_b²)) with σ_b² = fraction² · the median of the
        batch's own pair squared distances (i < j).
    debiased : bool, default True
        True: the unbiased HSIC₁ of each batch (as Nguyen et al.); False: the biased HSIC₀.
    fraction : float, default 1.0
        Bandwidth fraction for ``kernel="rbf"`` (ignored for "linear").
    return_n_batches : bool, default False
        Also return the number of batches used.

    Returns
    -------
    float
        The estimate (NaN with a RuntimeWarning when the denominator is not positive), or
        ``(value, n_batches_used)``.

    Notes
    -----
    HSIC₁(K, L) = ⟨Ǩ, Ľ⟩/(b(b−3)) with U-centred Ǩ, Ľ (Székely & Rizzo 2014), equal to
    [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((b−1)(b−2)) − (2/(b−2))·1ᵀK̃L̃1]/(b(b−3)); HSIC₀ = tr(KHLH)/(b−1)².
    Batches with fewer than 4 rows are dropped with a :class:`DroppedBatchWarning` (HSIC₁ needs 4);
    if none is left, ValueError. Each batch costs 2b²(p + q) flops and holds b × b Grams.

    Invariant to orthogonal transforms, isotropic scaling, translation and feature permutation of
    either argument (applied to every batch alike); symmetric. Not invariant to reordering the
    samples across batches. Runs on the host in float64; GPU arrays raise ValueError.

    References
    ----------
    Nguyen, Raghu & Kornblith (2021), "Do Wide and Deep Networks Learn the Same Things?", ICLR,
    arXiv:2010.15327. Kornblith et al. (2019), arXiv:1905.00414. Song et al. (2012), JMLR 13.
    """
    kernel = check_choice(kernel, ("linear", "rbf"), "kernel")
    debiased = _check_bool(debiased, "debiased")
    fraction = _check_fraction(fraction)
    return_n_batches = _check_bool(return_n_batches, "return_n_batches")
    skl = skk = sll = 0.0
    used, dropped, seen = 0, [], 0
    widths: Optional[tuple[int, int]] = None
    for b, A, B in _iter_batches(batches, Y, batch_size):
        seen += 1
        if widths is None:
            widths = (A.shape[1], B.shape[1])
        elif (A.shape[1], B.shape[1]) != widths:
            raise ValueError(f"batch {b} has {A.shape[1]} features in X_b and {B.shape[1]} in Y_b, but the first batch "
                             f"had {widths[0]} and {widths[1]}; every batch must have the same features")
        m = A.shape[0]
        if m < 4:
            dropped.append(b)
            continue
        Kc = _centred_gram(_batch_gram(A, kernel, fraction, f"X_b (batch {b})"), debiased)
        Lc = _centred_gram(_batch_gram(B, kernel, fraction, f"Y_b (batch {b})"), debiased)
        scale = 1.0 / (m * (m - 3)) if debiased else 1.0 / ((m - 1) ** 2)
        skl += float(np.vdot(Kc, Lc)) * scale
        skk += float(np.vdot(Kc, Kc)) * scale
        sll += float(np.vdot(Lc, Lc)) * scale
        used += 1
    if seen == 0:
        raise ValueError("minibatch_cka got no batches")
    if dropped:
        shown = dropped[:10]
        more = "" if len(dropped) <= 10 else f" and {len(dropped) - 10} more"
        what = (f"{len(dropped)} of {seen} batch(es) have fewer than 4 rows (batch indices {shown}{more}); "
                "HSIC needs at least 4 samples per batch")
        if used == 0:
            raise ValueError(f"minibatch_cka has no usable batch: {what}")
        warn(f"minibatch_cka dropped {what}", DroppedBatchWarning)
    value = _cka_ratio(skl, skk, sll, "minibatch_cka")
    return (value, used) if return_n_batches else value
