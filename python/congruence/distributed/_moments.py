"""Column moments of a dask array: one compiled statistics pass per block, merged over sample chunks.

Each (row chunk, column chunk) block gets the engine's float64 column statistics (count, mean,
centred second moment m2, raw sum of squares; NaN/Inf rejected with the argument's name); the
blocks of one column chunk are combined by a tree of exact pairwise merges (Chan, Golub &
LeVeque 1983):

    n = n_a + n_b,  δ = mean_b − mean_a,  mean = mean_a + δ·n_b/n,
    m2 = m2_a + m2_b + δ²·n_a·n_b/n,  sumsq = sumsq_a + sumsq_b,

so the moments equal a single pass over the column to float64 rounding and no task ever holds
more than one block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._engine import ColumnMoments
from ._dask import tree_reduce

__all__ = ["column_moments", "merge_moments"]


def _block_moments(block: np.ndarray, name: str, threads: int) -> ColumnMoments:
    from .. import _engine as E
    from .._arrays import as_host_array

    h = as_host_array(block, name)
    return E.moments(h.array, h.code, threads, name)


def merge_moments(a: ColumnMoments, b: ColumnMoments) -> ColumnMoments:
    """The moments of the union of two disjoint sample sets of the same columns."""
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    m2 = a.m2 + b.m2 + delta * delta * (a.n * b.n / n)
    return ColumnMoments(n, mean, m2, a.sumsq + b.sumsq)


def _concatenate(*parts: ColumnMoments) -> ColumnMoments:
    return ColumnMoments(parts[0].n, *(np.concatenate([getattr(p, f) for p in parts]) for f in ("mean", "m2", "sumsq")))


def column_moments(A: Any, name: str, *, split_every: int, task_threads: int) -> Any:
    """A delayed :class:`ColumnMoments` of all columns of the dask array ``A`` (samples on axis 0)."""
    import dask

    blocks = A.to_delayed()  # (row chunks, column chunks)
    one = dask.delayed(_block_moments, pure=True)
    columns = [tree_reduce([one(blocks[r, c], name, task_threads) for r in range(blocks.shape[0])],
                           merge_moments, split_every)
               for c in range(blocks.shape[1])]
    return dask.delayed(_concatenate, pure=True)(*columns)
