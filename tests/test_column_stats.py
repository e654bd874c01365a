"""column_stats against the float64 two-pass oracle (METHODS.md §1.2-1.3)."""

import dataclasses
import warnings

import numpy as np
import pytest

import congruence as cg
from reference import ref_column_stats

torch = pytest.importorskip("torch")


def _np(a):
    return a.numpy() if hasattr(a, "numpy") else np.asarray(a)


def check_stats(st, X, ddof=1, rtol=1e-12):
    ref = ref_column_stats(X, ddof=ddof)
    assert st.n_samples == ref["n_samples"]
    for name in ("mean", "var", "std", "sumsq"):
        got = _np(getattr(st, name))
        assert got.dtype == np.float64, name
        assert got.shape == ref[name].shape, name
        scale = np.abs(ref[name]).max() + 1e-300
        np.testing.assert_allclose(got, ref[name], rtol=rtol, atol=rtol * scale, err_msg=name)
    const = _np(st.constant)
    assert const.dtype == np.bool_
    np.testing.assert_array_equal(const, ref["constant"])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("ddof", [0, 1, 3])
def test_matches_reference(dtype, ddof):
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((57, 9)) * rng.uniform(0.1, 5, 9) + rng.uniform(-3, 3, 9)).astype(dtype)
    check_stats(cg.column_stats(X, ddof=ddof), X, ddof=ddof)


def test_offset_data_does_not_cancel():
    # |mean| / std = 1e6 in float64 (and 1e3 in float32): the one-pass formula would lose
    # (1e6)^2 = 1e12 of relative precision; the shifted pass must not.
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3000, 5)) + 1e6
    check_stats(cg.column_stats(X), X, rtol=1e-9)
    X32 = (rng.standard_normal((3000, 5)) * 10 + 1e4).astype(np.float32)
    check_stats(cg.column_stats(X32), X32, rtol=1e-9)


def test_more_rows_than_the_shift_window():
    # The shift is the mean of the first <= 1024 rows; later rows drift away from it.
    rng = np.random.default_rng(3)
    n = 5000
    X = rng.standard_normal((n, 4)) + np.linspace(0, 20, n)[:, None] + 1e4
    check_stats(cg.column_stats(X), X, rtol=1e-10)


@pytest.mark.parametrize(
    "layout", ["C", "F", "T", "step", "negative"],
)
def test_non_contiguous_numpy(layout):
    rng = np.random.default_rng(4)
    base = rng.standard_normal((40, 30))
    X = {
        "C": base,
        "F": np.asfortranarray(base),
        "T": rng.standard_normal((30, 40)).T,
        "step": base[1::3, ::2],
        "negative": base[::-2, ::-3],
    }[layout]
    check_stats(cg.column_stats(X), X)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_torch_in_torch_out(dtype):
    t = torch.randn(33, 6, dtype=getattr(torch, dtype)) * 3 + 1
    t = t.t().contiguous().t()  # column-major view
    t.requires_grad_(True)
    st = cg.column_stats(t)
    for name in ("mean", "var", "std", "sumsq"):
        v = getattr(st, name)
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float64, name
    assert isinstance(st.constant, torch.Tensor) and st.constant.dtype == torch.bool
    check_stats(st, t)


def test_numpy_in_numpy_out():
    st = cg.column_stats(np.random.default_rng(0).standard_normal((5, 2)))
    assert isinstance(st.mean, np.ndarray) and isinstance(st.constant, np.ndarray)
    assert isinstance(st.n_samples, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.n_samples = 3


def test_constant_detection():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((50, 6))
    X[:, 1] = 0.0
    X[:, 2] = 0.1  # not representable: the computed mean need not be exact
    X[:, 3] = -7.25e8
    X[:, 4] = 1e6 + 1e-12 * rng.standard_normal(50)  # std/rms ~1e-18 -> constant (METHODS §1.3)
    X[:, 5] = 1e6 + 1e-3 * rng.standard_normal(50)  # std/rms ~1e-9 -> not constant
    st = cg.column_stats(X)
    np.testing.assert_array_equal(st.constant, [False, True, True, True, True, False])
    np.testing.assert_array_equal(st.constant, ref_column_stats(X)["constant"])
    assert st.var[1] == 0 and st.var[3] == 0


def test_two_samples():
    X = np.array([[1.0, 2.0], [3.0, 2.0]])
    st = cg.column_stats(X)
    np.testing.assert_allclose(st.mean, [2.0, 2.0])
    np.testing.assert_allclose(st.var, [2.0, 0.0])
    np.testing.assert_allclose(st.sumsq, [10.0, 8.0])
    np.testing.assert_array_equal(st.constant, [False, True])


def test_input_not_modified_and_no_warning():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((20, 3))
    X[:, 0] = 2.0
    before = X.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # column_stats reports constants in .constant, silently
        cg.column_stats(X)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_thread_count_does_not_matter(num_threads):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((300, 700)) + 100
    st = cg.column_stats(X, num_threads=num_threads)
    check_stats(st, X, rtol=1e-10)
    st1 = cg.column_stats(X, num_threads=1)
    np.testing.assert_allclose(st.var, st1.var, rtol=1e-13)
