"""Per-feature statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _cuda_engine as CE
from . import _engine as E
from ._arrays import as_host_array, check_matrix, inputs_on_device, wrap_like
from ._resources import resolve_threads

__all__ = ["ColumnStats", "column_stats"]


@dataclass(frozen=True)
class ColumnStats:
    """Per-feature statistics of an (n_samples, n_features) matrix.

    Attributes
    ----------
    n_samples : int
    mean, var, std, sumsq : arrays of float64, shape (n_features,)
        ``var`` uses the ``ddof`` given to :func:`column_stats`; ``sumsq`` is the raw Σx².
    constant : array of bool, shape (n_features,)
        Zero-variance features: σ = 0 or σ ≤ 1e-10·rms (METHODS.md §1.3).
    """

    n_samples: int
    mean: Any
    var: Any
    std: Any
    sumsq: Any
    constant: Any


def column_stats(X: Any, *, ddof: int = 1, num_threads: Optional[int] = None) -> ColumnStats:
    """Mean, variance and related statistics of every column, in one float64 pass.

    The pass accumulates Σ(x − s) and Σ(x − s)² around a per-column shift s (the mean of the first
    ≤ 1024 rows), so the variance does not cancel for |mean| ≫ std (METHODS.md §1.2), and detects
    NaN/Inf from the sums without a separate sweep.

    Parameters
    ----------
    X : array, shape (n_samples, n_features)
        Any float dtype, any strides; read in place. GPU arrays (torch CUDA, cupy, protocol
        objects) run on the CUDA statistics kernel on the caller's current stream.
    ddof : int
        Delta degrees of freedom of ``var`` (0 ≤ ddof < n_samples).
    num_threads : int, optional
        Ignored for GPU inputs.

    Returns
    -------
    ColumnStats
        Arrays in the caller's array type and device, float64 (``constant``: bool).
    """
    if inputs_on_device(X=X):
        s = CE.column_stats(X, ddof=ddof, num_threads=num_threads)
        return ColumnStats(n_samples=s["n_samples"], mean=s["mean"], var=s["var"], std=s["std"], sumsq=s["sumsq"],
                           constant=s["constant"])
    h = as_host_array(X, "X")
    check_matrix(h, min_rows=2)
    n = h.shape[0]
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not (0 <= ddof < n):
        raise ValueError(f"ddof must be an integer with 0 <= ddof < n_samples ({n}); got {ddof!r}")
    mom = E.moments(h.array, h.code, resolve_threads(num_threads), h.name)
    var = mom.m2 / (n - ddof)
    return ColumnStats(
        n_samples=n,
        mean=wrap_like(mom.mean, h),
        var=wrap_like(var, h),
        std=wrap_like(np.sqrt(var), h),
        sumsq=wrap_like(mom.sumsq, h),
        constant=wrap_like(mom.constant(), h),
    )
