"""Dense linear assignment against scipy.optimize.linear_sum_assignment (an independent solver)."""

import numpy as np
import pytest

import congruence as cg

scipy_opt = pytest.importorskip("scipy.optimize")


def objective(C, r, c):
    return float(np.asarray(C, dtype=np.float64)[r, c].sum())


def check(C, maximize=False):
    r, c = cg.linear_assignment(C, maximize=maximize)
    rs, cs = scipy_opt.linear_sum_assignment(C, maximize=maximize)
    k = min(np.shape(C))
    assert r.shape == c.shape == (k,) and r.dtype == c.dtype == np.int64
    assert np.all(np.diff(r) > 0) and len(set(c.tolist())) == k  # rows increasing, columns distinct
    ours, ref = objective(C, r, c), objective(C, rs, cs)
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-9)
    return r, c


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (7, 13), (13, 7), (40, 40), (60, 25), (25, 61)])
@pytest.mark.parametrize("maximize", [False, True])
def test_random_costs_match_scipy(shape, maximize):
    rng = np.random.default_rng(sum(shape) + maximize)
    for _ in range(5):
        check(rng.standard_normal(shape), maximize)


def test_many_ties_and_integer_costs():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n, m = rng.integers(1, 12, size=2)
        C = rng.integers(0, 3, size=(n, m))  # integers, heavy ties
        check(C)
        check(C, maximize=True)
    check(np.zeros((6, 9)))
    r, c = check(np.ones((4, 4)))
    assert sorted(c.tolist()) == [0, 1, 2, 3]


def test_correlation_like_instances():
    # the neuron-matching use: maximise the correlation between units of two networks
    rng = np.random.default_rng(5)
    for p, q in ((300, 300), (200, 350)):
        Z = rng.standard_normal((2000, 40))
        A = Z @ rng.standard_normal((40, p)) + rng.standard_normal((2000, p))
        perm = rng.permutation(q)
        B = np.empty((2000, q))
        B[:, perm[:p]] = A + 0.5 * rng.standard_normal((2000, p))
        if q > p:
            B[:, perm[p:]] = rng.standard_normal((2000, q - p))
        R = cg.correlation(A.astype(np.float32), B.astype(np.float32)).astype(np.float64)
        r, c = check(R, maximize=True)
        assert np.mean(c == perm[:p]) > 0.99  # the planted partners are found


def test_forbidden_pairs_and_infeasible():
    C = np.array([[1.0, np.inf, 3.0], [np.inf, 2.0, np.inf], [4.0, np.inf, np.inf]])
    r, c = check(C)
    assert c.tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="infeasible"):
        cg.linear_assignment(np.array([[1.0, np.inf], [2.0, np.inf], [np.inf, np.inf]]))
    with pytest.raises(ValueError, match="infeasible"):
        cg.linear_assignment(np.array([[np.inf, np.inf]]))
    S = np.array([[1.0, -np.inf], [-np.inf, 2.0]])  # maximising: -inf forbids
    r, c = cg.linear_assignment(S, maximize=True)
    assert c.tolist() == [0, 1]


def test_large_offsets_and_scales():
    rng = np.random.default_rng(8)
    base = rng.standard_normal((30, 30))
    r0, c0 = cg.linear_assignment(base)
    for shift, scale in ((1e9, 1.0), (0.0, 1e-9), (-1e6, 1e3)):
        r, c = cg.linear_assignment(base * scale + shift)
        assert objective(base, r, c) == pytest.approx(objective(base, r0, c0), rel=1e-6)


def test_empty_and_bad_input():
    r, c = cg.linear_assignment(np.zeros((0, 4)))
    assert r.shape == c.shape == (0,)
    r, c = cg.linear_assignment(np.zeros((3, 0)))
    assert r.shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        cg.linear_assignment(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="unbounded"):
        cg.linear_assignment(np.array([[1.0, -np.inf]]))
    with pytest.raises(ValueError, match="unbounded"):
        cg.linear_assignment(np.array([[1.0, np.inf]]), maximize=True)
    with pytest.raises(ValueError, match="2-D"):
        cg.linear_assignment(np.ones(3))
    with pytest.raises(TypeError, match="real numbers"):
        cg.linear_assignment(np.array([["a", "b"]]))


def test_torch_and_float32_inputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    C = rng.standard_normal((20, 25)).astype(np.float32)
    r1, c1 = cg.linear_assignment(C)
    r2, c2 = cg.linear_assignment(torch.from_numpy(C))
    assert objective(C, r1, c1) == pytest.approx(objective(C, r2, c2))
    check(C)
