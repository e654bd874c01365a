"""The Python face of the CUDA engine: the GPU twin of :mod:`congruence._engine`.

Validate, compute statistics, standardise into padded panels, plan, allocate through the caller's
library (:mod:`congruence._device`) and dispatch to the ``_cuda`` kernels, all on the caller's
current stream. ``_cuda`` is imported lazily, only when a GPU array is actually passed; on a
machine without a usable CUDA device a GPU input gets :class:`CudaUnavailableError` (a ValueError
and a RuntimeError) that says why.

Panels (src/include/congruence/cuda_engine.hpp): row-major ``rows_padded x k_padded`` buffers with
rows padded to 128 and the reduction dimension K to 64 (zeros outside the data block, written by
``standardize``), of float32 (float32 / tf32 / 3xtf32), bfloat16 (bf16) or float64 (float64).
A *feature* panel of an ``(n_samples, n_features)`` input has one row per feature (the transposed
view is standardised, K = samples); a *point* panel for kNN has one row per point (K = dims). The
kernels compute ``v_ij = clamp(<a_i, b_j> + col_bias[j], lo, hi)`` and reduce it per tile.

The planning helpers (padding, top-k segments and scratch, threshold capacity retries, CrossStats
chunking, precision resolution) take plain integers so they are tested without a GPU
(tests/test_cuda_host.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from . import _arrays as A
from . import _device as D
from . import _engine as E
from ._arrays import BFLOAT16, FLOAT32, FLOAT64, DeviceArray, check_matrix, itemsize_of
from ._resources import MemoryBudgetError, format_bytes, resolve_memory_limit, resolve_threads

GPU_PRECISIONS = ("float32", "tf32", "3xtf32", "bf16", "float64")  # codes 0..4 = _cuda.PRECISIONS
GPU_ONLY_PRECISIONS = E.GPU_ONLY_PRECISIONS
PANEL_ROW_ALIGN = 128
PANEL_K_ALIGN = 64
TILE_ROWS = 128
TILE_COLS = 128
MAX_TOPK = 256
#: Share of the free device memory (plus the library's pooled free memory) used by default.
DEFAULT_MEMORY_SHARE = 0.8
#: First capacity of the threshold pair buffers; one retry with the exact count when exceeded.
THRESHOLD_INITIAL_CAPACITY = 1 << 22
#: Device bytes budgeted per threshold pair (rows, cols, values, sort keys and permutation, result).
PAIR_BYTES = 64
#: CrossStats: rows per batch product (tf32/bf16/float32 partial sums over at most this many rows
#: join the float64 accumulators, METHODS.md §1.2; float64 chunks only bound the panel memory).
CROSS_CHUNK_ROWS = 1024
CROSS_CHUNK_ROWS_FLOAT64 = 16384

REQUIRED = ("column_moments", "standardize", "pairwise_dense", "pairwise_topk", "pairwise_threshold",
            "default_precision", "device_properties")

#: Test hook: a stand-in for the ``_cuda`` module (tests/cuda_sim.py runs this whole path on the
#: CPU with a NumPy emulation of the kernels' documented semantics).
_override: Any = None
_SM_COUNT: dict = {}


class CudaUnavailableError(ValueError, RuntimeError):
    """A GPU array was passed but the CUDA backend cannot run here (the message says why)."""


# ============================================================================ loading


def load(name: str = "X") -> Any:
    """The ``_cuda`` module, or :class:`CudaUnavailableError` naming the argument and the reason."""
    if _override is not None:
        return _override
    from ._info import _cuda_query

    q = _cuda_query()
    if not q.get("usable"):
        reason = q.get("reason") or "no usable CUDA device"
        raise CudaUnavailableError(
            f"{name} is a GPU array, but congruence's CUDA backend is not available here: {reason}. "
            "Move the data to the host explicitly (e.g. tensor.cpu() or cupy.asnumpy(x)) to use the CPU "
            "engine; congruence never copies between GPU and host silently."
        )
    from . import _cuda

    missing = [f for f in REQUIRED if not hasattr(_cuda, f)]
    if missing:
        raise CudaUnavailableError(
            f"{name} is a GPU array, but the installed congruence._cuda module lacks {', '.join(missing)} "
            "(built from an older source tree); rebuild the package (e.g. pip install -e .)"
        )
    precisions = tuple(getattr(_cuda, "PRECISIONS", GPU_PRECISIONS))
    if precisions != GPU_PRECISIONS:  # pragma: no cover - a build/source mismatch
        raise RuntimeError(f"congruence._cuda.PRECISIONS is {precisions}; this Python layer expects {GPU_PRECISIONS}")
    return _cuda


def multiprocessors(cu: Any, device: int) -> int:
    key = (id(cu), device)
    if key not in _SM_COUNT:
        _SM_COUNT[key] = int(cu.device_properties(device)["multiprocessors"])
    return _SM_COUNT[key]


# ============================================================================ planning (pure)


def padded(n: int, align: int) -> int:
    """``n`` rounded up to a multiple of ``align``."""
    return -(-int(n) // align) * align


def feature_panel_shape(n_samples: int, n_features: int) -> tuple[int, int]:
    """(rows, K) of the panel of an (n_samples, n_features) input: one row per feature."""
    return padded(n_features, PANEL_ROW_ALIGN), padded(n_samples, PANEL_K_ALIGN)


def point_panel_shape(n_points: int, n_dims: int) -> tuple[int, int]:
    """(rows, K) of the kNN panel of an (n_points, n_dims) input: one row per point."""
    return padded(n_points, PANEL_ROW_ALIGN), padded(n_dims, PANEL_K_ALIGN)


def panel_code(precision: str) -> int:
    """Element code of the panels of a precision (cuda_engine.hpp ``panel_elem``)."""
    if precision == "bf16":
        return BFLOAT16
    return FLOAT64 if precision == "float64" else FLOAT32


def value_code(precision: str) -> int:
    """Element code of dense / top-k / pair values: float64 panels give double, others float."""
    return FLOAT64 if precision == "float64" else FLOAT32


_DTYPE_NAMES = {A.FLOAT16: "float16", BFLOAT16: "bfloat16", FLOAT32: "float32", FLOAT64: "float64"}


def code_dtype(code: int) -> str:
    return _DTYPE_NAMES[code]


def panel_nbytes(rows: int, k: int, precision: str) -> int:
    return rows * k * itemsize_of(panel_code(precision))


def topk_segments(n_rows: int, n_cols: int, multiprocessors: int) -> int:
    """Column segments of a top-k launch: enough blocks (row tiles x segments) for two per
    multiprocessor, while every segment keeps at least one 128-column tile."""
    row_tiles = max(1, -(-int(n_rows) // TILE_ROWS))
    col_tiles = max(1, -(-int(n_cols) // TILE_COLS))
    want = max(1, -(-2 * max(1, int(multiprocessors)) // row_tiles))
    return int(min(want, col_tiles))


def topk_scratch_shape(n_rows: int, k: int, segments: int) -> tuple[int, int, int]:
    """(segments, rows, k) of the per-segment partial lists the top-k kernels write and merge.

    The kernels keep a list per segment even for one segment (they allocate it from the CUDA pool
    when not given one), so it is always passed: allocated by the caller's library and counted in
    the memory budget. They index ``segments x n_rows x k``; the rows are rounded up to whole row
    tiles so that a kernel writing the padded rows of its last tile stays inside the buffer."""
    return max(1, int(segments)), padded(n_rows, TILE_ROWS), int(k)


def topk_scratch_nbytes(n_rows: int, k: int, segments: int, precision: str) -> int:
    s, r, kk = topk_scratch_shape(n_rows, k, segments)
    return s * r * kk * (itemsize_of(value_code(precision)) + 4)


def plan_topk_segments(n_rows: int, n_cols: int, k: int, multiprocessors: int, precision: str,
                       available_bytes: int) -> int:
    """:func:`topk_segments`, halved until the scratch fits in ``available_bytes``."""
    s = topk_segments(n_rows, n_cols, multiprocessors)
    while s > 1 and topk_scratch_nbytes(n_rows, k, s, precision) > available_bytes:
        s //= 2
    return max(1, s)


def topk_output_nbytes(n_rows: int, k: int, precision: str) -> int:
    return n_rows * k * (itemsize_of(value_code(precision)) + 8)


def threshold_capacity(max_pairs: int, budget_pairs: int, default: Optional[int] = None) -> int:
    """First capacity of the pair buffers: min(max_pairs, default (THRESHOLD_INITIAL_CAPACITY),
    what the budget holds)."""
    default = THRESHOLD_INITIAL_CAPACITY if default is None else default
    return int(max(0, min(int(max_pairs), int(default), int(budget_pairs))))


def collect_pairs(run: Callable[[int], tuple], *, max_pairs: int, capacity: int, threshold: float,
                  fixed_bytes: int, budget: int, pair_bytes: int = PAIR_BYTES, attempts: int = 3) -> tuple:
    """The threshold kernel's capacity protocol.

    ``run(capacity) -> (count, buffers)`` launches with buffers for ``capacity`` pairs and returns
    the number of qualifying pairs, which may exceed the capacity (only ``capacity`` were then
    written). More than ``max_pairs`` pairs: :class:`MemoryBudgetError` with the CPU's message.
    More than the capacity but at most ``max_pairs``: reallocate exactly and run again (refused up
    front when the pairs would not fit in the memory budget).

    Returns
    -------
    (count, buffers) of the run that held every pair.
    """
    for _ in range(attempts):
        count, buffers = run(int(capacity))
        count = int(count)
        if count > max_pairs:
            raise MemoryBudgetError(E.too_many_pairs_message(max_pairs, threshold))
        if count <= capacity:
            return count, buffers
        need = fixed_bytes + count * pair_bytes
        if need > budget:
            raise MemoryBudgetError(
                f"{count} pairs reach threshold={threshold}; holding them needs {format_bytes(need)} (with the "
                f"standardised inputs) but memory_limit is {format_bytes(budget)}; raise the threshold or memory_limit"
            )
        capacity = count
    raise RuntimeError("the number of threshold pairs changed between identical launches")  # pragma: no cover


def cross_chunk_rows(n_rows: int, p: int, q: int, precision: str, available_bytes: int) -> int:
    """Rows per CrossStats batch product: at most 1024 (float32-type precisions) or 16384
    (float64) and what fits in ``available_bytes`` for the two panels, in steps of 64."""
    base = CROSS_CHUNK_ROWS_FLOAT64 if precision == "float64" else CROSS_CHUNK_ROWS
    per_row = (padded(p, PANEL_ROW_ALIGN) + padded(q, PANEL_ROW_ALIGN)) * itemsize_of(panel_code(precision))
    fits = (max(0, int(available_bytes)) // per_row) // PANEL_K_ALIGN * PANEL_K_ALIGN
    if fits < PANEL_K_ALIGN:
        raise MemoryBudgetError(
            f"CrossStats needs at least {format_bytes(per_row * PANEL_K_ALIGN)} of device memory for its batch "
            f"panels ({p} + {q} features x 64 rows) beyond the accumulators, but only "
            f"{format_bytes(max(0, int(available_bytes)))} is left in memory_limit"
        )
    return int(min(int(n_rows), base, fits))


def resolve_precision(precision: Optional[str], codes: list, default_code: Callable[[], int]) -> str:
    """GPU compute precision: float64 when every input is float64, else the device default
    (``_cuda.default_precision``: 3xtf32 on compute capability >= 8.0, else float32)."""
    if precision is None:
        if all(c == FLOAT64 for c in codes):
            return "float64"
        return GPU_PRECISIONS[int(default_code())]
    E.check_choice(precision, GPU_PRECISIONS, "precision")
    return precision


def precision_code(precision: str) -> int:
    return GPU_PRECISIONS.index(precision)


def check_k(k: int) -> None:
    if k > MAX_TOPK:
        raise ValueError(
            f"k={k} exceeds the CUDA engine's maximum of {MAX_TOPK} partners per row; use k <= {MAX_TOPK}, "
            "or move the data to the host for the CPU engine (no limit)"
        )


def check_budget(need: int, budget: int, what: str) -> None:
    if need > budget:
        raise MemoryBudgetError(
            f"{what} needs {format_bytes(need)} of device memory but memory_limit is {format_bytes(budget)}; "
            "raise memory_limit (default: 80% of the free device memory) or pass fewer features/samples"
        )


def resolve_budget(memory_limit: Optional[float], ctx: D.Context) -> int:
    if memory_limit is None:
        return int(DEFAULT_MEMORY_SHARE * ctx.free_memory())
    return resolve_memory_limit(memory_limit)


def validate_common(*, precision: Optional[str], memory_limit: Optional[float], num_threads: Optional[int],
                    precisions: tuple = GPU_PRECISIONS) -> None:
    """Host-side argument checks done before anything touches the GPU."""
    resolve_threads(num_threads)  # validated for a uniform API; ignored on the GPU
    if memory_limit is not None:
        resolve_memory_limit(memory_limit)
    if precision is not None:
        E.check_choice(precision, precisions, "precision")


# ============================================================================ inputs


def device_inputs(cu: Any, named: dict) -> tuple[D.Context, dict]:
    """Parse the (non-None) GPU inputs, check they share one device, and build the context.

    torch / cupy / ``__cuda_array_interface__`` objects are read first (no data access); a DLPack
    producer is consumed last, with the execution stream, so it can order its pending work."""
    names = [n for n, x in named.items() if x is not None]
    parsed: dict = {}
    devices: dict = {}
    for n in names:
        if A.source_kind(named[n]) == "dlpack":
            devices[n] = A.device_hint(named[n])
        else:
            parsed[n] = A.as_device_array(named[n], n)
            devices[n] = parsed[n].device
    first = names[0]
    for n in names[1:]:
        if devices[n] != devices[first]:
            raise ValueError(
                f"{first} is on cuda:{devices[first]} but {n} is on cuda:{devices[n]}; all inputs must be on the "
                f"same GPU. Move one of them explicitly (e.g. tensor.to('cuda:{devices[first]}'))"
            )
    ctx = D.make_context(A.source_kind(named[first]), int(devices[first]), first)
    for n in names:
        if n not in parsed:
            parsed[n] = A.as_device_array(named[n], n, stream=ctx.stream)
    for n in names:
        d = parsed[n]
        if d.ptr == 0 and 0 not in d.shape:  # never hand a kernel address 0 (a sticky CUDA error)
            raise ValueError(f"{n} has a null device pointer ({d.kind} input of shape {d.shape})")
        ctx.wait_for(d.stream)
    return ctx, parsed


@dataclass(frozen=True)
class View:
    """A strided 2-D device matrix (element (r, c) at ptr + (r*rs + c*cs)*itemsize)."""

    ptr: int
    code: int
    rows: int
    cols: int
    rs: int
    cs: int

    @property
    def T(self) -> "View":
        return View(self.ptr, self.code, self.cols, self.rows, self.cs, self.rs)

    def row_block(self, r0: int, nrows: int) -> "View":
        return View(self.ptr + r0 * self.rs * itemsize_of(self.code), self.code, int(nrows), self.cols, self.rs,
                    self.cs)


def view_of(d: DeviceArray) -> View:
    return View(d.ptr, d.code, d.shape[0], d.shape[1], d.strides[0], d.strides[1])


@dataclass
class Panel:
    """A padded device panel and what the epilogue needs to know about its rows."""

    data: Any
    ptr: int
    n: int  # logical rows (features or points)
    rows: int  # padded rows
    k: int  # padded reduction dimension
    ld: int
    invalid: Any = None  # device bool (n,): rows whose values are undefined (zero_var="nan")


# ============================================================================ primitives


def moments(cu: Any, ctx: D.Context, v: View, name: str, *, shift: Any = None,
            outputs: tuple = ("mean", "m2", "sumsq")) -> dict:
    """Per-column float64 moments of a strided device view (column_moments_cuda); ValueError on NaN/Inf.

    outputs: any of "mean", "m2", "sumsq", "sum" (Σ(x − shift))."""
    out = {key: ctx.empty((v.cols,), "float64") for key in outputs}
    ok = cu.column_moments(
        ctx.device, ctx.stream, v.ptr, v.code, v.rows, v.cols, v.rs, v.cs, ctx.address(shift),
        ctx.address(out.get("mean")), ctx.address(out.get("m2")), ctx.address(out.get("sumsq")),
        ctx.address(out.get("sum")),
    )
    if not ok:
        raise ValueError(E.nonfinite_message(name))
    return out


def standardize(cu: Any, ctx: D.Context, v: View, precision: str, out_rows: int, out_k: int, *, row_shift: Any = None,
                col_shift: Any = None, row_scale: Any = None, out: Any = None, ld: Optional[int] = None) -> Panel:
    """Panel ``out[r, c] = (V(r, c) − row_shift[r] − col_shift[c])·row_scale[r]`` (zeros outside)."""
    code = panel_code(precision)
    ld = out_k if ld is None else ld
    if out is None:
        out = ctx.empty((out_rows, ld), code_dtype(code))
    cu.standardize(
        ctx.device, ctx.stream, v.ptr, v.code, v.rows, v.cols, v.rs, v.cs, ctx.address(row_shift),
        ctx.address(col_shift), ctx.address(row_scale), ctx.address(out), code, out_rows, out_k, ld,
    )
    return Panel(out, ctx.address(out), v.rows, out_rows, out_k, ld)


def constant_mask(xp: Any, n: int, m2: Any, sumsq: Any) -> Any:
    """Zero-variance features, as :meth:`congruence._engine.ColumnMoments.constant`."""
    std = xp.sqrt(m2 / n)
    rms = xp.sqrt(sumsq / n)
    return (m2 == 0) | (std <= E.CONSTANT_RTOL * rms)


def inverse_sqrt_or_zero(xp: Any, bad: Any, x: Any) -> Any:
    return xp.where(bad, 0.0, 1.0 / xp.sqrt(xp.where(bad, 1.0, x)))


def apply_zero_var(xp: Any, bad: Any, zero_var: str, name: str, metric: str) -> Any:
    """The CPU's zero_var policy (warning / raise) on a device mask; returns the mask for "nan"."""
    if int(bad.sum()) == 0:
        return None
    kept = E._apply_zero_var(xp.to_numpy(bad).astype(bool), zero_var, name, metric)
    return None if kept is None else bad


