"""DiffusionMap against the analytic cases of METHODS §8.6 (a)–(c) and float64 references."""

import numpy as np
import pytest

from congruence.diffusion import DiffusionMap, KernelBandwidthWarning, knn_gaussian_kernel


def abs_corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return abs(float(a @ b / np.sqrt((a @ a) * (b @ b))))


def canonical_correlations(A, B):
    qa, _ = np.linalg.qr(A - A.mean(0))
    qb, _ = np.linalg.qr(B - B.mean(0))
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def test_strip_gives_cosines_and_the_laplacian_spectrum():
    x = (np.arange(1000) + 0.5) / 1000
    dm = DiffusionMap(5, k=None, epsilon=1e-3).fit(x[:, None])
    lam = dm.eigenvalues_[1:6]
    expected = 1e-3 * np.arange(1, 6) ** 2 * np.pi ** 2 / 2
    np.testing.assert_allclose(-np.log(lam), expected, rtol=0.07)
    for kk in range(1, 6):
        assert abs_corr(dm.eigenvectors_[:, kk], np.cos(kk * np.pi * x)) >= 0.997
    assert dm.eigenvalues_[0] == pytest.approx(1.0, abs=1e-12)
    assert np.ptp(dm.eigenvectors_[:, 0]) < 1e-10  # ψ_0 constant


def test_alpha_one_removes_the_density():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 1, 1000), rng.uniform(0, 0.5, 1000)])
    good = DiffusionMap(3, k=None, epsilon=5e-4, alpha=1.0).fit(x[:, None])
    bad = DiffusionMap(3, k=None, epsilon=5e-4, alpha=0.0).fit(x[:, None])
    r_good = [abs_corr(good.eigenvectors_[:, k], np.cos(k * np.pi * x)) for k in (1, 2, 3)]
    r_bad = [abs_corr(bad.eigenvectors_[:, k], np.cos(k * np.pi * x)) for k in (1, 2, 3)]
    assert min(r_good) >= 0.99
    assert r_bad[0] < 0.95 or r_bad[2] < 0.95


def test_sphere_gives_spherical_harmonics_from_a_knn_kernel():
    rng = np.random.default_rng(1)
    P = rng.standard_normal((3000, 3))
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    eps = 0.01
    dm = DiffusionMap(8, k=400, epsilon=eps).fit(P)
    ratio = -np.log(dm.eigenvalues_[1:9]) / (eps / 2)
    np.testing.assert_allclose(ratio[:3], 2.0, rtol=0.15)
    np.testing.assert_allclose(ratio[3:8], 6.0, rtol=0.15)
    assert canonical_correlations(dm.eigenvectors_[:, 1:4], P).min() >= 0.999
    x, y, z = P.T
    quad = np.stack([x * y, x * z, y * z, x ** 2 - y ** 2, 3 * z ** 2 - 1], axis=1)
    assert canonical_correlations(dm.eigenvectors_[:, 4:9], quad).min() >= 0.995


def test_dense_operator_matches_a_float64_reference():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((150, 3))
    eps, alpha = 0.7, 0.5
    dm = DiffusionMap(4, k=None, epsilon=eps, alpha=alpha).fit(X)
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    K = np.exp(-d2 / (2 * eps))
    q = K.sum(1)
    Ka = K / np.outer(q ** alpha, q ** alpha)
    P = Ka / Ka.sum(1, keepdims=True)
    w, V = np.linalg.eig(P)
    order = np.argsort(-w.real)[:5]
    np.testing.assert_allclose(dm.eigenvalues_, w.real[order], atol=1e-10)
    for j in range(5):
        np.testing.assert_allclose(P @ dm.eigenvectors_[:, j], dm.eigenvalues_[j] * dm.eigenvectors_[:, j],
                                   atol=1e-10)
        col = dm.eigenvectors_[:, j]
        assert col[np.argmax(np.abs(col))] > 0 and np.linalg.norm(col) == pytest.approx(1.0)


def test_nystrom_reproduces_training_points_and_time_scales():
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(400, 2))
    dense = DiffusionMap(4, k=None, epsilon=0.01).fit(X)
    np.testing.assert_allclose(dense.nystrom(X), dense.eigenvectors_, atol=1e-9)
    sparse = DiffusionMap(4, k=200, epsilon=0.01).fit(X)
    emb = sparse.transform(X)
    for j in range(4):
        assert abs_corr(emb[:, j], sparse.eigenvectors_[:, j + 1]) > 0.999
    timed = DiffusionMap(4, k=None, epsilon=0.01, time=2).fit(X)
    np.testing.assert_allclose(timed.fit_transform(X), dense.eigenvectors_[:, 1:] * dense.eigenvalues_[1:] ** 2,
                               atol=1e-9)
    new = rng.uniform(size=(5, 2))
    assert dense.transform(new).shape == (5, 4)


