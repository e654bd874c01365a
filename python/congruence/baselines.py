"""Pure-PyTorch baselines: the natural torch implementation of each primitive.

These are what a careful user writes with torch alone (centre, normalise, matmul, topk): they are
the opponents in the benchmark suite and a second implementation to test against. Unlike the
congruence engine they materialise the full ``n_x x n_y`` matrix, and they compute in the input
dtype on the input device (torch tensors in, torch tensors out). X and Y must share dtype and
device. Ties in ``topk`` follow ``torch.topk`` (not guaranteed to be the lowest index).

Activations are ``(n_samples, n_features)``; correlations are between columns, kNN between rows.
"""

from __future__ import annotations

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("congruence.baselines needs torch: pip install congruence[torch]") from exc

__all__ = [
    "column_stats",
    "correlation",
    "topk_correlation",
    "max_correlation",
    "correlation_pairs",
    "knn",
    "cross_stats",
    "cache_activations",
    "linear_cka_all_pairs",
    "compare_linear_cka",
    "MinibatchCKA",
    "minibatch_cka",
    "max_match_lstsq",
    "diffusion_map_torch",
    "agreement_matrix_torch",
    "error_consistency_torch",
]

from ._cka_baselines import (  # noqa: E402  (all-layer-pair CKA: benchmark P6)
    MinibatchCKA,
    cache_activations,
    compare_linear_cka,
    linear_cka_all_pairs,
    minibatch_cka,
)
from ._subspace_baselines import max_match_lstsq  # noqa: E402  (subspace match by lstsq: benchmark P7)
from ._diffusion_baselines import diffusion_map_torch  # noqa: E402  (diffusion maps: benchmark P8)
from ._agreement_baselines import agreement_matrix_torch, error_consistency_torch  # noqa: E402,E501  (agreement: P9)

_METRICS = ("pearson", "cosine", "covariance")
_KNN_METRICS = ("sqeuclidean", "inner", "cosine")


def _check_2d(A, name):
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {tuple(A.shape)}")


def _check_pair(X, Y):
    _check_2d(X, "X")
    if Y is not None:
        _check_2d(Y, "Y")
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"X and Y need the same number of rows; got {X.shape[0]} and {Y.shape[0]}")


def _unit_columns(A, centre):
    """Columns of A (optionally centred) divided by their L2 norm clamped at the dtype's tiny."""
    if centre:
        A = A - A.mean(dim=0, keepdim=True)
    norm = torch.linalg.vector_norm(A, dim=0, keepdim=True)
    return A / norm.clamp_min(torch.finfo(A.dtype).tiny)


def _topk_rows(S, k, largest, excluded):
    """``torch.topk`` along rows; slots beyond the row length or holding ``excluded`` -> (nan, -1)."""
    n_rows, n_cols = S.shape
    kk = min(k, n_cols)
    values, indices = torch.topk(S, kk, dim=1, largest=largest, sorted=True)
    if excluded is not None:  # no data-dependent branch: no host sync on GPU
        missing = values == excluded
        values = values.masked_fill(missing, float("nan"))
        indices = indices.masked_fill(missing, -1)
    if kk < k:
        values = torch.cat([values, values.new_full((n_rows, k - kk), float("nan"))], dim=1)
        indices = torch.cat([indices, indices.new_full((n_rows, k - kk), -1)], dim=1)
    return values, indices


def column_stats(X, ddof=1):
    """Per-column mean and variance.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, n_features), floating dtype
    ddof : int, default 1
        Variance divisor is ``n_samples - ddof``.

    Returns
    -------
    mean : torch.Tensor, shape (n_features,), dtype of X
    var : torch.Tensor, shape (n_features,), dtype of X
    """
    _check_2d(X, "X")
    var, mean = torch.var_mean(X, dim=0, correction=ddof)
    return mean, var


