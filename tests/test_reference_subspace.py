"""The subspace-match oracle (tests/reference_subspace.py) reproduces METHODS.md §8.5, and the
pure-PyTorch P7 baseline (congruence.baselines.max_match_lstsq) equals the oracle."""

import sys

import numpy as np
import pytest

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import reference_subspace as R  # noqa: E402


def r(*ints):
    return np.array(ints, dtype=np.int64)


@pytest.fixture(scope="module")
def planted():
    return R.planted()


@pytest.fixture(scope="module")
def planted_simple_x0(planted):
    X, Y = planted
    return R.simple_match(X, Y, 0.1, ("x", 0))


# --- toy (METHODS §8.5) --------------------------------------------------------------------------


def test_toy_layout():
    X, Y = R.toy()
    assert X.shape == (6, 4) and Y.shape == (6, 5)
    np.testing.assert_array_equal(X[:, 0], [1, 0.5, 0, 0, 0, 0])
    np.testing.assert_array_equal(Y[:, 2], [0.5, 1, 0, 0, 0, 0])


def test_toy_maximum_match():
    X, Y = R.toy()
    xi, yi, passes = R.max_match(X, Y, 0.1)
    np.testing.assert_array_equal(xi, r(0, 1, 2, 3))
    np.testing.assert_array_equal(yi, r(1, 2, 3, 4))
    assert passes >= 1
    assert R.is_match(X, Y, xi, yi, 0.1)
    assert R.similarity(xi, yi, 4, 5) == pytest.approx(8 / 9)
    # adding Y0 (e3) breaks the match: nothing in X reaches e3
    assert not R.is_match(X, Y, xi, r(0, 1, 2, 3, 4), 0.1)


def test_toy_simple_match_of_x0():
    X, Y = R.toy()
    xi, yi = R.simple_match(X, Y, 0.1, ("x", 0))
    np.testing.assert_array_equal(xi, r(0, 1))
    np.testing.assert_array_equal(yi, r(1, 2))
    assert R.is_match(X, Y, xi, yi, 0.1)
    # a neuron outside the maximum match has no simple match
    xe, ye = R.simple_match(X, Y, 0.1, ("y", 0))
    assert xe.size == 0 and ye.size == 0


def test_toy_distance_and_maximal_epsilon():
    d = R.dist_to_span(np.array([1.0, 1.0]), np.array([[1.0], [0.0]]))
    assert d / np.sqrt(2.0) == pytest.approx(0.7071067811865476, abs=1e-15)
    assert round(d / np.sqrt(2.0), 4) == 0.7071
    assert R.dist_to_span(np.array([3.0, 4.0]), np.zeros((2, 0))) == pytest.approx(5.0)
    X, Y = R.toy()
    assert R.maximal_epsilon(X, Y) == pytest.approx(1.0, abs=1e-15)
    xi, yi, _ = R.max_match(X, Y, R.maximal_epsilon(X, Y))
    assert len(xi) == 4 and len(yi) == 5  # complete layers match at the maximal epsilon


def test_toy_union_of_two_matches_is_a_match():
    X, Y = R.toy()
    a = R.simple_match(X, Y, 0.1, ("x", 0))
    b = R.simple_match(X, Y, 0.1, ("x", 2))
    np.testing.assert_array_equal(b[0], r(2))
    np.testing.assert_array_equal(b[1], r(3))
    ux, uy = np.union1d(a[0], b[0]), np.union1d(a[1], b[1])
    assert R.is_match(X, Y, ux, uy, 0.1)


def test_toy_random_order_simple_match():
    X, Y = R.toy()
    for seed in range(4):
        xi, yi = R.simple_match(X, Y, 0.1, ("x", 0), random=True, seed=seed)
        assert 0 in xi and R.is_match(X, Y, xi, yi, 0.1)
        again = R.simple_match(X, Y, 0.1, ("x", 0), random=True, seed=seed)
        np.testing.assert_array_equal(xi, again[0])
        np.testing.assert_array_equal(yi, again[1])


