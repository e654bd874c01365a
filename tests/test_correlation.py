"""Dense correlation / cosine / covariance against the float64 oracle (METHODS.md §1.1-1.3)."""

import warnings

import numpy as np
import pytest

import congruence as cg
from reference import ref_correlation

torch = pytest.importorskip("torch")

METRICS = ["pearson", "cosine", "covariance"]


def _np(a):
    if isinstance(a, torch.Tensor):
        return a.detach().numpy()
    return np.asarray(a)


def data(n=50, p=7, seed=0, offset=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)) * rng.uniform(0.5, 2.0, p) + offset * rng.uniform(-2, 2, p)


def assert_close_to_ref(R, ref, precision):
    R = _np(R).astype(np.float64)
    assert R.shape == ref.shape
    scale = max(1.0, np.abs(ref).max())
    tol = 1e-12 if precision == "float64" else 2e-6
    err = np.abs(R - ref).max()
    assert err <= tol * scale, f"max error {err:.3g} > {tol * scale:.3g}"


# ----------------------------------------------------------------------------------- basics


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("self_join", [False, True])
def test_matches_reference(metric, precision, self_join):
    X, Y = data(60, 9, 1), data(60, 5, 2)
    if self_join:
        R, ref = cg.correlation(X, metric=metric, precision=precision), ref_correlation(X, metric=metric)
    else:
        R, ref = cg.correlation(X, Y, metric=metric, precision=precision), ref_correlation(X, Y, metric=metric)
    assert isinstance(R, np.ndarray)
    assert R.dtype == np.dtype(precision)
    assert_close_to_ref(R, ref, precision)


@pytest.mark.parametrize("metric", METRICS)
def test_self_matrix_is_symmetric_with_unit_diagonal(metric):
    X = data(40, 12, 3)
    R = cg.correlation(X, metric=metric)
    np.testing.assert_array_equal(R, R.T)
    if metric != "covariance":
        np.testing.assert_allclose(np.diag(R), 1.0, atol=1e-14)
    else:
        np.testing.assert_allclose(np.diag(R), X.var(axis=0, ddof=1), rtol=1e-12)


def test_x_against_itself_equals_self_join():
    X = data(30, 6, 4)
    np.testing.assert_allclose(cg.correlation(X, X), cg.correlation(X), atol=1e-14)


@pytest.mark.parametrize("ddof", [0, 1, 5])
def test_covariance_ddof(ddof):
    X, Y = data(25, 4, 5), data(25, 3, 6)
    R = cg.correlation(X, Y, metric="covariance", ddof=ddof)
    assert_close_to_ref(R, ref_correlation(X, Y, metric="covariance", ddof=ddof), "float64")
    # ddof cancels in pearson
    np.testing.assert_allclose(cg.correlation(X, Y, ddof=ddof), cg.correlation(X, Y), atol=1e-15)


def test_values_clipped_to_unit_interval():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((200, 1)).astype(np.float32)
    X = np.concatenate([x, x * 3 + 1, -x, x * 1e-3], axis=1)
    for metric in ("pearson", "cosine"):
        R = cg.correlation(X, metric=metric)
        assert np.abs(R).max() <= 1.0
    np.testing.assert_allclose(np.abs(cg.correlation(X)), 1.0, atol=1e-6)


def test_known_values():
    X = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0], [3.0, 6.0, 0.0], [4.0, 8.0, 1.0]])
    R = cg.correlation(X)
    assert R[0, 1] == pytest.approx(1.0, abs=1e-15)
    assert R[0, 2] == pytest.approx(0.4472135954999579, abs=1e-15)
    C = cg.correlation(X, metric="cosine")
    assert C[0, 2] == pytest.approx(6 / np.sqrt(30 * 2), abs=1e-15)
    V = cg.correlation(X, metric="covariance")
    assert V[0, 0] == pytest.approx(5 / 3, abs=1e-15)


