"""The pairwise engine on dask arrays by output blocks (DESIGN §6; issue 9).

:func:`correlation`, :func:`topk_correlation`, :func:`max_correlation` and
:func:`correlation_pairs` take dask arrays (samples along axis 0, features along axis 1, chunked
along either or both) and cut the n_x × n_y result along the column chunks of X and Y. Every
task returns only its block's reduced result — top-k lists, thresholded pairs, or the dense
block when the dense result was asked for — and no n_x × n_y array exists anywhere unless the
caller computes the dense result. See :mod:`._blocks` for the two routes a block takes
(``samples="gather"``: whole columns per task, the single-node compiled function on them;
``"reduce"``: float64 partial products per sample chunk summed by a tree).

Top-k lists of one row block are merged by a tree that keeps the library's order: value
(|value| with ``absolute``) descending, ties to the lowest global index, unfilled slots (NaN, −1)
last. A self-join (``Y`` None) gives Y the column chunks of X, so an excluded diagonal falls
inside the diagonal blocks; the dense and thresholded self-joins compute only the blocks on and
above the diagonal and mirror them.

Values agree with a single-machine call to the compute precision: float32 products over a
different blocking of the samples can differ in the last bits, so top-k *sets* and thresholded
pairs can differ from a single-machine run only between candidates tied (or at the threshold)
within float32 rounding; ``precision="float64"`` removes even that.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import numpy as np

from ._blocks import (DEFAULT_TASK_MEMORY, FeatureBlocks, dense_pairs, dense_topk, merge_topk, prepare_features, quiet,
                      reduced_statistic, stack_lists)
from ._dask import check_dask_matrix, check_int, require_dask, tree_reduce

__all__ = ["correlation", "topk_correlation", "max_correlation", "correlation_pairs"]

_ROUTE_DOC = """samples : {"auto", "gather", "reduce"}
        How a block meets the sample chunks: "gather" rechunks each column block to all its samples
        and runs the single-node engine in one task; "reduce" sums float64 partial products over
        sample chunks. "auto" (default) gathers unless the inputs are chunked along samples and a
        gathered task would hold more than ``task_memory`` bytes of input.
    task_memory : float
        Bytes of input one gathered task may hold under ``samples="auto"`` (default 1 GiB).
    split_every : int
        Fan-in of the tree reductions (moments, partial products, top-k merges).
    task_threads : int
        Threads each task's compiled engine uses (1 suits one worker process per core).
    memory_limit : float, optional
        Bytes each gathered task's single-node call may allocate (its default otherwise)."""


def _single_kwargs(fb: FeatureBlocks, metric: str, precision: Optional[str], ddof: int, zero_var: str,
                   task_threads: int, memory_limit: Optional[float]) -> dict:
    # The driver has applied zero_var already (global indices): "raise" found nothing to raise.
    return dict(metric=metric, precision=str(fb.dtype) if precision is None else precision, ddof=ddof,
                zero_var="zero" if zero_var == "raise" else zero_var, num_threads=int(task_threads),
                memory_limit=memory_limit)


def _common(X: Any, Y: Any, exclude: bool, metric, precision, ddof, zero_var, samples, task_memory, split_every,
            task_threads, names: tuple = ("X", "Y")) -> FeatureBlocks:
    require_dask()
    check_int(split_every, "split_every", 2)
    check_int(task_threads, "task_threads", 1)
    return prepare_features(X, Y, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var, exclude=exclude,
                            samples=samples, task_memory=task_memory, split_every=split_every,
                            task_threads=task_threads, names=names)


# ---------------------------------------------------------------------------------------------- dense


def _gather_dense(xb: np.ndarray, yb: Optional[np.ndarray], kw: dict) -> np.ndarray:
    from ..pairwise import correlation as single

    return np.asarray(quiet(single, xb, yb, **kw))


