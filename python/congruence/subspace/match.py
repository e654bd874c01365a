"""Maximum match, simple match and the ε search of Wang et al. (2018), in Gram space (METHODS.md §5).

Neurons are columns z_v ∈ ℝ^M of X (M, n1) and Y (M, n2), used raw. (X′, Y′) is an
ε-approximate match when every z_v of X′ lies within ε‖z_v‖ of span(Y′) and every z_u of Y′
within ε‖z_u‖ of span(X′). Matches are closed under union, so a unique maximum match exists;
pruning finds it (§5.2): alternately drop the X-neurons too far from span(Y_J) and the
Y-neurons too far from span(X_I) until nothing changes.

Every distance comes from the float64 Gram of [X Y] (one streamed pass,
:mod:`congruence.subspace.gram`) and a pivoted Cholesky of the current basis block
(:mod:`congruence.subspace.span`): a pass costs O(|J|³ + |I||J|r), independent of M, where the
authors' least-squares pruning refactors the M × |J| panel every pass.

**Conditioning guard.** The Gram form squares the condition number: dist²/‖z‖² carries an error of
about u·κ (κ of the retained basis block). A decision is *near the boundary* when
|dist/‖z‖ − ε| < max(1e-6, 10·u·κ/(2·max(ε, 1e-3))); when the raw activations were given, every
such decision is recomputed by SVD least squares on the raw vectors (``details["rechecked"]``
counts them). From a streamed state the raw vectors are gone: near-boundary decisions are kept
as computed and counted in ``details["unverified"]`` (0 in the common case; a ValueError is never
raised for it).

Dead neurons (‖z‖ < 1e-16) are removed first and never match; they still count in the similarity's
denominator (|X*| + |Y*|) / (n1 + n2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .._arrays import is_dask_array
from ..cross_stats import CrossStats
from .gram import SubspaceGram, subspace_gram
from .span import factor_span, span_residuals

__all__ = ["SubspaceMatch", "max_match", "simple_match", "maximal_epsilon", "minimal_epsilon", "DEAD_NORM"]

#: Neurons with ‖z‖ below this are dead (METHODS §5.1).
DEAD_NORM = 1e-16
#: Smallest re-check band on |dist/‖z‖ − ε| (METHODS §5.6's Library choice).
RECHECK_BAND = 1e-6
_U = np.finfo(np.float64).eps / 2


@dataclass(frozen=True)
class SubspaceMatch:
    """A match between the neurons of X and Y.

    Attributes
    ----------
    x, y : ndarray of int64
        Sorted neuron (column) indices of X* and Y*.
    similarity : float
        (|X*| + |Y*|) / (n1 + n2), dead neurons included in the denominator.
    eps : float
    shape : (n1, n2)
    details : dict
        ``passes`` (pruning passes of the last maximum-match search), ``dead_x``/``dead_y``,
        ``rechecked``/``unverified`` (near-boundary decisions, see the module docstring),
        ``max_kappa`` (largest basis condition estimate met).
    """

    x: np.ndarray
    y: np.ndarray
    similarity: float
    eps: float
    shape: tuple
    details: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"SubspaceMatch(|X*|={len(self.x)} of {self.shape[0]}, |Y*|={len(self.y)} of {self.shape[1]}, "
                f"eps={self.eps:g}, similarity={self.similarity:.6g})")


class _Problem:
    """A Gram matrix with its live neurons, plus the raw vectors when they are at hand."""

    def __init__(self, gram: SubspaceGram, raw: Optional[tuple]) -> None:
        self.gram = gram
        self.G = gram.G
        self.n1, self.n2 = gram.n1, gram.n2
        self.norm2 = gram.norms2()
        live = self.norm2 >= DEAD_NORM ** 2
        self.live_x = np.nonzero(live[: self.n1])[0].astype(np.int64)
        self.live_y = (np.nonzero(live[self.n1:])[0] + self.n1).astype(np.int64)
        self.raw = raw  # (X, Y) as given, read only for re-checks, or None
        self.rechecked = 0
        self.unverified = 0
        self.max_kappa = 1.0

    def _members(self, basis: np.ndarray) -> np.ndarray:
        c = self.gram.const
        return basis if c is None else np.append(basis, c)

    def rel_dist(self, queries: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, float]:
        """dist(z_q, span(basis))/‖z_q‖ for each query, and the basis κ estimate."""
        f = factor_span(self.G, self._members(basis))
        d2 = span_residuals(self.G, f, queries)
        kappa = f.kappa
        self.max_kappa = max(self.max_kappa, kappa)
        return np.sqrt(d2 / self.norm2[queries]), kappa

    def _columns(self, idx: np.ndarray) -> np.ndarray:
        """Raw float64 columns of [X Y 1] for global indices."""
        X, Y = self.raw
        cols = []
        for v in idx:
            if v < self.n1:
                cols.append(np.asarray(X[:, v], dtype=np.float64))
            elif v < self.n1 + self.n2:
                cols.append(np.asarray(Y[:, v - self.n1], dtype=np.float64))
            else:
                cols.append(np.ones(self.gram.n_samples))
        return np.stack(cols, axis=1) if cols else np.zeros((self.gram.n_samples, 0))

    def largest_rel_dist(self) -> float:
        """The largest relative distance of a live neuron to the span of the whole other layer."""
        rx, _ = self.rel_dist(self.live_x, self.live_y)
        ry, _ = self.rel_dist(self.live_y, self.live_x)
        return float(max(rx.max(), ry.max()))

    def _raw_rel_dist(self, queries: np.ndarray, basis: np.ndarray) -> np.ndarray:
        B = self._columns(self._members(basis))
        Q = self._columns(queries)
        if B.shape[1] == 0:
            return np.ones(len(queries))
        coef, *_ = np.linalg.lstsq(B, Q, rcond=None)
        res = np.linalg.norm(Q - B @ coef, axis=0)
        return res / np.linalg.norm(Q, axis=0)

    def keep(self, queries: np.ndarray, basis: np.ndarray, eps: float) -> np.ndarray:
        """The queries within ε (relative) of span(basis)."""
        if queries.size == 0:
            return queries
        r, kappa = self.rel_dist(queries, basis)
        keep = r <= eps
        band = max(RECHECK_BAND, 10.0 * _U * kappa / (2.0 * max(eps, 1e-3)))
        near = np.abs(r - eps) < band
        if near.any():
            if self.raw is not None:
                keep[near] = self._raw_rel_dist(queries[near], basis) <= eps
                self.rechecked += int(near.sum())
            else:
                self.unverified += int(near.sum())
        return queries[keep]

    def prune(self, I: np.ndarray, J: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, int]:
        """The maximum match contained in (I, J) (global indices), and the passes it took."""
        passes = 0
        empty = np.zeros(0, dtype=np.int64)
        while True:
            passes += 1
            I2 = self.keep(I, J, eps)
            if I2.size == 0:
                return empty, empty, passes
            J2 = self.keep(J, I2, eps)
            if J2.size == 0:
                return empty, empty, passes
            if I2.size == I.size and J2.size == J.size:
                return I2, J2, passes
            I, J = I2, J2

    def result(self, I: np.ndarray, J: np.ndarray, eps: float, **extra: Any) -> SubspaceMatch:
        details = {"dead_x": int(self.n1 - self.live_x.size), "dead_y": int(self.n2 - self.live_y.size),
                   "rechecked": self.rechecked, "unverified": self.unverified, "max_kappa": self.max_kappa, **extra}
        return SubspaceMatch(x=np.sort(I), y=np.sort(J - self.n1), similarity=(I.size + J.size) / (self.n1 + self.n2),
                             eps=float(eps), shape=(self.n1, self.n2), details=details)


def _problem(X: Any, Y: Any, stats: Optional[CrossStats], gram: Optional[SubspaceGram], affine: bool,
             num_threads: Optional[int]) -> _Problem:
    if gram is not None:
        if X is not None or Y is not None or stats is not None:
            raise ValueError("pass one of: X and Y, stats, or gram")
        if not isinstance(gram, SubspaceGram):
            raise ValueError(f"gram must be a SubspaceGram; got {type(gram).__name__}")
        return _Problem(gram, None)
    g = subspace_gram(X, Y, stats=stats, affine=affine, num_threads=num_threads)
    # Dask inputs are reduced on the cluster like a streamed state: no host copy for re-checks.
    streamed = stats is not None or is_dask_array(X) or is_dask_array(Y)
    return _Problem(g, None if streamed else (_host(X), _host(Y)))


def _host(A: Any) -> np.ndarray:
    """A host view of the activations for re-checks (torch tensors through numpy, no copy)."""
    return A.detach().cpu().numpy() if hasattr(A, "detach") else np.asarray(A)


def _check_eps(eps: Any, name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or not np.isfinite(eps) \
            or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {eps!r}")
    return float(eps)


def max_match(X: Any = None, Y: Any = None, eps: float = 0.25, *, stats: Optional[CrossStats] = None,
              gram: Optional[SubspaceGram] = None, affine: bool = False,
              num_threads: Optional[int] = None) -> SubspaceMatch:
    """The maximum ε-approximate match between the neurons of X and Y (Wang et al. 2018, Alg. 1).

    Parameters
    ----------
    X : array_like, shape (M, n1)
    Y : array_like, shape (M, n2)
        Activations over the same M samples; columns are neurons (conv layers: channels over
        images × positions, see :func:`congruence.subspace.conv_max_match`).
    eps : float
        Relative tolerance: dist(z_v, span) ≤ ε‖z_v‖. 0 means exact (up to the rank tolerance).
    stats : CrossStats, optional
        A streamed state instead of X and Y (any shifts, ``cross_only=False``).
    gram : SubspaceGram, optional
        A precomputed Gram (reuse it across ε values); its ``affine`` setting applies.
    affine : bool
        Include the constant vector in both spans.
    num_threads : int, optional

    Returns
    -------
    SubspaceMatch

    References
    ----------
    Wang, Hu, Gu, Wu, Hu, He & Hopcroft (2018), "Towards understanding learning representations:
    to what extent do different neural networks learn the same representation", NeurIPS.
    """
    eps = _check_eps(eps)
    prob = _problem(X, Y, stats, gram, affine, num_threads)
    I, J, passes = prob.prune(prob.live_x, prob.live_y, eps)
    return prob.result(I, J, eps, passes=passes)


def _neuron(neuron: Any, prob: _Problem) -> int:
    if not (isinstance(neuron, tuple) and len(neuron) == 2 and neuron[0] in ("x", "y")
            and isinstance(neuron[1], (int, np.integer)) and not isinstance(neuron[1], bool)):
        raise ValueError(f"neuron must be ('x', i) or ('y', j); got {neuron!r}")
    side, idx = neuron
    n = prob.n1 if side == "x" else prob.n2
    if not 0 <= idx < n:
        raise ValueError(f"neuron index {idx} is out of range for layer {side.upper()} ({n} neurons)")
    return int(idx) if side == "x" else prob.n1 + int(idx)


def simple_match(X: Any = None, Y: Any = None, eps: float = 0.25, neuron: Any = ("x", 0), *,
                 random: bool = False, seed: int = 0, stats: Optional[CrossStats] = None,
                 gram: Optional[SubspaceGram] = None, affine: bool = False,
                 num_threads: Optional[int] = None) -> SubspaceMatch:
    """A simple match containing ``neuron`` by greedy deletion (METHODS §5.3, the authors' heuristic).

    If the neuron is not in the maximum match the result is empty (``details["found"]`` False).
    Otherwise every other live neuron w — X's then Y's in index order, or a seeded random order
    with ``random=True`` — is tentatively removed from the candidates, and the removal is kept
    when the maximum match of the remaining candidates still contains the neuron; the result is the
    maximum match of the final candidates. Order-dependent for ε > 0, as in the authors' code.

    Parameters
    ----------
    neuron : ("x", i) or ("y", j)
    random : bool
    seed : int
        Seeds ``numpy.random.default_rng`` for the random order.
    Other parameters as in :func:`max_match`.

    Notes
    -----
    The maximum match of a subset of the candidates lies inside the current maximum match (it is a
    match within the larger candidate set), so each trial prunes from the current maximum match
    minus w rather than from all candidates, and a w outside it is dropped without a search.
    """
    eps = _check_eps(eps)
    prob = _problem(X, Y, stats, gram, affine, num_threads)
    v = _neuron(neuron, prob)
    I, J, passes = prob.prune(prob.live_x, prob.live_y, eps)
    searches = 1
    if v not in set(I.tolist()) | set(J.tolist()):
        empty = np.zeros(0, dtype=np.int64)
        return prob.result(empty, empty + prob.n1, eps, passes=passes, found=False, searches=searches)
    order = np.concatenate([prob.live_x, prob.live_y])
    order = order[order != v]
    if random:
        order = order[np.random.default_rng(seed).permutation(order.size)]
    in_match = np.zeros(prob.n1 + prob.n2, dtype=bool)
    in_match[I] = True
    in_match[J] = True
    for w in order:
        if not in_match[w]:
            continue  # removing it leaves the maximum match unchanged
        if w < prob.n1:
            I2, J2, passes = prob.prune(I[I != w], J, eps)
        else:
            I2, J2, passes = prob.prune(I, J[J != w], eps)
        searches += 1
        if (v < prob.n1 and np.any(I2 == v)) or (v >= prob.n1 and np.any(J2 == v)):
            in_match[:] = False
            in_match[I2] = True
            in_match[J2] = True
            I, J = I2, J2
    return prob.result(I, J, eps, passes=passes, found=True, searches=searches)


def maximal_epsilon(X: Any = None, Y: Any = None, *, stats: Optional[CrossStats] = None,
                    gram: Optional[SubspaceGram] = None, affine: bool = False,
                    num_threads: Optional[int] = None) -> float:
    """The smallest ε at which the complete (live) layers match: the largest relative distance of
    a live neuron of either layer to the span of the whole other layer (METHODS §5.4)."""
    prob = _problem(X, Y, stats, gram, affine, num_threads)
    if prob.live_x.size == 0 or prob.live_y.size == 0:
        raise ValueError("a layer has no live neurons (all ‖z‖ < 1e-16): no ε makes the layers match")
    return prob.largest_rel_dist()


def minimal_epsilon(X: Any = None, Y: Any = None, min_size: int = 1, *, tol: float = 1e-4,
                    stats: Optional[CrossStats] = None, gram: Optional[SubspaceGram] = None, affine: bool = False,
                    num_threads: Optional[int] = None) -> float:
    """The smallest ε (to ``tol``) whose maximum match has at least ``min_size`` neurons on each
    side, by bisection on [0, maximal ε] (valid: the maximum match grows with ε, METHODS §5.4).

    Returns the upper end of the final bracket: an ε verified to reach ``min_size``, at most
    ``tol`` above the true minimum.
    """
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size must be a positive integer; got {min_size!r}")
    tol = _check_eps(tol, "tol")
    if tol == 0:
        raise ValueError("tol must be > 0")
    prob = _problem(X, Y, stats, gram, affine, num_threads)
    if min_size > min(prob.live_x.size, prob.live_y.size):
        raise ValueError(f"min_size={min_size} exceeds the live neurons of a layer "
                         f"({prob.live_x.size} in X, {prob.live_y.size} in Y)")

    def big_enough(eps: float) -> bool:
        I, J, _ = prob.prune(prob.live_x, prob.live_y, eps)
        return I.size >= min_size and J.size >= min_size

    if big_enough(0.0):
        return 0.0
    # Just above the maximal ε the whole layers match, clear of the re-check band.
    lo, hi = 0.0, prob.largest_rel_dist() * (1 + 1e-5) + 1e-5
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if big_enough(mid):
            hi = mid
        else:
            lo = mid
    return hi
