"""k nearest neighbours between points (rows), on the same tiled engine as the correlations."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _cuda_engine as CE
from . import _engine as E
from ._arrays import HostArray, as_host_array, check_matrix, inputs_on_device, is_dask_array, wrap_like
from ._resources import blas_threads, resolve_memory_limit, resolve_threads

__all__ = ["knn"]


def knn(
    P: Any,
    Q: Any = None,
    k: int = 8,
    *,
    metric: str = "sqeuclidean",
    exclude_self: Optional[bool] = None,
    precision: Optional[str] = None,
    memory_limit: Optional[float] = None,
    num_threads: Optional[int] = None,
) -> tuple[Any, Any]:
    """The k nearest rows of Q for every row of P (METHODS.md §1.5).

    Parameters
    ----------
    P : array, shape (n_p, d)
        Query points (rows); any float dtype and strides; host or GPU (torch CUDA tensors, cupy
        arrays, ``__cuda_array_interface__`` / DLPack CUDA objects: see
        :mod:`congruence.pairwise` for streams, devices and result types).
    Q : array, shape (n_q, d), optional
        Reference points, on the same device as P. Default: P itself (a self-join that excludes
        each point by index, not by zero distance).
    k : int
        Neighbours per query, 1 ≤ k ≤ number of candidates (on the GPU also k ≤ 256).
    metric : {"sqeuclidean", "inner", "cosine"}
        ``d² = ‖a‖² + ‖b‖² − 2aᵀb`` clamped at 0, computed after centring both sets by the reference
        mean (distances unchanged, cancellation removed); inner product (larger is nearer); cosine =
        inner product of L2-normalised rows (a zero row has similarity 0 to everything).
    exclude_self : bool, optional
        Skip j == i. Default: True for a self-join (Q None), else False.
    precision, memory_limit, num_threads
        As in :func:`congruence.correlation` (GPU inputs also take "3xtf32", "tf32", "bf16";
        ``num_threads`` is ignored for them).

    Returns
    -------
    values : array, shape (n_p, k)
        Ascending squared distances (sqeuclidean) or descending similarities.
    indices : array of int64, shape (n_p, k)
        Ties resolve to the lowest index.

    Notes
    -----
    float32 squared distances carry an absolute error of about 1e-7·(‖a‖² + ‖b‖²) of the centred
    points, so distances much smaller than the spread of the data are resolved less precisely than
    with explicit differences; use ``precision="float64"`` when that matters.
    """
    if is_dask_array(P) or is_dask_array(Q):
        from .distributed import _dispatch

        return _dispatch.points(P, Q, k, metric=metric, exclude_self=exclude_self, precision=precision,
                                memory_limit=memory_limit, num_threads=num_threads)
    if inputs_on_device(P=P, Q=Q):
        return CE.knn(P, Q, k, metric=metric, exclude_self=exclude_self, precision=precision,
                      memory_limit=memory_limit, num_threads=num_threads)
    E.check_choice(metric, E.POINT_METRICS, "metric")
    threads = resolve_threads(num_threads)
    budget = resolve_memory_limit(memory_limit)
    what = "(n_points, n_dims)"
    hp = as_host_array(P, "P")
    check_matrix(hp, what=what)
    hq = None
    if Q is not None:
        hq = as_host_array(Q, "Q")
        check_matrix(hq, what=what)
        E.check_same_dims(hp.shape[1], hq.shape[1])
    dtype = E.resolve_precision(precision, *([hp] if hq is None else [hp, hq]))
    n_p = hp.shape[0]
    n_q = n_p if hq is None else hq.shape[0]
    exclude = E.exclusion(exclude_self, hq is None, n_p, n_q, points=True)
    k = E.resolve_k(k, n_q - (1 if exclude else 0))
    values, indices = host_knn(hp, hq, k, metric=metric, exclude=exclude, dtype=dtype, threads=threads, budget=budget)
    return wrap_like(values, hp), wrap_like(indices, hp)


def host_knn(hp: HostArray, hq: Optional[HostArray], k: int, *, metric: str, exclude: bool, dtype: np.dtype,
             threads: int, budget: int, centre: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The CPU kNN on validated inputs (``hq`` None: a self-join); ``centre`` as in
    :func:`congruence._engine.point_panels`. Returns numpy (values, indices)."""
    n_p = hp.shape[0]
    n_q = n_p if hq is None else hq.shape[0]
    widths = [n_p] + ([] if hq is None else [n_q])
    E.check_fits(E.estimate_panel_bytes(hp.shape[1], widths, dtype), budget, "the transposed copies of the points")
    A, B, bias, a_norm2 = E.point_panels(hp, hq, metric, dtype, threads, centre)
    plan = E.plan_reduction(n_p, n_q, A.shape[0], dtype, threads, budget,
                            E.panel_bytes(A, B) + n_p * k * (dtype.itemsize + 8), k * 24)
    with blas_threads(1):
        values, indices = E.run_topk(A, B, k, False, bias, None, exclude, plan, threads, clip=metric == "cosine")
    if metric == "sqeuclidean":
        d2 = a_norm2[:, None] - 2.0 * values.astype(np.float64)
        np.maximum(d2, 0.0, out=d2)
        values = d2.astype(dtype)
        E.canonical_order(values, indices, descending=False)  # rounding in d² can create ties
    values[indices < 0] = np.nan
    return values, indices
