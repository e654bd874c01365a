"""Tests of the float64 oracles and comparison helpers in tests/reference.py themselves."""

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import (
    assert_pairs_equivalent,
    assert_topk_equivalent,
    pairs_from_sparse,
    ref_column_stats,
    ref_correlation,
    ref_cross_stats,
    ref_knn,
    ref_pairs,
    ref_topk,
    ref_topk_correlation,
)

NAN = np.nan
# METHODS 8.1 reduction vector.
R81 = np.array([[0.5, 0.9, 0.9, 0.1], [NAN, NAN, NAN, NAN], [0.2, -0.7, 0.2, 0.2]])


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# ref_topk / ref_pairs
# ---------------------------------------------------------------------------------------------


def test_ref_topk_methods_8_1_vector():
    v, i = ref_topk(R81, 2)
    np.testing.assert_array_equal(i, [[1, 2], [-1, -1], [0, 2]])
    np.testing.assert_array_equal(v[0], [0.9, 0.9])
    assert np.isnan(v[1]).all()
    np.testing.assert_array_equal(v[2], [0.2, 0.2])

    v, i = ref_topk(R81, 1)  # max / argmax
    np.testing.assert_array_equal(i[:, 0], [1, -1, 0])
    np.testing.assert_array_equal(v[[0, 2], 0], [0.9, 0.2])

    v, i = ref_topk(R81, 1, absolute=True)
    assert (v[2, 0], i[2, 0]) == (-0.7, 1)


def test_ref_topk_exact_ties_lowest_index():
    M = np.array([[3.0, 1.0, 3.0, 3.0, 2.0, 3.0]])
    v, i = ref_topk(M, 4)
    np.testing.assert_array_equal(i, [[0, 2, 3, 5]])
    v, i = ref_topk(M, 3, largest=False)
    np.testing.assert_array_equal(i, [[1, 4, 0]])
    np.testing.assert_array_equal(v, [[1.0, 2.0, 3.0]])
    # absolute ties between +v and -v: still lowest index, signed values returned
    v, i = ref_topk(np.array([[0.1, -0.5, 0.5, -0.5]]), 3, absolute=True)
    np.testing.assert_array_equal(i, [[1, 2, 3]])
    np.testing.assert_array_equal(v, [[-0.5, 0.5, -0.5]])


def test_ref_topk_nan_excluded_and_missing_slots():
    M = np.array([[NAN, 0.3, NAN, -0.2], [0.1, 0.2, 0.3, 0.4]])
    v, i = ref_topk(M, 5)
    np.testing.assert_array_equal(i, [[1, 3, -1, -1, -1], [3, 2, 1, 0, -1]])
    assert np.isnan(v[0, 2:]).all() and np.isnan(v[1, 4])
    assert i.dtype == np.int64 and v.dtype == np.float64


def test_ref_pairs_methods_8_1_vector():
    r, c, v = ref_pairs(R81, 0.5)
    np.testing.assert_array_equal(r, [0, 0, 0])
    np.testing.assert_array_equal(c, [0, 1, 2])
    np.testing.assert_array_equal(v, [0.5, 0.9, 0.9])
    r, c, v = ref_pairs(R81, 0.5, absolute=True)
    np.testing.assert_array_equal(list(zip(r, c)), [(0, 0), (0, 1), (0, 2), (2, 1)])
    np.testing.assert_array_equal(v[-1], -0.7)


def test_ref_pairs_sorted_against_brute_force():
    M = rng(1).uniform(-1, 1, size=(7, 9))
    r, c, v = ref_pairs(M, 0.3, absolute=True)
    expected = [(i, j, M[i, j]) for i in range(7) for j in range(9) if abs(M[i, j]) >= 0.3]
    assert list(zip(r.tolist(), c.tolist(), v.tolist())) == expected


def test_pairs_from_sparse_scipy():
    S = scipy.sparse.coo_array((np.array([0.5, 0.7]), (np.array([0, 2]), np.array([1, 0]))), shape=(3, 3))
    r, c, v = pairs_from_sparse(S)
    np.testing.assert_array_equal(r, [0, 2])
    np.testing.assert_array_equal(c, [1, 0])
    np.testing.assert_array_equal(v, [0.5, 0.7])


# ---------------------------------------------------------------------------------------------
# statistics and correlation oracles
# ---------------------------------------------------------------------------------------------


