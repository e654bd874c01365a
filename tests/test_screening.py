"""The bfloat16 candidate screen (congruence.screening) against float64 numpy references."""

import numpy as np
import pytest

pytest.importorskip("torch")

import congruence as cg  # noqa: E402
from congruence import _cpu  # noqa: E402
from congruence.screening import screened_candidates  # noqa: E402


def corr64(X, Y):
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    return (Xc / np.linalg.norm(Xc, axis=0)).T @ (Yc / np.linalg.norm(Yc, axis=0))


def low_rank_pair(m, p, q, rank, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((m, rank))
    X = Z @ rng.standard_normal((rank, p)) + rng.standard_normal((m, p))
    Y = Z @ rng.standard_normal((rank, q)) + rng.standard_normal((m, q))
    return X.astype(dtype), Y.astype(dtype)


def top_sets(R, k, axis):
    S = R if axis == 1 else R.T
    order = np.lexsort((np.broadcast_to(np.arange(S.shape[1]), S.shape), -S), axis=1)[:, :k]
    return order


@pytest.mark.parametrize("p,q,rank,seed", [(700, 900, 24, 0), (1300, 600, 6, 1)])
def test_screen_keeps_every_exact_top_k_member_and_values_are_exact(p, q, rank, seed):
    X, Y = low_rank_pair(512, p, q, rank, seed)
    k = 16
    c = screened_candidates(X, Y, k)
    R = corr64(X.astype(np.float64), Y.astype(np.float64))
    pairs = set(zip(c.rows.tolist(), c.cols.tolist()))
    assert len(pairs) == len(c.rows)  # each pair once
    rows_top, cols_top = top_sets(R, k, 1), top_sets(R, k, 0)
    missed = sum((i, int(j)) not in pairs for i in range(p) for j in rows_top[i])
    missed += sum((int(i), j) not in pairs for j in range(q) for i in cols_top[j])
    assert missed == 0
    np.testing.assert_allclose(c.values, R[c.rows, c.cols], rtol=0, atol=2e-6)
    assert np.all(np.diff(c.rows) >= 0) and c.indptr[-1] == len(c.rows)
    assert np.array_equal(np.repeat(np.arange(p), np.diff(c.indptr)), c.rows)
    ka = min(k + 16, q)
    assert np.all(np.diff(c.indptr) >= ka)  # a row's own list is always there
    assert c.details["k_screen"] == ka


def test_screen_of_narrow_layers_is_the_full_matrix():
    X, Y = low_rank_pair(200, 9, 7, 3, 2, dtype=np.float64)
    c = screened_candidates(X, Y, 4)  # 4 + 16 exceeds both widths: every pair is a candidate
    assert len(c.rows) == 9 * 7
    R = corr64(X, Y)
    np.testing.assert_allclose(c.values, R[c.rows, c.cols], atol=2e-6)


def test_screen_ties_and_constant_units():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 40))
    X[:, 5] = 2.0  # constant: correlates 0 with everything, with the engine's warning
    Y = np.concatenate([X[:, :20], X[:, :20]], axis=1)  # every column twice: exact ties
    with pytest.warns(cg.ConstantFeatureWarning):
        c = screened_candidates(X, Y, 1, margin=0)
    by_row = {i: c.cols[c.indptr[i]:c.indptr[i + 1]] for i in range(40)}
    for i in range(20):
        if i != 5:
            assert i in by_row[i]  # the lower of the two tied copies wins the row's only slot
    assert np.all(c.values[c.rows == 5] == 0.0)


def test_screen_errors():
    X = np.ones((10, 3))
    with pytest.raises(ValueError, match="k must be"):
        screened_candidates(X, X, 0)
    with pytest.raises(ValueError, match="margin"):
        screened_candidates(X, X, 1, margin=-1)
    with pytest.raises(ValueError, match="same number of samples"):
        screened_candidates(np.zeros((10, 3)), np.zeros((11, 3)), 1)
    bad = np.random.default_rng(0).standard_normal((10, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X"):
        screened_candidates(bad, np.ones((10, 2)), 1)


def test_pair_dot_products_and_candidate_graph_check_their_inputs():
    A = np.ones((3, 4), np.float32)
    out = np.empty(1)
    with pytest.raises(ValueError, match="out of range"):
        _cpu.pair_dot_products(A, A, np.array([3]), np.array([0]), out, 1)
    lists = (np.zeros((2, 2), np.float32), np.full((2, 2), 5), np.ones(2, np.int32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="out of range"):
        _cpu.candidate_graph(lists, 2, lists, 2)
