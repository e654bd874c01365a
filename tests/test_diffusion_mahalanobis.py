"""The Mahalanobis-like diffusion kernel (METHODS §6.1–6.2, §8.6 (d)) against numpy references."""

import numpy as np
import pytest

from congruence import _cpu
from congruence.diffusion import (DiffusionMap, factors_from_clouds, factors_from_covariances, factors_from_jacobians,
                                  mahalanobis_knn_kernel, model_jacobians)


def abs_corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return abs(float(a @ b / np.sqrt((a @ a) * (b @ b))))


def test_mahalanobis_kernel_undoes_a_nonlinear_observation_map():
    x = np.sort(np.random.default_rng(0).uniform(0, 1, 1500))
    o = np.exp(2 * x)[:, None]
    J = (2 * np.exp(2 * x))[:, None, None]
    fac = factors_from_jacobians(J)
    assert np.all(fac.rank == 1)
    maha = DiffusionMap(3, k=None, epsilon=1e-3).fit(o, factors=fac)
    r = [abs_corr(maha.eigenvectors_[:, k], np.cos(k * np.pi * x)) for k in (1, 2, 3)]
    assert min(r) >= 0.995
    eucl = DiffusionMap(3, k=None, epsilon=1e-3 * np.ptp(o) ** 2).fit(o)
    r_e = [abs_corr(eucl.eigenvectors_[:, k], np.cos(k * np.pi * x)) for k in (1, 2, 3)]
    assert min(r_e[1:]) < 0.9  # the Euclidean kernel sees the observation map's stretching


def test_compiled_pairs_equal_the_formula():
    rng = np.random.default_rng(1)
    N, D, d = 40, 5, 2
    O = rng.standard_normal((N, D))
    J = rng.standard_normal((N, D, d))
    fac = factors_from_jacobians(J)
    rows = rng.integers(0, N, 300)
    cols = rng.integers(0, N, 300)
    got = np.empty(300)
    _cpu.mahalanobis_pairs(O, fac.F, rows, cols, got, 2)
    pinv = np.stack([np.linalg.pinv(J[i] @ J[i].T) for i in range(N)])
    delta = O[rows] - O[cols]
    want = 0.5 * np.einsum("ed,edf,ef->e", delta, pinv[rows] + pinv[cols], delta)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        _cpu.mahalanobis_pairs(O, fac.F, np.array([N]), np.array([0]), np.empty(1), 1)


def test_factor_constructors_agree_and_report_ranks():
    rng = np.random.default_rng(2)
    N, D, d = 30, 4, 2
    J = rng.standard_normal((N, D, d))
    a = factors_from_jacobians(J)
    b = factors_from_covariances(np.einsum("nij,nkj->nik", J, J))
    assert np.all(a.rank == 2) and np.all(b.rank == 2)
    pa = np.einsum("nri,nrj->nij", a.F, a.F)
    pb = np.einsum("nri,nrj->nij", b.F, b.F)
    np.testing.assert_allclose(pa, pb, rtol=1e-7, atol=1e-9)
    fixed = factors_from_jacobians(J, rank=1)
    assert np.all(fixed.rank == 1)
    # clouds of a linear map o = A ξ: covariance / σ² recovers A Aᵀ
    A = rng.standard_normal((D, d))
    sigma = 1e-2
    xi = rng.standard_normal((N, 4000, d)) * sigma
    c = factors_from_clouds(xi @ A.T, sigma)
    pc = np.einsum("nri,nrj->nij", c.F, c.F)
    np.testing.assert_allclose(pc[0], np.linalg.pinv(A @ A.T), rtol=0.1, atol=0.1 * np.abs(np.linalg.pinv(A @ A.T)).max())
    with pytest.raises(ValueError, match="J must be"):
        factors_from_jacobians(np.ones((3, 2)))
    with pytest.raises(ValueError, match="rank"):
        factors_from_jacobians(J, rank=5)
    with pytest.raises(ValueError, match="sigma"):
        factors_from_clouds(xi, -1.0)


