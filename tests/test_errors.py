"""Every error path: a clear ValueError / TypeError / MemoryBudgetError that names the argument
(DESIGN.md §3). Never a silent NaN, never a crash."""

import numpy as np
import pytest

import congruence as cg

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((10, 3))
Y = RNG.standard_normal((10, 4))

# Feature functions with a uniform (X, Y, **kw) signature.
FEATURE_FUNCS = {
    "correlation": lambda X, Y=None, **kw: cg.correlation(X, Y, **kw),
    "topk_correlation": lambda X, Y=None, **kw: cg.topk_correlation(X, Y, 2, **kw),
    "max_correlation": lambda X, Y=None, **kw: cg.max_correlation(X, Y, **kw),
    "correlation_pairs": lambda X, Y=None, **kw: cg.correlation_pairs(X, Y, 0.5, **kw),
}
FUNCS = list(FEATURE_FUNCS)


def feature(name):
    return FEATURE_FUNCS[name]


def with_value(A, value, at=(3, 1)):
    B = A.copy()
    B[at] = value
    return B


# ----------------------------------------------------------------------------- shapes and samples


@pytest.mark.parametrize("fn", FUNCS)
def test_mismatched_sample_counts(fn):
    with pytest.raises(ValueError, match=r"X and Y must have the same number of samples \(rows\); got 10 and 9"):
        feature(fn)(X, Y[:9])


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf(fn, bad):
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        feature(fn)(with_value(X, bad), Y)
    with pytest.raises(ValueError, match="Y contains NaN or Inf values"):
        feature(fn)(X, with_value(Y, bad))
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        feature(fn)(with_value(X, bad, at=(9, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_other_entry_points(bad):
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        cg.column_stats(with_value(X, bad))
    with pytest.raises(ValueError, match="P contains NaN or Inf values"):
        cg.knn(with_value(X, bad))
    with pytest.raises(ValueError, match="Q contains NaN or Inf values"):
        cg.knn(X, with_value(X, bad, at=(0, 0)))
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        cg.correlation(torch.from_numpy(with_value(X, bad)).float())
    with pytest.raises(ValueError, match="X contains NaN or Inf values"):
        cg.correlation(with_value(X, bad).astype(np.float16)[::-1])


@pytest.mark.parametrize("fn", FUNCS)
def test_fewer_than_two_samples(fn):
    with pytest.raises(ValueError, match=r"X has 1 row\(s\); at least 2 are needed"):
        feature(fn)(X[:1])
    with pytest.raises(ValueError, match=r"Y has 1 row\(s\); at least 2 are needed"):
        feature(fn)(X, Y[:1])  # Y is checked before the sample counts are compared


def test_fewer_than_two_samples_column_stats():
    with pytest.raises(ValueError, match=r"X has 1 row\(s\); at least 2 are needed"):
        cg.column_stats(X[:1])


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("shape", [(0, 3), (5, 0), (0, 0)])
def test_empty_arrays(fn, shape):
    with pytest.raises(ValueError, match=r"X is empty \(shape"):
        feature(fn)(np.empty(shape))
    with pytest.raises(ValueError, match=r"Y is empty \(shape"):
        feature(fn)(X[:5], np.empty((5, 0)))


def test_empty_arrays_other_entry_points():
    with pytest.raises(ValueError, match="X is empty"):
        cg.column_stats(np.empty((0, 2)))
    with pytest.raises(ValueError, match="P is empty"):
        cg.knn(np.empty((0, 2)))
    with pytest.raises(ValueError, match="Q is empty"):
        cg.knn(X, np.empty((0, 3)))
    with pytest.raises(ValueError, match="X is empty"):
        cg.CrossStats().update(np.empty((0, 2)), np.empty((0, 2)))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("shape", [(10,), (2, 5, 3), ()])
def test_wrong_ndim(fn, shape):
    A = RNG.standard_normal(shape)
    with pytest.raises(ValueError, match=r"X must be 2-D \(n_samples, n_features\); got shape"):
        feature(fn)(A)
    if len(shape) == 1:
        with pytest.raises(ValueError, match="Y must be 2-D"):
            feature(fn)(X, Y[:, 0])


def test_wrong_ndim_other_entry_points():
    with pytest.raises(ValueError, match="X must be 2-D"):
        cg.column_stats(X[:, 0])
    with pytest.raises(ValueError, match=r"P must be 2-D \(n_points, n_dims\)"):
        cg.knn(X[None])
    with pytest.raises(ValueError, match="Q must be 2-D"):
        cg.knn(X, X[0])
    with pytest.raises(ValueError, match="Y must be 2-D"):
        cg.CrossStats().update(X, Y[None])


# ----------------------------------------------------------------------------- dtypes and types


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.complex128])
def test_non_float_numpy_dtypes(fn, dtype):
    with pytest.raises(TypeError, match=r"X must hold floating-point data .* got dtype"):
        feature(fn)((X * 3).astype(dtype))
    with pytest.raises(TypeError, match=r"Y must hold floating-point data"):
        feature(fn)(X, (Y * 3).astype(dtype))


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool", "complex64", "uint8"])
def test_non_float_torch_dtypes(dtype):
    t = torch.from_numpy(X * 3).to(getattr(torch, dtype))
    with pytest.raises(TypeError, match=r"X must be a floating-point tensor .* got torch\."):
        cg.correlation(t)
    with pytest.raises(TypeError, match=r"Y must be a floating-point tensor"):
        cg.topk_correlation(torch.from_numpy(X), t, 1)
    with pytest.raises(TypeError, match=r"P must be a floating-point tensor"):
        cg.knn(t)


def test_non_float_other_entry_points():
    with pytest.raises(TypeError, match="X must hold floating-point data"):
        cg.column_stats(X.astype(np.int16))
    with pytest.raises(TypeError, match="Q must hold floating-point data"):
        cg.knn(X, X.astype(bool))
    with pytest.raises(TypeError, match="X must hold floating-point data"):
        cg.CrossStats().update(X.astype(np.complex128), Y)


@pytest.mark.parametrize("obj", [None, "abc", object(), {"a": 1}])
def test_not_an_array(obj):
    with pytest.raises(TypeError, match=r"^X (must be an array|could not be converted)"):
        cg.correlation(obj)
    with pytest.raises(TypeError, match=r"^P (must be an array|could not be converted)"):
        cg.knn(obj)


def test_object_arrays_rejected():
    with pytest.raises(TypeError, match="X"):
        cg.correlation(np.array([[1.0, "a"], [2.0, 3.0]], dtype=object))


# ----------------------------------------------------------------------------- GPU inputs


class FakeCudaArray:
    """Looks like a cupy / numba device array."""

    __cuda_array_interface__ = {"shape": (10, 3), "typestr": "<f4", "data": (0, False), "version": 3}

    def __array__(self, *a, **k):  # pragma: no cover - must never be used
        raise AssertionError("a GPU array must not be copied to the host")


class FakeDLPackGPU:
    """A DLPack producer on device type 2 (kDLCUDA)."""

    def __dlpack__(self, stream=None, **kw):  # pragma: no cover - must never be used
        raise AssertionError("a GPU array must not be imported")

    def __dlpack_device__(self):
        return (2, 0)

    def __array__(self, *a, **k):  # pragma: no cover
        raise AssertionError("a GPU array must not be copied to the host")


@pytest.mark.parametrize("fake", [FakeCudaArray, FakeDLPackGPU])
def test_mixed_host_and_gpu_inputs_raise_clearly(fake):
    g = fake()
    for fn in FUNCS:
        with pytest.raises(ValueError, match=r"X is a host array but Y is a GPU array"):
            feature(fn)(X, g)
        with pytest.raises(ValueError, match=r"X is a GPU array but Y is a host array"):
            feature(fn)(g, X)
    with pytest.raises(ValueError, match=r"P is a host array but Q is a GPU array"):
        cg.knn(X, g)
    with pytest.raises(ValueError, match=r"Y is a GPU array"):
        cg.CrossStats().update(X, g)


@pytest.mark.skipif(cg.cuda_available(), reason="checks the behaviour without a usable CUDA device")
@pytest.mark.parametrize("fake", [FakeCudaArray, FakeDLPackGPU])
def test_gpu_inputs_without_cuda_raise_clearly(fake):
    g = fake()
    for fn in FUNCS:
        with pytest.raises(ValueError, match=r"X is a GPU array.*host"):
            feature(fn)(g)
    with pytest.raises(ValueError, match=r"X is a GPU array"):
        cg.column_stats(g)
    with pytest.raises(ValueError, match=r"P is a GPU array"):
        cg.knn(g)
    with pytest.raises(ValueError, match=r"X is a GPU array"):
        cg.CrossStats().update(g, g)


def test_cpu_dlpack_object_is_accepted():
    class CPUDLPack:
        def __init__(self, a):
            self._a = a

        def __dlpack__(self, stream=None, **kw):
            return self._a.__dlpack__(**kw) if kw else self._a.__dlpack__()

        def __dlpack_device__(self):
            return (1, 0)

    R = cg.correlation(CPUDLPack(X))
    np.testing.assert_allclose(R, np.corrcoef(X.T), atol=1e-14)


@pytest.mark.cuda
def test_torch_cuda_tensor_is_accepted():
    t = torch.randn(10, 3, device="cuda", dtype=torch.float64)
    R = cg.correlation(t)
    assert R.is_cuda and R.dtype == torch.float64
    np.testing.assert_allclose(R.cpu().numpy(), np.corrcoef(t.cpu().numpy().T), atol=1e-12)


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("fn", FUNCS)
def test_bad_metric_precision_zero_var(fn):
    with pytest.raises(ValueError, match=r"metric must be one of 'pearson', 'cosine', 'covariance'; got 'spearman'"):
        feature(fn)(X, metric="spearman")
    with pytest.raises(ValueError, match=r"precision must be one of 'float32', 'float64'; got 'float16'"):
        feature(fn)(X, precision="float16")
    with pytest.raises(ValueError, match=r"zero_var must be one of 'zero', 'nan', 'raise'; got 'ignore'"):
        feature(fn)(X, zero_var="ignore")
    with pytest.raises(ValueError, match="precision must be one of"):
        feature(fn)(X, precision=np.float32)


def test_bad_metric_knn_and_cross_stats():
    with pytest.raises(ValueError, match=r"metric must be one of 'sqeuclidean', 'inner', 'cosine'; got 'pearson'"):
        cg.knn(X, metric="pearson")
    with pytest.raises(ValueError, match="precision must be one of"):
        cg.knn(X, precision="half")
    with pytest.raises(ValueError, match="precision must be one of"):
        cg.CrossStats(precision="bfloat16")


@pytest.mark.parametrize("k", [0, -1, 2.0, 1.5, True, "2", None])
def test_bad_k(k):
    with pytest.raises(ValueError, match=r"k must be a positive integer; got"):
        cg.topk_correlation(X, Y, k)
    with pytest.raises(ValueError, match=r"k must be a positive integer; got"):
        cg.knn(X, k=k)


def test_k_larger_than_candidates():
    with pytest.raises(ValueError, match=r"k=5 exceeds the number of candidates \(4\)"):
        cg.topk_correlation(X, Y, 5)
    with pytest.raises(ValueError, match=r"k=3 exceeds the number of candidates \(2\)"):
        cg.topk_correlation(X, None, 3)  # the diagonal is excluded
    with pytest.raises(ValueError, match=r"k=4 exceeds the number of candidates \(3\)"):
        cg.topk_correlation(X, Y, 4, axis=0)
    with pytest.raises(ValueError, match=r"k=10 exceeds the number of candidates \(9\)"):
        cg.knn(X, k=10)
    with pytest.raises(ValueError, match=r"k=1 exceeds the number of candidates \(0\)"):
        cg.knn(X[:1], k=1)


@pytest.mark.parametrize("axis", [2, -1, "1", None, 1.0 + 1])
def test_bad_axis(axis):
    with pytest.raises(ValueError, match=r"axis must be 0 or 1; got"):
        cg.topk_correlation(X, Y, 1, axis=axis)
    with pytest.raises(ValueError, match=r"axis must be 0 or 1"):
        cg.max_correlation(X, Y, axis=axis)


def test_exclude_self_needs_equal_widths():
    with pytest.raises(ValueError, match=r"exclude_self=True needs as many features in X as in Y; got 3 and 4"):
        cg.topk_correlation(X, Y, 1, exclude_self=True)
    with pytest.raises(ValueError, match=r"exclude_self=True needs as many features in X as in Y"):
        cg.correlation_pairs(X, Y, 0.1, exclude_self=True)
    with pytest.raises(ValueError, match=r"exclude_self=True needs as many points in P as in Q; got 10 and 4"):
        cg.knn(X, X[:4], 1, exclude_self=True)


def test_knn_dimension_mismatch():
    with pytest.raises(ValueError, match=r"P and Q must have the same number of dimensions \(columns\); got 3 and 4"):
        cg.knn(X, Y)


@pytest.mark.parametrize("num_threads", [0, -2, 1.5, True, "2"])
def test_bad_num_threads(num_threads):
    for fn in FUNCS:
        with pytest.raises(ValueError, match=r"num_threads must be a positive integer or None; got"):
            feature(fn)(X, num_threads=num_threads)
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        cg.column_stats(X, num_threads=num_threads)
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        cg.knn(X, num_threads=num_threads)
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        cg.CrossStats(num_threads=num_threads)


@pytest.mark.parametrize("memory_limit", [0, -1, "1GB", True, float("nan"), [10]])
def test_bad_memory_limit(memory_limit):
    for fn in FUNCS:
        with pytest.raises(ValueError, match=r"memory_limit must be a positive number of bytes or None; got"):
            feature(fn)(X, memory_limit=memory_limit)
    with pytest.raises(ValueError, match="memory_limit must be a positive number"):
        cg.knn(X, memory_limit=memory_limit)
    with pytest.raises(ValueError, match="memory_limit must be a positive number"):
        cg.CrossStats(memory_limit=memory_limit)


@pytest.mark.parametrize("ddof", [-1, 10, 11])
def test_bad_ddof_covariance(ddof):
    with pytest.raises(ValueError, match=r"ddof must satisfy 0 <= ddof < n_samples \(10\); got"):
        cg.correlation(X, metric="covariance", ddof=ddof)
    with pytest.raises(ValueError, match=r"ddof must satisfy"):
        cg.topk_correlation(X, Y, 1, metric="covariance", ddof=ddof)


@pytest.mark.parametrize("ddof", [-1, 10, 1.5, True, "1"])
def test_bad_ddof_column_stats_and_cross_stats(ddof):
    with pytest.raises(ValueError, match=r"ddof must be an integer with 0 <= ddof < n_samples \(10\); got"):
        cg.column_stats(X, ddof=ddof)
    with pytest.raises(ValueError, match=r"ddof must be an integer"):
        cg.CrossStats().update(X, Y).covariance_xy(ddof=ddof)


@pytest.mark.parametrize("threshold", [np.nan, np.inf, -np.inf, "0.5", None, True, [0.5]])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match=r"threshold must be a finite number; got"):
        cg.correlation_pairs(X, Y, threshold)


