"""The single-machine entry points hand dask inputs to this module (``cg.correlation(dask_X)`` is
``congruence.distributed.correlation(dask_X)``), so a Dask user calls the functions they know.

``num_threads`` becomes each task's thread count (default 1: one worker process per core) and
``memory_limit`` each task's budget. An in-memory partner of a dask input (numpy array, CPU
tensor) is wrapped as a dask array aligned with it; GPU arrays do not mix with dask inputs.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._arrays import is_dask_array, is_device


def _wrap(partner: Any, name: str, like: Any, *, rows_aligned: bool) -> Any:
    import dask.array as da

    if partner is None or is_dask_array(partner):
        return partner
    if is_device(partner):
        raise ValueError(f"{name} is a GPU array but the other input is a dask array; pass both as dask arrays "
                         "(of numpy blocks) or both as GPU arrays")
    arr = np.asarray(partner.detach() if hasattr(partner, "detach") else partner)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {arr.shape}")
    if rows_aligned:  # features: the same samples, cut like the dask input's rows
        if arr.shape[0] != like.shape[0]:
            raise ValueError(f"X and Y must have the same number of samples (rows); got {like.shape[0]} and "
                             f"{arr.shape[0]}")
        return da.from_array(arr, chunks=(like.chunks[0], -1))
    return da.from_array(arr, chunks=(like.chunks[0][0], like.chunks[1]))  # points: cut like the dask input


def features_pair(X: Any, Y: Any) -> tuple:
    """X and Y over the same samples, at least one a dask array: both as dask arrays."""
    if is_dask_array(X):
        return X, _wrap(Y, "Y", X, rows_aligned=True)
    return _wrap(X, "X", Y, rows_aligned=True), Y


def features(fn_name: str, X: Any, Y: Any, *args: Any, num_threads: Optional[int] = None, **kwargs: Any) -> Any:
    from . import pairwise

    X, Y = features_pair(X, Y)
    return getattr(pairwise, fn_name)(X, Y, *args, task_threads=1 if num_threads is None else num_threads, **kwargs)


def points(P: Any, Q: Any, k: int, *, num_threads: Optional[int] = None, **kwargs: Any) -> Any:
    from .neighbors import knn

    if is_dask_array(P):
        Q = _wrap(Q, "Q", P, rows_aligned=False)
    else:
        P = _wrap(P, "P", Q, rows_aligned=False)
    return knn(P, Q, k, task_threads=1 if num_threads is None else num_threads, **kwargs)
