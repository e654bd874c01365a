"""Distances to spans from a Gram matrix, by pivoted (rank-revealing) Cholesky (METHODS.md §5.6).

For a basis set B and a query neuron x, dist²(z_x, S(B)) = G_xx − gᵀG_BB⁺g with g = G_{B,x}.
The factorisation is of the *normalised* block D^{-1/2} G_BB D^{-1/2} (unit diagonal, D = diag
G_BB), pivoted (LAPACK ``dpstrf``) and stopped when every remaining neuron's squared distance to
the span of the chosen ones is below RANK_TOL = 1e-10 of its own ‖z‖² (relative distance 1e-5):
only the r independent neurons of B form the basis — dependent ones stay in B but add nothing —
and dist² = G_xx − ‖L⁻¹(D^{-1/2}Pg)_{1..r}‖², one triangular solve for all queries, clamped at 0.
LAPACK's own default (N·u·max diag, what METHODS §5.6 suggests) let rounding-level residuals of
exactly dependent neurons (≈ 1e-14 relative) into the basis on the planted test case, giving
κ ≈ 4e14 and Gram errors far above the decision band; the relative stop caps κ near 1e10. Unpivoted factorisations give a wrong span for rank-deficient sets
(METHODS §5.2 quotes 0.796 instead of 0.783 for the planted case's maximal ε).

The error of the Gram form grows with the conditioning of the retained basis: the relative error
of dist²/‖z‖² is about u·κ with κ ≈ (L₁₁/L_rr)², reported so callers can widen their re-check
band (see :mod:`congruence.subspace.match`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack, solve_triangular

__all__ = ["SpanFactor", "factor_span", "span_residuals", "RANK_TOL"]

#: A neuron whose squared distance to the span of the basis chosen so far is below this fraction of
#: its own ‖z‖² is dependent (relative distance 1e-5).
RANK_TOL = 1e-10


@dataclass(frozen=True)
class SpanFactor:
    """The retained basis of a span: global indices ``basis`` (the first ``rank`` pivots), their
    norms ``scale`` (√G_bb) and the Cholesky factor ``L`` (rank × rank, lower) of their normalised
    Gram block."""

    basis: np.ndarray
    L: np.ndarray
    scale: np.ndarray

    @property
    def rank(self) -> int:
        return len(self.basis)

    @property
    def kappa(self) -> float:
        """(L₁₁ / L_rr)², an estimate of the condition number of the retained normalised block."""
        if self.rank == 0:
            return 1.0
        return float((self.L[0, 0] / self.L[-1, -1]) ** 2)


def factor_span(G: np.ndarray, members: np.ndarray) -> SpanFactor:
    """Pivoted Cholesky of the normalised G[members, members]; the basis is the independent
    subset, in pivot order. Members must have ‖z‖ > 0 (dead neurons are removed before)."""
    members = np.asarray(members, dtype=np.int64)
    none = SpanFactor(basis=members[:0], L=np.zeros((0, 0)), scale=np.zeros(0))
    if members.size == 0:
        return none
    A = G[np.ix_(members, members)]
    d = np.sqrt(np.diag(A))
    c, piv, rank, info = lapack.dpstrf(A / np.outer(d, d), tol=RANK_TOL, lower=1)
    if info < 0:
        raise RuntimeError(f"dpstrf rejected argument {-info}")
    rank = int(rank)
    if rank == 0 or not np.isfinite(c[0, 0]) or c[0, 0] <= 0:
        return none
    chosen = piv[:rank] - 1
    return SpanFactor(basis=members[chosen], L=np.tril(c[:rank, :rank]), scale=d[chosen])


def span_residuals(G: np.ndarray, factor: SpanFactor, queries: np.ndarray) -> np.ndarray:
    """dist² of every query neuron to the span of ``factor``'s basis, clamped at 0 (float64)."""
    queries = np.asarray(queries, dtype=np.int64)
    d2 = np.diag(G)[queries].astype(np.float64, copy=True)
    if factor.rank and queries.size:
        rhs = G[np.ix_(factor.basis, queries)] / factor.scale[:, None]
        W = solve_triangular(factor.L, rhs, lower=True, check_finite=False)
        d2 -= np.einsum("ij,ij->j", W, W)
    np.maximum(d2, 0.0, out=d2)
    return d2
