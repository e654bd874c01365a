"""correlation_pairs (threshold reduction, METHODS.md §1.4) against the float64 oracle."""


import numpy as np
import pytest
import scipy.sparse

import congruence as cg
from reference import assert_pairs_equivalent, pairs_from_sparse, ref_correlation, ref_pairs

torch = pytest.importorskip("torch")

# torch >= 2.x notes once per process that sparse invariant checks are off; not ours to test.
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")


def data(n, p, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)) + offset


def oracle(X, Y, exclude_self=None, metric="pearson", zero_var="zero"):
    R = ref_correlation(X, Y, metric=metric, zero_var=zero_var)
    if exclude_self is None:
        exclude_self = Y is None
    if exclude_self:
        d = min(R.shape)
        R[np.arange(d), np.arange(d)] = np.nan
    return R


def check(X, Y, threshold, *, tol=None, **kw):
    S = cg.correlation_pairs(X, Y, threshold, **kw)
    rows, cols, vals = pairs_from_sparse(S)
    M = oracle(X, Y, exclude_self=kw.get("exclude_self"), metric=kw.get("metric", "pearson"),
               zero_var=kw.get("zero_var", "zero"))
    absolute = kw.get("absolute", False)
    rr, rc, rv = ref_pairs(M, threshold, absolute=absolute)
    f64 = kw.get("precision") == "float64" or (
        kw.get("precision") is None and all(np.asarray(a).dtype == np.float64 for a in (X, Y) if a is not None))
    rtol, atol = tol or ((1e-10, 1e-12) if f64 else (1e-5, 2e-6))
    assert_pairs_equivalent(rows, cols, vals, rr, rc, rv, threshold, rtol=rtol, atol=atol,
                            absolute=absolute, ref_matrix=M)
    assert S.shape == M.shape
    return S, rows, cols, vals


@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("threshold", [-0.1, 0.25, 0.5])
def test_matches_reference(absolute, precision, threshold):
    X, Y = data(30, 25, 1), data(30, 35, 2)
    S, rows, cols, vals = check(X, Y, threshold, absolute=absolute, precision=precision)
    assert isinstance(S, scipy.sparse.coo_array)
    assert S.dtype == np.dtype(precision)
    assert len(rows) > 0
    key = np.abs(vals) if absolute else vals
    assert (key >= threshold).all()


def test_sorted_by_row_then_column():
    X = data(20, 30, 3)
    _, rows, cols, _ = check(X, None, 0.2, absolute=True)
    order = np.lexsort((cols, rows))
    np.testing.assert_array_equal(order, np.arange(len(rows)))
    assert len(set(zip(rows.tolist(), cols.tolist()))) == len(rows)


def test_self_join_excludes_diagonal():
    X = data(20, 15, 4)
    S, rows, cols, vals = check(X, None, -1.0)  # every off-diagonal pair qualifies
    assert not (rows == cols).any()
    assert len(rows) == 15 * 14
    # symmetric set of pairs, equal values
    D = S.toarray()
    np.testing.assert_allclose(D, D.T, atol=1e-14)
    S2, rows2, cols2, vals2 = check(X, None, 0.999, exclude_self=False)
    np.testing.assert_array_equal(rows2, np.arange(15))
    np.testing.assert_array_equal(cols2, np.arange(15))
    assert (vals2 <= 1.0).all()


def test_exclude_self_with_y():
    X, Y = data(20, 10, 5), data(20, 10, 6)
    _, rows, cols, _ = check(X, Y, -1.0, exclude_self=True)
    assert not (rows == cols).any() and len(rows) == 90
    _, rows, cols, _ = check(X, Y, -1.0)
    assert len(rows) == 100


def test_no_pairs():
    X, Y = data(40, 10, 7), data(40, 12, 8)
    S = cg.correlation_pairs(X, Y, 0.99)
    assert S.shape == (10, 12) and S.nnz == 0
    T = cg.correlation_pairs(torch.from_numpy(X), torch.from_numpy(Y), 0.99)
    assert T.shape == (10, 12) and T._nnz() == 0


