"""The largest eigenpairs of a symmetric sparse matrix, reproducibly (shared by the diffusion map
and geometric harmonics)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Below this many rows the dense solver is used (ARPACK's overhead dominates).
DENSE_BELOW = 200
#: Requests of at least N / DENSE_FRACTION eigenpairs also go dense (Lanczos with that many vectors
#: is slower than one eigh; geometric harmonics ask for hundreds).
DENSE_FRACTION = 8


def top_eigenpairs(A: Any, m: int, *, seed: int = 0, tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The m largest (algebraic) eigenvalues of the symmetric ``A`` (scipy.sparse), descending, and
    their eigenvectors as columns: dense ``eigh`` for small matrices or large requests, otherwise ARPACK
    Lanczos from a start vector seeded with ``seed``."""
    from scipy.sparse.linalg import eigsh

    N = A.shape[0]
    m = min(int(m), N)
    if N <= max(2 * m + 1, DENSE_BELOW) or m * DENSE_FRACTION >= N:
        import scipy.linalg

        # MRRR on the wanted top m only (about half the time of a full divide-and-conquer eigh)
        w, V = scipy.linalg.eigh(A.toarray(), subset_by_index=[N - m, N - 1], driver="evr")
    else:
        w, V = eigsh(A, k=m, which="LA", v0=np.random.default_rng(seed).standard_normal(N), tol=tol)
    order = np.argsort(w)[::-1][:m]
    return w[order], V[:, order]