def correlation(X: Any, Y: Any = None, *, metric: str = "pearson", precision: Optional[str] = None, ddof: int = 1,
                zero_var: str = "zero", samples: str = "auto", task_memory: float = DEFAULT_TASK_MEMORY,
                split_every: int = 4, task_threads: int = 1, memory_limit: Optional[float] = None) -> Any:
    """:func:`congruence.correlation` of dask arrays, as a lazy dask array of output blocks.

    Parameters
    ----------
    X, Y : dask.array.Array, shapes (m, n_x) and (m, n_y)
        Y defaults to X (the symmetric self-matrix: only the blocks on and above the diagonal
        are computed, those below are their transposes).
    metric, precision, ddof, zero_var
        As in :func:`congruence.correlation`. The column statistics pass runs now, so NaN/Inf
        inputs and ``zero_var`` are reported at call time with global indices.
    {route}

    Returns
    -------
    dask.array.Array, shape (n_x, n_y)
        Chunked as X's columns × Y's columns; float64 for ``precision="float64"``, else float32.
        Compute it, store it (``to_zarr``) or reduce it further — blocks are made on demand.
    """
    import dask
    import dask.array as da

    fb = _common(X, Y, False, metric, precision, ddof, zero_var, samples, task_memory, split_every, task_threads)
    kw = _single_kwargs(fb, metric, precision, ddof, zero_var, task_threads, memory_limit)
    gather = dask.delayed(_gather_dense, pure=True)
    xd, yd = fb.x_blocks[0], fb.y_blocks[0]
    nbx, nby = len(fb.x_offsets) - 1, len(fb.y_offsets) - 1
    made: dict = {}
    for bx in range(nbx):
        for by in range(nby):
            if fb.symmetric and by < bx:
                continue
            if fb.gather:
                made[bx, by] = gather(xd[bx], None if (fb.symmetric and bx == by) else yd[by], kw)
            else:
                made[bx, by] = reduced_statistic(fb, bx, by, split_every=split_every, task_threads=task_threads)
    meta = np.empty((0, 0), dtype=fb.dtype)
    rows = []
    for bx in range(nbx):
        row = []
        for by in range(nby):
            shape = (fb.x_width(bx), fb.y_width(by))
            if fb.symmetric and by < bx:
                row.append(da.from_delayed(made[by, bx], shape=shape[::-1], dtype=fb.dtype, meta=meta).T)
            else:
                row.append(da.from_delayed(made[bx, by], shape=shape, dtype=fb.dtype, meta=meta))
        rows.append(row)
    return da.block(rows)


# ---------------------------------------------------------------------------------------------- top-k


def _gather_topk(xb: np.ndarray, yb: np.ndarray, k: int, y_offset: int, diagonal: bool, absolute: bool,
                 kw: dict) -> tuple:
    from ..pairwise import topk_correlation as single

    v, i = quiet(single, xb, yb, k, absolute=absolute, exclude_self=diagonal, **kw)
    v, i = np.asarray(v), np.asarray(i, dtype=np.int64)
    return v, np.where(i >= 0, i + y_offset, -1)


def _reduced_topk(S: np.ndarray, k: int, y_offset: int, diagonal: bool, absolute: bool) -> tuple:
    return dense_topk(S, k, descending=True, absolute=absolute, diagonal=diagonal, y_offset=y_offset)


