"""Feature-space similarity measures (METHODS.md §2.1, §2.2, §2.5–§2.9, §2.12): linear and
debiased CKA, CCA, SVCCA, PWCCA, linear regression R², orthogonal Procrustes, and HSICStats.

Checked against the float64 oracles of tests/reference_similarity.py (which share no code with the
package), the golden values of METHODS §8.2, each other (paths, streaming), and the invariance
protocol of §2.12 driven by each measure's declared ``info``.
"""

import math
import warnings

import numpy as np
import pytest

import congruence as cg
from congruence.similarity import _common as C
from congruence.similarity._measure import INVARIANCES, REGISTRY
from congruence.similarity.cca import CCAResult, SVCCAResult, cca, pwcca, svcca
from congruence.similarity.cka import debiased_cka, linear_cka
from congruence.similarity.hsic_stats import HSICStats
from congruence.similarity.linear import linear_regression_r2, procrustes

import reference_similarity as R

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------------------------ data


def linear_pair(n=200, p=30, q=20, seed=0, noise=1.0, offset=0.0):
    """§2.12: random X, Y = XA + noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + offset
    A = rng.standard_normal((p, q)) / math.sqrt(p)
    Y = X @ A + noise * rng.standard_normal((n, q)) + offset
    return X, Y


def spectral_pair(n=200, p=30, q=24, seed=1):
    """A decaying spectrum (s_i ∝ 0.85^i, random basis) so that truncation (SVCCA) matters."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, p)) * 0.85 ** np.arange(p)
    Q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    X = Z @ Q.T
    B = rng.standard_normal((p, q)) / math.sqrt(p)
    Y = X @ B + 0.3 * rng.standard_normal((n, q)) * 0.9 ** np.arange(q)
    return X, Y


def demo_pair():
    """METHODS §8.2 (google-research demo data, legacy RandomState, this order)."""
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return X, Y


DATASETS = {"linear": linear_pair(), "spectral": spectral_pair()}


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------ measures under test

#: label -> (function whose ``info`` declares the properties, scalar-valued call)
MEASURES = {
    "linear_cka": (linear_cka, lambda X, Y: linear_cka(X, Y)),
    "linear_cka[samples]": (linear_cka, lambda X, Y: linear_cka(X, Y, path="samples")),
    "debiased_cka": (debiased_cka, lambda X, Y: debiased_cka(X, Y)),
    "debiased_cka[samples]": (debiased_cka, lambda X, Y: debiased_cka(X, Y, path="samples")),
    "cca.mean_rho": (cca, lambda X, Y: cca(X, Y).mean_rho),
    "cca.r2": (cca, lambda X, Y: cca(X, Y).r2),
    "cca.r2[covariance]": (cca, lambda X, Y: cca(X, Y, method="covariance").r2),
    "svcca": (svcca, lambda X, Y: svcca(X, Y)),
    "svcca.r2[k=10]": (svcca, lambda X, Y: svcca(X, Y, k=10, return_result=True).r2),
    "svcca[singular_mass]": (svcca, lambda X, Y: svcca(X, Y, threshold=0.9, mode="singular_mass")),
    "pwcca": (pwcca, lambda X, Y: pwcca(X, Y)),
    "pwcca[covariance]": (pwcca, lambda X, Y: pwcca(X, Y, method="covariance")),
    "linear_regression_r2": (linear_regression_r2, lambda X, Y: linear_regression_r2(X, Y)),
    "procrustes": (procrustes, lambda X, Y: procrustes(X, Y)),
    "procrustes[distance]": (procrustes, lambda X, Y: procrustes(X, Y, kind="distance")),
    "procrustes[angular,samples]": (procrustes, lambda X, Y: procrustes(X, Y, kind="angular", path="samples")),
}
#: Labels whose algorithm squares the condition number: invariance to L only on well-conditioned data.
SQUARED_CONDITION = {"cca.r2[covariance]", "pwcca[covariance]"}


def test_every_measure_is_registered_with_its_declared_properties():
    expected = {
        "linear_cka": ({"orthogonal", "isotropic_scaling", "translation", "permutation"}, True, None),
        "debiased_cka": ({"orthogonal", "isotropic_scaling", "translation", "permutation"}, True, None),
        "cca": (set(INVARIANCES), True, None),
        "svcca": ({"orthogonal", "isotropic_scaling", "translation", "permutation"}, True, None),
        # weights from the first argument; the second enters only through col(Ỹ)
        "pwcca": ({"isotropic_scaling", "translation", "permutation"}, False, set(INVARIANCES)),
        "linear_regression_r2": ({"orthogonal", "isotropic_scaling", "translation", "permutation"}, False,
                                 set(INVARIANCES)),
        "procrustes": ({"orthogonal", "isotropic_scaling", "translation", "permutation"}, True, None),
    }
    for name, (inv, sym, second) in expected.items():
        fn = REGISTRY[name]
        assert fn.info.name == name
        assert set(fn.info.invariances) == inv, name
        assert fn.info.symmetric is sym, name
        assert fn.info.streamable, name
        assert (None if fn.info.invariances_second is None else set(fn.info.invariances_second)) == second, name
        assert fn.info.reference, name
        assert fn.__doc__ and "Parameters" in fn.__doc__, name
    assert {fn for fn, _ in MEASURES.values()} == {REGISTRY[k] for k in expected}


# ----------------------------------------------------------------------------------- golden


