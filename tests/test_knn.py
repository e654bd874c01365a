"""knn between rows (METHODS.md §1.5) against the float64 oracle."""

import numpy as np
import pytest

import congruence as cg
from reference import assert_topk_equivalent, ref_knn

torch = pytest.importorskip("torch")

METRICS = ["sqeuclidean", "inner", "cosine"]


def points(n, d, seed, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * scale + offset


def oracle_matrix(P, Q, metric, exclude_self):
    P = np.asarray(P, dtype=np.float64)
    Q = P if Q is None else np.asarray(Q, dtype=np.float64)
    if metric == "sqeuclidean":
        D = np.empty((P.shape[0], Q.shape[0]))
        for r0 in range(0, P.shape[0], 64):  # explicit differences, in row chunks
            D[r0:r0 + 64] = ((P[r0:r0 + 64, None, :] - Q[None, :, :]) ** 2).sum(axis=2)
    elif metric == "inner":
        D = P @ Q.T
    else:
        pn = np.linalg.norm(P, axis=1)
        qn = np.linalg.norm(Q, axis=1)
        D = (P / np.where(pn == 0, 1, pn)[:, None]) @ (Q / np.where(qn == 0, 1, qn)[:, None]).T
    if exclude_self:
        d = min(D.shape)
        D[np.arange(d), np.arange(d)] = np.nan
    return D


def check(P, Q=None, k=4, metric="sqeuclidean", *, rtol=None, atol=None, **kw):
    v, i = cg.knn(P, Q, k, metric=metric, **kw)
    exclude = kw.get("exclude_self")
    rv, ri = ref_knn(P, Q, k=k, metric=metric, exclude_self=exclude)
    exclude = (Q is None) if exclude is None else exclude
    Pn = P.detach().double().numpy() if isinstance(P, torch.Tensor) else np.asarray(P, dtype=np.float64)
    Qn = None if Q is None else (Q.detach().double().numpy() if isinstance(Q, torch.Tensor) else np.asarray(Q, dtype=np.float64))
    M = oracle_matrix(Pn, Qn, metric, exclude)
    vals = np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v)
    f64 = vals.dtype == np.float64
    if rtol is None:
        rtol = 1e-9 if f64 else 2e-5
    if atol is None:
        # float32 squared distances: absolute error ~1e-7 (|a|^2 + |b|^2) of the centred points
        Qc = Pn if Qn is None else Qn
        spread = ((Pn - Qc.mean(0)) ** 2).sum(1).max() + ((Qc - Qc.mean(0)) ** 2).sum(1).max()
        base = spread if metric == "sqeuclidean" else np.abs(M[~np.isnan(M)]).max()
        atol = (1e-12 if f64 else 1e-6) * max(1.0, base)
    assert_topk_equivalent(v, i, rv, ri, rtol=rtol, atol=atol, largest=(metric != "sqeuclidean"), ref_matrix=M)
    return v, i


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_with_q_matches_reference(metric, precision):
    P, Q = points(40, 6, 1, offset=2.0), points(55, 6, 2, offset=2.5)
    v, i = check(P, Q, 5, metric, precision=precision)
    assert v.shape == i.shape == (40, 5)
    assert v.dtype == np.dtype(precision) and i.dtype == np.int64
    if metric == "sqeuclidean":
        assert (np.diff(v, axis=1) >= 0).all() and (v >= 0).all()
    else:
        assert (np.diff(v, axis=1) <= 0).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_self_join_matches_reference(metric, precision):
    P = points(50, 5, 3, offset=-1.0)
    v, i = check(P, None, 6, metric, precision=precision)
    assert not (i == np.arange(50)[:, None]).any()


def test_self_join_excludes_by_index_with_duplicate_points():
    P = points(10, 4, 4)
    D = np.concatenate([P, P[:4], P[:1]])  # rows 10..13 copy 0..3, row 14 copies 0
    for metric in ("sqeuclidean", "cosine"):
        v, i = cg.knn(D, k=2, metric=metric)
        # point 0's nearest others are its copies 10 and 14 (distance 0 / similarity 1), not itself
        assert i[0].tolist() == [10, 14]
        assert i[10].tolist() == [0, 14] and i[14].tolist() == [0, 10]
        assert i[1, 0] == 11 and i[11, 0] == 1
        if metric == "sqeuclidean":
            assert v[0, 0] == pytest.approx(0.0, abs=1e-12)
    check(D, None, 3)


def test_ties_to_lowest_index_in_q():
    P = points(6, 3, 5)
    Q = np.concatenate([points(5, 3, 6), P[[2]], P[[2]], points(3, 3, 7), P[[2]]])
    v, i = cg.knn(P, Q, k=3)
    assert i[2].tolist() == [5, 6, 10]
    np.testing.assert_allclose(v[2], 0.0, atol=1e-12)
    v, i = cg.knn(P, Q, k=3, metric="cosine")
    assert i[2].tolist() == [5, 6, 10]