@pytest.mark.parametrize("max_pairs", [-1, 1.5, True, "10"])
def test_bad_max_pairs(max_pairs):
    with pytest.raises(ValueError, match=r"max_pairs must be a non-negative integer or None; got"):
        cg.correlation_pairs(X, Y, 0.5, max_pairs=max_pairs)


def test_zero_var_raise_names_the_argument():
    Z = X.copy()
    Z[:, 2] = 1.0
    with pytest.raises(ValueError, match=r"Y has 1 constant \(zero-variance\) feature\(s\) \(first indices \[2\]\)"):
        cg.correlation(Y, Z, zero_var="raise")
    with pytest.raises(ValueError, match=r"X has 1 zero-norm feature"):
        cg.correlation(np.where(np.arange(3) == 2, 0.0, Z), Y, metric="cosine", zero_var="raise")


# ----------------------------------------------------------------------------- memory budget


def test_memory_limit_too_small_dense():
    A = RNG.standard_normal((20, 300))
    panel = A.nbytes
    # the panel fits, the 300 x 300 output (720 KB) does not
    with pytest.raises(cg.MemoryBudgetError, match=r"a dense 300 x 300 result needs .* but memory_limit is"):
        cg.correlation(A, memory_limit=panel + 100_000)
    # not even the standardised copies fit
    with pytest.raises(cg.MemoryBudgetError, match=r"standardised copies of the inputs needs .* memory_limit is 1000 B"):
        cg.correlation(A, memory_limit=1000)
    assert cg.correlation(A, memory_limit=panel + 800_000).shape == (300, 300)


