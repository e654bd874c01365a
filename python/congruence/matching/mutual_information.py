"""Mutual information between units with Li et al.'s percentile bins (METHODS.md §3.5).

Each unit's values are cut into ``bins`` = 10 bins: the first holds the (post-ReLU) zeros, the
others are equal-mass over the positive values. With f the fraction of values below 1e-6, the
B + 1 edges are the unit's percentiles at [0] ∪ linspace(100.1·f, 100, B), the lowest lowered by
0.01; degenerate (repeated) edges are kept, as in the reference, and give empty bins. A value in
[e_k, e_{k+1}) falls in bin k, the last bin is closed (``numpy.histogram``'s convention).

MI = Σ p_ab ln(p_ab / (p_a p_b)) in nats over the non-empty cells, minus a bias correction:
``"miller_madow"`` (default) (B̂_x − 1)(B̂_y − 1)/(2N) with B̂ the numbers of non-empty bins;
``"li2016"`` B_x·B_y/(2N ln 2), the reference code's term (it mixes nats and bits; kept for
parity); None: the plug-in estimate.

The matrix of every unit pair comes from one product of one-hot bin indicators,
counts = A_xᵀ A_y (A: n × p·B), so its cost is a GEMM, not p·q histograms.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

__all__ = ["percentile_bins", "mutual_information", "mutual_information_matrix", "MI_CORRECTIONS"]

MI_CORRECTIONS = ("miller_madow", "li2016", None)


def _matrix(X: Any, name: str) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_units); got shape {A.shape}")
    if A.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples; got {A.shape[0]}")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return A


def percentile_bins(X: Any, bins: int = 10) -> np.ndarray:
    """Bin index (0 … bins−1) of every value, per column, with the percentile edges above.

    Parameters
    ----------
    X : array_like, shape (n_samples, n_units) or (n_samples,)
    bins : int

    Returns
    -------
    ndarray of int64, shape (n_samples, n_units)
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2; got {bins!r}")
    A = _matrix(X, "X")
    n, p = A.shape
    codes = np.empty((n, p), dtype=np.int64)
    for j in range(p):
        x = A[:, j]
        f = float(np.mean(x < 1e-6))
        q = np.concatenate([[0.0], np.linspace(min(100.1 * f, 100.0), 100.0, bins)])
        edges = np.percentile(x, q)
        edges[0] -= 0.01
        # numpy.histogram's rule: [e_k, e_{k+1}), the last bin closed; repeated edges stay empty
        k = np.searchsorted(edges, x, side="right") - 1
        k[x == edges[-1]] = bins - 1
        codes[:, j] = np.clip(k, 0, bins - 1)
    return codes


def _mi_from_counts(counts: np.ndarray, n: int, correction: Optional[str], bins: int) -> np.ndarray:
    """MI (nats) of joint count blocks counts[..., B, B]."""
    pxy = counts / n
    px = pxy.sum(axis=-1, keepdims=True)
    py = pxy.sum(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pxy > 0, pxy * np.log(pxy / (px * py)), 0.0)
    mi = terms.sum(axis=(-2, -1))
    if correction == "miller_madow":
        bx = (px[..., 0] > 0).sum(axis=-1)
        by = (py[..., 0, :] > 0).sum(axis=-1)
        mi = mi - (bx - 1) * (by - 1) / (2.0 * n)
    elif correction == "li2016":
        mi = mi - bins * bins / (2.0 * n * math.log(2.0))
    return mi


def _check_correction(correction: Any) -> None:
    if correction not in MI_CORRECTIONS:
        raise ValueError(f"correction must be one of {MI_CORRECTIONS}; got {correction!r}")


def mutual_information(x: Any, y: Any, *, bins: int = 10, correction: Optional[str] = "miller_madow") -> float:
    """Mutual information (nats) between two units, x and y of shape (n_samples,)."""
    _check_correction(correction)
    cx, cy = percentile_bins(x, bins)[:, 0], percentile_bins(y, bins)[:, 0]
    if cx.shape[0] != cy.shape[0]:
        raise ValueError(f"x and y need the same number of samples; got {cx.shape[0]} and {cy.shape[0]}")
    counts = np.bincount(cx * bins + cy, minlength=bins * bins).reshape(bins, bins).astype(np.float64)
    return float(_mi_from_counts(counts, cx.shape[0], correction, bins))


def mutual_information_matrix(X: Any, Y: Any, *, bins: int = 10,
                              correction: Optional[str] = "miller_madow") -> np.ndarray:
    """Mutual information (nats) of every unit of X with every unit of Y.

    Parameters
    ----------
    X : array_like, shape (n_samples, p)
    Y : array_like, shape (n_samples, q)
    bins : int
    correction : {"miller_madow", "li2016", None}

    Returns
    -------
    ndarray of float64, shape (p, q)
        Usable as ``R=`` in :func:`congruence.match_neurons` (Li et al. 2016 match by MI too).
    """
    _check_correction(correction)
    cx, cy = percentile_bins(X, bins), percentile_bins(Y, bins)
    if cx.shape[0] != cy.shape[0]:
        raise ValueError(f"X and Y need the same number of samples; got {cx.shape[0]} and {cy.shape[0]}")
    n, p = cx.shape
    q = cy.shape[1]

    def onehot(codes: np.ndarray) -> np.ndarray:
        m = codes.shape[1]
        A = np.zeros((n, m * bins), dtype=np.float32)  # counts < 2^24 are exact in float32
        A[np.arange(n)[:, None], np.arange(m)[None, :] * bins + codes] = 1.0
        return A

    if n >= 1 << 24:
        raise ValueError(f"mutual_information_matrix counts in float32: at most {1 << 24} samples; got {n}")
    counts = (onehot(cx).T @ onehot(cy)).astype(np.float64)  # (p·B, q·B)
    blocks = counts.reshape(p, bins, q, bins).transpose(0, 2, 1, 3)
    return _mi_from_counts(blocks, n, correction, bins)
