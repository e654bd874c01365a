"""match_neurons against float64 NumPy references (METHODS.md §3.2–3.3)."""

import numpy as np
import pytest

import congruence as cg

scipy_opt = pytest.importorskip("scipy.optimize")


def corr64(X, Y):
    Xc = X - X.mean(0)
    Yc = Y - Y.mean(0)
    return (Xc.T @ Yc) / np.outer(np.linalg.norm(Xc, axis=0), np.linalg.norm(Yc, axis=0))


def planted(p, q, seed, n=1500, noise=0.4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ np.linalg.qr(rng.standard_normal((p, p)))[0] * 0.3 + rng.standard_normal((n, p))
    perm = rng.permutation(q)[:min(p, q)]
    Y = rng.standard_normal((n, q))
    Y[:, perm] = X[:, :len(perm)] + noise * rng.standard_normal((n, len(perm)))
    return X, Y, perm


def ref_greedy(R):
    """METHODS §3.3, line by line."""
    p, q = R.shape
    used, rows, cols, total = set(), [], [], 0.0
    for i in range(p):
        best, jstar = 0.0, None
        for j in range(q):
            if j in used:
                continue
            r = 0.0 if np.isnan(R[i, j]) else R[i, j]
            if r > best:
                best, jstar = r, j
        total += best
        if jstar is not None:
            used.add(jstar)
            rows.append(i)
            cols.append(jstar)
    return rows, cols, total / p


def ref_global_greedy(R):
    p, q = R.shape
    pairs = sorted(((-R[i, j], i, j) for i in range(p) for j in range(q) if not np.isnan(R[i, j])))
    ri, cj, out = set(), set(), []
    for _, i, j in pairs:
        if i not in ri and j not in cj:
            ri.add(i)
            cj.add(j)
            out.append((i, j))
    return sorted(out)


@pytest.mark.parametrize("p,q", [(30, 30), (20, 35), (35, 20)])
def test_hungarian_is_the_optimal_matching(p, q):
    X, Y, perm = planted(p, q, seed=p + q)
    m = cg.match_neurons(X, Y)
    R = corr64(X, Y)
    rs, cs = scipy_opt.linear_sum_assignment(R, maximize=True)
    assert R[m.rows, m.cols].sum() == pytest.approx(R[rs, cs].sum(), rel=1e-10)
    np.testing.assert_allclose(m.correlations, R[m.rows, m.cols], rtol=1e-10)
    assert m.score == pytest.approx(R[rs, cs].mean(), rel=1e-10)
    k = min(p, q)
    assert len(m.rows) == k and m.shape == (p, q)
    if p <= q:
        assert np.array_equal(m.cols[:k], perm)  # the planted partners
    assert np.all(np.diff(m.sorted_correlations) <= 0)


def test_identical_networks_up_to_a_permutation_score_one():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 40)).astype(np.float32)
    perm = rng.permutation(40)
    m = cg.match_neurons(X, X[:, perm])
    assert m.score == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(perm[m.cols], m.rows)


def test_semi_matching_is_the_row_maximum():
    X, Y, _ = planted(25, 40, seed=3)
    Y[:, 5] = Y[:, 7]  # a tie: the lower index wins
    R = corr64(X, Y)
    m = cg.match_neurons(X, Y, method="semi")
    np.testing.assert_array_equal(m.rows, np.arange(25))
    np.testing.assert_array_equal(m.cols, np.argmax(R, axis=1))
    np.testing.assert_allclose(m.correlations, R.max(axis=1), rtol=1e-10)
    assert m.score == pytest.approx(R.max(axis=1).mean(), rel=1e-10)
    via_r = cg.match_neurons(R=R, method="semi")
    np.testing.assert_array_equal(via_r.cols, m.cols)


def test_greedy_follows_the_authors_loop():
    rng = np.random.default_rng(4)
    for trial in range(30):
        p, q = rng.integers(1, 15, size=2)
        R = np.round(rng.uniform(-1, 1, size=(p, q)), 1)  # ties and negatives
        R[rng.random((p, q)) < 0.1] = np.nan
        m = cg.match_neurons(R=R, method="greedy")
        rows, cols, score = ref_greedy(R)
        assert m.rows.tolist() == rows and m.cols.tolist() == cols, trial
        assert m.score == pytest.approx(score)
        g = cg.match_neurons(R=R, method="global_greedy")
        assert list(zip(g.rows.tolist(), g.cols.tolist())) == ref_global_greedy(R)


