"""Permutation alignment of torch chains: function preserved, permutations recovered."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from congruence.matching import align_activations, align_weights, permutation_groups, permute_model  # noqa: E402


def mlp(seed):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 12), nn.LayerNorm(12), nn.Tanh()),
                      nn.Dropout(0.1), nn.Linear(12, 3)).double().eval()
    with torch.no_grad():
        m[0].bias.add_(1.0)  # no dead ReLU units (they have no activation identity to recover)
    return m


def vgg(seed):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                      nn.Linear(8 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 4)).double()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for bn in (m[1], m[5]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        m[8].bias.add_(1.0)  # keep every dense ReLU unit alive: dead units have no activation identity
    return m.eval()


def inputs(kind, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, 6) if kind == "mlp" else (n, 3, 8, 8), generator=g, dtype=torch.float64)


def random_perms(model, seed):
    rng = np.random.default_rng(seed)
    return [rng.permutation(g["size"]) for g in permutation_groups(model)]


@pytest.mark.parametrize("kind", ["mlp", "vgg"])
def test_permuted_model_computes_the_same_function(kind):
    A = mlp(0) if kind == "mlp" else vgg(0)
    x = inputs(kind)
    P = permute_model(A, random_perms(A, 1))
    with torch.no_grad():
        torch.testing.assert_close(P(x), A(x), rtol=1e-12, atol=1e-12)
    assert not torch.equal(P[0].weight, A[0].weight)
    assert [g["spatial"] for g in permutation_groups(A)] == ([1, 1] if kind == "mlp" else [1, 16, 1])


@pytest.mark.parametrize("kind", ["mlp", "vgg"])
@pytest.mark.parametrize("how", ["activations", "weights"])
def test_alignment_recovers_a_hidden_permutation(kind, how):
    A = mlp(2) if kind == "mlp" else vgg(2)
    B = permute_model(A, random_perms(A, 3))
    if how == "activations":
        aligned, perms = align_activations(A, B, [inputs(kind, 256, s) for s in range(2)])
    else:
        aligned, perms = align_weights(A, B)
    for pa, pb in zip(A.state_dict().values(), aligned.state_dict().values()):
        torch.testing.assert_close(pb, pa, rtol=0, atol=1e-12)
    with torch.no_grad():
        x = inputs(kind)
        torch.testing.assert_close(aligned(x), B(x), rtol=1e-12, atol=1e-12)  # still B's function


def test_weight_matching_increases_the_inner_product_of_different_networks():
    A, B = vgg(4), vgg(5)
    aligned, _ = align_weights(A, B)

    def inner(m1, m2):
        return sum(float((p1 * p2).sum().detach()) for p1, p2 in zip(m1.parameters(), m2.parameters()))

    assert inner(A, aligned) > inner(A, B)
    with torch.no_grad():
        x = inputs("vgg")
        torch.testing.assert_close(aligned(x), B(x), rtol=1e-10, atol=1e-10)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return x + self.lin(x)


def test_unsupported_graphs_and_bad_permutations():
    with pytest.raises(ValueError, match="Residual is not supported"):
        permutation_groups(nn.Sequential(nn.Linear(3, 4), Residual(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="nn.Sequential chain"):
        permutation_groups(Residual())
    with pytest.raises(ValueError, match="groups=1|Conv2d is not supported"):
        permutation_groups(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1)))
    with pytest.raises(ValueError, match="at least two weight layers"):
        permutation_groups(nn.Sequential(nn.Linear(3, 2)))
    A = mlp(0)
    with pytest.raises(ValueError, match="expected 2 permutations"):
        permute_model(A, [np.arange(16)])
    with pytest.raises(ValueError, match="a permutation of 16 units"):
        permute_model(A, [np.zeros(16, dtype=int), np.arange(12)])
    with pytest.raises(ValueError, match="differ in size"):
        align_weights(A, nn.Sequential(nn.Linear(6, 15), nn.ReLU(), nn.Linear(15, 12), nn.Linear(12, 3)).double())
