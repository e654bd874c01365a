"""The CUDA path end to end: every primitive against the float64 NumPy oracles (tests/reference.py)
and against the CPU engine, for torch CUDA tensors and cupy arrays, every precision and metric.

Backends
--------
``torch`` and ``cupy`` run on a real GPU (``@pytest.mark.cuda``: skipped where
``congruence.cuda_available()`` is False; cupy also where it is not importable). ``sim`` runs the
same tests here, on the CPU, with tests/cuda_sim.py standing in for the ``_cuda`` kernels: it
checks the Python layer and these tests themselves, not the kernels.

Tolerances are per precision (``TOL``: the documented error bounds of pairwise.py, on the small
sizes used here); comparisons of top-k and threshold results are near-tie tolerant
(``assert_topk_equivalent`` / ``assert_pairs_equivalent``).
"""

import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import congruence as cg
from congruence import _arrays as A
from congruence import _cuda_engine as CE
from congruence import _device as D

import cuda_sim
from reference import (
    assert_pairs_equivalent, assert_topk_equivalent, pairs_from_sparse, ref_column_stats, ref_correlation,
    ref_cross_stats, ref_knn, ref_pairs, ref_topk_correlation,
)

torch = pytest.importorskip("torch")
try:
    import cupy
except Exception:  # not installed, or no CUDA runtime for it
    cupy = None

PRECISIONS = ["float32", "3xtf32", "tf32", "bf16", "float64"]
#: Max absolute error of a correlation (relative to the scale for covariance / distances).
TOL = {"float64": 1e-12, "float32": 5e-6, "3xtf32": 5e-6, "tf32": 2e-3, "bf16": 3e-2}
METRICS = ["pearson", "cosine", "covariance"]


class Backend:
    """How one array library makes inputs and reads results."""

    def __init__(self, name):
        self.name = name

    @property
    def real(self):
        return self.name != "sim"

    def array(self, a, dtype=None):
        a = np.asarray(a)
        dtype = dtype or a.dtype.name
        if self.name == "cupy":
            if dtype == "bfloat16":
                pytest.skip("cupy has no bfloat16")
            return cupy.asarray(a.astype(dtype))
        t = torch.from_numpy(np.array(a, dtype=np.float64)).to(getattr(torch, dtype))
        return t.to("cuda") if self.name == "torch" else t

    def np(self, r):
        if self.name == "cupy":
            return cupy.asnumpy(r)
        r = r.detach().cpu()
        if r.dtype in (torch.bfloat16, torch.float16):
            r = r.double()
        return r.numpy()

    def check(self, r, dtype=None):
        """A result of this backend's library, on its device."""
        if self.name == "cupy":
            assert isinstance(r, cupy.ndarray) and r.device.id == 0
        else:
            assert isinstance(r, torch.Tensor), type(r)
            assert r.is_cuda == (self.name == "torch")
        if dtype is not None:
            assert str(r.dtype).endswith(dtype), (r.dtype, dtype)

    def pairs(self, S):
        if self.name == "cupy":
            import cupyx.scipy.sparse

            assert isinstance(S, cupyx.scipy.sparse.coo_matrix)
            return pairs_from_sparse(S.get())
        assert S.is_sparse and S.is_cuda == (self.name == "torch")
        return pairs_from_sparse(S)

    def stream(self):
        if self.name == "torch":
            return torch.cuda.current_stream().cuda_stream
        if self.name == "cupy":
            return cupy.cuda.get_current_stream().ptr
        return 0

    def synchronize(self):
        if self.name == "torch":
            torch.cuda.synchronize()
        elif self.name == "cupy":
            cupy.cuda.Device().synchronize()


def _backend(name, monkeypatch):
    if name == "sim":
        cuda_sim.install(monkeypatch)
    elif name == "torch":
        if not torch.cuda.is_available():
            pytest.skip("torch has no CUDA")
    elif cupy is None:
        pytest.skip("cupy is not importable")
    return Backend(name)


@pytest.fixture(params=[pytest.param("sim"), pytest.param("torch", marks=pytest.mark.cuda),
                        pytest.param("cupy", marks=pytest.mark.cuda)])
def be(request, monkeypatch):
    return _backend(request.param, monkeypatch)


@pytest.fixture(params=[pytest.param("torch", marks=pytest.mark.cuda), pytest.param("cupy", marks=pytest.mark.cuda)])
def gpu(request, monkeypatch):
    return _backend(request.param, monkeypatch)


def features(rng, n, p, *, offset=3.0, rank=6):
    """Fresh random activations with low-rank structure and offset means (never zeros)."""
    Z = rng.standard_normal((n, rank))
    W = rng.standard_normal((rank, p))
    return 0.6 * Z @ W + rng.standard_normal((n, p)) + offset * rng.standard_normal(p)


def pair(rng, n=200, p=40, q=150):
    X = features(rng, n, p)
    Y = features(rng, n, q)
    m = min(p, q)
    Y[:, :m] += 0.8 * X[:, :m]  # some strong correlations
    return X, Y


def any_numpy(r):
    if cupy is not None and isinstance(r, cupy.ndarray):
        return cupy.asnumpy(r)
    return r.detach().cpu().numpy()


