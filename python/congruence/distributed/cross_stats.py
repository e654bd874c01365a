"""A :class:`~congruence.CrossStats` over the sample chunks of dask arrays (issue 9).

Each task accumulates one sample chunk of X and the aligned chunk of Y (all their features) into
its own CrossStats and returns the state (``state_dict``: float64 numpy arrays); the states are
combined by a tree reduction with the exact merge (a chunk's shift differs from another's only
by an exactly re-expressed offset, Chan, Golub & LeVeque 1983), so the result equals a
single-machine stream over the same samples to float64 rounding, and every measure that takes
``stats=`` (CKA, CCA, SVCCA, PWCCA, Procrustes, regression R², subspace match) runs on it.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._dask import check_dask_matrix, require_dask, tree_reduce

__all__ = ["cross_stats"]


def _chunk_state(xb: np.ndarray, yb: np.ndarray, opts: dict) -> dict:
    from ..cross_stats import CrossStats

    return CrossStats(**opts).update(xb, yb).state_dict()


def _merge_states(a: dict, b: dict) -> dict:
    from ..cross_stats import CrossStats

    return CrossStats.from_state_dict(a, num_threads=1).merge(CrossStats.from_state_dict(b, num_threads=1)).state_dict()


def cross_stats(X: Any, Y: Any, *, cross_only: bool = False, precision: str = "float64", shift_x: Any = None,
                shift_y: Any = None, split_every: int = 8, task_threads: int = 1,
                num_threads: Optional[int] = None) -> Any:
    """Streamed statistics of two dask arrays over the same samples.

    Parameters
    ----------
    X, Y : dask.array.Array, shapes (m, p) and (m, q)
        Any chunking; features are gathered per sample chunk (a task holds one row chunk of each),
        Y is aligned to X's row chunks.
    cross_only, precision, shift_x, shift_y
        As in :class:`congruence.CrossStats`.
    split_every : int
        Fan-in of the tree reduction.
    task_threads : int
        Threads each chunk's product uses.
    num_threads : int, optional
        Threads of the returned state.

    Returns
    -------
    CrossStats
    """
    dask = require_dask()
    from ..cross_stats import CrossStats

    X, Y = check_dask_matrix(X, "X"), check_dask_matrix(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must have the same number of samples (rows); got {X.shape[0]} and {Y.shape[0]}")
    for name, v, lo in (("split_every", split_every, 2), ("task_threads", task_threads, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
    Xr = X.rechunk({1: -1})
    Yr = Y.rechunk({0: Xr.chunks[0], 1: -1})
    opts = dict(cross_only=bool(cross_only), precision=precision, num_threads=int(task_threads),
                shift_x=None if shift_x is None else np.asarray(shift_x, dtype=np.float64),
                shift_y=None if shift_y is None else np.asarray(shift_y, dtype=np.float64))
    CrossStats(**{**opts, "num_threads": 1})  # argument errors here, not inside a task
    chunk = dask.delayed(_chunk_state, pure=True)
    parts = [chunk(xb, yb, opts) for xb, yb in zip(Xr.to_delayed().ravel(), Yr.to_delayed().ravel())]
    state = dask.compute(tree_reduce(parts, _merge_states, split_every))[0]
    return CrossStats.from_state_dict(state, num_threads=num_threads)
