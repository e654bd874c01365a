"""The uncentred Gram of two layers' activations, the only statistic subspace match needs
(METHODS.md §5.6).

For neurons z_v ∈ ℝ^M (columns of X and Y over the same M samples) every distance to a span is a
function of the inner products G = ZᵀZ of Z = [X Y]: one streamed pass over the samples in
float64 through :class:`congruence.CrossStats` (zero shifts for in-memory arrays; its float64 path
forms all three blocks from one symmetric product of [X Y] per 8192 rows, the (n₁+n₂)²M/2
multiply-adds of the floor). A state accumulated around any shifts is turned back into raw inner
products exactly (Σ x xᵀ = Σ(x−s)(x−s)ᵀ + s aᵀ + a sᵀ + n s sᵀ with
a = Σ(x−s)); the optional constant vector (``affine``) is one more "neuron" whose inner products
are n and the column sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..cross_stats import CrossStats

__all__ = ["SubspaceGram", "subspace_gram"]


@dataclass(frozen=True)
class SubspaceGram:
    """Raw inner products of the neurons of X (indices 0..n1-1) and Y (n1..n1+n2-1), plus, when
    ``affine``, a constant neuron of ones at index n1+n2.

    Attributes
    ----------
    G : ndarray of float64, shape (N, N)
        N = n1 + n2 (+1 with affine); symmetric.
    n1, n2 : int
    n_samples : int
    affine : bool
    """

    G: np.ndarray
    n1: int
    n2: int
    n_samples: int
    affine: bool

    @property
    def const(self) -> Optional[int]:
        """Index of the constant neuron, or None."""
        return self.n1 + self.n2 if self.affine else None

    def norms2(self) -> np.ndarray:
        """‖z_v‖² of every neuron of X then Y (the constant excluded)."""
        return np.diag(self.G)[: self.n1 + self.n2].copy()


def _raw_from_stats(stats: CrossStats, affine: bool) -> SubspaceGram:
    if stats.n_samples < 1:
        raise ValueError("stats holds no samples")
    n = stats.n_samples
    sx, sy = np.asarray(stats.shift_x, dtype=np.float64), np.asarray(stats.shift_y, dtype=np.float64)
    ax, ay = np.asarray(stats.sum_x, dtype=np.float64), np.asarray(stats.sum_y, dtype=np.float64)
    gxx = np.asarray(stats.gram_xx, dtype=np.float64)
    gyy = np.asarray(stats.gram_yy, dtype=np.float64)
    gxy = np.asarray(stats.gram_xy, dtype=np.float64)
    if gxx.ndim != 2:
        raise ValueError("stats must hold the full within-layer Grams (cross_only=False)")

    def raw(g: np.ndarray, s: np.ndarray, a: np.ndarray, t: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not (s.any() or t.any()):
            return g
        return g + np.outer(s, b) + np.outer(a, t) + n * np.outer(s, t)

    n1, n2 = gxx.shape[0], gyy.shape[0]
    N = n1 + n2 + (1 if affine else 0)
    G = np.empty((N, N))
    G[:n1, :n1] = raw(gxx, sx, ax, sx, ax)
    G[n1:n1 + n2, n1:n1 + n2] = raw(gyy, sy, ay, sy, ay)
    G[:n1, n1:n1 + n2] = raw(gxy, sx, ax, sy, ay)
    G[n1:n1 + n2, :n1] = G[:n1, n1:n1 + n2].T
    if affine:
        col = np.concatenate([ax + n * sx, ay + n * sy])
        G[-1, :-1] = col
        G[:-1, -1] = col
        G[-1, -1] = float(n)
    return SubspaceGram(G=G, n1=n1, n2=n2, n_samples=int(n), affine=affine)


def subspace_gram(X: Any = None, Y: Any = None, *, stats: Optional[CrossStats] = None, affine: bool = False,
                  num_threads: Optional[int] = None) -> SubspaceGram:
    """The float64 raw Gram of [X Y] from in-memory activations, or from a streamed ``stats``.

    Parameters
    ----------
    X : array_like, shape (M, n1)
    Y : array_like, shape (M, n2)
        Activations over the same M samples (rows); columns are neurons, used raw (no centring).
    stats : CrossStats, optional
        A state accumulated batch by batch (any shifts; ``cross_only=False``), instead of X and Y.
    affine : bool
        Add the constant vector of ones to both spans (METHODS §5, the authors' option).
    num_threads : int, optional
    """
    if stats is None:
        if X is None or Y is None:
            raise ValueError("pass X and Y (activations), or stats (a CrossStats)")
        p, q = int(np.shape(X)[1]), int(np.shape(Y)[1])
        stats = CrossStats(shift_x=np.zeros(p), shift_y=np.zeros(q), num_threads=num_threads)
        stats.update(X, Y)
    elif X is not None or Y is not None:
        raise ValueError("pass either X and Y, or stats, not both")
    elif not isinstance(stats, CrossStats):
        raise ValueError(f"stats must be a congruence.CrossStats; got {type(stats).__name__}")
    return _raw_from_stats(stats, bool(affine))
