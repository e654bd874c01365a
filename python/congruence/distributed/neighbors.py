""":func:`congruence.knn` of dask arrays by output blocks (issue 9).

Points are rows, so the output blocks are (row chunk of P) × (row chunk of Q). ``dims="gather"``
rechunks each row block to all its dimensions and runs the single-node compiled kNN on one
block of P against one block of Q; ``"reduce"`` (for points too wide for a task) sums, over the
dimension chunks, float64 partial inner products of the centred points (centred by Q's mean from
a first moments pass, rounded to the compute precision as the single-node panels) together with
their squared norms, and forms d² = ‖a‖² + ‖b‖² − 2aᵀb (or the cosine, or the inner product) on
the sum. Lists of one row block are merged by a tree in the library's order (distances
ascending, similarities descending, ties to the lowest global index).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import numpy as np

from ._blocks import DEFAULT_TASK_MEMORY, dense_topk, merge_topk, resolve_dtype, stack_lists, wants_gather
from ._dask import check_dask_matrix, check_int, require_dask, tree_reduce
from ._moments import column_moments

__all__ = ["knn"]


def _gather_knn(pb: np.ndarray, qb: Optional[np.ndarray], k: int, q_offset: int, diagonal: bool,
                centre: Optional[np.ndarray], q_name: str, opts: dict, memory_limit: Optional[float]) -> tuple:
    """The single-node kNN of one block pair (``qb`` None: a diagonal self-join block), centred by
    the whole reference set's mean so that equal points in different blocks get equal distances."""
    from .._arrays import as_host_array
    from .._resources import resolve_memory_limit
    from ..neighbors import host_knn

    hq = None if qb is None else as_host_array(qb, q_name)
    v, i = host_knn(as_host_array(pb, "P"), hq, k, exclude=diagonal, centre=centre,
                    budget=resolve_memory_limit(memory_limit), **opts)
    return v, np.where(i >= 0, i + q_offset, -1)


def _partial_points(pb: np.ndarray, qb: np.ndarray, mu: Optional[np.ndarray], dtype: np.dtype, threads: int,
                    q_name: str) -> tuple:
    """One dimension chunk's float64 (AᵀB, ‖a‖², ‖b‖²) of the centred, rounded points."""
    from .. import _engine as E
    from .._arrays import as_host_array
    from .._resources import blas_threads

    A = E._transpose_panel(as_host_array(pb, "P"), dtype, threads, row_shift=mu)
    B = E._transpose_panel(as_host_array(qb, q_name), dtype, threads, row_shift=mu)
    G = np.zeros((A.shape[1], B.shape[1]))
    with blas_threads(1):
        E.accumulate_grams([(A, B, G)], threads)
    return G, E._panel_sumsq(A, threads), E._panel_sumsq(B, threads)


