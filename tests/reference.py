"""Independent float64 NumPy oracles for congruence's foundation layer (METHODS.md section 1).

Everything here is written plainly from the formulas, in float64, with dense matrices and stable
sorts, and shares no code with the package: it is what the package is checked against. Inputs may
be numpy arrays or CPU torch tensors (converted to float64 numpy first).

Oracles
-------
ref_column_stats, ref_correlation, ref_topk, ref_topk_correlation, ref_pairs, ref_knn,
ref_cross_stats.

Comparison helpers
------------------
assert_topk_equivalent, assert_pairs_equivalent (tolerance-aware: near-ties may reorder, entries
at the top-k boundary or at the threshold may be swapped / present or absent), pairs_from_sparse.
"""

from __future__ import annotations

import numpy as np

#: METHODS section 1.3: a feature is constant when sigma == 0 or sigma <= TAU * rms (float64).
CONSTANT_TAU = 1e-10


# ---------------------------------------------------------------------------------------------
# conversion
# ---------------------------------------------------------------------------------------------


def _to_numpy(a):
    """numpy array of ``a`` (numpy, torch CPU tensor, scalar, list), dtype untouched where possible."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor, without importing torch
        a = a.detach().cpu()
        if str(a.dtype) == "torch.bfloat16":
            a = a.float()
        return a.numpy()
    return np.asarray(a)


def _f64(a):
    return np.array(_to_numpy(a), dtype=np.float64)


def _f64_2d(a, name):
    a = _f64(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {a.shape}")
    return a


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


def ref_column_stats(X, ddof=1):
    """Per-column statistics of X (n, p), two-pass, float64.

    Returns
    -------
    dict with ``n_samples`` (int), ``mean``, ``var`` (divisor n - ddof), ``std``, ``sumsq``
    (raw sum of squares, sum_s X_si^2) and ``constant`` (bool): sigma == 0 or
    sigma <= 1e-10 * rms, rms = sqrt(mean X_si^2) (METHODS 1.3). ``sigma`` is the ddof std; when
    n <= ddof (variance undefined, ``var`` is NaN) constancy is judged on the population std.
    """
    X = _f64_2d(X, "X")
    n = X.shape[0]
    mean = X.sum(axis=0) / n if n > 0 else np.full(X.shape[1], np.nan)
    centred = X - mean
    m2 = (centred * centred).sum(axis=0)  # centred sum of squares (second pass)
    if n - ddof > 0:
        var = m2 / (n - ddof)
        sigma = np.sqrt(var)
    else:
        var = np.full(X.shape[1], np.nan)
        sigma = np.sqrt(m2 / n) if n > 0 else np.zeros(X.shape[1])
    sumsq = (X * X).sum(axis=0)
    rms = np.sqrt(sumsq / n) if n > 0 else np.zeros(X.shape[1])
    constant = (sigma == 0) | (sigma <= CONSTANT_TAU * rms)
    return {
        "n_samples": int(n),
        "mean": mean,
        "var": var,
        "std": np.sqrt(var),
        "sumsq": sumsq,
        "constant": constant,
    }


def _check_zero_var(zero_var):
    if zero_var not in ("zero", "nan", "raise"):
        raise ValueError(f"zero_var must be 'zero', 'nan' or 'raise'; got {zero_var!r}")


def ref_correlation(X, Y=None, metric="pearson", ddof=1, zero_var="zero"):
    """Dense (p, q) matrix between the columns of X (n, p) and Y (n, q) (Y=None: Y = X).

    pearson: two-pass centring, r_ij = <x~_i, y~_j> / (||x~_i|| ||y~_j||); entries involving a
    constant feature (``ref_column_stats(...)["constant"]``) are 0 (zero_var="zero") or NaN
    ("nan"); "raise" raises ValueError when there is any.
    cosine: uncentred, c_ij = <x_i, y_j> / (||x_i|| ||y_j||); entries involving an all-zero
    column follow zero_var the same way.
    covariance: sum_s (X_si - mu_i)(Y_sj - nu_j) / (n - ddof); always defined.
    """
    _check_zero_var(zero_var)
    X = _f64_2d(X, "X")
    Y = X if Y is None else _f64_2d(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y need the same number of rows; got {X.shape[0]} and {Y.shape[0]}")
    n = X.shape[0]

    if metric == "covariance":
        Xc = X - X.mean(axis=0)
        Yc = Y - Y.mean(axis=0)
        return (Xc.T @ Yc) / (n - ddof)

    if metric == "pearson":
        Xc = X - X.mean(axis=0)
        Yc = Y - Y.mean(axis=0)
        bad_x = ref_column_stats(X)["constant"]
        bad_y = ref_column_stats(Y)["constant"]
    elif metric == "cosine":
        Xc, Yc = X, Y
        bad_x = np.sqrt((X * X).sum(axis=0)) == 0
        bad_y = np.sqrt((Y * Y).sum(axis=0)) == 0
    else:
        raise ValueError(f"unknown metric {metric!r}")

    if zero_var == "raise" and (bad_x.any() or bad_y.any()):
        raise ValueError(f"{int(bad_x.sum())} + {int(bad_y.sum())} constant features")

    norm_x = np.sqrt((Xc * Xc).sum(axis=0))
    norm_y = np.sqrt((Yc * Yc).sum(axis=0))
    # Divide only the good columns; the bad ones are overwritten below.
    Xn = Xc / np.where(bad_x, 1.0, norm_x)
    Yn = Yc / np.where(bad_y, 1.0, norm_y)
    R = Xn.T @ Yn
    fill = 0.0 if zero_var == "zero" else np.nan
    R[bad_x, :] = fill
    R[:, bad_y] = fill
    return R


def ref_cross_stats(X, Y, ddof=1, zero_var="zero"):
    """Cross statistics of aligned X (n, p), Y (n, q), two-pass, float64.

    Returns dict(n, mean_x, mean_y, cov_xx (p, p), cov_xy (p, q), cov_yy (q, q), corr_xy (p, q)),
    covariances with divisor n - ddof, corr_xy as ``ref_correlation(X, Y, zero_var=zero_var)``.
    """
    X = _f64_2d(X, "X")
    Y = _f64_2d(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y need the same number of rows; got {X.shape[0]} and {Y.shape[0]}")
    n = X.shape[0]
    mean_x = X.mean(axis=0)
    mean_y = Y.mean(axis=0)
    Xc = X - mean_x
    Yc = Y - mean_y
    return {
        "n": int(n),
        "mean_x": mean_x,
        "mean_y": mean_y,
        "cov_xx": (Xc.T @ Xc) / (n - ddof),
        "cov_xy": (Xc.T @ Yc) / (n - ddof),
        "cov_yy": (Yc.T @ Yc) / (n - ddof),
        "corr_xy": ref_correlation(X, Y, metric="pearson", zero_var=zero_var),
    }


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------


def ref_topk(M, k, absolute=False, largest=True):
    """Top-k of every row of a dense matrix M (m, n).

    Ranking key: |v| when ``absolute`` else v; descending when ``largest`` else ascending.
    Equal keys go to the lowest index (stable sort). NaN entries are excluded (they count as
    -inf, i.e. worst). Slots beyond the number of non-NaN entries are (NaN, -1).

    Returns
    -------
    values : (m, k) float64, the signed entries M[i, indices[i, j]].
    indices : (m, k) int64.
    """
    M = _f64_2d(M, "M")
    m = M.shape[0]
    values = np.full((m, k), np.nan)
    indices = np.full((m, k), -1, dtype=np.int64)
    for i in range(m):
        row = M[i]
        key = np.abs(row) if absolute else row
        valid = np.flatnonzero(~np.isnan(row))
        sort_key = -key[valid] if largest else key[valid]
        order = valid[np.argsort(sort_key, kind="stable")][:k]
        values[i, : len(order)] = row[order]
        indices[i, : len(order)] = order
    return values, indices


def ref_topk_correlation(
    X, Y=None, k=8, absolute=False, axis=1, exclude_self=None, metric="pearson", zero_var="zero", ddof=1
):
    """Top-k correlation partners, from the dense ``ref_correlation`` matrix.

    axis=1: for each column of X its k best columns of Y (shape (p, k)); axis=0: for each column
    of Y its k best columns of X (shape (q, k)). ``exclude_self`` (None means ``Y is None``)
    excludes the diagonal entries i == j by index.
    """
    if exclude_self is None:
        exclude_self = Y is None
    R = ref_correlation(X, Y, metric=metric, ddof=ddof, zero_var=zero_var)
    if axis == 0:
        R = R.T.copy()
    elif axis != 1:
        raise ValueError(f"axis must be 0 or 1; got {axis!r}")
    if exclude_self:
        d = min(R.shape)
        R[np.arange(d), np.arange(d)] = np.nan
    return ref_topk(R, k, absolute=absolute, largest=True)


def ref_pairs(M, threshold, absolute=False):
    """All entries of M with value >= threshold (|value| >= threshold when ``absolute``).

    NaN entries never qualify. Returns (rows int64, cols int64, values float64) sorted by (i, j).
    """
    M = _f64_2d(M, "M")
    key = np.abs(M) if absolute else M
    with np.errstate(invalid="ignore"):
        mask = key >= threshold
    rows, cols = np.nonzero(mask)  # row-major: already sorted by (i, j)
    return rows.astype(np.int64), cols.astype(np.int64), M[rows, cols]


def ref_knn(P, Q=None, k=8, metric="sqeuclidean", exclude_self=None):
    """k nearest rows of Q (n_q, d) for every row of P (n_p, d) (Q=None: self-join on P).

    sqeuclidean: sum_l (p_l - q_l)^2 from explicit differences, ascending.
    inner: <p, q>, descending. cosine: inner product of L2-normalised rows, descending (a zero
    row has similarity 0 with everything).
    ``exclude_self`` (None means ``Q is None``) excludes j == i by index, not by zero distance.
    Ties go to the lowest index; missing slots are (NaN, -1).
    """
    if exclude_self is None:
        exclude_self = Q is None
    P = _f64_2d(P, "P")
    Q = P if Q is None else _f64_2d(Q, "Q")
    if P.shape[1] != Q.shape[1]:
        raise ValueError(f"P and Q need the same number of columns; got {P.shape[1]} and {Q.shape[1]}")
    if metric == "sqeuclidean":
        D = np.empty((P.shape[0], Q.shape[0]))
        for i in range(P.shape[0]):
            diff = Q - P[i]
            D[i] = (diff * diff).sum(axis=1)
        largest = False
    elif metric == "inner":
        D = P @ Q.T
        largest = True
    elif metric == "cosine":
        pn = np.sqrt((P * P).sum(axis=1))
        qn = np.sqrt((Q * Q).sum(axis=1))
        D = (P / np.where(pn == 0, 1.0, pn)[:, None]) @ (Q / np.where(qn == 0, 1.0, qn)[:, None]).T
        largest = True
    else:
        raise ValueError(f"unknown metric {metric!r}")
    if exclude_self:
        d = min(D.shape)
        D[np.arange(d), np.arange(d)] = np.nan
    return ref_topk(D, k, absolute=False, largest=largest)


# ---------------------------------------------------------------------------------------------
# tolerance-aware comparison
# ---------------------------------------------------------------------------------------------


def _close(a, b, rtol, atol):
    """|a - b| <= atol + rtol * max(|a|, |b|), elementwise (symmetric)."""
    return np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))


def assert_topk_equivalent(
    values,
    indices,
    ref_values,
    ref_indices,
    rtol=1e-5,
    atol=1e-6,
    absolute=False,
    largest=True,
    ref_matrix=None,
    check_tie_order=True,
):
    """Assert that a top-k result is equivalent to the oracle's up to near-ties.

    Accepted differences (as scikit-learn's pairwise-reduction tests do): entries whose values are
    within tolerance of each other may come in any order, and an index may be swapped for another
    only when both values are within tolerance of the k-th (boundary) value. Everything else must
    match: shapes, number of found entries (slots (NaN, -1) at the same places), the ranking keys
    position by position, the signed value of every index present in both, no duplicates.

    ``rtol``/``atol`` bound the error of one value. Where two independently perturbed values are
    compared (a reordered pair, an entry against the boundary) the band is twice that, the sound
    bound: an error of eps per value can make values up to 2 eps apart swap.

    Parameters
    ----------
    values, indices : (m, k) the result under test (numpy arrays or CPU torch tensors).
    ref_values, ref_indices : (m, k) the oracle's result (``ref_topk`` and friends).
    rtol, atol : tolerance, |a - b| <= atol + rtol * max(|a|, |b|).
    absolute : ranking key is |value| (signed values are still compared).
    largest : descending (True, similarities) or ascending (False, distances).
    ref_matrix : optional (m, n) dense oracle matrix with excluded entries set to NaN. When given,
        every returned (index, value) is checked against it, which also catches a wrong index
        returned at the boundary.
    check_tie_order : among returned entries whose values are exactly equal, indices must be
        increasing (ties to the lowest index; self-consistency of the result under test).
    """
    values = np.asarray(_f64(values))
    indices = np.asarray(_to_numpy(indices)).astype(np.int64)
    ref_values = _f64(ref_values)
    ref_indices = np.asarray(_to_numpy(ref_indices)).astype(np.int64)
    # allow (m,) results such as max/argmax
    values, indices, ref_values, ref_indices = (
        a[:, None] if a.ndim == 1 else a for a in (values, indices, ref_values, ref_indices))
    assert values.shape == ref_values.shape, f"values shape {values.shape} != {ref_values.shape}"
    assert indices.shape == ref_indices.shape, f"indices shape {indices.shape} != {ref_indices.shape}"
    if ref_matrix is not None:
        ref_matrix = _f64_2d(ref_matrix, "ref_matrix")
        assert ref_matrix.shape[0] == values.shape[0], "ref_matrix has the wrong number of rows"

    def key_of(v):
        k = np.abs(v) if absolute else v
        return k if largest else -k

    def tol(a, b):
        return atol + rtol * max(abs(a), abs(b))

    for i in range(values.shape[0]):
        where = f"row {i}: got indices {indices[i].tolist()} values {values[i].tolist()}, " \
                f"expected {ref_indices[i].tolist()} {ref_values[i].tolist()}"
        found = indices[i] >= 0
        ref_found = ref_indices[i] >= 0
        assert np.array_equal(found, ref_found), f"missing slots differ; {where}"
        nf = int(found.sum())
        assert found[:nf].all(), f"missing slots (-1) must come last; {where}"
        assert np.isnan(values[i, nf:]).all(), f"missing slots must hold NaN; {where}"
        idx, val = indices[i, :nf], values[i, :nf]
        ridx, rval = ref_indices[i, :nf], ref_values[i, :nf]
        assert len(set(idx.tolist())) == nf, f"duplicate indices; {where}"
        assert not np.isnan(val).any(), f"NaN value at a found slot; {where}"
        if nf == 0:
            continue
        key, rkey = key_of(val), key_of(rval)

        # Position-wise ranking keys (sorting is 1-Lipschitz: near-tie reorders keep them close).
        ok = _close(key, rkey, rtol, atol)
        assert ok.all(), f"ranking values differ at positions {np.flatnonzero(~ok).tolist()}; {where}"

        if check_tie_order:
            for j in range(nf - 1):
                if key[j] == key[j + 1]:
                    assert idx[j] < idx[j + 1], f"exact tie not broken by lowest index at {j}; {where}"

        ref_pos = {int(m): j for j, m in enumerate(ridx)}
        pos = {int(m): j for j, m in enumerate(idx)}
        boundary = rkey[-1]
        for j, m in enumerate(idx.tolist()):
            if m in ref_pos:
                r = ref_pos[m]
                assert _close(val[j], rval[r], rtol, atol), (
                    f"value of index {m} is {val[j]!r}, expected {rval[r]!r}; {where}")
                assert abs(rkey[j] - rkey[r]) <= 2 * tol(rkey[j], rkey[r]), (
                    f"index {m} at position {j} but expected at {r}, not a near-tie; {where}")
            else:
                assert abs(key[j] - boundary) <= 2 * tol(key[j], boundary), (
                    f"index {m} not in the expected top-k and not at the boundary; {where}")
        for r, m in enumerate(ridx.tolist()):
            if m not in pos:
                assert abs(rkey[r] - boundary) <= 2 * tol(rkey[r], boundary), (
                    f"expected index {m} missing and not at the boundary; {where}")

        if ref_matrix is not None:
            row = ref_matrix[i]
            assert (idx < row.shape[0]).all(), f"index out of range; {where}"
            truth = row[idx]
            assert not np.isnan(truth).any(), f"an excluded (NaN) entry was returned; {where}"
            ok = _close(val, truth, rtol, atol)
            assert ok.all(), f"returned values do not match the matrix at {idx[~ok].tolist()}; {where}"
            rest = np.ones(row.shape[0], dtype=bool)
            rest[idx] = False
            rest &= ~np.isnan(row)
            if rest.any():
                best_rest = key_of(row[rest]).max()
                worst_kept = key_of(truth).min()
                assert best_rest <= worst_kept + 2 * tol(best_rest, worst_kept), (
                    f"a better entry ({best_rest!r}) was left out; {where}")


def assert_pairs_equivalent(
    rows,
    cols,
    values,
    ref_rows,
    ref_cols,
    ref_values,
    threshold,
    rtol=1e-5,
    atol=1e-6,
    absolute=False,
    ref_matrix=None,
):
    """Assert that threshold pairs match the oracle's up to the threshold band.

    The result must be sorted by (i, j) without duplicates; pairs present in both must have
    matching (signed) values; a pair present in only one of the two is accepted only when its
    value (|value| when ``absolute``) is within tolerance of ``threshold``. With ``ref_matrix``
    (dense oracle matrix) every returned value is also checked against it.
    """
    rows = np.asarray(_to_numpy(rows)).astype(np.int64).ravel()
    cols = np.asarray(_to_numpy(cols)).astype(np.int64).ravel()
    values = _f64(values).ravel()
    ref_rows = np.asarray(_to_numpy(ref_rows)).astype(np.int64).ravel()
    ref_cols = np.asarray(_to_numpy(ref_cols)).astype(np.int64).ravel()
    ref_values = _f64(ref_values).ravel()
    assert rows.shape == cols.shape == values.shape, "rows, cols and values differ in length"
    assert ref_rows.shape == ref_cols.shape == ref_values.shape, "reference arrays differ in length"

    pairs = list(zip(rows.tolist(), cols.tolist()))
    assert all(a < b for a, b in zip(pairs, pairs[1:])), "pairs are not strictly sorted by (i, j)"
    assert not np.isnan(values).any(), "NaN value in the pairs"
    got = {p: v for p, v in zip(pairs, values.tolist())}
    ref = {p: v for p, v in zip(zip(ref_rows.tolist(), ref_cols.tolist()), ref_values.tolist())}

    def key(v):
        return abs(v) if absolute else v

    def at_threshold(v):
        return abs(key(v) - threshold) <= atol + rtol * max(abs(key(v)), abs(threshold))

    for p, v in got.items():
        if p in ref:
            assert _close(v, ref[p], rtol, atol), f"pair {p}: value {v!r}, expected {ref[p]!r}"
        else:
            assert at_threshold(v), f"unexpected pair {p} with value {v!r} (threshold {threshold})"
    for p, v in ref.items():
        if p not in got:
            assert at_threshold(v), f"missing pair {p} with value {v!r} (threshold {threshold})"

    if ref_matrix is not None:
        ref_matrix = _f64_2d(ref_matrix, "ref_matrix")
        truth = ref_matrix[rows, cols]
        ok = _close(values, truth, rtol, atol)
        assert ok.all(), f"values do not match the matrix at pairs {np.flatnonzero(~ok).tolist()}"


def pairs_from_sparse(S):
    """(rows, cols, values) numpy arrays from a scipy sparse array/matrix or a torch sparse COO
    tensor, in stored order (no sorting, no duplicate summing)."""
    if hasattr(S, "is_sparse") and hasattr(S, "_indices"):  # torch sparse COO
        S = S.detach().cpu()
        if S.is_coalesced():
            ind, val = S.indices(), S.values()
        else:
            ind, val = S._indices(), S._values()
        return ind[0].numpy().astype(np.int64), ind[1].numpy().astype(np.int64), _f64(val)
    C = S.tocoo()
    return np.asarray(C.row, dtype=np.int64), np.asarray(C.col, dtype=np.int64), _f64(C.data)
