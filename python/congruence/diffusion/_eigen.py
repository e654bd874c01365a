"""The largest eigenpairs of a symmetric sparse matrix, reproducibly (shared by the diffusion map
and geometric harmonics)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Below this many rows the dense solver is used (ARPACK's overhead dominates).
DENSE_BELOW = 200


def top_eigenpairs(A: Any, m: int, *, seed: int = 0, tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The m largest (algebraic) eigenvalues of the symmetric ``A`` (scipy.sparse), descending, and
    their eigenvectors as columns: dense ``eigh`` for small or nearly full requests, otherwise ARPACK
    Lanczos from a start vector seeded with ``seed``."""
    from scipy.sparse.linalg import eigsh

    N = A.shape[0]
    m = min(int(m), N)
    if N <= max(2 * m + 1, DENSE_BELOW) or m >= N - 1:
        w, V = np.linalg.eigh(A.toarray())
    else:
        w, V = eigsh(A, k=m, which="LA", v0=np.random.default_rng(seed).standard_normal(N), tol=tol)
    order = np.argsort(w)[::-1][:m]
    return w[order], V[:, order]
