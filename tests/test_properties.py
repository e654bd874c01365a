"""Property tests (hypothesis): random shapes, strides and dtypes agree with the float64 oracle;
permutation equivariance; independence from the thread count (DESIGN.md §4)."""


import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import congruence as cg
from reference import (
    assert_pairs_equivalent,
    assert_topk_equivalent,
    pairs_from_sparse,
    ref_column_stats,
    ref_correlation,
    ref_knn,
    ref_pairs,
    ref_topk_correlation,
)

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.filterwarnings("ignore::congruence.ConstantFeatureWarning"),
    pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning"),
]

DTYPES = ["float16", "bfloat16", "float32", "float64"]
LAYOUTS = ["C", "F", "row_step", "col_step", "negative", "negative_both", "transposed_view"]


def make(rng, n, p, dtype, layout, offset, scale):
    """An (n, p) input of the given dtype and memory layout (numpy, or torch for bfloat16)."""
    base = rng.standard_normal((2 * n + 1, 3 * p + 2)) * scale + offset * rng.uniform(-1, 1, 3 * p + 2)
    if layout == "C":
        A = np.ascontiguousarray(base[:n, :p])
    elif layout == "F":
        A = np.asfortranarray(base[:n, :p])
    elif layout == "row_step":
        A = base[1:2 * n:2, :p]
    elif layout == "col_step":
        A = base[:n, 2:3 * p + 2:3]
    elif layout == "negative":
        A = base[n - 1::-1, :p]
    elif layout == "negative_both":
        A = base[2 * n - 1::-2, 3 * p - 1::-3]
    else:  # a transposed view of a C-contiguous (p, n) array
        A = np.ascontiguousarray(base[:n, :p].T).T
    assert A.shape == (n, p)
    if dtype == "bfloat16":
        t = torch.from_numpy(np.ascontiguousarray(A)).to(torch.bfloat16)
        return t if layout in ("C", "negative", "negative_both") else t.t().contiguous().t()
    return A.astype(dtype, copy=False) if dtype == "float64" else _keep_layout(A, dtype)


def _keep_layout(A, dtype):
    """Cast to a lower precision while keeping a non-contiguous layout (cast, then re-stride)."""
    big = np.empty((A.shape[0] * 2, A.shape[1] * 2), dtype=dtype)[::-2, ::2]
    big[...] = A
    return big


def f64(a):
    if isinstance(a, torch.Tensor):
        return a.detach().double().numpy()
    return np.asarray(a, dtype=np.float64)


@st.composite
def inputs(draw, max_n=40, max_p=10, two=True):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(2, max_n))
    offset = draw(st.sampled_from([0.0, 1.0, 100.0]))
    scale = draw(st.sampled_from([1e-2, 1.0, 1e2]))
    X = make(rng, n, draw(st.integers(1, max_p)), draw(st.sampled_from(DTYPES)), draw(st.sampled_from(LAYOUTS)),
             offset, scale)
    if not two:
        return X
    Y = make(rng, n, draw(st.integers(1, max_p)), draw(st.sampled_from(DTYPES)), draw(st.sampled_from(LAYOUTS)),
             offset, scale)
    return X, Y


def compute_is_f64(precision, *arrays):
    if precision is not None:
        return precision == "float64"
    return all(str(a.dtype).endswith("float64") for a in arrays)


def tolerances(is_f64):
    return (1e-10, 1e-11) if is_f64 else (2e-5, 4e-6)


# ------------------------------------------------------------------------ agreement with the oracle


@given(inputs(), st.sampled_from(["pearson", "cosine", "covariance"]), st.sampled_from([None, "float32", "float64"]),
       st.booleans())
def test_correlation_agrees_with_reference(xy, metric, precision, self_join):
    X, Y = xy
    if self_join:
        R, ref = cg.correlation(X, metric=metric, precision=precision), ref_correlation(X, metric=metric)
        is64 = compute_is_f64(precision, X)
    else:
        R, ref = cg.correlation(X, Y, metric=metric, precision=precision), ref_correlation(X, Y, metric=metric)
        is64 = compute_is_f64(precision, X, Y)
    assert isinstance(R, torch.Tensor) == isinstance(X, torch.Tensor)
    rtol, atol = tolerances(is64)
    scale = np.abs(ref).max() if metric == "covariance" else 1.0
    np.testing.assert_allclose(f64(R), ref, rtol=0, atol=atol * max(scale, 1e-300) * 5)


@given(inputs(max_p=12), st.integers(1, 12), st.booleans(), st.sampled_from([0, 1]), st.booleans(),
       st.sampled_from([None, "float32", "float64"]))
