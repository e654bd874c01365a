"""CrossStats: streamed, exactly mergeable second-order statistics (METHODS.md §0, §1.2)."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import congruence as cg
from reference import ref_correlation, ref_cross_stats

torch = pytest.importorskip("torch")


def data(n=60, p=5, q=4, seed=0, offset=10.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + offset * rng.uniform(-1, 1, p)
    Y = X[:, :1] * 0.5 + rng.standard_normal((n, q)) + offset * rng.uniform(-1, 1, q)
    return X, Y


def close(a, b, rtol=1e-12, what=""):
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, what
    scale = max(1e-300, np.abs(b).max())
    err = np.abs(a - b).max() if a.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol * scale:.3g}"


def check_against_reference(cs, X, Y, rtol=1e-11, cross_only=False):
    ref = ref_cross_stats(X, Y)
    assert cs.n_samples == ref["n"]
    close(cs.mean_x, ref["mean_x"], rtol, "mean_x")
    close(cs.mean_y, ref["mean_y"], rtol, "mean_y")
    close(cs.covariance_xy(), ref["cov_xy"], rtol, "cov_xy")
    close(cs.correlation_xy(), ref["corr_xy"], rtol, "corr_xy")
    close(cs.variance_x(), np.diag(ref["cov_xx"]), rtol, "variance_x")
    close(cs.variance_y(), np.diag(ref["cov_yy"]), rtol, "variance_y")
    n = ref["n"]
    close(cs.comoment_xy(), ref["cov_xy"] * (n - 1), rtol, "comoment_xy")
    if not cross_only:
        close(cs.covariance_xx(), ref["cov_xx"], rtol, "cov_xx")
        close(cs.covariance_yy(), ref["cov_yy"], rtol, "cov_yy")
        close(cs.comoment_xx(), ref["cov_xx"] * (n - 1), rtol, "comoment_xx")
        close(cs.comoment_yy(), ref["cov_yy"] * (n - 1), rtol, "comoment_yy")
        close(cs.correlation_xx(), ref_correlation(X), rtol, "corr_xx")
        close(cs.correlation_yy(), ref_correlation(Y), rtol, "corr_yy")


# --------------------------------------------------------------------------------- basics


def test_single_batch_matches_reference():
    X, Y = data()
    cs = cg.CrossStats().update(X, Y)
    check_against_reference(cs, X, Y)
    assert (cs.n_x, cs.n_y) == (5, 4)


def test_shifted_sums_are_consistent():
    X, Y = data(seed=1)
    cs = cg.CrossStats().update(X[:10], Y[:10]).update(X[10:], Y[10:])
    s, t = cs.shift_x, cs.shift_y
    np.testing.assert_allclose(s, X[:10].mean(0), rtol=1e-14)  # first batch's means by default
    U, V = X - s, Y - t
    close(cs.sum_x, U.sum(0), 1e-12, "sum_x")
    close(cs.sum_y, V.sum(0), 1e-12, "sum_y")
    close(cs.gram_xy, U.T @ V, 1e-12, "gram_xy")
    close(cs.gram_xx, U.T @ U, 1e-12, "gram_xx")
    close(cs.gram_yy, V.T @ V, 1e-12, "gram_yy")


def test_given_shifts_are_used():
    X, Y = data(seed=2)
    sx, sy = np.arange(5.0), -np.arange(4.0)
    cs = cg.CrossStats(shift_x=sx, shift_y=sy).update(X, Y)
    np.testing.assert_array_equal(cs.shift_x, sx)
    np.testing.assert_array_equal(cs.shift_y, sy)
    close(cs.sum_x, (X - sx).sum(0), 1e-12, "sum_x")
    check_against_reference(cs, X, Y)


@given(st.lists(st.integers(1, 59), max_size=8, unique=True), st.booleans(), st.integers(0, 3))
def test_batch_split_equals_whole(splits, cross_only, seed):
    X, Y = data(60, 5, 4, seed=seed)
    bounds = [0] + sorted(splits) + [60]
    cs = cg.CrossStats(cross_only=cross_only)
    for a, b in zip(bounds[:-1], bounds[1:]):
        cs.update(X[a:b], Y[a:b])
    whole = cg.CrossStats(cross_only=cross_only).update(X, Y)
    assert cs.n_samples == 60
    close(cs.correlation_xy(), whole.correlation_xy(), 1e-12, "corr_xy")
    close(cs.covariance_xy(), whole.covariance_xy(), 1e-12, "cov_xy")
    close(cs.variance_x(), whole.variance_x(), 1e-12, "var_x")
    close(cs.mean_y, whole.mean_y, 1e-13, "mean_y")
    if not cross_only:
        close(cs.covariance_xx(), whole.covariance_xx(), 1e-12, "cov_xx")
    check_against_reference(cs, X, Y, cross_only=cross_only)


@given(st.integers(1, 59), st.booleans())
def test_merge_equals_sequential(split, cross_only):
    X, Y = data(60, 5, 4, seed=3)
    a = cg.CrossStats(cross_only=cross_only).update(X[:split], Y[:split])
    b = cg.CrossStats(cross_only=cross_only).update(X[split:], Y[split:])
    seq = cg.CrossStats(cross_only=cross_only).update(X[:split], Y[:split]).update(X[split:], Y[split:])
    assert a.merge(b) is a
    assert a.n_samples == 60
    close(a.correlation_xy(), seq.correlation_xy(), 1e-12, "corr_xy")
    close(a.covariance_xy(), seq.covariance_xy(), 1e-12, "cov_xy")
    close(a.variance_y(), seq.variance_y(), 1e-12, "var_y")
    check_against_reference(a, X, Y, cross_only=cross_only)


@given(st.floats(-50, 50), st.floats(-50, 50), st.integers(2, 58), st.booleans())
def test_merge_with_different_shifts(dx, dy, split, cross_only):
    X, Y = data(60, 5, 4, seed=4, offset=5.0)
    a = cg.CrossStats(cross_only=cross_only, shift_x=np.full(5, dx), shift_y=np.zeros(4)).update(X[:split], Y[:split])
    b = cg.CrossStats(cross_only=cross_only, shift_y=np.full(4, dy)).update(X[split:], Y[split:])
    a.merge(b)
    check_against_reference(a, X, Y, rtol=1e-9, cross_only=cross_only)
    # the merged state keeps its own shift
    np.testing.assert_array_equal(a.shift_x, np.full(5, dx))


def test_merge_many_workers_in_any_order():
    X, Y = data(90, 6, 3, seed=5)
    parts = [cg.CrossStats().update(X[i:i + 15], Y[i:i + 15]) for i in range(0, 90, 15)]
    total = cg.CrossStats()
    for p in parts[::-1]:
        total.merge(p)
    check_against_reference(total, X, Y)


def test_merge_into_empty_copies_and_does_not_alias():
    X, Y = data(seed=6)
    b = cg.CrossStats().update(X[:30], Y[:30])
    e = cg.CrossStats().merge(b)
    b.update(X[30:], Y[30:])  # must not change e
    assert e.n_samples == 30 and b.n_samples == 60
    check_against_reference(e, X[:30], Y[:30])
    # merging an empty state is a no-op
    before = e.covariance_xy().copy()
    e.merge(cg.CrossStats())
    np.testing.assert_array_equal(e.covariance_xy(), before)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_cross_only_gives_same_correlations_and_variances(precision):
    X, Y = data(1500, 6, 5, seed=7)
    full = cg.CrossStats(precision=precision).update(X[:700], Y[:700]).update(X[700:], Y[700:])
    part = cg.CrossStats(cross_only=True, precision=precision).update(X[:700], Y[:700]).update(X[700:], Y[700:])
    rtol = 1e-12 if precision == "float64" else 1e-6
    close(part.correlation_xy(), full.correlation_xy(), rtol, "corr_xy")
    close(part.variance_x(), full.variance_x(), rtol, "var_x")
    close(part.variance_y(), full.variance_y(), rtol, "var_y")
    close(part.covariance_xy(ddof=0), full.covariance_xy(ddof=0), rtol, "cov_xy")
    np.testing.assert_allclose(part.variance_x(), np.diag(full.covariance_xx()), rtol=rtol)
    for name in ("gram_xx", "gram_yy"):
        with pytest.raises(ValueError, match=f"{name} is not kept with cross_only=True"):
            getattr(part, name)
    for meth in ("comoment_xx", "covariance_yy", "correlation_xx", "correlation_yy"):
        with pytest.raises(ValueError, match="cross_only=True"):
            getattr(part, meth)()


@pytest.mark.parametrize("cross_only", [False, True])
def test_state_dict_round_trip(tmp_path, cross_only):
    X, Y = data(80, 4, 3, seed=8)
    cs = cg.CrossStats(cross_only=cross_only).update(X[:50], Y[:50])
    d = cs.state_dict()
    np.savez(tmp_path / "state.npz", **d)
    loaded = dict(np.load(tmp_path / "state.npz"))
    for src in (d, loaded):
        r = cg.CrossStats.from_state_dict(src)
        assert r.n_samples == 50 and r.cross_only == cross_only
        np.testing.assert_array_equal(r.correlation_xy(), cs.correlation_xy())
        np.testing.assert_array_equal(r.gram_xy, cs.gram_xy)
        r.update(X[50:], Y[50:])
        check_against_reference(r, X, Y, cross_only=cross_only)
    # the dict is a copy: mutating it does not touch the state
    d["gram_xy"][:] = 0
    assert np.abs(cs.gram_xy).max() > 0
    with pytest.raises(ValueError, match="state is missing"):
        cg.CrossStats.from_state_dict({k: v for k, v in d.items() if k != "gram_xy"})


def test_ddof():
    X, Y = data(seed=9)
    cs = cg.CrossStats().update(X, Y)
    ref = ref_cross_stats(X, Y, ddof=0)
    close(cs.covariance_xy(ddof=0), ref["cov_xy"], 1e-12)
    close(cs.covariance_xx(ddof=0), ref["cov_xx"], 1e-12)
    close(cs.variance_y(ddof=3), np.diag(ref_cross_stats(X, Y, ddof=3)["cov_yy"]), 1e-12)


# --------------------------------------------------------------------------------- precision


def test_float32_precision():
    X, Y = data(3000, 8, 6, seed=10, offset=100.0)  # > 1024 rows: several float32 partial products
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    cs = cg.CrossStats(precision="float32").update(X32[:2500], Y32[:2500]).update(X32[2500:], Y32[2500:])
    ref = ref_cross_stats(X32, Y32)
    assert np.abs(cs.correlation_xy() - ref["corr_xy"]).max() <= 1e-6
    assert np.abs(cs.correlation_xx() - ref_correlation(X32)).max() <= 1e-6
    close(cs.covariance_xy(), ref["cov_xy"], 1e-6, "cov_xy")
    assert cs.covariance_xy().dtype == np.float64  # accumulators are float64


def test_offset_data_accuracy():
    rng = np.random.default_rng(11)
    Z = rng.standard_normal((4000, 6))
    X = Z[:, :4] + 1e6
    Y = Z[:, 2:] * 1e-3 - 1e4  # |mean|/std = 1e7
    cs = cg.CrossStats()
    for a in range(0, 4000, 500):
        cs.update(X[a:a + 500], Y[a:a + 500])
    ref = ref_cross_stats(X, Y)
    assert np.abs(cs.correlation_xy() - ref["corr_xy"]).max() <= 1e-9
    close(cs.variance_y(), np.diag(ref["cov_yy"]), 1e-8, "var_y")
    # float32 data at |mean|/std = 1e3 and float32 products
    X32 = (Z[:, :4] + 1e3).astype(np.float32)
    Y32 = (Z[:, 2:] * 2 - 3e3).astype(np.float32)
    cs = cg.CrossStats(precision="float32")
    for a in range(0, 4000, 1000):
        cs.update(X32[a:a + 1000], Y32[a:a + 1000])
    assert np.abs(cs.correlation_xy() - ref_correlation(X32, Y32)).max() <= 1e-6


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_torch_in_torch_out(dtype):
    X, Y = data(40, 3, 2, seed=12, offset=1.0)
    tX = torch.from_numpy(X).to(getattr(torch, dtype)).requires_grad_(True)
    tY = torch.from_numpy(Y).to(getattr(torch, dtype)).t().contiguous().t()
    cs = cg.CrossStats().update(tX, tY)
    r = cs.correlation_xy()
    assert isinstance(r, torch.Tensor) and r.dtype == torch.float64
    assert isinstance(cs.mean_x, torch.Tensor)
    check_against_reference(cs, tX.detach().double().numpy(), tY.double().numpy())


def test_non_contiguous_numpy():
    X, Y = data(80, 8, 6, seed=13)
    Xv, Yv = X[::-2, ::2], np.asfortranarray(Y)[::2, 1:]
    cs = cg.CrossStats().update(Xv[:13], Yv[:13]).update(Xv[13:], Yv[13:])
    check_against_reference(cs, Xv, Yv)


# --------------------------------------------------------------------------------- zero variance


def test_constant_features():
    X, Y = data(seed=14)
    X[:, 2] = 7.0
    cs = cg.CrossStats().update(X[:20], Y[:20]).update(X[20:], Y[20:])
    with pytest.warns(cg.ConstantFeatureWarning, match="X has 1 constant"):
        r = cs.correlation_xy()
    close(r, ref_correlation(X, Y), 1e-11)
    assert (r[2] == 0).all()
    r = cs.correlation_xy(zero_var="nan")
    assert np.isnan(r[2]).all() and not np.isnan(np.delete(r, 2, axis=0)).any()
    with pytest.raises(ValueError, match="X has 1 constant"):
        cs.correlation_xy(zero_var="raise")
    assert cs.variance_x()[2] == 0.0


# --------------------------------------------------------------------------------- errors


def test_width_change_raises():
    X, Y = data(seed=15)
    cs = cg.CrossStats().update(X[:10], Y[:10])
    with pytest.raises(ValueError, match=r"batch widths \(3, 4\) differ from the accumulated widths \(5, 4\)"):
        cs.update(X[10:, :3], Y[10:])
    with pytest.raises(ValueError, match="widths"):
        cs.update(X[10:], Y[10:, :2])
    assert cs.n_samples == 10


def test_mismatched_rows_raise():
    X, Y = data(seed=16)
    cs = cg.CrossStats()
    with pytest.raises(ValueError, match=r"X and Y must have the same number of samples \(rows\); got 10 and 9"):
        cs.update(X[:10], Y[:9])
    assert cs.n_samples == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["X", "Y"])
def test_nan_inf_raise_and_leave_state_unchanged(bad, which):
    X, Y = data(seed=17)
    cs = cg.CrossStats().update(X[:20], Y[:20])
    before = cs.state_dict()
    Xb, Yb = X[20:].copy(), Y[20:].copy()
    (Xb if which == "X" else Yb)[5, 1] = bad
    with pytest.raises(ValueError, match=f"{which} contains NaN or Inf"):
        cs.update(Xb, Yb)
    after = cs.state_dict()
    assert after["n"] == before["n"]
    for k in ("gram_xy", "gram_xx", "sum_x", "sum_y"):
        np.testing.assert_array_equal(after[k], before[k])
    # first batch with NaN
    with pytest.raises(ValueError, match=f"{which} contains NaN or Inf"):
        cg.CrossStats().update(Xb, Yb)


def test_other_errors():
    X, Y = data(seed=18)
    with pytest.raises(ValueError, match="precision must be one of"):
        cg.CrossStats(precision="float16")
    with pytest.raises(ValueError, match=r"shift_x has shape \(2,\); expected \(5,\)"):
        cg.CrossStats(shift_x=[0.0, 1.0]).update(X, Y)
    with pytest.raises(ValueError, match="shift_y contains NaN"):
        cg.CrossStats(shift_y=[np.nan] * 4)
    with pytest.raises(ValueError, match=r"at least 2 are needed"):
        cg.CrossStats().correlation_xy()
    with pytest.raises(ValueError, match=r"at least 2 are needed"):
        cg.CrossStats().update(X[:1], Y[:1]).covariance_xy()
    cs = cg.CrossStats().update(X, Y)
    with pytest.raises(ValueError, match="ddof must be an integer"):
        cs.covariance_xy(ddof=60)
    with pytest.raises(ValueError, match="zero_var must be one of"):
        cs.correlation_xy(zero_var="drop")
    with pytest.raises(ValueError, match="cannot merge a cross_only state with a full one"):
        cs.merge(cg.CrossStats(cross_only=True).update(X, Y))
    with pytest.raises(ValueError, match=r"widths differ: \(5, 4\) vs \(5, 3\)"):
        cs.merge(cg.CrossStats().update(X, Y[:, :3]))
    with pytest.raises(TypeError, match="other must be a CrossStats"):
        cs.merge({"n": 3})
    with pytest.raises(cg.MemoryBudgetError, match="try cross_only=True"):
        cg.CrossStats(memory_limit=1000).update(np.ones((3, 20)) * np.arange(3)[:, None], Y[:3])
    with pytest.raises(ValueError, match="X must be 2-D"):
        cs.update(X[:, 0], Y)
    with pytest.raises(TypeError, match="Y must hold floating-point data"):
        cs.update(X, Y.astype(np.int32))