def topk_correlation(X: Any, Y: Any = None, k: int = 8, *, absolute: bool = False, axis: int = 1,
                     exclude_self: Optional[bool] = None, metric: str = "pearson", precision: Optional[str] = None,
                     ddof: int = 1, zero_var: str = "zero", samples: str = "auto",
                     task_memory: float = DEFAULT_TASK_MEMORY, split_every: int = 4, task_threads: int = 1,
                     memory_limit: Optional[float] = None, compute: bool = True) -> tuple:
    """:func:`congruence.topk_correlation` of dask arrays (samples along axis 0).

    Parameters
    ----------
    X, Y : dask.array.Array, shapes (m, n_x) and (m, n_y)
        Chunked along features, samples or both; Y defaults to X (a self-join).
    k, absolute, axis, exclude_self, metric, precision, ddof, zero_var
        As in :func:`congruence.topk_correlation`.
    {route}
    compute : bool
        Compute now (default) and return numpy arrays; False returns one dask.delayed of the pair
        (the column statistics pass has run either way).

    Returns
    -------
    values : ndarray, shape (n_rows, k)
    indices : ndarray of int64, shape (n_rows, k)
        Global column indices; ties to the lowest index; unfilled slots −1 (value NaN).
    """
    dask = require_dask()
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1; got {axis!r}")
    names = ("X", "Y")
    if axis == 0 and Y is not None:  # rows are Y's features: the same blocks with the roles swapped
        X, Y, names = Y, X, ("Y", "X")
    check_int(k, "k", 1)
    self_join = Y is None
    exclude = self_join if exclude_self is None else bool(exclude_self)
    X = check_dask_matrix(X, names[0])
    n_y = X.shape[1] if self_join else check_dask_matrix(Y, names[1]).shape[1]
    candidates = n_y - (1 if exclude else 0)
    if k > candidates:  # before the statistics pass reads the data
        raise ValueError(f"k={k} exceeds the {candidates} candidate partners per feature")
    fb = _common(X, Y, exclude, metric, precision, ddof, zero_var, samples, task_memory, split_every, task_threads,
                 names)
    kw = _single_kwargs(fb, metric, precision, ddof, zero_var, task_threads, memory_limit)
    gather = dask.delayed(_gather_topk, pure=True)
    reduced = dask.delayed(_reduced_topk, pure=True)
    merge = partial(merge_topk, k=int(k), absolute=bool(absolute))
    xd, yd = fb.x_blocks[0], fb.y_blocks[0]
    rows = []
    for bx in range(len(fb.x_offsets) - 1):
        parts = []
        for by in range(len(fb.y_offsets) - 1):
            diagonal = exclude and fb.x_offsets[bx] == fb.y_offsets[by]
            kb = min(int(k), fb.y_width(by) - (1 if diagonal else 0))
            if kb < 1:
                continue
            y0 = int(fb.y_offsets[by])
            if fb.gather:
                parts.append(gather(xd[bx], yd[by], kb, y0, bool(diagonal), bool(absolute), kw))
            else:
                S = reduced_statistic(fb, bx, by, split_every=split_every, task_threads=task_threads)
                parts.append(reduced(S, kb, y0, bool(diagonal), bool(absolute)))
        rows.append(tree_reduce(parts, merge, split_every))
    # Rows of invalid features (zero_var="nan") come out (NaN, -1) from both routes.
    lists = dask.delayed(stack_lists, pure=True)(*rows)
    return dask.compute(lists)[0] if compute else lists


def max_correlation(X: Any, Y: Any = None, *, absolute: bool = False, axis: int = 1,
                    exclude_self: Optional[bool] = None, metric: str = "pearson", precision: Optional[str] = None,
                    ddof: int = 1, zero_var: str = "zero", samples: str = "auto",
                    task_memory: float = DEFAULT_TASK_MEMORY, split_every: int = 4, task_threads: int = 1,
                    memory_limit: Optional[float] = None) -> tuple:
    """Best partner of each feature: :func:`topk_correlation` with k = 1, squeezed.

    Returns
    -------
    values : ndarray, shape (n_rows,)
    indices : ndarray of int64, shape (n_rows,)
        Lowest index among equal maxima; −1 (value NaN) for rows with no valid partner.
    """
    v, i = topk_correlation(X, Y, 1, absolute=absolute, axis=axis, exclude_self=exclude_self, metric=metric,
                            precision=precision, ddof=ddof, zero_var=zero_var, samples=samples,
                            task_memory=task_memory, split_every=split_every, task_threads=task_threads,
                            memory_limit=memory_limit)
    return v[:, 0], i[:, 0]


# ---------------------------------------------------------------------------------------------- pairs


def _gather_pairs(xb: np.ndarray, yb: Optional[np.ndarray], threshold: float, absolute: bool, exclude: bool,
                  offsets: tuple, max_pairs: Optional[int], kw: dict) -> tuple:
    from ..pairwise import correlation_pairs as single

    coo = quiet(single, xb, yb, threshold, absolute=absolute, exclude_self=exclude, max_pairs=max_pairs, **kw)
    return (coo.row.astype(np.int64) + offsets[0], coo.col.astype(np.int64) + offsets[1], coo.data)


def _reduced_pairs(S: np.ndarray, threshold: float, absolute: bool, diagonal: bool, offsets: tuple) -> tuple:
    return dense_pairs(S, threshold, absolute=absolute, diagonal=diagonal, x_offset=offsets[0], y_offset=offsets[1])