def feature_panel(cu: Any, ctx: D.Context, d: DeviceArray, metric: str, precision: str, *, ddof: int,
                  zero_var: str) -> Panel:
    """Centre and scale the columns of an (n_samples, n_features) GPU input into a feature panel
    (rows = features): pearson (x − μ)/√m2, covariance (x − μ)/√(n − ddof), cosine x/‖x‖."""
    xp = ctx.xp
    n, p = d.shape
    v = view_of(d)
    mom = moments(cu, ctx, v, d.name)
    invalid = None
    if metric == "covariance":
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not (0 <= ddof < n):
            raise ValueError(f"ddof must satisfy 0 <= ddof < n_samples ({n}); got {ddof!r}")
        shift = mom["mean"]
        scale = xp.full((p,), 1.0 / math.sqrt(n - int(ddof)))
    else:
        if metric == "pearson":
            bad = constant_mask(xp, n, mom["m2"], mom["sumsq"])
            shift = mom["mean"]
            scale = inverse_sqrt_or_zero(xp, bad, mom["m2"])
        else:  # cosine
            bad = mom["sumsq"] == 0
            shift = None
            scale = inverse_sqrt_or_zero(xp, bad, mom["sumsq"])
        invalid = apply_zero_var(xp, bad, zero_var, d.name, metric)
    rows, k = feature_panel_shape(n, p)
    panel = standardize(cu, ctx, v.T, precision, rows, k, row_shift=shift, row_scale=scale)
    panel.invalid = invalid
    return panel


