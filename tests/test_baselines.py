"""congruence.baselines (pure PyTorch) against the float64 NumPy oracles in tests/reference.py."""

import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference import (  # noqa: E402
    assert_pairs_equivalent,
    assert_topk_equivalent,
    ref_column_stats,
    ref_correlation,
    ref_cross_stats,
    ref_knn,
    ref_pairs,
    ref_topk,
    ref_topk_correlation,
)


def _load_baselines():
    try:
        from congruence import baselines as mod
        return mod
    except Exception:  # package not importable (e.g. compiled core not built): load the file
        path = os.path.join(os.path.dirname(__file__), os.pardir, "python", "congruence", "baselines.py")
        spec = importlib.util.spec_from_file_location("congruence_baselines_standalone", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


bl = _load_baselines()

# Per-dtype tolerance for correlation-scale values (|r| <= 1) from data with mu/sigma ~ 3.
TOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 1e-2, torch.bfloat16: 6e-2}


def data(n=64, p=12, seed=0, offset=3.0, dtype=torch.float64):
    """Correlated columns with nonzero means, as float64 numpy and as a torch tensor of dtype."""
    g = np.random.default_rng(seed)
    A = g.normal(size=(n, p)) @ g.normal(size=(p, p)) / np.sqrt(p) + offset * g.normal(size=p)
    return A, torch.from_numpy(A).to(dtype)


def np64(t):
    return t.detach().cpu().to(torch.float64).numpy()


FLOATS = [torch.float64, torch.float32]


# ---------------------------------------------------------------------------------------------
# column_stats, correlation, cross_stats
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ddof", [0, 1])
def test_column_stats(dtype, ddof):
    A, X = data(dtype=dtype, offset=50.0)
    mean, var = bl.column_stats(X, ddof=ddof)
    assert mean.dtype == dtype and var.dtype == dtype and mean.shape == var.shape == (12,)
    ref = ref_column_stats(A, ddof=ddof)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(np64(mean), ref["mean"], rtol=rtol)
    np.testing.assert_allclose(np64(var), ref["var"], rtol=rtol)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("metric", ["pearson", "cosine", "covariance"])
@pytest.mark.parametrize("self_join", [True, False])
def test_correlation(dtype, metric, self_join):
    A, X = data(p=10, dtype=dtype)
    B, Y = data(p=7, seed=1, dtype=dtype)
    R = bl.correlation(X, None if self_join else Y, metric=metric)
    ref = ref_correlation(A, None if self_join else B, metric=metric)
    assert R.dtype == dtype and tuple(R.shape) == ref.shape
    scale = np.abs(ref).max() if metric == "covariance" else 1.0
    np.testing.assert_allclose(np64(R), ref, rtol=0, atol=TOL[dtype] * scale)


def test_correlation_covariance_ddof():
    A, X = data(p=5)
    np.testing.assert_allclose(np64(bl.correlation(X, metric="covariance", ddof=0)),
                               ref_correlation(A, metric="covariance", ddof=0), atol=1e-12)