def test_memory_limit_too_small_reductions():
    A = RNG.standard_normal((50, 400))
    panel = A.nbytes
    with pytest.raises(cg.MemoryBudgetError, match=r"needs at least .* plus tiles\) but memory_limit is"):
        cg.topk_correlation(A, k=3, memory_limit=panel + 20_000)
    with pytest.raises(cg.MemoryBudgetError, match=r"memory_limit is"):
        cg.correlation_pairs(A, None, 0.5, memory_limit=panel + 10_000)
    with pytest.raises(cg.MemoryBudgetError, match=r"transposed copies of the points needs"):
        cg.knn(A, memory_limit=100)
    with pytest.raises(cg.MemoryBudgetError, match=r"CrossStats for 400 x 400 features needs"):
        cg.CrossStats(memory_limit=100_000).update(A, A)
    assert issubclass(cg.MemoryBudgetError, MemoryError)


# ----------------------------------------------------------------------------- known bugs


def test_infinite_memory_limit():
    try:
        R = cg.correlation(X, memory_limit=float("inf"))
    except ValueError as exc:
        assert "memory_limit" in str(exc)
    else:
        np.testing.assert_allclose(R, cg.correlation(X))


def test_numpy_integer_arguments_accepted():
    R = cg.correlation(X, num_threads=np.int64(2), memory_limit=np.int64(10**9))
    np.testing.assert_allclose(R, cg.correlation(X))


def test_non_integer_ddof_covariance_rejected():
    with pytest.raises(ValueError, match="ddof"):
        cg.correlation(X, metric="covariance", ddof=1.5)


def test_huge_finite_values_get_a_clear_error():
    # Squares of |x| > ~1e154 overflow the float64 accumulators: refused with a message that says so
    # (documented limitation) rather than a silent 0 or NaN.
    big = X * 2.0**600
    with pytest.raises(ValueError, match=r"X contains NaN or Inf values \(or finite values beyond"):
        cg.correlation(big)
