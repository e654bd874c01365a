"""Stand-ins used only by ``--fake`` (developer self-test of the harness while the engine or the
baselines are missing). They are plain torch pipelines; results are never reported as ours."""

from __future__ import annotations

import numpy as np
import torch


def _t(a):
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))


def _unit(A):
    A = A - A.mean(0, keepdim=True)
    return A / A.norm(dim=0, keepdim=True)


def correlation(X, Y=None, metric="pearson", **_):
    Xn = _unit(_t(X))
    Yn = Xn if Y is None else _unit(_t(Y))
    return Xn.T @ Yn


def topk_correlation(X, Y=None, k=8, absolute=False, **_):
    C = correlation(X, Y)
    key = C.abs() if absolute else C
    _, idx = key.topk(k, dim=1)
    return C.gather(1, idx), idx


def max_correlation(X, Y=None, absolute=False, **_):
    v, i = topk_correlation(X, Y, k=1, absolute=absolute)
    return v[:, 0], i[:, 0]