def test_planted_pairs_are_found_exactly():
    X = data(50, 20, 9)
    Y = data(50, 30, 10)
    Y[:, 7] = X[:, 3] * 2 + 1
    Y[:, 29] = -X[:, 19]
    S = cg.correlation_pairs(X, Y, 0.9, absolute=True)
    rows, cols, vals = pairs_from_sparse(S)
    assert list(zip(rows.tolist(), cols.tolist())) == [(3, 7), (19, 29)]
    np.testing.assert_allclose(vals, [1.0, -1.0], atol=1e-14)
    S = cg.correlation_pairs(X, Y, 0.9)
    assert S.nnz == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_sparse_out(dtype):
    X = torch.randn(30, 12).to(dtype)
    Y = torch.randn(30, 14).to(dtype)
    S = cg.correlation_pairs(X, Y, 0.2, absolute=True)
    assert isinstance(S, torch.Tensor) and S.layout == torch.sparse_coo
    assert S.is_coalesced() and tuple(S.shape) == (12, 14)
    assert S.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert S.indices().dtype == torch.int64
    rows, cols, vals = pairs_from_sparse(S)
    M = oracle(X, Y)
    rr, rc, rv = ref_pairs(M, 0.2, absolute=True)
    tol = (1e-10, 1e-12) if dtype == torch.float64 else (1e-5, 2e-6)
    assert_pairs_equivalent(rows, cols, vals, rr, rc, rv, 0.2, rtol=tol[0], atol=tol[1], absolute=True, ref_matrix=M)
    dense = S.to_dense().numpy()
    np.testing.assert_allclose(dense[rows, cols], vals)


def test_max_pairs_overflow_raises():
    X = data(20, 30, 11)
    n_pairs = int((np.abs(oracle(X, None)) >= 0.1).sum())
    assert n_pairs > 50
    with pytest.raises(cg.MemoryBudgetError, match="max_pairs=50"):
        cg.correlation_pairs(X, None, 0.1, absolute=True, max_pairs=50)
    assert issubclass(cg.MemoryBudgetError, MemoryError)
    S = cg.correlation_pairs(X, None, 0.1, absolute=True, max_pairs=n_pairs)
    assert S.nnz == n_pairs
    with pytest.raises(cg.MemoryBudgetError):
        cg.correlation_pairs(X, None, 0.1, absolute=True, max_pairs=n_pairs - 1)
    assert cg.correlation_pairs(X, None, 0.999, max_pairs=0).nnz == 0


@pytest.mark.parametrize("metric", ["cosine", "covariance"])
def test_other_metrics(metric):
    X, Y = data(25, 10, 12, offset=0.3), data(25, 12, 13, offset=-0.2)
    check(X, Y, 0.2, metric=metric, absolute=True)
    check(X, None, 0.1, metric=metric)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_several_tiles(precision):
    # 2500 features: several row blocks and column tiles (2048 columns per tile)
    X = data(70, 2500, 14)
    X[:, 2400] = X[:, 10] + 0.01 * X[:, 11]
    _, rows, cols, vals = check(X, None, 0.42, absolute=True, precision=precision)
    assert (10, 2400) in set(zip(rows.tolist(), cols.tolist()))
    assert len(rows) > 100


def test_float32_sample_chunking_path():
    rng = np.random.default_rng(15)
    X = (rng.standard_normal((4500, 40)) + 1e3).astype(np.float32)
    X[:, 20:] += 0.1 * X[:, :20]
    check(X, None, 0.02, absolute=True)


def test_zero_var_nan_excludes_constant_features():
    X, Y = data(30, 8, 16), data(30, 6, 17)
    X[:, 3] = 2.0
    Y[:, 0] = -1.0
    S, rows, cols, _ = check(X, Y, -1.0, zero_var="nan")
    assert 3 not in rows and 0 not in cols
    assert len(rows) == 7 * 5


def test_zero_var_zero_constants_have_value_zero():
    X, Y = data(30, 8, 18), data(30, 6, 19)
    X[:, 3] = 2.0
    with pytest.warns(cg.ConstantFeatureWarning):
        S, rows, cols, vals = check(X, Y, -1.0)
    assert len(rows) == 48
    np.testing.assert_array_equal(vals[rows == 3], 0.0)
    with pytest.warns(cg.ConstantFeatureWarning):
        S, rows, cols, vals = check(X, Y, 0.0, absolute=True)  # |0| >= 0 qualifies
    assert (rows == 3).sum() == 6


def test_non_contiguous_and_float16():
    base = data(60, 50, 20)
    X, Y = base[::-2, :20], np.asfortranarray(base)[::2, 20::2].astype(np.float16)
    check(X, Y, 0.3, absolute=True)


def test_y_none_positional():
    X = data(20, 6, 21)
    S1 = cg.correlation_pairs(X, None, 0.1)
    S2 = cg.correlation_pairs(X, X, 0.1, exclude_self=True)
    np.testing.assert_array_equal(S1.toarray(), S2.toarray())
