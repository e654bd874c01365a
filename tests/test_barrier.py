"""The linear interpolation barrier (METHODS §3.7)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from congruence.matching import interpolation_barrier, permutation_groups, permute_model  # noqa: E402


def data(n=300, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    w = torch.randn(5, classes, generator=g, dtype=torch.float64)
    y = (x @ w).argmax(1)
    return list(zip(x.split(100), y.split(100)))


def mlp(seed, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 32)] + ([nn.BatchNorm1d(32)] if bn else []) + [nn.ReLU(), nn.Linear(32, 3)]
    m = nn.Sequential(*layers).double()
    with torch.no_grad():
        m[0].bias.add_(0.5)
    return m.eval()


def test_identical_networks_have_no_barrier():
    A = mlp(0)
    res = interpolation_barrier(A, A, data(), alphas=7)
    assert res.alphas.tolist() == pytest.approx(np.linspace(0, 1, 7).tolist())
    np.testing.assert_allclose(res.loss, res.loss[0], rtol=1e-12)
    assert res.barrier_loss == pytest.approx(0.0, abs=1e-12) and res.frankle_barrier == pytest.approx(0.0, abs=1e-12)


def test_a_convex_model_has_no_loss_barrier():
    # softmax regression: cross-entropy is convex in the weights, so the path never rises above the chord
    torch.manual_seed(1)
    A, B = nn.Linear(5, 3).double(), nn.Linear(5, 3).double()
    res = interpolation_barrier(nn.Sequential(A), nn.Sequential(B), data())
    line = (1 - res.alphas) * res.loss[0] + res.alphas * res.loss[-1]
    assert np.all(res.loss <= line + 1e-12)
    assert res.barrier_loss == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("align", ["weights", "activations"])
def test_alignment_removes_the_barrier_of_a_permuted_copy(align):
    A = mlp(2)
    rng = np.random.default_rng(0)
    B = permute_model(A, [rng.permutation(g.size) for g in permutation_groups(A)])
    plain = interpolation_barrier(A, B, data(), alphas=9)
    aligned = interpolation_barrier(A, B, data(), alphas=9, align=align)
    assert plain.barrier_loss > 0.01
    assert aligned.barrier_loss == pytest.approx(0.0, abs=1e-10)
    assert aligned.align == align


def test_batchnorm_statistics_are_re_estimated_at_every_alpha(tmp_path):
    A, B = mlp(3, bn=True), mlp(4, bn=True)
    before = {k: v.clone() for k, v in A.state_dict().items()}
    res = interpolation_barrier(A, B, data(), alphas=5)
    assert res.details["batchnorm_reset"] and res.details["bn_batches"] == 3
    for k, v in A.state_dict().items():  # the models themselves are untouched
        assert torch.equal(v, before[k])
    # at α = 0 the statistics are those of A's pre-BN activations over the data
    # (cumulative averaging: the mean of the per-batch means and of the per-batch unbiased variances)
    with torch.no_grad():
        hs = [A[0](b[0]) for b in data()]
        mean = torch.stack([h.mean(0) for h in hs]).mean(0)
        var = torch.stack([h.var(0, unbiased=True) for h in hs]).mean(0)
        h = torch.cat(hs)
        ref = nn.functional.cross_entropy(A[3](A[2]((h - mean) / torch.sqrt(var + A[1].eps) * A[1].weight + A[1].bias)),
                                          torch.cat([b[1] for b in data()]))
    one = interpolation_barrier(A, A, data(), alphas=[0.0, 1.0])
    assert one.loss[0] == pytest.approx(float(ref), rel=1e-10)
    assert res.plot(tmp_path / "lmc.png").endswith("lmc.png") and (tmp_path / "lmc.png").stat().st_size > 0


def test_errors():
    A = mlp(0)
    with pytest.raises(ValueError, match="align must be"):
        interpolation_barrier(A, A, data(), align="fx")
    with pytest.raises(ValueError, match="including 0 and 1"):
        interpolation_barrier(A, A, data(), alphas=[0.2, 0.5])
    with pytest.raises(ValueError, match="no batches"):
        interpolation_barrier(A, A, [])
    with pytest.raises(ValueError, match="targets"):
        interpolation_barrier(A, A, [torch.zeros(4, 5)])
    with pytest.raises(ValueError, match="same architecture"):
        interpolation_barrier(A, mlp(0, bn=True), data())
