"""Independent float64 NumPy oracles for the feature-space similarity measures (METHODS.md §2).

Everything here is written plainly from the formulas of METHODS.md §2.1, §2.2, §2.5–§2.9, in
float64, with dense n×n matrices where the formula is stated that way, and shares no code with the
package. Inputs are numpy arrays or CPU torch tensors (converted to float64 numpy).

Constant features (METHODS §1.3: std == 0 or std <= 1e-10·rms) are removed before any whitening,
as the library documents; for CKA and Procrustes they contribute nothing anyway.

Oracles
-------
ref_hsic0, ref_linear_cka_gram, ref_linear_cka_features, ref_rv_coefficient,
ref_hsic1_song, ref_hsic1_ucentred, ref_hsic1_features, ref_debiased_cka,
ref_canonical_correlations (SVD of the whitened cross-covariance), ref_canonical_correlations_qr,
ref_cca, ref_svcca, ref_pwcca, ref_pwcca_google (google/svcca ``compute_pwcca`` with the acts1/acts2
bug fixed), ref_linear_regression_r2 (least squares), ref_linear_regression_r2_ridge,
ref_procrustes (explicit orthogonal Procrustes fit), ref_procrustes_nuclear.
"""

from __future__ import annotations

import numpy as np

CONSTANT_TAU = 1e-10