def test_dead_neurons_never_match_but_count():
    X, Y = R.toy()
    X = np.hstack([X, np.zeros((6, 1))])
    Y = np.hstack([Y, np.full((6, 1), 1e-18)])
    np.testing.assert_array_equal(R.dead_mask(X), [False] * 4 + [True])
    np.testing.assert_array_equal(R.dead_mask(Y), [False] * 5 + [True])
    xi, yi, _ = R.max_match(X, Y, 0.1)
    np.testing.assert_array_equal(xi, r(0, 1, 2, 3))
    np.testing.assert_array_equal(yi, r(1, 2, 3, 4))
    assert R.similarity(xi, yi, 5, 6) == pytest.approx(8 / 11)
    assert not R.is_match(X, Y, r(0, 1, 4), r(1, 2), 0.1)
    assert R.maximal_epsilon(X, Y) == pytest.approx(1.0)


def test_affine_adds_the_ones_vector_to_both_spans():
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((50, 5))
    X = Y @ rng.standard_normal((5, 5)) + 3.0  # a constant offset on every X neuron
    xi, yi, _ = R.max_match(X, Y, 0.1)
    assert xi.size == 0 and yi.size == 0
    xi, yi, _ = R.max_match(X, Y, 0.1, affine=True)
    np.testing.assert_array_equal(xi, np.arange(5))
    np.testing.assert_array_equal(yi, np.arange(5))
    assert R.is_match(X, Y, xi, yi, 0.1, affine=True)
    assert not R.is_match(X, Y, xi, yi, 0.1)
    assert R.maximal_epsilon(X, Y, affine=True) < 1e-12


# --- planted subspace (METHODS §8.5) -------------------------------------------------------------


def test_planted_draws_and_layout(planted):
    X, Y = planted
    assert X.shape == (200, 120) and Y.shape == (200, 120)
    assert np.linalg.matrix_rank(np.hstack([X[:, :20], Y[:, :20]])) == 10
    assert np.linalg.matrix_rank(X) == 110  # 20 planted columns span 10 dimensions


def test_planted_maximum_match_at_0_1(planted):
    X, Y = planted
    xi, yi, _ = R.max_match(X, Y, 0.1)
    np.testing.assert_array_equal(xi, np.arange(20))
    np.testing.assert_array_equal(yi, np.arange(20))
    assert R.similarity(xi, yi, 120, 120) == pytest.approx(40 / 240)
    assert round(R.similarity(xi, yi, 120, 120), 4) == 0.1667
    assert R.is_match(X, Y, xi, yi, 0.1)


def test_planted_simple_match_of_x0(planted, planted_simple_x0):
    X, Y = planted
    xi, yi = planted_simple_x0
    np.testing.assert_array_equal(xi, np.r_[0, 11:20])
    np.testing.assert_array_equal(yi, np.arange(10, 20))
    assert R.is_match(X, Y, xi, yi, 0.1)


def test_planted_union_of_two_simple_matches_is_a_match(planted, planted_simple_x0):
    X, Y = planted
    a = planted_simple_x0
    b = R.simple_match(X, Y, 0.1, ("y", 0))
    assert 0 in b[1] and R.is_match(X, Y, b[0], b[1], 0.1)
    assert not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
    ux, uy = np.union1d(a[0], b[0]), np.union1d(a[1], b[1])
    assert R.is_match(X, Y, ux, uy, 0.1)


def test_planted_maximal_epsilon(planted):
    X, Y = planted
    assert R.maximal_epsilon(X, Y) == pytest.approx(0.7828188866, abs=1e-9)


@pytest.mark.parametrize("eps, nx, ny", [(0.3, 20, 20), (0.5, 20, 20), (0.6, 20, 20), (0.7, 20, 20),
                                         (0.75, 113, 116), (0.79, 120, 120)])
def test_planted_maximum_match_sizes(planted, eps, nx, ny):
    X, Y = planted
    xi, yi, _ = R.max_match(X, Y, eps)
    assert (len(xi), len(yi)) == (nx, ny)
    assert R.is_match(X, Y, xi, yi, eps)


@pytest.mark.parametrize("min_size", [20, 60])
def test_planted_minimal_epsilon(planted, min_size):
    X, Y = planted
    tol = 1e-4
    eps = R.minimal_epsilon(X, Y, min_size, tol=tol)
    assert 0.0 <= eps <= R.maximal_epsilon(X, Y)
    xi, yi, _ = R.max_match(X, Y, eps)
    assert len(xi) >= min_size and len(yi) >= min_size
    xl, yl, _ = R.max_match(X, Y, eps - 2 * tol)
    assert len(xl) < min_size or len(yl) < min_size
    if min_size == 20:
        assert eps <= tol  # the planted rows are exact: only rounding keeps ε = 0 from matching


# --- the P7 baseline equals the oracle -----------------------------------------------------------