GOLDEN = [
    ("linear CKA", lambda X, Y: linear_cka(X, Y), 0.5576132566),
    ("linear CKA, sample path", lambda X, Y: linear_cka(X, Y, path="samples"), 0.5576132566),
    ("debiased CKA, feature form", lambda X, Y: debiased_cka(X, Y, path="features"), 0.5134564895),
    ("debiased CKA, U-centred", lambda X, Y: debiased_cka(X, Y, path="samples"), 0.5134564895),
    ("debiased CKA, streamed", lambda X, Y: debiased_cka(stats=HSICStats(shift_x=np.full(10, 3.0),
                                                                         shift_y=np.full(10, -2.0)).update(X, Y)),
     0.5134564895),
    ("HSIC1(XX', YY')", lambda X, Y: HSICStats().update(X, Y).hsic1()[0], 9.895955787),
    ("R2_CCA", lambda X, Y: cca(X, Y).r2, 0.5453963322),
    ("mean rho", lambda X, Y: cca(X, Y).mean_rho, 0.7310139588),
    ("mean rho, covariance", lambda X, Y: cca(X, Y, method="covariance").mean_rho, 0.7310139588),
    ("SVCCA 0.99", lambda X, Y: svcca(X, Y), 0.7310139588),
    ("SVCCA 0.5", lambda X, Y: svcca(X, Y, threshold=0.5), 0.5654873249),
    ("SVCCA k=5", lambda X, Y: svcca(X, Y, k=5), 0.6708598048),
    ("SVCCA 0.5, streamed", lambda X, Y: svcca(stats=cg.CrossStats().update(X, Y), threshold=0.5), 0.5654873249),
    ("PWCCA(X, Y)", lambda X, Y: pwcca(X, Y), 0.7346677196),
    ("PWCCA(Y, X)", lambda X, Y: pwcca(Y, X), 0.7368405675),
    ("PWCCA(X, Y), streamed", lambda X, Y: pwcca(stats=cg.CrossStats().update(X, Y)), 0.7346677196),
    ("R2_LR(X|Y)", lambda X, Y: linear_regression_r2(X, Y), 0.5634752417),
    ("R2_LR(Y|X)", lambda X, Y: linear_regression_r2(Y, X), 0.5677425705),
    ("Procrustes d2", lambda X, Y: procrustes(X, Y, kind="distance"), 0.5274893788),
    ("Procrustes theta", lambda X, Y: procrustes(X, Y, kind="angular"), 0.7432764761),
]


