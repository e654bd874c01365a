"""Nearest-neighbour candidates of a self-join from half the products (the diffusion-map kNN).

A kNN self-join's score is symmetric: with centred points a_i and h_i = ‖a_i‖²/2,
s_ij = a_i·a_j − h_i − h_j = −d²_ij/2, so one float32 product of the lifted panels
[a, −h, 1] and [a, 1, −h] gives both i's score for j and j's for i. Tiles of 512 rows are
multiplied only against the columns at and right of their first row (the upper triangle: half the
FLOPs of the engine's full kNN), the diagonal block's lower triangle and diagonal are masked, and
the compiled two-sided scan of :mod:`congruence.screening`'s lists keeps, for every point, its
best ``kk`` partners to the right (its row list) and to the left (its column list); all of it in
one compiled call (``_cpu.self_join_screen``), whose threads form their own slices of each tile
with a single-threaded BLAS (a multithreaded BLAS between compiled scans left its spinning
threads competing with the scan's: 0.4 s of 1.0 s at N = 20,000). The two lists of a
point are disjoint and together cover every other point, so the kk best of their union are its kk
nearest in float32; the caller rechecks them in float64.
"""

from __future__ import annotations

import numpy as np

from . import _cpu
from ._resources import blas_threads
from .screening import _empty_lists

__all__ = ["self_join_candidates", "TILE_ROWS"]

#: Rows per product tile (a tile is TILE_ROWS x (N − i0) float32).
TILE_ROWS = 512


def _lifted_panels(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[a, −h, 1] and [a, 1, −h] in float32, feature-major (D + 2, N), a = points − mean (centring
    keeps ‖a‖² small, and with it the float32 cancellation in a_i·a_j − h_i − h_j)."""
    N, D = points.shape
    a = points - points.mean(axis=0)
    h = 0.5 * np.einsum("ij,ij->i", a, a)
    left = np.empty((D + 2, N), np.float32)
    left[:D] = a.T  # the one strided (transposing) copy
    right = np.empty((D + 2, N), np.float32)
    right[:D] = left[:D]
    left[D], left[D + 1] = -h, 1.0
    right[D], right[D + 1] = 1.0, -h
    return left, right


def self_join_candidates(points: np.ndarray, kk: int, threads: int) -> np.ndarray:
    """Indices (N, kk) of each point's kk nearest other points by the float32 screen (unsorted).

    Parameters
    ----------
    points : ndarray of float64, shape (N, D)
    kk : int
        1 ≤ kk ≤ N − 1.
    threads : int
    """
    N = points.shape[0]
    left, right = _lifted_panels(points)
    rows, cols = _empty_lists(N, kk), _empty_lists(N, kk)
    with blas_threads(1):  # each OpenMP thread calls the BLAS on its own tile slice
        _cpu.self_join_screen(left, right, TILE_ROWS, rows, cols, threads)
    del left, right
    _cpu.finalize_screen_lists(cols, N, threads)  # row lists are final after their tile
    keys = np.concatenate([rows[0][:, :kk], cols[0][:, :kk]], axis=1)
    idx = np.concatenate([rows[1][:, :kk], cols[1][:, :kk]], axis=1)
    slots = np.arange(kk)
    empty = np.concatenate([slots[None, :] >= rows[2][:, None], slots[None, :] >= cols[2][:, None]], axis=1)
    keys[empty] = -np.inf  # unused slots (a point near either end has fewer partners on that side)
    best = np.argpartition(-keys, kk - 1, axis=1)[:, :kk]
    return np.take_along_axis(idx, best, axis=1)