def test_topk_agrees_with_reference(xy, k, absolute, axis, self_join, precision):
    X, Y = xy
    Yarg = None if self_join else Y
    n_cand = (X.shape[1] - 1) if self_join else (Y.shape[1] if axis == 1 else X.shape[1])
    assume(1 <= k <= n_cand)
    v, i = cg.topk_correlation(X, Yarg, k, absolute=absolute, axis=axis, precision=precision)
    rv, ri = ref_topk_correlation(X, Yarg, k=k, absolute=absolute, axis=axis)
    R = ref_correlation(X, Yarg)
    R = R if axis == 1 else R.T.copy()
    if self_join:
        np.fill_diagonal(R, np.nan)
    rtol, atol = tolerances(compute_is_f64(precision, X, *([] if self_join else [Y])))
    # check_tie_order: equal returned values come in increasing index order (values are clamped
    # to [-1, 1] before ranking; see test_topk.py::test_ties_created_by_clipping_go_to_lowest_index).
    assert_topk_equivalent(v, i, rv, ri, rtol=rtol, atol=atol, absolute=absolute, ref_matrix=R)


@given(inputs(max_p=12), st.floats(-0.9, 0.9), st.booleans(), st.booleans())
def test_pairs_agree_with_reference(xy, threshold, absolute, self_join):
    X, Y = xy
    Yarg = None if self_join else Y
    S = cg.correlation_pairs(X, Yarg, threshold, absolute=absolute)
    rows, cols, vals = pairs_from_sparse(S)
    R = ref_correlation(X, Yarg)
    if self_join:
        np.fill_diagonal(R, np.nan)
    rr, rc, rv = ref_pairs(R, threshold, absolute=absolute)
    rtol, atol = tolerances(compute_is_f64(None, X, *([] if self_join else [Y])))
    assert_pairs_equivalent(rows, cols, vals, rr, rc, rv, threshold, rtol=rtol, atol=atol, absolute=absolute,
                            ref_matrix=R)


@given(inputs(max_n=30, max_p=6), st.sampled_from(["sqeuclidean", "inner", "cosine"]), st.integers(1, 5),
       st.booleans())
def test_knn_agrees_with_reference(xy, metric, k, self_join):
    X, Y = xy
    # points are rows: use X as P and Y's transpose shape-compatibly (same number of dims)
    P = X
    Q = None if self_join else X[::-1] * 0.5 if isinstance(X, np.ndarray) else X.flip(0) * 0.5
    n_cand = P.shape[0] - (1 if self_join else 0)
    assume(k <= n_cand)
    v, i = cg.knn(P, Q, k, metric=metric)
    rv, ri = ref_knn(P, Q, k=k, metric=metric)
    Pn = f64(P)
    Qn = Pn if Q is None else f64(Q)
    if metric == "sqeuclidean":
        M = ((Pn[:, None] - Qn[None]) ** 2).sum(-1)
        mu = Qn.mean(0)
        spread = ((Pn - mu) ** 2).sum(1).max() + ((Qn - mu) ** 2).sum(1).max()
    elif metric == "inner":
        M = Pn @ Qn.T
        spread = np.abs(M).max()
    else:
        pn, qn = np.linalg.norm(Pn, axis=1), np.linalg.norm(Qn, axis=1)
        M = (Pn / np.where(pn == 0, 1, pn)[:, None]) @ (Qn / np.where(qn == 0, 1, qn)[:, None]).T
        spread = 1.0
    if self_join:
        np.fill_diagonal(M, np.nan)
    rtol, atol = tolerances(compute_is_f64(None, P))
    # check_tie_order: equal returned values (cosine clamped to 1, d^2 = |a|^2 - 2 value) come in
    # increasing index order (see the tie tests in test_knn.py).
    assert_topk_equivalent(v, i, rv, ri, rtol=rtol, atol=atol * max(spread, 1e-300) * 5,
                           largest=(metric != "sqeuclidean"), ref_matrix=M)


@given(inputs(two=False), st.integers(0, 1))
def test_column_stats_agree_with_reference(X, ddof):
    s = cg.column_stats(X, ddof=ddof)
    ref = ref_column_stats(X, ddof=ddof)
    for name in ("mean", "var", "sumsq"):
        np.testing.assert_allclose(f64(getattr(s, name)), ref[name], rtol=1e-9,
                                   atol=1e-12 * np.abs(ref[name]).max(), err_msg=name)
    np.testing.assert_array_equal(np.asarray(s.constant), ref["constant"])


