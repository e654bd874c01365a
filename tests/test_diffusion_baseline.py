"""The P8 opponent congruence.baselines.diffusion_map_torch (kNN by torch.cdist + topk, sparse
kernel, torch.lobpcg) against congruence.diffusion.DiffusionMap on the same points."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from congruence import baselines as B  # noqa: E402
from congruence.diffusion import DiffusionMap  # noqa: E402


def rectangle(n=600, dim=20, seed=1):
    """A noisy 1 x 0.6 rectangle embedded isometrically in ``dim`` dimensions."""
    rng = np.random.default_rng(seed)
    Z = rng.random((n, 2)) * np.array([1.0, 0.6])
    Q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    return Z @ Q.T + 0.01 * rng.standard_normal((n, dim))


X = rectangle()
M, K = 10, 20


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small sparse products: one thread is fastest, and immune to a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ours():
    return DiffusionMap(M, k=K).fit(X)


def well_separated(lam, rel_gap=2e-3):
    """Indices 1..m whose eigenvalue is separated from both neighbours by rel_gap."""
    out = []
    for i in range(1, len(lam)):
        lo = lam[i] - lam[i + 1] if i + 1 < len(lam) else np.inf
        if min(lam[i - 1] - lam[i], lo) > rel_gap * lam[i]:
            out.append(i)
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_agrees_with_diffusion_map(ours, dtype):
    info = {}
    w, V = B.diffusion_map_torch(torch.from_numpy(X).to(dtype), M, k=K, info=info)
    assert w.dtype == torch.float64 and V.dtype == torch.float64
    assert w.shape == (M + 1,) and V.shape == (X.shape[0], M + 1)
    assert info["solver"] == "lobpcg" and not info["lobpcg_hit_niter"]
    assert info["epsilon"] == pytest.approx(ours.epsilon_, rel=1e-12 if dtype == torch.float64 else 1e-5)
    w, V = w.numpy(), V.numpy()
    np.testing.assert_allclose(w, ours.eigenvalues_, rtol=1e-6)
    sep = well_separated(ours.eigenvalues_)
    assert len(sep) >= 5
    for i in [0] + sep:
        c = abs(np.corrcoef(V[:, i], ours.eigenvectors_[:, i])[0, 1]) if i else 1.0
        assert c > 0.999, (i, c)
        # the same normalisation and sign convention: the vectors themselves agree
        assert np.abs(V[:, i] - ours.eigenvectors_[:, i]).max() < 1e-4, i
    np.testing.assert_allclose(np.linalg.norm(V, axis=0), 1.0, rtol=1e-12)


def test_numpy_input_small_dense_path_and_given_epsilon():
    Xs = X[:150]
    dm = DiffusionMap(4, k=30, epsilon=0.003, alpha=0.5).fit(Xs)
    info = {}
    w, V = B.diffusion_map_torch(Xs, 4, k=30, epsilon=0.003, alpha=0.5, info=info)
    assert info["solver"] == "eigh"
    np.testing.assert_allclose(w.numpy(), dm.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(V.numpy(), dm.eigenvectors_, atol=1e-8)


def test_seeded_and_deterministic():
    Xt = torch.from_numpy(X)
    a = B.diffusion_map_torch(Xt, 3, k=K, seed=3)
    b = B.diffusion_map_torch(Xt, 3, k=K, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        B.diffusion_map_torch(X[:, 0], 3)
    with pytest.raises(ValueError):
        B.diffusion_map_torch(X[:5], 10)
    with pytest.raises(ValueError):
        B.diffusion_map_torch(X, 3, epsilon="mean")