def correlation(X, Y=None, metric="pearson", ddof=1):
    """Dense matrix between the columns of X and Y.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, p), floating dtype
    Y : torch.Tensor, shape (n_samples, q), same dtype and device as X, optional
        Defaults to X (the symmetric self-matrix).
    metric : {"pearson", "cosine", "covariance"}
        pearson: centred columns normalised to unit norm, then ``Xnᵀ Yn``; cosine: the same
        without centring; covariance: ``Xcᵀ Yc / (n_samples - ddof)``.
    ddof : int, default 1
        Only used by ``"covariance"``.

    Returns
    -------
    torch.Tensor, shape (p, q), dtype of X

    Notes
    -----
    Column norms are clamped at ``torch.finfo(dtype).tiny`` before dividing, so there is no NaN:
    a zero-variance column (pearson) or an all-zero column (cosine) gives (approximately) 0 against
    every other column. Between two constant columns the value is arbitrary (0, or +-1 when the
    computed mean leaves a rounding residue).
    """
    _check_pair(X, Y)
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}")
    if metric == "covariance":
        Xc = X - X.mean(dim=0, keepdim=True)
        Yc = Xc if Y is None else Y - Y.mean(dim=0, keepdim=True)
        return (Xc.T @ Yc) / (X.shape[0] - ddof)
    centre = metric == "pearson"
    Xn = _unit_columns(X, centre)
    Yn = Xn if Y is None else _unit_columns(Y, centre)
    return Xn.T @ Yn


def _scores(X, Y, metric, absolute, exclude_self):
    """Correlation matrix, its ranking key (|R| if absolute) with the diagonal at -inf if asked."""
    R = correlation(X, Y, metric=metric)
    if absolute:
        key = R.abs()
    elif exclude_self:
        key = R.clone()
    else:
        key = R
    if exclude_self:
        key.fill_diagonal_(float("-inf"))
    return R, key


def topk_correlation(X, Y=None, k=8, absolute=False, exclude_self=None, metric="pearson"):
    """The k best partners in Y of every column of X: ``correlation`` then ``torch.topk``.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, p), floating dtype
    Y : torch.Tensor, shape (n_samples, q), optional (defaults to X)
    k : int, default 8
    absolute : bool, default False
        Rank by ``|r|`` (``topk`` of ``R.abs()``), return the signed values (``gather``).
    exclude_self : bool or None
        Exclude the diagonal (set to -inf before ``topk``); None means ``Y is None``.
    metric : {"pearson", "cosine", "covariance"}

    Returns
    -------
    values : torch.Tensor, shape (p, k), dtype of X, descending by value (|value| if absolute)
    indices : torch.Tensor, shape (p, k), int64
        Slots that cannot be filled (k larger than the number of candidates) are (nan, -1).
    """
    if exclude_self is None:
        exclude_self = Y is None
    R, key = _scores(X, Y, metric, absolute, exclude_self)
    _, indices = _topk_rows(key, k, largest=True, excluded=float("-inf") if exclude_self else None)
    values = R.gather(1, indices.clamp_min(0)).masked_fill(indices < 0, float("nan"))
    return values, indices


def max_correlation(X, Y=None, absolute=False, exclude_self=None, metric="pearson"):
    """Best partner in Y of every column of X: ``correlation`` then ``argmax``.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, p), floating dtype
    Y : torch.Tensor, shape (n_samples, q), optional (defaults to X)
    absolute : bool, default False
        Rank by ``|r|``, return the signed value.
    exclude_self : bool or None
        Exclude the diagonal; None means ``Y is None``.
    metric : {"pearson", "cosine", "covariance"}

    Returns
    -------
    values : torch.Tensor, shape (p,), dtype of X
    indices : torch.Tensor, shape (p,), int64 (``argmax``: first maximal index)
    """
    if exclude_self is None:
        exclude_self = Y is None
    R, key = _scores(X, Y, metric, absolute, exclude_self)
    indices = key.argmax(dim=1)
    values = R.gather(1, indices[:, None]).squeeze(1)
    if exclude_self:  # a row whose only candidate was itself has no partner: (nan, -1)
        missing = key.gather(1, indices[:, None]).squeeze(1) == float("-inf")
        values = values.masked_fill(missing, float("nan"))
        indices = indices.masked_fill(missing, -1)
    return values, indices


