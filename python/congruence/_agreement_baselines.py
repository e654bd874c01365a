"""Pure-PyTorch baselines for the agreement matrices of many classifiers (benchmark P9;
METHODS.md §7.2), written the way a torch user would: 0/1 float32 indicator matrices and matrix
products (exact: counts below 2²⁴ are exact in float32)."""

from __future__ import annotations

import torch

__all__ = ["agreement_matrix_torch", "error_consistency_torch"]


def agreement_matrix_torch(predictions: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Top-1 agreement (K, K) float64 of integer predictions (K, n): Σ_c 1[P = c] 1[P = c]ᵀ / n, one
    float32 product per class."""
    P = torch.as_tensor(predictions)
    K, n = P.shape
    counts = torch.zeros((K, K), dtype=torch.float32)
    for c in range(int(n_classes)):
        onehot = (P == c).to(torch.float32)
        counts += onehot @ onehot.T
    return counts.to(torch.float64) / n


def error_consistency_torch(correct: torch.Tensor) -> torch.Tensor:
    """Cohen's κ (K, K) float64 from correctness (K, n): both-right counts by one float32 product,
    then c_obs, c_exp and κ (NaN where c_exp = 1)."""
    C = torch.as_tensor(correct).to(torch.float32)
    n = C.shape[1]
    both = (C @ C.T).to(torch.float64)
    right = torch.diagonal(both)
    p = right / n
    c_obs = (n - right[:, None] - right[None, :] + 2.0 * both) / n
    c_exp = torch.outer(p, p) + torch.outer(1 - p, 1 - p)
    kappa = (c_obs - c_exp) / (1.0 - c_exp)
    return torch.where(c_exp >= 1.0, torch.full_like(kappa, float("nan")), kappa)
