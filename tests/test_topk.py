"""topk_correlation / max_correlation against the float64 oracle (METHODS.md §1.4)."""


import numpy as np
import pytest

import congruence as cg
from reference import assert_topk_equivalent, ref_correlation, ref_topk_correlation

torch = pytest.importorskip("torch")


def data(n, p, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)) + offset


def ref_matrix(X, Y=None, axis=1, exclude_self=None, metric="pearson", zero_var="zero"):
    """Dense oracle matrix oriented like the output rows, excluded entries NaN."""
    R = ref_correlation(X, Y, metric=metric, zero_var=zero_var)
    if axis == 0:
        R = R.T.copy()
    if exclude_self is None:
        exclude_self = Y is None
    if exclude_self:
        d = min(R.shape)
        R[np.arange(d), np.arange(d)] = np.nan
    return R


def check(X, Y=None, k=4, *, tol=None, **kw):
    precision = kw.get("precision")
    v, i = cg.topk_correlation(X, Y, k, **kw)
    kw.pop("precision", None)
    kw.pop("num_threads", None)
    kw.pop("memory_limit", None)
    rv, ri = ref_topk_correlation(X, Y, k=k, **kw)
    M = ref_matrix(X, Y, axis=kw.get("axis", 1), exclude_self=kw.get("exclude_self"),
                   metric=kw.get("metric", "pearson"), zero_var=kw.get("zero_var", "zero"))
    f64 = precision == "float64" or (precision is None and np.asarray(X).dtype == np.float64
                                     and (Y is None or np.asarray(Y).dtype == np.float64))
    rtol, atol = tol or ((1e-10, 1e-12) if f64 else (1e-5, 2e-6))
    assert_topk_equivalent(v, i, rv, ri, rtol=rtol, atol=atol, absolute=kw.get("absolute", False), ref_matrix=M)
    return v, i


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_matches_reference(axis, absolute, precision):
    X, Y = data(40, 13, 1), data(40, 17, 2)
    v, i = check(X, Y, 5, axis=axis, absolute=absolute, precision=precision)
    n_rows = 13 if axis == 1 else 17
    assert v.shape == i.shape == (n_rows, 5)
    assert v.dtype == np.dtype(precision) and i.dtype == np.int64


@pytest.mark.parametrize("metric", ["cosine", "covariance"])
@pytest.mark.parametrize("absolute", [False, True])
def test_other_metrics(metric, absolute):
    X, Y = data(30, 8, 3, offset=0.5), data(30, 11, 4, offset=-0.3) * 3
    check(X, Y, 3, metric=metric, absolute=absolute)
    check(X, None, 3, metric=metric, absolute=absolute, axis=0)


@pytest.mark.parametrize("axis", [0, 1])
def test_self_join_excludes_diagonal_by_default(axis):
    X = data(25, 10, 5)
    v, i = check(X, None, 9, axis=axis)  # k = every other feature
    for r in range(10):
        assert r not in i[r]
        assert sorted(i[r].tolist()) == [c for c in range(10) if c != r]


def test_exclude_self_false_includes_self():
    X = data(25, 10, 6)
    v, i = check(X, None, 3, exclude_self=False)
    np.testing.assert_array_equal(i[:, 0], np.arange(10))
    np.testing.assert_allclose(v[:, 0], 1.0, atol=1e-14)


@pytest.mark.parametrize("axis", [0, 1])
def test_exclude_self_true_with_y(axis):
    X, Y = data(25, 7, 7), data(25, 7, 8)
    _, i = check(X, Y, 6, exclude_self=True, axis=axis)
    assert all(r not in i[r] for r in range(7))
    _, i2 = check(X, Y, 7, exclude_self=False, axis=axis)  # k == all candidates


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_ties_go_to_lowest_index(precision):
    X = data(20, 5, 9)
    # exact duplicates: columns 5, 6 copy 1; column 7 copies 3 (identical standardised panels)
    D = np.concatenate([X, X[:, [1, 1, 3]]], axis=1)
    v, i = cg.topk_correlation(D, k=3, precision=precision)
    assert i[1, :2].tolist() == [5, 6]
    assert i[5, :2].tolist() == [1, 6] and i[6, :2].tolist() == [1, 5]
    assert i[3, 0] == 7 and i[7, 0] == 3
    assert v[1, 0] == v[1, 1]
    mv, mi = cg.max_correlation(D, precision=precision)
    np.testing.assert_array_equal(mi[[1, 3, 5, 6, 7]], [5, 7, 1, 1, 3])
    # without exclusion: self and duplicate tie at 1, the lower index first
    _, i = cg.topk_correlation(D, k=3, exclude_self=False, precision=precision)
    assert i[6, :3].tolist() == [1, 5, 6] and i[1, :3].tolist() == [1, 5, 6]
    # ties against Y: several identical columns in Y
    Y = np.concatenate([X[:, [2]], X[:, [0]], X[:, [0]], X[:, [2]]], axis=1)
    _, i = cg.topk_correlation(X, Y, k=2, precision=precision)
    assert i[0].tolist() == [1, 2] and i[2].tolist() == [0, 3]