@pytest.mark.parametrize("label,fn,value", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_values_on_the_demo_data(label, fn, value):
    X, Y = demo_pair()
    assert abs(fn(X, Y) - value) <= 1e-9


def test_svcca_golden_ranks():
    X, Y = demo_pair()
    r = svcca(X, Y, threshold=0.5, return_result=True)
    assert isinstance(r, SVCCAResult) and (r.k_x, r.k_y) == (4, 4)
    assert (svcca(X, Y, return_result=True).k_x, svcca(X, Y, return_result=True).k_y) == (10, 10)


# ------------------------------------------------------------------------ oracles and identities

ORACLES = [
    ("linear_cka", lambda X, Y: linear_cka(X, Y), R.ref_linear_cka_gram),
    ("linear_cka[samples]", lambda X, Y: linear_cka(X, Y, path="samples"), R.ref_linear_cka_gram),
    ("debiased_cka", lambda X, Y: debiased_cka(X, Y), lambda X, Y: R.ref_debiased_cka(X, Y, "song")),
    ("debiased_cka[samples]", lambda X, Y: debiased_cka(X, Y, path="samples"),
     lambda X, Y: R.ref_debiased_cka(X, Y, "song")),
    ("cca.mean_rho", lambda X, Y: cca(X, Y).mean_rho, lambda X, Y: R.ref_cca(X, Y)[1]),
    ("cca.r2", lambda X, Y: cca(X, Y).r2, lambda X, Y: R.ref_cca(X, Y)[2]),
    ("svcca", lambda X, Y: svcca(X, Y), lambda X, Y: R.ref_svcca(X, Y)[0]),
    ("svcca[k=7]", lambda X, Y: svcca(X, Y, k=7), lambda X, Y: R.ref_svcca(X, Y, k=7)[0]),
    ("svcca[mass]", lambda X, Y: svcca(X, Y, threshold=0.8, mode="singular_mass"),
     lambda X, Y: R.ref_svcca(X, Y, threshold=0.8, mode="singular_mass")[0]),
    ("pwcca", lambda X, Y: pwcca(X, Y), R.ref_pwcca),
    ("pwcca(Y, X)", lambda X, Y: pwcca(Y, X), lambda X, Y: R.ref_pwcca(Y, X)),
    ("pwcca[google]", lambda X, Y: pwcca(X, Y, compat="google_svcca"), R.ref_pwcca_google),
    ("linear_regression_r2", lambda X, Y: linear_regression_r2(X, Y), R.ref_linear_regression_r2),
    ("linear_regression_r2(Y|X)", lambda X, Y: linear_regression_r2(Y, X),
     lambda X, Y: R.ref_linear_regression_r2(Y, X)),
    ("linear_regression_r2[ridge]", lambda X, Y: linear_regression_r2(X, Y, ridge=5.0),
     lambda X, Y: R.ref_linear_regression_r2_ridge(X, Y, 5.0)),
    ("procrustes", lambda X, Y: procrustes(X, Y, kind="distance"), lambda X, Y: R.ref_procrustes(X, Y)[0]),
    ("procrustes[angular]", lambda X, Y: procrustes(X, Y, kind="angular"), lambda X, Y: R.ref_procrustes(X, Y)[1]),
]


def _oracle_data():
    rng = np.random.default_rng(5)
    return {
        "random": (rng.standard_normal((120, 15)) * 3 + 7, rng.standard_normal((120, 9)) - 4),
        "structured": linear_pair(n=150, p=12, q=16, seed=3, noise=0.5, offset=20.0),
        "spectral": spectral_pair(n=150, p=20, q=14, seed=4),
    }


ORACLE_DATA = _oracle_data()


@pytest.mark.parametrize("dataset", list(ORACLE_DATA))
@pytest.mark.parametrize("label,fn,oracle", ORACLES, ids=[o[0] for o in ORACLES])
def test_against_float64_oracle(label, fn, oracle, dataset):
    X, Y = ORACLE_DATA[dataset]
    got, want = fn(X, Y), oracle(X, Y)
    assert isinstance(got, float)
    assert abs(got - want) <= 1e-10 * max(1.0, abs(want)), (got, want)


@pytest.mark.parametrize("dataset", list(ORACLE_DATA))
def test_cka_identities(dataset):
    X, Y = ORACLE_DATA[dataset]
    # linear CKA == RV coefficient tr(K_c L_c)/sqrt(tr K_c² tr L_c²) == feature form
    rv = R.ref_rv_coefficient(X, Y)
    assert rel(linear_cka(X, Y), rv) <= 1e-12
    assert rel(R.ref_linear_cka_features(X, Y), rv) <= 1e-12
    assert rel(R.ref_linear_cka_gram(X, Y), rv) <= 1e-12
    # debiased HSIC: feature form == U-centred form == Song et al., and ours (three ways) agrees.
    # (Grams of centred data: HSIC₁ is translation invariant, and the raw Grams of offset data
    # cancel catastrophically in the Song formula.)
    xc, yc = X - X.mean(0), Y - Y.mean(0)
    K, L = xc @ xc.T, yc @ yc.T
    song = R.ref_hsic1_song(K, L)
    raw = R.ref_hsic1_song(X @ X.T, Y @ Y.T)
    assert rel(raw, song) <= (1e-10 if dataset == "spectral" else 1e-6)  # spectral data have mean ~0
    assert rel(R.ref_hsic1_ucentred(K, L), song) <= 1e-10
    assert rel(R.ref_hsic1_features(X, Y), song) <= 1e-10
    assert rel(HSICStats().update(X, Y).hsic1()[0], song) <= 1e-10
    from congruence.similarity.cka import _hsic1_features, _hsic1_ucentred

    assert rel(_hsic1_features(xc, yc)[0], song) <= 1e-10
    assert rel(_hsic1_ucentred(xc, yc)[0], song) <= 1e-10
    assert rel(_hsic1_ucentred(xc, yc)[1], R.ref_hsic1_song(K, K)) <= 1e-10


@pytest.mark.parametrize("dataset", list(ORACLE_DATA))
def test_cca_against_whitened_svd_and_qr(dataset):
    X, Y = ORACLE_DATA[dataset]
    want = R.ref_canonical_correlations(X, Y)
    for method in ("qr", "covariance"):
        r = cca(X, Y, method=method)
        assert isinstance(r, CCAResult) and r.method == method
        assert r.rho.shape == want.shape
        assert np.all(np.diff(r.rho) <= 0)
        np.testing.assert_allclose(r.rho, want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(cca(X, Y).rho, R.ref_canonical_correlations_qr(X, Y), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cca(X, Y, method="qr").rho, cca(X, Y, method="covariance").rho, rtol=0, atol=1e-10)


def test_cca_epsilon_matches_regularised_whitening():
    X, Y = ORACLE_DATA["structured"]
    eps = 0.3
    n = X.shape[0]
    xc, yc = X - X.mean(0), Y - Y.mean(0)
    sxx = xc.T @ xc / (n - 1) + eps * np.eye(X.shape[1])
    syy = yc.T @ yc / (n - 1) + eps * np.eye(Y.shape[1])
    wx = np.linalg.inv(np.linalg.cholesky(sxx))
    wy = np.linalg.inv(np.linalg.cholesky(syy))
    want = np.linalg.svd(wx @ (xc.T @ yc / (n - 1)) @ wy.T, compute_uv=False)
    r = cca(X, Y, epsilon=eps)
    assert r.method == "covariance"
    np.testing.assert_allclose(r.rho, want[: len(r.rho)], atol=1e-12)
    assert cca(X, Y, epsilon=eps).mean_rho < cca(X, Y).mean_rho
    with pytest.raises(ValueError, match="epsilon"):
        cca(X, Y, method="qr", epsilon=eps)


# ---------------------------------------------------------------------------------- paths


@pytest.mark.parametrize("shape", [(150, 12, 9), (25, 60, 45), (30, 200, 3)])
def test_feature_path_equals_sample_path(shape):
    n, p, q = shape
    X, Y = linear_pair(n=n, p=p, q=q, seed=7, noise=0.7, offset=3.0)
    for fn in (linear_cka, debiased_cka):
        f, s = fn(X, Y, path="features"), fn(X, Y, path="samples")
        assert rel(f, s) <= 1e-11, fn.__name__
        assert fn(X, Y) == (s if C.use_sample_path(n, p, q) else f)
    for kind in ("similarity", "distance", "angular"):
        f = procrustes(X, Y, kind=kind, path="features")
        s = procrustes(X, Y, kind=kind, path="samples")
        assert abs(f - s) <= 1e-11
    assert rel(procrustes(X, Y, path="samples"), R.ref_procrustes_nuclear(X, Y)) <= 1e-11


def test_path_rule():
    assert not C.use_sample_path(200, 30, 20)
    assert C.use_sample_path(20, 50, 40)
    n, p, q = 100, 60, 60  # p² + q² + pq = 10800 >= n(p + q) = 12000? no
    assert not C.use_sample_path(n, p, q)
    assert C.use_sample_path(100, 67, 67)  # 13467 >= 13400


def test_sample_path_is_tiled(monkeypatch):
    X, Y = linear_pair(n=50, p=80, q=70, seed=2)
    whole = linear_cka(X, Y, path="samples"), debiased_cka(X, Y, path="samples")
    monkeypatch.setattr(C, "GRAM_BLOCK_ENTRIES", 7 * 50)  # blocks of 7 rows
    assert C.gram_row_blocks(50) == 7
    tiled = linear_cka(X, Y, path="samples"), debiased_cka(X, Y, path="samples")
    np.testing.assert_allclose(tiled, whole, rtol=1e-13)


# ------------------------------------------------------------------------------ streaming

#: label -> (streamed call on a state, in-memory call on the same path)
STREAMED = {
    "linear_cka": (lambda s: linear_cka(stats=s), lambda X, Y: linear_cka(X, Y, path="features")),
    "debiased_cka": (lambda s: debiased_cka(stats=s), lambda X, Y: debiased_cka(X, Y, path="features")),
    "cca.mean_rho": (lambda s: cca(stats=s).mean_rho, lambda X, Y: cca(X, Y, method="covariance").mean_rho),
    "cca.r2": (lambda s: cca(stats=s).r2, lambda X, Y: cca(X, Y, method="covariance").r2),
    "svcca": (lambda s: svcca(stats=s, threshold=0.9), lambda X, Y: svcca(X, Y, threshold=0.9)),
    "svcca[k=8]": (lambda s: svcca(stats=s, k=8), lambda X, Y: svcca(X, Y, k=8)),
    "pwcca": (lambda s: pwcca(stats=s), lambda X, Y: pwcca(X, Y, method="covariance")),
    "pwcca[symmetric]": (lambda s: pwcca(stats=s, symmetric=True),
                         lambda X, Y: pwcca(X, Y, symmetric=True, method="covariance")),
    "linear_regression_r2": (lambda s: linear_regression_r2(stats=s), lambda X, Y: linear_regression_r2(X, Y)),
    "linear_regression_r2[ridge]": (lambda s: linear_regression_r2(stats=s, ridge=2.0),
                                    lambda X, Y: linear_regression_r2(X, Y, ridge=2.0)),
    "procrustes": (lambda s: procrustes(stats=s), lambda X, Y: procrustes(X, Y, path="features")),
}

STREAM_DATA = linear_pair(n=200, p=12, q=9, seed=11, noise=0.8, offset=5.0)


def _partition_states(X, Y, size):
    hs = HSICStats()
    for r0 in range(0, X.shape[0], size):
        hs.update(X[r0:r0 + size], Y[r0:r0 + size])
    return hs


@pytest.fixture(scope="module")
def stream_states():
    X, Y = STREAM_DATA
    states = {f"batches of {b}": _partition_states(X, Y, b) for b in (1, 7, X.shape[0])}
    # merged worker states: CrossStats with different shifts (re-expressed exactly) ...
    cuts = [0, 13, 90, 200]
    cs = cg.CrossStats()
    for a, b in zip(cuts, cuts[1:]):
        cs.merge(cg.CrossStats().update(X[a:b], Y[a:b]))
    states["merged CrossStats"] = cs
    # ... and HSICStats sharing one shift (merging is addition)
    root = HSICStats().update(X[:10], Y[:10])
    for a, b in zip([10, 55, 121], [55, 121, 200]):
        root.merge(root.spawn().update(X[a:b], Y[a:b]))
    states["merged HSICStats"] = root
    return states


@pytest.mark.parametrize("state", ["batches of 1", "batches of 7", "batches of 200", "merged CrossStats",
                                   "merged HSICStats"])
@pytest.mark.parametrize("label", list(STREAMED))
def test_streamed_equals_in_memory(stream_states, label, state):
    streamed, in_memory = STREAMED[label]
    s = stream_states[state]
    if label == "debiased_cka" and isinstance(s, cg.CrossStats):
        with pytest.raises(TypeError, match="HSICStats"):
            streamed(s)
        return
    X, Y = STREAM_DATA
    got, want = streamed(s), in_memory(X, Y)
    assert rel(got, want) <= 1e-12, (got, want)


def test_streamed_svcca_matches_svd_path_closely(stream_states):
    X, Y = STREAM_DATA
    s = stream_states["batches of 7"]
    assert rel(svcca(stats=s), svcca(X, Y)) <= 1e-12
    r1, r2 = svcca(stats=s, return_result=True), svcca(X, Y, return_result=True)
    assert (r1.k_x, r1.k_y) == (r2.k_x, r2.k_y)


def test_hsic_stats_sums_against_direct_formulas():
    X, Y = STREAM_DATA
    hs = _partition_states(X, Y, 7)
    s = hs.sums()
    u, v = X - np.asarray(hs.shift_x), Y - np.asarray(hs.shift_y)
    alpha, beta = (u * u).sum(1), (v * v).sum(1)
    for key, want in [("sum_alpha", alpha.sum()), ("sum_beta", beta.sum()), ("sum_alpha_beta", alpha @ beta),
                      ("sum_alpha2", alpha @ alpha), ("sum_beta2", beta @ beta)]:
        assert rel(s[key], want) <= 1e-12, key
    np.testing.assert_allclose(s["alpha_u"], u.T @ alpha, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s["beta_u"], u.T @ beta, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s["beta_v"], v.T @ beta, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s["alpha_v"], v.T @ alpha, rtol=1e-12, atol=1e-9)
    xc, yc = X - X.mean(0), Y - Y.mean(0)
    K, L = xc @ xc.T, yc @ yc.T
    for got, want in zip(hs.hsic1(), (R.ref_hsic1_song(K, L), R.ref_hsic1_song(K, K), R.ref_hsic1_song(L, L))):
        assert rel(got, want) <= 1e-12


@pytest.mark.parametrize("sigmas", [0.0, 1.0, 5.0])
def test_hsic_stats_is_exact_for_any_shift(sigmas):
    X, Y = STREAM_DATA
    rng = np.random.default_rng(3)
    sx = X.mean(0) + sigmas * X.std(0) * rng.choice([-1, 1], X.shape[1])
    sy = Y.mean(0) + sigmas * Y.std(0) * rng.choice([-1, 1], Y.shape[1])
    hs = HSICStats(shift_x=sx, shift_y=sy)
    for r0 in range(0, 200, 33):
        hs.update(X[r0:r0 + 33], Y[r0:r0 + 33])
    assert rel(debiased_cka(stats=hs), R.ref_debiased_cka(X, Y)) <= 1e-12


def test_hsic_stats_merge_rules():
    X, Y = STREAM_DATA
    a = HSICStats().update(X[:50], Y[:50])
    b = HSICStats().update(X[50:], Y[50:])  # its own shift
    with pytest.raises(ValueError, match="different shifts"):
        a.merge(b)
    with pytest.raises(TypeError, match="HSICStats"):
        a.merge(cg.CrossStats().update(X, Y))
    with pytest.raises(ValueError, match="widths differ"):
        a.merge(HSICStats(shift_x=np.asarray(a.shift_x)[:3], shift_y=a.shift_y).update(X[:5, :3], Y[:5]))
    empty = HSICStats().merge(a)  # copy into an empty state
    assert empty.n_samples == 50 and empty.hsic1() == a.hsic1()
    assert a.merge(HSICStats()).n_samples == 50
    with pytest.raises(ValueError, match="spawn"):
        HSICStats().spawn()
    with pytest.raises(ValueError, match="at least 4"):
        HSICStats().update(X[:3], Y[:3]).hsic1()
    assert "n_samples=50" in repr(a)


def test_hsic_stats_torch_and_low_precision_batches():
    X, Y = STREAM_DATA
    ref = debiased_cka(X, Y)
    hs = HSICStats()
    hs.update(torch.from_numpy(X[:100]), torch.from_numpy(Y[:100]))
    hs.update(X[100:], Y[100:])
    assert rel(debiased_cka(stats=hs), ref) <= 1e-12
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert rel(debiased_cka(stats=HSICStats().update(X32, Y32)), debiased_cka(X32, Y32)) <= 1e-12
    Xb = torch.from_numpy(X).to(torch.bfloat16)
    Yb = torch.from_numpy(Y).to(torch.bfloat16)
    assert rel(debiased_cka(stats=HSICStats().update(Xb, Yb)),
               R.ref_debiased_cka(Xb.double().numpy(), Yb.double().numpy())) <= 1e-11


# ----------------------------------------------------------------------------- invariances (§2.12)


def _haar(rng, p):
    Q, Rm = np.linalg.qr(rng.standard_normal((p, p)))
    return Q * np.sign(np.diag(Rm))


def transform(M, kind, seed):
    rng = np.random.default_rng(seed)
    n, p = M.shape
    if kind == "orthogonal":
        return M @ _haar(rng, p)
    if kind == "isotropic_scaling":
        return M * 1.337
    if kind == "translation":
        return M + 10.0 * rng.standard_normal(p)[None, :]
    if kind == "permutation":
        return M[:, rng.permutation(p)]
    if kind == "invertible_linear":  # cond(A) = 100
        return M @ (_haar(rng, p) @ np.diag(np.geomspace(1.0, 100.0, p)) @ _haar(rng, p))
    raise AssertionError(kind)


@pytest.mark.parametrize("argument", [0, 1])
@pytest.mark.parametrize("kind", INVARIANCES)
@pytest.mark.parametrize("label", list(MEASURES))
def test_declared_invariances(label, kind, argument):
    fn, call = MEASURES[label]
    declared = fn.info.invariant_to(kind, argument)
    deltas = []
    for name, (X, Y) in DATASETS.items():
        if declared and label in SQUARED_CONDITION and kind == "invertible_linear" and name != "linear":
            continue  # the covariance path squares cond(X)·cond(A); checked on well-conditioned data only
        base = quiet(call, X, Y)
        args = [X, Y]
        args[argument] = transform(args[argument], kind, seed=100 + argument)
        deltas.append(abs(quiet(call, *args) - base))
    if declared:
        assert max(deltas) <= 1e-10, f"{label} should be invariant to {kind} of argument {argument}: {deltas}"
    else:
        assert max(deltas) > 1e-3, f"{label} is not declared invariant to {kind} of argument {argument}: {deltas}"


@pytest.mark.parametrize("label", list(MEASURES))
def test_symmetry_and_common_row_permutation(label):
    fn, call = MEASURES[label]
    asym = []
    for X, Y in DATASETS.values():
        base = call(X, Y)
        perm = np.random.default_rng(9).permutation(X.shape[0])
        assert abs(call(X[perm], Y[perm]) - base) <= 1e-10
        if fn.info.symmetric:
            assert abs(call(Y, X) - base) <= 1e-10
        else:
            asym.append(abs(call(Y, X) - base))
    if not fn.info.symmetric:
        assert max(asym) > 1e-3


def test_pwcca_is_not_rotation_invariant_and_takes_different_widths():
    X, Y = linear_pair(n=300, p=25, q=10, seed=21)
    Q = _haar(np.random.default_rng(4), 25)
    assert abs(pwcca(X @ Q, Y) - pwcca(X, Y)) > 1e-3
    assert abs(pwcca(X, Y) - R.ref_pwcca(X, Y)) <= 1e-10
    assert abs(pwcca(Y, X) - R.ref_pwcca(Y, X)) <= 1e-10
    # side="smaller": Y has fewer neurons, so its weights are used
    assert abs(pwcca(X, Y, side="smaller") - pwcca(Y, X)) <= 1e-14
    assert pwcca(Y, X, side="smaller") == pwcca(Y, X)
    sym = pwcca(X, Y, symmetric=True)
    assert abs(sym - 0.5 * (pwcca(X, Y) + pwcca(Y, X))) <= 1e-14
    assert abs(pwcca(Y, X, symmetric=True) - sym) <= 1e-14
    # google/svcca's convention, bug fixed: different widths work, either order
    for a, b in ((X, Y), (Y, X)):
        assert abs(pwcca(a, b, compat="google_svcca") - R.ref_pwcca_google(a, b)) <= 1e-10
    eq = linear_pair(n=300, p=10, q=10, seed=22)
    assert abs(pwcca(*eq, compat="google_svcca") - R.ref_pwcca_google(*eq)) <= 1e-10
    assert abs(pwcca(*eq, compat="google_svcca", epsilon=1e-3) - R.ref_pwcca_google(*eq, epsilon=1e-3)) <= 1e-10
    # google's convention is uncentred: it changes under translation of the weighting (smaller)
    # side, Y here; ours (weights from X) does not change under translation of X or Y
    assert abs(pwcca(X, Y + 5.0, compat="google_svcca") - pwcca(X, Y, compat="google_svcca")) > 1e-4
    assert abs(pwcca(X + 5.0, Y - 3.0) - pwcca(X, Y)) <= 1e-10


# ----------------------------------------------------------------------------------- edge cases


def test_wide_inputs_use_the_sample_path_and_cca_is_degenerate():
    X, Y = linear_pair(n=20, p=50, q=40, seed=5)
    assert C.use_sample_path(20, 50, 40)
    assert linear_cka(X, Y) == linear_cka(X, Y, path="samples")
    assert rel(linear_cka(X, Y), R.ref_linear_cka_gram(X, Y)) <= 1e-12
    assert rel(debiased_cka(X, Y), R.ref_debiased_cka(X, Y)) <= 1e-10
    assert rel(procrustes(X, Y, kind="distance"), R.ref_procrustes(X, Y)[0]) <= 1e-10
    for method in ("qr", "covariance"):
        with pytest.warns(C.DegenerateCCAWarning, match="svcca"):
            r = cca(X, Y, method=method)
        assert r.degenerate and r.rank_x == r.rank_y == 19
        np.testing.assert_allclose(r.rho, 1.0, atol=1e-8)
    with pytest.warns(C.DegenerateCCAWarning):
        cca(X[:, :19], Y[:, :5])  # rank n − 1 spans the centred sample space
    assert math.isfinite(svcca(X, Y, k=5))  # the suggested alternative
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cca(*linear_pair()).degenerate


def test_rank_deficient_inputs_are_truncated():
    rng = np.random.default_rng(8)
    Z = rng.standard_normal((200, 5))
    X = Z @ rng.standard_normal((5, 30))  # rank 5 in 30 columns
    X = np.hstack([X, X[:, :3]])  # plus duplicated columns
    Y = Z[:, :3] @ rng.standard_normal((3, 8)) + 0.5 * rng.standard_normal((200, 8))
    for method in ("qr", "covariance"):
        r = cca(X, Y, method=method)
        assert r.rank_x == 5 and r.rank_y == 8 and r.rho.shape == (5,)
        np.testing.assert_allclose(r.rho, R.ref_canonical_correlations(Z, Y), atol=1e-9)
        assert np.isfinite(r.rho).all()
    assert abs(pwcca(X, Y) - R.ref_pwcca(X, Y)) <= 1e-9
    assert abs(pwcca(X, Y, method="covariance") - pwcca(X, Y)) <= 1e-8
    assert abs(linear_regression_r2(Y, X) - R.ref_linear_regression_r2(Y, Z)) <= 1e-10
    assert abs(linear_regression_r2(stats=cg.CrossStats().update(Y, X)) - R.ref_linear_regression_r2(Y, Z)) <= 1e-9
    r = svcca(X, Y, k=20, return_result=True)
    assert r.k_x == 5 and r.k_y == 8  # capped at the numerical rank
    assert abs(r.mean_rho - cca(Z, Y).mean_rho) <= 1e-10
    assert math.isfinite(svcca(stats=cg.CrossStats().update(X, Y), k=20))


def test_constant_features_are_dropped_and_counted():
    X, Y = linear_pair(n=150, p=10, q=8, seed=6)
    Xc = np.hstack([X[:, :4], np.full((150, 1), 3.7), X[:, 4:], np.zeros((150, 1))])
    with pytest.warns(cg.ConstantFeatureWarning, match="X has 2 constant"):
        r = cca(Xc, Y)
    assert r.n_constant_x == 2 and r.n_constant_y == 0
    np.testing.assert_allclose(r.rho, cca(X, Y).rho, atol=1e-12)
    cs = cg.CrossStats().update(Xc, Y)
    with pytest.warns(cg.ConstantFeatureWarning):
        assert abs(cca(stats=cs).r2 - cca(X, Y).r2) <= 1e-12
    with pytest.warns(cg.ConstantFeatureWarning):
        assert abs(pwcca(Xc, Y) - pwcca(X, Y)) <= 1e-12
    with pytest.warns(cg.ConstantFeatureWarning):
        assert abs(linear_regression_r2(Y, Xc) - linear_regression_r2(Y, X)) <= 1e-12
    assert abs(svcca(Xc, Y) - svcca(X, Y)) <= 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CKA and Procrustes: constants simply contribute nothing
        assert abs(linear_cka(Xc, Y) - linear_cka(X, Y)) <= 1e-12
        assert abs(linear_cka(stats=cs) - linear_cka(X, Y)) <= 1e-12
        assert abs(debiased_cka(Xc, Y) - debiased_cka(X, Y)) <= 1e-12
        assert abs(procrustes(Xc, Y) - procrustes(X, Y)) <= 1e-12
        assert abs(linear_regression_r2(Xc, Y) - linear_regression_r2(X, Y)) <= 1e-12  # target side
    with pytest.warns(cg.ConstantFeatureWarning):
        assert linear_regression_r2(X, np.ones((150, 3))) == 0.0


def test_all_constant_inputs():
    X, Y = linear_pair(n=50, p=4, q=3, seed=1)
    K = np.full((50, 2), 2.5)
    for fn in (linear_cka, debiased_cka):
        with pytest.warns(C.UndefinedSimilarityWarning, match="NaN"):
            assert math.isnan(fn(K, Y))
    with pytest.warns(C.UndefinedSimilarityWarning):
        assert math.isnan(linear_cka(stats=cg.CrossStats().update(Y, K)))
    with pytest.warns(C.UndefinedSimilarityWarning):
        assert math.isnan(debiased_cka(stats=HSICStats().update(K, Y)))
    for fn in (cca, svcca, pwcca, procrustes, linear_regression_r2):
        with pytest.raises(ValueError, match="every feature of X is constant"):
            quiet(fn, K, Y)


def test_debiased_cka_small_n_and_zero_denominator():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    want = R.ref_debiased_cka(X, Y, "song")
    for path in ("features", "samples"):
        assert rel(debiased_cka(X, Y, path=path), want) <= 1e-10
    assert rel(debiased_cka(stats=HSICStats().update(X, Y)), want) <= 1e-10
    with pytest.raises(ValueError, match="at least 4 samples"):
        debiased_cka(X[:3], Y[:3])
    with pytest.raises(ValueError, match="at least 4 samples"):
        debiased_cka(stats=HSICStats().update(X[:3], Y[:3]))
    # HSIC₁(K, K) = 0 exactly for a non-constant feature (one sample differs): NaN with a warning,
    # also where rounding leaves ±1e-18 instead of 0.
    for X0 in (np.array([[0.0], [2.0], [0.0], [0.0]]), np.array([[0.1], [0.7], [0.1], [0.1]]) * 3 + 0.3):
        assert abs(R.ref_hsic1_song(X0 @ X0.T, X0 @ X0.T)) <= 1e-14
        for call in (lambda: debiased_cka(X0, Y, path="features"), lambda: debiased_cka(X0, Y, path="samples"),
                     lambda: debiased_cka(stats=HSICStats().update(X0, Y))):
            with pytest.warns(C.UndefinedSimilarityWarning, match="denominator <= 0"):
                assert math.isnan(call())


def test_result_types_and_inputs():
    X, Y = demo_pair()
    r = cca(X, Y)
    assert isinstance(r.mean_rho, float) and isinstance(r.r2, float) and r.rho.dtype == np.float64
    with pytest.raises(Exception):
        r.mean_rho = 0.0  # frozen
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    for label, (fn, call) in MEASURES.items():
        assert abs(call(tx, ty) - call(X, Y)) <= 1e-14, label
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert rel(linear_cka(X32, Y32), R.ref_linear_cka_gram(X32, Y32)) <= 1e-12
    Xh = torch.from_numpy(X).to(torch.bfloat16)
    assert rel(linear_cka(Xh, Y), R.ref_linear_cka_gram(Xh.double().numpy(), Y)) <= 1e-12
    Xs = np.asfortranarray(X)[:, ::-1]  # any strides
    assert rel(procrustes(Xs, Y), procrustes(X[:, ::-1], Y)) <= 1e-14


ALL = [linear_cka, debiased_cka, cca, svcca, pwcca, linear_regression_r2, procrustes]


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_input_errors(fn):
    X, Y = linear_pair(n=30, p=4, q=3)
    with pytest.raises(ValueError, match="same number of samples"):
        fn(X, Y[:20])
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        fn(np.where(np.eye(30, 4) == 1, np.nan, X), Y)
    with pytest.raises(ValueError, match="Y contains NaN or Inf"):
        fn(X, np.where(np.eye(30, 3) == 1, np.inf, Y))
    with pytest.raises(ValueError, match="X is empty"):
        fn(np.empty((30, 0)), Y)
    with pytest.raises(ValueError, match="Y is empty"):
        fn(X, np.empty((0, 3)))
    with pytest.raises(ValueError, match="X must be 2-D"):
        fn(X[:, 0], Y)
    with pytest.raises(TypeError, match="X must hold floating-point"):
        fn(np.ones((30, 4), dtype=np.int64), Y)
    with pytest.raises(TypeError, match="Y must be a floating-point tensor"):
        fn(X, torch.ones((30, 3), dtype=torch.int32))
    with pytest.raises(ValueError, match="at least"):
        fn(X[:1], Y[:1])
    with pytest.raises(TypeError, match="Y is required"):
        fn(X)
    with pytest.raises(ValueError, match="not both"):
        fn(X, Y, stats=HSICStats().update(X, Y))
    with pytest.raises(TypeError, match="stats must be"):
        fn(stats=object())


def test_argument_errors():
    X, Y = linear_pair(n=30, p=4, q=3)
    cs = cg.CrossStats().update(X, Y)
    with pytest.raises(ValueError, match="path must be one of"):
        linear_cka(X, Y, path="gram")
    with pytest.raises(ValueError, match="path='samples' needs"):
        linear_cka(stats=cs, path="samples")
    with pytest.raises(ValueError, match="path='samples' needs"):
        procrustes(stats=cs, path="samples")
    with pytest.raises(ValueError, match="method must be one of"):
        cca(X, Y, method="svd")
    with pytest.raises(ValueError, match="method='qr' needs host arrays"):
        cca(stats=cs, method="qr")
    with pytest.raises(ValueError, match="epsilon must be"):
        cca(X, Y, epsilon=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        svcca(X, Y, threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        svcca(X, Y, threshold=1.5)
    with pytest.raises(ValueError, match="k must be"):
        svcca(X, Y, k=0)
    with pytest.raises(ValueError, match="mode must be"):
        svcca(X, Y, mode="energy")
    assert svcca(X, Y, k=(2, 3), return_result=True).k_y == 3
    with pytest.raises(ValueError, match="side must be"):
        pwcca(X, Y, side="larger")
    with pytest.raises(ValueError, match="compat"):
        pwcca(X, Y, compat="anatome")
    with pytest.raises(ValueError, match="symmetric"):
        pwcca(X, Y, side="smaller", symmetric=True)
    with pytest.raises(ValueError, match="host arrays"):
        pwcca(stats=cs, compat="google_svcca")
    with pytest.raises(ValueError, match="ridge must be"):
        linear_regression_r2(X, Y, ridge=-1.0)
    with pytest.raises(ValueError, match="kind must be"):
        procrustes(X, Y, kind="metric")
    with pytest.raises(TypeError, match="HSICStats"):
        debiased_cka(stats=cs)
    with pytest.raises(ValueError, match="path='samples' needs"):
        debiased_cka(stats=HSICStats().update(X, Y), path="samples")
    with pytest.raises(ValueError, match="path must be one of"):
        debiased_cka(X, Y, path="gram")
    only = cg.CrossStats(cross_only=True).update(X, Y)
    with pytest.raises(ValueError, match="cross_only"):
        linear_cka(stats=only)
    with pytest.raises(ValueError, match="cross_only"):
        cca(stats=only)
    assert rel(procrustes(stats=only), procrustes(X, Y)) <= 1e-12  # needs only M_xy and the traces
    with pytest.raises(ValueError, match="needs at least 2 samples"):
        linear_cka(stats=cg.CrossStats().update(X[:1], Y[:1]))


# ------------------------------------------------------------------------- GPU path (simulated)


@pytest.fixture
def sim(monkeypatch):
    """CPU torch tensors stand in for CUDA tensors; tests/cuda_sim.py stands in for the kernels."""
    import cuda_sim

    cuda_sim.install(monkeypatch)
    from congruence import _arrays

    assert _arrays.is_device(torch.zeros(2, 2))


def test_gpu_inputs_go_through_a_device_cross_stats(sim, monkeypatch):
    X, Y = linear_pair(n=120, p=9, q=7, seed=4, offset=3.0)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    seen = []
    original = C.device_cross_stats

    def spy(*args, **kwargs):
        cs = original(*args, **kwargs)
        seen.append(cs.device)
        return cs

    monkeypatch.setattr(C, "device_cross_stats", spy)
    checks = [
        (lambda a, b: linear_cka(a, b), lambda: linear_cka(X, Y)),
        (lambda a, b: cca(a, b).r2, lambda: cca(X, Y, method="covariance").r2),
        (lambda a, b: svcca(a, b, k=5), lambda: svcca(X, Y, k=5)),
        (lambda a, b: pwcca(a, b), lambda: pwcca(X, Y, method="covariance")),
        (lambda a, b: linear_regression_r2(a, b), lambda: linear_regression_r2(X, Y)),
        (lambda a, b: procrustes(a, b), lambda: procrustes(X, Y)),
    ]
    for gpu, host in checks:
        assert rel(gpu(tx, ty), host()) <= 1e-12
    assert seen == [0] * len(checks)
    assert rel(debiased_cka(tx, ty), debiased_cka(X, Y)) <= 1e-12
    hs = HSICStats().update(tx[:60], ty[:60])
    assert hs.cross_stats.device == 0
    hs.merge(hs.spawn().update(tx[60:], ty[60:]))
    assert rel(debiased_cka(stats=hs), debiased_cka(X, Y)) <= 1e-12
    assert rel(linear_cka(stats=hs), linear_cka(X, Y)) <= 1e-12
    with pytest.raises(ValueError, match="path='samples' needs"):
        linear_cka(tx, ty, path="samples")
    with pytest.raises(ValueError, match="path='samples' needs"):
        debiased_cka(tx, ty, path="samples")
    with pytest.raises(ValueError, match="method='qr' needs host arrays"):
        cca(tx, ty, method="qr")
    with pytest.raises(ValueError, match="X is a GPU array but Y is a host array"):
        linear_cka(tx, Y)
    with pytest.raises(ValueError, match="same number of samples"):
        linear_cka(tx, ty[:50])
    with pytest.raises(ValueError, match="at least 4 samples"):
        debiased_cka(tx[:3], ty[:3])
    with pytest.raises(ValueError, match="holds its state on cuda:0"):
        hs.update(X[:5], Y[:5])