def test_ref_column_stats_matches_numpy():
    X = rng(2).normal(3.0, 2.0, size=(20, 5))
    for ddof in (0, 1):
        s = ref_column_stats(X, ddof=ddof)
        assert s["n_samples"] == 20
        np.testing.assert_allclose(s["mean"], X.mean(0), rtol=1e-14)
        np.testing.assert_allclose(s["var"], X.var(0, ddof=ddof), rtol=1e-13)
        np.testing.assert_allclose(s["std"], X.std(0, ddof=ddof), rtol=1e-13)
        np.testing.assert_allclose(s["sumsq"], (X**2).sum(0), rtol=1e-14)
        assert not s["constant"].any()


def test_ref_column_stats_constant_detection():
    n = 50
    noise = rng(3).normal(size=n)
    X = np.column_stack([
        np.full(n, 3.0),              # exactly constant
        np.zeros(n),                  # all zero
        1e6 + 1e-7 * noise,           # sigma/rms ~ 1e-13: constant (relative rule)
        1e6 + 1e-3 * noise,           # sigma/rms ~ 1e-9: not constant
        noise,
        np.full(n, 0.1),              # 0.1 is not exactly representable; mean may not be exact
    ])
    s = ref_column_stats(X)
    np.testing.assert_array_equal(s["constant"], [True, True, True, False, False, True])


def test_ref_correlation_matches_corrcoef():
    g = rng(4)
    X = g.normal(size=(30, 4)) @ g.normal(size=(4, 4)) + 100.0
    Y = g.normal(size=(30, 3)) - 7.0
    np.testing.assert_allclose(ref_correlation(X), np.corrcoef(X, rowvar=False), atol=1e-13)
    full = np.corrcoef(np.hstack([X, Y]), rowvar=False)
    np.testing.assert_allclose(ref_correlation(X, Y), full[:4, 4:], atol=1e-13)
    np.testing.assert_allclose(ref_correlation(X, Y, metric="pearson", ddof=0), full[:4, 4:], atol=1e-13)


def test_ref_correlation_large_offset_two_pass():
    # mu/sigma ~ 1e8: a one-pass formula would lose everything; two-pass keeps ~1e-8.
    g = rng(5)
    Z = g.normal(size=(200, 3))
    Z[:, 1] += 0.5 * Z[:, 0]
    expected = np.corrcoef(Z, rowvar=False)
    np.testing.assert_allclose(ref_correlation(Z + 1e8), expected, atol=1e-7)


def test_ref_correlation_covariance_and_cosine():
    g = rng(6)
    X, Y = g.normal(size=(15, 3)) + 2, g.normal(size=(15, 2))
    for ddof in (0, 1):
        full = np.cov(np.hstack([X, Y]), rowvar=False, ddof=ddof)
        np.testing.assert_allclose(ref_correlation(X, Y, metric="covariance", ddof=ddof), full[:3, 3:],
                                   atol=1e-13)
    cos = np.array([[X[:, i] @ Y[:, j] / np.linalg.norm(X[:, i]) / np.linalg.norm(Y[:, j])
                     for j in range(2)] for i in range(3)])
    np.testing.assert_allclose(ref_correlation(X, Y, metric="cosine"), cos, atol=1e-14)


def test_ref_correlation_constant_features():
    g = rng(7)
    X = g.normal(size=(12, 3))
    X[:, 1] = 4.0
    Y = g.normal(size=(12, 2))
    Y[:, 0] = 0.0
    R = ref_correlation(X, Y)
    assert (R[1, :] == 0).all() and (R[:, 0] == 0).all()
    np.testing.assert_allclose(R[[0, 2], 1], np.corrcoef(np.column_stack([X[:, [0, 2]], Y[:, 1]]),
                                                         rowvar=False)[:2, 2], atol=1e-13)
    Rn = ref_correlation(X, Y, zero_var="nan")
    assert np.isnan(Rn[1, :]).all() and np.isnan(Rn[:, 0]).all()
    np.testing.assert_array_equal(Rn[[0, 2], 1], R[[0, 2], 1])
    with pytest.raises(ValueError):
        ref_correlation(X, Y, zero_var="raise")
    # cosine: the constant 4.0 column is fine, the zero column is not
    C = ref_correlation(X, Y, metric="cosine", zero_var="nan")
    assert np.isnan(C[:, 0]).all() and not np.isnan(C[:, 1]).any()
    # covariance is always defined
    assert (ref_correlation(X, Y, metric="covariance")[1, :] == 0).all()


