"""Geometric harmonics (Coifman & Lafon 2006b; METHODS.md §6.6): extending a function known on the
training points to new points.

With the symmetric kernel W on the training points (the same Gaussian kernel, not normalised),
W = Σ_l σ_l φ_l φ_lᵀ; keeping σ_l ≥ ``cutoff``·σ_0 (1e-3, METHODS' Library choice), a function f
on the training points extends as f̂(o) = Σ_l σ_l⁻¹ ⟨f, φ_l⟩ Σ_j w(o, o_j) φ_l(j), with w(o, ·) the
kernel row of the new point over its k nearest training points. On a training point the
extension reproduces f's projection onto the kept harmonics.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ._eigen import top_eigenpairs
from .kernel import knn_gaussian_kernel

__all__ = ["GeometricHarmonics"]


class GeometricHarmonics:
    """Out-of-sample extension of functions on a point set.

    Parameters
    ----------
    n_harmonics : int
        Eigenpairs of W computed (then cut at ``cutoff``·σ_0).
    k : int or None
        Neighbours per point (None: every pair).
    epsilon : float, "median" or "bgh"
    cutoff : float
    seed : int
    num_threads : int, optional

    Attributes
    ----------
    sigma_ : ndarray
        Kept eigenvalues, descending.
    phi_ : ndarray, shape (N, n_kept)
    coef_ : ndarray, shape (n_kept, n_outputs)
        σ_l⁻¹⟨f, φ_l⟩ for each output column of f.
    epsilon_ : float
    """

    def __init__(self, n_harmonics: int = 100, *, k: Optional[int] = 30, epsilon: Union[float, str] = "median",
                 cutoff: float = 1e-3, seed: int = 0, num_threads: Optional[int] = None) -> None:
        self.n_harmonics = n_harmonics
        self.k = k
        self.epsilon = epsilon
        self.cutoff = cutoff
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, X: Any, f: Any) -> "GeometricHarmonics":
        """Fit the harmonics of the rows of X (N, D) and the coefficients of f (N,) or (N, n_out)."""
        X = np.asarray(X, dtype=np.float64)
        F = np.asarray(f, dtype=np.float64)
        if F.ndim == 1:
            F = F[:, None]
        if X.ndim != 2 or F.ndim != 2 or F.shape[0] != X.shape[0]:
            raise ValueError(f"X must be (N, D) and f (N,) or (N, n_out) with the same N; got {X.shape} and "
                             f"{np.shape(f)}")
        if not np.isfinite(F).all():
            raise ValueError("f contains NaN or Inf values")
        m = self.n_harmonics
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"n_harmonics must be a positive integer; got {m!r}")
        if not (np.isfinite(self.cutoff) and 0 < self.cutoff < 1):
            raise ValueError(f"cutoff must be in (0, 1); got {self.cutoff!r}")
        ker = knn_gaussian_kernel(X, k=self.k, epsilon=self.epsilon, num_threads=self.num_threads)
        s, V = top_eigenpairs(ker.K, int(m), seed=self.seed)
        keep = s >= self.cutoff * s[0]
        self.sigma_, self.phi_ = s[keep], V[:, keep]
        self.coef_ = (self.phi_.T @ F) / self.sigma_[:, None]
        self.epsilon_ = ker.epsilon
        self._X = X
        self._squeeze = np.ndim(f) == 1
        return self

    def predict(self, X: Any) -> np.ndarray:
        """f̂ at new points (rows of X): shape (n,) or (n, n_out) like the fitted f."""
        from ..neighbors import knn

        if not hasattr(self, "coef_"):
            raise ValueError("this GeometricHarmonics is not fitted yet; call fit first")
        Xn = np.asarray(X, dtype=np.float64)
        if Xn.ndim != 2 or Xn.shape[1] != self._X.shape[1]:
            raise ValueError(f"X must be (n, {self._X.shape[1]}); got shape {Xn.shape}")
        N = self._X.shape[0]
        kk = N if self.k is None else min(int(self.k) + 1, N)
        d2, idx = knn(Xn, self._X, k=kk, precision="float64", num_threads=self.num_threads)
        w = np.exp(-np.asarray(d2, dtype=np.float64) / (2.0 * self.epsilon_))
        G = self.phi_ @ self.coef_  # (N, n_out): Σ_l φ_l(j) σ_l⁻¹⟨f, φ_l⟩
        out = np.einsum("nk,nko->no", w, G[np.asarray(idx, dtype=np.int64)])
        return out[:, 0] if self._squeeze else out
