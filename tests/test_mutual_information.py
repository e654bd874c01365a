"""Li et al.'s percentile-bin mutual information against np.histogram2d references."""

import math

import numpy as np
import pytest

from congruence.matching import mutual_information, mutual_information_matrix, percentile_bins


def ref_edges(x, B=10):
    f = np.mean(x < 1e-6)
    edges = np.percentile(x, np.concatenate([[0.0], np.linspace(100.1 * f, 100, B)]))
    edges[0] -= 0.01
    return edges


def ref_mi(x, y, B=10, correction="miller_madow"):
    H, _, _ = np.histogram2d(x, y, bins=[ref_edges(x, B), ref_edges(y, B)])
    n = len(x)
    P = H / n
    px, py = P.sum(1), P.sum(0)
    mi = sum(P[a, b] * math.log(P[a, b] / (px[a] * py[b])) for a in range(B) for b in range(B) if P[a, b] > 0)
    if correction == "miller_madow":
        mi -= ((px > 0).sum() - 1) * ((py > 0).sum() - 1) / (2 * n)
    elif correction == "li2016":
        mi -= B * B / (2 * n * math.log(2))
    return mi


def relu_units(n, p, seed, sparsity=0.4):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 3))
    return np.maximum(Z @ rng.standard_normal((3, p)) + rng.standard_normal((n, p)) - sparsity, 0.0)


@pytest.mark.parametrize("correction", ["miller_madow", "li2016", None])
def test_pairs_and_matrix_match_histogram2d(correction):
    X, Y = relu_units(800, 6, 1), relu_units(800, 5, 2)
    Y[:, 0] = X[:, 0]  # identical units
    M = mutual_information_matrix(X, Y, correction=correction)
    assert M.shape == (6, 5)
    for i in range(6):
        for j in range(5):
            ref = ref_mi(X[:, i], Y[:, j], correction=correction)
            assert M[i, j] == pytest.approx(ref, abs=1e-12)
            assert mutual_information(X[:, i], Y[:, j], correction=correction) == pytest.approx(ref, abs=1e-12)


def test_bins_follow_histogram_edges_and_zero_bin():
    x = relu_units(1000, 1, 3)[:, 0]
    codes = percentile_bins(x)[:, 0]
    counts, _ = np.histogram(x, bins=ref_edges(x))
    np.testing.assert_array_equal(np.bincount(codes, minlength=10), counts)
    assert np.all(codes[x == 0] == 0) and np.all(codes[x > 0] > 0)  # bin 1 holds the zeros


def test_independent_and_identical_units():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(20000), rng.standard_normal(20000)
    assert abs(mutual_information(a, b)) < 3e-3  # Miller-Madow removes most of the plug-in bias
    assert mutual_information(a, b, correction=None) > mutual_information(a, b)
    h = mutual_information(a, a, correction=None)
    f = np.mean(a < 1e-6)  # the values below 1e-6 (here the negative half) share the first bin
    assert h == pytest.approx(-f * math.log(f) - (1 - f) * math.log((1 - f) / 9), rel=1e-3)  # I(a; a) = H(bins)


def test_errors():
    with pytest.raises(ValueError, match="correction"):
        mutual_information(np.ones(5), np.ones(5), correction="bits")
    with pytest.raises(ValueError, match="bins"):
        percentile_bins(np.ones(5), bins=1)
    with pytest.raises(ValueError, match="NaN"):
        mutual_information(np.array([1.0, np.nan, 2.0]), np.ones(3))
    with pytest.raises(ValueError, match="same number of samples"):
        mutual_information_matrix(np.ones((4, 2)), np.ones((5, 2)))
