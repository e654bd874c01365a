"""Pairwise statistics between the features (columns) of two activation matrices.

All functions run on a tiled engine: the product between standardised panels is computed tile by
tile and reduced on the fly, so the reductions (:func:`topk_correlation`, :func:`max_correlation`,
:func:`correlation_pairs`) never allocate ``n_x × n_y``. Host inputs (numpy arrays, CPU torch
tensors, array-protocol objects) run on the CPU engine (OpenMP over the BLAS); GPU inputs run on
the CUDA engine.

GPU inputs
----------
torch CUDA tensors, cupy arrays and any object exposing ``__cuda_array_interface__`` or a DLPack
CUDA device are read in place (zero-copy, any strides; cupy's negative strides too). All inputs of
one call must be on the same device: host and GPU inputs mixed, or inputs on two GPUs, raise
``ValueError`` naming the arguments (nothing is ever copied between host and GPU silently). The
work is queued on the caller's *current stream* (``torch.cuda.current_stream()`` for torch,
``cupy.cuda.get_current_stream()`` for cupy and the protocol objects); inputs produced on another
stream are waited on with an event. The statistics pass copies one NaN/Inf flag to the host (a
stream synchronisation), :func:`correlation_pairs` also the pair count; nothing else synchronises.
Results are arrays of the caller's library on the same device (torch in -> torch out; cupy,
``__cuda_array_interface__`` or DLPack in -> cupy out). ``num_threads`` is ignored for GPU inputs;
``memory_limit`` bounds what the call allocates on the device (default: 80% of the free device
memory plus the library's pooled free memory). Top-k reductions on the GPU take k ≤ 256.

Dask inputs
-----------
``dask.array`` inputs (either argument) are computed by output blocks on the active Dask scheduler
by :mod:`congruence.distributed`; ``num_threads`` is then the threads per task and
``memory_limit`` each task's budget. :func:`correlation` returns a lazy dask array, the
reductions numpy results.

Precision modes
---------------
Statistics (means, norms, the shifts of the centring) are always accumulated in float64 and the
data are centred and scaled in float64 before the single rounding to the compute precision
(METHODS.md §1.2), so the error bounds below do not grow with |mean|/std.

CPU engine:

``"float32"`` (default unless every input is float64): rounded to float32, multiplied by the BLAS's
sgemm over at most 4096 samples at a time, the partial products summed in float64. Measured error
against a float64 reference on offset data (|mean|/std = 1e3, 4096 samples): ≤ 5e-7; expect
roughly ``1e-7·sqrt(min(n, 4096))``.
``"float64"``: the same with dgemm; error ~1e-15.

CUDA engine (default: float64 if every input is float64, else ``"3xtf32"`` on compute capability
≥ 8.0 and ``"float32"`` below). The bounds are the design targets from METHODS.md §1.2's
measurements (absolute error of correlations, relative to the statistic's scale for covariance);
they are what the GPU test suite checks, and they have **not yet been verified on a GPU**:

``"float32"``: SIMT FP32 fused multiply-adds over all samples in one pass: ≈ ``1e-7·sqrt(n)``.
``"3xtf32"``: tensor cores with each float32 split into two TF32 numbers (three products), about
float32 accuracy: ≈ 1e-6.
``"tf32"``: tensor cores on inputs rounded to TF32 (10-bit mantissa) after centring: ≈ 1e-5…1e-4.
``"bf16"``: bfloat16 panels (8-bit mantissa) after centring, FP32 accumulation: ≈ 1e-3…1e-2.
``"float64"``: SIMT FP64: ≈ 1e-15.
``"tf32"``, ``"3xtf32"`` and ``"bf16"`` exist only on the GPU; the CPU engine refuses them with a
ValueError. Dense and top-k values are float32 for every GPU mode except float64.

References
----------
METHODS.md §1 (definitions, safe centring, zero-variance policy, reductions).
Chan, Golub & LeVeque (1983), "Algorithms for computing the sample variance".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _cuda_engine as CE
from . import _engine as E
from ._arrays import HostArray, as_host_array, check_matrix, inputs_on_device, is_dask_array, wrap_like
from ._resources import blas_threads, resolve_memory_limit, resolve_threads

__all__ = ["correlation", "topk_correlation", "max_correlation", "correlation_pairs"]


@dataclass
class _Prepared:
    hx: HostArray
    A: E.Panel
    B: E.Panel
    symmetric: bool
    metric: str
    threads: int
    budget: int


def _prepare(X, Y, *, metric, precision, ddof, zero_var, num_threads, memory_limit) -> _Prepared:
    E.check_choice(metric, E.FEATURE_METRICS, "metric")
    E.check_choice(zero_var, E.ZERO_VAR_POLICIES, "zero_var")
    threads = resolve_threads(num_threads)
    budget = resolve_memory_limit(memory_limit)
    hx = as_host_array(X, "X")
    check_matrix(hx, min_rows=2)
    hy = None
    if Y is not None:
        hy = as_host_array(Y, "Y")
        check_matrix(hy, min_rows=2)
        if hy.shape[0] != hx.shape[0]:
            raise ValueError(
                f"X and Y must have the same number of samples (rows); got {hx.shape[0]} and {hy.shape[0]}"
            )
    dtype = E.resolve_precision(precision, *([hx] if hy is None else [hx, hy]))
    widths = [hx.shape[1]] + ([] if hy is None else [hy.shape[1]])
    E.check_fits(E.estimate_panel_bytes(hx.shape[0], widths, dtype), budget, "the standardised copies of the inputs")
    kw = dict(ddof=ddof, zero_var=zero_var, num_threads=threads)
    A = E.feature_panel(hx, metric, dtype, **kw)
    B = A if hy is None else E.feature_panel(hy, metric, dtype, **kw)
    return _Prepared(hx, A, B, hy is None, metric, threads, budget)


def _bounded(metric: str) -> bool:
    return metric in ("pearson", "cosine")


def correlation(
    X: Any,
    Y: Any = None,
    *,
    metric: str = "pearson",
    precision: Optional[str] = None,
    ddof: int = 1,
    zero_var: str = "zero",
    memory_limit: Optional[float] = None,
    num_threads: Optional[int] = None,
) -> Any:
    """Dense matrix of a pairwise statistic between the columns of X and Y.

    Parameters
    ----------
    X : array, shape (n_samples, n_x)
        numpy array, torch tensor (CPU or CUDA), cupy array or array-protocol object
        (``__array__``, ``__dlpack__``, ``__cuda_array_interface__``); float16, bfloat16,
        float32 or float64; any strides (read in place, never copied as a whole).
    Y : array, shape (n_samples, n_y), optional
        Defaults to X (the symmetric self-matrix; on the CPU computed with half the
        multiply-adds). Must be on the same device as X.
    metric : {"pearson", "cosine", "covariance"}
        ``r_ij = C_ij / (σ_i τ_j)``; ``c_ij = <x_i, y_j> / (‖x_i‖ ‖y_j‖)`` (uncentred);
        ``C_ij = Σ_s (X_si − μ_i)(Y_sj − ν_j) / (n − ddof)``.
    precision : {"float32", "float64", "3xtf32", "tf32", "bf16"}, optional
        Compute precision (see the module docstring for each mode's error bound). Default:
        float64 if every input is float64, else float32 on the CPU and 3xtf32 on GPUs of compute
        capability ≥ 8.0 (float32 below). "3xtf32", "tf32" and "bf16" need GPU inputs.
    ddof : int
        Delta degrees of freedom for ``metric="covariance"``.
    zero_var : {"zero", "nan", "raise"}
        Treatment of constant features (zero norm for cosine), where pearson/cosine is undefined:
        0 with a :class:`ConstantFeatureWarning` (default), NaN, or ValueError. Covariance is always
        defined.
    memory_limit : float, optional
        Bytes the call may allocate (default: half the available RAM; for GPU inputs 80% of the
        free device memory); refused up front if the output and the standardised copies do not
        fit.
    num_threads : int, optional
        Threads (default: all available cores). Ignored for GPU inputs.

    Returns
    -------
    array, shape (n_x, n_y)
        In the caller's array type and device (numpy, torch, cupy), dtype float64 for
        ``precision="float64"``, else float32. Pearson and cosine values are clipped to [-1, 1].
    """
    if is_dask_array(X) or is_dask_array(Y):
        from .distributed import _dispatch

        return _dispatch.features("correlation", X, Y, metric=metric, precision=precision, ddof=ddof,
                                  zero_var=zero_var, memory_limit=memory_limit, num_threads=num_threads)
    if inputs_on_device(X=X, Y=Y):
        return CE.correlation(X, Y, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
                              memory_limit=memory_limit, num_threads=num_threads)
    prep = _prepare(X, Y, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
                    num_threads=num_threads, memory_limit=memory_limit)
    A, B = prep.A.data, prep.B.data
    out_bytes = A.shape[1] * B.shape[1] * A.dtype.itemsize
    E.check_fits(out_bytes + E.panel_bytes(A, B), prep.budget, f"a dense {A.shape[1]} x {B.shape[1]} result")
    out = np.empty((A.shape[1], B.shape[1]), dtype=A.dtype)
    with blas_threads(prep.threads):
        E.run_dense(A, B, prep.symmetric, out, prep.threads)
    if _bounded(metric):
        np.clip(out, -1.0, 1.0, out=out)
    if prep.A.invalid is not None:
        out[prep.A.invalid, :] = np.nan
    if prep.B.invalid is not None:
        out[:, prep.B.invalid] = np.nan
    return wrap_like(out, prep.hx)


def topk_correlation(
    X: Any,
    Y: Any = None,
    k: int = 8,
    *,
    absolute: bool = False,
    axis: int = 1,
    exclude_self: Optional[bool] = None,
    metric: str = "pearson",
    precision: Optional[str] = None,
    ddof: int = 1,
    zero_var: str = "zero",
    memory_limit: Optional[float] = None,
    num_threads: Optional[int] = None,
) -> tuple[Any, Any]:
    """The k best partners of each feature, without materialising the n_x × n_y matrix.

    Parameters
    ----------
    X, Y : arrays, shapes (n_samples, n_x) and (n_samples, n_y)
        As in :func:`correlation`; Y defaults to X.
    k : int
        Partners per feature (1 ≤ k ≤ number of candidates; on the GPU also k ≤ 256).
    absolute : bool
        Rank by |value| (the signed value is returned).
    axis : {1, 0}
        1: for each feature of X its partners in Y (output rows = n_x); 0: for each feature of Y
        its partners in X (output rows = n_y).
    exclude_self : bool, optional
        Skip j == i. Default: True when Y is None (a feature is not its own partner), else False.
    metric, precision, ddof, zero_var, memory_limit, num_threads
        As in :func:`correlation`. With ``zero_var="nan"`` constant features are never partners and
        their own rows are all (NaN, -1).

    Returns
    -------
    values : array, shape (n_rows, k)
        Descending by value (by |value| when ``absolute``); dtype per ``precision``.
    indices : array of int64, shape (n_rows, k)
        Partner indices; ties resolve to the lowest index; unfilled slots are -1 (value NaN).

    Notes
    -----
    Cost: 2·n_samples·n_x·n_y flops at the BLAS rate plus a vectorised scan per tile; memory:
    the standardised inputs, one tile per thread (≤ 1024 × 2048) and the (n_rows, k) outputs.
    On the GPU, thread blocks own 128 rows and sweep a segment of the column tiles, keeping their
    running lists on chip; segments are merged in order (ties still go to the lowest index).
    """
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1; got {axis!r}")
    if is_dask_array(X) or is_dask_array(Y):
        from .distributed import _dispatch

        return _dispatch.features("topk_correlation", X, Y, k, absolute=absolute, axis=axis,
                                  exclude_self=exclude_self, metric=metric, precision=precision, ddof=ddof,
                                  zero_var=zero_var, memory_limit=memory_limit, num_threads=num_threads)
    if inputs_on_device(X=X, Y=Y):
        return CE.topk_correlation(X, Y, k, absolute=bool(absolute), axis=axis, exclude_self=exclude_self,
                                   metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
                                   memory_limit=memory_limit, num_threads=num_threads)
    prep = _prepare(X, Y, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
                    num_threads=num_threads, memory_limit=memory_limit)
    rows, cols = (prep.A, prep.B) if axis == 1 else (prep.B, prep.A)
    A, B = rows.data, cols.data
    na, nb = A.shape[1], B.shape[1]
    exclude = E.exclusion(exclude_self, prep.symmetric, na, nb)
    k = E.resolve_k(k, nb - (1 if exclude else 0))
    item = A.dtype.itemsize
    plan = E.plan_reduction(na, nb, A.shape[0], A.dtype, prep.threads, prep.budget,
                            E.panel_bytes(A, B) + na * k * (item + 8), k * 24)
    valid = None if cols.invalid is None else np.ascontiguousarray(~cols.invalid, dtype=np.uint8)
    with blas_threads(1):
        values, indices = E.run_topk(A, B, k, bool(absolute), None, valid, exclude, plan, prep.threads,
                                     clip=_bounded(metric))
    if rows.invalid is not None:
        values[rows.invalid] = np.nan
        indices[rows.invalid] = -1
    return wrap_like(values, prep.hx), wrap_like(indices, prep.hx)


def max_correlation(
    X: Any,
    Y: Any = None,
    *,
    absolute: bool = False,
    axis: int = 1,
    exclude_self: Optional[bool] = None,
    metric: str = "pearson",
    precision: Optional[str] = None,
    ddof: int = 1,
    zero_var: str = "zero",
    memory_limit: Optional[float] = None,
    num_threads: Optional[int] = None,
) -> tuple[Any, Any]:
    """Best partner of each feature: :func:`topk_correlation` with k = 1, squeezed.

    Returns
    -------
    values : array, shape (n_rows,)
    indices : array of int64, shape (n_rows,)
        Lowest index among equal maxima; -1 (value NaN) for rows with no valid partner.
    """
    values, indices = topk_correlation(
        X, Y, 1, absolute=absolute, axis=axis, exclude_self=exclude_self, metric=metric, precision=precision,
        ddof=ddof, zero_var=zero_var, memory_limit=memory_limit, num_threads=num_threads,
    )
    return values[:, 0], indices[:, 0]


def correlation_pairs(
    X: Any,
    Y: Any,
    threshold: float,
    *,
    absolute: bool = False,
    exclude_self: Optional[bool] = None,
    max_pairs: Optional[int] = None,
    metric: str = "pearson",
    precision: Optional[str] = None,
    ddof: int = 1,
    zero_var: str = "zero",
    memory_limit: Optional[float] = None,
    num_threads: Optional[int] = None,
) -> Any:
    """All feature pairs whose statistic reaches a threshold, as a sparse COO matrix.

    Parameters
    ----------
    X, Y : arrays, shapes (n_samples, n_x) and (n_samples, n_y)
        Y may be None (X against itself; the diagonal is excluded unless ``exclude_self=False``).
    threshold : float
        Keep (i, j) with value ≥ threshold (|value| ≥ threshold when ``absolute``).
    max_pairs : int, optional
        Refuse with :class:`MemoryBudgetError` beyond this many pairs (default: what fits in the
        memory budget at ~64 bytes a pair).
    Other parameters as in :func:`topk_correlation`.

    Returns
    -------
    scipy.sparse.coo_array (numpy input), torch sparse COO tensor (torch input, CPU or CUDA) or
    cupyx.scipy.sparse.coo_matrix (cupy / protocol GPU input; int32 indices, cupyx's convention)
        Shape (n_x, n_y), entries sorted by (i, j), values in the compute precision (float32 for
        every GPU mode but float64). On the GPU the kernel appends pairs to buffers sized for
        min(max_pairs, 2^22) pairs; when more qualify it is run once more with exact buffers.
    """
    E.check_threshold(threshold)
    if is_dask_array(X) or is_dask_array(Y):
        from .distributed import _dispatch

        return _dispatch.features("correlation_pairs", X, Y, threshold, absolute=absolute, exclude_self=exclude_self,
                                  max_pairs=max_pairs, metric=metric, precision=precision, ddof=ddof,
                                  zero_var=zero_var, memory_limit=memory_limit, num_threads=num_threads)
    if inputs_on_device(X=X, Y=Y):
        return CE.correlation_pairs(X, Y, threshold, absolute=bool(absolute), exclude_self=exclude_self,
                                    max_pairs=max_pairs, metric=metric, precision=precision, ddof=ddof,
                                    zero_var=zero_var, memory_limit=memory_limit, num_threads=num_threads)
    prep = _prepare(X, Y, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
                    num_threads=num_threads, memory_limit=memory_limit)
    A, B = prep.A.data, prep.B.data
    na, nb = A.shape[1], B.shape[1]
    exclude = E.exclusion(exclude_self, prep.symmetric, na, nb)
    fixed = E.panel_bytes(A, B)
    plan = E.plan_reduction(na, nb, A.shape[0], A.dtype, prep.threads, prep.budget, fixed, 64)
    if max_pairs is None:
        max_pairs = max(0, (prep.budget - fixed) // 64)
    elif isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer)) or max_pairs < 0:
        raise ValueError(f"max_pairs must be a non-negative integer or None; got {max_pairs!r}")
    valid = None if prep.B.invalid is None else np.ascontiguousarray(~prep.B.invalid, dtype=np.uint8)
    with blas_threads(1):
        rows, cols, vals = E.run_threshold(A, B, threshold, bool(absolute), None, valid, exclude, max_pairs,
                                           plan, prep.threads, clip=_bounded(metric))
    if prep.A.invalid is not None:
        keep = ~prep.A.invalid[rows]
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    return _coo(rows, cols, vals, (na, nb), prep.hx)


def _coo(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int], like: HostArray) -> Any:
    if like.kind == "torch":
        import torch

        idx = torch.from_numpy(np.stack([rows, cols]))
        try:
            return torch.sparse_coo_tensor(idx, torch.from_numpy(vals), shape, is_coalesced=True)
        except TypeError:  # older torch without is_coalesced
            return torch.sparse_coo_tensor(idx, torch.from_numpy(vals), shape).coalesce()
    import scipy.sparse

    return scipy.sparse.coo_array((vals, (rows, cols)), shape=shape)