# ----------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("precision", [None, "float32", "float64"])
def test_torch_dtypes(dtype, precision):
    X = torch.randn(40, 6, dtype=torch.float64).to(getattr(torch, dtype)) * 2 + 3
    Y = torch.randn(40, 4, dtype=torch.float64).to(getattr(torch, dtype))
    R = cg.correlation(X, Y, precision=precision)
    assert isinstance(R, torch.Tensor) and R.device.type == "cpu"
    expected = precision or ("float64" if dtype == "float64" else "float32")
    assert R.dtype == getattr(torch, expected)
    # the oracle sees the same (rounded) input values
    assert_close_to_ref(R, ref_correlation(X, Y), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_dtypes(dtype):
    X = data(45, 5, 8).astype(dtype)
    R = cg.correlation(X, metric="cosine")
    expected = "float64" if dtype == np.float64 else "float32"
    assert isinstance(R, np.ndarray) and R.dtype == np.dtype(expected)
    assert_close_to_ref(R, ref_correlation(X, metric="cosine"), expected)


def test_mixed_dtypes_default_to_float32():
    X, Y = data(20, 3, 9), data(20, 2, 10).astype(np.float16)
    R = cg.correlation(X, Y)
    assert R.dtype == np.float32
    assert_close_to_ref(R, ref_correlation(X, Y), "float32")
    assert cg.correlation(X, Y, precision="float64").dtype == np.float64


def test_requires_grad_tensors():
    X = torch.randn(30, 4, dtype=torch.float64, requires_grad=True)
    Y = torch.randn(30, 3, dtype=torch.float32, requires_grad=True)
    R = cg.correlation(X, Y)
    assert isinstance(R, torch.Tensor) and not R.requires_grad
    assert_close_to_ref(R, ref_correlation(X, Y), "float32")
    R64 = cg.correlation(X)
    assert R64.dtype == torch.float64
    assert_close_to_ref(R64, ref_correlation(X), "float64")


# ----------------------------------------------------------------------------------- strides


def _layouts(seed=11):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((60, 40)) + 2
    return {
        "fortran": np.asfortranarray(base[:, :9]),
        "transpose_view": base[:9].T,
        "row_step": base[::3, :9],
        "col_step": base[:, ::4],
        "both_steps": base[1::2, 3::5],
        "negative_rows": base[::-1, :9],
        "negative_both": base[::-2, ::-3],
        "fortran_steps": np.asfortranarray(base)[::2, ::-2],
    }


@pytest.mark.parametrize("layout", list(_layouts()))
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_non_contiguous_numpy(layout, precision):
    X = _layouts()[layout]
    n = X.shape[0]
    Y = np.random.default_rng(12).standard_normal((2 * n, 14))[::-2, ::2]  # negative row stride
    before = X.copy()
    assert_close_to_ref(cg.correlation(X, precision=precision), ref_correlation(X), precision)
    assert_close_to_ref(cg.correlation(X, Y, precision=precision), ref_correlation(X, Y), precision)
    np.testing.assert_array_equal(X, before)  # read in place, never written


def test_non_contiguous_torch():
    base = torch.randn(50, 30, dtype=torch.float64)
    for X in (base.t().contiguous().t(), base[::2, 1::3], base.t()[:, ::3], base[:, 5:12]):
        assert_close_to_ref(cg.correlation(X), ref_correlation(X), "float64")
    bf = torch.randn(30, 50).to(torch.bfloat16).t()[::2]
    assert_close_to_ref(cg.correlation(bf), ref_correlation(bf), "float32")


def test_zero_stride_broadcast_columns():
    rng = np.random.default_rng(13)
    B = np.broadcast_to(rng.standard_normal((25, 1)), (25, 4))  # read-only, stride 0
    np.testing.assert_allclose(cg.correlation(B), 1.0, atol=1e-14)
    T = torch.randn(25, 1, dtype=torch.float64).expand(25, 3)
    np.testing.assert_allclose(cg.correlation(T).numpy(), 1.0, atol=1e-14)


def test_array_protocol_and_list_inputs():
    X = data(12, 3, 14)

    class Wrapped:
        def __init__(self, a):
            self._a = a

        def __array__(self, dtype=None, copy=None):
            return self._a

    R = cg.correlation(Wrapped(X))
    assert isinstance(R, np.ndarray)
    assert_close_to_ref(R, ref_correlation(X), "float64")
    assert_close_to_ref(cg.correlation(X.tolist()), ref_correlation(X), "float64")


# ----------------------------------------------------------------------------------- accuracy


def test_float32_offset_accuracy():
    # METHODS §1.2: float32 data with |mean|/std = 1e3 must not lose the (1e3)^2 the naive
    # one-pass formula loses; requirement: max error <= 1e-6 against float64.
    rng = np.random.default_rng(15)
    Z = rng.standard_normal((4096, 64))
    Z[:, 32:] = Z[:, :32] @ rng.standard_normal((32, 32)) * 0.2 + Z[:, 32:]  # some structure
    X = (Z + 1e3).astype(np.float32)
    ref = ref_correlation(X)
    R = cg.correlation(X)
    assert R.dtype == np.float32
    assert np.abs(R.astype(np.float64) - ref).max() <= 1e-6
    Rx = cg.correlation(X[:, :40], X[:, 20:])
    assert np.abs(Rx.astype(np.float64) - ref[:40, 20:]).max() <= 1e-6
    C = cg.correlation(X, metric="covariance")
    ref_c = ref_correlation(X, metric="covariance")
    assert np.abs(C - ref_c).max() <= 1e-6 * np.abs(ref_c).max()


def test_float32_sample_chunking_path():
    # n_samples > 4096: float32 products are summed over <= 4096 samples, then in float64.
    rng = np.random.default_rng(16)
    X = (rng.standard_normal((6000, 24)) * 0.5 + 300).astype(np.float32)
    Y = (rng.standard_normal((6000, 10)) + X[:, :10] * 0.3).astype(np.float32)
    # The documented float32 bound is ~1e-7·sqrt(min(n, 4096)) (pairwise.py). Uncentred cosine of
    # offset data sums 4096 products near 1/4096 each, so its rounding walk is the largest; it
    # reaches 1.9e-6 with OpenBLAS's SkylakeX (AVX-512) sgemm and stays below 1e-6 with Haswell's.
    bound = 1e-7 * np.sqrt(4096)
    for metric in METRICS:
        ref = ref_correlation(X, Y, metric=metric)
        err = np.abs(cg.correlation(X, Y, metric=metric) - ref).max() / max(1.0, np.abs(ref).max())
        assert err <= (bound if metric == "cosine" else 1e-6), metric
    ref = ref_correlation(X)
    assert np.abs(cg.correlation(X) - ref).max() <= 1e-6


def test_dense_blocks_crossed():
    # more features than one dense tile (4096) in float32: several output blocks, symmetric path
    rng = np.random.default_rng(17)
    X = rng.standard_normal((6, 4200)).astype(np.float32)
    R = cg.correlation(X)
    ref = ref_correlation(X)
    assert np.abs(R - ref).max() <= 2e-6
    assert np.array_equal(R, R.T)
    R2 = cg.correlation(X[:, :4150], X[:, 4000:])
    assert np.abs(R2 - ref[:4150, 4000:]).max() <= 2e-6


# ----------------------------------------------------------------------------------- zero variance


def _with_constants(seed=18):
    X = data(30, 6, seed)
    X[:, 1] = 4.5
    X[:, 4] = -1e7
    Y = data(30, 4, seed + 1)
    Y[:, 2] = 0.0
    return X, Y


@pytest.mark.parametrize("metric", ["pearson", "cosine"])
def test_zero_var_zero_warns_and_fills_zero(metric):
    X, Y = _with_constants()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        R = cg.correlation(X, Y, metric=metric)
    msgs = [str(x.message) for x in w if issubclass(x.category, cg.ConstantFeatureWarning)]
    if metric == "pearson":
        assert len(msgs) == 2
        assert msgs[0].startswith("X has 2 constant") and msgs[1].startswith("Y has 1 constant")
    else:  # only the all-zero column has zero norm
        assert len(msgs) == 1 and msgs[0].startswith("Y has 1 zero-norm")
    ref = ref_correlation(X, Y, metric=metric, zero_var="zero")
    assert_close_to_ref(R, ref, "float64")
    assert not np.isnan(R).any()
    if metric == "pearson":
        assert (R[[1, 4], :] == 0).all()
    assert (R[:, 2] == 0).all()


def test_zero_var_warning_class_is_userwarning():
    assert issubclass(cg.ConstantFeatureWarning, UserWarning)
    X, _ = _with_constants()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cg.correlation(X)
    cats = [x.category for x in w]
    assert cats.count(cg.ConstantFeatureWarning) == 1
    assert "first indices [1, 4]" in str(w[0].message)


@pytest.mark.parametrize("metric", ["pearson", "cosine"])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_zero_var_nan(metric, precision):
    X, Y = _with_constants()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "nan" does not warn
        R = cg.correlation(X, Y, metric=metric, zero_var="nan", precision=precision)
    ref = ref_correlation(X, Y, metric=metric, zero_var="nan")
    np.testing.assert_array_equal(np.isnan(R), np.isnan(ref))
    finite = ~np.isnan(ref)
    assert np.abs(R[finite] - ref[finite]).max() <= (1e-12 if precision == "float64" else 2e-6)
    assert np.isnan(R[:, 2]).all()
    if metric == "pearson":
        assert np.isnan(R[[1, 4]]).all() and not np.isnan(R[[0, 2, 3, 5]][:, [0, 1, 3]]).any()


def test_zero_var_nan_self():
    X, _ = _with_constants()
    R = cg.correlation(X, zero_var="nan")
    assert np.isnan(R[1]).all() and np.isnan(R[:, 4]).all()
    assert R[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("which", ["X", "Y"])
def test_zero_var_raise(which):
    X, Y = _with_constants()
    if which == "X":
        with pytest.raises(ValueError, match=r"X has 2 constant .*first indices \[1, 4\]"):
            cg.correlation(X, Y[:, [0, 1]], zero_var="raise")
    else:
        with pytest.raises(ValueError, match=r"Y has 1 zero-norm"):
            cg.correlation(data(30, 3, 21), Y, metric="cosine", zero_var="raise")


def test_covariance_always_defined():
    X, Y = _with_constants()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for zv in ("zero", "nan", "raise"):
            C = cg.correlation(X, Y, metric="covariance", zero_var=zv)
            assert_close_to_ref(C, ref_correlation(X, Y, metric="covariance"), "float64")
            assert (C[1] == 0).all() and (C[:, 2] == 0).all()


def test_no_constant_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cg.correlation(data(10, 3, 19), zero_var="zero")


def test_near_constant_but_not_constant_is_correlated():
    # tiny relative spread (1e-6 of the offset) is still a real feature in float64
    rng = np.random.default_rng(20)
    x = rng.standard_normal(100)
    X = np.stack([1e6 + 1e-3 * x, x], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R = cg.correlation(X)
    assert R[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_zero_var_warning_points_at_caller():
    X, _ = _with_constants()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cg.correlation(X)
        cg.topk_correlation(X, k=1)
    assert len(w) == 2
    assert all(x.filename == __file__ for x in w), [x.filename for x in w]
