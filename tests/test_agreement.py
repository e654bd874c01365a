"""Functional agreement (METHODS §7): the popcount kernels against numpy, the measures against
float64 oracles and hand-computed cases, the store and the recorder."""

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from congruence import _cpu
from congruence.agreement import (CorrectnessRecorder, CorrectnessStore, UndefinedKappaWarning, accessibility,
                                  agreement_matrix, all_or_none, class_agreement, disagreement_matrix,
                                  error_consistency, jensen_shannon, learning_order_constancy, poisson_binomial_pmf,
                                  superset_test, topk_agreement, tp_agreement, tp_histogram)
from congruence.agreement.bits import bit_planes, pack_rows, unpack_rows, valid_words


@pytest.mark.parametrize("K, n", [(1, 1), (3, 64), (5, 65), (67, 1000), (130, 2000)])
@pytest.mark.parametrize("threads", [1, 2])
def test_popcount_kernels_equal_numpy(K, n, threads):
    rng = np.random.default_rng(K * 1000 + n)
    B = rng.random((K, n)) < 0.4
    assert np.array_equal(unpack_rows(pack_rows(B), n), B)
    both = np.empty((K, K), np.int64)
    _cpu.gram_popcount(pack_rows(B), both, threads)
    assert np.array_equal(both, B.astype(np.int64) @ B.T.astype(np.int64))
    for C in (2, 3, 10, 1000):
        L = rng.integers(0, C, (K, n))
        eq = np.empty((K, K), np.int64)
        _cpu.gram_equal_sliced(bit_planes(L, C), valid_words(n), eq, threads)
        assert np.array_equal(eq, (L[:, None, :] == L[None, :, :]).sum(-1)), C


def test_agreement_matrix_and_a_hand_case():
    P = np.array([[0, 1, 2, 2], [0, 1, 1, 2], [2, 2, 2, 2]])
    A = agreement_matrix(P)
    assert np.allclose(A, [[1, 0.75, 0.5], [0.75, 1, 0.25], [0.5, 0.25, 1]])
    assert np.allclose(disagreement_matrix(P), 1 - A)
    assert np.allclose(agreement_matrix(P, n_classes=300), A)
    with pytest.raises(ValueError, match="n_classes"):
        agreement_matrix(P, n_classes=2)
    with pytest.raises(ValueError, match="integer labels"):
        agreement_matrix(P.astype(float))
    with pytest.raises(ValueError, match="non-negative"):
        agreement_matrix(-P)


def kappa_oracle(a, b):
    a, b = a.astype(float), b.astype(float)
    c_obs = np.mean(a == b)
    pa, pb = a.mean(), b.mean()
    c_exp = pa * pb + (1 - pa) * (1 - pb)
    return (c_obs - c_exp) / (1 - c_exp)


def test_error_consistency_equals_the_formula():
    rng = np.random.default_rng(3)
    C = rng.random((9, 777)) < rng.uniform(0.2, 0.9, (9, 1))
    ec = error_consistency(C)
    for i, j in itertools.product(range(9), repeat=2):
        assert ec.kappa[i, j] == pytest.approx(kappa_oracle(C[i], C[j]), abs=1e-12)
    assert np.allclose(np.diag(ec.kappa), 1.0)
    assert np.allclose(ec.accuracy, C.mean(1))
    # hand case: a = 1100, b = 1010: c_obs = 0.5, p = 0.5 each, c_exp = 0.5, kappa = 0
    hand = error_consistency(np.array([[1, 1, 0, 0], [1, 0, 1, 0]]))
    assert hand.kappa[0, 1] == pytest.approx(0.0) and hand.observed[0, 1] == 0.5


def test_undefined_kappa_is_nan_with_a_warning():
    with pytest.warns(UndefinedKappaWarning):
        ec = error_consistency(np.array([[1, 1, 1], [1, 1, 1], [1, 0, 1]], bool))
    assert np.isnan(ec.kappa[0, 1]) and np.isfinite(ec.kappa[0, 2])


