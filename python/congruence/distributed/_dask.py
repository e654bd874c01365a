"""Shared pieces of the Dask layer: input checks and a binary tree reduction of delayed values."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


def require_dask() -> Any:
    try:
        import dask
        import dask.array  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without dask
        raise ImportError("congruence.distributed needs dask: pip install 'congruence[dask]'") from exc
    return dask


def check_dask_matrix(A: Any, name: str) -> Any:
    """A 2-D floating-point dask array of numpy blocks with known chunks, or ValueError naming the argument."""
    import dask.array as da

    if not isinstance(A, da.Array):
        raise ValueError(f"{name} must be a dask.array.Array; got {type(A).__name__} (use congruence's "
                         "single-machine functions for in-memory arrays)")
    if A.ndim != 2 or A.shape[0] < 2 or A.shape[1] < 1:
        raise ValueError(f"{name} must be 2-D (n_samples >= 2, n_features >= 1); got shape {A.shape}")
    if any(np.isnan(s) for s in A.shape):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
    if A.dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(f"{name} must hold floating-point data (float16, float32 or float64); got dtype {A.dtype}")
    meta = getattr(A, "_meta", None)
    if meta is not None and type(meta) is not np.ndarray:
        raise ValueError(f"{name} must be a dask array of numpy blocks; its blocks are "
                         f"{type(meta).__module__}.{type(meta).__name__} (GPU or sparse blocks are not supported)")
    return A


def check_int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def tree_reduce(items: Sequence[Any], combine: Callable[[Any, Any], Any], split_every: int = 2) -> Any:
    """Combine delayed items pairwise (groups of ``split_every``) until one remains: depth
    ⌈log_split_every(len)⌉, each combine seeing at most ``split_every`` inputs."""
    import dask

    level = list(items)
    if not level:
        raise ValueError("nothing to reduce")
    step = dask.delayed(_fold, pure=True)
    while len(level) > 1:
        level = [step(combine, *level[i:i + split_every]) if len(level[i:i + split_every]) > 1 else level[i]
                 for i in range(0, len(level), split_every)]
    return level[0]


def _fold(combine: Callable[[Any, Any], Any], *parts: Any) -> Any:
    out = parts[0]
    for p in parts[1:]:
        out = combine(out, p)
    return out