def panel_sumsq(cu: Any, ctx: D.Context, panel: Panel, n_dims: int, precision: str) -> Any:
    """Per-row Σz² of a point panel, from its transposed view (float64)."""
    v = View(panel.ptr, panel_code(precision), n_dims, panel.n, 1, panel.ld)
    return moments(cu, ctx, v, "panel", outputs=("sumsq",))["sumsq"]


def point_panels(cu: Any, ctx: D.Context, dp: DeviceArray, dq: Optional[DeviceArray], metric: str,
                 precision: str) -> tuple:
    """kNN panels (rows = points): (A, B, col_bias, row_norm2) as in :func:`congruence._engine.point_panels`."""
    xp = ctx.xp
    d = dp.shape[1]

    def panel(da: DeviceArray, **kw: Any) -> Panel:
        rows, k = point_panel_shape(da.shape[0], d)
        return standardize(cu, ctx, view_of(da), precision, rows, k, **kw)

    if metric == "cosine":  # rows scaled to unit norm; zero rows stay zero (similarity 0)
        def unit(da: DeviceArray) -> Panel:
            ss = moments(cu, ctx, view_of(da).T, da.name, outputs=("sumsq",))["sumsq"]  # per point
            return panel(da, row_scale=inverse_sqrt_or_zero(xp, ss == 0, ss))

        a = unit(dp)
        return a, (a if dq is None else unit(dq)), None, None
    mu = moments(cu, ctx, view_of(dp), dp.name, outputs=("mean",))["mean"]  # per dimension
    if dq is not None:
        mu = moments(cu, ctx, view_of(dq), dq.name, outputs=("mean",))["mean"]  # centre by the references
    if metric == "inner":
        a = panel(dp)
        return a, (a if dq is None else panel(dq)), None, None
    a = panel(dp, col_shift=mu)
    b = a if dq is None else panel(dq, col_shift=mu)
    na2 = panel_sumsq(cu, ctx, a, d, precision)
    nb2 = na2 if dq is None else panel_sumsq(cu, ctx, b, d, precision)
    return a, b, -0.5 * nb2, na2


