"""The Python face of the compiled CPU engine: validate, compute statistics, standardise into
panels, plan tiles from the memory budget, and dispatch (DESIGN.md §1).

A *panel* is a C-contiguous ``(K, n)`` array (K = samples for features, K = dimensions for
points) of float32 or float64, already centred and scaled so that the engine's plain product
``panel_aᵀ · panel_b`` is the requested statistic. Centring happens in float64 before the
rounding to the compute precision, so it never cancels (METHODS.md §1.2).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _blas, _cpu
from ._arrays import FLOAT32, FLOAT64, HostArray
from ._resources import MemoryBudgetError, format_bytes

_blas.install(_cpu)

FEATURE_METRICS = ("pearson", "cosine", "covariance")
POINT_METRICS = ("sqeuclidean", "inner", "cosine")
PRECISIONS = ("float32", "float64")
#: Precisions only the CUDA engine has (tensor cores); the CPU refuses them with a clear message.
GPU_ONLY_PRECISIONS = ("tf32", "3xtf32", "bf16")
ZERO_VAR_POLICIES = ("zero", "nan", "raise")

#: A feature is constant when std <= CONSTANT_RTOL * rms (METHODS.md §1.3, float64 accumulation).
CONSTANT_RTOL = 1e-10
#: float32 products sum over at most this many samples, then accumulate in float64.
K_CHUNK_FLOAT32 = 4096
#: Default tile shape for the reductions (rows of A owned by one thread x columns of B).
REDUCE_BLOCK_ROWS = 1024
REDUCE_BLOCK_COLS = 2048
MIN_BLOCK = 64
#: Tile shape for dense output (products run through the multithreaded BLAS).
DENSE_BLOCK = 4096


class ConstantFeatureWarning(UserWarning):
    """Some features had zero variance (or zero norm for cosine); see ``zero_var``."""


@dataclass(frozen=True)
class ColumnMoments:
    """Raw per-column statistics from the compiled pass (float64)."""

    n: int
    mean: np.ndarray
    m2: np.ndarray
    sumsq: np.ndarray

    def constant(self) -> np.ndarray:
        std = np.sqrt(self.m2 / self.n)
        rms = np.sqrt(self.sumsq / self.n)
        return (self.m2 == 0) | (std <= CONSTANT_RTOL * rms)


def moments(arr: np.ndarray, code: int, num_threads: int, name: str) -> ColumnMoments:
    """Column statistics of a 2-D strided array; raises ValueError on NaN/Inf."""
    p = arr.shape[1]
    mean, m2, sumsq = np.empty(p), np.empty(p), np.empty(p)
    finite = _cpu.column_stats(arr, code, mean, m2, sumsq, num_threads)
    if not finite:
        raise ValueError(nonfinite_message(name))
    return ColumnMoments(arr.shape[0], mean, m2, sumsq)


def nonfinite_message(name: str) -> str:
    return f"{name} contains NaN or Inf values (or finite values beyond ~1e154 whose squares overflow float64)"


def too_many_pairs_message(max_pairs: int, threshold: float) -> str:
    return (f"more than max_pairs={max_pairs} pairs reach threshold={threshold}; raise the threshold, "
            "or raise max_pairs / memory_limit")


def reject_gpu_precision(precision, what: str = "the CPU engine") -> None:
    """The tensor-core precisions exist only for CUDA inputs: say so instead of 'not one of'."""
    if isinstance(precision, str) and precision in GPU_ONLY_PRECISIONS:
        raise ValueError(
            f"precision={precision!r} needs CUDA inputs (torch CUDA tensors or cupy arrays); {what} computes in "
            "'float32' or 'float64'"
        )


def exclusion(exclude_self: Optional[bool], symmetric: bool, na: int, nb: int, *, points: bool = False) -> bool:
    """Whether a reduction skips j == i (default: for an input against itself).

    ``points`` words the error for kNN's rows (P, Q) instead of features (X, Y)."""
    if exclude_self is None:
        return symmetric
    if exclude_self and na != nb:
        what, a, b = ("points", "P", "Q") if points else ("features", "X", "Y")
        raise ValueError(f"exclude_self=True needs as many {what} in {a} as in {b}; got {na} and {nb}")
    return bool(exclude_self)


def check_same_dims(p_dims: int, q_dims: int) -> None:
    """kNN's query and reference points must live in one space."""
    if p_dims != q_dims:
        raise ValueError(f"P and Q must have the same number of dimensions (columns); got {p_dims} and {q_dims}")


