"""The map between two networks' observations through intrinsic coordinates (Bertalan, Dietrich &
Kevrekidis 2020; METHODS.md §6.7–6.8), on arrays.

Given, at the same training inputs, observations o_A of network A (its outputs or ≥ 2d+1 chosen
neurons; shape (N, D_A)) with their local covariances, and observations o_B of network B:

1. a Mahalanobis-like diffusion map of o_A (:class:`~congruence.diffusion.DiffusionMap` with
   ``factors``): its eigenvectors are functions of the input geometry only, not of A's observation
   map;
2. the d non-harmonic eigenvectors by local linear regression (§6.5) give the intrinsic
   coordinates Φ_A (scaled by √N to unit mean square). Without ``intrinsic_dim``, d is the number
   of residuals above 0.9 (``strategy="threshold"``), cross-checked against the modal rank of the
   local covariances; a disagreement warns;
3. h_A: o_A → Φ_A is the Nyström extension of the diffusion map, and g_B: Φ_A → o_B geometric
   harmonics (Coifman & Lafon 2006b) fitted on (Φ_A(x_i), o_B(x_i)), with a dense kernel below
   4,000 points and the Berry–Giannakis–Harlim bandwidth (a kNN-truncated narrow kernel needs
   many more harmonics for the same accuracy); T_{A→B} = g_B ∘ h_A.

The held-out error e = ‖T(o_A(x′)) − o_B(x′)‖_F / ‖o_B(x′) − mean‖_F (pooled, and per feature).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from .diffusion_map import DiffusionMap
from .harmonics import GeometricHarmonics
from .llr import LLRSelection, llr_selection, top_residuals
from .mahalanobis import CovarianceFactors

__all__ = ["TransformationMap", "TransformationWarning", "IntrinsicCoordinates", "intrinsic_coordinates",
           "relative_errors", "EQUIVALENCE_THRESHOLD"]

#: Held-out relative error below which two observables are "in the same equivalence class"
#: (METHODS §6.7's configurable default).
EQUIVALENCE_THRESHOLD = 0.05
#: Geometric harmonics use a dense kernel up to this many training points, else ``DENSE_HARMONICS_K``
#: neighbours.
DENSE_HARMONICS_BELOW = 4000
DENSE_HARMONICS_K = 256
#: LLR residuals are evaluated on at most this many training points (its cost is O(n²) per vector).
LLR_SUBSAMPLE = 600


class TransformationWarning(UserWarning):
    """The transformation's assumptions look violated (too few measurements for the intrinsic
    dimension, or two estimates of the dimension disagree)."""


def relative_errors(predicted: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Pooled ‖P − T‖_F/‖T − mean‖_F and the same per column (0 where a constant column is matched
    exactly, inf where it is not)."""
    diff = np.sum((predicted - target) ** 2, axis=0)
    spread = np.sum((target - target.mean(axis=0)) ** 2, axis=0)
    pooled = float(np.sqrt(diff.sum() / spread.sum())) if spread.sum() > 0 else (0.0 if diff.sum() == 0 else np.inf)
    per = np.full(diff.shape, np.inf)
    np.divide(diff, spread, out=per, where=spread > 0)
    per[(spread == 0) & (diff == 0)] = 0.0
    return pooled, np.sqrt(per)


def _as_2d(a: Any, name: str) -> np.ndarray:
    A = np.asarray(a, dtype=np.float64)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[0] < 1:
        raise ValueError(f"{name} must be (N,) or (N, D); got shape {np.shape(a)}")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return A


@dataclass(frozen=True)
class IntrinsicCoordinates:
    """Intrinsic coordinates of one set of observations (steps 1–2 of the module notes).

    Attributes
    ----------
    coordinates : ndarray, shape (N, d)
        Φ = the selected ψ_k scaled by √N (unit mean square).
    diffusion_map : DiffusionMap
    selection : LLRSelection
        All residuals; ``selected`` holds the d ψ indices (1-based) used.
    intrinsic_dim : int
    intrinsic_dim_llr : int
        Residuals above 0.9.
    covariance_rank : int or None
        Modal kept rank of the local covariances (None without factors).
    """

    coordinates: np.ndarray
    diffusion_map: DiffusionMap
    selection: LLRSelection
    intrinsic_dim: int
    intrinsic_dim_llr: int
    covariance_rank: Optional[int]


