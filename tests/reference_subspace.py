"""Independent float64 NumPy oracle for subspace match (Wang et al. 2018; METHODS.md §5).

Written plainly from METHODS §5.1–§5.4, sharing no code with the package. Every distance is an
SVD least-squares residual (``np.linalg.lstsq`` with ``rcond=None``), which is rank-revealing, so
rank-deficient spans (the planted rows of §8.5 span only 10 dimensions) are handled correctly.

Layout (METHODS §0): X has shape (M samples, n1 neurons), Y (M, n2); column v of X is the
activation vector z_v of neuron v. METHODS §8.5 writes its test vectors with neurons as rows;
``toy`` and ``planted`` return them transposed into this layout.

Semantics
---------
* ε is relative: v is matched by a span S when dist(z_v, S) <= ε·‖z_v‖.
* Dead neurons (‖z‖ < 1e-16) are removed before anything else and never match; they still count
  in the denominator of ``similarity``.
* ``affine=True`` adds the all-ones vector of ℝ^M to BOTH spans (the "optional constant vector" of
  the authors' code): it is always in the span, it is never pruned and it is never counted.
* Index sets are returned as sorted int64 arrays of column indices of the ORIGINAL X and Y.

Oracles
-------
dead_mask, dist_to_span, max_match, similarity, is_match, simple_match, maximal_epsilon,
minimal_epsilon, toy, planted.
"""

from __future__ import annotations

import numpy as np

DEAD_NORM = 1e-16


def _f64(A):
    if hasattr(A, "detach") and hasattr(A, "cpu"):
        A = A.detach().cpu().double().numpy()
    A = np.array(A, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"expected a 2-D (n_samples, n_neurons) array; got shape {A.shape}")
    return A


def _idx(s):
    return np.array(sorted(int(i) for i in s), dtype=np.int64)


def dead_mask(X):
    """Boolean (n,) mask of dead neurons: columns with ‖z‖ < 1e-16."""
    X = _f64(X)
    return np.linalg.norm(X, axis=0) < DEAD_NORM