def max_err(got, ref, scale=1.0):
    finite = ~np.isnan(ref)
    assert np.array_equal(np.isnan(got), ~finite)
    return np.abs(got[finite] - ref[finite]).max() / scale if finite.any() else 0.0


# ============================================================================ column statistics


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_column_stats(be, dtype):
    rng = np.random.default_rng(1)
    Xd = be.array(features(rng, 700, 37, offset=50.0) / 10, dtype)
    Xh = be.np(Xd)  # the rounded data, float64
    s = cg.column_stats(Xd, ddof=1)
    ref = ref_column_stats(Xh)
    assert s.n_samples == 700
    for name in ("mean", "var", "std", "sumsq"):
        got = getattr(s, name)
        be.check(got, "float64")
        np.testing.assert_allclose(be.np(got), ref[name], rtol=1e-12, atol=1e-12)
    be.check(s.constant, "bool")
    np.testing.assert_array_equal(be.np(s.constant), ref["constant"])
    cpu = cg.column_stats(Xh, ddof=0)
    np.testing.assert_allclose(be.np(cg.column_stats(Xd, ddof=0).var), cpu.var, rtol=1e-12)


# ============================================================================ dense


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("self_join", [False, True])
def test_correlation_dense(be, precision, metric, self_join):
    rng = np.random.default_rng(2)
    X, Y = pair(rng)
    Xd, Yd = be.array(X), be.array(Y)
    R = cg.correlation(Xd, None if self_join else Yd, metric=metric, precision=precision)
    be.check(R, "float64" if precision == "float64" else "float32")
    ref = ref_correlation(X, None if self_join else Y, metric=metric)
    cpu = cg.correlation(X, None if self_join else Y, metric=metric, precision="float64")
    assert tuple(R.shape) == ref.shape
    scale = np.abs(ref).max() if metric == "covariance" else 1.0
    got = be.np(R).astype(np.float64)
    assert max_err(got, ref, scale) <= TOL[precision]
    assert max_err(got, cpu, scale) <= TOL[precision]
    if metric != "covariance":
        assert np.abs(got).max() <= 1.0  # clamped in the epilogue


# ============================================================================ top-k and max


@pytest.mark.parametrize("k", [1, 7, 32, 33, 256])
@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("self_join", [False, True])
def test_topk(be, k, absolute, axis, self_join):
    rng = np.random.default_rng(3)
    X, Y = pair(rng, n=150, p=140, q=300)
    if self_join:
        X = np.concatenate([X, Y[:, :160]], axis=1)  # 300 features against themselves
    Yarg = None if self_join else Y
    n_cand = (X.shape[1] - 1) if self_join else (Y.shape[1] if axis == 1 else X.shape[1])
    if k > n_cand:
        pytest.skip("more partners than candidates")
    precision = "float32"
    v, i = cg.topk_correlation(be.array(X), None if self_join else be.array(Y), k, absolute=absolute, axis=axis,
                               precision=precision)
    be.check(v, "float32")
    be.check(i, "int64")
    rv, ri = ref_topk_correlation(X, Yarg, k, absolute=absolute, axis=axis)
    M = ref_correlation(X, Yarg)
    if axis == 0:
        M = M.T.copy()
    if self_join:
        np.fill_diagonal(M, np.nan)
    tol = TOL[precision]
    assert_topk_equivalent(be.np(v), be.np(i), rv, ri, rtol=tol, atol=tol, absolute=absolute, ref_matrix=M)
    cv, ci = cg.topk_correlation(X, Yarg, k, absolute=absolute, axis=axis, precision="float64")
    assert_topk_equivalent(be.np(v), be.np(i), cv, ci, rtol=tol, atol=tol, absolute=absolute)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("metric", METRICS)
def test_topk_precisions_and_metrics(be, precision, metric):
    rng = np.random.default_rng(4)
    X, Y = pair(rng, n=300, p=30, q=200)
    v, i = cg.topk_correlation(be.array(X), be.array(Y), 5, metric=metric, precision=precision)
    be.check(v, "float64" if precision == "float64" else "float32")
    M = ref_correlation(X, Y, metric=metric)
    scale = np.abs(M).max() if metric == "covariance" else 1.0
    rv, ri = ref_topk_correlation(X, Y, 5, metric=metric)
    tol = TOL[precision] * scale
    assert_topk_equivalent(be.np(v), be.np(i), rv, ri, rtol=TOL[precision], atol=tol, ref_matrix=M)


@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("axis", [1, 0])
def test_max_correlation(be, absolute, axis):
    rng = np.random.default_rng(5)
    X, Y = pair(rng, n=250, p=20, q=400)  # one row tile, several column tiles: segmented sweep
    v, i = cg.max_correlation(be.array(X), be.array(Y), absolute=absolute, axis=axis, precision="3xtf32")
    be.check(v, "float32")
    assert tuple(v.shape) == ((20,) if axis == 1 else (400,))
    rv, ri = ref_topk_correlation(X, Y, 1, absolute=absolute, axis=axis)
    tol = TOL["3xtf32"]
    assert_topk_equivalent(be.np(v), be.np(i), rv[:, 0], ri[:, 0], rtol=tol, atol=tol, absolute=absolute)