def test_exclude_self_false_finds_itself():
    P = points(30, 4, 8)
    v, i = cg.knn(P, k=1, exclude_self=False)
    np.testing.assert_array_equal(i[:, 0], np.arange(30))
    np.testing.assert_allclose(v[:, 0], 0.0, atol=1e-12)
    check(P, None, 3, exclude_self=False)


def test_exclude_self_with_q():
    P, Q = points(20, 3, 9), points(20, 3, 10)
    _, i = check(P, Q, 5, exclude_self=True)
    assert not (i == np.arange(20)[:, None]).any()
    with pytest.raises(ValueError, match=r"exclude_self=True needs as many points in P as in Q; got 20 and 19"):
        cg.knn(P, Q[:19], exclude_self=True)


def test_offset_points_float32():
    # points far from the origin: centring by the reference mean removes the cancellation
    P = points(200, 8, 11, offset=1e3).astype(np.float32)
    Q = points(300, 8, 12, offset=1e3).astype(np.float32)
    check(P, Q, 5)
    check(P, None, 5)


def test_zero_rows_cosine():
    P = points(12, 4, 13)
    P[3] = 0.0
    v, i = cg.knn(P, k=11, metric="cosine")
    np.testing.assert_array_equal(v[3], 0.0)
    assert i[3].tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]
    check(P, None, 4, "cosine")


@pytest.mark.parametrize("metric", METRICS)
def test_several_column_tiles(metric):
    # 2500 reference points: more than one 2048-column tile
    P = points(2500, 8, 14, offset=3.0)
    check(P[:200], P, 4, metric, precision="float32")
    check(P[-100:], P, 4, metric, precision="float64")


def test_several_row_blocks_and_tiles_self_join():
    P = points(2500, 8, 19, offset=-2.0)
    P[2400] = P[7]  # duplicate across tiles
    v, i = check(P, None, 3, precision="float64")
    assert i[7, 0] == 2400 and i[2400, 0] == 7


def test_k_equals_candidates():
    P, Q = points(7, 3, 15), points(9, 3, 16)
    v, i = check(P, Q, 9)
    assert (np.sort(i, axis=1) == np.arange(9)).all()
    v, i = check(P, None, 6)
    assert not np.isnan(v).any()


def test_torch_and_dtypes():
    P = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
    Q = torch.randn(40, 5).to(torch.bfloat16)
    v, i = cg.knn(P, Q, 3)
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float32 and i.dtype == torch.int64
    check(P, Q, 3)
    v, i = cg.knn(P, k=2)
    assert v.dtype == torch.float64
    H = points(20, 4, 17).astype(np.float16)
    check(H, None, 3, "inner")


def test_non_contiguous():
    base = points(80, 12, 18, offset=1.0)
    P, Q = base[::-2, ::2], np.asfortranarray(base)[1::3, 1::2]
    for metric in METRICS:
        check(P, Q, 4, metric)
        check(P.T.copy().T, None, 4, metric, precision="float32")
    before = base.copy()
    cg.knn(base[::-1], k=2)
    np.testing.assert_array_equal(base, before)


def test_cosine_ties_created_by_clipping_go_to_lowest_index():
    p = np.array([[0.5408455846858077, 0.2146591225063409, 0.3553727090399214]])
    Q = np.concatenate([p * c for c in (1.0, 3.0, 0.7, 11.0, 0.1)])  # all parallel to p
    v, i = cg.knn(p, Q, k=5, metric="cosine")
    np.testing.assert_array_equal(v, 1.0)  # an exact tie as returned...
    assert i[0].tolist() == [0, 1, 2, 3, 4]  # ...so index order (was [0, 3, 1, 2, 4])


_GRID = np.array([[-60.5, -76.5], [-61.25, -75.5], [-60.75, -77.25], [-60.25, -76.5], [-62.0, -77.0],
                  [-61.5, -74.25], [-62.25, -75.75], [-63.25, -76.0], [-60.0, -76.25], [-61.75, -75.75],
                  [-60.25, -75.25], [-59.0, -75.75]])


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_sqeuclidean_exact_ties_go_to_lowest_index(precision):
    # quarter-grid points: from point 6, points 1 and 7 are both at squared distance exactly 1.0625
    v, i = cg.knn(_GRID, k=3, precision=precision)
    assert v[6, 1] == v[6, 2] == 1.0625
    assert i[6].tolist() == [9, 1, 7]  # was [9, 7, 1]