def _f64(a):
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu()
        if str(a.dtype) == "torch.bfloat16":
            a = a.float()
        a = a.numpy()
    a = np.array(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D (n_samples, n_features) array; got shape {a.shape}")
    return a


def _centre(X):
    return X - X.mean(axis=0, keepdims=True)


def _nonconstant(X):
    """Columns of X (float64) that are not constant in the sense of METHODS §1.3."""
    n = X.shape[0]
    Xc = _centre(X)
    std = np.sqrt((Xc ** 2).sum(axis=0) / n)
    rms = np.sqrt((X ** 2).sum(axis=0) / n)
    constant = (std == 0) | (std <= CONSTANT_TAU * rms)
    return X[:, ~constant]


# ------------------------------------------------------------------------------------ CKA (§2.1)


def ref_hsic0(K, L):
    """HSIC₀(K, L) = tr(KHLH)/(n−1)², H = I − 11ᵀ/n (materialised)."""
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def ref_linear_cka_gram(X, Y):
    """Linear CKA from n×n Gram matrices K = XXᵀ, L = YYᵀ (Kornblith et al. 2019, eq. via HSIC₀)."""
    X, Y = _f64(X), _f64(Y)
    K, L = X @ X.T, Y @ Y.T
    return ref_hsic0(K, L) / np.sqrt(ref_hsic0(K, K) * ref_hsic0(L, L))


def ref_linear_cka_features(X, Y):
    """‖X̃ᵀỸ‖²_F / (‖X̃ᵀX̃‖_F ‖ỸᵀỸ‖_F) on two-pass centred data."""
    Xc, Yc = _centre(_f64(X)), _centre(_f64(Y))
    return np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


def ref_rv_coefficient(X, Y):
    """RV coefficient tr(K_c L_c)/sqrt(tr(K_c²) tr(L_c²)), K_c = HXXᵀH (Robert & Escoufier 1976)."""
    X, Y = _f64(X), _f64(Y)
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    Kc, Lc = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return np.trace(Kc @ Lc) / np.sqrt(np.trace(Kc @ Kc) * np.trace(Lc @ Lc))


# --------------------------------------------------------------------------- debiased CKA (§2.2)


def ref_hsic1_song(K, L):
    """Song et al. (2012) unbiased HSIC, written with K̃, L̃ (zeroed diagonals)."""
    n = K.shape[0]
    Kt = K - np.diag(np.diag(K))
    Lt = L - np.diag(np.diag(L))
    one = np.ones(n)
    term1 = np.trace(Kt @ Lt)
    term2 = (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def _ucentre(K):
    n = K.shape[0]
    Kt = K - np.diag(np.diag(K))
    r = Kt.sum(axis=1)  # r_i = Σ_{l≠i} K_il
    R = Kt.sum()  # Σ_{i≠l} K_il
    U = Kt - r[:, None] / (n - 2) - r[None, :] / (n - 2) + R / ((n - 1) * (n - 2))
    np.fill_diagonal(U, 0.0)
    return U


def ref_hsic1_ucentred(K, L):
    """HSIC₁ = ⟨Ǩ, Ľ⟩_F/(n(n−3)) with U-centred Ǩ, Ľ (Székely & Rizzo 2014)."""
    n = K.shape[0]
    return (_ucentre(K) * _ucentre(L)).sum() / (n * (n - 3))


def ref_hsic1_features(X, Y):
    """Feature form: n(n−3)·HSIC₁ = ‖X̃ᵀỸ‖² − n/(n−2)·Σκλ + ΣκΣλ/((n−1)(n−2))."""
    Xc, Yc = _centre(_f64(X)), _centre(_f64(Y))
    n = Xc.shape[0]
    kappa = (Xc ** 2).sum(axis=1)
    lam = (Yc ** 2).sum(axis=1)
    val = (np.linalg.norm(Xc.T @ Yc) ** 2 - n / (n - 2) * (kappa @ lam)
           + kappa.sum() * lam.sum() / ((n - 1) * (n - 2)))
    return val / (n * (n - 3))


def ref_debiased_cka(X, Y, form="song", centre=True):
    """Debiased linear CKA with HSIC₁ in one of three forms: "song", "ucentred", "features".

    HSIC₁ of a linear kernel is translation invariant, so by default the Grams are formed from
    centred data: on raw data with |mean|/std = 20 the Song formula loses ~6 digits to
    cancellation (``centre=False`` shows it)."""
    X, Y = _f64(X), _f64(Y)
    if centre:
        X, Y = _centre(X), _centre(Y)
    if form == "features":
        h = ref_hsic1_features
        return h(X, Y) / np.sqrt(h(X, X) * h(Y, Y))
    h = ref_hsic1_song if form == "song" else ref_hsic1_ucentred
    K, L = X @ X.T, Y @ Y.T
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


# ------------------------------------------------------------------------------------ CCA (§2.5)


def _inv_sqrt_psd(S, rtol=1e-10):
    """Pseudo inverse square root (symmetric) of a PSD matrix, eigenvalues <= rtol·max dropped."""
    w, V = np.linalg.eigh(S)
    keep = w > rtol * w.max()
    return (V[:, keep] / np.sqrt(w[keep])) @ V[:, keep].T, int(keep.sum())


def _whitened_cross(X, Y):
    """(X̃, Σ_xx^{-1/2}, Σ_xx^{-1/2} Σ_xy Σ_yy^{-1/2}, rank X̃, rank Ỹ) of the non-constant columns."""
    X, Y = _nonconstant(_f64(X)), _nonconstant(_f64(Y))
    n = X.shape[0]
    Xc, Yc = _centre(X), _centre(Y)
    Sxx, Sxy, Syy = Xc.T @ Xc / (n - 1), Xc.T @ Yc / (n - 1), Yc.T @ Yc / (n - 1)
    Wx, rx = _inv_sqrt_psd(Sxx)
    Wy, ry = _inv_sqrt_psd(Syy)
    return Xc, Wx, Wx @ Sxy @ Wy, rx, ry


def ref_canonical_correlations(X, Y):
    """Canonical correlations = singular values of Σ_xx^{-1/2} Σ_xy Σ_yy^{-1/2} (descending),
    c = min(rank X̃, rank Ỹ) of them."""
    _, _, M, rx, ry = _whitened_cross(X, Y)
    s = np.linalg.svd(M, compute_uv=False)
    return np.clip(s[: min(rx, ry)], 0.0, 1.0)


def ref_canonical_correlations_qr(X, Y):
    """Canonical correlations from plain (unpivoted) QR of full-column-rank centred data."""
    Xc, Yc = _centre(_f64(X)), _centre(_f64(Y))
    Qx, _ = np.linalg.qr(Xc)
    Qy, _ = np.linalg.qr(Yc)
    s = np.linalg.svd(Qx.T @ Qy, compute_uv=False)
    return np.clip(s[: min(Xc.shape[1], Yc.shape[1])], 0.0, 1.0)


def ref_cca(X, Y):
    """(rho, mean_rho, r2) per METHODS §2.5."""
    rho = ref_canonical_correlations(X, Y)
    return rho, rho.mean(), (rho ** 2).mean()


# ---------------------------------------------------------------------------------- SVCCA (§2.6)


def _svd_reduce(X, threshold, k, mode):
    Xc = _centre(_f64(X))
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    if k is None:
        mass = s ** 2 if mode == "explained_variance" else s
        frac = np.cumsum(mass) / mass.sum()
        k = int(np.argmax(frac >= threshold)) + 1  # smallest k reaching the threshold
    return Xc @ Vt[:k].T, k


def ref_svcca(X, Y, threshold=0.99, k=None, mode="explained_variance"):
    """SVCCA (Raghu et al. 2017): SVD-reduce each side, then CCA. Returns (mean_rho, r2, kx, ky)."""
    Xr, kx = _svd_reduce(X, threshold, k, mode)
    Yr, ky = _svd_reduce(Y, threshold, k, mode)
    rho = ref_canonical_correlations(Xr, Yr)
    return rho.mean(), (rho ** 2).mean(), kx, ky


# ---------------------------------------------------------------------------------- PWCCA (§2.7)


def ref_pwcca(X, Y):
    """Morcos et al. (2018) projection-weighted CCA, weights from X, from the covariance
    formulation: w_i = Σ_xx^{-1/2} u_i, h_i = X̃ w_i, α_i = Σ_j |⟨h_i/‖h_i‖, x̃_j⟩|."""
    Xc, Wx, M, rx, ry = _whitened_cross(X, Y)
    U, s, _ = np.linalg.svd(M)
    c = min(rx, ry)
    rho = np.clip(s[:c], 0.0, 1.0)
    H = Xc @ (Wx @ U[:, :c])  # canonical variates of X, columns
    H = H / np.linalg.norm(H, axis=0)
    alpha = np.abs(H.T @ Xc).sum(axis=1)
    return float((alpha * rho).sum() / alpha.sum())


def _sign_rule(V):
    """Columns of V flipped so that each column's entry of largest magnitude is positive
    (lowest index among equals)."""
    V = V.copy()
    for j in range(V.shape[1]):
        i = int(np.argmax(np.abs(V[:, j])))
        if V[i, j] < 0:
            V[:, j] = -V[:, j]
    return V


def ref_pwcca_google(X, Y, epsilon=0.0):
    """google/svcca ``compute_pwcca`` (acts = transposes of X, Y), with the else-branch bug fixed
    (the second layer's acts are used with its own coefficients, means and indices). Singular
    vectors follow the sign rule of METHODS §0 (the direction vectors are uncentred, so their sign
    matters). Constant neurons are removed first."""
    acts1, acts2 = _nonconstant(_f64(X)).T, _nonconstant(_f64(Y)).T
    numx = acts1.shape[0]
    cov = np.cov(acts1, acts2)
    sxx, sxy, syy = cov[:numx, :numx], cov[:numx, numx:], cov[numx:, numx:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    sxx = sxx + epsilon * np.eye(sxx.shape[0])
    syy = syy + epsilon * np.eye(syy.shape[0])

    def invsqrt(a):
        w, v = np.linalg.eigh(np.linalg.pinv(a))
        return v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T

    arr = invsqrt(sxx) @ sxy @ invsqrt(syy)
    u, s, vt = np.linalg.svd(arr)
    u, v = _sign_rule(u), _sign_rule(vt.T)
    s = np.abs(s)
    m1 = acts1.mean(axis=1, keepdims=True)
    m2 = acts2.mean(axis=1, keepdims=True)
    if acts1.shape[0] <= acts2.shape[0]:
        dirns = u.T @ (acts1 - m1) + m1
        acts = acts1
    else:
        dirns = v.T @ (acts2 - m2) + m2
        acts = acts2
    P, _ = np.linalg.qr(dirns.T)
    weights = np.abs(P.T @ acts.T).sum(axis=1)
    weights = weights / weights.sum()
    return float((weights * s).sum())


# ---------------------------------------------------------------------- linear regression (§2.8)


def ref_linear_regression_r2(X, Y):
    """R²_LR(X|Y) = 1 − min_B ‖X̃ − ỸB‖²_F / ‖X̃‖²_F (least squares fit of X from Y)."""
    Xc, Yc = _centre(_f64(X)), _centre(_f64(Y))
    B, *_ = np.linalg.lstsq(Yc, Xc, rcond=None)
    return 1.0 - np.linalg.norm(Xc - Yc @ B) ** 2 / np.linalg.norm(Xc) ** 2


def ref_linear_regression_r2_ridge(X, Y, ridge):
    """tr(M_xy (M_yy + λI)⁻¹ M_yx) / tr M_xx."""
    Xc, Yc = _centre(_f64(X)), _centre(_f64(Y))
    Mxy, Myy = Xc.T @ Yc, Yc.T @ Yc
    return np.trace(Mxy @ np.linalg.solve(Myy + ridge * np.eye(Myy.shape[0]), Mxy.T)) / np.trace(Xc.T @ Xc)


# ------------------------------------------------------------------------------ Procrustes (§2.9)


def ref_procrustes(X, Y):
    """Orthogonal Procrustes (Ding et al. 2021) by explicit fitting: X̂, Ŷ centred and unit
    Frobenius norm, padded with zero columns to a common width, R* = argmin over orthogonal R of
    ‖X̂ − ŶR‖_F (Schönemann 1966), d² = ‖X̂ − ŶR*‖²_F. Returns (d², θ, similarity)."""
    Xh, Yh = _centre(_f64(X)), _centre(_f64(Y))
    Xh, Yh = Xh / np.linalg.norm(Xh), Yh / np.linalg.norm(Yh)
    d = max(Xh.shape[1], Yh.shape[1])
    Xp = np.hstack([Xh, np.zeros((Xh.shape[0], d - Xh.shape[1]))])
    Yp = np.hstack([Yh, np.zeros((Yh.shape[0], d - Yh.shape[1]))])
    U, _, Vt = np.linalg.svd(Yp.T @ Xp)
    R = U @ Vt
    d2 = np.linalg.norm(Xp - Yp @ R) ** 2
    sim = 1.0 - d2 / 2.0
    return d2, np.arccos(np.clip(sim, -1.0, 1.0)), sim


def ref_procrustes_nuclear(X, Y):
    """‖X̂ᵀŶ‖_* directly (sum of singular values)."""
    Xh, Yh = _centre(_f64(X)), _centre(_f64(Y))
    Xh, Yh = Xh / np.linalg.norm(Xh), Yh / np.linalg.norm(Yh)
    return np.linalg.svd(Xh.T @ Yh, compute_uv=False).sum()