def intrinsic_coordinates(obs: Any, *, factors: Optional[CovarianceFactors] = None,
                          intrinsic_dim: Optional[int] = None, n_components: int = 10, k: Optional[int] = 30,
                          epsilon: Union[float, str] = "median", seed: int = 0, num_threads: Optional[int] = None,
                          stacklevel: int = 2) -> IntrinsicCoordinates:
    """Φ of observations (N, D): a (Mahalanobis, with ``factors``) diffusion map and the LLR selection
    of its d non-harmonic eigenvectors; d = ``intrinsic_dim`` or the number of residuals above 0.9
    (warns when that differs from the local covariances' modal rank)."""
    A = _as_2d(obs, "obs")
    N = A.shape[0]
    m = n_components
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"n_components must be a positive integer; got {m!r}")
    if intrinsic_dim is not None and (isinstance(intrinsic_dim, bool) or not isinstance(intrinsic_dim, (int, np.integer))
                                      or not 1 <= intrinsic_dim <= m):
        raise ValueError(f"intrinsic_dim must be an integer in [1, n_components={m}]; got {intrinsic_dim!r}")
    dm = DiffusionMap(int(m), k=k, epsilon=epsilon, seed=seed, num_threads=num_threads).fit(A, factors=factors)
    psi = dm.eigenvectors_[:, 1:]
    sel = llr_selection(psi, strategy="threshold", n_subsample=LLR_SUBSAMPLE if N > LLR_SUBSAMPLE else None, seed=seed)
    d_llr = int(sel.selected.size)
    rank = None if factors is None else int(np.bincount(factors.rank).argmax())
    d = int(intrinsic_dim) if intrinsic_dim is not None else d_llr
    if intrinsic_dim is None and rank is not None and rank != d:
        warnings.warn(f"the LLR selection finds {d} intrinsic coordinates but the local covariances have modal rank "
                      f"{rank}; using {d} (pass intrinsic_dim to choose)", TransformationWarning,
                      stacklevel=stacklevel)
    chosen = top_residuals(sel.residuals, d)
    sel = LLRSelection(residuals=sel.residuals, selected=(chosen + 1).astype(np.int64), eps_reg=sel.eps_reg)
    return IntrinsicCoordinates(coordinates=psi[:, chosen] * np.sqrt(N), diffusion_map=dm, selection=sel,
                                intrinsic_dim=d, intrinsic_dim_llr=d_llr, covariance_rank=rank)