def _random_planted(seed, M=150, k=6, planted=(12, 9), noise=(25, 30), rel_noise=1e-4, dead=True):
    """Layers sharing a k-dim subspace: planted neurons in it (plus tiny noise), Gaussian others,
    columns shuffled; optionally one dead column per layer. Planted relative distances ~1e-4 and
    Gaussian ones ~0.8 keep every decision far from ε in [0.05, 0.5]."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((M, k))
    layers, truth = [], []
    for p, q in zip(planted, noise):
        P = B @ rng.standard_normal((k, p))
        P += rel_noise * np.linalg.norm(P, axis=0) / np.sqrt(M) * rng.standard_normal((M, p))
        Z = np.hstack([P, rng.standard_normal((M, q))] + ([np.zeros((M, 1))] if dead else []))
        perm = rng.permutation(Z.shape[1])
        layers.append(Z[:, perm])
        truth.append(np.sort(np.flatnonzero(perm < p)))
    return layers[0], layers[1], truth


def _cases():
    yield "toy", *R.toy(), [0.1, 0.5, 1.0]
    yield "planted", *R.planted(), [0.1, 0.3, 0.75, 0.79]
    for seed in range(3):
        X, Y, _ = _random_planted(seed)
        yield f"random{seed}", X, Y, [0.05, 0.2, 0.5]


def test_baseline_equals_reference():
    torch = pytest.importorskip("torch")
    from congruence.baselines import max_match_lstsq

    for name, X, Y, epsilons in _cases():
        for eps in epsilons:
            want = R.max_match(X, Y, eps)
            for inputs in ((X, Y), (torch.from_numpy(X), torch.from_numpy(Y))):
                got = max_match_lstsq(*inputs, eps)
                assert isinstance(got[0], np.ndarray) and got[0].dtype == np.int64
                np.testing.assert_array_equal(got[0], want[0], err_msg=f"{name} eps={eps}")
                np.testing.assert_array_equal(got[1], want[1], err_msg=f"{name} eps={eps}")
                assert got[2] == want[2], f"{name} eps={eps}: passes {got[2]} != {want[2]}"
    # float32 tensors are converted to float64 (the toy is exact in float32)
    X, Y = R.toy()
    got = max_match_lstsq(torch.from_numpy(X).float(), torch.from_numpy(Y).float(), 0.1)
    np.testing.assert_array_equal(got[0], r(0, 1, 2, 3))
    np.testing.assert_array_equal(got[1], r(1, 2, 3, 4))


def test_baseline_random_cases_recover_the_planted_neurons():
    pytest.importorskip("torch")
    from congruence.baselines import max_match_lstsq

    for seed in range(3):
        X, Y, (tx, ty) = _random_planted(seed)
        xi, yi, _ = max_match_lstsq(X, Y, 0.2)
        np.testing.assert_array_equal(xi, tx)
        np.testing.assert_array_equal(yi, ty)
        assert R.is_match(X, Y, xi, yi, 0.2)


def test_baseline_affine_equals_reference():
    pytest.importorskip("torch")
    from congruence.baselines import max_match_lstsq

    X, Y, _ = _random_planted(7)
    X = X + 2.5 * (np.linalg.norm(X, axis=0) > 0)  # offset the live neurons only
    for affine in (False, True):
        want = R.max_match(X, Y, 0.2, affine=affine)
        got = max_match_lstsq(X, Y, 0.2, affine=affine)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert got[2] == want[2]
    assert len(want[0]) == 12  # with the ones vector the offset planted neurons match again


def test_baseline_explicit_svd_route_equals_reference():
    """The route used on CUDA (explicit SVD instead of gelsd), exercised on the CPU."""
    pytest.importorskip("torch")
    from congruence._subspace_baselines import _max_match

    for name, X, Y, epsilons in _cases():
        for eps in epsilons:
            want = R.max_match(X, Y, eps)
            got = _max_match(X, Y, eps, affine=False, explicit_svd=True)
            np.testing.assert_array_equal(got[0], want[0], err_msg=f"{name} eps={eps}")
            np.testing.assert_array_equal(got[1], want[1], err_msg=f"{name} eps={eps}")
            assert got[2] == want[2]
    X, Y, _ = _random_planted(7)
    X = X + 2.5 * (np.linalg.norm(X, axis=0) > 0)
    want = R.max_match(X, Y, 0.2, affine=True)
    got = _max_match(X, Y, 0.2, affine=True, explicit_svd=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
