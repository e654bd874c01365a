"""The Mahalanobis-like kernel of Singer & Coifman (2008) for diffusion maps (METHODS.md §6.1–6.2).

d²_ij = ½ Δᵀ(C_i⁺ + C_j⁺)Δ, Δ = o_i − o_j, with C_i the local covariance of the observations at
point i. Each pseudo-inverse is stored as a whitening factor F_i (r × D, C_i⁺ = F_iᵀF_i), so a
pair costs two r × D products in the compiled kernel (``_cpu.mahalanobis_pairs``), evaluated only
on the candidate graph: each point's k nearest neighbours in observation space (the pairwise
engine). Local covariances come from Jacobians (C_i = J_iJ_iᵀ; the default, the standard
linearisation), from given covariance matrices, or from perturbation clouds (sample covariance
/ σ², keeping distances in input units). The pseudo-inverse keeps eigenvalues above
rcond·λ_max (rcond = e⁻¹¹ ≈ 1.67e-5, the datafold tutorial's value) or a fixed rank; the kept
rank per point is reported (it should equal the intrinsic dimension).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from .. import _cpu
from .._resources import resolve_threads
from .kernel import GaussianKernel, _check_common, _neighbours, assemble_kernel

__all__ = ["CovarianceFactors", "factors_from_jacobians", "factors_from_covariances", "factors_from_clouds",
           "model_jacobians", "mahalanobis_knn_kernel", "RCOND"]

#: Default relative eigenvalue cut-off of the pseudo-inverses.
RCOND = math.exp(-11)


@dataclass(frozen=True)
class CovarianceFactors:
    """Whitening factors of the local covariances' pseudo-inverses.

    Attributes
    ----------
    F : ndarray of float64, shape (N, r, D)
        C_i⁺ = F_iᵀF_i; rows beyond a point's kept rank are zero.
    rank : ndarray of int64, shape (N,)
        Kept rank per point.
    """

    F: np.ndarray
    rank: np.ndarray


def _from_eig(lam: np.ndarray, U: np.ndarray, rank: Optional[int], rcond: float) -> CovarianceFactors:
    """lam (N, m) descending eigenvalues, U (N, D, m) eigenvectors -> factors."""
    N, D, m = U.shape
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= m:
            raise ValueError(f"rank must be an integer in [1, {m}]; got {rank!r}")
        keep = np.zeros_like(lam, dtype=bool)
        keep[:, :rank] = True
        keep &= lam > 0
    else:
        if not (np.isfinite(rcond) and 0 < rcond < 1):
            raise ValueError(f"rcond must be in (0, 1); got {rcond!r}")
        keep = lam > rcond * lam[:, :1]
    r = int(keep.sum(axis=1).max()) if N else 0
    if r == 0:
        raise ValueError("every local covariance is zero: no direction to measure distances in")
    inv_sqrt = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)[:, :r]
    F = np.ascontiguousarray(np.transpose(U[:, :, :r], (0, 2, 1)) * inv_sqrt[:, :, None])
    return CovarianceFactors(F=F, rank=keep.sum(axis=1).astype(np.int64))


def factors_from_jacobians(J: Any, *, rank: Optional[int] = None, rcond: float = RCOND) -> CovarianceFactors:
    """Factors of (J_iJ_iᵀ)⁺ for Jacobians J of shape (N, D, d) (observations × variables kept)."""
    J = np.asarray(J, dtype=np.float64)
    if J.ndim != 3:
        raise ValueError(f"J must be (N, D, d) Jacobians; got shape {J.shape}")
    if not np.isfinite(J).all():
        raise ValueError("J contains NaN or Inf values")
    U, s, _ = np.linalg.svd(J, full_matrices=False)  # U (N, D, m), s (N, m) descending
    return _from_eig(s ** 2, U, rank, rcond)


def factors_from_covariances(C: Any, *, rank: Optional[int] = None, rcond: float = RCOND) -> CovarianceFactors:
    """Factors of C_i⁺ for symmetric positive semi-definite C of shape (N, D, D)."""
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 3 or C.shape[1] != C.shape[2]:
        raise ValueError(f"C must be (N, D, D) covariances; got shape {C.shape}")
    if not np.isfinite(C).all():
        raise ValueError("C contains NaN or Inf values")
    lam, U = np.linalg.eigh(0.5 * (C + np.transpose(C, (0, 2, 1))))
    return _from_eig(lam[:, ::-1], U[:, :, ::-1], rank, rcond)


def factors_from_clouds(clouds: Any, sigma: float, *, rank: Optional[int] = None,
                        rcond: float = RCOND) -> CovarianceFactors:
    """Factors from perturbation clouds (N, S, D): the observations at S perturbed copies of each
    input (ξ_i + σ·N(0, I)); C_i = sample covariance / σ²."""
    X = np.asarray(clouds, dtype=np.float64)
    if X.ndim != 3 or X.shape[1] < 2:
        raise ValueError(f"clouds must be (N, S >= 2, D); got shape {X.shape}")
    if isinstance(sigma, bool) or not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number; got {sigma!r}")
    Xc = X - X.mean(axis=1, keepdims=True)
    C = np.einsum("nsd,nse->nde", Xc, Xc) / (X.shape[1] - 1) / sigma ** 2
    return factors_from_covariances(C, rank=rank, rcond=rcond)


def model_jacobians(model: Any, inputs: Any) -> np.ndarray:
    """∂model(x)/∂x at every input (rows of ``inputs``), shape (N, D_out, d_in), float64, through
    ``torch.func.vmap(jacrev(model))`` (model applied to single inputs of shape (d_in,))."""
    import torch
    from torch.func import jacrev, vmap

    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float64) if not torch.is_tensor(inputs) \
        else inputs.detach().to(torch.float64)
    if x.ndim != 2:
        raise ValueError(f"inputs must be (N, d_in); got shape {tuple(x.shape)}")
    was = model.training
    model.eval()
    try:
        params = {n: p.detach().to(torch.float64) for n, p in model.named_parameters()}
        buffers = {n: b.detach().to(torch.float64) if b.is_floating_point() else b for n, b in model.named_buffers()}

        def f(xi):
            out = torch.func.functional_call(model, (params, buffers), (xi[None],))
            return out.reshape(-1)

        J = vmap(jacrev(f))(x)
    finally:
        model.train(was)
    return J.detach().cpu().numpy()


def mahalanobis_knn_kernel(points: Any, factors: CovarianceFactors, *, k: Optional[int] = 30,
                           epsilon: Union[float, str] = "median", symmetrize: str = "average",
                           num_threads: Optional[int] = None) -> GaussianKernel:
    """exp(−d²_M/(2ε)) on each point's k nearest neighbours in observation space (None: all pairs)."""
    X = np.asarray(points, dtype=np.float64)
    _check_common(X, k, symmetrize)
    if not isinstance(factors, CovarianceFactors):
        raise ValueError(f"factors must be CovarianceFactors; got {type(factors).__name__}")
    if factors.F.shape[0] != X.shape[0] or factors.F.shape[2] != X.shape[1]:
        raise ValueError(f"factors are for {factors.F.shape[0]} points of {factors.F.shape[2]} dims; the points are "
                         f"{X.shape}")
    rows, cols, _, _ = _neighbours(X, None if k is None else int(k), num_threads)
    d2 = np.empty(len(rows))
    _cpu.mahalanobis_pairs(X, factors.F, rows, cols, d2, resolve_threads(num_threads))
    N = X.shape[0]
    if k is None:
        kth = np.full(N, np.inf)
    else:
        off = rows != cols
        kth = np.full(N, 0.0)
        np.maximum.at(kth, rows[off], d2[off])
    return assemble_kernel(rows, cols, d2, N, epsilon=epsilon, symmetrize=symmetrize, k=k, d2_kth=kth)