def test_ref_topk_correlation_axis_and_self():
    g = rng(8)
    X, Y = g.normal(size=(25, 5)), g.normal(size=(25, 4))
    R = ref_correlation(X, Y)
    v, i = ref_topk_correlation(X, Y, 3)
    np.testing.assert_array_equal((v, i), ref_topk(R, 3))
    v, i = ref_topk_correlation(X, Y, 2, axis=0, absolute=True)
    np.testing.assert_array_equal((v, i), ref_topk(R.T, 2, absolute=True))
    v, i = ref_topk_correlation(X, None, 5)  # self: diagonal excluded by default
    assert (i[:, :4] != np.arange(5)[:, None]).all() and (i[:, 4] == -1).all()
    v, i = ref_topk_correlation(X, None, 1, exclude_self=False)
    np.testing.assert_array_equal(i[:, 0], np.arange(5))


def test_ref_cross_stats_matches_numpy():
    g = rng(9)
    X, Y = g.normal(size=(40, 3)) + 5, g.normal(size=(40, 2))
    s = ref_cross_stats(X, Y)
    full = np.cov(np.hstack([X, Y]), rowvar=False)
    assert s["n"] == 40
    np.testing.assert_allclose(s["mean_x"], X.mean(0))
    np.testing.assert_allclose(s["mean_y"], Y.mean(0))
    np.testing.assert_allclose(s["cov_xx"], full[:3, :3], atol=1e-13)
    np.testing.assert_allclose(s["cov_xy"], full[:3, 3:], atol=1e-13)
    np.testing.assert_allclose(s["cov_yy"], full[3:, 3:], atol=1e-13)
    np.testing.assert_allclose(s["corr_xy"], np.corrcoef(np.hstack([X, Y]), rowvar=False)[:3, 3:],
                               atol=1e-13)


# ---------------------------------------------------------------------------------------------
# ref_knn
# ---------------------------------------------------------------------------------------------


def _brute_knn(P, Q, k, metric, exclude_self):
    vals = np.full((len(P), k), np.nan)
    idx = np.full((len(P), k), -1)
    for a in range(len(P)):
        cand = []
        for b in range(len(Q)):
            if exclude_self and a == b:
                continue
            if metric == "sqeuclidean":
                s = sum((P[a, l] - Q[b, l]) ** 2 for l in range(P.shape[1]))
                cand.append((s, b))
            else:
                s = sum(P[a, l] * Q[b, l] for l in range(P.shape[1]))
                if metric == "cosine":
                    s /= np.sqrt(sum(x * x for x in P[a])) * np.sqrt(sum(x * x for x in Q[b]))
                cand.append((-s, b))  # descending similarity, then lowest index
        cand.sort()
        for j, (s, b) in enumerate(cand[:k]):
            vals[a, j] = s if metric == "sqeuclidean" else -s
            idx[a, j] = b
    return vals, idx


@pytest.mark.parametrize("metric", ["sqeuclidean", "inner", "cosine"])
def test_ref_knn_matches_double_loop(metric):
    g = rng(10)
    P, Q = g.normal(size=(6, 3)), g.normal(size=(7, 3))
    for (A, B, ex) in [(P, Q, False), (P, None, True), (P, P, False)]:
        v, i = ref_knn(A, B, k=4, metric=metric) if B is not None else ref_knn(A, k=4, metric=metric)
        bv, bi = _brute_knn(A, A if B is None else B, 4, metric, ex)
        np.testing.assert_array_equal(i, bi)
        np.testing.assert_allclose(v, bv, rtol=1e-12, atol=1e-12)


