"""Linear regression R² and orthogonal Procrustes (METHODS.md §2.8, §2.9)."""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import numpy as np

from .. import _engine as E
from ..cross_stats import CrossStats
from . import _common as C
from ._measure import measure
from .hsic_stats import HSICStats

__all__ = ["linear_regression_r2", "procrustes"]

Stats = Union[CrossStats, HSICStats]
_OSTP = ("orthogonal", "isotropic_scaling", "translation", "permutation")
PROCRUSTES_KINDS = ("similarity", "distance", "angular")


@measure("linear_regression_r2", invariances=_OSTP, invariances_second=("invertible_linear",) + _OSTP,
         symmetric=False, streamable=True,
         reference="Kornblith, Norouzi, Lee & Hinton 2019, arXiv:1905.00414 (linear regression fit)")
def linear_regression_r2(X: Any = None, Y: Any = None, *, ridge: float = 0.0, stats: Optional[Stats] = None) -> float:
    """Fraction of the variance of X explained by a linear fit from Y: R²_LR(X|Y) (METHODS §2.8).

    R²_LR(X|Y) = 1 − min_B‖X̃ − ỸB‖²_F/‖X̃‖²_F = ‖Q_YᵀX̃‖²_F/‖X̃‖²_F = tr(M_xyM_yy⁺M_yx)/tr M_xx.
    X is the **target**, Y the **predictor**.

    Parameters
    ----------
    X : array, shape (n_samples, p), optional
        Target representation.
    Y : array, shape (n_samples, q), optional
        Predictor representation. Host (numpy, CPU torch; float64 copy) or GPU (torch CUDA, cupy;
        a float64 CrossStats on the device, d×d blocks copied to the host). Any float dtype.
    ridge : float
        λ >= 0: use (M_yy + λI)⁻¹ in place of M_yy⁺ (M_yy = ỸᵀỸ, the co-moment, not divided by n).
        Default 0 (then the predictor's invariance to invertible maps holds exactly).
    stats : CrossStats or HSICStats, optional
        Streamed state (needs the full Gram blocks); exact.

    Returns
    -------
    float
        In [0, 1]. 0 when every feature of Y is constant.

    Notes
    -----
    Host arrays with ridge = 0 use the QR path (a rank-revealing thin SVD of Ỹ, σ < n·u·σ_max
    dropped); otherwise eigh of M_yy, eigenvalues ≤ 1e-10·λ_max dropped for the pseudo inverse.
    Constant features of Y are dropped (ConstantFeatureWarning); those of X contribute nothing.
    Invariances: target (X) orthogonal, isotropic scaling, translation, permutation; predictor (Y)
    any invertible linear map. Asymmetric.
    """
    name = "linear_regression_r2"
    ridge = C.check_nonnegative(ridge, "ridge")
    data = C.gather(X, Y, stats, measure=name, min_n=2)
    cx, cy = data.const_x, data.const_y
    if cx.all():
        raise C.no_features("X", name)
    C.warn_constant(np.zeros_like(cx), cy, name)
    if cy.all():
        return 0.0
    ky = ~cy
    if isinstance(data, C.Data) and ridge == 0:
        uy = C.basis(data.y[:, ky], data.roundoff_y)[0]
        num = float(np.sum((uy.T @ data.x) ** 2))
        den = float(np.sum(data.x * data.x))
    else:
        blocks = data.blocks() if isinstance(data, C.Data) else data
        if blocks.myy is None:
            blocks.full(name)
        myx = blocks.mxy[:, ky].T
        myy = blocks.myy[np.ix_(ky, ky)]
        if ridge == 0:
            V, lam = C.whitener(myy, blocks.eig_rtol)
        else:
            lam, V = C.eigh_desc(myy)
            lam = np.maximum(lam, 0.0) + ridge
        proj = V.T @ myx  # (k, p)
        num = float(np.sum(np.sum(proj * proj, axis=1) / lam))
        den = float(np.sum(blocks.dxx))
    return float(min(1.0, max(0.0, num / den)))


