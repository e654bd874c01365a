"""The engine's streamed Gram update C += AᵀB (float64 state) against float64 NumPy."""

import numpy as np
import pytest

from congruence import _engine as E
from congruence._resources import blas_threads


def _ref(A, B):
    return A.astype(np.float64).T @ B.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_cross_update_on_column_slices(dtype, threads):
    rng = np.random.default_rng(0)
    panel = (rng.standard_normal((1500, 1300)) + 3.0).astype(dtype)
    A, B = panel[:, 10:1100], panel[:, 200:1300]  # strided views of one panel, wider than one tile
    state = np.zeros((1200, 2300))
    C = state[50:1140, 100:1200]  # a view into a larger state (row stride != width)
    before = state.copy()
    with blas_threads(1):
        E.accumulate_grams([(A, B, C)], threads)
        E.accumulate_grams([(A[:700], B[:700], C)], threads)
    ref = _ref(A, B) + _ref(A[:700], B[:700])
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert np.abs(C - ref).max() <= tol * np.abs(ref).max()
    outside = np.ones(state.shape, bool)
    outside[50:1140, 100:1200] = False
    assert np.array_equal(state[outside], before[outside])  # nothing written outside C


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 300, 1100])
def test_symmetric_update_writes_the_upper_triangle(dtype, n):
    rng = np.random.default_rng(n)
    A = rng.standard_normal((900, n)).astype(dtype)
    C = np.zeros((n, n))
    with blas_threads(1):
        E.accumulate_grams([(A, None, C)], 2)
    ref = _ref(A, A)
    upper = np.triu_indices(n)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert np.abs(C[upper] - ref[upper]).max() <= tol * np.abs(ref).max()
    assert not np.tril(C, -1).any()


def test_float32_sums_are_chunked():
    # 10_000 samples of offset data: float32 products are summed over <= 4096 samples (the
    # engine's k_chunk), then in float64; one float32 sum over all of them errs more
    rng = np.random.default_rng(1)
    A = (rng.standard_normal((10_000, 64)) + 20.0).astype(np.float32)
    C = np.zeros((64, 64))
    with blas_threads(1):
        B = np.ascontiguousarray(A[:, ::-1])
        E.accumulate_grams([(A, B, C)], 2)
    ref = _ref(A, B)
    err = np.abs(C - ref).max() / np.abs(ref).max()
    assert err < 1e-6


def test_shape_checks():
    A = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match="shape mismatch"):
        E.accumulate_grams([(A, A, np.zeros((4, 5)))], 1)
    with pytest.raises(ValueError, match="wrong dtype"):
        E.accumulate_grams([(A, A, np.zeros((4, 4), np.float32))], 1)
