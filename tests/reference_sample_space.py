"""Independent float64 NumPy oracles for the sample-space similarity measures (METHODS.md §2.3,
§2.4, §2.10, §2.11): RBF CKA, minibatch CKA, RSA and mutual kNN alignment.

Written plainly from the formulas with dense n × n matrices (explicit differences for distances,
an explicit centring matrix H, brute-force neighbour lists and pair counts), sharing no code with
the package. Inputs may be numpy arrays or CPU torch tensors (converted to float64 numpy first).

Oracles
-------
ref_sqdist, ref_median_sqdist, ref_rbf_gram, ref_hsic0, ref_hsic1, ref_cka, ref_rbf_cka,
ref_linear_cka, ref_minibatch_cka, ref_rdm, ref_upper, ref_kendall_tau_a, ref_rsa,
ref_neighbors, ref_mutual_knn.
"""

from __future__ import annotations

import numpy as np

from reference_similarity import _f64  # the shared input conversion of the test oracles


# ---------------------------------------------------------------------------------------------
# kernels and HSIC
# ---------------------------------------------------------------------------------------------


def ref_sqdist(X):
    """n × n squared Euclidean distances from explicit differences (exact zero diagonal)."""
    X = _f64(X)
    n = X.shape[0]
    D = np.empty((n, n))
    for i in range(n):
        diff = X - X[i]
        D[i] = (diff * diff).sum(axis=1)
    return D


def ref_median_sqdist(X, median="pairs"):
    """Median squared distance: over the pairs i < j ("pairs") or all n² entries ("all_entries")."""
    D = ref_sqdist(X)
    if median == "pairs":
        return float(np.median(D[np.triu_indices(D.shape[0], 1)]))
    if median == "all_entries":
        return float(np.median(D))
    raise ValueError(median)


def ref_rbf_gram(X, fraction=1.0, median="pairs"):
    """K_ij = exp(-d²_ij / (2σ²)), σ² = fraction² · median squared distance."""
    D = ref_sqdist(X)
    sigma2 = fraction ** 2 * ref_median_sqdist(X, median)
    return np.exp(-D / (2.0 * sigma2))


def ref_hsic0(K, L):
    """Biased HSIC: tr(K H L H)/(n−1)² with the explicit centring matrix H = I − 11ᵀ/n."""
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(K @ H @ L @ H)) / (n - 1) ** 2