def test_knn_mahalanobis_kernel_and_nystrom():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 600)
    o = np.stack([np.exp(x), np.sin(2 * x)], axis=1)
    J = np.stack([np.exp(x), 2 * np.cos(2 * x)], axis=1)[:, :, None]
    fac = factors_from_jacobians(J)
    ker = mahalanobis_knn_kernel(o, fac, k=40)
    K = ker.K.toarray()
    np.testing.assert_allclose(K, K.T)
    dm = DiffusionMap(2, k=250, epsilon=2e-3).fit(o, factors=fac)
    assert abs_corr(dm.eigenvectors_[:, 1], np.cos(np.pi * x)) > 0.99
    emb = dm.transform(o, factors=fac)
    assert abs_corr(emb[:, 0], dm.eigenvectors_[:, 1]) > 0.999
    emb2 = dm.transform(o)  # no factors for the new points: ΔᵀC_j⁺Δ
    assert abs_corr(emb2[:, 0], dm.eigenvectors_[:, 1]) > 0.99
    with pytest.raises(ValueError, match="factors are for"):
        mahalanobis_knn_kernel(o[:10], fac, k=3)


def test_model_jacobians_match_finite_differences():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    x = np.random.default_rng(4).standard_normal((5, 3))
    J = model_jacobians(model, x)
    assert J.shape == (5, 2, 3)
    h = 1e-6
    m64 = model.double()
    for i in range(5):
        for t in range(3):
            e = np.zeros(3)
            e[t] = h
            with torch.no_grad():
                up = m64(torch.tensor(x[i] + e)[None]).numpy()[0]
                dn = m64(torch.tensor(x[i] - e)[None]).numpy()[0]
            np.testing.assert_allclose(J[i, :, t], (up - dn) / (2 * h), rtol=1e-6, atol=1e-8)


def test_compiled_squared_distances_and_the_screened_neighbours_are_exact():
    from congruence.diffusion.kernel import _neighbours

    rng = np.random.default_rng(4)
    X = 1e3 + rng.standard_normal((700, 40)) * rng.uniform(0.01, 1.0, 40)  # an offset float32 must survive
    rows, cols = rng.integers(0, 700, 500), rng.integers(0, 700, 500)
    got = np.empty(500)
    _cpu.squared_distance_pairs(X, rows, cols, got, 2)
    assert np.allclose(got, ((X[rows] - X[cols]) ** 2).sum(1), rtol=1e-13, atol=0)
    r, c, d2, kth = _neighbours(X, 12, 2)
    full = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(full, np.inf)
    want = np.argsort(full, axis=1, kind="stable")[:, :12]
    idx = c[700:].reshape(700, 12)
    assert np.array_equal(idx, want)
    assert np.allclose(d2[700:].reshape(700, 12), np.take_along_axis(full, want, 1), rtol=1e-12)
    assert np.array_equal(kth, d2[700:].reshape(700, 12)[:, -1])
    with pytest.raises(ValueError, match="index out of range"):
        _cpu.squared_distance_pairs(X, np.array([0]), np.array([700]), np.empty(1), 1)


def test_mahalanobis_invariance_in_two_dimensions():
    """METHODS 8.6 (e): a nonlinear 3-D observation of a 2-D rectangle; Jacobian covariances."""
    import congruence as cg

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3000, 2)) * np.array([1.0, 0.5])
    x1, x2 = x[:, 0], x[:, 1]
    o = np.stack([np.exp(1.5 * x1), x2 * (1 + 2 * x1), 0.5 * x1 * np.sin(np.pi * x2)], 1)
    J = np.zeros((3000, 3, 2))
    J[:, 0, 0] = 1.5 * np.exp(1.5 * x1)
    J[:, 1, 0], J[:, 1, 1] = 2 * x2, 1 + 2 * x1
    J[:, 2, 0], J[:, 2, 1] = 0.5 * np.sin(np.pi * x2), 0.5 * np.pi * x1 * np.cos(np.pi * x2)
    fac = factors_from_jacobians(J)
    assert np.all(fac.rank == 2)
    target = np.stack([np.cos(np.pi * x1), np.cos(2 * np.pi * x1), np.cos(2 * np.pi * x2)], 1)
    maha = DiffusionMap(3, k=150, epsilon=1e-3).fit(o, factors=fac)
    rho = cg.cca(maha.eigenvectors_[:, 1:4], target).rho
    assert rho.min() >= 0.99
    eucl = DiffusionMap(3, k=150).fit(o)
    assert cg.cca(eucl.eigenvectors_[:, 1:4], target).rho.min() < 0.9
