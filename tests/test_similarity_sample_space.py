"""Sample-space similarity measures (METHODS.md §2.3, §2.4, §2.10, §2.11) against the float64
oracles in reference_sample_space.py: RBF CKA, minibatch CKA, RSA, mutual kNN; the golden values of
§8.2; invariances driven by each measure's ``info`` (§2.12); symmetry; row permutations; errors."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference_sample_space as R
from congruence import ConstantFeatureWarning, MemoryBudgetError
from congruence.similarity import kernel_cka as KC
from congruence.similarity._measure import INVARIANCES, REGISTRY
from congruence.similarity.kernel_cka import (
    DroppedBatchWarning,
    RBFCKADetails,
    SampledMedianWarning,
    minibatch_cka,
    rbf_cka,
)
from congruence.similarity.neighbors_alignment import (
    MUTUAL_KNN_VARIANTS,
    mutual_knn,
    mutual_knn_chance,
    mutual_knn_euclidean,
)
from congruence.similarity.rsa import RSA_MAX_SAMPLES, RSA_VARIANTS, rsa, rsa_euclidean, rsa_sqeuclidean

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------------------------ data


def demo_data():
    """The google-research demo data of METHODS.md §8.2 (legacy RandomState, this order)."""
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return X, Y


def related(n, p, q, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + offset * rng.uniform(-1, 1, p)
    Y = X @ rng.standard_normal((p, q)) + 0.5 * rng.standard_normal((n, q)) + offset
    return X, Y


# ------------------------------------------------------------------------ golden values §8.2

GOLDEN_RBF = [  # (debiased, median, value) at fraction 0.5
    (False, "all_entries", 0.6548311823),
    (False, "pairs", 0.6540059277),
    (True, "all_entries", 0.4192767510),
    (True, "pairs", 0.4199522002),
]


@pytest.mark.parametrize("debiased,median,value", GOLDEN_RBF)
def test_golden_rbf_cka(debiased, median, value):
    X, Y = demo_data()
    assert abs(rbf_cka(X, Y, fraction=0.5, debiased=debiased, median=median) - value) <= 1e-9


def test_golden_rsa_mutual_knn_minibatch():
    X, Y = demo_data()
    assert abs(rsa(X, Y) - 0.4724396738) <= 1e-9
    assert abs(rsa(X, Y, compare="pearson") - 0.4851461428) <= 1e-9
    assert abs(rsa(X, Y, rdm="euclidean") - 0.4929646967) <= 1e-9
    assert abs(rsa_euclidean(X, Y) - 0.4929646967) <= 1e-9
    assert mutual_knn(X, Y, k=10) == pytest.approx(0.279, abs=1e-12)
    assert abs(minibatch_cka(X, Y, batch_size=20) - 0.5337183634) <= 1e-9
    assert abs(minibatch_cka(X, Y, batch_size=50) - 0.5308439528) <= 1e-9
    # one batch of all samples = debiased linear CKA (§8.2: 0.5134564895)
    assert abs(minibatch_cka([(X, Y)]) - 0.5134564895) <= 1e-9


# ------------------------------------------------------------------------------- RBF CKA


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("median", ["pairs", "all_entries"])
@pytest.mark.parametrize("fraction", [0.4, 1.0])
def test_rbf_cka_matches_oracle(debiased, median, fraction):
    X, Y = related(61, 7, 5, seed=3, offset=20.0)
    got = rbf_cka(X, Y, fraction=fraction, debiased=debiased, median=median)
    ref = R.ref_rbf_cka(X, Y, fraction=fraction, debiased=debiased, median=median)
    assert isinstance(got, float)
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("n", [4, 5, 36, 37])
@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_cka_tiled_equals_untiled(n, debiased):
    X, Y = related(n, 6, 4, seed=n)
    whole = rbf_cka(X, Y, debiased=debiased, median="pairs")
    for block in (1, 2, 3, 7, n, 10 * n):
        for median in ("pairs", "all_entries"):
            tiled = rbf_cka(X, Y, debiased=debiased, median=median, block_size=block)
            assert tiled == pytest.approx(rbf_cka(X, Y, debiased=debiased, median=median), rel=1e-12, abs=1e-14)
        assert rbf_cka(X, Y, debiased=debiased, block_size=block) == pytest.approx(whole, rel=1e-12, abs=1e-14)
    assert rbf_cka(X, Y, debiased=debiased) == pytest.approx(R.ref_rbf_cka(X, Y, debiased=debiased), rel=1e-10)


def _own_condensed(X, block):
    """The implementation's own pair distances for this tile size (the GEMM's rounding depends on
    the tile shape, so different tilings may differ in the last bit)."""
    A = KC._centre(np.array(X, dtype=np.float64))
    sq = KC._row_sqnorms(A)
    return A, sq, np.concatenate(list(KC._condensed_sqdist_blocks(A, sq, block)))


@given(
    n=st.integers(4, 40),
    d=st.integers(1, 3),
    levels=st.integers(1, 4),
    block=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
    convention=st.sampled_from(["pairs", "all_entries"]),
)
def test_exact_median_selection_with_ties(n, d, levels, block, seed, convention):
    """The radix selection returns exactly np.median of the same distances, heavy ties included
    (integer grids), for every tile size (small tiles force several sweeps)."""
    X = np.random.default_rng(seed).integers(0, levels + 1, size=(n, d)).astype(np.float64)
    A, sq, vals = _own_condensed(X, block)
    if convention == "pairs":
        expected = float(np.median(vals))
    else:  # all n² entries: n zeros and every pair twice
        expected = float(np.median(np.concatenate([np.zeros(n), vals, vals])))
    got, exact = KC._median_sqdist(A, sq, convention, block, seed=0)
    assert exact
    assert got == expected
    assert got == pytest.approx(R.ref_median_sqdist(X, convention), rel=1e-12, abs=1e-12)


def test_rbf_cka_details():
    X, Y = related(40, 5, 3, seed=1)
    d = rbf_cka(X, Y, fraction=0.8, return_details=True)
    assert isinstance(d, RBFCKADetails) and d.median_exact and d.n_samples == 40 and d.median == "pairs"
    assert d.value == rbf_cka(X, Y, fraction=0.8)
    assert d.median_sqdist_x == pytest.approx(R.ref_median_sqdist(X), rel=1e-12)
    assert d.median_sqdist_y == pytest.approx(R.ref_median_sqdist(Y), rel=1e-12)
    assert d.sigma2_x == pytest.approx(0.64 * d.median_sqdist_x, rel=1e-15)


def test_rbf_cka_sampled_median_beyond_limit(monkeypatch):
    X, Y = related(80, 6, 4, seed=2)
    exact = rbf_cka(X, Y)
    monkeypatch.setattr(KC, "EXACT_MEDIAN_MAX_N", 50)
    monkeypatch.setattr(KC, "MEDIAN_SAMPLE_PAIRS", 20_000)
    with pytest.warns(SampledMedianWarning, match="sampled"):
        d = rbf_cka(X, Y, return_details=True)
    assert not d.median_exact
    assert d.value == pytest.approx(exact, abs=0.02)
    assert d.median_sqdist_x == pytest.approx(R.ref_median_sqdist(X), rel=0.05)
    with pytest.warns(SampledMedianWarning):
        assert rbf_cka(X, Y) == d.value  # seeded: deterministic
    with pytest.warns(SampledMedianWarning):
        assert rbf_cka(X, Y, seed=1) != d.value


def test_rbf_cka_inputs_and_dtypes():
    X, Y = related(30, 5, 4, seed=4)
    ref = rbf_cka(X, Y)
    assert rbf_cka(torch.from_numpy(X), torch.from_numpy(Y)) == ref
    assert rbf_cka(np.asfortranarray(X), Y[::1, :]) == pytest.approx(ref, rel=1e-13)
    big = np.zeros((60, 10))
    big[::2, ::2] = X
    assert rbf_cka(big[::2, ::2], Y) == pytest.approx(ref, rel=1e-13)  # strided view
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert rbf_cka(X32, Y32) == pytest.approx(rbf_cka(X32.astype(np.float64), Y32.astype(np.float64)), rel=1e-13)
    Xb = torch.from_numpy(X).to(torch.bfloat16)
    assert rbf_cka(Xb, Y) == pytest.approx(rbf_cka(Xb.float().numpy().astype(np.float64), Y), rel=1e-13)
    assert rbf_cka(torch.from_numpy(X).requires_grad_(), Y) == ref


def test_rbf_cka_zero_median():
    X, Y = related(10, 3, 3, seed=5)
    X[:8] = X[0]  # 28 of 45 pairs are identical points
    with pytest.raises(ValueError, match="X: the median squared distance"):
        rbf_cka(X, Y)


def test_rbf_cka_identity():
    X, _ = related(30, 5, 4, seed=6)
    assert rbf_cka(X, X) == pytest.approx(1.0, abs=1e-14)
    assert rbf_cka(X, X, debiased=True) == pytest.approx(1.0, abs=1e-14)


# -------------------------------------------------------------------------- minibatch CKA


def _batches(X, Y, sizes):
    out, s = [], 0
    for b in sizes:
        out.append((X[s:s + b], Y[s:s + b]))
        s += b
    return out


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [True, False])
def test_minibatch_cka_matches_per_batch_sum(kernel, debiased):
    X, Y = related(75, 9, 6, seed=7, offset=5.0)
    batches = _batches(X, Y, [17, 23, 30, 5])
    got, used = minibatch_cka(batches, kernel=kernel, debiased=debiased, fraction=0.7, return_n_batches=True)
    ref = R.ref_minibatch_cka(batches, kernel=kernel, debiased=debiased, fraction=0.7)
    assert used == 4 and isinstance(got, float)
    assert got == pytest.approx(ref, rel=1e-10)
    # the same from arrays, and from a one-shot generator
    assert minibatch_cka((b for b in batches), kernel=kernel, debiased=debiased, fraction=0.7) == got
    even = _batches(X, Y, [25, 25, 25])
    assert minibatch_cka(X, Y, batch_size=25, kernel=kernel, debiased=debiased, fraction=0.7) == pytest.approx(
        R.ref_minibatch_cka(even, kernel=kernel, debiased=debiased, fraction=0.7), rel=1e-10)


def test_minibatch_cka_is_not_average_of_cka():
    X, Y = related(60, 6, 4, seed=8)
    batches = _batches(X, Y, [20, 40])
    mean_cka = np.mean([R.ref_linear_cka(x, y, debiased=True) for x, y in batches])
    assert abs(minibatch_cka(batches) - mean_cka) > 1e-4


@pytest.mark.parametrize("debiased", [True, False])
def test_minibatch_cka_one_batch_is_full_cka(debiased):
    X, Y = related(50, 8, 5, seed=9, offset=10.0)
    assert minibatch_cka([(X, Y)], debiased=debiased) == pytest.approx(R.ref_linear_cka(X, Y, debiased), rel=1e-11)
    assert minibatch_cka(X, Y, batch_size=50, debiased=debiased) == pytest.approx(
        R.ref_linear_cka(X, Y, debiased), rel=1e-11)
    assert minibatch_cka([(X, Y)], kernel="rbf", debiased=debiased) == pytest.approx(
        R.ref_rbf_cka(X, Y, debiased=debiased), rel=1e-10)


def test_minibatch_cka_drops_small_batches():
    X, Y = related(43, 5, 4, seed=10)
    with pytest.warns(DroppedBatchWarning, match="1 of 3 batch"):
        value, used = minibatch_cka(X, Y, batch_size=20, return_n_batches=True)
    assert used == 2
    assert value == pytest.approx(R.ref_minibatch_cka(_batches(X, Y, [20, 20])), rel=1e-11)
    with pytest.raises(ValueError, match="no usable batch"):
        minibatch_cka([(X[:3], Y[:3]), (X[3:5], Y[3:5])])


def test_minibatch_cka_torch_batches():
    X, Y = related(40, 5, 4, seed=11)
    tb = [(torch.from_numpy(X[i:i + 10]).float(), torch.from_numpy(Y[i:i + 10])) for i in range(0, 40, 10)]
    nb = [(X[i:i + 10].astype(np.float32).astype(np.float64), Y[i:i + 10]) for i in range(0, 40, 10)]
    assert minibatch_cka(tb) == pytest.approx(minibatch_cka(nb), rel=1e-13)


# ------------------------------------------------------------------------------------- RSA


@pytest.mark.parametrize("rdm", ["correlation", "euclidean", "sqeuclidean"])
@pytest.mark.parametrize("compare", ["spearman", "pearson", "kendall_tau_a"])
def test_rsa_matches_scipy(rdm, compare):
    X, Y = related(33, 6, 4, seed=12, offset=3.0)
    got = rsa(X, Y, rdm=rdm, compare=compare)
    assert isinstance(got, float)
    assert got == pytest.approx(R.ref_rsa(X, Y, rdm, compare), rel=1e-10, abs=1e-12)
    assert RSA_VARIANTS[rdm](X, Y, compare=compare) == got


@pytest.mark.parametrize("compare", ["spearman", "pearson", "kendall_tau_a"])
def test_rsa_ties(compare):
    """Integer points with few distinct distances: average ranks (Spearman), ties in τ_a. 16 points
    keep the column means dyadic, so the distances are exact."""
    rng = np.random.default_rng(13)
    X = rng.integers(0, 3, size=(16, 2)).astype(np.float64)
    Y = rng.integers(0, 2, size=(16, 3)).astype(np.float64)
    for rdm in ("euclidean", "sqeuclidean"):
        assert rsa(X, Y, rdm=rdm, compare=compare) == pytest.approx(R.ref_rsa(X, Y, rdm, compare), rel=1e-10,
                                                                       abs=1e-12)


def test_rsa_spearman_invariant_to_monotone_rdm():
    X, Y = related(30, 5, 4, seed=14)
    assert rsa_euclidean(X, Y) == pytest.approx(rsa_sqeuclidean(X, Y), abs=1e-12)
    assert rsa_euclidean(X, Y, compare="kendall_tau_a") == pytest.approx(
        rsa_sqeuclidean(X, Y, compare="kendall_tau_a"), abs=1e-12)


def test_rsa_constant_sample_correlation_rdm():
    X, Y = related(20, 6, 4, seed=15)
    X[3] = 2.5  # constant across features: Pearson undefined -> 0 (dissimilarity 1)
    with pytest.warns(ConstantFeatureWarning, match="constant across features"):
        got = rsa(X, Y, compare="pearson")
    assert got == pytest.approx(R.ref_rsa(X, Y, "correlation", "pearson"), rel=1e-10)


def test_rsa_constant_rdm():
    X = np.eye(4)  # all pairwise distances equal (exactly: the column means are dyadic)
    Y = related(4, 3, 2, seed=16)[0]
    with pytest.warns(RuntimeWarning, match="all equal"):
        assert math.isnan(rsa_euclidean(X, Y, compare="pearson"))
    with pytest.warns(RuntimeWarning, match="all equal"):
        assert math.isnan(rsa_euclidean(X, Y))
    assert rsa_euclidean(X, Y, compare="kendall_tau_a") == 0.0


def test_rsa_smallest_and_torch():
    X, Y = related(3, 4, 4, seed=17)
    assert rsa(X, Y, compare="pearson") == pytest.approx(R.ref_rsa(X, Y, "correlation", "pearson"), rel=1e-10)
    X, Y = related(25, 5, 4, seed=18)
    assert rsa(torch.from_numpy(X).float(), Y) == pytest.approx(rsa(X.astype(np.float32).astype(np.float64), Y),
                                                                abs=1e-13)


# ------------------------------------------------------------------------------ mutual kNN


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean", "euclidean"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_mutual_knn_matches_brute_force(metric, k):
    X, Y = related(57, 8, 5, seed=19, offset=1.0)
    got = mutual_knn(X, Y, k=k, metric=metric)
    assert isinstance(got, float)
    assert got == R.ref_mutual_knn(X, Y, k=k, metric=metric)


def test_mutual_knn_ties_cosine():
    """One-hot rows scaled by powers of two: cosine similarities are exactly 0 or 1, so most
    neighbours tie and must go to the lowest index."""
    rng = np.random.default_rng(20)
    n = 24
    X = np.zeros((n, 4))
    X[np.arange(n), rng.integers(0, 4, n)] = 2.0 ** rng.integers(-3, 4, n)
    Y = np.zeros((n, 3))
    Y[np.arange(n), rng.integers(0, 3, n)] = 2.0 ** rng.integers(-3, 4, n)
    for k in (1, 3, 8, 23):
        assert mutual_knn(X, Y, k=k) == R.ref_mutual_knn(X, Y, k=k, metric="cosine")
    assert mutual_knn(X, X, k=23) == 1.0


def test_mutual_knn_ties_euclidean():
    """Integer grid points (16 points: dyadic means, exact distances) with duplicates."""
    rng = np.random.default_rng(21)
    X = rng.integers(0, 3, size=(16, 2)).astype(np.float64)
    Y = rng.integers(0, 2, size=(16, 3)).astype(np.float64)
    for k in (1, 4, 7, 15):
        assert mutual_knn_euclidean(X, Y, k=k) == R.ref_mutual_knn(X, Y, k=k, metric="sqeuclidean")


def test_mutual_knn_chance_level():
    assert mutual_knn_chance(101, 10) == 0.1
    rng = np.random.default_rng(22)
    vals = [mutual_knn(rng.standard_normal((201, 5)), rng.standard_normal((201, 5)), k=10) for _ in range(3)]
    assert abs(np.mean(vals) - mutual_knn_chance(201, 10)) < 0.015
    with pytest.raises(ValueError, match="k=10 exceeds"):
        mutual_knn_chance(5, 10)


# --------------------------------------------------- invariances, symmetry, permutations §2.12


def _mb(kernel):
    return lambda X, Y: minibatch_cka(X, Y, batch_size=50, kernel=kernel)


#: (id, measure function whose .info declares the invariances, how to call it)
MEASURES = [
    ("rbf_cka", rbf_cka, lambda X, Y: rbf_cka(X, Y)),
    ("rbf_cka_debiased_t0.4", rbf_cka, lambda X, Y: rbf_cka(X, Y, fraction=0.4, debiased=True)),
    ("rbf_cka_all_entries", rbf_cka, lambda X, Y: rbf_cka(X, Y, median="all_entries", block_size=37)),
    ("minibatch_cka", minibatch_cka, _mb("linear")),
    ("minibatch_cka_rbf", minibatch_cka, _mb("rbf")),
    ("mutual_knn", mutual_knn, lambda X, Y: mutual_knn(X, Y)),
    ("mutual_knn_euclidean", mutual_knn_euclidean, lambda X, Y: mutual_knn_euclidean(X, Y)),
] + [
    (f"{fn.info.name}_{compare}", fn, (lambda f, c: (lambda X, Y: f(X, Y, compare=c)))(fn, compare))
    for fn in RSA_VARIANTS.values() for compare in ("spearman", "pearson", "kendall_tau_a")
]
IDS = [m[0] for m in MEASURES]


def _haar(p, rng):
    Q, Rm = np.linalg.qr(rng.standard_normal((p, p)))
    return Q * np.sign(np.diag(Rm))


def transform(A, t, rng):
    """METHODS.md §2.12: O Haar Q; S ×1.337; T + 1vᵀ, v ~ 10·N(0, I); P column permutation;
    L random A with condition number 100."""
    p = A.shape[1]
    if t == "orthogonal":
        return A @ _haar(p, rng)
    if t == "isotropic_scaling":
        return 1.337 * A
    if t == "translation":
        return A + 10.0 * rng.standard_normal(p)
    if t == "permutation":
        return A[:, rng.permutation(p)]
    if t == "invertible_linear":
        return A @ (_haar(p, rng) @ np.diag(np.logspace(0, 2, p)) @ _haar(p, rng))
    raise ValueError(t)


@pytest.fixture(scope="module")
def std_data():
    rng = np.random.default_rng(2012)
    X = rng.standard_normal((200, 30))
    Y = X @ rng.standard_normal((30, 30)) + rng.standard_normal((200, 30))
    return X, Y


@pytest.mark.parametrize("name,fn,call", MEASURES, ids=IDS)
@pytest.mark.parametrize("argument", [0, 1])
def test_invariances_follow_info(name, fn, call, argument, std_data):
    X, Y = std_data
    base = call(X, Y)
    for t in INVARIANCES:
        deltas = []
        for seed in range(3):
            rng = np.random.default_rng(100 + seed)
            Xt, Yt = (transform(X, t, rng), Y) if argument == 0 else (X, transform(Y, t, rng))
            deltas.append(abs(call(Xt, Yt) - base))
            if fn.info.invariant_to(t, argument) or deltas[-1] > 1e-3:
                break
        if fn.info.invariant_to(t, argument):
            assert deltas[0] <= 1e-10, f"{name} declares {t} invariance but changed by {deltas[0]:.3g}"
        else:
            assert max(deltas) > 1e-3, f"{name} does not declare {t} but changed only by {max(deltas):.3g}"


@pytest.mark.parametrize("name,fn,call", MEASURES, ids=IDS)
def test_symmetry_and_row_permutation(name, fn, call, std_data):
    X, Y = std_data
    base = call(X, Y)
    assert fn.info.symmetric
    assert abs(call(Y, X) - base) <= 1e-12
    perm = np.random.default_rng(5).permutation(X.shape[0])
    if fn.info.estimator:  # minibatch CKA: batches change composition ...
        assert abs(call(X[perm], Y[perm]) - base) > 1e-6
        within = np.concatenate([s + np.random.default_rng(s).permutation(50) for s in range(0, 200, 50)])
        assert abs(call(X[within], Y[within]) - base) <= 1e-10  # ... but not order within a batch
    else:
        assert abs(call(X[perm], Y[perm]) - base) <= 1e-10


def test_registry_metadata():
    for name in ("rbf_cka", "minibatch_cka", "rsa", "rsa_euclidean", "rsa_sqeuclidean", "mutual_knn",
                 "mutual_knn_euclidean"):
        assert name in REGISTRY and REGISTRY[name].info.name == name and REGISTRY[name].info.reference
    assert minibatch_cka.info.estimator and not rbf_cka.info.estimator
    assert rsa.info.invariances == {"isotropic_scaling", "permutation"}
    assert rsa_euclidean.info.invariances == {"orthogonal", "isotropic_scaling", "translation", "permutation"}
    assert mutual_knn.info.invariances == {"orthogonal", "isotropic_scaling", "permutation"}
    assert MUTUAL_KNN_VARIANTS["sqeuclidean"] is mutual_knn_euclidean
    assert not any(fn.info.invariant_to("invertible_linear") for _, fn, _ in MEASURES)


# ----------------------------------------------------------------------------------- errors


class FakeGPUArray:
    __cuda_array_interface__ = {"shape": (10, 3), "typestr": "<f4", "data": (0, False), "version": 3}


PAIR_MEASURES = [
    ("rbf_cka", rbf_cka, 4),
    ("minibatch_cka", lambda X, Y: minibatch_cka(X, Y, batch_size=5), 4),
    ("rsa", rsa, 3),
    ("rsa_euclidean", rsa_euclidean, 3),
    ("mutual_knn", lambda X, Y: mutual_knn(X, Y, k=1), 2),
]


@pytest.mark.parametrize("name,call,min_n", PAIR_MEASURES, ids=[m[0] for m in PAIR_MEASURES])
def test_input_errors(name, call, min_n):
    X, Y = related(10, 3, 3, seed=23)
    with pytest.raises(ValueError, match="same number of samples"):
        call(X, Y[:9])
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="Y contains NaN or Inf"):
        call(X, bad)
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        call(bad, Y)
    bad[2, 1] = 1e200
    with pytest.raises(ValueError, match="X has values of magnitude"):
        call(bad, Y)
    with pytest.raises(ValueError, match="X is empty"):
        call(np.zeros((0, 3)), Y)
    with pytest.raises(ValueError, match="Y is empty"):
        call(X, np.zeros((10, 0)))
    with pytest.raises(ValueError, match="X must be 2-D"):
        call(X[:, 0], Y)
    with pytest.raises(TypeError, match="X must hold floating-point"):
        call(X.astype(np.int64), Y)
    with pytest.raises(TypeError, match="Y must be a floating-point tensor"):
        call(X, torch.ones((10, 3), dtype=torch.int32))
    with pytest.raises(TypeError, match="X must be an array"):
        call(None, Y)
    with pytest.raises(ValueError, match="GPU array"):
        call(FakeGPUArray(), Y)
    if name != "minibatch_cka":
        with pytest.raises(ValueError, match=f"at least {min_n} samples"):
            call(X[:min_n - 1], Y[:min_n - 1])
        call(X[:min_n], Y[:min_n])  # the smallest allowed size works
    else:
        with pytest.raises(ValueError, match="no usable batch"):
            call(X[:3], Y[:3])


def test_option_errors():
    X, Y = related(10, 3, 3, seed=24)
    for fraction in (0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="fraction"):
            rbf_cka(X, Y, fraction=fraction)
    with pytest.raises(ValueError, match="median must be one of"):
        rbf_cka(X, Y, median="diagonal")
    with pytest.raises(TypeError, match="debiased"):
        rbf_cka(X, Y, debiased="yes")
    for block in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="block_size"):
            rbf_cka(X, Y, block_size=block)
    with pytest.raises(ValueError, match="rdm must be one of"):
        rsa(X, Y, rdm="cosine")
    with pytest.raises(ValueError, match="compare must be one of"):
        rsa(X, Y, compare="kendall")
    with pytest.raises(ValueError, match="at least 2 features"):
        rsa(X[:, :1], Y)
    assert math.isfinite(rsa(X[:, :1], Y, rdm="euclidean"))
    with pytest.raises(MemoryBudgetError, match="memory_limit"):
        rsa(X, Y, memory_limit=100)
    with pytest.raises(ValueError, match=f"n = {RSA_MAX_SAMPLES}"):
        rsa(np.zeros((RSA_MAX_SAMPLES + 1, 1)), np.zeros((RSA_MAX_SAMPLES + 1, 1)), rdm="euclidean")
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            mutual_knn(X, Y, k=k)
    with pytest.raises(ValueError, match="exceeds the number of other samples"):
        mutual_knn(X, Y, k=10)
    with pytest.raises(ValueError, match="metric must be one of"):
        mutual_knn(X, Y, k=3, metric="inner")


def test_minibatch_errors():
    X, Y = related(20, 3, 3, seed=25)
    with pytest.raises(ValueError, match="no batches"):
        minibatch_cka([])
    with pytest.raises(TypeError, match="batch 1 must be a pair"):
        minibatch_cka([(X[:10], Y[:10]), X[10:]])
    with pytest.raises(ValueError, match="batch 1 has 2 features"):
        minibatch_cka([(X[:10], Y[:10]), (X[10:, :2], Y[10:])])
    with pytest.raises(ValueError, match=r"X_b \(batch 0\) and Y_b \(batch 0\) must have the same number"):
        minibatch_cka([(X[:10], Y[:9])])
    with pytest.raises(ValueError, match=r"X_b \(batch 0\) contains NaN"):
        minibatch_cka([(np.full((5, 3), np.nan), Y[:5])])
    with pytest.raises(TypeError, match="iterable of"):
        minibatch_cka(X)
    with pytest.raises(TypeError, match="iterable of"):
        minibatch_cka(3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        minibatch_cka(X, Y)
    with pytest.raises(ValueError, match="batch_size is only used with arrays"):
        minibatch_cka([(X, Y)], batch_size=4)
    with pytest.raises(ValueError, match="kernel must be one of"):
        minibatch_cka([(X, Y)], kernel="poly")
    Z = X.copy()
    Z[:] = Z[0]
    with pytest.raises(ValueError, match="median squared distance"):
        minibatch_cka([(Z, Y)], kernel="rbf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minibatch_cka([(X, Y)])  # no warning when nothing is dropped
