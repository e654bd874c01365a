"""Local linear regression selection of non-harmonic eigenvectors (Dsilva et al. 2018; METHODS.md §6.5).

Diffusion eigenvectors repeat the same direction at higher frequencies (cos 2πx after cos πx):
such a *harmonic* ψ_k is a function of the earlier ones. For k = 2..m, ψ_k is regressed at every
point i on Φ = (ψ_1 … ψ_{k−1}) by a weighted local linear fit,

    (a_i, β_i) = argmin Σ_{j≠i} w_ij (ψ_k(j) − a − βᵀ(Φ(j) − Φ(i)))²,
    w_ij = exp(−‖Φ(i) − Φ(j)‖² / ε_reg),  ε_reg = median_{i,j} ‖Φ(i) − Φ(j)‖² / eps_med_scale,

and ψ̂_k(i) = a_i. The normalised residual r_k = √(Σ_i (ψ_k − ψ̂_k)² / Σ_i ψ_k²) is ≈ 0 for a
harmonic and ≈ 1 for a new direction (r_1 = 1). ``strategy="dim"`` keeps the ``intrinsic_dim``
largest residuals, ``"threshold"`` every r_k > ``threshold``. Leave-one-out (j ≠ i) is the paper's
form and the default; datafold includes j = i with weight 1 (``include_self=True``).

Each point's fit solves the (k × k) weighted normal equations with a pseudo-inverse at relative
cut-off ``rcond`` (1e-6), batched over points in blocks; the cost is O(n² k²) per eigenvector, so
``n_subsample`` (≥ 100) evaluates r_k on a seeded subset of the points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["LLRSelection", "llr_selection", "top_residuals"]


@dataclass(frozen=True)
class LLRSelection:
    """Residuals and the selected eigenvectors.

    Attributes
    ----------
    residuals : ndarray of float64, shape (m,)
        r_1..r_m for ψ_1..ψ_m (r_1 = 1).
    selected : ndarray of int64
        Indices k (1-based, as ψ_k) of the selected eigenvectors, increasing.
    eps_reg : ndarray of float64, shape (m,)
        The regression bandwidth used for each k (nan for k = 1).
    """

    residuals: np.ndarray
    selected: np.ndarray
    eps_reg: np.ndarray


def _median_pair_d2(P: np.ndarray) -> float:
    sq = np.einsum("ij,ij->i", P, P)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * P @ P.T, 0.0)
    iu = np.triu_indices(P.shape[0], 1)
    return float(np.median(d2[iu]))


def _fit_values(Phi: np.ndarray, y: np.ndarray, eps_reg: float, include_self: bool, rcond: float) -> np.ndarray:
    """a_i of every point's weighted local linear fit of y on Phi."""
    n, p = Phi.shape
    out = np.empty(n)
    block = max(1, int(2e7 // (n * (p + 1) ** 2 + n * (p + 1))))
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        diff = Phi[None, :, :] - Phi[i0:i1, None, :]  # (b, n, p): Φ(j) − Φ(i)
        w = np.exp(-np.einsum("bnp,bnp->bn", diff, diff) / eps_reg)
        if not include_self:
            w[np.arange(i1 - i0), np.arange(i0, i1)] = 0.0
        A = np.concatenate([np.ones((i1 - i0, n, 1)), diff], axis=2)  # (b, n, p + 1)
        Aw = A * w[:, :, None]
        normal = np.einsum("bnk,bnl->bkl", Aw, A)
        rhs = np.einsum("bnk,n->bk", Aw, y)
        coef = np.einsum("bkl,bl->bk", np.linalg.pinv(normal, rcond=rcond, hermitian=True), rhs)
        out[i0:i1] = coef[:, 0]
    return out


def top_residuals(residuals: np.ndarray, intrinsic_dim: int) -> np.ndarray:
    """0-based indices of the ``intrinsic_dim`` largest residuals (ties to the lower index), increasing."""
    r = np.asarray(residuals)
    order = np.lexsort((np.arange(r.size), -r))
    return np.sort(order[:intrinsic_dim])


def llr_selection(eigenvectors: Any, *, intrinsic_dim: int = 2, strategy: str = "dim", threshold: float = 0.9,
                  eps_med_scale: float = 3.0, include_self: bool = False, n_subsample: Optional[int] = None,
                  rcond: float = 1e-6, seed: int = 0) -> LLRSelection:
    """Select the non-harmonic diffusion eigenvectors by local linear regression.

    Parameters
    ----------
    eigenvectors : array_like, shape (N, m)
        ψ_1..ψ_m as columns (ψ_0, the constant, excluded), e.g. ``DiffusionMap.eigenvectors_[:, 1:]``.
    intrinsic_dim : int
        Eigenvectors kept by ``strategy="dim"``.
    strategy : {"dim", "threshold"}
    threshold : float
        r_k above which ``strategy="threshold"`` keeps ψ_k.
    eps_med_scale : float
        ε_reg = median pairwise squared distance in Φ / eps_med_scale.
    include_self : bool
        Include j = i with weight 1 (datafold's form) instead of leaving it out.
    n_subsample : int, optional
        Evaluate on a seeded subset of this many points (≥ 100).
    rcond, seed

    Returns
    -------
    LLRSelection
    """
    V = np.asarray(eigenvectors, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] < 1:
        raise ValueError(f"eigenvectors must be (N, m >= 1); got shape {V.shape}")
    if not np.isfinite(V).all():
        raise ValueError("eigenvectors contain NaN or Inf values")
    if strategy not in ("dim", "threshold"):
        raise ValueError(f"strategy must be 'dim' or 'threshold'; got {strategy!r}")
    m = V.shape[1]
    if strategy == "dim" and (isinstance(intrinsic_dim, bool) or not isinstance(intrinsic_dim, (int, np.integer))
                              or not 1 <= intrinsic_dim <= m):
        raise ValueError(f"intrinsic_dim must be an integer in [1, {m}]; got {intrinsic_dim!r}")
    if not np.isfinite(eps_med_scale) or eps_med_scale <= 0:
        raise ValueError(f"eps_med_scale must be a positive number; got {eps_med_scale!r}")
    if n_subsample is not None:
        if isinstance(n_subsample, bool) or not isinstance(n_subsample, (int, np.integer)) or n_subsample < 100:
            raise ValueError(f"n_subsample must be an integer >= 100; got {n_subsample!r}")
        if n_subsample < V.shape[0]:
            V = V[np.sort(np.random.default_rng(seed).choice(V.shape[0], n_subsample, replace=False))]
    r = np.ones(m)
    eps_reg = np.full(m, np.nan)
    for k in range(1, m):
        Phi, y = V[:, :k], V[:, k]
        eps_reg[k] = _median_pair_d2(Phi) / eps_med_scale
        if not eps_reg[k] > 0:
            raise ValueError(f"the first {k} eigenvectors are constant on these points; cannot regress on them")
        fit = _fit_values(Phi, y, eps_reg[k], include_self, rcond)
        r[k] = float(np.sqrt(np.sum((y - fit) ** 2) / np.sum(y ** 2)))
    if strategy == "dim":
        chosen = top_residuals(r, intrinsic_dim)
    else:
        chosen = np.nonzero(r > threshold)[0]
    return LLRSelection(residuals=r, selected=(chosen + 1).astype(np.int64), eps_reg=eps_reg)