def _mirrored(part: tuple) -> tuple:
    r, c, v = part
    return np.concatenate([r, c]), np.concatenate([c, r]), np.concatenate([v, v])


def correlation_pairs(X: Any, Y: Any, threshold: float, *, absolute: bool = False,
                      exclude_self: Optional[bool] = None, max_pairs: Optional[int] = None, metric: str = "pearson",
                      precision: Optional[str] = None, ddof: int = 1, zero_var: str = "zero", samples: str = "auto",
                      task_memory: float = DEFAULT_TASK_MEMORY, split_every: int = 4, task_threads: int = 1,
                      memory_limit: Optional[float] = None) -> Any:
    """:func:`congruence.correlation_pairs` of dask arrays: every block returns only its pairs.

    Parameters
    ----------
    X, Y : dask.array.Array, shapes (m, n_x) and (m, n_y)
        Y may be None (X against itself; the diagonal is excluded unless ``exclude_self=False``;
        only blocks on and above the diagonal are computed, their pairs mirrored).
    threshold, absolute, exclude_self, metric, precision, ddof, zero_var
        As in :func:`congruence.correlation_pairs`.
    max_pairs : int, optional
        Refuse with :class:`~congruence.MemoryBudgetError` when more pairs qualify (counted over
        all blocks; each block stops early at the same bound).
    {route}

    Returns
    -------
    scipy.sparse.coo_array, shape (n_x, n_y)
        Entries sorted by (i, j), values in the compute precision.
    """
    import scipy.sparse

    dask = require_dask()
    from .. import _engine as E
    from .._resources import MemoryBudgetError

    E.check_threshold(threshold)
    if max_pairs is not None:
        max_pairs = check_int(max_pairs, "max_pairs", 0)
    self_join = Y is None
    exclude = self_join if exclude_self is None else bool(exclude_self)
    fb = _common(X, Y, exclude, metric, precision, ddof, zero_var, samples, task_memory, split_every, task_threads)
    kw = _single_kwargs(fb, metric, precision, ddof, zero_var, task_threads, memory_limit)
    gather = dask.delayed(_gather_pairs, pure=True)
    reduced = dask.delayed(_reduced_pairs, pure=True)
    mirror = dask.delayed(_mirrored, pure=True)
    xd, yd = fb.x_blocks[0], fb.y_blocks[0]
    parts = []
    for bx in range(len(fb.x_offsets) - 1):
        for by in range(len(fb.y_offsets) - 1):
            if fb.symmetric and by < bx:
                continue
            offsets = (int(fb.x_offsets[bx]), int(fb.y_offsets[by]))
            on_diagonal = exclude and offsets[0] == offsets[1]
            if fb.gather:
                yb = None if (fb.symmetric and bx == by) else yd[by]
                part = gather(xd[bx], yb, float(threshold), bool(absolute), bool(on_diagonal), offsets, max_pairs, kw)
            else:
                S = reduced_statistic(fb, bx, by, split_every=split_every, task_threads=task_threads)
                part = reduced(S, float(threshold), bool(absolute), bool(on_diagonal), offsets)
            parts.append(mirror(part) if fb.symmetric and by > bx else part)
    try:
        computed = dask.compute(*parts)
    except MemoryBudgetError:
        raise MemoryBudgetError(E.too_many_pairs_message(max_pairs, threshold)) from None
    rows = np.concatenate([p[0] for p in computed])
    cols = np.concatenate([p[1] for p in computed])
    vals = np.concatenate([p[2] for p in computed]).astype(fb.dtype, copy=False)
    if fb.x_invalid is not None:
        keep = ~fb.x_invalid[rows]
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if max_pairs is not None and rows.size > max_pairs:
        raise MemoryBudgetError(E.too_many_pairs_message(max_pairs, threshold))
    order = np.lexsort((cols, rows))
    return scipy.sparse.coo_array((vals[order], (rows[order], cols[order])), shape=(fb.n_x, fb.n_y))


for _f in (correlation, topk_correlation, max_correlation, correlation_pairs):
    if _f.__doc__ and "{route}" in _f.__doc__:
        _f.__doc__ = _f.__doc__.replace("{route}", _ROUTE_DOC)
