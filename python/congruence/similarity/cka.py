"""Linear CKA and debiased linear CKA (METHODS.md §2.1, §2.2)."""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import numpy as np

from .._arrays import inputs_on_device
from ..cross_stats import CrossStats
from . import _common as C
from ._measure import measure
from .hsic_stats import HSICStats

__all__ = ["linear_cka", "debiased_cka"]

_CKA_INVARIANCES = ("orthogonal", "isotropic_scaling", "translation", "permutation")
_KORNBLITH = "Kornblith, Norouzi, Lee & Hinton 2019, arXiv:1905.00414"

Stats = Union[CrossStats, HSICStats]


#: A self term HSIC(K, K) at most this fraction of its largest summand is zero up to rounding.
ZERO_RTOL = 1e-12


def _ratio(num: float, dx: float, dy: float, measure_name: str, scale_x: float = 0.0, scale_y: float = 0.0) -> float:
    """num / sqrt(dx·dy), NaN with a warning when the denominator is not positive (up to rounding:
    a factor <= ZERO_RTOL·its scale counts as 0)."""
    if not (dx > ZERO_RTOL * scale_x and dy > ZERO_RTOL * scale_y and dx > 0 and dy > 0):
        C.warn(f"{measure_name} is undefined for these inputs: the self-similarity terms are HSIC(K, K) = {dx:.6g}, "
               f"HSIC(L, L) = {dy:.6g} (a denominator <= 0 up to rounding, e.g. an input whose features are all "
               "constant); "
               "returning NaN", C.UndefinedSimilarityWarning)
        return math.nan
    return float(num / math.sqrt(dx * dy))