def _check_pair(a: Panel, b: Panel) -> None:
    if a.k != b.k:  # pragma: no cover - the callers build matching panels
        raise AssertionError("panels differ in their reduction dimension")


def run_dense(cu: Any, ctx: D.Context, precision: str, a: Panel, b: Panel, *, lo: float, hi: float, out: Any = None,
              accumulate: bool = False) -> Any:
    """Dense a·bᵀ (or += into float64). When a is b only the upper tiles are computed and mirrored."""
    _check_pair(a, b)
    code = FLOAT64 if accumulate else value_code(precision)
    if out is None:
        out = ctx.empty((a.n, b.n), code_dtype(code))
    cu.pairwise_dense(ctx.device, ctx.stream, precision_code(precision), a.ptr, a.rows, b.ptr, b.rows, a.k, a.ld,
                      b.ld, a.n, b.n, float(lo), float(hi), ctx.address(out), code, b.n, bool(accumulate),
                      a.ptr == b.ptr)
    return out


def run_topk(cu: Any, ctx: D.Context, precision: str, a: Panel, b: Panel, k: int, *, absolute: bool, col_bias: Any,
             col_valid: Any, exclude: bool, lo: float, hi: float, segments: int) -> tuple:
    _check_pair(a, b)
    vdt = code_dtype(value_code(precision))
    values = ctx.empty((a.n, k), vdt)
    indices = ctx.empty((a.n, k), "int64")
    shape = topk_scratch_shape(a.n, k, segments)
    sv = ctx.empty(shape, vdt)
    si = ctx.empty(shape, "int32")
    cu.pairwise_topk(ctx.device, ctx.stream, precision_code(precision), a.ptr, a.rows, b.ptr, b.rows, a.k, a.ld, b.ld,
                     a.n, b.n, int(k), bool(absolute), ctx.address(col_bias), ctx.address(col_valid), bool(exclude),
                     float(lo), float(hi), ctx.address(values), ctx.address(indices), int(segments), ctx.address(sv),
                     ctx.address(si))
    return values, indices


