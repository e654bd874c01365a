"""CCA, SVCCA and PWCCA (METHODS.md §2.5–§2.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from .. import _engine as E
from ..cross_stats import CrossStats
from . import _common as C
from ._measure import measure
from .hsic_stats import HSICStats

__all__ = ["CCAResult", "SVCCAResult", "cca", "svcca", "pwcca"]

Stats = Union[CrossStats, HSICStats]

METHODS = ("auto", "qr", "covariance")
SVCCA_MODES = ("explained_variance", "singular_mass")
PWCCA_SIDES = ("first", "smaller")
PWCCA_COMPAT = (None, "google_svcca")


@dataclass(frozen=True, eq=False)
class CCAResult:
    """Canonical correlation analysis of two representations.

    Attributes
    ----------
    rho : ndarray of float64, shape (c,)
        Canonical correlations ρ_1 ≥ … ≥ ρ_c in [0, 1], c = min(rank X̃, rank Ỹ).
    mean_rho : float
        ρ̄ = (1/c)Σρ_i.
    r2 : float
        R²_CCA = (1/c)Σρ_i².
    rank_x, rank_y : int
        Numerical ranks kept by the rank-revealing truncation.
    n_constant_x, n_constant_y : int
        Constant features dropped before whitening (METHODS §1.3).
    method : str
        "qr" or "covariance".
    degenerate : bool
        One side spans the whole centred sample space (p ≥ n or q ≥ n): every ρ is 1.
    """

    rho: np.ndarray
    mean_rho: float
    r2: float
    rank_x: int
    rank_y: int
    n_constant_x: int
    n_constant_y: int
    method: str
    degenerate: bool


@dataclass(frozen=True, eq=False)
class SVCCAResult:
    """SVCCA: CCA of the top singular directions of each side.

    Attributes
    ----------
    rho, mean_rho, r2 : as :class:`CCAResult`
    k_x, k_y : int
        Singular directions kept on each side.
    n_constant_x, n_constant_y : int
    """

    rho: np.ndarray
    mean_rho: float
    r2: float
    k_x: int
    k_y: int
    n_constant_x: int
    n_constant_y: int


# ----------------------------------------------------------------------------------- core


@dataclass(frozen=True)
class _Canonical:
    """Canonical correlations plus ⟨ĥ_i, x̃_j⟩ for both sides (ĥ_i unit canonical variates)."""

    rho: np.ndarray  # (c,)
    proj_x: np.ndarray  # (c, p_kept)
    proj_y: np.ndarray  # (c, q_kept)
    rank_x: int
    rank_y: int
    method: str


def _qr(x: np.ndarray, y: np.ndarray, ux_eps: float = C.UNIT_ROUNDOFF, uy_eps: float = C.UNIT_ROUNDOFF) -> _Canonical:
    """QR path (accuracy reference): rank-revealing thin SVD X̃ = U_r S_r V_rᵀ (σ < n·u·σ_max
    dropped), Q_X = U_r; ρ = svd(Q_XᵀQ_Y)."""
    ux, sx, vtx = C.basis(x, ux_eps)
    uy, sy, vty = C.basis(y, uy_eps)
    A, rho, Bt = np.linalg.svd(ux.T @ uy, full_matrices=False)
    # ĥ_i = Q_X a_i, so ⟨ĥ_i, x̃_j⟩ = a_iᵀ Q_Xᵀ x̃_j = (Aᵀ S_r V_rᵀ)_ij.
    proj_x = A.T @ (sx[:, None] * vtx)
    proj_y = Bt @ (sy[:, None] * vty)
    return _Canonical(np.clip(rho, 0.0, 1.0), proj_x, proj_y, ux.shape[1], uy.shape[1], "qr")


def _covariance(mxx: np.ndarray, mxy: np.ndarray, myy: np.ndarray, n: int, epsilon: float,
                rtol: float = C.EIG_RTOL) -> _Canonical:
    """Covariance path (streamable): whiten Σ_xx = M_xx/(n−1) (+ εI) by float64 eigh, dropping
    λ ≤ 1e-10·λ_max; ρ = svd(Σ_xx^{-1/2} Σ_xy Σ_yy^{-1/2}); canonical weights w_i = Σ_xx^{-1/2}a_i and
    ⟨ĥ_i, x̃_j⟩ = (M_xx w_i)_j / √(w_iᵀM_xx w_i)."""
    sxx, sxy, syy = mxx / (n - 1), mxy / (n - 1), myy / (n - 1)
    if epsilon:
        sxx = sxx + epsilon * np.eye(sxx.shape[0])
        syy = syy + epsilon * np.eye(syy.shape[0])
    wx, lx = C.whitener(sxx, rtol)
    wy, ly = C.whitener(syy, rtol)
    fx, fy = wx / np.sqrt(lx), wy / np.sqrt(ly)  # Σ^{-1/2} restricted to the numerical range
    A, rho, Bt = np.linalg.svd(fx.T @ sxy @ fy, full_matrices=False)

    def proj(m: np.ndarray, w: np.ndarray) -> np.ndarray:
        mw = m @ w
        scale = np.sqrt(np.maximum(np.einsum("ji,ji->i", w, mw), np.finfo(np.float64).tiny))
        return (mw / scale).T

    return _Canonical(np.clip(rho, 0.0, 1.0), proj(mxx, fx @ A), proj(myy, fy @ Bt.T), len(lx), len(ly),
                      "covariance")


def _resolve_method(method: str, data: "C.Data | C.Blocks", epsilon: float, measure_name: str) -> str:
    E.check_choice(method, METHODS, "method")
    if isinstance(data, C.Blocks):
        if method == "qr":
            raise ValueError(f"{measure_name}: method='qr' needs host arrays; a streamed state or GPU inputs give only "
                             "the covariance blocks (use method='covariance' or 'auto')")
        return "covariance"
    if method == "auto":
        return "covariance" if epsilon else "qr"
    if method == "qr" and epsilon:
        raise ValueError(f"{measure_name}: epsilon > 0 regularises the covariances; use method='covariance'")
    return method


def _canonical(data: "C.Data | C.Blocks", method: str, epsilon: float, name: str) -> tuple[_Canonical, Any]:
    """Run CCA on the non-constant features; warn about dropped constants and degeneracy."""
    cx, cy = data.const_x, data.const_y
    if cx.all():
        raise C.no_features("X", name)
    if cy.all():
        raise C.no_features("Y", name)
    C.warn_constant(cx, cy, name)
    kx, ky = ~cx, ~cy
    if method == "qr":
        can = _qr(data.x[:, kx], data.y[:, ky], data.roundoff_x, data.roundoff_y)
    else:
        blocks = data.blocks() if isinstance(data, C.Data) else data
        blocks.full(name)
        can = _covariance(blocks.mxx[np.ix_(kx, kx)], blocks.mxy[np.ix_(kx, ky)], blocks.myy[np.ix_(ky, ky)],
                          blocks.n, epsilon, blocks.eig_rtol)
    n = data.n
    p, q = int(kx.sum()), int(ky.sum())
    degenerate = p >= n or q >= n or max(can.rank_x, can.rank_y) >= n - 1
    if degenerate:
        C.warn(f"{name}: CCA is degenerate here ({p} and {q} non-constant features, ranks {can.rank_x} and "
               f"{can.rank_y}, for {n} samples): a side that spans the whole centred sample space makes every "
               "canonical correlation 1. Reduce the widths first, e.g. with svcca()", C.DegenerateCCAWarning)
    return can, degenerate


def _check_epsilon(epsilon: Any) -> float:
    return C.check_nonnegative(epsilon, "epsilon")


# ----------------------------------------------------------------------------------- CCA


@measure("cca", invariances=("invertible_linear", "orthogonal", "isotropic_scaling", "translation", "permutation"),
         symmetric=True, streamable=True,
         reference="Hotelling 1936; as a network similarity: Raghu et al. 2017, arXiv:1706.05806")
def cca(X: Any = None, Y: Any = None, *, stats: Optional[Stats] = None, method: str = "auto",
        epsilon: float = 0.0) -> CCAResult:
    """Canonical correlation analysis between two representations (METHODS §2.5).

    Q_X, Q_Y: orthonormal bases of col(X̃), col(Ỹ) (constant features dropped); the canonical
    correlations ρ_1 ≥ … ≥ ρ_c are the singular values of Q_XᵀQ_Y, c = min(rank X̃, rank Ỹ);
    ρ̄ = ‖Q_XᵀQ_Y‖_*/c and R²_CCA = ‖Q_XᵀQ_Y‖²_F/c.

    Parameters
    ----------
    X : array, shape (n_samples, p), optional
    Y : array, shape (n_samples, q), optional
        Host (numpy, CPU torch; copied once to float64) or GPU (torch CUDA, cupy; accumulated into a
        float64 CrossStats on the device, whose d×d blocks are copied to the host). Any float dtype.
    stats : CrossStats or HSICStats, optional
        A streamed state instead of X and Y (full Gram blocks); uses the covariance path, exact.
    method : {"auto", "qr", "covariance"}
        "qr": the accuracy reference, a rank-revealing thin SVD of each centred input (singular
        values σ < n·u·σ_max dropped, u = 2.2e-16), O(n(p² + q²)). "covariance": whitening of
        Σ_xx, Σ_yy by float64 eigh (eigenvalues λ ≤ 1e-10·λ_max dropped), streamable, squares the
        condition number. "auto": "qr" for host arrays, "covariance" for stats=, GPU inputs or
        epsilon > 0.
    epsilon : float
        Added to the diagonals of the covariances Σ = M/(n−1) before whitening (google/svcca's
        regulariser); default 0. Needs the covariance path.

    Returns
    -------
    CCAResult
        ``rho``, ``mean_rho``, ``r2``, ranks, dropped-constant counts, method, degenerate flag.

    Warns
    -----
    DegenerateCCAWarning
        When p ≥ n or q ≥ n (more precisely: a kept rank reaches n − 1, the dimension of the
        centred sample space): every ρ is 1. Use :func:`svcca`.
    ConstantFeatureWarning
        When constant features were dropped.

    Notes
    -----
    Invariant to any invertible linear map of either argument (hence to orthogonal maps, scaling,
    translation, permutation); symmetric. Rank-deficient inputs are truncated to their numerical
    rank (never a crash or NaN). An input whose features are all constant raises ValueError.
    """
    name = "cca"
    epsilon = _check_epsilon(epsilon)
    E.check_choice(method, METHODS, "method")
    data = C.gather(X, Y, stats, measure=name, min_n=2)
    route = _resolve_method(method, data, epsilon, name)
    can, degenerate = _canonical(data, route, epsilon, name)
    return _result(can, data, degenerate)


def _result(can: _Canonical, data: Any, degenerate: bool) -> CCAResult:
    rho = can.rho
    return CCAResult(rho=rho, mean_rho=float(rho.mean()), r2=float(np.mean(rho * rho)), rank_x=can.rank_x,
                     rank_y=can.rank_y, n_constant_x=int(data.const_x.sum()), n_constant_y=int(data.const_y.sum()),
                     method=can.method, degenerate=degenerate)


# ----------------------------------------------------------------------------------- SVCCA


def _choose_k(s: np.ndarray, threshold: float, k: Optional[int], mode: str) -> int:
    """Smallest k with Σ_{i≤k} m_i / Σ m_i ≥ threshold, m = s² (explained variance) or s (singular
    mass); or the fixed k, capped at the numerical rank."""
    r = s.shape[0]
    if k is not None:
        return min(k, r)
    mass = s * s if mode == "explained_variance" else s
    frac = np.cumsum(mass) / mass.sum()
    return min(r, int(np.count_nonzero(frac < threshold)) + 1)


def _pair(k: Any) -> tuple[Optional[int], Optional[int]]:
    if k is None:
        return None, None
    if isinstance(k, (tuple, list)):
        if len(k) != 2:
            raise ValueError(f"k must be a positive integer or a pair (k_x, k_y); got {k!r}")
        return C.check_positive_int(k[0], "k[0]"), C.check_positive_int(k[1], "k[1]")
    kk = C.check_positive_int(k, "k")
    return kk, kk


@measure("svcca", invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"), symmetric=True,
         streamable=True, reference="Raghu, Gilmer, Yosinski & Sohl-Dickstein 2017, arXiv:1706.05806")
def svcca(X: Any = None, Y: Any = None, *, threshold: float = 0.99, k: Union[int, Sequence[int], None] = None,
          mode: str = "explained_variance", stats: Optional[Stats] = None,
          return_result: bool = False) -> Union[float, SVCCAResult]:
    """Singular vector CCA (METHODS §2.6).

    Centre, X̃ = USVᵀ, keep the smallest k with Σ_{i≤k}s_i²/Σs_i² ≥ threshold (or a fixed k),
    X′ = X̃V_k; the same for Y; then CCA (§2.5) of X′ and Y′; report ρ̄.

    Parameters
    ----------
    X : array, shape (n_samples, p), optional
    Y : array, shape (n_samples, q), optional
        As :func:`cca`.
    threshold : float in (0, 1]
        Fraction of the explained variance (or singular mass) to keep; 0.99 (Raghu et al.,
        Kornblith et al.).
    k : int or (int, int), optional
        Fixed numbers of directions (the google/svcca tutorial uses 20); overrides ``threshold``.
        Capped at the numerical rank.
    mode : {"explained_variance", "singular_mass"}
        Threshold Σs² (default) or Σs (anatome's convention).
    stats : CrossStats or HSICStats, optional
        Streamed state: V from eigh(M_xx), reduced covariances V_xᵀM_xxV_x etc. (exact; eigenvalues
        ≤ 1e-10·λ_max count as zero).
    return_result : bool
        Return an :class:`SVCCAResult` (ρ, ρ̄, R², k_x, k_y) instead of ρ̄.

    Returns
    -------
    float or SVCCAResult

    Notes
    -----
    Invariant to orthogonal maps, isotropic scaling, translation and permutation (not to general
    invertible maps: they change the spectrum that picks the directions); symmetric.
    """
    name = "svcca"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not (0.0 < float(threshold) <= 1.0):
        raise ValueError(f"threshold must be a number in (0, 1]; got {threshold!r}")
    E.check_choice(mode, SVCCA_MODES, "mode")
    kx_fixed, ky_fixed = _pair(k)
    data = C.gather(X, Y, stats, measure=name, min_n=2)
    cx, cy = data.const_x, data.const_y
    if cx.all():
        raise C.no_features("X", name)
    if cy.all():
        raise C.no_features("Y", name)
    if isinstance(data, C.Data):
        ux, sx, _ = C.basis(data.x[:, ~cx], data.roundoff_x)
        uy, sy, _ = C.basis(data.y[:, ~cy], data.roundoff_y)
        kx = _choose_k(sx, threshold, kx_fixed, mode)
        ky = _choose_k(sy, threshold, ky_fixed, mode)
        rho = np.linalg.svd(ux[:, :kx].T @ uy[:, :ky], compute_uv=False)
    else:
        data.full(name)
        vx, lx = C.whitener(data.mxx[np.ix_(~cx, ~cx)], data.eig_rtol)  # eigenpairs, λ descending
        vy, ly = C.whitener(data.myy[np.ix_(~cy, ~cy)], data.eig_rtol)
        kx = _choose_k(np.sqrt(lx), threshold, kx_fixed, mode)
        ky = _choose_k(np.sqrt(ly), threshold, ky_fixed, mode)
        cross = vx[:, :kx].T @ data.mxy[np.ix_(~cx, ~cy)] @ vy[:, :ky]
        rho = np.linalg.svd(cross / np.sqrt(lx[:kx])[:, None] / np.sqrt(ly[:ky])[None, :], compute_uv=False)
    rho = np.clip(rho, 0.0, 1.0)
    result = SVCCAResult(rho=rho, mean_rho=float(rho.mean()), r2=float(np.mean(rho * rho)), k_x=kx, k_y=ky,
                         n_constant_x=int(cx.sum()), n_constant_y=int(cy.sum()))
    return result if return_result else result.mean_rho


# ----------------------------------------------------------------------------------- PWCCA


def _weighted(can: _Canonical, first: bool) -> float:
    proj = can.proj_x if first else can.proj_y
    alpha = np.abs(proj).sum(axis=1)
    return float((alpha * can.rho).sum() / alpha.sum())


def _google_pwcca(data: C.Data, epsilon: float) -> float:
    """google/svcca ``compute_pwcca`` with the acts1/acts2 bug fixed: uncentred directions
    uᵢᵀ(acts − μ) + μ of the side with fewer kept neurons, QR-orthonormalised, weights
    Σ_j|Pᵀacts| on the uncentred activations of that side, times the canonical correlations."""
    kx, ky = ~data.const_x, ~data.const_y
    xc, yc = data.x[:, kx], data.y[:, ky]
    mx, my = data.mean_x[kx], data.mean_y[ky]
    n = data.n
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    xmax, ymax = np.abs(sxx).max(), np.abs(syy).max()
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    if epsilon:
        sxx = sxx + epsilon * np.eye(sxx.shape[0])
        syy = syy + epsilon * np.eye(syy.shape[0])

    def inv_sqrt(s: np.ndarray) -> np.ndarray:  # symmetric pseudo inverse square root
        w, lam = C.whitener(s)
        return (w / np.sqrt(lam)) @ w.T

    u, rho, vt = np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy))
    u, v = C.sign_fix(u), C.sign_fix(vt.T)
    rho = np.clip(rho, 0.0, 1.0)
    if xc.shape[1] <= yc.shape[1]:
        dirns, acts = xc @ u + mx, xc + mx  # columns: directions over the samples
    else:
        dirns, acts = yc @ v + my, yc + my
    P, _ = np.linalg.qr(dirns)
    weights = np.abs(P.T @ acts).sum(axis=1)
    return float((weights * rho).sum() / weights.sum())


@measure("pwcca", invariances=("isotropic_scaling", "translation", "permutation"),
         invariances_second=("invertible_linear", "orthogonal", "isotropic_scaling", "translation", "permutation"),
         symmetric=False, streamable=True, reference="Morcos, Raghu & Bengio 2018, arXiv:1806.05759")
def pwcca(X: Any = None, Y: Any = None, *, side: str = "first", symmetric: bool = False,
          compat: Optional[str] = None, stats: Optional[Stats] = None, method: str = "auto",
          epsilon: float = 0.0) -> float:
    """Projection-weighted CCA (METHODS §2.7).

    From the CCA of X̃, Ỹ: canonical weights w_i, variates h_i = X̃w_i, ĥ_i = h_i/‖h_i‖;
    α_i = Σ_j|⟨ĥ_i, x̃_j⟩| over the centred neuron columns of X; ρ_PW(X, Y) = Σα_iρ_i/Σα_i.
    Streamed: ⟨ĥ_i, x̃_j⟩ = (M_xxw_i)_j/√(w_iᵀM_xxw_i).

    Parameters
    ----------
    X : array, shape (n_samples, p), optional
    Y : array, shape (n_samples, q), optional
        As :func:`cca`; widths may differ.
    side : {"first", "smaller"}
        Whose neurons weight the correlations: the first argument (Morcos et al.) or the side with
        fewer retained (non-constant) neurons, X on ties (google/svcca's rule).
    symmetric : bool
        Return ½(ρ_PW(X, Y) + ρ_PW(Y, X)) (then ``side`` must stay "first").
    compat : {None, "google_svcca"}
        "google_svcca" reproduces google/svcca's ``compute_pwcca`` convention: uncentred canonical
        directions uᵢᵀ(acts − μ) + μ (u: singular vectors of the whitened cross-covariance, signs per
        METHODS §0), QR-orthonormalised, weights Σ_j|Pᵀacts| on the *uncentred* activations, always
        from the side with fewer retained neurons — **without** its bug (the else-branch built the
        second layer's directions from acts1, raising IndexError for different widths and giving
        wrong weights for equal widths; google/svcca PR #9). Needs host arrays; ``side`` is ignored.
    stats : CrossStats or HSICStats, optional
        Streamed state (covariance path, exact).
    method : {"auto", "qr", "covariance"}
    epsilon : float
        As :func:`cca`.

    Returns
    -------
    float

    Notes
    -----
    With the default ``side="first"``: invariant to isotropic scaling, translation and feature
    permutation of X, **not** to orthogonal maps of X (α depends on X's neuron basis); invariant
    to any invertible linear map of Y (ρ_i and the canonical variates of X depend on Y only through
    col(Ỹ)). Asymmetric.
    """
    name = "pwcca"
    E.check_choice(side, PWCCA_SIDES, "side")
    if compat not in PWCCA_COMPAT:
        raise ValueError(f"compat must be None or 'google_svcca'; got {compat!r}")
    if symmetric and side != "first":
        raise ValueError("symmetric=True averages both directions; leave side='first'")
    epsilon = _check_epsilon(epsilon)
    E.check_choice(method, METHODS, "method")
    data = C.gather(X, Y, stats, measure=name, min_n=2)
    if compat == "google_svcca":
        if not isinstance(data, C.Data):
            raise ValueError("pwcca(compat='google_svcca') weights by the uncentred activations themselves; it needs "
                             "host arrays X and Y, not a streamed state or GPU inputs")
        _canonical(data, "qr", 0.0, name)  # the same validation and warnings as the default path
        value = _google_pwcca(data, epsilon)
        if symmetric:
            swapped = C.Data(x=data.y, y=data.x, const_x=data.const_y, const_y=data.const_x, mean_x=data.mean_y,
                             mean_y=data.mean_x, roundoff_x=data.roundoff_y, roundoff_y=data.roundoff_x)
            value = 0.5 * (value + _google_pwcca(swapped, epsilon))
        return value
    route = _resolve_method(method, data, epsilon, name)
    can, _ = _canonical(data, route, epsilon, name)
    if symmetric:
        return 0.5 * (_weighted(can, True) + _weighted(can, False))
    first = True if side == "first" else int((~data.const_x).sum()) <= int((~data.const_y).sum())
    return _weighted(can, first)