def correlation_pairs(X, Y=None, threshold=0.5, absolute=False, exclude_self=False, metric="pearson"):
    """All pairs (i, j) with ``r_ij >= threshold`` (``|r_ij|`` when absolute): mask + ``nonzero``.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, p), floating dtype
    Y : torch.Tensor, shape (n_samples, q), optional (defaults to X)
    threshold : float, default 0.5
    absolute : bool, default False
    exclude_self : bool, default False
        Leave out the diagonal pairs (i, i).
    metric : {"pearson", "cosine", "covariance"}

    Returns
    -------
    rows, cols : torch.Tensor, shape (n_pairs,), int64, sorted by (i, j)
    values : torch.Tensor, shape (n_pairs,), dtype of X (signed)
    """
    R = correlation(X, Y, metric=metric)
    mask = (R.abs() if absolute else R) >= threshold
    if exclude_self:
        mask.fill_diagonal_(False)
    rows, cols = mask.nonzero(as_tuple=True)  # row-major order
    return rows, cols, R[rows, cols]


def knn(P, Q=None, k=8, metric="sqeuclidean", exclude_self=None):
    """k nearest rows of Q for every row of P, from the full score matrix and ``torch.topk``.

    Parameters
    ----------
    P : torch.Tensor, shape (n_p, d), floating dtype
    Q : torch.Tensor, shape (n_q, d), same dtype and device, optional (None: self-join on P)
    k : int, default 8
    metric : {"sqeuclidean", "inner", "cosine"}
        sqeuclidean: ``||p||² + ||q||² - 2 p·q`` (the usual expansion, clamped at 0), ascending;
        inner: ``P Qᵀ``, descending; cosine: rows L2-normalised (norm clamped at tiny) then inner.
    exclude_self : bool or None
        Exclude j == i by index (the diagonal is set to +inf / -inf); None means ``Q is None``.

    Returns
    -------
    values : torch.Tensor, shape (n_p, k), dtype of P
    indices : torch.Tensor, shape (n_p, k), int64
        Slots that cannot be filled are (nan, -1).
    """
    _check_2d(P, "P")
    if Q is not None:
        _check_2d(Q, "Q")
        if Q.shape[1] != P.shape[1]:
            raise ValueError(f"P and Q need the same number of columns; got {P.shape[1]} and {Q.shape[1]}")
    if metric not in _KNN_METRICS:
        raise ValueError(f"metric must be one of {_KNN_METRICS}; got {metric!r}")
    if exclude_self is None:
        exclude_self = Q is None
    Qr = P if Q is None else Q
    if metric == "sqeuclidean":
        p2 = (P * P).sum(dim=1, keepdim=True)
        q2 = p2 if Q is None else (Q * Q).sum(dim=1, keepdim=True)
        S = torch.addmm(q2.T, P, Qr.T, alpha=-2).add_(p2).clamp_min_(0)
        largest, fill = False, float("inf")
    else:
        if metric == "cosine":
            tiny = torch.finfo(P.dtype).tiny
            P = P / torch.linalg.vector_norm(P, dim=1, keepdim=True).clamp_min(tiny)
            Qr = P if Q is None else Qr / torch.linalg.vector_norm(Qr, dim=1, keepdim=True).clamp_min(tiny)
        S = P @ Qr.T
        largest, fill = True, float("-inf")
    if exclude_self:
        S.fill_diagonal_(fill)
    return _topk_rows(S, k, largest=largest, excluded=fill if exclude_self else None)


def cross_stats(X, Y, ddof=1):
    """Means and (cross-)covariances of aligned X and Y from centred matmuls.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, p), floating dtype
    Y : torch.Tensor, shape (n_samples, q), same dtype and device
    ddof : int, default 1

    Returns
    -------
    dict
        ``n`` (int), ``mean_x`` (p,), ``mean_y`` (q,), ``cov_xx`` (p, p), ``cov_xy`` (p, q),
        ``cov_yy`` (q, q); tensors in the dtype of X, covariances divided by ``n - ddof``.
    """
    _check_pair(X, Y)
    if Y is None:
        raise ValueError("cross_stats needs Y")
    n = X.shape[0]
    mean_x = X.mean(dim=0)
    mean_y = Y.mean(dim=0)
    Xc = X - mean_x
    Yc = Y - mean_y
    d = n - ddof
    return {
        "n": int(n),
        "mean_x": mean_x,
        "mean_y": mean_y,
        "cov_xx": (Xc.T @ Xc) / d,
        "cov_xy": (Xc.T @ Yc) / d,
        "cov_yy": (Yc.T @ Yc) / d,
    }