def test_topk_k_edges(be):
    rng = np.random.default_rng(6)
    X, Y = pair(rng, n=100, p=20, q=300)
    Xd, Yd = be.array(X), be.array(Y)
    v, i = cg.topk_correlation(Xd, k=19)  # every candidate (self excluded)
    rv, ri = ref_topk_correlation(X, None, 19)
    assert_topk_equivalent(be.np(v), be.np(i), rv, ri, rtol=1e-5, atol=5e-6)
    assert (be.np(i) >= 0).all()
    v, i = cg.topk_correlation(Xd, Yd, 1)
    assert tuple(v.shape) == (20, 1)
    with pytest.raises(ValueError, match=r"k=257 exceeds the CUDA engine's maximum of 256"):
        cg.topk_correlation(Xd, Yd, 257)
    with pytest.raises(ValueError, match=r"k=301 exceeds the number of candidates \(300\)"):
        cg.topk_correlation(Xd, Yd, 301)
    with pytest.raises(ValueError, match=r"k=20 exceeds the number of candidates \(19\)"):
        cg.topk_correlation(Xd, k=20)
    with pytest.raises(ValueError, match=r"k=257 exceeds the CUDA engine's maximum"):
        cg.knn(Yd.T, k=257)  # 300 points, 299 candidates


# ============================================================================ threshold pairs


@pytest.mark.parametrize("which", ["none", "few", "many"])
@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("self_join", [False, True])
def test_correlation_pairs(be, which, absolute, self_join):
    rng = np.random.default_rng(7)
    X, Y = pair(rng, n=200, p=40, q=150)
    Yarg = None if self_join else Y
    M = ref_correlation(X, Yarg)
    if self_join:
        np.fill_diagonal(M, np.nan)
    key = np.abs(M) if absolute else M
    threshold = {"none": 0.9999, "few": float(np.nanquantile(key, 0.99)), "many": -0.5 if not absolute else 0.0}[which]
    S = cg.correlation_pairs(be.array(X), None if self_join else be.array(Y), threshold, absolute=absolute,
                             precision="float32")
    assert tuple(S.shape) == M.shape
    r, c, v = be.pairs(S)
    rr, rc, rv = ref_pairs(M, threshold, absolute=absolute)
    tol = TOL["float32"]
    assert_pairs_equivalent(r, c, v, rr, rc, rv, threshold, rtol=tol, atol=tol, absolute=absolute, ref_matrix=M)
    if which == "none":
        assert len(r) == 0
    cpu = cg.correlation_pairs(X, Yarg, threshold, absolute=absolute, precision="float64")
    assert_pairs_equivalent(r, c, v, *pairs_from_sparse(cpu), threshold, rtol=tol, atol=tol, absolute=absolute)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_correlation_pairs_precisions(be, precision):
    rng = np.random.default_rng(8)
    X, Y = pair(rng, n=300, p=30, q=130)
    M = ref_correlation(X, Y)
    S = cg.correlation_pairs(be.array(X), be.array(Y), 0.3, precision=precision)
    r, c, v = be.pairs(S)
    tol = TOL[precision]
    assert_pairs_equivalent(r, c, v, *ref_pairs(M, 0.3), 0.3, rtol=tol, atol=tol, ref_matrix=M)
    assert v.dtype == np.float64  # pairs_from_sparse widens; the stored dtype:
    vals = S.values() if hasattr(S, "values") and callable(S.values) else S.data
    assert str(vals.dtype).endswith("float64" if precision == "float64" else "float32")


def test_correlation_pairs_capacity_retry_and_max_pairs(be, monkeypatch):
    rng = np.random.default_rng(9)
    X, Y = pair(rng, n=120, p=30, q=140)
    M = ref_correlation(X, Y)
    n_ref = int((M >= 0.0).sum())
    monkeypatch.setattr(CE, "THRESHOLD_INITIAL_CAPACITY", 7)  # force the second launch
    S = cg.correlation_pairs(be.array(X), be.array(Y), 0.0, precision="float64")
    r, c, v = be.pairs(S)
    assert_pairs_equivalent(r, c, v, *ref_pairs(M, 0.0), 0.0, rtol=1e-12, atol=1e-12, ref_matrix=M)
    assert abs(len(r) - n_ref) <= 2
    with pytest.raises(cg.MemoryBudgetError, match=r"more than max_pairs=10 pairs reach threshold=0.0"):
        cg.correlation_pairs(be.array(X), be.array(Y), 0.0, max_pairs=10)
    S = cg.correlation_pairs(be.array(X), be.array(Y), 0.0, max_pairs=len(r), precision="float64")
    assert len(be.pairs(S)[0]) == len(r)


# ============================================================================ kNN