def canonical_order(xp: Any, values: Any, indices: Any, *, descending: bool) -> tuple:
    """Re-sort every row by (value, index) (the device twin of :func:`congruence._engine.canonical_order`).

    Two plain argsorts, no stability needed: first by value, then by the unique key
    (rank of the value's run) x (n + 1) + index. Unfilled slots (NaN, -1) stay last."""
    key = xp.astype(values, "float64")
    if descending:
        key = -key
    key = xp.where(xp.isnan(key), float("inf"), key)
    big = 1 << 40
    idx = xp.where(indices < 0, big, indices)
    o1 = xp.argsort(key, axis=-1)
    sk = xp.take_along_axis(key, o1, axis=-1)
    si = xp.take_along_axis(idx, o1, axis=-1)
    starts = sk[:, 1:] != sk[:, :-1]
    first = xp.ones((sk.shape[0], 1), "bool")
    run = xp.cumsum(xp.astype(xp.concatenate([first, starts], axis=1), "int64"), axis=-1)
    o2 = xp.argsort(run * (big + 1) + si, axis=-1)
    order = xp.take_along_axis(o1, o2, axis=-1)
    return xp.take_along_axis(values, order, axis=-1), xp.take_along_axis(indices, order, axis=-1)


def sparse_coo(ctx: D.Context, rows: Any, cols: Any, vals: Any, shape: tuple) -> Any:
    """Pairs sorted by (i, j) as a torch sparse COO tensor or a cupyx.scipy.sparse.coo_matrix."""
    if ctx.library == "torch":
        torch = ctx.xp.m
        idx = torch.stack([rows, cols])
        try:  # sorted and unique by construction: coalesced, no invariant check needed
            return torch.sparse_coo_tensor(idx, vals, shape, is_coalesced=True, check_invariants=False)
        except TypeError:  # older torch without is_coalesced
            return torch.sparse_coo_tensor(idx, vals, shape).coalesce()
    import cupyx.scipy.sparse

    m = cupyx.scipy.sparse.coo_matrix((vals, (rows, cols)), shape=shape)  # cupyx keeps int32 indices
    m.has_canonical_format = True  # sorted by (row, col), no duplicates
    return m


