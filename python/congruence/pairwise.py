"""Pairwise statistics between the features (columns) of two activation matrices.

All functions run on the tiled CPU engine: the product between standardised panels is computed
tile by tile and reduced on the fly, so the reductions (:func:`topk_correlation`,
:func:`max_correlation`, :func:`correlation_pairs`) never allocate ``n_x × n_y``.

Precision modes
---------------
``"float32"`` (default unless every input is float64): data are centred and scaled in float64,
rounded to float32, multiplied by the BLAS's sgemm over at most 4096 samples at a time, and the
partial products are summed in float64. Measured error against a float64 reference on offset data
(|mean|/std = 1e3, 4096 samples): ≤ 5e-7; expect roughly ``1e-7·sqrt(min(n, 4096))``.
``"float64"``: the same with dgemm; error ~1e-15. Statistics are always accumulated in float64.

References
----------
METHODS.md §1 (definitions, safe centring, zero-variance policy, reductions).
Chan, Golub & LeVeque (1983), "Algorithms for computing the sample variance".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _engine as E
from ._arrays import HostArray, as_host_array, check_matrix, wrap_like
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
        numpy array, CPU torch tensor or array-protocol object; float16, bfloat16, float32 or
        float64; any strides (read in place, never copied as a whole).
    Y : array, shape (n_samples, n_y), optional
        Defaults to X (the symmetric self-matrix, computed with half the multiply-adds).
    metric : {"pearson", "cosine", "covariance"}
        ``r_ij = C_ij / (σ_i τ_j)``; ``c_ij = <x_i, y_j> / (‖x_i‖ ‖y_j‖)`` (uncentred);
        ``C_ij = Σ_s (X_si − μ_i)(Y_sj − ν_j) / (n − ddof)``.
    precision : {"float32", "float64"}, optional
        Compute precision (see the module docstring for error bounds). Default: float64 if every
        input is float64, else float32.
    ddof : int
        Delta degrees of freedom for ``metric="covariance"``.
    zero_var : {"zero", "nan", "raise"}
        Treatment of constant features (zero norm for cosine), where pearson/cosine is undefined:
        0 with a :class:`ConstantFeatureWarning` (default), NaN, or ValueError. Covariance is always
        defined.
    memory_limit : float, optional
        Bytes the call may allocate (default: half the available RAM); refused up front if the
        output and the standardised copies do not fit.
    num_threads : int, optional
        Threads (default: all available cores).

    Returns
    -------
    array, shape (n_x, n_y)
        In the caller's array type (numpy or torch), dtype float32 or float64 per ``precision``.
        Pearson and cosine values are clipped to [-1, 1].
    """
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


def _exclusion(exclude_self: Optional[bool], symmetric: bool, na: int, nb: int) -> bool:
    if exclude_self is None:
        return symmetric
    if exclude_self and na != nb:
        raise ValueError(f"exclude_self=True needs as many features in X as in Y; got {na} and {nb}")
    return bool(exclude_self)


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
        Partners per feature (1 ≤ k ≤ number of candidates).
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
    """
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1; got {axis!r}")
    prep = _prepare(X, Y, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
                    num_threads=num_threads, memory_limit=memory_limit)
    rows, cols = (prep.A, prep.B) if axis == 1 else (prep.B, prep.A)
    A, B = rows.data, cols.data
    na, nb = A.shape[1], B.shape[1]
    exclude = _exclusion(exclude_self, prep.symmetric, na, nb)
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
    scipy.sparse.coo_array (numpy input) or torch sparse COO tensor (torch input)
        Shape (n_x, n_y), entries sorted by (i, j), values in the compute precision.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")
    prep = _prepare(X, Y, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
                    num_threads=num_threads, memory_limit=memory_limit)
    A, B = prep.A.data, prep.B.data
    na, nb = A.shape[1], B.shape[1]
    exclude = _exclusion(exclude_self, prep.symmetric, na, nb)
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
