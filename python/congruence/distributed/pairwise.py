"""Top-k correlation of dask arrays by output blocks (DESIGN §6; issue 9).

The n_x × n_y result is cut along the column chunks of X and Y. Each task gets one column block
of X and one of Y with all their samples (inputs chunked along samples are rechunked to whole
columns first: a task holds m × (b_x + b_y) numbers, never an output block), runs the compiled
single-node :func:`congruence.topk_correlation` on them and returns only its (b_x, k) lists with
global partner indices. The lists of one row block are merged by a tree reduction that keeps the
library's order: value (|value| with ``absolute``) descending, ties to the lowest global index,
unfilled slots (NaN, −1) last. A self-join (``Y`` None, or ``exclude_self=True``) gives Y the
column chunks of X, so the excluded diagonal falls inside the diagonal blocks.

Each block's correlations are those of the single-node engine on those columns; float32 products
over a different column blocking can differ in the last bits, so top-k *sets* can differ from a
single-machine run only between candidates tied within float32 rounding
(``precision="float64"`` removes even that).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import numpy as np

from ._dask import check_dask_matrix, require_dask, tree_reduce

__all__ = ["topk_correlation"]


def _block_topk(xb: np.ndarray, yb: np.ndarray, k: int, y_offset: int, diagonal: bool, kw: dict) -> tuple:
    """One output block's top-k lists, partner indices made global."""
    from ..pairwise import topk_correlation as single

    v, i = single(xb, yb, k, exclude_self=diagonal, **kw)
    v, i = np.asarray(v), np.asarray(i, dtype=np.int64)
    return v, np.where(i >= 0, i + y_offset, -1)


def merge_topk(a: tuple, b: tuple, *, k: int, absolute: bool) -> tuple:
    """The k best of two (values, global indices) lists per row, in the library's order."""
    V = np.concatenate([a[0], b[0]], axis=1)
    I = np.concatenate([a[1], b[1]], axis=1)
    key = np.abs(V) if absolute else V
    empty = (I < 0) | np.isnan(key)
    key = np.where(empty, -np.inf, key)
    idx = np.where(empty, np.iinfo(np.int64).max, I)
    order = np.lexsort((idx, -key), axis=1)[:, :k]
    return np.take_along_axis(V, order, axis=1), np.take_along_axis(I, order, axis=1)


def topk_correlation(X: Any, Y: Any = None, k: int = 8, *, absolute: bool = False,
                     exclude_self: Optional[bool] = None, metric: str = "pearson", precision: Optional[str] = None,
                     ddof: int = 1, zero_var: str = "zero", split_every: int = 4, task_threads: int = 1,
                     compute: bool = True) -> tuple:
    """:func:`congruence.topk_correlation` of dask arrays (samples along axis 0).

    Parameters
    ----------
    X, Y : dask.array.Array, shapes (m, n_x) and (m, n_y)
        Chunked along features, samples or both; Y defaults to X (a self-join).
    k, absolute, exclude_self, metric, precision, ddof, zero_var
        As in :func:`congruence.topk_correlation` (axis 1: each feature of X gets its partners in Y).
    split_every : int
        Fan-in of the tree merge of a row block's lists.
    task_threads : int
        Threads each task's compiled engine uses (1 suits one worker process per core).
    compute : bool
        Compute now (default) and return numpy arrays; False returns the two dask.delayed results.

    Returns
    -------
    values : ndarray, shape (n_x, k)
    indices : ndarray of int64, shape (n_x, k)
        Global column indices of Y; ties to the lowest index; unfilled slots −1.
    """
    dask = require_dask()
    X = check_dask_matrix(X, "X")
    self_join = Y is None
    Y = X if self_join else check_dask_matrix(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must have the same number of samples (rows); got {X.shape[0]} and {Y.shape[0]}")
    exclude = self_join if exclude_self is None else bool(exclude_self)
    if exclude and X.shape[1] != Y.shape[1]:
        raise ValueError("exclude_self needs X and Y of the same width (feature i of X is feature i of Y)")
    for name, v, lo in (("k", k, 1), ("split_every", split_every, 2), ("task_threads", task_threads, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
    candidates = Y.shape[1] - (1 if exclude else 0)
    if k > candidates:
        raise ValueError(f"k={k} exceeds the {candidates} candidate partners per feature")
    Xr = X.rechunk({0: -1})
    Yr = Y.rechunk({0: -1, 1: Xr.chunks[1]} if exclude else {0: -1})
    kw = dict(absolute=absolute, metric=metric, precision=precision, ddof=ddof, zero_var=zero_var,
              num_threads=int(task_threads))
    xcols, ycols = Xr.chunks[1], Yr.chunks[1]
    xo, yo = np.concatenate([[0], np.cumsum(xcols)]), np.concatenate([[0], np.cumsum(ycols)])
    xblocks, yblocks = Xr.to_delayed().ravel(), Yr.to_delayed().ravel()
    block = dask.delayed(_block_topk, pure=True)
    merge = partial(merge_topk, k=int(k), absolute=bool(absolute))
    rows = []
    for bx, xb in enumerate(xblocks):
        parts = []
        for by, yb in enumerate(yblocks):
            diagonal = exclude and xo[bx] == yo[by]
            kb = min(int(k), ycols[by] - (1 if diagonal else 0))
            if kb >= 1:
                parts.append(block(xb, yb, kb, int(yo[by]), bool(diagonal), kw))
        rows.append(tree_reduce(parts, merge, split_every))
    stacked = dask.delayed(_stack, pure=True)(*rows)
    if not compute:
        return stacked
    return dask.compute(stacked)[0]


def _stack(*rows: tuple) -> tuple:
    return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