# ============================================================================ entry points


@dataclass
class FeaturePrep:
    cu: Any
    ctx: D.Context
    dx: DeviceArray
    a: Panel
    b: Panel
    symmetric: bool
    metric: str
    precision: str
    budget: int
    panel_bytes: int


def _bounds(bounded: bool) -> tuple[float, float]:
    return (-1.0, 1.0) if bounded else (-math.inf, math.inf)


def prepare_features(X: Any, Y: Any, *, metric: str, precision: Optional[str], ddof: int, zero_var: str,
                     memory_limit: Optional[float], num_threads: Optional[int]) -> FeaturePrep:
    E.check_choice(metric, E.FEATURE_METRICS, "metric")
    E.check_choice(zero_var, E.ZERO_VAR_POLICIES, "zero_var")
    validate_common(precision=precision, memory_limit=memory_limit, num_threads=num_threads)
    cu = load("X")
    ctx, arrays = device_inputs(cu, {"X": X, "Y": Y})
    with ctx.activate():
        dx, dy = arrays["X"], arrays.get("Y")
        check_matrix(dx, min_rows=2)
        if dy is not None:
            check_matrix(dy, min_rows=2)
            if dy.shape[0] != dx.shape[0]:
                raise ValueError(
                    f"X and Y must have the same number of samples (rows); got {dx.shape[0]} and {dy.shape[0]}"
                )
        codes = [dx.code] + ([] if dy is None else [dy.code])
        prec = resolve_precision(precision, codes, lambda: cu.default_precision(ctx.device))
        budget = resolve_budget(memory_limit, ctx)
        n = dx.shape[0]
        widths = [dx.shape[1]] + ([] if dy is None else [dy.shape[1]])
        pbytes = sum(panel_nbytes(feature_panel_shape(n, w)[0], feature_panel_shape(n, w)[1], prec) for w in widths)
        check_budget(pbytes, budget, "the standardised (padded) copies of the inputs")
        kw = dict(ddof=ddof, zero_var=zero_var)
        a = feature_panel(cu, ctx, dx, metric, prec, **kw)
        b = a if dy is None else feature_panel(cu, ctx, dy, metric, prec, **kw)
    return FeaturePrep(cu, ctx, dx, a, b, dy is None, metric, prec, budget, pbytes)


def _bounded(metric: str) -> bool:
    return metric in ("pearson", "cosine")


def correlation(X: Any, Y: Any, **kw: Any) -> Any:
    prep = prepare_features(X, Y, **kw)
    a, b, ctx = prep.a, prep.b, prep.ctx
    with ctx.activate():
        out_bytes = a.n * b.n * itemsize_of(value_code(prep.precision))
        check_budget(out_bytes + prep.panel_bytes, prep.budget, f"a dense {a.n} x {b.n} result")
        lo, hi = _bounds(_bounded(prep.metric))
        out = run_dense(prep.cu, ctx, prep.precision, a, b, lo=lo, hi=hi)
        if a.invalid is not None:
            out[a.invalid, :] = ctx.xp.nan
        if b.invalid is not None:
            out[:, b.invalid] = ctx.xp.nan
    return out


def _valid_mask(ctx: D.Context, invalid: Any) -> Any:
    return None if invalid is None else ctx.xp.astype(~invalid, "uint8")