def dist_to_span(z, B):
    """Euclidean distance of z to the span of the columns of B (SVD least squares).

    z may be a vector (M,) — the result is a float — or a matrix (M, k) — the result is the (k,)
    array of the distances of its columns. B has shape (M, m); with m = 0 the span is {0} and the
    distance is ‖z‖.
    """
    z = np.asarray(z, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if B.ndim == 1:
        B = B[:, None]
    if B.shape[1] == 0:
        return np.linalg.norm(z, axis=0)
    beta = np.linalg.lstsq(B, z, rcond=None)[0]
    return np.linalg.norm(z - B @ beta, axis=0)


def _basis(A, cols, affine):
    """Columns ``cols`` of A, plus the all-ones column when affine."""
    B = A[:, list(cols)]
    if affine:
        B = np.hstack([B, np.ones((A.shape[0], 1))])
    return B


def _matched(Z, cols, A, other_cols, eps, affine):
    """The subset of ``cols`` (columns of Z) within relative distance eps of span(A[:, other_cols])."""
    cols = sorted(cols)
    if not cols:
        return set()
    Zc = Z[:, cols]
    d = dist_to_span(Zc, _basis(A, sorted(other_cols), affine))
    norms = np.linalg.norm(Zc, axis=0)
    return {c for c, dc, nc in zip(cols, d, norms) if dc <= eps * nc}


def _max_match_sets(X, Y, I, J, eps, affine):
    """§5.2 pruning started from candidate sets I ⊆ live X, J ⊆ live Y. Returns (I, J, passes)."""
    I, J = set(I), set(J)
    passes = 0
    while True:
        passes += 1
        new_I = _matched(X, I, Y, J, eps, affine)
        if not new_I:
            return set(), set(), passes
        new_J = _matched(Y, J, X, new_I, eps, affine)
        if not new_J:
            return set(), set(), passes
        if new_I == I and new_J == J:
            return I, J, passes
        I, J = new_I, new_J


def _live(A):
    return {int(i) for i in np.flatnonzero(~dead_mask(A))}


def max_match(X, Y, eps, affine=False):
    """Maximum ε-approximate match by the pruning loop of METHODS §5.2.

    Returns
    -------
    x_idx, y_idx : sorted int64 arrays (columns of X and Y in the maximum match)
    passes : int
        Number of passes; a pass is one update of I followed by one update of J. The final pass
        that changes nothing is counted, and a pass that empties I (J then is not updated) or J
        counts as a pass too.
    """
    X, Y = _f64(X), _f64(Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError("X and Y need the same number of samples (rows)")
    I, J, passes = _max_match_sets(X, Y, _live(X), _live(Y), eps, affine)
    return _idx(I), _idx(J), passes


def similarity(x_idx, y_idx, n1, n2):
    """Maximum-match similarity (|X*| + |Y*|)/(n1 + n2); n1, n2 include dead neurons."""
    return (len(x_idx) + len(y_idx)) / (n1 + n2)


def is_match(X, Y, xs, ys, eps, affine=False):
    """Whether (xs, ys) is an ε-approximate match, from the definition of METHODS §5.1 directly.

    Every v ∈ xs needs dist(z_v, S(Y_ys)) <= ε‖z_v‖ and every u ∈ ys dist(z_u, S(X_xs)) <= ε‖z_u‖
    (with the ones vector in both spans when affine). A set containing a dead neuron is not a
    match. The empty pair is (vacuously) a match.
    """
    X, Y = _f64(X), _f64(Y)
    xs, ys = sorted(int(i) for i in xs), sorted(int(j) for j in ys)
    if dead_mask(X)[xs].any() or dead_mask(Y)[ys].any():
        return False
    ok_x = _matched(X, xs, Y, ys, eps, affine) == set(xs)
    ok_y = _matched(Y, ys, X, xs, eps, affine) == set(ys)
    return ok_x and ok_y


def simple_match(X, Y, eps, neuron, random=False, seed=0, affine=False):
    """Simple match containing ``neuron`` by greedy deletion (METHODS §5.3).

    Parameters
    ----------
    neuron : ("x", i) or ("y", j)
    random : bool
        False: visit the other live neurons of X, then the other live neurons of Y, in index
        order. True: the same combined list (X's then Y's, the neuron itself left out), visited in
        the order ``np.random.default_rng(seed).permutation(len(list))``.

    Returns
    -------
    x_idx, y_idx : sorted int64 arrays; both empty when the neuron is not in MAX_MATCH(X, Y).

    Notes
    -----
    The candidate sets start as all live neurons. Removing w is kept when the maximum match of
    the remaining candidate sets still contains the neuron; the candidates are then the
    remaining sets (not the pruned match). The result is the maximum match of the final sets.
    """
    X, Y = _f64(X), _f64(Y)
    side, v = neuron[0], int(neuron[1])
    if side not in ("x", "y"):
        raise ValueError(f"neuron must be ('x', i) or ('y', j); got {neuron!r}")
    I0, J0 = _live(X), _live(Y)

    def contains(I, J):
        mi, mj, _ = _max_match_sets(X, Y, I, J, eps, affine)
        return (v in mi) if side == "x" else (v in mj)

    if not contains(I0, J0):
        return _idx(()), _idx(())
    order = [("x", i) for i in sorted(I0)] + [("y", j) for j in sorted(J0)]
    order = [w for w in order if w != (side, v)]
    if random:
        perm = np.random.default_rng(seed).permutation(len(order))
        order = [order[k] for k in perm]
    I, J = set(I0), set(J0)
    for s, w in order:
        tI, tJ = (I - {w}, J) if s == "x" else (I, J - {w})
        if contains(tI, tJ):
            I, J = tI, tJ
    mi, mj, _ = _max_match_sets(X, Y, I, J, eps, affine)
    return _idx(mi), _idx(mj)


def maximal_epsilon(X, Y, affine=False):
    """Maximal ε (METHODS §5.4): max over live neurons of both layers of dist(z, S(other layer))/‖z‖.

    The other layer is its live neurons (plus the ones vector when affine). It is the smallest ε
    at which the complete live layers match. 0.0 when neither layer has a live neuron.
    """
    X, Y = _f64(X), _f64(Y)
    I, J = sorted(_live(X)), sorted(_live(Y))
    worst = 0.0
    for Z, cols, A, other in ((X, I, Y, J), (Y, J, X, I)):
        if cols:
            rel = dist_to_span(Z[:, cols], _basis(A, other, affine)) / np.linalg.norm(Z[:, cols], axis=0)
            worst = max(worst, float(rel.max()))
    return worst


def minimal_epsilon(X, Y, min_size, tol=1e-4, affine=False):
    """Smallest ε whose maximum match has >= min_size neurons on each side (METHODS §5.4).

    Bisection on the bracket [0, maximal_epsilon(X, Y)]: at the upper end the complete live
    layers match. If ε = 0 already succeeds, 0.0 is returned. Otherwise the invariant is
    "lo fails, hi succeeds" and the loop stops when hi − lo <= tol; hi is returned, so the
    returned ε succeeds and every ε < hi − tol fails (the match grows monotonically with ε).

    Raises ValueError when min_size exceeds the number of live neurons of either layer.
    """
    X, Y = _f64(X), _f64(Y)
    if min_size > min(len(_live(X)), len(_live(Y))):
        raise ValueError("min_size exceeds the number of live neurons of a layer")

    def ok(eps):
        xi, yi, _ = max_match(X, Y, eps, affine=affine)
        return len(xi) >= min_size and len(yi) >= min_size

    if ok(0.0):
        return 0.0
    lo, hi = 0.0, maximal_epsilon(X, Y, affine=affine)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def toy():
    """METHODS §8.5 toy case as (X, Y) of shapes (6, 4) and (6, 5): samples × neurons."""
    e = np.eye(6)
    X = np.array([[1, 0.5, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], e[3], e[4]], dtype=np.float64)
    Y = np.array([e[2], e[0], [0.5, 1, 0, 0, 0, 0], e[3], e[4]], dtype=np.float64)
    return X.T.copy(), Y.T.copy()


def planted():
    """METHODS §8.5 planted case as (X, Y), each (200 samples, 120 neurons).

    Neurons 0–19 of each layer lie in a shared random 10-dimensional subspace, neurons 20–119 are
    independent Gaussian. Draws in the stated order from ``default_rng(0)``, then transposed.
    """
    rng = np.random.default_rng(0)
    B = rng.standard_normal((10, 200))
    X = np.vstack([rng.standard_normal((20, 10)) @ B, rng.standard_normal((100, 200))])
    Y = np.vstack([rng.standard_normal((20, 10)) @ B, rng.standard_normal((100, 200))])
    return X.T.copy(), Y.T.copy()
