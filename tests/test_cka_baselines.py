"""The P6 opponents in congruence.baselines: careful exact all-pairs linear CKA and the minibatch
CKA estimator, against float64 NumPy oracles and congruence."""

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import congruence as cg  # noqa: E402
from congruence import baselines as B  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from reference_similarity import ref_hsic1_song, ref_linear_cka_gram  # noqa: E402


def mlp(seed, width=24):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 7)).double()


X = torch.randn(60, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) + 1.0
LA, LB = ["0", "1", "3"], ["2", "4"]


def acts(model, layers, x):
    return [a.numpy() for a in B.cache_activations(model, layers, [x])]


@pytest.mark.parametrize("space", ["features", "samples", "auto"])
def test_linear_cka_all_pairs_matches_the_oracle(space):
    A, Bm = mlp(0), mlp(1)
    fa, fb = B.cache_activations(A, LA, X.split(16)), B.cache_activations(Bm, LB, X.split(16))
    copies = [t.clone() for t in fa]
    got = B.linear_cka_all_pairs(fa, fb, space=space).numpy()
    ref = np.array([[ref_linear_cka_gram(a.numpy(), b.numpy()) for b in fb] for a in fa])
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert all(torch.equal(a, c) for a, c in zip(fa, copies))  # inplace=False leaves the cache alone
    same = B.linear_cka_all_pairs(fa, space=space).numpy()
    np.testing.assert_allclose(np.diag(same), 1.0, rtol=1e-12)


def test_compare_linear_cka_equals_congruence_compare():
    A, Bm = mlp(0), mlp(1)
    data = list(X.split(13))
    base = B.compare_linear_cka(A, Bm, data, LA, LB).numpy()
    ours = cg.compare(A, Bm, data, layers_a=LA, layers_b=LB)["linear_cka"]
    np.testing.assert_allclose(base, ours, rtol=1e-10)
    self_base = B.compare_linear_cka(A, None, data, LA, LA).numpy()
    np.testing.assert_allclose(self_base, cg.compare(A, None, data, layers_a=LA)["linear_cka"], rtol=1e-10)


def test_minibatch_cka_is_the_estimator():
    A, Bm = mlp(0), mlp(1)
    data = list(X.split(20))
    got = B.minibatch_cka(A, Bm, data, LA, LB).numpy()
    fa = [acts(A, LA, x) for x in data]
    fb = [acts(Bm, LB, x) for x in data]
    ref = np.empty((len(LA), len(LB)))
    for i in range(len(LA)):
        for j in range(len(LB)):
            kl = kk = ll = 0.0
            for t in range(len(data)):
                K = fa[t][i] @ fa[t][i].T
                L = fb[t][j] @ fb[t][j].T
                kl += ref_hsic1_song(K, L)
                kk += ref_hsic1_song(K, K)
                ll += ref_hsic1_song(L, L)
            ref[i, j] = kl / np.sqrt(kk * ll)
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    # one minibatch holding every sample is the debiased CKA of the data
    one = B.minibatch_cka(A, Bm, [X], LA, LB).numpy()
    full_a, full_b = acts(A, LA, X), acts(Bm, LB, X)
    np.testing.assert_allclose(one, [[cg.debiased_cka(a, b) for b in full_b] for a in full_a], rtol=1e-9)
    # and it is an estimator: with small batches it differs from the exact value
    exact = B.compare_linear_cka(A, Bm, data, LA, LB).numpy()
    assert np.abs(got - exact).max() > 1e-3


def test_minibatch_errors():
    acc = B.MinibatchCKA()
    with pytest.raises(ValueError, match="no minibatches"):
        acc.compute()
    with pytest.raises(ValueError, match="at least 4 rows"):
        acc.update([torch.ones(3, 2)], [torch.ones(3, 2)])
    with pytest.raises(ValueError, match="space must be"):
        B.linear_cka_all_pairs([torch.ones(3, 2)], space="gram")