def topk_correlation(X: Any, Y: Any, k: int, *, absolute: bool, axis: int, exclude_self: Optional[bool],
                     **kw: Any) -> tuple:
    prep = prepare_features(X, Y, **kw)
    ctx, cu = prep.ctx, prep.cu
    rows, cols = (prep.a, prep.b) if axis == 1 else (prep.b, prep.a)
    with ctx.activate():
        exclude = E.exclusion(exclude_self, prep.symmetric, rows.n, cols.n)
        k = E.resolve_k(k, cols.n - (1 if exclude else 0))
        check_k(k)
        out_bytes = topk_output_nbytes(rows.n, k, prep.precision)
        check_budget(prep.panel_bytes + out_bytes + topk_scratch_nbytes(rows.n, k, 1, prep.precision), prep.budget,
                     "the standardised inputs plus the top-k outputs and lists")
        segments = plan_topk_segments(rows.n, cols.n, k, multiprocessors(cu, ctx.device), prep.precision,
                                      prep.budget - prep.panel_bytes - out_bytes)
        lo, hi = _bounds(_bounded(prep.metric))
        values, indices = run_topk(cu, ctx, prep.precision, rows, cols, k, absolute=absolute, col_bias=None,
                                   col_valid=_valid_mask(ctx, cols.invalid), exclude=exclude, lo=lo, hi=hi,
                                   segments=segments)
        if rows.invalid is not None:
            values[rows.invalid] = ctx.xp.nan
            indices[rows.invalid] = -1
    return values, indices