def test_topk_agreement_with_ties_and_exact_sets():
    f = np.array([[3.0, 3.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    g = np.array([[3.0, 1.0, 3.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    # ties go to the lower class: T2(f) = {0, 1}, {2, 3}; T2(g) = {0, 2}, {0, 1}
    assert topk_agreement(f, g, 2) == pytest.approx((0.5 + 0.0) / 2)
    assert topk_agreement(f, f, 2, exact=True) == 1.0 and topk_agreement(f, g, 2, exact=True) == 0.0
    assert topk_agreement(f, g, 4) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        topk_agreement(f, g, 5)


def test_jensen_shannon_matches_scipy():
    rng = np.random.default_rng(0)
    F, G = rng.standard_normal((50, 7)) * 3, rng.standard_normal((50, 7))
    p = np.exp(F) / np.exp(F).sum(1, keepdims=True)
    q = np.exp(G) / np.exp(G).sum(1, keepdims=True)
    want = np.mean([jensenshannon(a, b) ** 2 for a, b in zip(p, q)])
    assert jensen_shannon(F, G) == pytest.approx(want, rel=1e-10)
    assert jensen_shannon(F, G, base=2) == pytest.approx(want / np.log(2), rel=1e-10)
    assert jensen_shannon(F, F) == pytest.approx(0.0, abs=1e-15)
    assert jensen_shannon(np.array([[60.0, -60.0]]), np.array([[-60.0, 60.0]])) == pytest.approx(np.log(2), rel=1e-9)


def test_class_agreement():
    classes, a = class_agreement([0, 1, 1, 2], [0, 0, 1, 2], [0, 1, 1, 1])
    assert list(classes) == [0, 1] and np.allclose(a, [1.0, 2 / 3])


def test_poisson_binomial_pmf_against_enumeration_and_binomial():
    p = np.array([0.1, 0.5, 0.8, 0.95])
    brute = np.zeros(5)
    for bits in itertools.product([0, 1], repeat=4):
        brute[sum(bits)] += np.prod([q if b else 1 - q for q, b in zip(p, bits)])
    assert np.allclose(poisson_binomial_pmf(p), brute, atol=1e-15)
    assert np.allclose(poisson_binomial_pmf(np.full(20, 0.3)), stats.binom.pmf(np.arange(21), 20, 0.3))


def test_tp_histogram_against_hand_values_and_the_null():
    C = np.array([[1, 1, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 0, 1, 1]], bool)
    h = tp_histogram(C)
    assert list(h.counts) == [1, 1, 1, 2]
    assert np.allclose(tp_agreement(C), [1, 2 / 3, 0, 1 / 3, 1])
    p = C.mean(1)
    assert h.null_all_correct == pytest.approx(np.prod(p)) and h.null_none_correct == pytest.approx(np.prod(1 - p))
    assert h.total_variation == pytest.approx(0.5 * np.abs(h.frequencies - poisson_binomial_pmf(p)).sum())
    rng = np.random.default_rng(1)
    indep = rng.random((20, 20000)) < 0.7
    hi = tp_histogram(indep)
    assert 0.9 < hi.dispersion < 1.1 and hi.total_variation < 0.02 and hi.p_value > 1e-4
    easy = rng.random(20000) < 0.7  # every network right on the same examples, plus a little noise
    corr = easy[None, :] ^ (rng.random((20, 20000)) < 0.02)
    hc = tp_histogram(corr)
    assert hc.dispersion > 10 and hc.p_value < 1e-12 and hc.all_correct > 50 * hc.null_all_correct
    two = rng.random((2, 1000)) < 0.5  # no bin expects fewer than 5: no pooling, scipy's chi-square
    h2 = tp_histogram(two)
    expected = 1000 * poisson_binomial_pmf(two.mean(1))
    ref = stats.chisquare(h2.counts, expected * h2.counts.sum() / expected.sum())
    assert h2.dof == 2 and h2.chi2 == pytest.approx(ref.statistic) and h2.p_value == pytest.approx(ref.pvalue)


def test_all_or_none_and_accessibility_and_order_constancy():
    C = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    aon = all_or_none(C)
    assert aon.all_correct == 0.25 and aon.none_correct == 0.5 and aon.all_over_any == 0.5
    rng = np.random.default_rng(2)
    store = CorrectnessStore(3, 4, 100)
    full = rng.random((3, 4, 100)) < 0.5
    for i, e in itertools.product(range(3), range(4)):
        store.set(i, e, full[i, e])
    assert np.allclose(accessibility(store), full.mean(axis=(0, 1)))
    assert np.allclose(accessibility(store, checkpoints=[0, 1]), full[:, :2].mean(axis=(0, 1)))
    a, b = rng.random(300), rng.random(300)
    oc = learning_order_constancy(a, b)
    assert oc.pearson == pytest.approx(stats.pearsonr(a, b)[0]) and oc.spearman == pytest.approx(stats.spearmanr(a, b)[0])
    with pytest.raises(ValueError, match="constant"):
        learning_order_constancy(np.ones(5), np.arange(5.0))


def test_superset_test_hand_case():
    weak, strong = CorrectnessStore(2, 5, 6), CorrectnessStore(2, 5, 6)
    w_final = np.array([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], bool)  # L_W = {0, 1}
    s_final = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 0, 0]], bool)  # L_S = {0, 1, 2, 3}
    for e in range(5):
        for i in range(2):
            weak.set(i, e, w_final[i] if e == 4 else w_final[i] & (e >= 2))
            strong.set(i, e, s_final[i])
    r = superset_test(weak, strong)
    assert r.containment == 1.0 and r.baseline == pytest.approx(4 / 6) and (r.n_weak, r.n_strong) == (2, 4)
    assert np.isnan(r.early_correlation)  # the weak ensemble knows nothing in its first checkpoint


def test_store_partial_records_save_load_and_subset(tmp_path):
    s = CorrectnessStore(2, 2, 130, predictions=True, network_names=["a", "b"], labels=np.arange(130) % 3)
    s.set(0, 0, np.arange(65) % 2 == 0, predictions=np.zeros(65, int), indices=np.arange(65))
    assert not s.is_complete(0)
    with pytest.raises(ValueError, match="incomplete"):
        s.correct(0)
    s.set(0, 0, np.ones(65, bool), predictions=np.ones(65, int), indices=np.arange(65, 130))
    s.set(1, 0, np.zeros(130, bool))
    want = np.concatenate([np.arange(65) % 2 == 0, np.ones(65, bool)])
    assert np.array_equal(s.correct(0)[0], want) and not s.correct(0)[1].any()
    s.save(tmp_path / "c.npz")
    t = CorrectnessStore.load(tmp_path / "c.npz")
    assert np.array_equal(t.bits, s.bits) and np.array_equal(t.predictions, s.predictions)
    assert t.network_names == ["a", "b"] and np.array_equal(t.labels, s.labels)
    assert np.array_equal(s.subset([1]).correct(0), s.correct(0)[1:])
    with pytest.raises(ValueError, match="network"):
        s.set(2, 0, np.zeros(130, bool))
    with pytest.raises(ValueError, match="one entry per example"):
        s.set(0, 0, np.zeros(5, bool))
    with pytest.raises(ValueError, match="indices must lie"):
        s.set(0, 0, np.zeros(1, bool), indices=[200])
    with pytest.raises(ValueError, match="booleans"):
        s.set(0, 0, np.full(130, 0.5))


def test_recorder_top_k_with_ties_and_predictions():
    rec = CorrectnessRecorder(np.array([2, 0, 1]), n_networks=1, top_k=2)
    logits = np.array([[1.0, 1.0, 1.0], [0.0, 5.0, 5.0], [3.0, 2.0, 1.0]])
    rec.record(0, 0, logits)
    # ties rank lower classes first: example 0's label 2 ranks 3rd, example 1's label 0 ranks 3rd
    assert list(rec.store.correct(0)[0]) == [False, False, True]
    assert list(rec.store.predictions[0, 0]) == [0, 1, 0]
    with pytest.raises(ValueError, match="classes"):
        rec.record(0, 0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="top_k"):
        CorrectnessRecorder([0, 1], 1, top_k=0)


def test_recorder_evaluates_a_torch_model_and_rejects_a_shuffled_loader():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 4, generator=g)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1, 0] = 1.0
    ds = torch.utils.data.TensorDataset(x, y)
    rec = CorrectnessRecorder(y, n_networks=1, n_checkpoints=2)
    hook = rec.callback(torch.utils.data.DataLoader(ds, batch_size=32), network=0, first_epoch=1)
    assert hook(model, 1) == 1.0
    assert rec.store.is_complete(0) and rec.store.correct(0).all()
    shuffled = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, generator=g)
    with pytest.raises(ValueError, match="unshuffled"):
        rec.evaluate(model, shuffled, 0, 1)


def test_torch_baselines_equal_ours():
    torch = pytest.importorskip("torch")
    from congruence.baselines import agreement_matrix_torch, error_consistency_torch

    rng = np.random.default_rng(9)
    P = rng.integers(0, 7, (30, 999))
    assert np.allclose(agreement_matrix_torch(torch.from_numpy(P), 7).numpy(), agreement_matrix(P), atol=1e-15)
    C = rng.random((30, 999)) < 0.6
    assert np.allclose(error_consistency_torch(torch.from_numpy(C)).numpy(), error_consistency(C).kappa, atol=1e-12)
