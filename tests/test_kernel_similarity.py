"""Weight-space kernel similarity (METHODS §4.1–4.2) against NumPy references."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import congruence as cg  # noqa: E402
from congruence.matching import kernel_similarity, kernel_similarity_matrix  # noqa: E402

scipy_opt = pytest.importorskip("scipy.optimize")


def cnn(seed, c1=8, c2=12):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, c1, 3), nn.ReLU(), nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(c2 * 4, 5))


def ref_r(wa, wb, metric="pearson"):
    Ka, Kb = wa.reshape(wa.shape[0], -1).astype(np.float64), wb.reshape(wb.shape[0], -1).astype(np.float64)
    out = np.empty((len(Ka), len(Kb)))
    for i, a in enumerate(Ka):
        for j, b in enumerate(Kb):
            out[i, j] = np.corrcoef(a, b)[0, 1] if metric == "pearson" else a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    return np.nan_to_num(out)


def test_identical_networks_score_one_in_every_mode():
    A = cnn(0)
    for match in ("optimal", "greedy", "index"):
        ks = kernel_similarity(A, A, match=match)
        assert ks.score == pytest.approx(1.0)
        assert all(st["min"] == pytest.approx(1.0) and st["std"] == pytest.approx(0.0, abs=1e-12) for st in ks.stats)
        assert ks.layers == [("0", "0"), ("2", "2")]
        assert ks.dense[0]["pearson"] == pytest.approx(1.0)


@pytest.mark.parametrize("metric", ["pearson", "cosine"])
def test_layer_scores_match_the_reference(metric):
    A, B = cnn(1), cnn(2)
    for match in ("optimal", "greedy", "index"):
        ks = kernel_similarity(A, B, match=match, metric=metric)
        for (la, lb), s, st in zip(ks.layers, ks.scores, ks.stats):
            r = ref_r(dict(A.named_modules())[la].weight.detach().numpy(),
                      dict(B.named_modules())[lb].weight.detach().numpy(), metric)
            if match == "index":
                ref = np.diag(r)
            elif match == "optimal":
                rr, cc = scipy_opt.linear_sum_assignment(r, maximize=True)
                ref = np.zeros(len(r))
                ref[rr] = r[rr, cc]
            else:
                ref = np.zeros(len(r))
                m = cg.match_neurons(R=r, method="greedy")
                ref[m.rows] = m.correlations
            np.testing.assert_allclose(s, ref, atol=1e-12)
            assert st["std"] == pytest.approx(ref.std()) and st["max"] == pytest.approx(ref.max())
        assert ks.score == pytest.approx(np.mean([st["mean"] for st in ks.stats]))


def test_permuted_kernels_are_found_by_the_optimal_matching_only():
    A = cnn(3)
    B = cnn(3)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        B[0].weight.copy_(A[0].weight[perm])
        B[0].bias.copy_(A[0].bias[perm])
    opt = kernel_similarity(A, B)
    idx = kernel_similarity(A, B, match="index")
    assert opt.stats[0]["mean"] == pytest.approx(1.0)
    assert idx.stats[0]["mean"] < 0.9


def test_matrix_and_errors():
    models = [cnn(s) for s in range(3)]
    S, per_layer = kernel_similarity_matrix(models)
    assert S.shape == (3, 3) and per_layer.shape == (3, 3, 2)
    np.testing.assert_allclose(np.diag(S), 1.0)
    np.testing.assert_allclose(S, S.T, atol=1e-12)
    wide = cnn(4, c2=14)
    ks = kernel_similarity(models[0], wide)  # layer 2: 12 kernels against 14, a rectangular matching
    assert len(ks.scores[1]) == 12 and np.isnan(ks.dense[0]["pearson"])  # dense shapes differ
    with pytest.raises(ValueError, match="cannot be compared"):
        kernel_similarity(models[0], cnn(5, c1=6))  # layer 2 kernels have 6x3x3 vs 8x3x3 weights
    with pytest.raises(ValueError, match="counts must agree"):
        kernel_similarity(models[0], nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(ValueError, match="needs convolutions"):
        kernel_similarity(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="match must be"):
        kernel_similarity(models[0], models[1], match="hungarian")
    with pytest.raises(ValueError, match="metric must be"):
        kernel_similarity(models[0], models[1], metric="mi")
    with pytest.raises(ValueError, match="same number of kernels"):
        kernel_similarity(models[0], wide, match="index")
