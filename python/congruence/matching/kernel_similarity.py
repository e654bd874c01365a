"""Weight-space kernel similarity between networks (Akbarinia & Gegenfurtner 2019; METHODS.md §4.1–4.2).

Kernel i of a convolution is every weight producing output channel i, flattened in the order
(c_in, kh, kw) (PyTorch layout (c_out, c_in/groups, kh, kw)). The l-th convolution of network A
pairs with the l-th of B; r_ij = Pearson(kernel i of A, kernel j of B) over the flattened weights
(NaN, from constant kernels, counts as 0), or their cosine similarity. Each kernel of A then gets
a score s_i by one of three matchings:

* ``"optimal"`` (default) — the one-to-one matching maximising Σ r_{i,π(i)} (exact assignment,
  negatives allowed);
* ``"greedy"`` — the authors' code (METHODS §3.3: rows in order take their best free positive
  partner, else score 0);
* ``"index"`` — s_i = r_ii, meaningful only for networks sharing an initialisation or a parent.

Per layer: max, min, mean and std (ddof = 0) of s; the network score is the unweighted mean of
the layer means over the convolutions. Linear (dense) layers are reported separately, one
Pearson over the flattened weight matrices, and not scored (as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .assignment import linear_assignment
from .neurons import _greedy

__all__ = ["KernelSimilarity", "kernel_similarity", "kernel_similarity_matrix", "KERNEL_MATCHES"]

KERNEL_MATCHES = ("optimal", "greedy", "index")


@dataclass(frozen=True)
class KernelSimilarity:
    """Kernel similarity of two networks.

    Attributes
    ----------
    layers : list of (str, str)
        The paired convolutions (name in A, name in B), in order.
    scores : list of ndarray
        s (one entry per kernel of A's layer) per paired layer.
    stats : list of dict
        ``max``, ``min``, ``mean``, ``std`` of each layer's s.
    score : float
        Mean of the layer means (the network score).
    dense : list of dict
        Linear layers: ``layers`` (names) and ``pearson`` of the flattened weight matrices
        (NaN when their shapes differ).
    match, metric : str
    """

    layers: list
    scores: list
    stats: list
    score: float
    dense: list = field(default_factory=list)
    match: str = "optimal"
    metric: str = "pearson"


def _kernels(weight: Any) -> np.ndarray:
    W = weight.detach().cpu().double().numpy()
    return W.reshape(W.shape[0], -1)


def _similarity(Ka: np.ndarray, Kb: np.ndarray, metric: str) -> np.ndarray:
    """r_ij between kernel rows, by the pairwise engine (samples = the flattened weights, float64);
    a constant kernel correlates 0 with everything (the NaN → 0 rule of METHODS §4.1)."""
    import warnings

    from .._engine import ConstantFeatureWarning
    from ..pairwise import correlation

    if Ka.shape[1] != Kb.shape[1]:
        raise ValueError(f"kernels of {Ka.shape[1]} and {Kb.shape[1]} weights cannot be compared (different input "
                         "channels or kernel sizes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantFeatureWarning)  # constant kernels: 0, as documented
        r = np.asarray(correlation(np.ascontiguousarray(Ka.T), np.ascontiguousarray(Kb.T), metric=metric,
                                   zero_var="zero"), dtype=np.float64)
    return np.where(np.isfinite(r), r, 0.0)


def _scores(r: np.ndarray, match: str) -> np.ndarray:
    p, q = r.shape
    if match == "index":
        if p != q:
            raise ValueError(f"match='index' needs the same number of kernels in both layers; got {p} and {q}")
        return np.diag(r).copy()
    s = np.zeros(p)
    if match == "greedy":
        rows, cols = _greedy(r)
    else:
        rows, cols = linear_assignment(r, maximize=True)
    s[rows] = r[rows, cols]
    return s


def _layers(model: Any, kinds: tuple) -> list:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


def kernel_similarity(model_a: Any, model_b: Any, *, match: str = "optimal", metric: str = "pearson") -> KernelSimilarity:
    """Kernel similarity of two torch networks, layer by layer (METHODS §4.2).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        With the same number of convolutions (paired in ``named_modules()`` order).
    match : {"optimal", "greedy", "index"}
    metric : {"pearson", "cosine"}

    Returns
    -------
    KernelSimilarity

    Raises
    ------
    ValueError
        Unknown match / metric, no convolutions, different numbers of convolutions, or paired
        kernels of different sizes.
    """
    from torch import nn

    if match not in KERNEL_MATCHES:
        raise ValueError(f"match must be one of {KERNEL_MATCHES}; got {match!r}")
    if metric not in ("pearson", "cosine"):
        raise ValueError(f"metric must be 'pearson' or 'cosine'; got {metric!r}")
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    ca, cb = _layers(model_a, convs), _layers(model_b, convs)
    if not ca or not cb:
        raise ValueError(f"kernel_similarity needs convolutions in both networks; found {len(ca)} and {len(cb)}")
    if len(ca) != len(cb):
        raise ValueError(f"the networks have {len(ca)} and {len(cb)} convolutions; the l-th of one pairs with the l-th "
                         "of the other, so the counts must agree")
    layers, scores, stats = [], [], []
    for (na, ma), (nb, mb) in zip(ca, cb):
        try:
            r = _similarity(_kernels(ma.weight), _kernels(mb.weight), metric)
        except ValueError as exc:
            raise ValueError(f"layers {na!r} and {nb!r}: {exc}") from None
        s = _scores(r, match)
        layers.append((na, nb))
        scores.append(s)
        stats.append({"max": float(s.max()), "min": float(s.min()), "mean": float(s.mean()), "std": float(s.std())})
    dense = []
    for (na, ma), (nb, mb) in zip(_layers(model_a, (nn.Linear,)), _layers(model_b, (nn.Linear,))):
        wa, wb = _kernels(ma.weight).ravel(), _kernels(mb.weight).ravel()
        pr = float(np.corrcoef(wa, wb)[0, 1]) if wa.shape == wb.shape else float("nan")
        dense.append({"layers": (na, nb), "pearson": pr})
    return KernelSimilarity(layers=layers, scores=scores, stats=stats,
                            score=float(np.mean([st["mean"] for st in stats])), dense=dense, match=match, metric=metric)


def kernel_similarity_matrix(models: Sequence[Any], *, match: str = "optimal",
                             metric: str = "pearson") -> tuple[np.ndarray, np.ndarray]:
    """Round robin over N networks: the N×N network scores S[i, j] = score(models[i],
    models[j]) and the N×N×L per-layer means. Every ordered pair is computed: "greedy" depends on
    which network's kernels go first, and layer means average over the first network's kernels,
    so S is symmetric only for equal widths with "optimal" or "index"."""
    n = len(models)
    if n < 1:
        raise ValueError("kernel_similarity_matrix needs at least one model")
    results = [[kernel_similarity(a, b, match=match, metric=metric) for b in models] for a in models]
    S = np.array([[r.score for r in row] for row in results])
    per_layer = np.array([[[st["mean"] for st in r.stats] for r in row] for row in results])
    return S, per_layer