def _nuclear(a: np.ndarray) -> float:
    return float(np.linalg.svd(a, compute_uv=False).sum()) if a.size else 0.0


@measure("procrustes", invariances=_OSTP, symmetric=True, streamable=True,
         reference="Ding, Denain & Steinhardt 2021, arXiv:2108.01661; angular form: Williams et al. 2021, "
                   "arXiv:2110.14739")
def procrustes(X: Any = None, Y: Any = None, *, stats: Optional[Stats] = None, kind: str = "similarity",
               path: str = "auto") -> float:
    """Orthogonal Procrustes similarity / distance between two representations (METHODS §2.9).

    X̂ = X̃/‖X̃‖_F, Ŷ = Ỹ/‖Ỹ‖_F; similarity ‖X̂ᵀŶ‖_* = ‖M_xy‖_*/√(tr M_xx·tr M_yy) ∈ [0, 1];
    squared distance d²_Proc = min_R‖X̂ − ŶR‖²_F = 2 − 2‖X̂ᵀŶ‖_*; angular θ = arccos‖X̂ᵀŶ‖_*.
    Different widths need no padding.

    Parameters
    ----------
    X : array, shape (n_samples, p), optional
    Y : array, shape (n_samples, q), optional
        As :func:`~congruence.similarity.cka.linear_cka` (host float64 copy, or a CrossStats on the
        GPU whose d×d blocks come to the host).
    stats : CrossStats or HSICStats, optional
        Streamed state; exact. Needs only M_xy and the traces, so ``cross_only=True`` states work.
    kind : {"similarity", "distance", "angular"}
        ‖X̂ᵀŶ‖_* (default: scores are similarities unless a name ends in ``_distance``, METHODS §0),
        d²_Proc, or θ (radians).
    path : {"auto", "features", "samples"}
        "features": singular values of the p×q M_xy; "samples" (p, q ≫ n): with X̃ᵀ = Q_xR_x and
        Ỹᵀ = Q_yR_y (QR of the transposes), ‖X̃ᵀỸ‖_* = ‖R_xR_yᵀ‖_*, an n×n problem equal to
        Σ√λ_i(K_c^{1/2}L_cK_c^{1/2}) with K_c = R_xᵀR_x the centred Gram, without taking square roots
        of rounding-level eigenvalues. "auto": the METHODS §2.0 path choice (as linear_cka).

    Returns
    -------
    float

    Notes
    -----
    Invariant to orthogonal maps, isotropic scaling, translation and permutation; symmetric.
    An input whose features are all constant raises ValueError (the normalisation is undefined).
    """
    name = "procrustes"
    E.check_choice(kind, PROCRUSTES_KINDS, "kind")
    data = C.gather(X, Y, stats, measure=name, min_n=2)
    if data.const_x.all():
        raise C.no_features("X", name)
    if data.const_y.all():
        raise C.no_features("Y", name)
    route = C.resolve_path(path, data, name)
    if route == "samples":
        rx = np.linalg.qr(data.x.T, mode="r")
        ry = np.linalg.qr(data.y.T, mode="r")
        nuc = _nuclear(rx @ ry.T)
        tx, ty = float(np.sum(data.x * data.x)), float(np.sum(data.y * data.y))
    elif isinstance(data, C.Data):
        nuc = _nuclear(data.x.T @ data.y)
        tx, ty = float(np.sum(data.x * data.x)), float(np.sum(data.y * data.y))
    else:
        nuc = _nuclear(data.mxy)
        tx, ty = float(np.sum(data.dxx)), float(np.sum(data.dyy))
    sim = min(1.0, max(0.0, nuc / math.sqrt(tx * ty)))
    if kind == "similarity":
        return sim
    if kind == "distance":
        return max(0.0, 2.0 - 2.0 * sim)
    return float(math.acos(sim))