def test_ref_knn_ties_and_self_exclusion_by_index():
    # Grid points: many equal distances; a duplicate of point 0 at index 3 has distance 0.
    P = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    v, i = ref_knn(P, k=4)
    np.testing.assert_array_equal(i[0], [3, 1, 2, 4])  # duplicate kept, self excluded by index
    np.testing.assert_array_equal(v[0], [0.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(i[3], [0, 1, 2, 4])
    v, i = ref_knn(P, k=6)
    assert (i[:, 4:] == -1).all() and np.isnan(v[:, 4:]).all()


# ---------------------------------------------------------------------------------------------
# assert_topk_equivalent
# ---------------------------------------------------------------------------------------------


def test_topk_equivalent_identical_and_near_tie_swap():
    M = np.array([[0.9, 0.5, 0.5 + 1e-9, 0.1, 0.7, 0.7 - 2e-9]])
    rv, ri = ref_topk(M, 4)
    assert_topk_equivalent(rv, ri, rv, ri)
    # A lower-precision result swaps both near-tie groups.
    v = np.array([[0.9, 0.7 - 2e-9, 0.7, 0.5]])
    i = np.array([[0, 5, 4, 1]])
    assert not np.array_equal(i, ri)
    assert_topk_equivalent(v, i, rv, ri, atol=1e-7)
    assert_topk_equivalent(v, i, rv, ri, atol=1e-7, ref_matrix=M)
    with pytest.raises(AssertionError):  # too tight a tolerance: no longer a near-tie
        assert_topk_equivalent(v, i, rv, ri, rtol=0, atol=1e-12)


def test_topk_equivalent_boundary_tie_accepted():
    M = np.array([[0.9, 0.5, 0.5, 0.1]])
    rv, ri = ref_topk(M, 2)
    np.testing.assert_array_equal(ri, [[0, 1]])
    v, i = np.array([[0.9, 0.5]]), np.array([[0, 2]])
    assert_topk_equivalent(v, i, rv, ri, rtol=0, atol=0)
    assert_topk_equivalent(v, i, rv, ri, ref_matrix=M)
    # near (not exact) boundary tie
    M2 = np.array([[0.9, 0.5 + 3e-8, 0.5, 0.1]])
    rv, ri = ref_topk(M2, 2)
    assert_topk_equivalent(np.array([[0.9, 0.5]]), np.array([[0, 2]]), rv, ri, atol=1e-7, ref_matrix=M2)


def test_topk_equivalent_rejects_wrong_index_or_value():
    M = np.array([[0.9, 0.7, 0.5, 0.1]])
    rv, ri = ref_topk(M, 3)
    cases = [
        (np.array([[0.9, 0.7, 0.1]]), np.array([[0, 1, 3]])),  # wrong index at the boundary
        (np.array([[0.9, 0.7, 0.5]]), np.array([[0, 2, 1]])),  # indices swapped, values not
        (np.array([[0.9, 0.5, 0.7]]), np.array([[0, 2, 1]])),  # not sorted
        (np.array([[0.9, 0.7, 0.501]]), np.array([[0, 1, 2]])),  # value off
        (np.array([[0.9, 0.7, 0.5]]), np.array([[0, 1, 1]])),  # duplicate
        (np.array([[0.9, 0.7, NAN]]), np.array([[0, 1, -1]])),  # missing slot that should be found
    ]
    for v, i in cases:
        with pytest.raises(AssertionError):
            assert_topk_equivalent(v, i, rv, ri)
    # The boundary value claimed for a wrong index: indistinguishable from a boundary tie given
    # only the lists; the dense matrix tells.
    v, i = np.array([[0.9, 0.7, 0.5]]), np.array([[0, 1, 3]])
    assert_topk_equivalent(v, i, rv, ri)
    with pytest.raises(AssertionError):
        assert_topk_equivalent(v, i, rv, ri, ref_matrix=M)


def test_topk_equivalent_boundary_swap_needs_boundary_value():
    M = np.array([[0.9, 0.8, 0.5, 0.5]])
    rv, ri = ref_topk(M, 3)  # [0, 1, 2], boundary 0.5
    with pytest.raises(AssertionError):  # index 1 missing although 0.8 is far above the boundary
        assert_topk_equivalent(np.array([[0.9, 0.5, 0.5]]), np.array([[0, 2, 3]]), rv, ri, atol=0.05)
    assert_topk_equivalent(np.array([[0.9, 0.8, 0.5]]), np.array([[0, 1, 3]]), rv, ri, rtol=0, atol=0)


def test_topk_equivalent_left_out_better_entry_needs_matrix():
    M = np.array([[0.9, 0.5, 0.2, 0.6]])
    rv, ri = ref_topk(M, 2)
    # The result under test claims the oracle's values but for a wrong second index.
    with pytest.raises(AssertionError):
        assert_topk_equivalent(np.array([[0.9, 0.6]]), np.array([[0, 1]]), rv, ri, ref_matrix=M)


def test_topk_equivalent_tie_order_and_sign():
    M = np.array([[0.3, 0.8, 0.8, -0.9]])
    rv, ri = ref_topk(M, 2)
    v, i = np.array([[0.8, 0.8]]), np.array([[2, 1]])
    with pytest.raises(AssertionError):  # exact tie broken by highest index
        assert_topk_equivalent(v, i, rv, ri)
    assert_topk_equivalent(v, i, rv, ri, check_tie_order=False)
    rv, ri = ref_topk(M, 1, absolute=True)
    assert_topk_equivalent(np.array([[-0.9]]), np.array([[3]]), rv, ri, absolute=True)
    with pytest.raises(AssertionError):  # sign lost
        assert_topk_equivalent(np.array([[0.9]]), np.array([[3]]), rv, ri, absolute=True)


def test_topk_equivalent_ascending_and_1d():
    D = np.array([[4.0, 1.0, 2.0, 1.0 + 1e-9]])
    rv, ri = ref_topk(D, 2, largest=False)
    assert_topk_equivalent(np.array([[1.0, 1.0]]), np.array([[3, 1]]), rv, ri, largest=False,
                           atol=1e-7, check_tie_order=False)
    with pytest.raises(AssertionError):
        assert_topk_equivalent(np.array([[1.0, 4.0]]), np.array([[1, 0]]), rv, ri, largest=False)
    v, i = ref_topk(R81, 1)
    assert_topk_equivalent(v[:, 0], i[:, 0], v[:, 0], i[:, 0])


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, (3, 7), elements=st.sampled_from([-0.5, 0.1, 0.2, 0.3, 0.7])),
    hnp.arrays(np.float64, (3, 7), elements=st.floats(-1.0, 1.0)),
    st.integers(1, 8),
    st.booleans(),
)
def test_topk_equivalent_accepts_any_perturbation_within_tolerance(M, E, k, absolute):
    """Soundness: the exact top-k of a perturbed matrix (|error| <= eps) always passes against the
    oracle of the unperturbed one when eps is the tolerance, even with many exact ties."""
    eps = 1e-6
    M2 = M + 0.99 * eps * E  # 0.99: keep rounding of the sum inside the band
    v, i = ref_topk(M2, k, absolute=absolute)
    rv, ri = ref_topk(M, k, absolute=absolute)
    assert_topk_equivalent(v, i, rv, ri, rtol=0, atol=eps, absolute=absolute, ref_matrix=M)
    r, c, pv = ref_pairs(M2, 0.2, absolute=absolute)
    rr, rc, rpv = ref_pairs(M, 0.2, absolute=absolute)
    assert_pairs_equivalent(r, c, pv, rr, rc, rpv, 0.2, rtol=0, atol=eps, absolute=absolute, ref_matrix=M)


