"""Candidate partners of both sides from one low-precision product (METHODS.md §3.4).

The sparse neuron-matching route needs, for every unit of X, its best partners in Y and, for
every unit of Y, its best partners in X — a candidate graph — and then the exact correlation of
each candidate pair. Forming X̃ᵀỸ once in bfloat16 (8-bit mantissas, float32 accumulation) and
reading both sides' lists from the same tiles costs a quarter of two exact float32 passes on a
CPU whose bfloat16 dot product runs at about twice the float32 rate. The screened lists are then
recomputed exactly from the float32 standardised panels, so every value handed on is exact; only
the *membership* of a list near its cut-off can differ from the exact top-k, which is why each
side keeps ``k + margin`` candidates (see :func:`screened_candidates`).

The bfloat16 products come from torch (oneDNN; measured 350 GFLOP/s on the development box's
AVX-512-BF16 cores against 185 GFLOP/s for scipy's float32 sgemm); scipy's OpenBLAS exports no
bfloat16 GEMM. The scans and the exact recomputation are compiled (``_cpu``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from . import _cpu
from . import _engine as E
from ._arrays import HostArray, as_host_array, check_matrix
from ._resources import blas_threads, resolve_threads

__all__ = ["ScreenedCandidates", "screened_candidates", "SCREEN_MARGIN"]

#: Extra candidates per unit kept beyond k by the bfloat16 screen (see screened_candidates).
SCREEN_MARGIN = 16
#: Rows of X per bfloat16 product tile (the tile is TILE_ROWS x n_y).
TILE_ROWS = 512


@dataclass(frozen=True)
class ScreenedCandidates:
    """The union of both sides' screened candidate pairs, each once, grouped by row (CSR order:
    a row's own list first, then the columns that listed it).

    Attributes
    ----------
    rows, cols : ndarray of int64, shape (e,)
    indptr : ndarray of int64, shape (p + 1,)
        Row i's pairs are ``[indptr[i], indptr[i + 1])``.
    values : ndarray of float64, shape (e,)
        Exact correlations (float32 products over ≤ 1024 samples summed in float64).
    shape : (p, q)
    details : dict
        ``k_screen`` (candidates kept per unit and side), ``screen_edges`` (list slots on both
        sides, before deduplication).
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    indptr: np.ndarray
    shape: tuple
    details: dict = field(default_factory=dict)


def _empty_lists(n: int, k: int) -> tuple:
    """Screen lists for n units of k candidates: (keys, idx) with 2k slots, count, threshold."""
    return (np.empty((n, 2 * k), np.float32), np.empty((n, 2 * k), np.int64), np.zeros(n, np.int32),
            np.full(n, -np.inf, np.float32))


def _unit_feature_major(h: HostArray, threads: int) -> np.ndarray:
    """(n_samples, n) input -> its (n, n_samples) float32 transpose with centred unit-norm rows
    (moments in float64, one compiled transposing pass, then the scale in place). Constant units
    become zero rows and correlate 0 with everything: the engine's ``zero_var="zero"``, warned
    about the same way."""
    import torch

    mom = E.moments(h.array, h.code, threads, h.name)
    bad = mom.constant()
    E._apply_zero_var(bad, "zero", h.name, "pearson")
    scale = E.inverse_sqrt(mom.m2, bad)
    out = E._transpose_panel(h, np.dtype(np.float32), threads, row_shift=mom.mean)
    torch.from_numpy(out).mul_(torch.from_numpy(scale.astype(np.float32))[:, None])
    return out


def screened_candidates(X: Any, Y: Any, k: int, *, margin: Optional[int] = None,
                        num_threads: Optional[int] = None) -> ScreenedCandidates:
    """Each unit's ``k + margin`` best partners on the other side from one bfloat16 product, with
    exact values.

    Parameters
    ----------
    X : array_like, shape (n_samples, p)
    Y : array_like, shape (n_samples, q)
        Activations over the same samples (host arrays of any float or integer dtype; centred in
        float64 and stored in float32). Constant units correlate 0 with everything (the engine's
        default ``zero_var="zero"``, with its warning).
    k : int
        Candidates wanted per unit and side.
    margin : int, optional
        Extra candidates per unit and side (default :data:`SCREEN_MARGIN`, 16). Rounding the unit-norm
        inputs to bfloat16 moves a correlation by at most 2u·Σ|x̃_s||ỹ_s| ≤ 2u (u = 2⁻⁸) in the worst case and by about
        u/√n_samples typically, and the tile's own bfloat16 output adds a relative u/2; a list
        member near the k-th value can swap with a non-member within that band. With 16 extra
        slots every exact top-32 member was kept in the tests' correlation-like cases.
    num_threads : int, optional

    Returns
    -------
    ScreenedCandidates
        CSR-ordered pairs (rows non-decreasing), values exact: Σ_s x_s y_s over centred
        unit-norm float32 copies (float32 products summed over ≤ 1024 samples, then in
        float64), clipped to [-1, 1].
    """
    import torch

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    margin = SCREEN_MARGIN if margin is None else margin
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be a non-negative integer; got {margin!r}")
    threads = resolve_threads(num_threads)
    hx, hy = as_host_array(X, "X"), as_host_array(Y, "Y")
    check_matrix(hx, min_rows=2)
    check_matrix(hy, min_rows=2)
    if hx.shape[0] != hy.shape[0]:
        raise ValueError(f"X and Y must have the same number of samples (rows); got {hx.shape[0]} and {hy.shape[0]}")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad(), blas_threads(1):
            return _screen(hx, hy, int(k) + int(margin), threads)
    finally:
        torch.set_num_threads(old_threads)


def _screen(hx: HostArray, hy: HostArray, kk: int, threads: int) -> ScreenedCandidates:
    import torch

    Xu, Yu = _unit_feature_major(hx, threads), _unit_feature_major(hy, threads)
    p, q = Xu.shape[0], Yu.shape[0]
    ka, kb = min(kk, q), min(kk, p)
    row_lists, col_lists = _empty_lists(p, ka), _empty_lists(q, kb)
    a16, b16 = torch.from_numpy(Xu).to(torch.bfloat16), torch.from_numpy(Yu).to(torch.bfloat16)
    tile = torch.empty((min(p, TILE_ROWS), q), dtype=torch.bfloat16)  # one buffer for every tile
    for i0 in range(0, p, TILE_ROWS):
        i1 = min(p, i0 + TILE_ROWS)
        out = tile[: i1 - i0]
        torch.mm(a16[i0:i1], b16.T, out=out)
        _cpu.scan_bf16_two_sided(out.view(torch.int16).numpy(), i0, False, True, None, None, p,
                                 tuple(a[i0:i1] for a in row_lists), col_lists, threads)
    del a16, b16, tile
    _cpu.finalize_screen_lists(col_lists, q, threads)  # row lists are final after their tile
    indptr, cols = _cpu.candidate_graph(row_lists, p, col_lists, q)
    rows = np.repeat(np.arange(p, dtype=np.int64), np.diff(indptr))
    values = np.empty(len(cols), dtype=np.float64)
    _cpu.pair_dot_products(Xu, Yu, rows, cols, values, threads)
    np.clip(values, -1.0, 1.0, out=values)
    return ScreenedCandidates(rows=rows, cols=cols, values=values, indptr=indptr, shape=(p, q),
                              details={"k_screen": ka, "screen_edges": int(p * ka + q * kb), "edges": len(cols)})