@pytest.mark.parametrize("metric", ["sqeuclidean", "inner", "cosine"])
@pytest.mark.parametrize("self_join", [True, False])
@pytest.mark.parametrize("precision", ["float32", "3xtf32", "float64"])
def test_knn(be, metric, self_join, precision):
    rng = np.random.default_rng(10)
    P = features(rng, 300, 24, offset=5.0)
    Q = None if self_join else features(rng, 260, 24, offset=5.0)
    k = 9
    v, i = cg.knn(be.array(P), None if self_join else be.array(Q), k, metric=metric, precision=precision)
    be.check(v, "float64" if precision == "float64" else "float32")
    be.check(i, "int64")
    rv, ri = ref_knn(P, Q, k, metric=metric)
    largest = metric != "sqeuclidean"
    scale = np.abs(rv).max()
    tol = TOL[precision]
    # float32 squared distances carry ~1e-7 of ||a||^2 + ||b||^2 (knn's docstring)
    atol = tol * scale * (20 if metric == "sqeuclidean" and precision != "float64" else 1)
    assert_topk_equivalent(be.np(v), be.np(i), rv, ri, rtol=tol, atol=atol, largest=largest)
    cv, ci = cg.knn(P, Q, k, metric=metric, precision="float64")
    assert_topk_equivalent(be.np(v), be.np(i), cv, ci, rtol=tol, atol=atol, largest=largest)
    if self_join:
        assert not (be.np(i) == np.arange(300)[:, None]).any()


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_knn_ties_go_to_the_lowest_index(be, precision):
    # three copies of every reference point: the exact ties must come in increasing index order
    rng = np.random.default_rng(11)
    base = np.unique(rng.integers(-3, 4, size=(60, 5)), axis=0)[:40].astype(np.float64)
    n = len(base)
    Q = np.concatenate([base, base, base])
    v, i = cg.knn(be.array(base), be.array(Q), 6, precision=precision)
    got = be.np(i)
    np.testing.assert_array_equal(got[:, :3], np.arange(n)[:, None] + np.array([0, n, 2 * n]))
    vals = be.np(v)
    assert (vals[:, 0] == vals[:, 1]).all() and (vals[:, 1] == vals[:, 2]).all()  # identical rows, exact ties
    assert np.abs(vals[:, :3]).max() <= (1e-9 if precision == "float64" else 1e-5)
    rv, ri = ref_knn(base, Q, 6)
    assert_topk_equivalent(be.np(v), got, rv, ri, rtol=1e-5, atol=1e-4, largest=False)


# ============================================================================ CrossStats


