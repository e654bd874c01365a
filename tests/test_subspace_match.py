"""congruence.subspace (Gram-space pruning) against the least-squares oracle and METHODS §8.5."""

import numpy as np
import pytest

import congruence as cg
from congruence.subspace import SubspaceGram, conv_max_match, subspace_gram
from congruence.subspace.span import factor_span, span_residuals

import reference_subspace as ref  # noqa: E402


def random_planted(seed, M=300, n1=40, n2=35, dim=6, shared=(12, 10), noise=1e-3, dead=True):
    """Shared neurons near a common dim-dimensional subspace, the rest random; columns shuffled."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((M, dim))

    def layer(n, k):
        A = rng.standard_normal((M, n))
        A[:, :k] = B @ rng.standard_normal((dim, k)) + noise * rng.standard_normal((M, k))
        if dead:
            A[:, k] = 0.0
        return A[:, rng.permutation(n)]

    return layer(n1, shared[0]), layer(n2, shared[1])


def far_from_boundary(X, Y, eps, I, J, margin=0.02):
    """Every pruning decision of the oracle's final pass is at least ``margin`` away from ε."""
    live_x = np.nonzero(~ref.dead_mask(X))[0]
    live_y = np.nonzero(~ref.dead_mask(Y))[0]
    for Z, live, basis_of in ((X, live_x, Y[:, J]), (Y, live_y, X[:, I])):
        for v in live:
            r = ref.dist_to_span(Z[:, v], basis_of) / np.linalg.norm(Z[:, v])
            if abs(r - eps) < margin:
                return False
    return True


def test_toy_and_planted_vectors_of_methods():
    X, Y = ref.toy()
    m = cg.max_match(X, Y, 0.1)
    assert m.x.tolist() == [0, 1, 2, 3] and m.y.tolist() == [1, 2, 3, 4]
    s = cg.simple_match(X, Y, 0.1, ("x", 0))
    assert s.x.tolist() == [0, 1] and s.y.tolist() == [1, 2]
    assert cg.maximal_epsilon(X, Y) == pytest.approx(1.0, abs=1e-12)
    X, Y = ref.planted()
    m = cg.max_match(X, Y, 0.1)
    assert m.x.tolist() == list(range(20)) and m.y.tolist() == list(range(20))
    assert m.similarity == pytest.approx(40 / 240)
    s = cg.simple_match(X, Y, 0.1, ("x", 0))
    assert s.x.tolist() == [0] + list(range(11, 20)) and s.y.tolist() == list(range(10, 20))
    assert cg.maximal_epsilon(X, Y) == pytest.approx(0.7828188866, abs=1e-9)
    sizes = {e: cg.max_match(X, Y, e) for e in (0.3, 0.5, 0.6, 0.7, 0.75, 0.79)}
    assert all((len(sizes[e].x), len(sizes[e].y)) == (20, 20) for e in (0.3, 0.5, 0.6, 0.7))
    assert (len(sizes[0.75].x), len(sizes[0.75].y)) == (113, 116)
    assert (len(sizes[0.79].x), len(sizes[0.79].y)) == (120, 120)


def test_planted_rows_are_in_span_to_1e7_on_the_gram_path():
    X, Y = ref.planted()
    g = subspace_gram(X, Y)
    f = factor_span(g.G, np.arange(120, 140))  # Y's planted neurons
    r = np.sqrt(span_residuals(g.G, f, np.arange(20)) / g.norms2()[:20])
    assert r.max() <= 1e-7
    assert f.rank == 10  # dependent neurons stay out of the basis


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_gram_path_equals_least_squares_pruning(seed, eps):
    X, Y = random_planted(seed)
    I, J, passes = ref.max_match(X, Y, eps)
    if not far_from_boundary(X, Y, eps, I, J):
        pytest.skip("a decision of this draw sits near ε")
    m = cg.max_match(X, Y, eps)
    assert np.array_equal(m.x, I) and np.array_equal(m.y, J)
    assert m.details["passes"] == passes
    assert m.similarity == pytest.approx(ref.similarity(I, J, X.shape[1], Y.shape[1]))
    assert m.details["dead_x"] == 1 and m.details["dead_y"] == 1
    cs = cg.CrossStats()  # streamed, default (data-derived) shifts: raw inner products recovered exactly
    for r0 in range(0, X.shape[0], 70):
        cs.update(X[r0:r0 + 70], Y[r0:r0 + 70])
    ms = cg.max_match(stats=cs, eps=eps)
    assert np.array_equal(ms.x, I) and np.array_equal(ms.y, J)