@pytest.mark.parametrize("dtype, offset, atol", [(torch.float64, 1e6, 1e-9), (torch.float32, 100.0, 2e-4)])
def test_pearson_large_offset_two_pass(dtype, offset, atol):
    g = np.random.default_rng(2)
    Z = g.normal(size=(256, 6))
    Z[:, 1] += Z[:, 0]
    A = Z + offset
    R = bl.correlation(torch.from_numpy(A).to(dtype))
    np.testing.assert_allclose(np64(R), ref_correlation(A), atol=atol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_variance_columns_give_zero_not_nan(dtype):
    A, X = data(p=6, dtype=dtype)
    A[:, 2] = 0.1  # not exactly representable: the computed mean need not be exact
    A[:, 4] = 0.0
    X = torch.from_numpy(A).to(dtype)
    R = bl.correlation(X)
    assert torch.isfinite(R).all()
    ref = ref_correlation(A, zero_var="zero")
    # Between two constant columns the value is not defined by anything; compare the rest.
    off = np.ones_like(ref, dtype=bool)
    off[np.ix_([2, 4], [2, 4])] = False
    np.testing.assert_allclose(np64(R)[off], ref[off], atol=TOL[dtype])
    C = bl.correlation(X, metric="cosine")
    assert torch.isfinite(C).all()
    np.testing.assert_allclose(np64(C)[:, 4], 0.0, atol=0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_stats(dtype):
    A, X = data(p=5, dtype=dtype)
    B, Y = data(p=4, seed=3, dtype=dtype)
    s = bl.cross_stats(X, Y)
    ref = ref_cross_stats(A, B)
    assert s["n"] == 64 and isinstance(s["n"], int)
    rtol = 1e-11 if dtype == torch.float64 else 1e-4
    for name in ("mean_x", "mean_y", "cov_xx", "cov_xy", "cov_yy"):
        assert s[name].dtype == dtype
        scale = np.abs(ref[name]).max()
        np.testing.assert_allclose(np64(s[name]), ref[name], rtol=0, atol=rtol * scale, err_msg=name)


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("absolute", [False, True])
def test_topk_correlation_cross(dtype, absolute):
    A, X = data(p=10, dtype=dtype)
    B, Y = data(p=13, seed=4, dtype=dtype)
    v, i = bl.topk_correlation(X, Y, k=4, absolute=absolute)
    assert v.dtype == dtype and i.dtype == torch.int64 and tuple(v.shape) == (10, 4)
    rv, ri = ref_topk_correlation(A, B, 4, absolute=absolute)
    assert_topk_equivalent(v, i, rv, ri, rtol=0, atol=TOL[dtype], absolute=absolute,
                           ref_matrix=ref_correlation(A, B), check_tie_order=False)


@pytest.mark.parametrize("absolute", [False, True])
def test_topk_correlation_self_excludes_diagonal_and_pads(absolute):
    A, X = data(p=6)
    v, i = bl.topk_correlation(X, k=7, absolute=absolute)  # only 5 candidates per row
    rv, ri = ref_topk_correlation(A, None, 7, absolute=absolute)
    assert (ri[:, 5:] == -1).all()
    R = ref_correlation(A)
    np.fill_diagonal(R, np.nan)
    assert_topk_equivalent(v, i, rv, ri, rtol=0, atol=1e-12, absolute=absolute, ref_matrix=R)
    # exclude_self=False keeps the diagonal: every column is its own best partner
    v, i = bl.topk_correlation(X, k=1, exclude_self=False)
    np.testing.assert_array_equal(i[:, 0].numpy(), np.arange(6))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("self_join", [True, False])
def test_max_correlation(dtype, absolute, self_join):
    A, X = data(p=9, dtype=dtype)
    B, Y = data(p=11, seed=5, dtype=dtype)
    v, i = bl.max_correlation(X, None if self_join else Y, absolute=absolute)
    assert tuple(v.shape) == tuple(i.shape) == (9,) and i.dtype == torch.int64
    rv, ri = ref_topk_correlation(A, None if self_join else B, 1, absolute=absolute)
    R = ref_correlation(A, None if self_join else B)
    if self_join:
        np.fill_diagonal(R, np.nan)
    assert_topk_equivalent(v, i, rv[:, 0], ri[:, 0], rtol=0, atol=TOL[dtype], absolute=absolute,
                           ref_matrix=R)


def test_max_correlation_single_self_column_is_missing():
    _, X = data(p=1)
    v, i = bl.max_correlation(X)
    assert i.tolist() == [-1] and torch.isnan(v).all()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("absolute", [False, True])
def test_correlation_pairs(dtype, absolute):
    A, X = data(p=10, dtype=dtype)
    B = A[:, :8] @ np.random.default_rng(6).normal(size=(8, 8))  # correlated with X, both signs
    Y = torch.from_numpy(B).to(dtype)
    rows, cols, vals = bl.correlation_pairs(X, Y, threshold=0.3, absolute=absolute)
    assert rows.dtype == cols.dtype == torch.int64 and vals.dtype == dtype
    R = ref_correlation(A, B)
    ref = ref_pairs(R, 0.3, absolute=absolute)
    assert len(ref[0]) > 5  # the test means something
    assert_pairs_equivalent(rows, cols, vals, *ref, 0.3, rtol=0, atol=TOL[dtype], absolute=absolute,
                            ref_matrix=R)


def test_correlation_pairs_self_join():
    A, X = data(p=7)
    R = ref_correlation(A)
    rows, cols, vals = bl.correlation_pairs(X, threshold=0.2)
    assert_pairs_equivalent(rows, cols, vals, *ref_pairs(R, 0.2), 0.2, atol=1e-12)
    assert (rows == cols).sum() == 7  # Y=None keeps the diagonal (r = 1) unless asked
    rows, cols, vals = bl.correlation_pairs(X, threshold=0.2, exclude_self=True)
    np.fill_diagonal(R, np.nan)
    assert_pairs_equivalent(rows, cols, vals, *ref_pairs(R, 0.2), 0.2, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# knn
# ---------------------------------------------------------------------------------------------


def _knn_matrix(P, Q, metric):
    if metric == "sqeuclidean":
        return ((P[:, None, :] - Q[None, :, :]) ** 2).sum(-1)
    if metric == "cosine":
        P = P / np.linalg.norm(P, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    return P @ Q.T


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("metric", ["sqeuclidean", "inner", "cosine"])
@pytest.mark.parametrize("self_join", [True, False])
def test_knn(dtype, metric, self_join):
    g = np.random.default_rng(7)
    Pn, Qn = g.normal(size=(30, 5)) + 1.0, g.normal(size=(25, 5)) + 1.0
    P, Q = torch.from_numpy(Pn).to(dtype), torch.from_numpy(Qn).to(dtype)
    v, i = bl.knn(P, None if self_join else Q, k=6, metric=metric)
    assert v.dtype == dtype and i.dtype == torch.int64 and tuple(v.shape) == (30, 6)
    rv, ri = ref_knn(Pn, None if self_join else Qn, k=6, metric=metric)
    D = _knn_matrix(Pn, Pn if self_join else Qn, metric)
    if self_join:
        np.fill_diagonal(D, np.nan)
    tol = 1e-11 if dtype == torch.float64 else 2e-5
    assert_topk_equivalent(v, i, rv, ri, rtol=tol, atol=tol, largest=metric != "sqeuclidean",
                           ref_matrix=D, check_tie_order=False)


def test_knn_self_join_by_index_and_padding():
    # Point 3 duplicates point 0: distance 0 is kept, only the point itself is excluded.
    Pn = np.array([[0.0, 0.0], [1.0, 0.5], [0.2, 2.0], [0.0, 0.0]])
    v, i = bl.knn(torch.from_numpy(Pn), k=5)
    np.testing.assert_array_equal(i[0, :3].numpy(), ref_knn(Pn, k=3)[1][0])
    assert i[0, 0] == 3 and i[3, 0] == 0 and v[0, 0] == 0
    assert (i[:, 3:] == -1).all() and torch.isnan(v[:, 3:]).all()
    assert not (i[:, :3] == torch.arange(4)[:, None]).any()
    # exclude_self=False with Q given: nothing excluded, each point finds itself (or its twin)
    v, i = bl.knn(torch.from_numpy(Pn), torch.from_numpy(Pn), k=1)
    assert (v[:, 0] == 0).all()


# ---------------------------------------------------------------------------------------------
# low precision and errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_runs_in_input_dtype(dtype):
    A, X = data(n=48, p=6, offset=0.5, dtype=dtype)
    B, Y = data(n=48, p=5, seed=8, offset=0.5, dtype=dtype)
    # the oracle sees the rounded inputs
    A, B = np64(X), np64(Y)
    R = bl.correlation(X, Y)
    assert R.dtype == dtype
    np.testing.assert_allclose(np64(R), ref_correlation(A, B), atol=TOL[dtype])
    v, i = bl.topk_correlation(X, Y, k=2)
    assert v.dtype == dtype
    rv, ri = ref_topk_correlation(A, B, 2)
    assert_topk_equivalent(v, i, rv, ri, rtol=0, atol=TOL[dtype], check_tie_order=False)
    v, i = bl.knn(X, k=3, metric="cosine")
    assert v.dtype == dtype and i.dtype == torch.int64
    assert bl.cross_stats(X, Y)["cov_xy"].dtype == dtype


def test_errors():
    _, X = data(p=3)
    with pytest.raises(ValueError):
        bl.correlation(X, X[:10])
    with pytest.raises(ValueError):
        bl.correlation(X, metric="spearman")
    with pytest.raises(ValueError):
        bl.correlation(X[0])
    with pytest.raises(TypeError):
        bl.correlation(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        bl.knn(X, X[:, :2])
    with pytest.raises(ValueError):
        bl.knn(X, metric="manhattan")
