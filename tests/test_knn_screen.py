"""The self-join kNN screen (upper-triangle float32 product, two-sided lists) against brute force."""

import numpy as np
import pytest

from congruence import _cpu
from congruence._knn_screen import self_join_candidates


def brute(X, kk):
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return d2, np.argsort(d2, axis=1, kind="stable")[:, :kk]


@pytest.mark.parametrize("N, D, kk", [(2, 3, 1), (7, 2, 6), (513, 5, 9), (1100, 16, 20), (1300, 40, 48)])
@pytest.mark.parametrize("threads", [1, 2])
def test_candidates_are_the_nearest_other_points(N, D, kk, threads):
    rng = np.random.default_rng(N + D)
    X = 50.0 + rng.standard_normal((N, D)) * rng.uniform(0.2, 2.0, D)  # an offset the centring removes
    got = self_join_candidates(X, kk, threads)
    assert got.shape == (N, kk)
    d2, want = brute(X, kk)
    for i in range(N):
        assert i not in got[i] and len(set(got[i])) == kk
        # the same set, or (float32 near-ties at the cut) the same distances
        if set(got[i]) != set(want[i]):
            assert np.allclose(np.sort(d2[i, got[i]]), d2[i, want[i]], rtol=1e-5)


def test_duplicates_and_tile_boundaries():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 4))
    X = np.concatenate([base, base, base[:100]])  # every point has exact twins across tile edges
    got = self_join_candidates(X, 2, 2)
    d2, _ = brute(X, 2)
    assert np.all(np.sort(d2[np.arange(len(X))[:, None], got], axis=1)[:, 0] == 0.0)


def test_bad_panels_raise():
    with pytest.raises(ValueError, match="one shape"):
        _cpu.self_join_screen(np.zeros((3, 5), np.float32), np.zeros((3, 4), np.float32), 512,
                              (np.zeros((5, 2), np.float32), np.zeros((5, 2), np.int64), np.zeros(5, np.int32),
                               np.zeros(5, np.float32)),
                              (np.zeros((5, 2), np.float32), np.zeros((5, 2), np.int64), np.zeros(5, np.int32),
                               np.zeros(5, np.float32)), 1)