def _add_partials(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def _reduced_knn(parts: tuple, metric: str, dtype: np.dtype, k: int, q_offset: int, diagonal: bool) -> tuple:
    G, na2, nb2 = parts
    if metric == "sqeuclidean":
        S = np.maximum(na2[:, None] + nb2[None, :] - 2.0 * G, 0.0)
    elif metric == "cosine":  # a zero row has similarity 0 to everything
        from .._engine import inverse_sqrt

        S = np.clip(G * inverse_sqrt(na2, na2 == 0)[:, None] * inverse_sqrt(nb2, nb2 == 0)[None, :], -1.0, 1.0)
    else:
        S = G
    return dense_topk(S.astype(dtype), k, descending=metric != "sqeuclidean", absolute=False, diagonal=diagonal,
                      y_offset=q_offset)


def knn(P: Any, Q: Any = None, k: int = 8, *, metric: str = "sqeuclidean", exclude_self: Optional[bool] = None,
        precision: Optional[str] = None, dims: str = "auto", task_memory: float = DEFAULT_TASK_MEMORY,
        split_every: int = 4, task_threads: int = 1, memory_limit: Optional[float] = None,
        compute: bool = True) -> tuple:
    """:func:`congruence.knn` of dask arrays: the k nearest rows of Q for every row of P.

    Parameters
    ----------
    P : dask.array.Array, shape (n_p, d)
        Query points (rows), chunked along points, dimensions or both.
    Q : dask.array.Array, shape (n_q, d), optional
        Reference points; default P (a self-join that excludes each point by index).
    k, metric, exclude_self, precision
        As in :func:`congruence.knn`.
    dims : {"auto", "gather", "reduce"}
        "gather" rechunks each block of points to all its dimensions and runs the single-node kNN
        in one task; "reduce" sums partial products over dimension chunks. "auto" gathers unless
        the points are chunked along dimensions and a gathered task would hold more than
        ``task_memory`` bytes.
    task_memory, split_every, task_threads, memory_limit
        As in :func:`congruence.distributed.topk_correlation`.
    compute : bool
        Compute now (default); False returns one dask.delayed of the pair.

    Returns
    -------
    values : ndarray, shape (n_p, k)
        Ascending squared distances (sqeuclidean) or descending similarities.
    indices : ndarray of int64, shape (n_p, k)
        Global row indices of Q; ties to the lowest index.
    """
    dask = require_dask()
    from .. import _engine as E

    P = check_dask_matrix(P, "P")
    E.check_choice(metric, E.POINT_METRICS, "metric")
    check_int(k, "k", 1)
    check_int(split_every, "split_every", 2)
    check_int(task_threads, "task_threads", 1)
    self_join = Q is None
    Q = P if self_join else check_dask_matrix(Q, "Q")
    E.check_same_dims(P.shape[1], Q.shape[1])
    exclude = self_join if exclude_self is None else bool(exclude_self)
    if exclude and P.shape[0] != Q.shape[0]:
        raise ValueError("exclude_self needs P and Q with the same number of points (point i of P is point i of Q)")
    candidates = Q.shape[0] - (1 if exclude else 0)
    if k > candidates:
        raise ValueError(f"k={k} exceeds the {candidates} candidate neighbours per point")
    dtype = resolve_dtype(precision, P) if self_join else resolve_dtype(precision, P, Q)
    widest = max(P.chunks[0]) + (0 if self_join else max(Q.chunks[0]))
    split = P.numblocks[1] > 1 or Q.numblocks[1] > 1
    gather = wants_gather(dims, task_memory, P.shape[1] * widest * max(P.dtype.itemsize, Q.dtype.itemsize), split,
                          name="dims")
    q_rows = P.chunks[0] if (self_join or exclude) else Q.chunks[0]
    if gather:
        Pr = P.rechunk({1: -1})
        Qr = Pr if self_join else Q.rechunk({0: q_rows, 1: -1})
    else:
        Pr = P
        Qr = Pr if self_join else Q.rechunk({0: q_rows, 1: P.chunks[1]})
    # NaN/Inf checks at call time, and the reference mean every block is centred by.
    q_name = "P" if self_join else "Q"
    kw_m = dict(split_every=split_every, task_threads=task_threads)
    moments = dask.compute(*([column_moments(Q, q_name, **kw_m)] + ([] if self_join else [column_moments(P, "P", **kw_m)])))
    mu_all = moments[0].mean if metric == "sqeuclidean" else None
    po, qo = (np.concatenate([[0], np.cumsum(A.chunks[0])]) for A in (Pr, Qr))
    d_off = np.concatenate([[0], np.cumsum(Pr.chunks[1])])
    opts = dict(metric=metric, dtype=dtype, threads=int(task_threads))
    centre = None if mu_all is None else dask.delayed(mu_all, pure=True)  # one copy per worker, not per task
    pd_, qd = Pr.to_delayed(), Qr.to_delayed()
    block = dask.delayed(_gather_knn, pure=True)
    part = dask.delayed(_partial_points, pure=True)
    finish = dask.delayed(_reduced_knn, pure=True)
    merge = partial(merge_topk, k=int(k), descending=metric != "sqeuclidean")
    rows = []
    for bp in range(len(po) - 1):
        lists = []
        for bq in range(len(qo) - 1):
            diagonal = exclude and po[bp] == qo[bq]
            kb = min(int(k), int(qo[bq + 1] - qo[bq]) - (1 if diagonal else 0))
            if kb < 1:
                continue
            if gather:
                qb = None if (self_join and bp == bq) else qd[bq, 0]
                lists.append(block(pd_[bp, 0], qb, kb, int(qo[bq]), bool(diagonal), centre, q_name, opts, memory_limit))
                continue
            partials = [part(pd_[bp, c], qd[bq, c],
                             None if mu_all is None else np.ascontiguousarray(mu_all[d_off[c]:d_off[c + 1]]),
                             dtype, int(task_threads), q_name)
                        for c in range(len(d_off) - 1)]
            total = tree_reduce(partials, _add_partials, split_every)
            lists.append(finish(total, metric, dtype, kb, int(qo[bq]), bool(diagonal)))
        rows.append(tree_reduce(lists, merge, split_every))
    result = dask.delayed(stack_lists, pure=True)(*rows)
    return dask.compute(result)[0] if compute else result
