"""Matching the units of two layers by their activation correlations (METHODS.md §3.1–3.3).

``match_neurons(X, Y)`` correlates every unit of X with every unit of Y over the same samples
(Pearson, the engine of :mod:`congruence.pairwise`) and pairs them:

* ``"hungarian"`` — the one-to-one matching maximising Σ R_{i,π(i)} (exact linear assignment;
  Li et al. 2016, and Brown, Vyas & Bansal 2023's "basis correlation");
* ``"semi"`` — each unit of X to its best unit of Y, reuse allowed (Li et al.'s semi-matching),
  computed without the p×q matrix;
* ``"greedy"`` — the Akbarinia & Gegenfurtner code's matcher, documented as such: rows in index
  order take their best still-free column if its score is positive (strict >), otherwise score 0
  and consume nothing; NaN counts as 0;
* ``"global_greedy"`` — all pairs by decreasing R (ties: lower i, then lower j), accepted while
  both units are free;
* ``"sparse"`` — the one-to-one matching restricted to candidate pairs (each unit's top-k partners
  on either side, without the p×q matrix), solved exactly on that graph (METHODS §3.4); k
  doubles while the graph has no full matching, and above k = 1024 the dense assignment takes
  over, so a full matching is always returned. The candidates come from one of two screens
  (``screen=``): "bf16" — both sides' k + 16 best from one bfloat16 product, every candidate's
  value recomputed exactly (:mod:`congruence.screening`; the default where the CPU has native
  bfloat16 dot products and torch is installed); "exact" — the engine's float32 top-k, once per
  side. Its objective is reported against nothing (the dense optimum is what it avoids
  computing); tests measure the ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..pairwise import correlation, max_correlation, topk_correlation
from .assignment import linear_assignment, sparse_assignment

__all__ = ["NeuronMatching", "match_neurons", "MATCH_METHODS"]

MATCH_METHODS = ("hungarian", "semi", "greedy", "global_greedy", "sparse")
#: Above this many candidates per unit the sparse route gives way to the dense assignment.
SPARSE_MAX_K = 1024


@dataclass(frozen=True)
class NeuronMatching:
    """A matching of the units of X (rows) to the units of Y (columns).

    Attributes
    ----------
    rows, cols : ndarray of int64, shape (k,)
        Matched pairs, ``rows`` increasing. For "semi" every row of X (a column may repeat); for
        "greedy" only the rows that found a positive free partner.
    correlations : ndarray of float64, shape (k,)
        R[rows, cols].
    score : float
        The method's score: the mean of ``correlations`` over the matched pairs for "hungarian",
        "semi" and "global_greedy" (the basis correlation, BC = (1/k) Σ R_{i,π(i)}), and over
        **all** p rows of X for "greedy" (unmatched rows score 0, as in the authors' code).
    method : str
    shape : tuple of int
        (p, q): the numbers of units of X and Y.
    """

    rows: np.ndarray
    cols: np.ndarray
    correlations: np.ndarray
    score: float
    method: str
    shape: tuple
    details: dict = field(default_factory=dict)

    @property
    def sorted_correlations(self) -> np.ndarray:
        """The matched correlations in decreasing order (Li et al.'s plots)."""
        return np.sort(self.correlations)[::-1]

    def __repr__(self) -> str:
        return (f"NeuronMatching(method={self.method!r}, {len(self.rows)} pairs of {self.shape[0]} x "
                f"{self.shape[1]} units, score={self.score:.6g})")


def _greedy(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Akbarinia & Gegenfurtner loop (METHODS §3.3), vectorised over columns per row."""
    S = np.where(np.isnan(R), 0.0, R)
    free = np.ones(S.shape[1], dtype=bool)
    rows, cols = [], []
    for i in range(S.shape[0]):
        cand = np.where(free, S[i], 0.0)
        j = int(np.argmax(cand))  # the first maximum: ties to the lowest j
        if cand[j] > 0.0:
            rows.append(i)
            cols.append(j)
            free[j] = False
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def _global_greedy(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q = R.shape
    S = np.where(np.isnan(R), -np.inf, R).ravel()
    order = np.lexsort((np.arange(S.size), -S))  # decreasing value, then row-major position
    row_free = np.ones(p, dtype=bool)
    col_free = np.ones(q, dtype=bool)
    rows, cols = [], []
    need = min(p, q)
    for flat in order:
        i, j = divmod(int(flat), q)
        if row_free[i] and col_free[j]:
            row_free[i] = col_free[j] = False
            rows.append(i)
            cols.append(j)
            if len(rows) == need:
                break
    rows_a, cols_a = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)
    order = np.argsort(rows_a, kind="stable")
    return rows_a[order], cols_a[order]


def match_neurons(X: Any = None, Y: Any = None, *, method: str = "hungarian", R: Any = None, k: int = 32,
                  screen: str = "auto", num_threads: Optional[int] = None) -> NeuronMatching:
    """Match the units (columns) of X to the units of Y by their correlation.

    Parameters
    ----------
    X : array_like, shape (n_samples, p)
    Y : array_like, shape (n_samples, q)
        Activations over the same samples (numpy, torch, cupy; for conv layers use
        ``spatial="positions"`` rows, METHODS §3.1). Float32 inputs are correlated in float32
        with float64 accumulation (the engine's policy).
    method : {"hungarian", "semi", "greedy", "global_greedy", "sparse"}
        See the module docstring.
    R : array_like, shape (p, q), optional
        A precomputed similarity matrix (correlations, mutual information, ...) instead of X and
        Y. NaN entries: 0 for "greedy" (as in the authors' code), never chosen by
        "global_greedy"/"semi", an error for "hungarian".
    k : int
        Candidates per unit for "sparse" (the starting value; it doubles while infeasible).
    screen : {"auto", "bf16", "exact"}
        How "sparse" finds its candidates (see the module docstring). "auto": "bf16" for host
        inputs when torch is importable and the CPU has AVX-512-BF16 or AMX, else "exact".
        ``details["screen"]`` records the choice.
    num_threads : int, optional

    Returns
    -------
    NeuronMatching

    References
    ----------
    Li, Yosinski, Clune, Lipson & Hopcroft (2016), "Convergent learning: do different neural
    networks learn the same representations?"; Brown, Vyas & Bansal (2023), "On privileged and
    convergent bases in neural network representations"; Akbarinia & Gegenfurtner (2019),
    "Paradox in deep neural networks".
    """
    if method not in MATCH_METHODS:
        raise ValueError(f"method must be one of {MATCH_METHODS}; got {method!r}")
    if method == "sparse":
        if R is not None or X is None or Y is None:
            raise ValueError("method='sparse' works from the activations X and Y (its candidates come from the "
                             "engine's top-k without the p x q matrix); for a given R use 'hungarian'")
        return _sparse(X, Y, k, _choose_screen(screen, X, Y), num_threads)
    if R is None:
        if X is None or Y is None:
            raise ValueError("match_neurons needs X and Y (activations), or R (a similarity matrix)")
        if method == "semi":
            vals, idx = max_correlation(X, Y, num_threads=num_threads)
            vals = np.asarray(vals, dtype=np.float64)
            idx = np.asarray(idx, dtype=np.int64)
            keep = idx >= 0
            rows = np.nonzero(keep)[0].astype(np.int64)
            shape = (len(idx), int(np.shape(Y)[1]))
            return _result(rows, idx[keep], vals[keep], method, shape, p=shape[0])
        Rm = np.asarray(correlation(X, Y, num_threads=num_threads), dtype=np.float64)
    else:
        if X is not None or Y is not None:
            raise ValueError("pass either X and Y, or R, not both")
        Rm = np.asarray(R, dtype=np.float64)
        if Rm.ndim != 2:
            raise ValueError(f"R must be 2-D (p, q); got shape {Rm.shape}")
    p, q = Rm.shape
    if method == "hungarian":
        if np.isnan(Rm).any():
            raise ValueError("R contains NaN values (a constant unit correlates with nothing); the one-to-one "
                             "matching needs a number for every pair")
        rows, cols = linear_assignment(Rm, maximize=True)
    elif method == "semi":
        S = np.where(np.isnan(Rm), -np.inf, Rm)
        cols = np.argmax(S, axis=1).astype(np.int64)
        rows = np.nonzero(np.isfinite(S[np.arange(p), cols]))[0].astype(np.int64) if q else np.zeros(0, np.int64)
        cols = cols[rows] if q else np.zeros(0, np.int64)
    elif method == "greedy":
        rows, cols = _greedy(Rm)
    else:
        rows, cols = _global_greedy(Rm)
    return _result(rows, cols, Rm[rows, cols], method, (p, q), p=p)


def _result(rows, cols, vals, method, shape, p) -> NeuronMatching:
    if method == "greedy":
        score = float(vals.sum() / p) if p else float("nan")
    else:
        score = float(vals.mean()) if len(vals) else float("nan")
    return NeuronMatching(rows=rows, cols=cols, correlations=np.asarray(vals, dtype=np.float64), score=score,
                          method=method, shape=tuple(int(s) for s in shape))


SCREENS = ("auto", "bf16", "exact")


def _native_bf16() -> bool:
    try:
        import torch
    except ImportError:
        return False
    cpu = getattr(torch, "cpu", None)
    probes = [getattr(cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(f()) for f in probes if f is not None)


def _choose_screen(screen: str, X: Any, Y: Any) -> str:
    if screen not in SCREENS:
        raise ValueError(f"screen must be one of {SCREENS}; got {screen!r}")
    from .._arrays import inputs_on_device

    on_device = inputs_on_device(X=X, Y=Y)
    if screen == "bf16":
        if on_device:
            raise ValueError("screen='bf16' is the CPU screen; GPU inputs use screen='exact' (the GPU engine's top-k)")
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ValueError("screen='bf16' needs torch for its bfloat16 products (pip install torch)") from exc
        return "bf16"
    if screen == "exact" or on_device:
        return "exact"
    return "bf16" if _native_bf16() else "exact"


def _candidate_graph(X: Any, Y: Any, kk: int, screen: str, num_threads: Optional[int]):
    """The candidate graph (p × q CSR of exact correlations) for kk candidates per unit and side."""
    import scipy.sparse as sp

    p, q = int(np.shape(X)[1]), int(np.shape(Y)[1])
    if screen == "bf16":
        from ..screening import screened_candidates

        c = screened_candidates(X, Y, kk, num_threads=num_threads)
        return sp.csr_matrix((c.values, c.cols, c.indptr), shape=(p, q)), c.details
    ka, kb = min(kk, q), min(kk, p)
    va, ia = (np.asarray(a) for a in topk_correlation(X, Y, ka, num_threads=num_threads))
    vb, ib = (np.asarray(a) for a in topk_correlation(Y, X, kb, num_threads=num_threads))
    rows = np.concatenate([np.repeat(np.arange(p), ka), ib.ravel()])
    cols = np.concatenate([ia.ravel(), np.repeat(np.arange(q), kb)])
    vals = np.concatenate([va.ravel(), vb.ravel()]).astype(np.float64)
    ok = (rows >= 0) & (cols >= 0) & np.isfinite(vals)
    rows, cols, vals = rows[ok], cols[ok], vals[ok]
    _, first = np.unique(rows * q + cols, return_index=True)  # a pair found from both sides, once
    return sp.csr_matrix((vals[first], (rows[first], cols[first])), shape=(p, q)), {}


def _sparse(X: Any, Y: Any, k: int, screen: str, num_threads: Optional[int]) -> NeuronMatching:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    p, q = int(np.shape(X)[1]), int(np.shape(Y)[1])
    attempts = []
    kk = int(k)
    while True:
        G, info = _candidate_graph(X, Y, kk, screen, num_threads)
        try:
            r, c = sparse_assignment(G, maximize=True)
            attempts.append({"k": kk, "edges": int(G.nnz), "feasible": True, **info})
            corr = np.asarray(G[r, c]).ravel()
            break
        except ValueError as exc:
            if "infeasible" not in str(exc):
                raise
            attempts.append({"k": kk, "edges": int(G.nnz), "feasible": False, **info})
        if kk >= min(p, q) or kk * 2 > SPARSE_MAX_K:
            m = match_neurons(X, Y, method="hungarian", num_threads=num_threads)
            details = {"k": kk, "attempts": attempts, "fallback": "dense", "screen": screen}
            return NeuronMatching(rows=m.rows, cols=m.cols, correlations=m.correlations, score=m.score,
                                  method="sparse", shape=m.shape, details=details)
        kk *= 2
    return NeuronMatching(rows=r, cols=c, correlations=corr, score=float(corr.mean()) if len(corr) else float("nan"),
                          method="sparse", shape=(p, q),
                          details={"k": kk, "attempts": attempts, "fallback": None, "screen": screen})
