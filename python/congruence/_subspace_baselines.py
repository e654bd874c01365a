"""Pure-PyTorch baseline for the maximum subspace match (benchmark P7; METHODS.md §5.2).

The authors' algorithm written with torch alone (from METHODS §5.2, not from their code): prune
both layers with least-squares projections until nothing changes.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["max_match_lstsq"]

_DEAD_NORM = 1e-16


def _as_f64(A, device):
    if isinstance(A, torch.Tensor):
        T = A.detach().to(dtype=torch.float64)
    else:
        T = torch.as_tensor(np.asarray(A, dtype=np.float64), device=device)
    if T.ndim != 2:
        raise ValueError(f"expected a 2-D (n_samples, n_neurons) array; got shape {tuple(T.shape)}")
    return T


def _residual_norms(B: torch.Tensor, Z: torch.Tensor, explicit_svd: bool) -> torch.Tensor:
    """Column norms of Z − B β, β the least-squares solution of B β = Z (all columns at once).

    CPU: ``torch.linalg.lstsq`` with the SVD driver ``gelsd`` (rank-revealing, default rcond
    ``eps·max(M, m)``, as numpy's ``lstsq(rcond=None)``). CUDA's only driver, ``gels``, is an
    unpivoted QR that assumes full rank, so there the same SVD least squares is written out:
    the residual is Z minus its projection on the left singular vectors whose singular value
    exceeds ``eps·max(M, m)·σ_max`` (``explicit_svd=True``; usable on the CPU too, for tests).
    """
    if B.shape[1] == 0:
        return torch.linalg.vector_norm(Z, dim=0)
    if not explicit_svd:
        beta = torch.linalg.lstsq(B, Z, driver="gelsd").solution
        return torch.linalg.vector_norm(Z - B @ beta, dim=0)
    U, S, _ = torch.linalg.svd(B, full_matrices=False)
    cutoff = torch.finfo(B.dtype).eps * max(B.shape) * S[0]
    Ur = U[:, S > cutoff]
    return torch.linalg.vector_norm(Z - Ur @ (Ur.T @ Z), dim=0)


def _prune(Z, keep, A, other, eps, ones, explicit_svd):
    """Indices in ``keep`` (columns of Z) within relative distance eps of span(A[:, other] [, 1])."""
    B = A[:, other]
    if ones is not None:
        B = torch.cat([B, ones], dim=1)
    Zk = Z[:, keep]
    d = _residual_norms(B, Zk, explicit_svd)
    return keep[d <= eps * torch.linalg.vector_norm(Zk, dim=0)]


def max_match_lstsq(X, Y, eps, *, affine=False) -> tuple[np.ndarray, np.ndarray, int]:
    """Maximum ε-approximate subspace match by least-squares pruning: the baseline of benchmark P7.

    The authors' algorithm (Wang et al. 2018; METHODS.md §5.2) in plain PyTorch, float64, on the
    device of the inputs. Starting from all live neurons I of X and J of Y, each pass keeps the
    x ∈ I with dist(z_x, span(Y_J)) <= eps·‖z_x‖ — every remaining x projected with ONE batched
    least-squares solve Y_J β = X_I — and then the same for J against the new X_I; it stops when a
    pass changes nothing, or returns empty sets as soon as one side is empty.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor, shape (n_samples, n1)
        Activations; column v is neuron v's activation vector over the samples.
    Y : numpy.ndarray or torch.Tensor, shape (n_samples, n2)
        Same samples (rows) as X. Converted to float64; torch inputs stay on their device (X's
        device is used for both), numpy inputs go to the CPU.
    eps : float
        Relative tolerance ε >= 0 (0 means exact).
    affine : bool, default False
        Add the all-ones vector to both spans (the optional constant vector of the authors'
        code); it is never pruned and never counted.

    Returns
    -------
    x_idx : numpy.ndarray of int64, sorted
        Columns of X in the maximum match.
    y_idx : numpy.ndarray of int64, sorted
        Columns of Y in the maximum match.
    passes : int
        Passes made (one update of I and one of J each; the last, unchanged one included).

    Notes
    -----
    Dead neurons (‖z‖ < 1e-16) are removed first and never match. Least squares is SVD-based
    (``gelsd`` on the CPU; an explicit SVD on CUDA, whose ``gels`` driver is not rank-revealing),
    so rank-deficient spans are handled correctly.

    Why it is slow: every pass refactors the M × |J| panel Y_J (and the M × |I| panel X_I) from
    scratch, O(M·|J|²) per pass plus O(M·|I|·|J|) to apply it, with no reuse between passes or
    between calls. The library's Gram-space route (METHODS §5.6) reads the samples once, then
    works on (n1 + n2)² numbers with rank-one downdates when neurons are pruned.
    """
    return _max_match(X, Y, eps, affine=affine, explicit_svd=None)


def _max_match(X, Y, eps, *, affine, explicit_svd):
    """max_match_lstsq; explicit_svd None means "on any device but the CPU"."""
    device = X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    if explicit_svd is None:
        explicit_svd = device.type != "cpu"
    X = _as_f64(X, device)
    Y = _as_f64(Y, device).to(device)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y need the same number of samples; got {X.shape[0]} and {Y.shape[0]}")
    eps = float(eps)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0; got {eps}")
    ones = torch.ones((X.shape[0], 1), dtype=torch.float64, device=device) if affine else None
    I = torch.nonzero(torch.linalg.vector_norm(X, dim=0) >= _DEAD_NORM).flatten()
    J = torch.nonzero(torch.linalg.vector_norm(Y, dim=0) >= _DEAD_NORM).flatten()
    empty = np.zeros(0, dtype=np.int64)
    passes = 0
    while True:
        passes += 1
        if I.numel() == 0:
            return empty, empty.copy(), passes
        new_I = _prune(X, I, Y, J, eps, ones, explicit_svd)
        if new_I.numel() == 0:
            return empty, empty.copy(), passes
        new_J = _prune(Y, J, X, new_I, eps, ones, explicit_svd) if J.numel() else J
        if new_J.numel() == 0:
            return empty, empty.copy(), passes
        if new_I.numel() == I.numel() and new_J.numel() == J.numel():
            return new_I.cpu().numpy().astype(np.int64), new_J.cpu().numpy().astype(np.int64), passes
        I, J = new_I, new_J
