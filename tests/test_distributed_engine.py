"""congruence.distributed's pairwise engine (correlation, topk_correlation, max_correlation,
correlation_pairs) and knn on a 2-process LocalCluster: both routes (samples="gather"/"reduce",
dims="gather"/"reduce") equal the single-machine functions (themselves tested against float64
numpy), plus independent float64 numpy references, the zero_var policies, NaN checks, argument
checks and a worker dying on the reduce route."""

import importlib
import os
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from dask.delayed import Delayed  # noqa: E402
import scipy.sparse  # noqa: E402

import congruence as cg  # noqa: E402
from dask_helpers import correlated, faulty, local_client  # noqa: E402
from congruence import ConstantFeatureWarning, MemoryBudgetError  # noqa: E402
from congruence import distributed as D  # noqa: E402

_blocks = importlib.import_module("congruence.distributed._blocks")
_neighbors = importlib.import_module("congruence.distributed.neighbors")

ROUTES = ("gather", "reduce")
F32 = 2e-6  # float32 agreement of correlations with the single-node engine
F64 = 1e-12


client = pytest.fixture(scope="module")(local_client)


def correlated_pair(m, n_x, n_y, seed):
    """X and Y driven by one latent factor set, so that many X-Y pairs are strongly correlated."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((m, 8))
    return tuple((Z @ rng.standard_normal((8, n)) + rng.standard_normal((m, n))).astype(np.float32)
                 for n in (n_x, n_y))


def points(n, d, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) + offset).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    """X (300 × 100) chunked (130, 37), Y (300 × 70) chunked (100, 25): both split along samples,
    with different sample and feature chunks."""
    X, Y = correlated_pair(300, 100, 70, 1)
    return X, Y, da.from_array(X, chunks=(130, 37)), da.from_array(Y, chunks=(100, 25))


@pytest.fixture
def route_spy(monkeypatch):
    """Records what every wants_gather call (features and knn) decided."""
    seen = []
    original = _blocks.wants_gather

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(_blocks, "wants_gather", spy)
    monkeypatch.setattr(_neighbors, "wants_gather", spy)
    return seen


def _pairs(coo):
    """{(i, j): value} of a COO result, after checking it is sorted by (i, j)."""
    r, c = np.asarray(coo.row, dtype=np.int64), np.asarray(coo.col, dtype=np.int64)
    key = r * (coo.shape[1] + 1) + c
    assert np.all(np.diff(key) > 0), "entries not sorted by (i, j) or duplicated"
    return dict(zip(zip(r.tolist(), c.tolist()), np.asarray(coo.data).tolist()))


def _same_pairs(got, ref, atol):
    a, b = _pairs(got), _pairs(ref)
    assert got.shape == ref.shape
    assert set(a) == set(b)
    if a:
        keys = sorted(a)
        assert np.allclose([a[q] for q in keys], [b[q] for q in keys], rtol=0, atol=atol)


def _single(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantFeatureWarning)
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- routes


def test_wants_gather_rule():
    wg = _blocks.wants_gather
    assert wg("auto", 1, 10 ** 6, True) is False  # split along samples, a gathered task too big: reduce
    assert wg("auto", 1, 10 ** 6, False) is True  # not split: always gather
    assert wg("auto", 2 ** 30, 10 ** 6, True) is True  # fits: gather
    assert wg("auto", 10 ** 6, 10 ** 6, True) is True  # bound inclusive
    assert wg("gather", 1, 10 ** 9, True) is True
    assert wg("reduce", 2 ** 40, 10, False) is False


def test_auto_route_is_reduce_for_split_inputs_and_a_tiny_task_memory(client, route_spy):
    X, Y = correlated_pair(200, 50, 40, 31)
    Xd, Yd = da.from_array(X, chunks=(70, 20)), da.from_array(Y, chunks=(110, 15))
    v, i = D.topk_correlation(Xd, Yd, 5, task_memory=1)
    assert route_spy == [False]
    vr, ir = D.topk_correlation(Xd, Yd, 5, samples="reduce")
    assert np.array_equal(i, ir) and np.array_equal(v, vr)  # the same route: the same bits
    v, i = D.topk_correlation(Xd, Yd, 5)  # default task_memory: gather
    vg, ig = D.topk_correlation(Xd, Yd, 5, samples="gather")
    assert route_spy == [False, False, True, True]
    assert np.array_equal(i, ig) and np.array_equal(v, vg)
    # not split along samples: gather even with task_memory=1
    D.topk_correlation(da.from_array(X, chunks=(200, 20)), None, 3, task_memory=1)
    assert route_spy[-1] is True
    # knn: split along dimensions and task_memory tiny -> reduce; otherwise gather
    P = points(120, 30, 3)
    D.knn(da.from_array(P, chunks=(50, 11)), None, 3, task_memory=1)
    assert route_spy[-1] is False
    D.knn(da.from_array(P, chunks=(50, 11)), None, 3)
    assert route_spy[-1] is True
    D.knn(da.from_array(P, chunks=(50, 30)), None, 3, task_memory=1)
    assert route_spy[-1] is True


# ---------------------------------------------------------------------------------------------- dense


@pytest.mark.parametrize("route", ROUTES)
def test_correlation_is_a_lazy_dask_array_equal_to_the_single_node(client, data, route):
    X, Y, Xd, Yd = data
    R = D.correlation(Xd, Yd, samples=route)
    assert isinstance(R, da.Array)
    assert R.shape == (100, 70) and R.dtype == np.float32
    assert R.chunks == ((37, 37, 26), (25, 25, 20))
    got = R.compute()
    assert got.dtype == np.float32
    assert np.allclose(got, cg.correlation(X, Y), rtol=0, atol=F32)
    # self-join: symmetric, X's column chunks both ways
    S = D.correlation(Xd, samples=route)
    assert S.chunks == ((37, 37, 26), (37, 37, 26))
    s = S.compute()
    assert np.array_equal(s, s.T)
    assert np.allclose(s, cg.correlation(X), rtol=0, atol=F32)


def test_correlation_matches_an_independent_numpy_reference(client, data):
    X, Y, Xd, Yd = data
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    ref = np.corrcoef(X64.T, Y64.T)[:100, 100:]
    for route in ROUTES:
        got = D.correlation(Xd, Yd, samples=route, precision="float64").compute()
        assert got.dtype == np.float64
        assert np.allclose(got, ref, rtol=0, atol=F64), route


@pytest.mark.parametrize("route", ROUTES)
def test_correlation_metrics(client, data, route):
    X, Y, Xd, Yd = data
    for kw in (dict(metric="cosine"), dict(metric="covariance", ddof=1),
               dict(metric="pearson", precision="float64")):
        ref = cg.correlation(X, Y, **kw)
        got = D.correlation(Xd, Yd, samples=route, **kw).compute()
        assert got.dtype == ref.dtype, kw
        tol = F64 if "precision" in kw else F32
        scale = max(1.0, float(np.abs(ref).max()))
        assert np.allclose(got, ref, rtol=0, atol=tol * scale), kw
    # covariance self-join, ddof=0 vs a numpy reference
    got = D.correlation(Xd, metric="covariance", ddof=0, precision="float64", samples=route).compute()
    ref = np.cov(X.astype(np.float64).T, ddof=0)
    assert np.allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("route", ROUTES)
def test_float64_inputs_give_float64_output(client, route):
    X, Y = correlated(200, 50, 4).astype(np.float64), correlated(200, 40, 5).astype(np.float64)
    R = D.correlation(da.from_array(X, chunks=(70, 13)), da.from_array(Y, chunks=(90, 17)), samples=route)
    assert R.dtype == np.float64
    got = R.compute()
    assert got.dtype == np.float64
    assert np.allclose(got, cg.correlation(X, Y), rtol=0, atol=F64)
    # float64 X with float32 Y: float32, as the single-node rule
    R = D.correlation(da.from_array(X, chunks=(70, 13)), da.from_array(Y.astype(np.float32), chunks=(90, 17)),
                      samples=route)
    assert R.dtype == np.float32


# ---------------------------------------------------------------------------------------------- top-k


@pytest.mark.parametrize("route", ROUTES)
def test_topk_equals_the_single_node(client, data, route):
    X, Y, Xd, Yd = data
    Y2 = correlated(300, 100, 7)
    Y2d = da.from_array(Y2, chunks=(80, 30))
    cases = [
        ((Xd, Yd), (X, Y), dict()),
        ((Xd, Yd), (X, Y), dict(absolute=True, axis=0)),
        ((Xd, Y2d), (X, Y2), dict(exclude_self=True)),
        ((Xd, None), (X, None), dict(exclude_self=False, precision="float64")),
    ]
    for (a, b), (a0, b0), kw in cases:
        v, i = D.topk_correlation(a, b, 6, samples=route, **kw)
        v0, i0 = cg.topk_correlation(a0, b0, 6, **kw)
        assert i.dtype == np.int64 and v.dtype == v0.dtype, kw
        assert np.array_equal(i, i0), kw
        assert np.allclose(v, v0, rtol=0, atol=F64 if "precision" in kw else F32), kw
        if kw.get("exclude_self"):
            assert not np.any(i == np.arange(i.shape[0])[:, None])
        if kw.get("exclude_self") is False:
            assert np.array_equal(i[:, 0], np.arange(100))  # a feature is its own best partner


def test_topk_matches_an_independent_numpy_reference(client, data):
    X, Y, Xd, Yd = data
    C = np.corrcoef(X.astype(np.float64).T, Y.astype(np.float64).T)[:100, 100:]
    order = np.argsort(-np.abs(C), axis=1, kind="stable")[:, :5]
    for route in ROUTES:
        v, i = D.topk_correlation(Xd, Yd, 5, absolute=True, precision="float64", samples=route)
        assert np.array_equal(i, order), route
        assert np.allclose(v, np.take_along_axis(C, order, axis=1), rtol=0, atol=F64)


@pytest.mark.parametrize("route", ROUTES)
def test_topk_self_join_excludes_the_diagonal_and_ties_go_to_the_lowest_index(client, route):
    X = correlated(300, 100, 3)
    X[:, 80] = X[:, 5]  # exact duplicates in different column blocks (0 and 2)
    Xd = da.from_array(X, chunks=(130, 37))
    v, i = D.topk_correlation(Xd, None, 8, samples=route)
    v0, i0 = cg.topk_correlation(X, None, 8)
    assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=0, atol=F32)
    assert not np.any(i == np.arange(100)[:, None])
    assert i[5, 0] == 80 and i[80, 0] == 5
    both = [r for r in range(100) if r not in (5, 80) and 5 in i[r] and 80 in i[r]]
    assert both  # the duplicate pair appears together in some lists
    for r in both:
        p5, p80 = list(i[r]).index(5), list(i[r]).index(80)
        assert p80 == p5 + 1 and v[r, p5] == v[r, p80], r


@pytest.mark.parametrize("route", ROUTES)
def test_topk_with_k_larger_than_a_column_block(client, route):
    X, Y = correlated_pair(150, 30, 25, 8)
    Xd, Yd = da.from_array(X, chunks=(75, 5)), da.from_array(Y, chunks=(90, 5))
    for b, b0 in ((Yd, Y), (None, None)):
        v, i = D.topk_correlation(Xd, b, 8, samples=route, precision="float64")
        v0, i0 = cg.topk_correlation(X, b0, 8, precision="float64")
        assert np.array_equal(i, i0)
        assert np.allclose(v, v0, rtol=0, atol=F64)


@pytest.mark.parametrize("route", ROUTES)
def test_topk_compute_false_returns_a_delayed(client, data, route):
    X, Y, Xd, Yd = data
    lazy = D.topk_correlation(Xd, Yd, 4, samples=route, compute=False)
    assert isinstance(lazy, Delayed)
    v, i = lazy.compute()
    v1, i1 = D.topk_correlation(Xd, Yd, 4, samples=route)
    assert np.array_equal(i, i1) and np.array_equal(v, v1)
    v0, i0 = cg.topk_correlation(X, Y, 4)
    assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=0, atol=F32)


@pytest.mark.parametrize("route", ROUTES)
def test_max_correlation_equals_the_single_node(client, data, route):
    X, Y, Xd, Yd = data
    for b, b0, kw in ((Yd, Y, dict()), (None, None, dict()), (Yd, Y, dict(absolute=True, axis=0))):
        v, i = D.max_correlation(Xd, b, samples=route, **kw)
        v0, i0 = cg.max_correlation(X, b0, **kw)
        assert v.shape == v0.shape and v.ndim == 1
        assert np.array_equal(i, i0), kw
        assert np.allclose(v, v0, rtol=0, atol=F32), kw


# ---------------------------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("route", ROUTES)
def test_correlation_pairs_equal_the_single_node(client, data, route):
    X, Y, Xd, Yd = data
    for kw in (dict(), dict(absolute=True)):
        got = D.correlation_pairs(Xd, Yd, 0.45, samples=route, **kw)
        ref = cg.correlation_pairs(X, Y, 0.45, **kw)
        assert isinstance(got, scipy.sparse.coo_array) and got.dtype == ref.dtype
        assert got.nnz > 50, kw
        _same_pairs(got, ref, F32)
    # self-join: symmetric, no diagonal; exclude_self=False adds it
    got = D.correlation_pairs(Xd, None, 0.5, samples=route)
    ref = cg.correlation_pairs(X, None, 0.5)
    _same_pairs(got, ref, F32)
    p = _pairs(got)
    assert all((j, i) in p and p[j, i] == v for (i, j), v in p.items())
    assert not any(i == j for i, j in p)
    got = D.correlation_pairs(Xd, None, 0.5, exclude_self=False, samples=route)
    _same_pairs(got, cg.correlation_pairs(X, None, 0.5, exclude_self=False), F32)
    p2 = _pairs(got)
    assert set(p2) - set(p) == {(i, i) for i in range(100)}


def test_correlation_pairs_match_an_independent_numpy_reference(client, data):
    X, Y, Xd, Yd = data
    C = np.corrcoef(X.astype(np.float64).T, Y.astype(np.float64).T)[:100, 100:]
    r, c = np.nonzero(np.abs(C) >= 0.4)
    for route in ROUTES:
        got = D.correlation_pairs(Xd, Yd, 0.4, absolute=True, precision="float64", samples=route)
        assert np.array_equal(got.row, r) and np.array_equal(got.col, c)  # numpy's nonzero is (i, j)-sorted
        assert np.allclose(got.data, C[r, c], rtol=0, atol=F64)


@pytest.mark.parametrize("route", ROUTES)
def test_correlation_pairs_max_pairs(client, data, route):
    X, Y, Xd, Yd = data
    n = cg.correlation_pairs(X, Y, 0.45).nnz
    n_self = cg.correlation_pairs(X, None, 0.5).nnz  # both triangles count
    with pytest.raises(MemoryBudgetError, match="max_pairs"):
        D.correlation_pairs(Xd, Yd, 0.45, max_pairs=n - 1, samples=route)
    with pytest.raises(MemoryBudgetError, match="max_pairs"):
        D.correlation_pairs(Xd, None, 0.5, max_pairs=n_self - 1, samples=route)
    assert D.correlation_pairs(Xd, Yd, 0.45, max_pairs=n, samples=route).nnz == n  # exactly the bound: fine


# ---------------------------------------------------------------------------------------------- zero_var


@pytest.fixture(scope="module")
def constant_data():
    X, Y = correlated_pair(300, 100, 70, 11)
    X[:, 3] = 2.5
    X[:, 50] = np.float32(0.1)  # not exactly representable: block means differ in the last bit
    Y[:, 20] = -1.0
    return X, Y, da.from_array(X, chunks=(130, 37)), da.from_array(Y, chunks=(100, 25))


def _constant_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, ConstantFeatureWarning)]


@pytest.mark.parametrize("route", ROUTES)
def test_zero_var_zero_warns_once_per_input_on_the_driver(client, constant_data, route):
    X, Y, Xd, Yd = constant_data
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        R = D.correlation(Xd, Yd, samples=route)
        got = R.compute()
    msgs = _constant_warnings(rec)
    assert len(msgs) == 2, msgs
    assert msgs[0].startswith("X has 2") and "[3, 50]" in msgs[0]
    assert msgs[1].startswith("Y has 1") and "[20]" in msgs[1]
    ref = _single(cg.correlation, X, Y)
    assert np.allclose(got, ref, rtol=0, atol=F32)
    assert np.all(got[[3, 50]] == 0) and np.all(got[:, 20] == 0)

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        v, i = D.topk_correlation(Xd, None, 4, samples=route)
    msgs = _constant_warnings(rec)
    assert len(msgs) == 1 and msgs[0].startswith("X has 2"), msgs
    v0, i0 = _single(cg.topk_correlation, X, None, 4)
    assert np.allclose(v, v0, rtol=0, atol=F32)
    assert np.array_equal(i[[i for i in range(100) if i not in (3, 50)]],
                          i0[[i for i in range(100) if i not in (3, 50)]])

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = D.correlation_pairs(Xd, Yd, 0.45, samples=route)
    assert len(_constant_warnings(rec)) == 2
    _same_pairs(got, _single(cg.correlation_pairs, X, Y, 0.45), F32)


@pytest.mark.parametrize("route", ROUTES)
def test_zero_var_nan(client, constant_data, route):
    X, Y, Xd, Yd = constant_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstantFeatureWarning)  # "nan" does not warn
        got = D.correlation(Xd, Yd, zero_var="nan", samples=route).compute()
        ref = cg.correlation(X, Y, zero_var="nan")
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        assert np.all(np.isnan(got[[3, 50]])) and np.all(np.isnan(got[:, 20]))
        assert np.isnan(got).sum() == 2 * 70 + 100 - 2
        assert np.allclose(got, ref, rtol=0, atol=F32, equal_nan=True)

        v, i = D.topk_correlation(Xd, Yd, 5, zero_var="nan", samples=route)
        v0, i0 = cg.topk_correlation(X, Y, 5, zero_var="nan")
        assert np.all(np.isnan(v[[3, 50]])) and np.all(i[[3, 50]] == -1)
        assert not np.any(i == 20)
        assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=0, atol=F32, equal_nan=True)
        v, i = D.topk_correlation(Xd, None, 5, zero_var="nan", samples=route)
        assert np.all(i[[3, 50]] == -1) and not np.any(np.isin(i, [3, 50]) & (i >= 0))
        assert np.array_equal(i, cg.topk_correlation(X, None, 5, zero_var="nan")[1])

        got = D.correlation_pairs(Xd, Yd, 0.45, zero_var="nan", samples=route)
        p = _pairs(got)
        assert p and not any(r in (3, 50) or c == 20 for r, c in p)
        _same_pairs(got, cg.correlation_pairs(X, Y, 0.45, zero_var="nan"), F32)
        got = D.correlation_pairs(Xd, None, -1.0, zero_var="nan", samples=route)
        assert got.nnz == 98 * 97  # every valid off-diagonal pair, none touching 3 or 50
        assert not any(r in (3, 50) or c in (3, 50) for r, c in _pairs(got))


@pytest.mark.parametrize("route", ROUTES)
def test_zero_var_raise_names_the_input_with_global_indices(client, constant_data, route):
    X, Y, Xd, Yd = constant_data
    with pytest.raises(ValueError, match=r"X has 2 constant .*\[3, 50\]"):
        D.correlation(Xd, Yd, zero_var="raise", samples=route)
    with pytest.raises(ValueError, match=r"X has 2 constant .*\[3, 50\]"):
        D.topk_correlation(Xd, None, 3, zero_var="raise", samples=route)
    with pytest.raises(ValueError, match=r"X has 2 constant .*\[3, 50\]"):
        D.correlation_pairs(Xd, Yd, 0.5, zero_var="raise", samples=route)
    good = da.from_array(correlated(300, 100, 13), chunks=(130, 37))
    with pytest.raises(ValueError, match=r"Y has 1 constant .*\[20\]"):
        D.max_correlation(good, Yd, zero_var="raise", samples=route)
    # covariance is always defined: no error, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstantFeatureWarning)
        got = D.correlation(Xd, Yd, metric="covariance", zero_var="raise", samples=route).compute()
    assert np.allclose(got, cg.correlation(X, Y, metric="covariance"), rtol=0, atol=F32 * np.abs(got).max())


def test_axis0_zero_var_raise_names_x(client, constant_data):
    X, Y, Xd, Yd = constant_data
    good = da.from_array(correlated(300, 70, 14), chunks=(100, 25))
    with pytest.raises(ValueError, match=r"^X has 2 constant"):
        D.topk_correlation(Xd, good, 3, axis=0, zero_var="raise")


# ---------------------------------------------------------------------------------------------- NaN, offsets


@pytest.mark.parametrize("route", ROUTES)
def test_nan_input_raises_at_call_time(client, data, route):
    X, Y, Xd, Yd = data
    Xn = X.copy()
    Xn[200, 60] = np.nan
    Xnd = da.from_array(Xn, chunks=(130, 37))
    with pytest.raises(ValueError, match="X contains NaN"):
        D.correlation(Xnd, Yd, samples=route)  # lazy result, but the statistics pass runs now
    with pytest.raises(ValueError, match="X contains NaN"):
        D.topk_correlation(Xnd, None, 3, samples=route, compute=False)
    with pytest.raises(ValueError, match="Y contains NaN"):
        D.correlation_pairs(Yd, Xnd, 0.5, samples=route)
    Pn = points(100, 20, 15)
    Pn[60, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        D.knn(da.from_array(Pn, chunks=(30, 7)), None, 3, dims=route)
    with pytest.raises(ValueError, match="Q contains NaN"):
        D.knn(da.from_array(points(100, 20, 16), chunks=(30, 7)), da.from_array(Pn, chunks=(40, 7)), 3, dims=route)


def test_knn_self_join_nan_names_p(client):
    Pn = points(100, 20, 15)
    Pn[60, 5] = np.nan
    with pytest.raises(ValueError, match="P contains NaN"):
        D.knn(da.from_array(Pn, chunks=(30, 7)), None, 3, dims="reduce")


def test_large_offset_on_the_reduce_route_is_centred_globally(client):
    rng = np.random.default_rng(17)
    X = correlated(400, 40, 18).astype(np.float64)
    Y = correlated(400, 30, 19).astype(np.float64)
    X = X / X.std(0) + 1e3 * rng.uniform(0.5, 2.0, 40)  # |mean|/std ~ 1e3
    Y = Y / Y.std(0) - 1e3
    Xd, Yd = da.from_array(X, chunks=(130, 17)), da.from_array(Y, chunks=(110, 20))
    got = D.correlation(Xd, Yd, samples="reduce", precision="float64").compute()
    assert np.allclose(got, cg.correlation(X, Y), rtol=0, atol=1e-10)
    assert np.allclose(got, np.corrcoef(X.T, Y.T)[:40, 40:], rtol=0, atol=1e-10)
    v, i = D.topk_correlation(Xd, None, 4, samples="reduce")
    v0, i0 = cg.topk_correlation(X, None, 4)
    assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=0, atol=1e-10)
    got = D.correlation(Xd, Yd, metric="covariance", samples="reduce").compute()
    assert np.allclose(got, cg.correlation(X, Y, metric="covariance"), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------- knn


@pytest.fixture(scope="module")
def knn_data():
    P, Q = points(200, 30, 21, offset=0.5), points(160, 30, 22, offset=0.5)
    P[7] = 0.0  # a zero row (cosine: similarity 0 to everything)
    Q[11] = 0.0
    return P, Q, da.from_array(P, chunks=(70, 11)), da.from_array(Q, chunks=(60, 13))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine", "inner"])
def test_knn_equals_the_single_node(client, knn_data, route, metric):
    P, Q, Pd, Qd = knn_data
    prec = dict(precision="float64") if metric == "inner" else {}
    for b, b0 in ((Qd, Q), (None, None)):
        v, i = D.knn(Pd, b, 6, metric=metric, dims=route, **prec)
        v0, i0 = cg.knn(P, b0, 6, metric=metric, **prec)
        assert i.dtype == np.int64 and v.dtype == v0.dtype
        assert np.array_equal(i, i0), (metric, b is None)
        scale = max(1.0, float(np.abs(v0).max()))
        assert np.allclose(v, v0, rtol=0, atol=(1e-12 if prec else 4e-6) * scale), (metric, b is None)
        if b is None:
            assert not np.any(i == np.arange(200)[:, None])
    if metric == "cosine":  # the zero query row: all similarities 0, ties to the lowest indices
        assert np.array_equal(i[7], [0, 1, 2, 3, 4, 5]) and np.all(v[7] == 0)


def test_knn_exclude_self_with_a_separate_q(client):
    P, Q = points(300, 40, 23, offset=0.5), points(300, 40, 24, offset=0.5)
    Q[:50] = P[:50]  # point i of P is point i of Q for the first 50: excluded by index, not by distance
    Pd, Qd = da.from_array(P, chunks=(70, 13)), da.from_array(Q, chunks=(100, 20))
    v0, i0 = cg.knn(P, Q, 4, exclude_self=True)
    for route in ROUTES:
        v, i = D.knn(Pd, Qd, 4, exclude_self=True, dims=route)
        assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=0, atol=1e-4), route
        assert not np.any(i == np.arange(300)[:, None])


@pytest.mark.parametrize("route", ROUTES)
def test_knn_exact_duplicates_across_row_blocks_tie_to_the_lowest_index(client, route):
    P, Q = points(300, 40, 21, offset=0.5), points(250, 40, 22, offset=0.5)
    Q[200] = Q[10]  # Q row blocks (90, 90, 70): 10 in block 0, 200 in block 2
    v, i = D.knn(da.from_array(P, chunks=(70, 13)), da.from_array(Q, chunks=(90, 17)), 10, dims=route,
                 precision="float64")
    v0, i0 = cg.knn(P, Q, 10, precision="float64")
    both = [r for r in range(300) if 10 in i0[r] and 200 in i0[r]]
    assert both
    for r in both:  # the single-node engine: an exact tie, 10 first
        a, b = list(i0[r]).index(10), list(i0[r]).index(200)
        assert b == a + 1 and v0[r, a] == v0[r, b]
    assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=1e-12, atol=1e-9)
    for r in both:
        a, b = list(i[r]).index(10), list(i[r]).index(200)
        assert b == a + 1 and v[r, a] == v[r, b], r
    # self-join: P[150] duplicates P[20] (row blocks 2 and 0): each is the other's nearest, at distance 0
    P2 = points(300, 40, 23, offset=0.5)
    P2[150] = P2[20]
    v, i = D.knn(da.from_array(P2, chunks=(70, 13)), None, 5, dims=route, precision="float64")
    v0, i0 = cg.knn(P2, None, 5, precision="float64")
    assert i[20, 0] == 150 and i[150, 0] == 20 and v[20, 0] == v[150, 0] == 0.0
    assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=1e-12, atol=1e-9)


def test_knn_matches_brute_force_squared_distances(client, knn_data):
    P, Q, Pd, Qd = knn_data
    P64, Q64 = P.astype(np.float64), Q.astype(np.float64)
    d2 = ((P64[:, None, :] - Q64[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")[:, :5]
    for route in ROUTES:
        v, i = D.knn(Pd, Qd, 5, dims=route, precision="float64")
        assert np.array_equal(i, order), route
        assert np.allclose(v, np.take_along_axis(d2, order, axis=1), rtol=1e-10, atol=1e-10)


def test_knn_inner_on_offset_data_in_float64(client):
    P, Q = points(200, 30, 25, offset=20.0), points(180, 30, 26, offset=20.0)
    Pd, Qd = da.from_array(P, chunks=(70, 11)), da.from_array(Q, chunks=(60, 8))
    ref = P.astype(np.float64) @ Q.astype(np.float64).T
    order = np.argsort(-ref, axis=1, kind="stable")[:, :4]
    for route in ROUTES:
        v, i = D.knn(Pd, Qd, 4, metric="inner", dims=route, precision="float64")
        v0, i0 = cg.knn(P, Q, 4, metric="inner", precision="float64")
        assert np.array_equal(i, i0) and np.array_equal(i, order)
        assert np.allclose(v, v0, rtol=1e-13, atol=0)


def test_knn_compute_false_returns_a_delayed(client, knn_data):
    P, Q, Pd, Qd = knn_data
    for route in ROUTES:
        lazy = D.knn(Pd, Qd, 3, dims=route, compute=False)
        assert isinstance(lazy, Delayed)
        v, i = lazy.compute()
        assert np.array_equal(i, cg.knn(P, Q, 3)[1])


# ---------------------------------------------------------------------------------------------- arguments


def test_bad_arguments_name_themselves():
    X = da.from_array(correlated(20, 6, 27), chunks=(7, 4))
    Y = da.from_array(correlated(20, 5, 28), chunks=(7, 4))
    for fn, args in ((D.correlation, (X, Y)), (D.topk_correlation, (X, Y, 2)), (D.max_correlation, (X, Y)),
                     (D.correlation_pairs, (X, Y, 0.5))):
        with pytest.raises(ValueError, match="samples must be one of"):
            fn(*args, samples="bogus")
        with pytest.raises(ValueError, match="task_memory"):
            fn(*args, task_memory=0)
        with pytest.raises(ValueError, match="task_memory"):
            fn(*args, task_memory="1GB")
        with pytest.raises(ValueError, match="split_every"):
            fn(*args, split_every=1)
        with pytest.raises(ValueError, match="task_threads"):
            fn(*args, task_threads=0)
        with pytest.raises(ValueError, match="metric"):
            fn(*args, metric="spearman")
        with pytest.raises(ValueError, match="zero_var"):
            fn(*args, zero_var="drop")
        with pytest.raises(ValueError, match="precision"):
            fn(*args, precision="float16")
        with pytest.raises(ValueError, match="X must be a dask"):
            fn(np.zeros((20, 6)), *args[1:])
        with pytest.raises(ValueError, match="Y must be a dask"):
            fn(X, np.zeros((20, 5)), *args[2:])
        with pytest.raises(ValueError, match="same number of samples"):
            fn(X, da.zeros((19, 5), chunks=7), *args[2:])
    with pytest.raises(ValueError, match="k must be"):
        D.topk_correlation(X, Y, 0)
    with pytest.raises(ValueError, match="k=6 exceeds"):
        D.topk_correlation(X, Y, 6)
    with pytest.raises(ValueError, match="k=6 exceeds"):
        D.topk_correlation(X, None, 6)  # 5 candidates once self is excluded
    with pytest.raises(ValueError, match="axis"):
        D.topk_correlation(X, Y, 2, axis=2)
    with pytest.raises(ValueError, match="same width"):
        D.topk_correlation(X, Y, 2, exclude_self=True)
    with pytest.raises(ValueError, match="threshold"):
        D.correlation_pairs(X, Y, float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        D.correlation_pairs(X, Y, True)
    with pytest.raises(ValueError, match="max_pairs"):
        D.correlation_pairs(X, Y, 0.5, max_pairs=-1)
    with pytest.raises(ValueError, match="ddof"):
        D.correlation(X, Y, metric="covariance", ddof=20)

    P = da.from_array(points(20, 6, 29), chunks=(7, 4))
    with pytest.raises(ValueError, match="task_memory"):
        D.knn(P, None, 2, task_memory=0)
    with pytest.raises(ValueError, match="split_every"):
        D.knn(P, None, 2, split_every=1)
    with pytest.raises(ValueError, match="task_threads"):
        D.knn(P, None, 2, task_threads=0)
    with pytest.raises(ValueError, match="k must be"):
        D.knn(P, None, 0)
    with pytest.raises(ValueError, match="k=20 exceeds"):
        D.knn(P, None, 20)
    with pytest.raises(ValueError, match="metric"):
        D.knn(P, None, 2, metric="euclidean")
    with pytest.raises(ValueError, match="P must be a dask"):
        D.knn(np.zeros((20, 6)), None, 2)
    with pytest.raises(ValueError, match="Q must be a dask"):
        D.knn(P, np.zeros((20, 6)), 2)
    with pytest.raises(ValueError, match="same number of dimensions"):
        D.knn(P, da.zeros((20, 5), chunks=7), 2)
    with pytest.raises(ValueError, match="exclude_self"):
        D.knn(P, da.zeros((19, 6), chunks=7), 2, exclude_self=True)


def test_knn_bad_dims_names_dims():
    P = da.from_array(points(20, 6, 29), chunks=(7, 4))
    with pytest.raises(ValueError, match="dims"):
        D.knn(P, None, 2, dims="bogus")


# ---------------------------------------------------------------------------------------------- faults


def test_a_worker_dying_on_the_reduce_route_does_not_change_the_answer(client, tmp_path):
    X = correlated(400, 90, 30)
    marker = str(tmp_path / "died")
    Xd = faulty(X, (100, 30), marker)
    try:
        v, i = D.topk_correlation(Xd, None, 5, samples="reduce", precision="float64")
        assert os.path.exists(marker)  # a worker really died
        v0, i0 = cg.topk_correlation(X, None, 5, precision="float64")
        assert np.array_equal(i, i0) and np.allclose(v, v0, rtol=0, atol=F64)
        got = D.correlation(Xd, samples="reduce", precision="float64").compute()
        assert np.allclose(got, cg.correlation(X, precision="float64"), rtol=0, atol=F64)
    finally:
        client.wait_for_workers(2, timeout=60)