class TransformationMap:
    """T_{A→B} = g_B ∘ h_A from A's observations to B's, through A's intrinsic coordinates.

    Parameters
    ----------
    intrinsic_dim : int, optional
        d, the number of intrinsic coordinates. Default: estimated (see the module notes).
    n_components : int
        Diffusion eigenvectors computed before the LLR selection (≥ d; default 10).
    k : int or None
        Neighbours of the diffusion kernel (None: dense).
    epsilon : float, "median" or "bgh"
        Bandwidth of the diffusion kernel.
    harmonics_k : int, None or "auto"
        Neighbours of the geometric-harmonics kernel; "auto": dense below 4,000 training points,
        else 256.
    harmonics_epsilon : float, "median" or "bgh"
    n_harmonics : int
        Geometric harmonics computed (then cut at 1e-3·σ_0).
    seed : int
    num_threads : int, optional

    Attributes
    ----------
    diffusion_map_ : DiffusionMap
        Fitted on A's training observations (with the Mahalanobis factors when given).
    selection_ : LLRSelection
        Residuals r_1..r_m; ``selected`` are the d coordinates used (1-based ψ indices).
    intrinsic_dim_ : int
        d used.
    intrinsic_dim_llr_ : int
        Number of residuals above 0.9.
    covariance_rank_ : int or None
        Modal kept rank of A's local covariances (None without factors).
    coordinates_ : ndarray, shape (N, d)
        Φ_A on the training points.
    harmonics_ : GeometricHarmonics
        g_B.

    References
    ----------
    Bertalan, Dietrich & Kevrekidis (2020), "Transformations between deep neural networks",
    arXiv:2007.05646; Dsilva et al. (2018), ACHA 44; Coifman & Lafon (2006b), ACHA 21.
    """

    def __init__(self, intrinsic_dim: Optional[int] = None, *, n_components: int = 10, k: Optional[int] = 30,
                 epsilon: Union[float, str] = "median", harmonics_k: Union[int, None, str] = "auto",
                 harmonics_epsilon: Union[float, str] = "bgh", n_harmonics: int = 200, seed: int = 0,
                 num_threads: Optional[int] = None) -> None:
        self.intrinsic_dim = intrinsic_dim
        self.n_components = n_components
        self.k = k
        self.epsilon = epsilon
        self.harmonics_k = harmonics_k
        self.harmonics_epsilon = harmonics_epsilon
        self.n_harmonics = n_harmonics
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, obs_a: Any, obs_b: Any, *, factors: Optional[CovarianceFactors] = None) -> "TransformationMap":
        """Fit on A's observations (N, D_A), their local-covariance ``factors`` (recommended: without
        them the kernel is Euclidean in A's observation space) and B's observations (N,) or (N, D_B)."""
        A = _as_2d(obs_a, "obs_a")
        B = _as_2d(obs_b, "obs_b")
        N = A.shape[0]
        if B.shape[0] != N:
            raise ValueError(f"obs_a and obs_b must have the same number of rows; got {N} and {B.shape[0]}")
        hk = self.harmonics_k
        if not (hk is None or hk == "auto" or (isinstance(hk, (int, np.integer)) and not isinstance(hk, bool)
                                               and hk >= 1)):
            raise ValueError(f"harmonics_k must be a positive integer, None or 'auto'; got {hk!r}")
        ic = intrinsic_coordinates(A, factors=factors, intrinsic_dim=self.intrinsic_dim, n_components=self.n_components,
                                   k=self.k, epsilon=self.epsilon, seed=self.seed, num_threads=self.num_threads,
                                   stacklevel=3)
        self.diffusion_map_ = ic.diffusion_map
        self.selection_ = ic.selection
        self.intrinsic_dim_ = ic.intrinsic_dim
        self.intrinsic_dim_llr_ = ic.intrinsic_dim_llr
        self.covariance_rank_ = ic.covariance_rank
        self.coordinates_ = ic.coordinates
        self._scale = np.sqrt(N)
        d = ic.intrinsic_dim
        if A.shape[1] < 2 * d + 1:
            warnings.warn(f"A is observed through {A.shape[1]} dimensions, fewer than 2d+1 = {2 * d + 1} for d = {d}: "
                          "its intrinsic coordinates may fold (Whitney) and lose what B computes; observe more "
                          "neurons", TransformationWarning, stacklevel=2)
        if hk == "auto":
            hk = None if N < DENSE_HARMONICS_BELOW else DENSE_HARMONICS_K
        self.harmonics_ = GeometricHarmonics(min(int(self.n_harmonics), N), k=hk, epsilon=self.harmonics_epsilon,
                                             seed=self.seed, num_threads=self.num_threads).fit(self.coordinates_, B)
        self._n_out = B.shape[1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "harmonics_"):
            raise ValueError("this TransformationMap is not fitted yet; call fit first")

    def coordinates(self, obs_a: Any, *, factors: Optional[CovarianceFactors] = None) -> np.ndarray:
        """h_A: Φ_A at new A observations (n, D_A) by Nyström, shape (n, d)."""
        self._check_fitted()
        A = _as_2d(obs_a, "obs_a")
        psi = self.diffusion_map_.nystrom(A, factors=factors)
        return psi[:, self.selection_.selected] * self._scale

    def predict(self, obs_a: Any, *, factors: Optional[CovarianceFactors] = None) -> np.ndarray:
        """T(o_A) = g_B(h_A(o_A)), shape (n, D_B)."""
        self._check_fitted()
        return self.harmonics_.predict(self.coordinates(obs_a, factors=factors)).reshape(-1, self._n_out)

    def score(self, obs_a: Any, obs_b: Any, *, factors: Optional[CovarianceFactors] = None) -> tuple[float, np.ndarray]:
        """Held-out relative errors (pooled, per feature of B) of T at new (o_A, o_B) pairs."""
        B = _as_2d(obs_b, "obs_b")
        P = self.predict(obs_a, factors=factors)
        if P.shape != B.shape:
            raise ValueError(f"obs_b must be ({P.shape[0]}, {self._n_out}); got shape {B.shape}")
        return relative_errors(P, B)