@pytest.mark.parametrize("seed", range(3))
def test_affine_simple_and_epsilons_equal_the_oracle(seed):
    X, Y = random_planted(10 + seed, M=200, n1=25, n2=22)
    X[:, :5] += 3.0  # offsets make the constant vector matter
    Y[:, :4] -= 2.0
    for affine in (False, True):
        I, J, _ = ref.max_match(X, Y, 0.2, affine=affine)
        m = cg.max_match(X, Y, 0.2, affine=affine)
        if far_from_boundary(X, Y, 0.2, I, J) or affine:
            assert np.array_equal(m.x, I) and np.array_equal(m.y, J)
    assert cg.maximal_epsilon(X, Y) == pytest.approx(ref.maximal_epsilon(X, Y), rel=1e-9)
    assert cg.maximal_epsilon(X, Y, affine=True) == pytest.approx(ref.maximal_epsilon(X, Y, affine=True), rel=1e-9)
    v = ("x", int(np.nonzero(~ref.dead_mask(X))[0][0]))
    for rnd in (False, True):
        got = cg.simple_match(X, Y, 0.3, v, random=rnd, seed=seed)
        want = ref.simple_match(X, Y, 0.3, v, random=rnd, seed=seed)
        assert np.array_equal(got.x, want[0]) and np.array_equal(got.y, want[1])
    e = cg.minimal_epsilon(X, Y, 8, tol=1e-4)
    e_ref = ref.minimal_epsilon(X, Y, 8, tol=1e-4)
    assert abs(e - e_ref) <= 2e-4
    big = cg.max_match(X, Y, e)
    assert len(big.x) >= 8 and len(big.y) >= 8


def test_union_of_two_matches_is_a_match_and_simple_matches_are_matches():
    X, Y = ref.planted()
    a = cg.simple_match(X, Y, 0.1, ("x", 0))
    b = cg.simple_match(X, Y, 0.1, ("y", 0))
    assert ref.is_match(X, Y, a.x, a.y, 0.1) and ref.is_match(X, Y, b.x, b.y, 0.1)
    ux, uy = np.union1d(a.x, b.x), np.union1d(a.y, b.y)
    assert ref.is_match(X, Y, ux, uy, 0.1)
    m = cg.max_match(X, Y, 0.1)
    assert set(ux) <= set(m.x) and set(uy) <= set(m.y)


def test_not_in_the_maximum_match_gives_an_empty_simple_match():
    X, Y = ref.planted()
    s = cg.simple_match(X, Y, 0.1, ("x", 50))
    assert s.details["found"] is False and len(s.x) == 0 and len(s.y) == 0 and s.similarity == 0


def test_near_boundary_decisions_are_rechecked_on_raw_vectors():
    rng = np.random.default_rng(5)
    M = 200
    y = rng.standard_normal((M, 1))
    e = rng.standard_normal((M, 1))
    e -= y * (y.T @ e) / (y.T @ y)  # orthogonal to y
    x = y + e / np.linalg.norm(e) * np.linalg.norm(y) * 0.25  # relative distance to span(y) = 0.25/sqrt(1.0625)
    r = 0.25 / np.sqrt(1.0625)
    m = cg.max_match(x, y, r + 5e-7)  # inside the band: decided on the raw vectors
    assert m.details["rechecked"] >= 1 and len(m.x) == 1
    m = cg.max_match(x, y, r - 5e-7)
    assert len(m.x) == 0


def test_dead_layers_errors_and_inputs():
    X, Y = ref.toy()
    with pytest.raises(ValueError, match="eps"):
        cg.max_match(X, Y, -0.1)
    with pytest.raises(ValueError, match="eps"):
        cg.max_match(X, Y, float("nan"))
    with pytest.raises(ValueError, match="neuron"):
        cg.simple_match(X, Y, 0.1, ("z", 0))
    with pytest.raises(ValueError, match="out of range"):
        cg.simple_match(X, Y, 0.1, ("y", 5))
    with pytest.raises(ValueError, match="min_size"):
        cg.minimal_epsilon(X, Y, 99)
    with pytest.raises(ValueError, match="same number of samples"):
        cg.max_match(X, Y[:-1], 0.1)
    with pytest.raises(ValueError, match="either X and Y, or stats|one of"):
        cg.max_match(X, Y, 0.1, stats=cg.CrossStats())
    with pytest.raises(ValueError, match="no live neurons"):
        cg.maximal_epsilon(np.zeros((6, 2)), Y)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cg.max_match(bad, Y, 0.1)
    g = subspace_gram(X, Y)
    assert isinstance(g, SubspaceGram)
    assert np.array_equal(cg.max_match(gram=g, eps=0.1).x, [0, 1, 2, 3])


def test_conv_protocol_subsamples_the_same_columns_for_both_layers():
    rng = np.random.default_rng(0)
    N, C, H, W = 40, 6, 5, 5
    base = rng.standard_normal((N, 3, H, W))
    mix_a, mix_b = rng.standard_normal((3, C)), rng.standard_normal((3, C))
    A = np.einsum("nkhw,kc->nchw", base, mix_a)
    B = np.einsum("nkhw,kc->nchw", base, mix_b)
    B[:, 4:] = rng.standard_normal((N, 2, H, W))  # two channels of B are unrelated
    full = conv_max_match(A, B, 0.1, columns="all")
    assert full.similarity == pytest.approx((6 + 4) / 12)
    sub = conv_max_match(A, B, 0.1, columns=300, repeats=4, seed=1)
    assert sub.similarities.shape == (4,) and sub.similarity == pytest.approx((6 + 4) / 12)
    again = conv_max_match(A, B, 0.1, columns=300, repeats=4, seed=1)
    assert np.array_equal(again.similarities, sub.similarities)
    flat = np.moveaxis(A, 1, -1).reshape(-1, C)
    assert np.array_equal(cg.subspace.positions(A), flat)
    with pytest.raises(ValueError, match="columns"):
        conv_max_match(A, B, 0.1, columns=10**6)
    with pytest.raises(ValueError, match="sample columns"):
        conv_max_match(A, B[:-1], 0.1)
