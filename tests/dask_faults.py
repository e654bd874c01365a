"""A fault for the Dask tests: a block function that kills its worker process the first time it runs
there (the scheduler then recomputes the lost work elsewhere). Pickled by value, so worker processes
need not import the tests."""

import os


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
    import cloudpickle
    import dask.array as da
    import numpy as np
    import sys

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return da.from_array(X, chunks=chunks).map_blocks(die_once, marker, dtype=X.dtype, meta=np.empty((0, 0), X.dtype))