def test_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        cg.match_neurons(R=np.eye(2), method="munkres")
    with pytest.raises(ValueError, match="needs X and Y"):
        cg.match_neurons(np.eye(3))
    with pytest.raises(ValueError, match="not both"):
        cg.match_neurons(np.eye(3), np.eye(3), R=np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        cg.match_neurons(R=np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        cg.match_neurons(R=np.ones(3))


@pytest.mark.parametrize("screen", ["exact", "bf16"])
def test_sparse_route_reaches_the_dense_optimum(screen):
    if screen == "bf16":
        pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    n, m = 1200, 1024
    Z = rng.standard_normal((m, 48)).astype(np.float32)
    X = Z @ rng.standard_normal((48, n)).astype(np.float32) + rng.standard_normal((m, n)).astype(np.float32)
    Y = Z @ rng.standard_normal((48, n)).astype(np.float32) + rng.standard_normal((m, n)).astype(np.float32)
    dense = cg.match_neurons(X, Y)
    sparse = cg.match_neurons(X, Y, method="sparse", k=32, screen=screen)
    assert sparse.details["screen"] == screen
    assert len(sparse.rows) == n and len(set(sparse.cols.tolist())) == n
    R = np.asarray(cg.correlation(X, Y), dtype=np.float64)
    np.testing.assert_allclose(sparse.correlations, R[sparse.rows, sparse.cols], rtol=1e-6, atol=1e-6)
    ratio = R[sparse.rows, sparse.cols].sum() / R[dense.rows, dense.cols].sum()
    assert 0.9999 <= ratio <= 1.0 + 1e-9
    assert sparse.details["attempts"][-1]["feasible"] and sparse.details["fallback"] is None


@pytest.mark.parametrize("screen", ["exact", "bf16"])
def test_sparse_route_retries_until_feasible(screen, monkeypatch):
    if screen == "bf16":
        pytest.importorskip("torch")
    import congruence.screening

    monkeypatch.setattr(congruence.screening, "SCREEN_MARGIN", 0)  # k=1 candidates exactly
    # every unit of X prefers the same three hub units of Y: top-1 candidates cannot match all
    rng = np.random.default_rng(12)
    n = 400
    hub = rng.standard_normal((n, 3))
    X = hub[:, [0]] * 3 + rng.standard_normal((n, 20))
    Y = np.concatenate([hub * 3 + 0.1 * rng.standard_normal((n, 3)), rng.standard_normal((n, 17))], axis=1)
    m = cg.match_neurons(X, Y, method="sparse", k=1, screen=screen)
    assert len(m.rows) == 20 and len(set(m.cols.tolist())) == 20
    assert len(m.details["attempts"]) > 1 and not m.details["attempts"][0]["feasible"]
    dense = cg.match_neurons(X, Y)
    assert m.correlations.sum() == pytest.approx(dense.correlations.sum(), rel=1e-6)


def test_sparse_assignment_matches_scipy_on_random_graphs():
    sp = pytest.importorskip("scipy.sparse")
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    from congruence.matching import sparse_assignment

    rng = np.random.default_rng(13)
    for trial in range(60):
        nr, nc = rng.integers(1, 20), rng.integers(1, 25)
        M = sp.random(nr, nc, density=rng.uniform(0.2, 1.0), random_state=int(rng.integers(1 << 30)), format="csr")
        M.data = rng.random(M.nnz) + 0.1
        try:
            rs, cs = min_weight_full_bipartite_matching(M)
            ref = M[rs, cs].sum()
        except ValueError:
            ref = None
        if ref is None:
            with pytest.raises(ValueError, match="infeasible"):
                sparse_assignment(M)
            continue
        r, c = sparse_assignment(M)
        assert len(r) == min(nr, nc) and np.all(np.asarray(M[r, c]).ravel() != 0)
        assert M[r, c].sum() == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="non-finite"):
        sparse_assignment(sp.csr_matrix(np.array([[np.inf, 1.0]])))