def _gram_sums(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """⟨K_c, L_c⟩, ⟨K_c, K_c⟩, ⟨L_c, L_c⟩ of the centred Grams K_c = X̃X̃ᵀ, L_c = ỸỸᵀ, by row blocks
    (no n×n matrix is resident)."""
    n = x.shape[0]
    step = C.gram_row_blocks(n)
    kl = kk = ll = 0.0
    for r0 in range(0, n, step):
        K = x[r0:r0 + step] @ x.T
        L = y[r0:r0 + step] @ y.T
        kl += float(np.vdot(K, L))
        kk += float(np.vdot(K, K))
        ll += float(np.vdot(L, L))
    return kl, kk, ll


@measure("linear_cka", invariances=_CKA_INVARIANCES, symmetric=True, streamable=True, reference=_KORNBLITH)
def linear_cka(X: Any = None, Y: Any = None, *, stats: Optional[Stats] = None, path: str = "auto") -> float:
    """Linear centred kernel alignment (the RV coefficient).

    CKA_lin = HSIC₀(K, L)/√(HSIC₀(K, K)·HSIC₀(L, L)) with K = XXᵀ, L = YYᵀ,
    HSIC₀(K, L) = tr(KHLH)/(n−1)², which equals ‖M_xy‖²_F/(‖M_xx‖_F‖M_yy‖_F) with the centred
    co-moments M_xy = X̃ᵀỸ (Kornblith et al. 2019; METHODS §2.1).

    Parameters
    ----------
    X : array, shape (n_samples, p), optional
    Y : array, shape (n_samples, q), optional
        Activations of two layers on the same samples (rows aligned). float16 / bfloat16 / float32 /
        float64; numpy, CPU torch, or GPU (torch CUDA, cupy). Host inputs are copied once to float64
        and centred (two-pass). GPU inputs are accumulated into a float64
        :class:`~congruence.CrossStats` **on the device**; only the d×d blocks M_xx, M_xy, M_yy
        are then copied to the host (as float64), never the n×d data.
    stats : CrossStats or HSICStats, optional
        A streamed state instead of X and Y; the value is exact (it needs the full Gram blocks,
        not ``cross_only``).
    path : {"auto", "features", "samples"}
        "features": from the d×d blocks (2n(p² + q² + pq) flops); "samples": from the n×n centred
        Gram matrices, in row blocks so no n×n matrix is resident (2n²(p + q) flops). "auto"
        (METHODS §2.0) takes "samples" when p² + q² + pq >= n(p + q), i.e. for widths beyond the
        sample count, and "features" always for stats= and GPU inputs. Both give the same value.

    Returns
    -------
    float
        In [0, 1]; NaN with an :class:`UndefinedSimilarityWarning` when X or Y has no
        variance at all (every feature constant).

    Notes
    -----
    Invariant to orthogonal transformations, isotropic scaling, translation and feature
    permutation of either argument; symmetric. Constant features (METHODS §1.3) contribute
    exactly nothing. Needs n >= 2.
    """
    data = C.gather(X, Y, stats, measure="linear_cka", min_n=2)
    route = C.resolve_path(path, data, "linear_cka")
    if route == "samples":
        kl, kk, ll = _gram_sums(data.x, data.y)
        return _ratio(kl, kk, ll, "linear_cka")
    blocks = data.blocks() if isinstance(data, C.Data) else data
    blocks.full("linear_cka")
    kl = float(np.sum(blocks.mxy * blocks.mxy))
    kk = float(np.sum(blocks.mxx * blocks.mxx))
    ll = float(np.sum(blocks.myy * blocks.myy))
    return _ratio(kl, kk, ll, "linear_cka")


# ----------------------------------------------------------------------------------- debiased


Terms = tuple[float, float, float, float, float]


def _hsic1_features(x: np.ndarray, y: np.ndarray) -> Terms:
    """Feature form on centred data (κ_i = ‖x̃_i‖², λ_i = ‖ỹ_i‖²):
    n(n−3)·HSIC₁ = ‖X̃ᵀỸ‖²_F − n/(n−2)·Σκλ + ΣκΣλ/((n−1)(n−2)).
    Returns HSIC₁(K, L), HSIC₁(K, K), HSIC₁(L, L) and the scales ‖X̃ᵀX̃‖²/(n(n−3)), ‖ỸᵀỸ‖²/(n(n−3))."""
    n = x.shape[0]
    kappa = np.einsum("ij,ij->i", x, x)
    lam = np.einsum("ij,ij->i", y, y)
    c1, c2, norm = 1.0 / ((n - 1) * (n - 2)), n / (n - 2), 1.0 / (n * (n - 3))

    def term(a: np.ndarray, b: np.ndarray, ka: np.ndarray, kb: np.ndarray) -> tuple[float, float]:
        g = a.T @ b
        g2 = float(np.sum(g * g))
        return (g2 - c2 * float(ka @ kb) + float(ka.sum()) * float(kb.sum()) * c1) * norm, g2 * norm

    hxy, _ = term(x, y, kappa, lam)
    hxx, sx = term(x, x, kappa, kappa)
    hyy, sy = term(y, y, lam, lam)
    return hxy, hxx, hyy, sx, sy


def _hsic1_ucentred(x: np.ndarray, y: np.ndarray) -> Terms:
    """U-centring form (Székely & Rizzo 2014), in row blocks: for i ≠ j,
    Ǩ_ij = K_ij − r_i/(n−2) − r_j/(n−2) + R/((n−1)(n−2)), Ǩ_ii = 0, HSIC₁ = ⟨Ǩ, Ľ⟩/(n(n−3))."""
    n = x.shape[0]

    def row_terms(a: np.ndarray) -> tuple[np.ndarray, float]:
        diag = np.einsum("ij,ij->i", a, a)
        r = a @ a.sum(axis=0) - diag  # r_i = Σ_{l≠i} K_il
        return r, float(r.sum())

    rx, Rx = row_terms(x)
    ry, Ry = row_terms(y)
    cx, cy = Rx / ((n - 1) * (n - 2)), Ry / ((n - 1) * (n - 2))
    step = C.gram_row_blocks(n)
    kl = kk = ll = sk = sl = 0.0
    for r0 in range(0, n, step):
        rows = np.arange(r0, min(n, r0 + step))
        K = x[rows] @ x.T
        L = y[rows] @ y.T
        sk += float(np.vdot(K, K))  # scale: ‖K_c‖²_F
        sl += float(np.vdot(L, L))
        K -= rx[rows, None] / (n - 2) + rx[None, :] / (n - 2) - cx
        L -= ry[rows, None] / (n - 2) + ry[None, :] / (n - 2) - cy
        K[rows - r0, rows] = 0.0
        L[rows - r0, rows] = 0.0
        kl += float(np.vdot(K, L))
        kk += float(np.vdot(K, K))
        ll += float(np.vdot(L, L))
    norm = 1.0 / (n * (n - 3))
    return kl * norm, kk * norm, ll * norm, sk * norm, sl * norm


def _all_constant_warning(cx: np.ndarray, cy: np.ndarray) -> float:
    which = " and ".join(name for name, c in (("X", cx), ("Y", cy)) if c.all())
    C.warn(f"debiased_cka is undefined: every feature of {which} is constant, so HSIC₁ of its kernel with itself "
           "is 0 (a denominator <= 0); returning NaN", C.UndefinedSimilarityWarning)
    return math.nan


@measure("debiased_cka", invariances=_CKA_INVARIANCES, symmetric=True, streamable=True,
         reference=f"{_KORNBLITH}; unbiased HSIC: Song, Smola, Gretton, Bedo & Borgwardt 2012 (JMLR)")
def debiased_cka(X: Any = None, Y: Any = None, *, stats: Optional[HSICStats] = None, path: str = "auto") -> float:
    """Debiased linear CKA: CKA with the unbiased HSIC estimator of Song et al. (2012).

    With K = XXᵀ, L = YYᵀ and K̃, L̃ their zero-diagonal versions (METHODS §2.2),
    HSIC₁(K, L) = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1]/(n(n−3)) and
    debiased CKA = HSIC₁(K, L)/√(HSIC₁(K, K)·HSIC₁(L, L)).

    Parameters
    ----------
    X : array, shape (n_samples, p), optional
    Y : array, shape (n_samples, q), optional
        As :func:`linear_cka`. GPU inputs (torch CUDA tensors, cupy arrays) are accumulated into an
        :class:`HSICStats` on the device; only d×d blocks and d-vectors reach the host (bare
        ``__cuda_array_interface__`` / DLPack objects: NotImplementedError, wrap them with torch or
        cupy).
    stats : HSICStats, optional
        The extended streamed state (a plain CrossStats lacks the per-sample norm sums and is
        refused with a TypeError); exact.
    path : {"auto", "features", "samples"}
        "features": the feature form n(n−3)·HSIC₁ = ‖X̃ᵀỸ‖² − n/(n−2)·Σκ_iλ_i +
        ΣκΣλ/((n−1)(n−2)), κ_i = ‖x̃_i‖², λ_i = ‖ỹ_i‖²; "samples": the U-centring form
        HSIC₁ = ⟨Ǩ, Ľ⟩_F/(n(n−3)) (Székely & Rizzo 2014) over row blocks of the n×n Grams; "auto"
        as :func:`linear_cka` (METHODS §2.0 path choice). Both give the same value.

    Returns
    -------
    float
        Can be negative. NaN with an :class:`UndefinedSimilarityWarning` when
        HSIC₁(K, K)·HSIC₁(L, L) has a non-positive factor (e.g. all features of one input constant,
        or X = (0, 2, 0, 0)ᵀ, whose unbiased HSIC with itself is exactly 0). A factor within rounding
        of 0 (at most 1e-12 of its largest summand ‖X̃ᵀX̃‖²_F/(n(n−3))) counts as 0.

    Raises
    ------
    ValueError
        For fewer than 4 samples (the estimator divides by n(n−3)(n−2)).

    Notes
    -----
    Invariant to orthogonal transformations, isotropic scaling, translation and feature
    permutation; symmetric.
    """
    name = "debiased_cka"
    C.check_path(path)
    if stats is not None:
        if X is not None or Y is not None:
            raise ValueError(f"{name}: pass either the arrays X and Y or stats=, not both")
        if path == "samples":
            raise ValueError(f"{name}: path='samples' needs the data themselves (host arrays); a streamed state gives "
                             "the feature path")
        if not isinstance(stats, HSICStats):
            raise TypeError(f"{name}: stats must be an HSICStats (the extended streamed state of METHODS §2.2); got "
                            f"{type(stats).__name__}. A CrossStats lacks the sums of per-sample norms the unbiased "
                            "estimator needs")
        if stats.n_samples < 4:
            raise ValueError(f"{name} needs at least 4 samples; stats holds {stats.n_samples}")
        return _from_hsic_stats(stats, name)
    if X is not None and Y is not None and inputs_on_device(X=X, Y=Y):
        if path == "samples":
            raise ValueError(f"{name}: path='samples' needs host arrays; GPU inputs use the feature path")
        shape_x, shape_y = tuple(getattr(X, "shape", ())), tuple(getattr(Y, "shape", ()))
        if len(shape_x) == 2 and len(shape_y) == 2:
            C.check_samples(int(shape_x[0]), int(shape_y[0]), name, 4)
        return _from_hsic_stats(HSICStats().update(X, Y), name)
    data = C.gather(X, Y, None, measure=name, min_n=4)
    if data.const_x.all() or data.const_y.all():
        return _all_constant_warning(data.const_x, data.const_y)
    route = C.resolve_path(path, data, name)
    hxy, hxx, hyy, sx, sy = (_hsic1_ucentred if route == "samples" else _hsic1_features)(data.x, data.y)
    return _ratio(hxy, hxx, hyy, name, sx, sy)


def _from_hsic_stats(stats: HSICStats, name: str) -> float:
    blocks = C.Blocks.from_cross_stats(stats.cross_stats)
    if blocks.const_x.all() or blocks.const_y.all():
        return _all_constant_warning(blocks.const_x, blocks.const_y)
    hxy, hxx, hyy, sx, sy = stats._terms()
    return _ratio(hxy, hxx, hyy, name, sx, sy)
