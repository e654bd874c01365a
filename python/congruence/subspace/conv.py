"""The conv-layer protocol of Wang et al.'s code (METHODS.md §5.5).

A conv activation [N, C, H, W] becomes C neurons over N·H·W samples (images × positions). The
authors subsample 10,000 of those sample columns without replacement — the same columns for both
networks — and average the maximum-match similarity over 16 repetitions; ``columns="all"`` gives
the exact full-data match instead, from one streamed Gram over all positions (a library addition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ..cross_stats import CrossStats
from .match import SubspaceMatch, max_match

__all__ = ["ConvSubspaceMatch", "conv_max_match", "positions"]


@dataclass(frozen=True)
class ConvSubspaceMatch:
    """Per-repetition maximum matches of two conv (or dense) layers.

    Attributes
    ----------
    similarity : float
        Mean of ``similarities``.
    similarities : ndarray of float64, shape (repeats,)
    matches : list of SubspaceMatch
    eps : float
    columns : int or "all"
    """

    similarity: float
    similarities: np.ndarray
    matches: list
    eps: float
    columns: Union[int, str]
    details: dict = field(default_factory=dict)


def positions(A: Any) -> np.ndarray:
    """[N, C, H, W] (or [N, C, ...], or already [samples, C]) -> (N·H·W, C) float64 view/copy,
    rows ordered image-major (image, then position)."""
    a = A.detach().cpu().numpy() if hasattr(A, "detach") else np.asarray(A)
    if a.ndim == 2:
        return a
    if a.ndim < 2:
        raise ValueError(f"activations must be [samples, neurons] or [N, C, ...]; got shape {a.shape}")
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def conv_max_match(A: Any, B: Any, eps: float = 0.25, *, columns: Union[int, str] = 10_000, repeats: int = 16,
                   seed: int = 0, affine: bool = False, num_threads: Optional[int] = None) -> ConvSubspaceMatch:
    """Maximum-match similarity of two layers under the authors' conv protocol.

    Parameters
    ----------
    A, B : array_like
        Activations of the same inputs, [N, C, H, W] (same N, H, W for both) or [samples, neurons].
    eps : float
    columns : int or "all"
        Sample columns drawn per repetition (without replacement, the same for A and B); "all"
        uses every column once (exact, one repetition).
    repeats : int
    seed : int
        Seeds ``numpy.random.default_rng`` for the column draws (the authors used numpy's legacy
        global seed 0; the draws differ, the protocol is the same).
    affine, num_threads
        As in :func:`congruence.subspace.max_match`.
    """
    Xa, Xb = positions(A), positions(B)
    if Xa.shape[0] != Xb.shape[0]:
        raise ValueError(f"A and B have different numbers of sample columns ({Xa.shape[0]} and {Xb.shape[0]}); "
                         "they must be activations of the same inputs with the same spatial size")
    M = Xa.shape[0]
    if columns == "all":
        cs = CrossStats(shift_x=np.zeros(Xa.shape[1]), shift_y=np.zeros(Xb.shape[1]), num_threads=num_threads)
        step = 65_536
        for r0 in range(0, M, step):
            cs.update(Xa[r0:r0 + step], Xb[r0:r0 + step])
        m = max_match(stats=cs, eps=eps, affine=affine)
        return ConvSubspaceMatch(similarity=m.similarity, similarities=np.array([m.similarity]), matches=[m],
                                 eps=float(eps), columns="all", details={"samples": M})
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer or 'all'; got {columns!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer; got {repeats!r}")
    if columns > M:
        raise ValueError(f"columns={columns} exceeds the {M} sample columns available")
    rng = np.random.default_rng(seed)
    matches: list[SubspaceMatch] = []
    for _ in range(int(repeats)):
        idx = np.sort(rng.choice(M, size=int(columns), replace=False))
        matches.append(max_match(Xa[idx], Xb[idx], eps, affine=affine, num_threads=num_threads))
    sims = np.array([m.similarity for m in matches])
    return ConvSubspaceMatch(similarity=float(sims.mean()), similarities=sims, matches=matches, eps=float(eps),
                             columns=int(columns), details={"samples": M, "seed": seed})
