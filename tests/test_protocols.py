"""Brown, Vyas & Bansal's protocols (METHODS §3.8): rotations and shared frozen layers."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from congruence.matching import absorb_rotation, haar_orthogonal, rotate_layer, share_frozen_layers  # noqa: E402


def net(seed, act=True, conv=False):
    torch.manual_seed(seed)
    if conv:
        return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU() if act else nn.Identity(), nn.Flatten(),
                             nn.Linear(6 * 4 * 4, 5)).double()
    return nn.Sequential(nn.Linear(4, 10), nn.ReLU() if act else nn.Identity(), nn.Linear(10, 7),
                         nn.ReLU() if act else nn.Identity(), nn.Linear(7, 3)).double()


def test_haar_orthogonal():
    Q = haar_orthogonal(12, seed=3)
    np.testing.assert_allclose(Q @ Q.T, np.eye(12), atol=1e-12)
    np.testing.assert_array_equal(Q, haar_orthogonal(12, seed=3))
    assert not np.allclose(Q, haar_orthogonal(12, seed=4))
    with pytest.raises(ValueError, match="positive integer"):
        haar_orthogonal(0)


@pytest.mark.parametrize("conv", [False, True])
def test_rotation_is_absorbed_in_a_linear_network_only(conv):
    x = torch.randn(50, 3, 6, 6, dtype=torch.float64) if conv else torch.randn(50, 4, dtype=torch.float64)
    for act in (False, True):
        A = net(0, act=act, conv=conv)
        R, Q = rotate_layer(A, "0", seed=1)
        undone = absorb_rotation(R, "0", Q)
        with torch.no_grad():
            same = torch.allclose(undone(x), A(x), rtol=1e-10, atol=1e-10)
            changed = not torch.allclose(R(x), A(x), atol=1e-3)
        assert changed  # the rotation alone changes the function
        assert same == (not act)  # restored exactly without the ReLU, not through it


def test_share_frozen_layers():
    A, B = net(1), net(2)
    C = share_frozen_layers(A, B, 2)
    assert torch.equal(C[0].weight, A[0].weight) and torch.equal(C[2].weight, A[2].weight)
    assert torch.equal(C[4].weight, B[4].weight)
    assert not C[0].weight.requires_grad and not C[2].bias.requires_grad and C[4].weight.requires_grad
    assert B[0].weight.requires_grad  # the target itself is untouched
    assert torch.equal(share_frozen_layers(A, B, 0)[0].weight, B[0].weight)
    with pytest.raises(ValueError, match="exceeds"):
        share_frozen_layers(A, B, 4)
    with pytest.raises(ValueError, match="differ"):
        share_frozen_layers(A, nn.Sequential(nn.Linear(4, 9), nn.ReLU(), nn.Linear(9, 3)).double(), 1)
    with pytest.raises(ValueError, match="no module named"):
        rotate_layer(A, "9")
    with pytest.raises(ValueError, match="Linear or Conv"):
        rotate_layer(A, "1")
    with pytest.raises(ValueError, match="weight layer after it"):
        absorb_rotation(A, "4", np.eye(3))
