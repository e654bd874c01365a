"""Diffusion maps (Coifman & Lafon 2006; METHODS.md §6.4, §6.6), scikit-learn style.

From the symmetric sparse kernel K (:mod:`congruence.diffusion.kernel`):
q_i = Σ_j K_ij, K^(α) = Q^{-α} K Q^{-α} (α = 1: Laplace–Beltrami, density-free; 0.5:
Fokker–Planck; 0: graph Laplacian), d_i = Σ_j K^(α)_ij, and the Markov matrix P = D⁻¹K^(α). Its
eigenpairs come from the symmetric A = D^{-1/2} K^(α) D^{-1/2} (ARPACK Lanczos, largest algebraic,
seeded start vector): ψ_k = D^{-1/2} v_k, λ_0 = 1 ≥ λ_1 ≥ …, each ψ_k scaled to unit Euclidean
norm with the sign convention of METHODS §0 (the entry of largest magnitude positive). ψ_0 is
constant and left out of the embedding Ψ_t(i) = (λ_k^t ψ_k(i))_{k=1..m}.

Out of sample (Nyström, §6.6): a new point's kernel row against its k nearest training points,
α-normalised with the training q, row-normalised to p, and ψ_k(o) = λ_k⁻¹ Σ_j p(o, o_j) ψ_k(j).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ._eigen import top_eigenpairs
from .kernel import GaussianKernel, knn_gaussian_kernel
from .mahalanobis import CovarianceFactors, mahalanobis_knn_kernel

__all__ = ["DiffusionMap"]


def _sign_convention(V: np.ndarray) -> np.ndarray:
    """Flip each column so its entry of largest magnitude is positive (lowest index among equals)."""
    at = np.argmax(np.abs(V), axis=0)
    signs = np.sign(V[at, np.arange(V.shape[1])])
    signs[signs == 0] = 1.0
    return V * signs


class DiffusionMap:
    """Diffusion-map embedding with a kNN-sparsified Gaussian kernel.

    Parameters
    ----------
    n_components : int
        Non-trivial eigenvectors kept (ψ_1..ψ_m).
    k : int or None
        Neighbours per point for the kernel (None: every pair, dense).
    epsilon : float, "median" or "bgh"
        Bandwidth, K = exp(−d²/(2ε)).
    alpha : float
        Density normalisation exponent (1, 0.5, 0 are the classical choices).
    time : float
        Diffusion time t of the embedding Ψ_t = (λ_k^t ψ_k).
    symmetrize : {"average", "max", "min"}
    tol : float
        ARPACK tolerance (0: machine precision).
    seed : int
        Seeds the Lanczos start vector (results are deterministic for a seed).
    num_threads : int, optional

    Attributes
    ----------
    eigenvalues_ : ndarray, shape (n_components + 1,)
        λ_0 = 1 first, descending.
    eigenvectors_ : ndarray, shape (N, n_components + 1)
        ψ_0 (constant) first; unit Euclidean norm columns.
    epsilon_ : float
    kernel_ : GaussianKernel
    q_ : ndarray, shape (N,)
        Kernel row sums (for α-normalising new points).

    References
    ----------
    Coifman & Lafon (2006), "Diffusion maps", ACHA 21; Bertalan, Dietrich & Kevrekidis (2020),
    "Transformations between deep neural networks".
    """

    def __init__(self, n_components: int = 10, *, k: Optional[int] = 30, epsilon: Union[float, str] = "median",
                 alpha: float = 1.0, time: float = 0.0, symmetrize: str = "average", tol: float = 0.0,
                 seed: int = 0, num_threads: Optional[int] = None) -> None:
        self.n_components = n_components
        self.k = k
        self.epsilon = epsilon
        self.alpha = alpha
        self.time = time
        self.symmetrize = symmetrize
        self.tol = tol
        self.seed = seed
        self.num_threads = num_threads

    def _check_params(self, N: int) -> None:
        m = self.n_components
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"n_components must be a positive integer; got {m!r}")
        if m + 1 > N:
            raise ValueError(f"n_components={m} needs at least {m + 1} points; got {N}")
        if isinstance(self.alpha, bool) or not np.isfinite(self.alpha):
            raise ValueError(f"alpha must be a finite number; got {self.alpha!r}")
        if isinstance(self.time, bool) or not np.isfinite(self.time) or self.time < 0:
            raise ValueError(f"time must be a finite number >= 0; got {self.time!r}")

    def fit(self, X: Any, y: Any = None, *, factors: Optional[CovarianceFactors] = None) -> "DiffusionMap":
        """Build the kernel of the rows of X (N, D) and its diffusion eigenpairs.

        ``factors`` (:class:`~congruence.diffusion.mahalanobis.CovarianceFactors`) switches to the
        Mahalanobis-like distance ½Δᵀ(C_i⁺ + C_j⁺)Δ on the same candidate graph."""
        import scipy.sparse as sp

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (N points, D dims); got shape {X.shape}")
        self._check_params(X.shape[0])
        if factors is None:
            ker = knn_gaussian_kernel(X, k=self.k, epsilon=self.epsilon, symmetrize=self.symmetrize,
                                      num_threads=self.num_threads)
        else:
            ker = mahalanobis_knn_kernel(X, factors, k=self.k, epsilon=self.epsilon, symmetrize=self.symmetrize,
                                         num_threads=self.num_threads)
        self.factors_ = factors
        K = ker.K
        q = np.asarray(K.sum(axis=1)).ravel()
        qa = q ** (-float(self.alpha))
        Ka = sp.diags(qa) @ K @ sp.diags(qa)
        d = np.asarray(Ka.sum(axis=1)).ravel()
        dh = 1.0 / np.sqrt(d)
        A = (sp.diags(dh) @ Ka @ sp.diags(dh)).tocsr()
        A = (A + A.T) * 0.5  # exact symmetry for the Lanczos solver
        w, V = top_eigenpairs(A, int(self.n_components) + 1, seed=self.seed, tol=self.tol)
        psi = V * dh[:, None]
        psi /= np.linalg.norm(psi, axis=0)
        self.eigenvalues_ = w
        self.eigenvectors_ = _sign_convention(psi)
        self.epsilon_ = ker.epsilon
        self.kernel_: GaussianKernel = ker
        self.q_ = q
        self._X = X
        return self

    def _embedding(self, psi: np.ndarray) -> np.ndarray:
        lam = self.eigenvalues_[1:]
        return psi[:, 1:] * (lam ** self.time if self.time else 1.0)

    def fit_transform(self, X: Any, y: Any = None, *, factors: Optional[CovarianceFactors] = None) -> np.ndarray:
        """Fit, then the training points' embedding Ψ_t, shape (N, n_components)."""
        return self.fit(X, factors=factors)._embedding(self.eigenvectors_)

    def transform(self, X: Any, *, factors: Optional[CovarianceFactors] = None) -> np.ndarray:
        """Nyström extension of the embedding to new points (rows of X), shape (n, n_components)."""
        return self._embedding(self.nystrom(X, factors=factors))

    def nystrom(self, X: Any, *, factors: Optional[CovarianceFactors] = None) -> np.ndarray:
        """ψ_0..ψ_m at new points (rows of X), shape (n, n_components + 1).

        For a Mahalanobis fit the distance to training point j is ½Δᵀ(C_o⁺ + C_j⁺)Δ with the new
        points' own ``factors`` when given, else ΔᵀC_j⁺Δ (METHODS §6.6's Library choice)."""
        from ..neighbors import knn

        if not hasattr(self, "eigenvalues_"):
            raise ValueError("this DiffusionMap is not fitted yet; call fit first")
        Xn = np.asarray(X, dtype=np.float64)
        if Xn.ndim != 2 or Xn.shape[1] != self._X.shape[1]:
            raise ValueError(f"X must be (n, {self._X.shape[1]}); got shape {Xn.shape}")
        if not np.isfinite(Xn).all():
            raise ValueError("X contains NaN or Inf values")
        if factors is not None and (factors.F.shape[0] != Xn.shape[0] or factors.F.shape[2] != Xn.shape[1]):
            raise ValueError("factors must be given for every new point, with the training points' dimension")
        N = self._X.shape[0]
        kk = N if self.k is None else min(int(self.k) + 1, N)
        out = np.empty((Xn.shape[0], self.eigenvalues_.size))
        a = float(self.alpha)
        rows = max(1, (1 << 24) // (kk * self.eigenvalues_.size))  # bound the (rows, kk, m) gather
        for r0 in range(0, Xn.shape[0], rows):
            d2, idx = knn(Xn[r0:r0 + rows], self._X, k=kk, precision="float64", num_threads=self.num_threads)
            d2, idx = np.asarray(d2, dtype=np.float64), np.asarray(idx, dtype=np.int64)
            if self.factors_ is not None:
                d2 = self._mahalanobis_to_training(Xn[r0:r0 + rows], idx,
                                                   None if factors is None else factors.F[r0:r0 + rows])
            w = np.exp(-d2 / (2.0 * self.epsilon_))
            qo = w.sum(axis=1)
            wa = w / (qo[:, None] ** a * self.q_[idx] ** a)
            p = wa / wa.sum(axis=1, keepdims=True)
            out[r0:r0 + rows] = np.einsum("nk,nkm->nm", p, self.eigenvectors_[idx])
        return out / self.eigenvalues_[None, :]

    def _mahalanobis_to_training(self, Xb: np.ndarray, idx: np.ndarray, Fb: Optional[np.ndarray]) -> np.ndarray:
        """d² of each new point (rows of Xb, factors Fb or None) to its candidate training points idx."""
        from .. import _cpu
        from .._resources import resolve_threads

        nb, kk = idx.shape
        flat = idx.ravel()
        Ft = self.factors_.F[flat]  # only the candidates' factors, not the whole training set
        if Fb is None:
            Fb = np.zeros((nb, Ft.shape[1], Ft.shape[2]))
            scale = 2.0  # ½(0 + ‖F_jΔ‖²)·2 = ΔᵀC_j⁺Δ
        else:
            scale = 1.0
        r = max(Ft.shape[1], Fb.shape[1])
        pad = lambda F: F if F.shape[1] == r else np.concatenate(  # noqa: E731
            [F, np.zeros((F.shape[0], r - F.shape[1], F.shape[2]))], axis=1)
        pts = np.concatenate([Xb, self._X[flat]])
        F = np.ascontiguousarray(np.concatenate([pad(Fb), pad(Ft)]))
        rows = np.repeat(np.arange(nb, dtype=np.int64), kk)
        cols = np.arange(nb, nb + flat.size, dtype=np.int64)
        d2 = np.empty(rows.size)
        _cpu.mahalanobis_pairs(pts, F, rows, cols, d2, resolve_threads(self.num_threads))
        return scale * d2.reshape(nb, kk)
