"""congruence.distributed on a dask.distributed LocalCluster of worker processes (loopback only):
results equal the single-machine engine, including after a worker dies mid-computation."""

import os
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import congruence as cg  # noqa: E402
from dask_helpers import correlated, faulty, local_client  # noqa: E402
from congruence.distributed import cross_stats, topk_correlation  # noqa: E402
from congruence.distributed.pairwise import merge_topk  # noqa: E402


client = pytest.fixture(scope="module")(local_client)


@pytest.mark.parametrize("chunks", [(400, 37), (150, 64), (400, 500)])
def test_topk_equals_the_single_machine_engine(client, chunks):
    X, Y = correlated(400, 230, 1), correlated(400, 170, 2)
    for kw in (dict(), dict(absolute=True), dict(precision="float64")):
        v, i = topk_correlation(da.from_array(X, chunks=chunks), da.from_array(Y, chunks=(100, 50)), 6, **kw)
        v0, i0 = cg.topk_correlation(X, Y, 6, **kw)
        assert np.array_equal(i, i0), kw
        assert np.allclose(v, v0, rtol=0, atol=2e-6 if "precision" not in kw else 1e-12)


def test_self_join_excludes_each_feature_and_ties_go_to_the_lowest_index(client):
    X = correlated(300, 150, 3)
    X[:, 100] = X[:, 10]  # exact ties across column blocks: partner 10 before 100
    v, i = topk_correlation(da.from_array(X, chunks=(300, 40)), None, 4)
    v0, i0 = cg.topk_correlation(X, None, 4)
    assert np.array_equal(i, i0) and np.allclose(v, v0, atol=2e-6)
    assert not np.any(i == np.arange(150)[:, None])
    assert i[100, 0] == 10 and i[10, 0] == 100


def test_merge_keeps_the_library_order():
    a = (np.array([[0.9, 0.5, np.nan]]), np.array([[7, 3, -1]]))
    b = (np.array([[0.9, -0.95]]), np.array([[2, 5]]))
    v, i = merge_topk(a, b, k=3, absolute=False)
    assert list(i[0]) == [2, 7, 3]
    v, i = merge_topk(a, b, k=4, absolute=True)
    assert list(i[0]) == [5, 2, 7, 3]


def test_cross_stats_equals_a_single_stream_and_feeds_the_measures(client):
    X, Y = correlated(1000, 40, 4).astype(np.float64) + 100.0, correlated(1000, 30, 5).astype(np.float64)
    cs = cross_stats(da.from_array(X, chunks=(130, 17)), da.from_array(Y, chunks=(250, 30)))
    ref = cg.CrossStats().update(X, Y)
    assert cs.n_samples == 1000
    for name in ("comoment_xx", "comoment_xy", "comoment_yy"):
        a, b = getattr(cs, name)(), getattr(ref, name)()
        assert np.allclose(a, b, rtol=1e-12, atol=1e-9 * np.abs(b).max()), name
    assert np.allclose(cs.mean_x, X.mean(0), rtol=1e-14)
    assert cg.linear_cka(stats=cs) == pytest.approx(cg.linear_cka(X, Y), rel=1e-12)
    assert np.allclose(cg.cca(stats=cs).rho, cg.cca(X, Y).rho, atol=1e-10)


def test_a_worker_dying_mid_computation_does_not_change_the_answer(client, tmp_path):
    X = correlated(300, 120, 6)
    marker = str(tmp_path / "died")
    Xd = faulty(X, (300, 30), marker)
    v, i = topk_correlation(Xd, None, 5)
    assert os.path.exists(marker)  # a worker really died
    v0, i0 = cg.topk_correlation(X, None, 5)
    assert np.array_equal(i, i0) and np.allclose(v, v0, atol=2e-6)
    client.wait_for_workers(2, timeout=60)


def test_the_usual_functions_take_dask_inputs(client):
    """cg.* hand dask arrays to congruence.distributed (an in-memory partner is wrapped), and the
    CrossStats measures reduce dask inputs on the cluster: never a silent np.asarray of the whole."""
    X, Y = correlated(400, 60, 7).astype(np.float64) + 50.0, correlated(400, 45, 8).astype(np.float64)
    Xd, Yd = da.from_array(X, chunks=(90, 25)), da.from_array(Y, chunks=(130, 45))
    C = cg.correlation(Xd, Y)
    assert isinstance(C, da.Array) and np.allclose(C.compute(), cg.correlation(X, Y), atol=1e-12)
    v, i = cg.topk_correlation(X, Yd, 4, axis=0, num_threads=1)
    assert np.array_equal(i, cg.topk_correlation(X, Y, 4, axis=0)[1])
    assert np.array_equal(cg.max_correlation(Xd)[1], cg.max_correlation(X)[1])
    P, P0 = cg.correlation_pairs(Xd, None, 0.3), cg.correlation_pairs(X, None, 0.3)
    assert P.nnz == P0.nnz and np.array_equal(P.row, P0.row) and np.array_equal(P.col, P0.col)
    assert np.array_equal(cg.knn(Xd, X[:70], 5)[1], cg.knn(X, X[:70], 5)[1])
    s = cg.CrossStats().update(X[:100], Y[:100]).update(Xd[100:], Yd[100:])
    ref = cg.CrossStats().update(X, Y)
    assert s.n_samples == 400
    assert np.allclose(s.comoment_xy(), ref.comoment_xy(), rtol=1e-12, atol=1e-9 * np.abs(ref.comoment_xy()).max())
    assert cg.linear_cka(Xd, Yd) == pytest.approx(cg.linear_cka(X, Y), rel=1e-12)
    assert np.allclose(cg.cca(Xd, Y).rho, cg.cca(X, Y).rho, atol=1e-10)
    assert cg.procrustes(Xd, Yd) == pytest.approx(cg.procrustes(X, Y), rel=1e-10)
    assert cg.max_match(Xd, Yd, 0.5).similarity == cg.max_match(X, Y, 0.5).similarity
    with pytest.raises(ValueError, match="same number of samples"):
        cg.correlation(Xd, np.zeros((10, 3)))


def test_bad_arguments_name_themselves():
    X = da.zeros((10, 4), chunks=5)
    with pytest.raises(ValueError, match="X must be a dask"):
        topk_correlation(np.zeros((10, 4)), None, 2)
    with pytest.raises(ValueError, match="same number of samples"):
        topk_correlation(X, da.zeros((9, 4)), 2)
    with pytest.raises(ValueError, match="k=4 exceeds"):  # before the statistics pass (no constant warning)
        topk_correlation(X, None, 4)
    with pytest.raises(ValueError, match="same width"):
        topk_correlation(X, da.zeros((10, 3)), 2, exclude_self=True)
    with pytest.raises(ValueError, match="split_every"):
        cross_stats(X, X, split_every=1)
    with pytest.raises(ValueError, match="Y must be a dask"):
        cross_stats(X, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="X must hold floating-point data"):
        topk_correlation(da.zeros((10, 4), chunks=5, dtype=np.int64), None, 2)
    masked = X.map_blocks(np.ma.masked_invalid, meta=np.ma.masked_array(np.empty((0, 0))))
    with pytest.raises(ValueError, match="numpy blocks"):
        topk_correlation(masked, None, 2)


def test_importing_congruence_does_not_import_dask():
    out = subprocess.run([sys.executable, "-c", "import congruence, sys; print('dask' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