def test_absolute_ties_with_negated_columns():
    X = data(30, 4, 10)
    D = np.concatenate([-X[:, [2]], X, -X[:, [0]]], axis=1)  # 0 = -x2, 1..4 = x0..x3, 5 = -x0
    v, i = cg.topk_correlation(D, k=2, absolute=True)
    assert i[1, 0] == 5 and v[1, 0] == pytest.approx(-1.0)
    assert i[3, 0] == 0 and v[3, 0] == pytest.approx(-1.0)
    _, i = cg.topk_correlation(D, D[:, [5, 1, 1]], k=3, absolute=True, axis=1)
    assert i[1].tolist() == [0, 1, 2]  # |-1| == |1| == |1|: index order
    check(D, None, 3, absolute=True)


def test_k_equals_number_of_candidates():
    X, Y = data(20, 6, 11), data(20, 9, 12)
    v, i = check(X, Y, 9)
    for r in range(6):
        assert sorted(i[r].tolist()) == list(range(9))
        assert np.all(np.diff(v[r]) <= 0)
    v, i = check(X, Y, 6, axis=0)
    assert (np.sort(i, axis=1) == np.arange(6)).all()


def test_descending_order_and_signed_values_with_absolute():
    X = data(40, 6, 13)
    Y = np.concatenate([X[:, :3] * -1 + 0.3 * data(40, 3, 14), X[:, 3:] + 0.3 * data(40, 3, 15)], axis=1)
    v, i = cg.topk_correlation(X, Y, k=6, absolute=True)
    assert (np.diff(np.abs(v), axis=1) <= 0).all()
    assert (v[:3, 0] < -0.8).all() and (v[3:, 0] > 0.8).all()
    np.testing.assert_array_equal(i[:, 0], np.arange(6))


# --------------------------------------------------------------------------- tiles and blocks


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("axis", [0, 1])
def test_several_tiles_x_vs_y(precision, axis):
    # 2500 candidate columns cross the 2048-column tile; axis=0 has 2500 rows -> 3 row blocks
    X = data(70, 30, 16).astype(np.float32 if precision == "float32" else np.float64)
    Y = data(70, 2500, 17)
    check(X, Y, 6, axis=axis, precision=precision, absolute=(axis == 0))


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_several_tiles_self_join(precision):
    X = data(70, 2500, 18)
    # plant a few exact duplicates and anti-duplicates across tile boundaries
    X[:, 2300] = X[:, 5]
    X[:, 2047] = X[:, 2049]
    X[:, 1500] = -X[:, 3]
    v, i = check(X, None, 3, precision=precision)
    assert i[5, 0] == 2300 and i[2300, 0] == 5
    assert i[2047, 0] == 2049 and i[2049, 0] == 2047
    v, i = cg.max_correlation(X, absolute=True, precision=precision)
    assert i[3] == 1500 and v[3] == pytest.approx(-1.0, abs=1e-6)


def test_small_memory_limit_uses_small_tiles():
    # A tight budget forces smaller tiles than the defaults: same answer.
    X = data(40, 600, 19)
    panel = X.size * 8
    v1, i1 = cg.topk_correlation(X, k=4)
    v2, i2 = cg.topk_correlation(X, k=4, memory_limit=panel + 300_000)
    np.testing.assert_allclose(v1, v2, atol=1e-14)
    np.testing.assert_array_equal(i1, i2)
    check(X, None, 4, memory_limit=panel + 300_000)


def test_float32_sample_chunking_path():
    rng = np.random.default_rng(20)
    X = (rng.standard_normal((5000, 150)) + 500).astype(np.float32)
    X[:, 100:] += X[:, :50] * 0.5
    check(X, None, 3)
    check(X[:, :60], X[:, 60:], 3, axis=0, absolute=True)


# --------------------------------------------------------------------------- zero variance


def _with_constant_columns():
    X = data(30, 8, 21)
    X[:, 2] = 1.0
    X[:, 6] = -3.0
    return X


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_zero_var_nan_rows_and_columns(axis, precision):
    X = _with_constant_columns()
    Y = data(30, 5, 22)
    Y[:, 4] = 2.0
    v, i = cg.topk_correlation(X, Y, k=4, axis=axis, zero_var="nan", precision=precision)
    bad_rows = [2, 6] if axis == 1 else [4]
    bad_cols = [4] if axis == 1 else [2, 6]
    assert np.isnan(v[bad_rows]).all() and (i[bad_rows] == -1).all()
    assert not np.isin(i, bad_cols).any()
    good = [r for r in range(v.shape[0]) if r not in bad_rows]
    assert (i[good] >= 0).all() and not np.isnan(v[good]).any()
    check(X, Y, 4, axis=axis, zero_var="nan", precision=precision)


