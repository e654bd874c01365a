"""Shared pieces of the Dask tests: a 2-process LocalCluster on loopback, correlated test data, and
a fault — a block function that kills its worker process the first time it runs there (the
scheduler then recomputes the lost work elsewhere), pickled by value so worker processes need not
import the tests."""

import os

import numpy as np


def local_client():
    """Generator for a module-scoped fixture: a Client of 2 single-threaded worker processes."""
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def correlated(m, n, seed):
    """(m, n) float32 with a rank-8 signal plus noise, so best partners are meaningful."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((m, 8))
    return (Z @ rng.standard_normal((8, n)) + rng.standard_normal((m, n))).astype(np.float32)


def die_once(block, marker):
    """Kill this worker process the first time any block is computed (``marker``: a file path that
    records the death, so the retry computes normally)."""
    import distributed

    try:
        distributed.get_worker()
    except ValueError:  # not on a worker (e.g. dask inferring metadata): never kill the test process
        return block
    if block.size and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return block


def faulty(X, chunks, marker):
    """``X`` as a dask array whose first computed block kills its worker."""
    import sys

    import cloudpickle
    import dask.array as da

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return da.from_array(X, chunks=chunks).map_blocks(die_once, marker, dtype=X.dtype, meta=np.empty((0, 0), X.dtype))
