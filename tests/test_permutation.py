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
    return [rng.permutation(g.size) for g in permutation_groups(model)]


@pytest.mark.parametrize("kind", ["mlp", "vgg"])
def test_permuted_model_computes_the_same_function(kind):
    A = mlp(0) if kind == "mlp" else vgg(0)
    x = inputs(kind)
    P = permute_model(A, random_perms(A, 1))
    with torch.no_grad():
        torch.testing.assert_close(P(x), A(x), rtol=1e-12, atol=1e-12)
    assert not torch.equal(P[0].weight, A[0].weight)
    assert [g.spatial for g in permutation_groups(A)] == ([1, 1] if kind == "mlp" else [1, 16, 1])


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


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else x


def test_unsupported_graphs_and_bad_permutations():
    with pytest.raises(ValueError, match=r"'cat' \(traced node 'cat'\)"):
        permutation_groups(nn.Sequential(nn.Linear(3, 3), Concat(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="torch.fx"):
        permutation_groups(Branchy())
    with pytest.raises(ValueError, match="Conv2d '0'"):
        permutation_groups(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1)))
    with pytest.raises(ValueError, match="no permutable hidden group"):
        permutation_groups(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="no permutable hidden group"):
        permutation_groups(Residual())  # the residual stream is the input itself: fixed
    with pytest.raises(ValueError, match="LayerNorm"):
        permutation_groups(nn.Sequential(nn.Conv2d(3, 4, 1), nn.LayerNorm([4, 2, 2]), nn.Conv2d(4, 2, 1)))
    A = mlp(0)
    with pytest.raises(ValueError, match="expected 2 permutations"):
        permute_model(A, [np.arange(16)])
    with pytest.raises(ValueError, match="a permutation of 16 units"):
        permute_model(A, [np.zeros(16, dtype=int), np.arange(12)])
    with pytest.raises(ValueError, match="differ in size"):
        align_weights(A, nn.Sequential(nn.Linear(6, 15), nn.ReLU(), nn.Linear(15, 12), nn.Linear(12, 3)).double())


def test_a_residual_inside_a_chain_joins_its_stream():
    torch.manual_seed(0)
    A = nn.Sequential(nn.Linear(3, 4), Residual(), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    groups = permutation_groups(A)
    assert len(groups) == 1 and groups[0].producers == ("0", "1.lin")
    assert groups[0].consumers == (("1.lin", 1), ("3", 1))
    x = inputs("mlp")[:, :3]
    P = permute_model(A, [np.array([2, 0, 3, 1])])
    with torch.no_grad():
        torch.testing.assert_close(P(x), A(x), rtol=1e-12, atol=1e-12)


class BasicBlock(nn.Module):
    """The torchvision ResNet block: conv-bn-relu-conv-bn, plus an identity or 1x1-conv shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.layer1 = nn.Sequential(BasicBlock(6, 6, 1), BasicBlock(6, 6, 1))
        self.layer2 = nn.Sequential(BasicBlock(6, 10, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(10, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(seed):
    torch.manual_seed(seed)
    m = TinyResNet().double()
    with torch.no_grad():
        for bn in m.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(0.2, 0.8)  # positive shifts: few dead ReLU channels
    return m.eval()


def test_resnet_groups_follow_the_residual_streams():
    groups = permutation_groups(resnet(0))
    by_producer = {g.producers: g for g in groups}
    stream1 = by_producer[("conv1", "layer1.0.conv2", "layer1.1.conv2")]
    assert stream1.norms == ("bn1", "layer1.0.bn2", "layer1.1.bn2")
    assert stream1.consumers == (("layer1.0.conv1", 1), ("layer1.1.conv1", 1), ("layer2.0.downsample.0", 1),
                                 ("layer2.0.conv1", 1))
    stream2 = by_producer[("layer2.0.downsample.0", "layer2.0.conv2")]
    assert stream2.consumers == (("fc", 1),) and stream2.size == 10
    assert sorted(len(g.producers) for g in groups) == [1, 1, 1, 2, 3]


def test_resnet_permutation_preserves_the_function():
    A = resnet(1)
    x = inputs("vgg")
    P = permute_model(A, random_perms(A, 2))
    with torch.no_grad():
        torch.testing.assert_close(P(x), A(x), rtol=1e-11, atol=1e-11)
    assert not torch.equal(P.conv1.weight, A.conv1.weight)


@pytest.mark.parametrize("how", ["activations", "weights"])
def test_resnet_alignment_recovers_a_hidden_permutation(how):
    A = resnet(3)
    B = permute_model(A, random_perms(A, 4))
    if how == "activations":
        aligned, _ = align_activations(A, B, [inputs("vgg", 128, s) for s in range(2)])
    else:
        aligned, _ = align_weights(A, B)
    for (name, pa), pb in zip(A.state_dict().items(), aligned.state_dict().values()):
        torch.testing.assert_close(pb, pa, rtol=0, atol=1e-12, msg=name)


def test_resnet_weight_matching_of_different_networks_keeps_the_function():
    A, B = resnet(5), resnet(6)
    aligned, _ = align_weights(A, B)
    inner = lambda m1, m2: sum(float((p1 * p2).sum().detach()) for p1, p2 in zip(m1.parameters(), m2.parameters()))  # noqa: E731
    assert inner(A, aligned) > inner(A, B)
    with torch.no_grad():
        x = inputs("vgg")
        torch.testing.assert_close(aligned(x), B(x), rtol=1e-10, atol=1e-10)