def correlation_pairs(X: Any, Y: Any, threshold: float, *, absolute: bool, exclude_self: Optional[bool],
                      max_pairs: Optional[int], **kw: Any) -> Any:
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer))
                                  or max_pairs < 0):
        raise ValueError(f"max_pairs must be a non-negative integer or None; got {max_pairs!r}")
    prep = prepare_features(X, Y, **kw)
    ctx, cu, a, b = prep.ctx, prep.cu, prep.a, prep.b
    xp = ctx.xp
    with ctx.activate():
        exclude = E.exclusion(exclude_self, prep.symmetric, a.n, b.n)
        fixed = prep.panel_bytes
        budget_pairs = max(0, (prep.budget - fixed) // PAIR_BYTES)
        max_pairs = budget_pairs if max_pairs is None else int(max_pairs)
        valid = _valid_mask(ctx, b.invalid)
        vdt = code_dtype(value_code(prep.precision))
        lo, hi = _bounds(_bounded(prep.metric))

        def run(capacity: int) -> tuple:
            n_alloc = max(capacity, 1)
            r, c, v = ctx.empty((n_alloc,), "int64"), ctx.empty((n_alloc,), "int64"), ctx.empty((n_alloc,), vdt)
            counter = ctx.zeros((1,), "int64")
            count = cu.pairwise_threshold(
                ctx.device, ctx.stream, precision_code(prep.precision), a.ptr, a.rows, b.ptr, b.rows, a.k, a.ld, b.ld,
                a.n, b.n, bool(absolute), ctx.address(valid), exclude, lo, hi, float(threshold), ctx.address(r),
                ctx.address(c), ctx.address(v), int(capacity), ctx.address(counter),
            )
            return int(count), (r, c, v)

        count, (r, c, v) = collect_pairs(run, max_pairs=max_pairs, capacity=threshold_capacity(max_pairs, budget_pairs),
                                         threshold=threshold, fixed_bytes=fixed, budget=prep.budget)
        r, c, v = r[:count], c[:count], v[:count]
        if a.invalid is not None and count:
            keep = ~a.invalid[r]
            r, c, v = r[keep], c[keep], v[keep]
        order = xp.argsort(r * b.n + c, axis=-1)
        r, c, v = r[order], c[order], v[order]
        return sparse_coo(ctx, r, c, v, (a.n, b.n))


def knn(P: Any, Q: Any, k: int, *, metric: str, exclude_self: Optional[bool], precision: Optional[str],
        memory_limit: Optional[float], num_threads: Optional[int]) -> tuple:
    E.check_choice(metric, E.POINT_METRICS, "metric")
    validate_common(precision=precision, memory_limit=memory_limit, num_threads=num_threads)
    cu = load("P")
    ctx, arrays = device_inputs(cu, {"P": P, "Q": Q})
    xp = ctx.xp
    what = "(n_points, n_dims)"
    with ctx.activate():
        dp, dq = arrays["P"], arrays.get("Q")
        check_matrix(dp, what=what)
        if dq is not None:
            check_matrix(dq, what=what)
            E.check_same_dims(dp.shape[1], dq.shape[1])
        codes = [dp.code] + ([] if dq is None else [dq.code])
        prec = resolve_precision(precision, codes, lambda: cu.default_precision(ctx.device))
        n_p = dp.shape[0]
        n_q = n_p if dq is None else dq.shape[0]
        exclude = E.exclusion(exclude_self, dq is None, n_p, n_q, points=True)
        k = E.resolve_k(k, n_q - (1 if exclude else 0))
        check_k(k)
        budget = resolve_budget(memory_limit, ctx)
        d = dp.shape[1]
        widths = [n_p] + ([] if dq is None else [n_q])
        pbytes = sum(panel_nbytes(*point_panel_shape(w, d), prec) for w in widths) + 16 * sum(widths)
        out_bytes = topk_output_nbytes(n_p, k, prec)
        check_budget(pbytes, budget, "the transposed (padded) copies of the points")
        check_budget(pbytes + out_bytes + topk_scratch_nbytes(n_p, k, 1, prec), budget,
                     "the point panels plus the kNN outputs and lists")
        a, b, bias, a_norm2 = point_panels(cu, ctx, dp, dq, metric, prec)
        segments = plan_topk_segments(n_p, n_q, k, multiprocessors(cu, ctx.device), prec, budget - pbytes - out_bytes)
        lo, hi = _bounds(metric == "cosine")
        values, indices = run_topk(cu, ctx, prec, a, b, k, absolute=False, col_bias=bias, col_valid=None,
                                   exclude=exclude, lo=lo, hi=hi, segments=segments)
        if metric == "sqeuclidean":
            d2 = xp.maximum(a_norm2[:, None] - 2.0 * xp.astype(values, "float64"), 0.0)
            values = xp.astype(d2, code_dtype(value_code(prec)))
            values, indices = canonical_order(xp, values, indices, descending=False)  # rounding can create ties
        values[indices < 0] = xp.nan
    return values, indices


def column_stats(X: Any, *, ddof: int, num_threads: Optional[int]) -> dict:
    resolve_threads(num_threads)
    cu = load("X")
    ctx, arrays = device_inputs(cu, {"X": X})
    d = arrays["X"]
    xp = ctx.xp
    with ctx.activate():
        check_matrix(d, min_rows=2)
        n = d.shape[0]
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not (0 <= ddof < n):
            raise ValueError(f"ddof must be an integer with 0 <= ddof < n_samples ({n}); got {ddof!r}")
        mom = moments(cu, ctx, view_of(d), d.name)
        var = mom["m2"] / (n - int(ddof))
        return {"n_samples": n, "mean": mom["mean"], "var": var, "std": xp.sqrt(var), "sumsq": mom["sumsq"],
                "constant": constant_mask(xp, n, mom["m2"], mom["sumsq"])}


# ============================================================================ cross statistics


def cross_shift(cu: Any, ctx: D.Context, d: DeviceArray) -> Any:
    """Column means of the first <= 1024 rows (METHODS.md §1.2): the CrossStats shift."""
    return moments(cu, ctx, view_of(d).row_block(0, min(d.shape[0], 1024)), d.name, outputs=("mean",))["mean"]


def cross_update(cu: Any, ctx: D.Context, dx: DeviceArray, dy: DeviceArray, *, sx: Any, sy: Any, a: Any, b: Any,
                 gxx: Any, gxy: Any, gyy: Any, precision: str, cross_only: bool, available_bytes: int) -> None:
    """Add one batch to device CrossStats accumulators, in place.

    a += Σ(x − s) from the raw data in float64 (column_moments, which also rejects NaN/Inf before
    anything is touched); G_xy += UᵀV, G_xx += UᵀU, G_yy += VᵀV through ``pairwise_dense(...,
    accumulate=True)`` on shift-only panels, over row chunks (:func:`cross_chunk_rows`). With
    ``cross_only`` the diagonals come from the float64 moments: Σ(x − s)² = m2 + (Σ(x − s))²/n."""
    n, p = dx.shape
    q = dy.shape[1]
    outs = ("sum", "m2") if cross_only else ("sum",)
    mx = moments(cu, ctx, view_of(dx), "X", shift=sx, outputs=outs)
    my = moments(cu, ctx, view_of(dy), "Y", shift=sy, outputs=outs)
    chunk = cross_chunk_rows(n, p, q, precision, available_bytes)
    ld = padded(chunk, PANEL_K_ALIGN)
    px, py = padded(p, PANEL_ROW_ALIGN), padded(q, PANEL_ROW_ALIGN)
    pdt = code_dtype(panel_code(precision))
    ux, uy = ctx.empty((px, ld), pdt), ctx.empty((py, ld), pdt)
    vx, vy = view_of(dx), view_of(dy)
    inf = math.inf
    for r0 in range(0, n, chunk):
        rows = min(chunk, n - r0)
        k = padded(rows, PANEL_K_ALIGN)
        U = standardize(cu, ctx, vx.row_block(r0, rows).T, precision, px, k, row_shift=sx, out=ux, ld=ld)
        V = standardize(cu, ctx, vy.row_block(r0, rows).T, precision, py, k, row_shift=sy, out=uy, ld=ld)
        run_dense(cu, ctx, precision, U, V, lo=-inf, hi=inf, out=gxy, accumulate=True)
        if not cross_only:
            run_dense(cu, ctx, precision, U, U, lo=-inf, hi=inf, out=gxx, accumulate=True)
            run_dense(cu, ctx, precision, V, V, lo=-inf, hi=inf, out=gyy, accumulate=True)
    if cross_only:
        gxx += mx["m2"] + mx["sum"] * mx["sum"] / n
        gyy += my["m2"] + my["sum"] * my["sum"] / n
    a += mx["sum"]
    b += my["sum"]