def test_zero_var_nan_missing_slots():
    X = _with_constant_columns()
    # self join: 8 columns, 2 constant, minus self -> 5 valid candidates for good rows
    v, i = cg.topk_correlation(X, k=7, zero_var="nan")
    good = [0, 1, 3, 4, 5, 7]
    assert (i[good, :5] >= 0).all() and (i[good, 5:] == -1).all()
    assert np.isnan(v[good, 5:]).all()
    check(X, None, 7, zero_var="nan")
    mv, mi = cg.max_correlation(X, zero_var="nan")
    assert mi[2] == -1 and np.isnan(mv[2]) and mi[6] == -1
    assert (mi[good] >= 0).all() and not np.isin(mi, [2, 6]).any()


def test_zero_var_zero_constants_are_zero_valued_candidates():
    X = _with_constant_columns()
    with pytest.warns(cg.ConstantFeatureWarning):
        v, i = cg.topk_correlation(X, k=7)
    np.testing.assert_array_equal(v[2], 0.0)
    assert i[2].tolist() == [0, 1, 3, 4, 5, 6, 7]  # all ties at 0: index order
    with pytest.warns(cg.ConstantFeatureWarning):
        check(X, None, 7)


def test_zero_var_raise():
    with pytest.raises(ValueError, match="X has 2 constant"):
        cg.topk_correlation(_with_constant_columns(), k=2, zero_var="raise")


# --------------------------------------------------------------------------- max, types


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("absolute", [False, True])
def test_max_correlation_matches_reference(axis, absolute):
    X, Y = data(35, 12, 23), data(35, 9, 24)
    v, i = cg.max_correlation(X, Y, axis=axis, absolute=absolute)
    n = 12 if axis == 1 else 9
    assert v.shape == i.shape == (n,)
    rv, ri = ref_topk_correlation(X, Y, k=1, axis=axis, absolute=absolute)
    assert_topk_equivalent(v, i, rv[:, 0], ri[:, 0], rtol=1e-10, atol=1e-12, absolute=absolute,
                           ref_matrix=ref_matrix(X, Y, axis=axis))
    tv, ti = cg.topk_correlation(X, Y, 1, axis=axis, absolute=absolute)
    np.testing.assert_array_equal(i, ti[:, 0])


def test_torch_in_torch_out():
    X = torch.randn(30, 10, dtype=torch.float32, requires_grad=True)
    Y = torch.randn(30, 6, dtype=torch.float16)
    v, i = cg.topk_correlation(X, Y, k=3)
    assert isinstance(v, torch.Tensor) and isinstance(i, torch.Tensor)
    assert v.dtype == torch.float32 and i.dtype == torch.int64 and v.shape == (10, 3)
    rv, ri = ref_topk_correlation(X, Y, k=3)
    assert_topk_equivalent(v, i, rv, ri, ref_matrix=ref_correlation(X, Y))
    mv, mi = cg.max_correlation(X.to(torch.bfloat16))
    assert isinstance(mv, torch.Tensor) and mv.shape == (10,) and mi.dtype == torch.int64
    v64, _ = cg.topk_correlation(X.double(), k=2)
    assert v64.dtype == torch.float64


def test_non_contiguous_inputs():
    base = data(80, 40, 25)
    X, Y = base[::-2, ::3], np.asfortranarray(base)[::2, 1::2]
    check(X, Y, 4)
    check(X, Y, 4, axis=0, precision="float32")


def test_values_are_clipped():
    x = data(50, 1, 26)
    X = np.concatenate([x, 2 * x + 1, x * 1e-4, -x], axis=1).astype(np.float32)
    v, _ = cg.topk_correlation(X, k=3, absolute=True)
    assert np.abs(v).max() <= 1.0


# Regression: two samples, every correlation is exactly ±1 mathematically; the raw products are
# -1.0 for feature 2 and -1.0000000000000002 for features 0, 1, 3. Ranking them before clamping to
# [-1, 1] returned an exact tie out of index order ([2, 0, 1, 3]).
_TWO_SAMPLE_X = np.array([[-0.010223388671875, -0.01474761962890625, -0.00469207763671875, -0.00426483154296875],
                          [-0.0006394386291503906, 0.004749298095703125, -0.00403594970703125,
                           -0.0012731552124023438]])
_TWO_SAMPLE_Y = np.array([[-0.005367279052734375], [-0.006717681884765625]])


def test_ties_created_by_clipping_go_to_lowest_index():
    R = cg.correlation(_TWO_SAMPLE_Y, _TWO_SAMPLE_X)
    np.testing.assert_array_equal(R, -1.0)  # all four are exactly equal as returned
    v, i = cg.topk_correlation(_TWO_SAMPLE_Y, _TWO_SAMPLE_X, k=4)
    np.testing.assert_array_equal(v, -1.0)
    assert i[0].tolist() == [0, 1, 2, 3]
    mv, mi = cg.max_correlation(_TWO_SAMPLE_Y, _TWO_SAMPLE_X)
    assert mi[0] == 0