def ref_hsic1(K, L):
    """Unbiased HSIC (Song et al. 2012), K̃ and L̃ with zeroed diagonals:
    [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − (2/(n−2))·1ᵀK̃L̃1]/(n(n−3))."""
    n = K.shape[0]
    Kt = K - np.diag(np.diag(K))
    Lt = L - np.diag(np.diag(L))
    one = np.ones(n)
    term1 = np.trace(Kt @ Lt)
    term2 = (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return float(term1 + term2 - term3) / (n * (n - 3))


def ref_cka(K, L, debiased=False):
    h = ref_hsic1 if debiased else ref_hsic0
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


def ref_rbf_cka(X, Y, fraction=1.0, debiased=False, median="pairs"):
    return float(ref_cka(ref_rbf_gram(X, fraction, median), ref_rbf_gram(Y, fraction, median), debiased))


def ref_linear_cka(X, Y, debiased=False):
    """CKA with linear kernels K = XXᵀ, L = YYᵀ (uncentred inputs; HSIC centres)."""
    X, Y = _f64(X), _f64(Y)
    return float(ref_cka(X @ X.T, Y @ Y.T, debiased))


def ref_minibatch_cka(batches, kernel="linear", debiased=True, fraction=1.0):
    """Σ_b HSIC(K_b, L_b)/√(Σ_b HSIC(K_b, K_b)·Σ_b HSIC(L_b, L_b)), batches with < 4 rows skipped."""
    h = ref_hsic1 if debiased else ref_hsic0
    skl = skk = sll = 0.0
    for Xb, Yb in batches:
        Xb, Yb = _f64(Xb), _f64(Yb)
        if Xb.shape[0] < 4:
            continue
        if kernel == "linear":
            K, L = Xb @ Xb.T, Yb @ Yb.T
        else:
            K, L = ref_rbf_gram(Xb, fraction), ref_rbf_gram(Yb, fraction)
        skl += h(K, L)
        skk += h(K, K)
        sll += h(L, L)
    return skl / np.sqrt(skk * sll)


# ---------------------------------------------------------------------------------------------
# RSA
# ---------------------------------------------------------------------------------------------


def ref_rdm(X, rdm="correlation"):
    """n × n RDM: 1 − Pearson(x_i, x_j) across features (np.corrcoef of the rows; an undefined
    correlation of a constant row is taken as 0), ‖x_i − x_j‖ or ‖x_i − x_j‖²."""
    X = _f64(X)
    if rdm == "correlation":
        with np.errstate(invalid="ignore", divide="ignore"):
            R = np.corrcoef(X)
        const = X.std(axis=1) == 0
        R[const, :] = 0.0
        R[:, const] = 0.0
        return 1.0 - R
    D = ref_sqdist(X)
    if rdm == "sqeuclidean":
        return D
    if rdm == "euclidean":
        return np.sqrt(D)
    raise ValueError(rdm)


def ref_upper(M):
    """Strict upper triangle (i < j), row-major."""
    return M[np.triu_indices(M.shape[0], 1)]


def ref_kendall_tau_a(u, v):
    """Brute force: Σ_{a<b} sign(u_a − u_b)·sign(v_a − v_b) / (N(N−1)/2)."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    N = u.size
    s = 0
    for a in range(N - 1):
        s += int((np.sign(u[a + 1:] - u[a]) * np.sign(v[a + 1:] - v[a])).sum())
    return s / (N * (N - 1) / 2)


def ref_rsa(X, Y, rdm="correlation", compare="spearman"):
    """Correlation of the upper triangles of the two RDMs (scipy for Spearman / Pearson)."""
    from scipy import stats

    u, v = ref_upper(ref_rdm(X, rdm)), ref_upper(ref_rdm(Y, rdm))
    if compare == "spearman":
        return float(stats.spearmanr(u, v).statistic)
    if compare == "pearson":
        return float(stats.pearsonr(u, v).statistic)
    if compare == "kendall_tau_a":
        return float(ref_kendall_tau_a(u, v))
    raise ValueError(compare)


# ---------------------------------------------------------------------------------------------
# mutual kNN
# ---------------------------------------------------------------------------------------------


def ref_neighbors(X, k, metric="cosine"):
    """For each i the k nearest j ≠ i: cosine of L2-normalised rows (descending; a zero row has
    similarity 0) or squared Euclidean from explicit differences (ascending); equal keys go to the
    lowest index (stable sort)."""
    X = _f64(X)
    n = X.shape[0]
    if metric == "cosine":
        norms = np.sqrt((X * X).sum(axis=1))
        Z = X / np.where(norms == 0, 1.0, norms)[:, None]
        key = -(Z @ Z.T)
    elif metric in ("sqeuclidean", "euclidean"):
        key = ref_sqdist(X)
    else:
        raise ValueError(metric)
    out = []
    for i in range(n):
        order = [j for j in np.argsort(key[i], kind="stable") if j != i]
        out.append(order[:k])
    return np.array(out, dtype=np.int64)


def ref_mutual_knn(X, Y, k=10, metric="cosine"):
    """(1/n) Σ_i |N_X(i) ∩ N_Y(i)| / k by brute force."""
    NX, NY = ref_neighbors(X, k, metric), ref_neighbors(Y, k, metric)
    n = NX.shape[0]
    return sum(len(set(NX[i].tolist()) & set(NY[i].tolist())) for i in range(n)) / (n * k)