def check_threshold(threshold: float) -> float:
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating))
            or not np.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")
    return float(threshold)


def check_choice(value: str, allowed: tuple, name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def resolve_precision(precision: Optional[str], *inputs: HostArray) -> np.dtype:
    """Compute dtype: float64 when every input is float64, else float32, unless given."""
    if precision is None:
        return np.dtype(np.float64) if all(h.code == FLOAT64 for h in inputs) else np.dtype(np.float32)
    reject_gpu_precision(precision)
    check_choice(precision, PRECISIONS, "precision")
    return np.dtype(precision)


def resolve_k(k: int, n_candidates: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer; got {k!r}")
    if k > n_candidates:
        raise ValueError(f"{name}={k} exceeds the number of candidates ({n_candidates})")
    return int(k)


@dataclass
class Panel:
    """A standardised panel plus what the epilogue needs to know about its columns."""

    data: np.ndarray
    invalid: Optional[np.ndarray]  # bool (n,), columns whose value is undefined (zero_var="nan")
    moments: Optional[ColumnMoments] = None


def inverse_sqrt(values: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """1/√values, and 0 where ``zero`` (constant or all-zero features): the scale that makes a
    column unit-norm without dividing by zero."""
    with np.errstate(divide="ignore"):
        return np.where(zero, 0.0, 1.0 / np.sqrt(np.where(zero, 1.0, values)))


def feature_panel(
    h: HostArray,
    metric: str,
    dtype: np.dtype,
    *,
    ddof: int,
    zero_var: str,
    num_threads: int,
) -> Panel:
    """Centre and scale the columns of an (n_samples, n_features) input into a panel.

    pearson: z = (x - mean) / sqrt(m2) so that zᵀz' is the correlation;
    covariance: z = (x - mean) / sqrt(n - ddof); cosine: z = x / ||x||.
    Constant features (zero norm for cosine) get z = 0 and are reported per ``zero_var``.
    """
    arr = h.array
    mom = moments(arr, h.code, num_threads, h.name)
    shift, scale, invalid = feature_scaling(mom, metric, ddof=ddof, zero_var=zero_var, name=h.name)
    out = np.empty(arr.shape, dtype=dtype)
    _cpu.standardize(arr, h.code, None, shift, scale, out, num_threads)
    return Panel(out, invalid, mom)


def feature_scaling(mom: ColumnMoments, metric: str, *, ddof: int, zero_var: str,
                    name: str) -> tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """(shift, scale, invalid) of a feature panel from its columns' moments: z = (x - shift)·scale.

    Applies the ``zero_var`` policy (warning or ValueError naming ``name``). Shared by the
    in-memory panels and the Dask layer, whose moments are merged over sample chunks.
    """
    n = mom.n
    invalid = None
    if metric == "covariance":
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not (0 <= ddof < n):
            raise ValueError(f"ddof must satisfy 0 <= ddof < n_samples ({n}); got {ddof!r}")
        shift = mom.mean
        scale = np.full(mom.mean.shape[0], 1.0 / math.sqrt(n - ddof))
    else:
        if metric == "pearson":
            bad = mom.constant()
            shift = mom.mean
            scale = inverse_sqrt(mom.m2, bad)
        else:  # cosine
            bad = mom.sumsq == 0
            shift = None
            scale = inverse_sqrt(mom.sumsq, bad)
        invalid = _apply_zero_var(bad, zero_var, name, metric)
    return shift, np.ascontiguousarray(scale), invalid


def _apply_zero_var(bad: np.ndarray, zero_var: str, name: str, metric: str) -> Optional[np.ndarray]:
    count = int(bad.sum())
    if count == 0:
        return None
    what = "zero-norm" if metric == "cosine" else "constant (zero-variance)"
    first = np.flatnonzero(bad)[:5].tolist()
    if zero_var == "raise":
        raise ValueError(f"{name} has {count} {what} feature(s) (first indices {first}); {metric} is undefined for them")
    if zero_var == "zero":
        warnings.warn(
            f"{name} has {count} {what} feature(s) (first indices {first}); their {metric} values are set to 0 "
            "(zero_var='zero'; use zero_var='nan' or 'raise' to change this)",
            ConstantFeatureWarning,
            stacklevel=_caller_stacklevel(),
        )
        return None
    return bad


def _caller_stacklevel() -> int:
    """stacklevel that attributes a warning to the first frame outside this package."""
    import sys

    pkg = __name__.rsplit(".", 1)[0]
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == pkg:
        frame, level = frame.f_back, level + 1
    return level


def canonical_order(values: np.ndarray, indices: np.ndarray, *, descending: bool, absolute: bool = False) -> None:
    """Re-sort each row by value, then by index, in place.

    The engine ranks kNN scores aᵀb − ‖b‖²/2; turning them into d² = ‖a‖² − 2·score afterwards can
    make unequal keys equal, and equal values must come in increasing index order (ties to the lowest
    index). Unfilled slots (index -1, NaN) stay last.
    """
    key = np.abs(values) if absolute else values
    key = -key.astype(np.float64) if descending else key.astype(np.float64)
    big = np.iinfo(np.int64).max
    order = np.lexsort((np.where(indices < 0, big, indices), key), axis=-1)
    values[...] = np.take_along_axis(values, order, axis=-1)
    indices[...] = np.take_along_axis(indices, order, axis=-1)


def point_panels(
    hp: HostArray,
    hq: Optional[HostArray],
    metric: str,
    dtype: np.dtype,
    num_threads: int,
    centre: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Lay points out as (d, n) panels for kNN.

    Returns (A, B, col_bias, row_norm2). For sqeuclidean both sets are centred by the reference
    mean (distances unchanged, cancellation removed; METHODS.md §1.5), col_bias = -||b||²/2 so that
    the engine ranks aᵀb - ||b||²/2, and d² = ||a||² - 2·value afterwards. ``centre`` replaces the
    reference mean (the Dask layer passes the mean of the whole reference set, so that blocks of it
    are centred alike and equal points get equal distances); the caller has then checked the
    inputs for NaN/Inf.
    """
    # Each input is read by exactly one statistics pass, the one its metric needs; that pass also
    # rejects NaN/Inf.
    if metric == "cosine":  # rows scaled to unit norm; zero rows stay zero (similarity 0)
        def unit(h: HostArray) -> np.ndarray:
            ss = moments(h.array.T, h.code, num_threads, h.name).sumsq  # per point
            scale = inverse_sqrt(ss, ss == 0)
            return _transpose_panel(h, dtype, num_threads, col_scale=scale)

        A = unit(hp)
        return A, (A if hq is None else unit(hq)), None, None
    if centre is not None and metric == "sqeuclidean":
        mu = np.ascontiguousarray(centre, dtype=np.float64)
    else:
        mu = moments(hp.array, hp.code, num_threads, hp.name).mean  # per dimension
        if hq is not None:
            mu = moments(hq.array, hq.code, num_threads, hq.name).mean  # centre by the reference set
    if metric == "inner":
        A = _transpose_panel(hp, dtype, num_threads)
        return A, (A if hq is None else _transpose_panel(hq, dtype, num_threads)), None, None
    A = _transpose_panel(hp, dtype, num_threads, row_shift=mu)
    B = A if hq is None else _transpose_panel(hq, dtype, num_threads, row_shift=mu)
    na2 = _panel_sumsq(A, num_threads)
    nb2 = na2 if hq is None else _panel_sumsq(B, num_threads)
    return A, B, np.ascontiguousarray(-0.5 * nb2), na2


def _panel_sumsq(panel: np.ndarray, num_threads: int) -> np.ndarray:
    code = FLOAT32 if panel.dtype == np.float32 else FLOAT64
    return moments(panel, code, num_threads, "panel").sumsq


def _transpose_panel(h: HostArray, dtype: np.dtype, num_threads: int, *, row_shift=None, col_scale=None) -> np.ndarray:
    view = h.array.T  # (d, n) strided view: the kernel reads it in cache-friendly blocks
    out = np.empty(view.shape, dtype=dtype)
    rs = None if row_shift is None else np.ascontiguousarray(row_shift, dtype=np.float64)
    cs = None if col_scale is None else np.ascontiguousarray(col_scale, dtype=np.float64)
    _cpu.standardize(view, h.code, rs, None, cs, out, num_threads)
    return out


@dataclass(frozen=True)
class ReducePlan:
    block_rows: int
    block_cols: int
    k_chunk: int


def _k_chunk(dtype: np.dtype) -> int:
    return K_CHUNK_FLOAT32 if dtype == np.float32 else 1 << 62


def plan_reduction(
    na: int, nb: int, K: int, dtype: np.dtype, num_threads: int, budget: int, fixed_bytes: int, per_row_bytes: int
) -> ReducePlan:
    """Choose tile sizes for a row-stationary reduction that fit in ``budget`` bytes.

    fixed_bytes: panels and outputs already committed; per_row_bytes: per-row state in a block.
    """
    item = dtype.itemsize
    chunked = dtype == np.float32 and K > K_CHUNK_FLOAT32
    tile_item = item + (8 if chunked else 0)
    # Enough row blocks for every thread to stay busy, at most REDUCE_BLOCK_ROWS rows each.
    bi = max(MIN_BLOCK, min(REDUCE_BLOCK_ROWS, -(-na // max(1, num_threads))))
    bi = min(bi, na)
    bj = min(REDUCE_BLOCK_COLS, nb)

    def need(bi_: int, bj_: int) -> int:
        return fixed_bytes + num_threads * (bi_ * bj_ * tile_item + bi_ * per_row_bytes)

    while need(bi, bj) > budget and (bi > MIN_BLOCK or bj > MIN_BLOCK):
        if bj >= bi and bj > MIN_BLOCK:
            bj = max(MIN_BLOCK, bj // 2)
        else:
            bi = max(MIN_BLOCK, bi // 2)
    if need(bi, bj) > budget:
        raise MemoryBudgetError(
            f"the computation needs at least {format_bytes(need(bi, bj))} (standardised copies of the inputs "
            f"{format_bytes(fixed_bytes)} plus tiles) but memory_limit is {format_bytes(budget)}; "
            "raise memory_limit or pass fewer features/samples"
        )
    return ReducePlan(int(bi), int(bj), _k_chunk(dtype))


def check_fits(needed: int, budget: int, what: str) -> None:
    if needed > budget:
        raise MemoryBudgetError(
            f"{what} needs {format_bytes(needed)} but memory_limit is {format_bytes(budget)}; "
            "raise memory_limit, or use a reduction (topk_correlation, max_correlation, correlation_pairs) "
            "that never holds the full matrix"
        )


def panel_bytes(*panels: np.ndarray) -> int:
    seen, total = set(), 0
    for p in panels:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.nbytes
    return total


def estimate_panel_bytes(K: int, widths: list[int], dtype: np.dtype) -> int:
    return K * sum(widths) * dtype.itemsize


def run_dense(A: np.ndarray, B: np.ndarray, symmetric: bool, out: np.ndarray, num_threads: int) -> None:
    chunked = A.dtype == np.float32 and A.shape[0] > K_CHUNK_FLOAT32
    block = DENSE_BLOCK // 2 if chunked else DENSE_BLOCK
    _cpu.pairwise_dense(A, B, symmetric, out, block, block, _k_chunk(A.dtype), num_threads)


def accumulate_grams(jobs: list, num_threads: int) -> None:
    """C (float64) += AᵀB for each ``(A, B or None, C)`` job, all over the same samples (sample-major
    panels; column slices of a wider panel are fine); B None: the symmetric update of the upper
    triangle of C only (the caller mirrors). One parallel region for all jobs: OpenMP threads own
    output tiles and call a single-threaded BLAS (call it under ``blas_threads(1)``), so a set of
    small per-layer Grams keeps every thread busy. Tiles of 1024 x 2048 (symmetric ones 1024²):
    single-threaded sgemm on 512² tiles ran at about half the rate of 1024² ones on the
    development box (packing dominates), and ≥ 1024² tiles reach the two-thread sgemm rate."""
    if not jobs:
        return
    dtype = jobs[0][0].dtype
    _cpu.gram_accumulate_many(list(jobs), 1024, 2048, _k_chunk(dtype), num_threads)


def run_topk(A, B, k, absolute, col_bias, col_valid, exclude_diagonal, plan: ReducePlan, num_threads, clip=False):
    values = np.empty((A.shape[1], k), dtype=A.dtype)
    indices = np.empty((A.shape[1], k), dtype=np.int64)
    _cpu.pairwise_topk(
        A, B, k, absolute, col_bias, col_valid, exclude_diagonal, values, indices,
        plan.block_rows, plan.block_cols, plan.k_chunk, num_threads, clip,
    )
    return values, indices


def run_threshold(A, B, threshold, absolute, col_bias, col_valid, exclude_diagonal, max_pairs, plan, num_threads,
                  clip=False):
    try:
        return _cpu.pairwise_threshold(
            A, B, float(threshold), absolute, col_bias, col_valid, exclude_diagonal, int(max_pairs),
            plan.block_rows, plan.block_cols, plan.k_chunk, num_threads, clip,
        )
    except ValueError as exc:
        if str(exc) == "too_many_pairs":
            raise MemoryBudgetError(too_many_pairs_message(max_pairs, threshold)) from None
        raise