@pytest.mark.parametrize("precision", ["float64", "float32", "3xtf32", "tf32", "bf16"])
@pytest.mark.parametrize("cross_only", [False, True])
def test_cross_stats(be, precision, cross_only):
    rng = np.random.default_rng(12)
    X, Y = pair(rng, n=2300, p=30, q=20)
    cuts = [0, 700, 701, 1000, 2300]  # a 1-row batch and one longer than a 1024-row chunk
    cs = cg.CrossStats(precision=precision, cross_only=cross_only)
    cpu = cg.CrossStats(cross_only=cross_only)
    for a, b in zip(cuts, cuts[1:]):
        cs.update(be.array(X[a:b]), be.array(Y[a:b]))
        cpu.update(X[a:b], Y[a:b])
    assert cs.n_samples == 2300 and cs.device == 0
    ref = ref_cross_stats(X, Y)
    tol = TOL[precision]
    R = cs.correlation_xy()
    be.check(R, "float64")
    assert max_err(be.np(R), ref["corr_xy"]) <= tol
    assert max_err(be.np(R), cpu.correlation_xy()) <= tol
    C = be.np(cs.covariance_xy())
    assert np.abs(C - ref["cov_xy"]).max() <= tol * np.abs(ref["cov_xy"]).max()
    np.testing.assert_allclose(be.np(cs.mean_x), ref["mean_x"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(be.np(cs.variance_y()), np.diag(ref["cov_yy"]), rtol=max(tol, 1e-12))
    if not cross_only:
        Cxx = be.np(cs.covariance_xx())
        assert np.abs(Cxx - ref["cov_xx"]).max() <= tol * np.abs(ref["cov_xx"]).max()
        assert max_err(be.np(cs.correlation_yy()), ref_correlation(Y)) <= tol
    # streamed == in memory
    whole = cg.CrossStats(precision=precision, cross_only=cross_only).update(be.array(X), be.array(Y))
    assert max_err(be.np(whole.correlation_xy()), be.np(R)) <= (1e-12 if precision == "float64" else 2 * tol)


def test_cross_stats_merge_state_and_device_rules(be):
    rng = np.random.default_rng(13)
    X, Y = pair(rng, n=600, p=12, q=9)
    a = cg.CrossStats().update(be.array(X[:250]), be.array(Y[:250]))
    b = cg.CrossStats().update(be.array(X[250:]), be.array(Y[250:]))  # different shifts
    a.merge(b)
    ref = ref_cross_stats(X, Y)
    np.testing.assert_allclose(be.np(a.covariance_xy()), ref["cov_xy"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(be.np(a.covariance_xx()), ref["cov_xx"], rtol=1e-10, atol=1e-12)
    sd = a.state_dict()
    be.check(sd["gram_xy"], "float64")
    c = cg.CrossStats.from_state_dict(sd)
    assert c.device == 0
    np.testing.assert_allclose(be.np(c.correlation_xy()), be.np(a.correlation_xy()), rtol=1e-14, atol=1e-14)
    c.update(be.array(X[:10]), be.array(Y[:10]))
    assert c.n_samples == 610
    empty = cg.CrossStats().merge(a)  # copy into an empty state
    np.testing.assert_allclose(be.np(empty.gram_xy), be.np(a.gram_xy))
    with pytest.raises(ValueError, match=r"holds its state on cuda:0 .* but the batch is on the host"):
        a.update(X[:5], Y[:5])
    host = cg.CrossStats().update(X[:5], Y[:5])
    with pytest.raises(ValueError, match=r"holds its state on the host but the batch is on a GPU"):
        host.update(be.array(X[:5]), be.array(Y[:5]))
    with pytest.raises(ValueError, match=r"cannot merge a state held on the host into one held on cuda:0"):
        a.merge(host)
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        bad = X[:5].copy()
        bad[2, 3] = np.nan
        a.update(be.array(bad), be.array(Y[:5]))
    assert a.n_samples == 600  # the failed batch left no trace
    with pytest.raises(ValueError, match=r"batch widths \(12, 8\) differ"):
        a.update(be.array(X[:5]), be.array(Y[:5, :8]))
    with pytest.raises(cg.MemoryBudgetError, match="CrossStats for 12 x 9 features needs"):
        cg.CrossStats(memory_limit=100).update(be.array(X), be.array(Y))


def test_cross_stats_given_shifts(be):
    rng = np.random.default_rng(14)
    X, Y = pair(rng, n=300, p=6, q=5)
    cs = cg.CrossStats(shift_x=np.zeros(6), shift_y=np.full(5, 2.0)).update(be.array(X), be.array(Y))
    np.testing.assert_allclose(be.np(cs.shift_y), np.full(5, 2.0))
    np.testing.assert_allclose(be.np(cs.sum_x), X.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(be.np(cs.correlation_xy()), ref_correlation(X, Y), atol=1e-12)
    with pytest.raises(ValueError, match=r"shift_x has shape \(3,\); expected \(6,\)"):
        cg.CrossStats(shift_x=np.zeros(3)).update(be.array(X), be.array(Y))


# ============================================================================ layouts and dtypes


def test_non_contiguous_inputs(be):
    rng = np.random.default_rng(15)
    big = features(rng, 600, 120)
    Bt = be.array(np.ascontiguousarray(big[:300, :40].T))  # (40, 300) contiguous
    X = Bt.T  # (300, 40), column-major view
    Y = be.array(big)[::2, ::3]  # (300, 40) with steps
    Xh, Yh = big[:300, :40], big[::2, ::3]
    R = cg.correlation(X, Y, precision="float64")
    np.testing.assert_allclose(be.np(R), ref_correlation(Xh, Yh), atol=1e-12)
    v, i = cg.topk_correlation(X, Y, 4, precision="float64")
    rv, ri = ref_topk_correlation(Xh, Yh, 4)
    assert_topk_equivalent(be.np(v), be.np(i), rv, ri, rtol=1e-12, atol=1e-12)
    kv, ki = cg.knn(Y, X, 3, precision="float64")
    rv, ri = ref_knn(Yh, Xh, 3)
    assert_topk_equivalent(be.np(kv), be.np(ki), rv, ri, rtol=1e-10, atol=1e-9, largest=False)
    s = cg.column_stats(Y)
    np.testing.assert_allclose(be.np(s.var), ref_column_stats(Yh)["var"], rtol=1e-12)
    cs = cg.CrossStats().update(X, Y)
    np.testing.assert_allclose(be.np(cs.correlation_xy()), ref_correlation(Xh, Yh), atol=1e-12)


@pytest.mark.cuda
def test_negative_strides_cupy(monkeypatch):
    if cupy is None:
        pytest.skip("cupy is not importable")
    rng = np.random.default_rng(16)
    big = features(rng, 300, 50)
    Xd = cupy.asarray(big)[::-1, ::-2]  # negative strides on both axes
    Xh = big[::-1, ::-2]
    R = cg.correlation(Xd, precision="float64")
    np.testing.assert_allclose(cupy.asnumpy(R), ref_correlation(Xh), atol=1e-12)
    s = cg.column_stats(Xd)
    np.testing.assert_allclose(cupy.asnumpy(s.mean), Xh.mean(axis=0), rtol=1e-12)
    v, i = cg.knn(Xd, k=4, precision="float64")
    rv, ri = ref_knn(Xh, None, 4)
    assert_topk_equivalent(cupy.asnumpy(v), cupy.asnumpy(i), rv, ri, rtol=1e-10, atol=1e-9, largest=False)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_input_dtypes_and_default_precision(be, dtype):
    rng = np.random.default_rng(17)
    X, Y = pair(rng, n=256, p=16, q=140)
    Xd, Yd = be.array(X / 4, dtype), be.array(Y / 4, dtype)
    R = cg.correlation(Xd, Yd)
    default = "float64" if dtype == "float64" else "3xtf32"
    if be.real:
        default = "float64" if dtype == "float64" else CE.GPU_PRECISIONS[CE.load().default_precision(0)]
    be.check(R, "float64" if default == "float64" else "float32")
    assert max_err(be.np(R).astype(np.float64), ref_correlation(be.np(Xd), be.np(Yd))) <= TOL[default]
    v, i = cg.topk_correlation(Xd, Yd, 3)
    rv, ri = ref_topk_correlation(be.np(Xd), be.np(Yd), 3)
    assert_topk_equivalent(be.np(v), be.np(i), rv, ri, rtol=TOL[default], atol=TOL[default])


def test_non_float_dtypes_rejected(be):
    if be.name == "cupy":
        X = cupy.arange(20, dtype=cupy.int32).reshape(10, 2)
        match = r"X must hold floating-point data"
    else:
        X = torch.arange(20, dtype=torch.int32).reshape(10, 2)
        X = X.cuda() if be.name == "torch" else X
        match = r"X must be a floating-point tensor"
    with pytest.raises(TypeError, match=match):
        cg.correlation(X)


# ============================================================================ poisoned buffers


def test_poisoned_buffers_never_leak(be, monkeypatch):
    """Every device buffer the engine allocates starts as NaN / -7; nothing unwritten may survive."""
    monkeypatch.setenv(D.POISON_ENV, "1")
    rng = np.random.default_rng(18)
    X, Y = pair(rng, n=130, p=20, q=300)
    Xd, Yd = be.array(X), be.array(Y)
    for precision in ("float32", "bf16", "float64"):
        R = be.np(cg.correlation(Xd, Yd, precision=precision))
        assert np.isfinite(R).all()
        v, i = cg.topk_correlation(Xd, Yd, 40, precision=precision)
        assert np.isfinite(be.np(v)).all() and (be.np(i) >= 0).all()
        v, i = cg.max_correlation(Yd, Xd, axis=0, precision=precision)
        assert np.isfinite(be.np(v)).all() and (be.np(i) >= 0).all()
    r, c, v = be.pairs(cg.correlation_pairs(Xd, Yd, 0.1))
    assert len(r) and (r >= 0).all() and (c >= 0).all() and np.isfinite(v).all()
    for metric in ("sqeuclidean", "inner", "cosine"):
        v, i = cg.knn(Yd, k=5, metric=metric)
        assert np.isfinite(be.np(v)).all() and (be.np(i) >= 0).all()
    s = cg.column_stats(Xd)
    assert all(np.isfinite(be.np(getattr(s, f))).all() for f in ("mean", "var", "std", "sumsq"))
    cs = cg.CrossStats(precision="3xtf32").update(Xd, Yd).update(Xd[:7], Yd[:7])
    assert np.isfinite(be.np(cs.gram_xy)).all() and np.isfinite(be.np(cs.gram_xx)).all()
    np.testing.assert_allclose(be.np(cg.correlation(Xd, precision="float64")), ref_correlation(X), atol=1e-12)


# ============================================================================ zero variance, NaN


@pytest.mark.parametrize("metric", ["pearson", "cosine"])
def test_zero_var_policies(be, metric):
    rng = np.random.default_rng(19)
    X, Y = pair(rng, n=120, p=10, q=140)
    X[:, 3] = 0.0 if metric == "cosine" else 2.5
    Xd, Yd = be.array(X), be.array(Y)
    with pytest.warns(cg.ConstantFeatureWarning, match=r"X has 1 .* feature\(s\) \(first indices \[3\]\)"):
        R = be.np(cg.correlation(Xd, Yd, metric=metric, precision="float64"))
    np.testing.assert_allclose(R, ref_correlation(X, Y, metric=metric), atol=1e-12)
    assert (R[3] == 0).all()
    R = be.np(cg.correlation(Xd, Yd, metric=metric, zero_var="nan", precision="float64"))
    np.testing.assert_array_equal(np.isnan(R), np.isnan(ref_correlation(X, Y, metric=metric, zero_var="nan")))
    v, i = cg.topk_correlation(Xd, Yd, 3, metric=metric, zero_var="nan", precision="float64")
    assert (be.np(i)[3] == -1).all() and np.isnan(be.np(v)[3]).all()
    v, i = cg.topk_correlation(Yd, Xd, 10, metric=metric, zero_var="nan", precision="float64")
    assert (be.np(i)[:, -1] == -1).all() and not (be.np(i) == 3).any()  # never a partner
    rv, ri = ref_topk_correlation(Y, X, 10, metric=metric, zero_var="nan")
    assert_topk_equivalent(be.np(v), be.np(i), rv, ri, rtol=1e-12, atol=1e-12)
    r, c, _ = be.pairs(cg.correlation_pairs(Xd, Yd, -1.0, metric=metric, zero_var="nan"))
    assert len(r) == 9 * 140 and not (r == 3).any()
    with pytest.raises(ValueError, match=r"X has 1 .* feature\(s\) \(first indices \[3\]\)"):
        cg.correlation(Xd, Yd, metric=metric, zero_var="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cg.correlation(Yd, metric=metric)  # no constant feature, no warning


def test_nan_and_inf_inputs_rejected(be):
    rng = np.random.default_rng(20)
    X, Y = pair(rng, n=50, p=5, q=6)
    Xn, Yi = X.copy(), Y.copy()
    Xn[7, 2] = np.nan
    Yi[3, 1] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        cg.correlation(be.array(Xn))
    with pytest.raises(ValueError, match="Y contains NaN or Inf values"):
        cg.topk_correlation(be.array(X), be.array(Yi), 2)
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        cg.correlation_pairs(be.array(Xn), None, 0.5)
    with pytest.raises(ValueError, match="P contains NaN or Inf values"):
        cg.knn(be.array(Xn), k=2)
    with pytest.raises(ValueError, match="Q contains NaN or Inf values"):
        cg.knn(be.array(X), be.array(Yi[:, :5]), k=2, metric="cosine")
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        cg.column_stats(be.array(Xn))
    with pytest.raises(ValueError, match="Y contains NaN or Inf values"):
        cg.CrossStats().update(be.array(X), be.array(Yi))


def test_shape_and_memory_errors(be):
    rng = np.random.default_rng(21)
    X, Y = pair(rng, n=50, p=5, q=6)
    with pytest.raises(ValueError, match=r"X and Y must have the same number of samples \(rows\); got 50 and 49"):
        cg.correlation(be.array(X), be.array(Y[:49]))
    with pytest.raises(ValueError, match=r"X has 1 row\(s\); at least 2 are needed"):
        cg.correlation(be.array(X[:1]))
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        cg.correlation(be.array(X[:, 0]))
    with pytest.raises(ValueError, match="P and Q must have the same number of dimensions"):
        cg.knn(be.array(X), be.array(Y), k=2)
    with pytest.raises(cg.MemoryBudgetError, match=r"standardised \(padded\) copies of the inputs needs"):
        cg.correlation(be.array(X), memory_limit=1000)
    with pytest.raises(cg.MemoryBudgetError, match=r"a dense 5 x 6 result needs"):
        cg.correlation(be.array(X), be.array(Y), memory_limit=128 * 64 * 4 * 2 + 10, precision="float32")
    with pytest.raises(ValueError, match=r"ddof must satisfy 0 <= ddof < n_samples \(50\)"):
        cg.correlation(be.array(X), metric="covariance", ddof=50)


def test_protocol_inputs(be):
    """A bare __cuda_array_interface__ object (results as cupy, else torch)."""
    rng = np.random.default_rng(22)
    X, Y = pair(rng, n=80, p=6, q=7)
    Xd = be.array(X)
    d = A.as_device_array(Xd, "X")

    class CAI:
        def __init__(self, keep):
            self.keep = keep
            self.__cuda_array_interface__ = {"shape": d.shape, "typestr": "<f8", "data": (d.ptr, False), "version": 3,
                                             "strides": tuple(s * 8 for s in d.strides), "stream": be.stream() or None}

    R = cg.correlation(CAI(Xd), be.array(Y), precision="float64")
    np.testing.assert_allclose(any_numpy(R), ref_correlation(X, Y), atol=1e-12)
    R2 = cg.correlation(CAI(Xd), precision="float64")
    np.testing.assert_allclose(any_numpy(R2), ref_correlation(X), atol=1e-12)
    if be.real:
        lib = "cupy" if cupy is not None else "torch"
        assert type(R2).__module__.split(".")[0] == lib


@pytest.mark.cuda
def test_dlpack_inputs(gpu):
    rng = np.random.default_rng(23)
    X = features(rng, 90, 8)
    Xd = gpu.array(X)

    class OnlyDLPack:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, stream=None, **kw):
            return self.a.__dlpack__(stream=stream)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    R = cg.correlation(OnlyDLPack(Xd), precision="float64")
    lib = "cupy" if cupy is not None else "torch"
    assert type(R).__module__.split(".")[0] == lib
    R = cupy.asnumpy(R) if lib == "cupy" else R.cpu().numpy()
    np.testing.assert_allclose(R, ref_correlation(X), atol=1e-12)


# ============================================================================ streams and devices


@pytest.mark.cuda
def test_torch_non_default_stream(gpu):
    if gpu.name != "torch":
        pytest.skip("torch streams")
    rng = np.random.default_rng(24)
    X, Y = pair(rng, n=200, p=30, q=140)
    base_x = torch.as_tensor(X, device="cuda")
    base_y = torch.as_tensor(Y, device="cuda", dtype=torch.float32)
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        # produced on s behind a delay: reading them from any other stream would see NaN
        Xs = torch.full_like(base_x, float("nan"))
        Ys = torch.full_like(base_y, float("nan"))
        torch.cuda._sleep(20_000_000)
        Xs.copy_(base_x)
        Ys.copy_(base_y)
        R = cg.correlation(Xs, Ys, precision="float64")
        v, i = cg.topk_correlation(Xs, Ys, 5)
        S = cg.correlation_pairs(Xs, Ys, 0.3)
        kv, ki = cg.knn(Ys, k=4)
        cs = cg.CrossStats().update(Xs, Ys)
        C = cs.correlation_xy()
        assert torch.cuda.current_stream() == s
    s.synchronize()
    np.testing.assert_allclose(R.cpu().numpy(), ref_correlation(X, Y), atol=1e-12)
    Yr = base_y.double().cpu().numpy()
    rv, ri = ref_topk_correlation(X, Yr, 5)
    assert_topk_equivalent(v.cpu().numpy(), i.cpu().numpy(), rv, ri, rtol=5e-6, atol=5e-6)
    r, c, pv = pairs_from_sparse(S)
    assert_pairs_equivalent(r, c, pv, *ref_pairs(ref_correlation(X, Yr), 0.3), 0.3, rtol=5e-6, atol=5e-6)
    rv, ri = ref_knn(Yr, None, 4)
    assert_topk_equivalent(kv.cpu().numpy(), ki.cpu().numpy(), rv, ri, rtol=1e-5, atol=1e-3, largest=False)
    np.testing.assert_allclose(C.cpu().numpy(), ref_correlation(X, Yr), atol=1e-10)


@pytest.mark.cuda
def test_cupy_non_default_stream(gpu):
    if gpu.name != "cupy":
        pytest.skip("cupy streams")
    rng = np.random.default_rng(25)
    X, Y = pair(rng, n=200, p=30, q=140)
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        Xs = cupy.full(X.shape, cupy.nan)
        Xs[...] = cupy.asarray(X)
        Ys = cupy.asarray(Y)
        R = cg.correlation(Xs, Ys, precision="float64")
        v, i = cg.topk_correlation(Xs, Ys, 5, precision="float64")
        assert cupy.cuda.get_current_stream() == s
    s.synchronize()
    np.testing.assert_allclose(cupy.asnumpy(R), ref_correlation(X, Y), atol=1e-12)
    rv, ri = ref_topk_correlation(X, Y, 5)
    assert_topk_equivalent(cupy.asnumpy(v), cupy.asnumpy(i), rv, ri, rtol=1e-12, atol=1e-12)


@pytest.mark.cuda
def test_mixed_torch_and_cupy_inputs():
    if cupy is None or not torch.cuda.is_available():
        pytest.skip("needs torch with CUDA and cupy")
    rng = np.random.default_rng(26)
    X, Y = pair(rng, n=100, p=10, q=20)
    R = cg.correlation(torch.as_tensor(X, device="cuda"), cupy.asarray(Y), precision="float64")
    assert isinstance(R, torch.Tensor) and R.is_cuda  # the first argument's library
    np.testing.assert_allclose(R.cpu().numpy(), ref_correlation(X, Y), atol=1e-12)


@pytest.mark.cuda
def test_inputs_on_two_devices_are_refused():
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    X = torch.randn(20, 4, device="cuda:0")
    Y = torch.randn(20, 5, device="cuda:1")
    with pytest.raises(ValueError, match=r"X is on cuda:0 but Y is on cuda:1"):
        cg.correlation(X, Y)
    R = cg.correlation(Y.double(), precision="float64")  # and a second device works on its own
    assert R.device == Y.device
    np.testing.assert_allclose(R.cpu().numpy(), np.corrcoef(Y.double().cpu().numpy().T), atol=1e-12)


# ============================================================================ the oracle


def test_reference_product_oracle(be):
    rng = np.random.default_rng(27)
    K, na, nb = 70, 33, 45
    Ah = rng.standard_normal((na, K))  # read as its transposed (K x na) view
    Bh = rng.standard_normal((K, nb))
    Ad, Bd = be.array(Ah, "float32"), be.array(Bh)
    a, b = A.as_device_array(Ad, "A"), A.as_device_array(Bd, "B")
    out = be.array(np.full((na, nb), 7.0))
    o = A.as_device_array(out, "out")
    cu = CE.load()
    cu.reference_product(0, be.stream(), a.ptr, a.code, K, na, a.strides[1], a.strides[0], b.ptr, b.code, nb,
                         b.strides[0], b.strides[1], o.ptr, nb)
    be.synchronize()
    np.testing.assert_allclose(be.np(out), be.np(Ad) @ Bh, rtol=1e-12, atol=1e-12)


# ============================================================================ memcheck


SANITIZER_SCRIPT = r'''
import numpy as np, torch, congruence as cg
from congruence import _cuda_engine as CE
rng = np.random.default_rng(0)
X = torch.as_tensor(rng.standard_normal((200, 150)) + 3, device="cuda")
Y = torch.as_tensor(rng.standard_normal((200, 300)), device="cuda", dtype=torch.float32)
cg.column_stats(X)
for p in ("float32", "tf32", "3xtf32", "bf16", "float64"):
    cg.correlation(X, Y, precision=p)
    cg.topk_correlation(X, Y, 7, precision=p, absolute=True)
    cg.max_correlation(X, Y, precision=p)
cg.topk_correlation(X[:, :10], Y, 33)             # narrow A: several segments + merge
cg.topk_correlation(X, k=149, zero_var="nan")      # k = all candidates
CE.THRESHOLD_INITIAL_CAPACITY = 4
cg.correlation_pairs(X, Y, 0.05)                   # capacity retry
for m in ("sqeuclidean", "inner", "cosine"):
    cg.knn(Y.T[:, :60].contiguous(), k=5, metric=m)
cg.CrossStats(precision="3xtf32").update(X, Y).correlation_xy()
cg.CrossStats(cross_only=True).update(X[:7], Y[:7]).correlation_xy()
cu = CE.load()
out = torch.empty(150, 300, dtype=torch.float64, device="cuda")
cu.reference_product(0, torch.cuda.current_stream().cuda_stream, X.data_ptr(), 3, 200, 150, 150, 1,
                     Y.data_ptr(), 2, 300, 300, 1, out.data_ptr(), 300)
torch.cuda.synchronize()
print("sanitizer script done")
'''


@pytest.mark.cuda
def test_compute_sanitizer_memcheck(tmp_path):
    exe = shutil.which("compute-sanitizer")
    if exe is None:
        pytest.skip("compute-sanitizer is not on PATH")
    if not torch.cuda.is_available():
        pytest.skip("the script uses torch CUDA tensors")
    script = tmp_path / "memcheck_script.py"
    script.write_text(textwrap.dedent(SANITIZER_SCRIPT))
    proc = subprocess.run([exe, "--tool", "memcheck", "--leak-check", "no", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ))
    out = proc.stdout + proc.stderr
    assert "sanitizer script done" in out, out[-4000:]
    assert "ERROR SUMMARY: 0 errors" in out, out[-4000:]