def test_kernel_median_bandwidth_symmetrisation_and_warning():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 4))
    ker = knn_gaussian_kernel(X, k=10)
    K = ker.K.toarray()
    np.testing.assert_allclose(K, K.T)
    np.testing.assert_allclose(np.diag(K), 1.0)
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    nn = np.sort(d2, axis=1)[:, :10]
    assert ker.epsilon == pytest.approx(np.median(nn))
    mutual = knn_gaussian_kernel(X, k=10, symmetrize="min").K.toarray()
    union = knn_gaussian_kernel(X, k=10, symmetrize="max").K.toarray()
    assert (mutual > 0).sum() <= (K > 0).sum() == (union > 0).sum()
    with pytest.warns(KernelBandwidthWarning):
        knn_gaussian_kernel(X, k=3, epsilon=100.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelBandwidthWarning)
        knn_gaussian_kernel(X, k=10)  # the median rule truncates on purpose: no warning
        knn_gaussian_kernel(X, k=299, epsilon=0.01)


def test_errors():
    X = np.zeros((10, 2))
    X[:, 0] = np.arange(10)
    with pytest.raises(ValueError, match="n_components"):
        DiffusionMap(0).fit(X)
    with pytest.raises(ValueError, match="needs at least"):
        DiffusionMap(10, k=None).fit(X)
    with pytest.raises(ValueError, match="epsilon"):
        DiffusionMap(2, epsilon=-1.0).fit(X)
    with pytest.raises(ValueError, match="epsilon"):
        DiffusionMap(2, epsilon="silverman").fit(X)
    with pytest.raises(ValueError, match="NaN"):
        DiffusionMap(2).fit(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="not fitted"):
        DiffusionMap(2).transform(X)
    with pytest.raises(ValueError, match="duplicate"):
        DiffusionMap(2, k=3).fit(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="symmetrize"):
        knn_gaussian_kernel(X, symmetrize="geometric")


def test_llr_selects_the_two_directions_of_a_rectangle():
    from congruence.diffusion import llr_selection

    rng = np.random.default_rng(0)
    P = rng.uniform(size=(1500, 2)) * np.array([1.0, 0.4])
    dm = DiffusionMap(7, k=None, epsilon=2e-3).fit(P)
    sel = llr_selection(dm.eigenvectors_[:, 1:], intrinsic_dim=2)
    r = sel.residuals
    assert sel.selected.tolist() == [1, 3]
    np.testing.assert_allclose(r, [1, 0.181, 0.997, 0.108, 0.359, 0.157, 0.181], atol=0.005)  # METHODS §8.6 (f)
    assert r[0] == 1.0 and r[2] > 0.9
    assert np.all(np.delete(r, [0, 2]) < 0.5)
    assert abs_corr(dm.eigenvectors_[:, 1], np.cos(np.pi * P[:, 0])) > 0.99
    assert abs_corr(dm.eigenvectors_[:, 3], np.cos(np.pi * P[:, 1] / 0.4)) > 0.99
    thr = llr_selection(dm.eigenvectors_[:, 1:], strategy="threshold")
    assert thr.selected.tolist() == [1, 3]
    sub = llr_selection(dm.eigenvectors_[:, 1:], n_subsample=600, seed=1)
    assert sub.selected.tolist() == [1, 3]
    with pytest.raises(ValueError, match="intrinsic_dim"):
        llr_selection(dm.eigenvectors_[:, 1:], intrinsic_dim=9)
    with pytest.raises(ValueError, match="n_subsample"):
        llr_selection(dm.eigenvectors_[:, 1:], n_subsample=50)


def test_llr_against_a_direct_weighted_least_squares():
    from congruence.diffusion.llr import _fit_values

    rng = np.random.default_rng(5)
    Phi = rng.standard_normal((60, 2))
    y = np.sin(Phi[:, 0]) + 0.1 * rng.standard_normal(60)
    got = _fit_values(Phi, y, 0.8, False, 1e-6)
    for i in (0, 17, 59):
        w = np.exp(-((Phi - Phi[i]) ** 2).sum(1) / 0.8)
        w[i] = 0.0
        A = np.column_stack([np.ones(60), Phi - Phi[i]])
        coef, *_ = np.linalg.lstsq(A * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)
        assert got[i] == pytest.approx(coef[0], abs=1e-9)


def test_geometric_harmonics_extend_a_smooth_function():
    from congruence.diffusion import GeometricHarmonics

    rng = np.random.default_rng(6)
    X = rng.uniform(size=(800, 2))
    f = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    gh = GeometricHarmonics(200, k=None, epsilon=0.01).fit(X, f)
    assert np.all(gh.sigma_ >= 1e-3 * gh.sigma_[0])
    # on the training points: f's projection onto the kept harmonics, reproduced by predict
    proj = gh.phi_ @ (gh.phi_.T @ f)
    np.testing.assert_allclose(gh.predict(X), proj, atol=1e-8)
    new = rng.uniform(0.1, 0.9, size=(200, 2))
    truth = np.sin(3 * new[:, 0]) + new[:, 1] ** 2
    err = np.linalg.norm(gh.predict(new) - truth) / np.linalg.norm(truth - truth.mean())
    assert err < 0.05
    two = GeometricHarmonics(200, k=None, epsilon=0.01).fit(X, np.stack([f, 2 * f], 1)).predict(new)
    np.testing.assert_allclose(two[:, 1], 2 * two[:, 0], rtol=1e-10)
    with pytest.raises(ValueError, match="not fitted"):
        GeometricHarmonics().predict(new)
    with pytest.raises(ValueError, match="same N"):
        GeometricHarmonics().fit(X, f[:-1])
