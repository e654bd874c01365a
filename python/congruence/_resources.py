"""Threads, memory budgets and BLAS thread control for the compiled engine."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from typing import Iterator, Optional

import numpy as np
from threadpoolctl import ThreadpoolController


class MemoryBudgetError(MemoryError):
    """Raised up front when a computation cannot fit in the memory budget."""


#: Share of the available RAM used when no ``memory_limit`` is given.
DEFAULT_MEMORY_SHARE = 0.5


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(num_threads: Optional[int]) -> int:
    """Validate ``num_threads`` (None means all available cores)."""
    if num_threads is None:
        return available_cores()
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer or None; got {num_threads!r}")
    return int(num_threads)


def available_memory() -> int:
    """Bytes of RAM available now (MemAvailable), falling back to total physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resolve_memory_limit(memory_limit: Optional[float]) -> int:
    """Validate ``memory_limit`` in bytes (None: half of the available RAM)."""
    if memory_limit is None:
        return int(DEFAULT_MEMORY_SHARE * available_memory())
    if (isinstance(memory_limit, bool) or not isinstance(memory_limit, (int, float, np.integer, np.floating))
            or not memory_limit > 0):
        raise ValueError(f"memory_limit must be a positive number of bytes or None; got {memory_limit!r}")
    if math.isinf(memory_limit):
        return sys.maxsize  # no limit
    return int(memory_limit)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Limit every loaded BLAS (scipy's and numpy's OpenBLAS, MKL) to ``n`` threads.

    The reduction kernels run their own OpenMP threads, each calling a single-threaded BLAS on
    its own tile (no oversubscription); the dense path lets the BLAS use all ``n`` threads.
    """
    global _CONTROLLER
    if _CONTROLLER is None:  # scanning the loaded libraries costs milliseconds: do it once
        _CONTROLLER = ThreadpoolController()
    blas = _CONTROLLER.select(user_api="blas")
    if all(lib["num_threads"] == n for lib in blas.info()):
        yield
        return
    with blas.limit(limits=n):
        yield


_CONTROLLER = None