# ---------------------------------------------------------------------------------------------
# assert_pairs_equivalent
# ---------------------------------------------------------------------------------------------


def test_pairs_equivalent():
    M = np.array([[0.5 + 1e-9, 0.9, 0.2], [0.5 - 1e-9, 0.4, 0.95]])
    ref = ref_pairs(M, 0.5)
    assert_pairs_equivalent(*ref, *ref, 0.5)
    # threshold-band pairs may be present or absent
    assert_pairs_equivalent([0, 1, 1], [1, 0, 2], [0.9, 0.5, 0.95], *ref, 0.5, atol=1e-7, ref_matrix=M)
    assert_pairs_equivalent([0, 1], [1, 2], [0.9, 0.95], *ref, 0.5, atol=1e-7)  # (0, 0) absent
    with pytest.raises(AssertionError):  # a far-above-threshold pair missing
        assert_pairs_equivalent([0, 0], [0, 1], [0.5, 0.9], *ref, 0.5, atol=1e-7)
    with pytest.raises(AssertionError):  # a far-below-threshold pair present
        assert_pairs_equivalent([0, 0, 1, 1], [0, 1, 1, 2], [0.5, 0.9, 0.4, 0.95], *ref, 0.5, atol=1e-7)
    with pytest.raises(AssertionError):  # not sorted by (i, j)
        assert_pairs_equivalent([0, 1, 0], [1, 2, 0], [0.9, 0.95, 0.5], *ref, 0.5)
    with pytest.raises(AssertionError):  # wrong value
        assert_pairs_equivalent([0, 0, 1], [0, 1, 2], [0.5, 0.8, 0.95], *ref, 0.5)
    with pytest.raises(AssertionError):  # wrong sign under absolute
        refa = ref_pairs(-M, 0.5, absolute=True)
        assert_pairs_equivalent(refa[0], refa[1], -refa[2], *refa, 0.5, absolute=True)
