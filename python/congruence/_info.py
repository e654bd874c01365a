"""Build and runtime information: ``congruence.info()`` and ``congruence.cuda_available()``."""

from __future__ import annotations

import functools
import platform
from typing import Any

from . import _cpu
from ._resources import available_cores, available_memory


@functools.lru_cache(maxsize=1)
def _cuda_query() -> dict:
    try:
        from . import _cuda  # built only when a CUDA compiler was found
    except ImportError as exc:
        return {"built": False, "usable": False, "reason": f"the _cuda module was not built ({exc})"}
    q = dict(_cuda.query())
    q["built"] = True
    q["architectures"] = _cuda.cuda_architectures
    q["compiler"] = _cuda.compiler
    if q["usable"]:
        q["reason"] = ""
    return q


def cuda_available() -> bool:
    """True when the CUDA module was built and a usable CUDA device and driver are present."""
    return bool(_cuda_query()["usable"])


def _blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "threading_layer", "filepath")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info() if lib.get("user_api") == "blas"]


def info() -> dict[str, Any]:
    """Versions, build flags, BLAS, threads and CUDA status as a dict.

    Returns
    -------
    dict
        ``version``, ``cpu`` (compiler, flags, OpenMP), ``blas`` (the engine uses scipy's BLAS through
        its function pointers; every loaded BLAS is listed), ``threads``, ``memory_available``,
        ``cuda`` (built, usable, reason when not, devices).
    """
    import numpy
    import scipy

    return {
        "version": _cpu.version,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "cpu": {
            "module": "congruence._cpu",
            "compiler": _cpu.compiler,
            "cxx_flags": _cpu.cxx_flags.strip(),
            "openmp": _cpu.openmp_version,
            "machine": platform.machine(),
        },
        "blas": {"engine": "scipy.linalg.cython_blas function pointers", "loaded": _blas_info()},
        "threads": {"default": available_cores(), "openmp_max": _cpu.omp_max_threads()},
        "memory_available": available_memory(),
        "cuda": _cuda_query(),
    }