# ------------------------------------------------------------------------ equivariance / invariance


@given(st.integers(0, 2**32 - 1), st.sampled_from(["pearson", "cosine", "covariance"]),
       st.sampled_from(["float32", "float64"]))
def test_correlation_permutation_equivariance(seed, metric, precision):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((30, 9)) + 1, rng.standard_normal((30, 7))
    px, py, ps = rng.permutation(9), rng.permutation(7), rng.permutation(30)
    R = cg.correlation(X, Y, metric=metric, precision=precision)
    Rp = cg.correlation(X[:, px], Y[:, py], metric=metric, precision=precision)
    atol = 1e-13 if precision == "float64" else 2e-6
    np.testing.assert_allclose(Rp, R[px][:, py], rtol=0, atol=atol)
    # a common permutation of the samples changes nothing
    Rs = cg.correlation(X[ps], Y[ps], metric=metric, precision=precision)
    np.testing.assert_allclose(Rs, R, rtol=0, atol=atol)
    Rself = cg.correlation(X, metric=metric, precision=precision)
    np.testing.assert_allclose(cg.correlation(X[:, px], metric=metric, precision=precision), Rself[px][:, px],
                               rtol=0, atol=atol)


@given(st.integers(0, 2**32 - 1), st.booleans(), st.sampled_from([0, 1]), st.sampled_from(["float32", "float64"]))
def test_topk_permutation_equivariance(seed, absolute, axis, precision):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((25, 8)), rng.standard_normal((25, 11))
    perm = rng.permutation(11)
    k = 4
    v, i = cg.topk_correlation(X, Y, k, absolute=absolute, axis=axis, precision=precision)
    vp, ip = cg.topk_correlation(X, Y[:, perm], k, absolute=absolute, axis=axis, precision=precision)
    tol = (1e-12, 1e-13) if precision == "float64" else (1e-5, 2e-6)
    if axis == 1:
        # permuting Y's columns permutes the returned indices: column j of Y[:, perm] is perm[j]
        assert_topk_equivalent(v, i, vp, perm[ip], rtol=tol[0], atol=tol[1], absolute=absolute)
    else:
        # rows of the output are Y's features: they are permuted, indices into X unchanged
        assert_topk_equivalent(v[perm], i[perm], vp, ip, rtol=tol[0], atol=tol[1], absolute=absolute)


@given(st.integers(0, 2**32 - 1), st.floats(0.01, 100), st.floats(-1e3, 1e3))
def test_pearson_affine_invariance(seed, a, b):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 4))
    R = cg.correlation(X, Y)
    np.testing.assert_allclose(cg.correlation(X * a + b, Y), R, atol=1e-10)
    np.testing.assert_allclose(cg.correlation(X, -Y), -R, atol=1e-14)


# ------------------------------------------------------------------------ thread count


_rng = np.random.default_rng(2024)
_XT = _rng.standard_normal((40, 320)) + 3
_YT = _rng.standard_normal((40, 150))
_PT = _rng.standard_normal((300, 6))
_BASE = {}


def _baseline(name, fn):
    if name not in _BASE:
        _BASE[name] = fn(1)
    return _BASE[name]


@given(st.integers(2, 5), st.sampled_from(["float32", "float64"]))
def test_results_do_not_depend_on_num_threads(threads, precision):
    atol = 1e-13 if precision == "float64" else 2e-6
    runs = {
        "corr": lambda t: cg.correlation(_XT, _YT, precision=precision, num_threads=t),
        "self": lambda t: cg.correlation(_XT, precision=precision, num_threads=t),
        "topk": lambda t: cg.topk_correlation(_XT, k=5, precision=precision, num_threads=t, absolute=True),
        "topk0": lambda t: cg.topk_correlation(_XT, _YT, k=3, axis=0, precision=precision, num_threads=t),
        "pairs": lambda t: cg.correlation_pairs(_XT, None, 0.45, precision=precision, num_threads=t).toarray(),
        "knn": lambda t: cg.knn(_PT, k=4, precision=precision, num_threads=t),
        "stats": lambda t: cg.column_stats(_XT, num_threads=t).var,
    }
    for name, fn in runs.items():
        base = _baseline(name + precision, fn)
        got = fn(threads)
        if name in ("topk", "topk0", "knn"):
            assert_topk_equivalent(got[0], got[1], base[0], base[1], rtol=atol, atol=atol,
                                   absolute=(name == "topk"), largest=(name != "knn"))
        else:
            np.testing.assert_allclose(got, base, rtol=0, atol=atol * max(1.0, np.abs(base).max()), err_msg=name)
