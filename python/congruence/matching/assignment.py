"""Exact linear assignment (METHODS.md §3.2), compiled.

``linear_assignment(cost)`` returns the minimum-cost (or, with ``maximize=True``, maximum-score)
injection of the rows of a dense ``(n_rows, n_cols)`` matrix into its columns, rectangular in
either direction: every row is matched when ``n_rows <= n_cols``, every column otherwise. The
solver is the shortest-augmenting-path method with dual potentials of Jonker & Volgenant (1987)
in the rectangular form of Crouse (2016, "On implementing 2D rectangular assignment
algorithms", IEEE TAES 52(4)), the same optimum as ``scipy.optimize.linear_sum_assignment``;
O(n_rows² · n_cols) time, the cost matrix plus O(n_cols) memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _cpu

__all__ = ["linear_assignment", "sparse_assignment"]


def _cost_matrix(cost: Any) -> np.ndarray:
    try:
        C = np.asarray(cost)
    except Exception as exc:  # noqa: BLE001 - objects numpy cannot read
        raise TypeError(f"cost must be a 2-D array of numbers; got {type(cost).__name__}") from exc
    if C.ndim != 2:
        raise ValueError(f"cost must be 2-D (n_rows, n_cols); got shape {C.shape}")
    if C.dtype.kind not in "biuf":
        raise TypeError(f"cost must hold real numbers; got dtype {C.dtype}")
    return np.ascontiguousarray(C, dtype=np.float64)


def _pairs(col_for_row: np.ndarray, transposed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row_ind, col_ind) of the original matrix, rows increasing, from the solver's column per row
    (of the transposed matrix when ``transposed``)."""
    rows = np.arange(col_for_row.size, dtype=np.int64)
    if not transposed:
        return rows, col_for_row
    order = np.argsort(col_for_row, kind="stable")
    return col_for_row[order], rows[order]


def linear_assignment(cost: Any, *, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one assignment of rows to columns.

    Parameters
    ----------
    cost : array_like, shape (n_rows, n_cols)
        Real costs (scores with ``maximize=True``); any numeric dtype, computed in float64.
        ``+inf`` (``-inf`` when maximising) marks a forbidden pair. NaN, and infinities of the
        other sign, are errors.
    maximize : bool
        Maximise Σ cost[i, π(i)] instead of minimising it.

    Returns
    -------
    row_ind, col_ind : ndarray of int64, shape (min(n_rows, n_cols),)
        The matched pairs, ``row_ind`` increasing (scipy's convention); the optimum is
        ``cost[row_ind, col_ind].sum()``. Among several optima any one may be returned.

    Raises
    ------
    ValueError
        A non-2-D cost, NaN entries, infinities of the wrong sign, or no assignment avoiding
        the forbidden pairs ("infeasible").

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> r, c = cg.linear_assignment(np.array([[4.0, 1, 3], [2, 0, 5], [3, 2, 2]]))
    >>> c.tolist()
    [1, 0, 2]
    """
    C = _cost_matrix(cost)
    if np.isnan(C).any():
        raise ValueError("cost contains NaN values")
    bad = -np.inf if not maximize else np.inf
    if (C == bad).any():
        raise ValueError(f"cost contains {bad} entries: the {'maximum' if maximize else 'minimum'} would be "
                         f"unbounded (use {-bad} to forbid a pair)")
    if maximize:
        C = -C
    transposed = C.shape[0] > C.shape[1]
    if transposed:
        C = np.ascontiguousarray(C.T)
    if C.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    # Shifting every entry by one constant changes no optimum and keeps the potentials small.
    finite = C[np.isfinite(C)]
    if finite.size:
        C = C - finite.min()
    try:
        col_for_row = _cpu.linear_assignment(C)
    except ValueError as exc:
        if str(exc) == "infeasible":
            raise ValueError("cost matrix is infeasible: no assignment of every "
                             f"{'column' if transposed else 'row'} avoids the forbidden (infinite) entries") from None
        raise
    return _pairs(col_for_row, transposed)


def sparse_assignment(cost: Any, *, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Optimal assignment restricted to a sparse set of allowed pairs.

    The shortest-augmenting-path solver of :func:`linear_assignment` with Dijkstra over the
    stored entries only (a binary heap over the columns a search reaches), so the time follows
    the candidate edges rather than n_rows × n_cols — the route for very wide layers (METHODS
    §3.4; the role of LAPJVsp / ``scipy.sparse.csgraph.min_weight_full_bipartite_matching``).

    Parameters
    ----------
    cost : scipy.sparse matrix or array, shape (n_rows, n_cols)
        Every **stored** entry is an allowed pair with that cost (explicit zeros included);
        missing entries are forbidden. Stored values must be finite.
    maximize : bool

    Returns
    -------
    row_ind, col_ind : ndarray of int64, shape (min(n_rows, n_cols),)
        As :func:`linear_assignment`: every row matched when n_rows <= n_cols, else every column.

    Raises
    ------
    ValueError
        Non-finite stored values, or no full matching within the allowed pairs ("infeasible").
    """
    import scipy.sparse as sp

    M = sp.csr_matrix(cost, dtype=np.float64) if not sp.issparse(cost) else cost.tocsr().astype(np.float64)
    if M.ndim != 2:
        raise ValueError(f"cost must be 2-D; got shape {M.shape}")
    if not np.isfinite(M.data).all():
        raise ValueError("cost has non-finite stored entries (NaN or inf); leave forbidden pairs out instead")
    transposed = M.shape[0] > M.shape[1]
    if transposed:
        M = M.T.tocsr()
    nr, nc = M.shape
    if nr == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    M.sum_duplicates()
    data = -M.data if maximize else M.data.copy()
    if data.size:
        data = data - data.min()  # one constant shift: the same optimum, small potentials
    try:
        col_for_row = _cpu.sparse_assignment(M.indptr.astype(np.int64), M.indices.astype(np.int64), data, nr, nc)
    except ValueError as exc:
        if str(exc) == "infeasible":
            raise ValueError("cost matrix is infeasible: the allowed pairs admit no matching of every "
                             f"{'column' if transposed else 'row'}") from None
        raise
    return _pairs(col_for_row, transposed)

