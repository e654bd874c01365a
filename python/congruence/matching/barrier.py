"""Linear mode connectivity: the loss and error barrier along θ_α = (1−α)θ_A + αθ_B′ (METHODS.md §3.7).

B′ is B itself or B permuted onto A (:func:`congruence.matching.align_activations` /
:func:`~congruence.matching.align_weights`). Every parameter and floating buffer is
interpolated; with BatchNorm the running statistics are then reset and re-estimated at every α
(train mode, no gradients, cumulative averaging, momentum = None) over ``bn_data`` (default: the
evaluation data, at most ``bn_batches`` batches), the mandatory correction of Jordan et al. (2023)
without which interpolated BN networks look disconnected. The endpoints get the same treatment,
so the curve is consistent.

Barrier (Entezari et al. 2022): max_α [L(θ_α) − ((1−α)L(θ_A) + αL(θ_B′))], for the loss and for
the error; ``frankle_barrier`` (Frankle et al. 2020): max_α E(θ_α) − ½(E(θ_A) + E(θ_B′)).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

__all__ = ["InterpolationBarrier", "interpolation_barrier"]


@dataclass(frozen=True)
class InterpolationBarrier:
    """The curve and its barriers. ``loss`` and ``error`` are per α (error a fraction in [0, 1])."""

    alphas: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    barrier_loss: float
    barrier_error: float
    frankle_barrier: float
    align: Optional[str]
    details: dict = field(default_factory=dict)

    def plot(self, path: Any) -> str:
        """Loss and error against α, saved as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        for a, y, name in ((ax[0], self.loss, "loss"), (ax[1], self.error, "error")):
            a.plot(self.alphas, y, marker="o", ms=3)
            a.plot([0, 1], [y[0], y[-1]], ls="--", c="grey")
            a.set_xlabel("α (0: model A, 1: model B" + ("′" if self.align else "") + ")")
            a.set_ylabel(name)
        fig.suptitle(f"interpolation barrier (align={self.align}): loss {self.barrier_loss:.4g}, "
                     f"error {self.barrier_error:.4g}")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return str(path)


def _split(batch: Any) -> tuple:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("interpolation_barrier needs (inputs, targets) batches")
    return batch[0], batch[1]


def _interpolate(target: Any, a: Any, b: Any, alpha: float) -> None:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    new = {}
    for k, va in sa.items():
        vb = sb[k]
        new[k] = torch.lerp(va, vb.to(va.dtype), alpha) if va.is_floating_point() else va.clone()
    target.load_state_dict(new)


def _reset_batchnorm(model: Any, data: list) -> bool:
    import torch
    from torch import nn

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative averaging
    model.train()
    with torch.no_grad():
        for x in data:
            model(x)
    for m, mom in saved:
        m.momentum = mom
    model.eval()
    return True


def interpolation_barrier(model_a: Any, model_b: Any, data: Any, *, align: Optional[str] = None,
                          alphas: Union[int, Sequence[float]] = 25, loss: Union[str, Callable] = "cross_entropy",
                          bn_data: Any = None, bn_batches: int = 100) -> InterpolationBarrier:
    """Loss and error along the linear path between two networks, and the barriers.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        The same architecture (state dicts with the same keys and shapes).
    data : iterable of (inputs, targets)
        The evaluation batches (targets: class indices).
    align : {None, "activations", "weights"}
        Permute B onto A first (MLPs, VGG-style CNNs, ResNets; see :mod:`congruence.matching.permutation`);
        "activations" matches on the inputs of ``data``.
    alphas : int or sequence of float
        A grid size (``numpy.linspace(0, 1, alphas)``) or the α values, which must include 0 and 1.
    loss : "cross_entropy" or callable(outputs, targets) -> mean loss tensor
    bn_data : iterable of inputs or (inputs, targets), optional
        Batches for re-estimating BatchNorm statistics (default: ``data``'s inputs).
    bn_batches : int

    Returns
    -------
    InterpolationBarrier
    """
    import torch

    from .permutation import align_activations, align_weights

    if align not in (None, "activations", "weights"):
        raise ValueError(f"align must be None, 'activations' or 'weights'; got {align!r}")
    grid = np.linspace(0.0, 1.0, alphas) if isinstance(alphas, (int, np.integer)) else np.asarray(alphas, float)
    if grid.ndim != 1 or grid.size < 2 or not (np.isclose(grid.min(), 0) and np.isclose(grid.max(), 1)) \
            or (grid < 0).any() or (grid > 1).any():
        raise ValueError("alphas must be a grid size >= 2 or values in [0, 1] including 0 and 1")
    grid = np.sort(grid)
    if loss == "cross_entropy":
        loss_fn = torch.nn.functional.cross_entropy
    elif callable(loss):
        loss_fn = loss
    else:
        raise ValueError(f"loss must be 'cross_entropy' or a callable; got {loss!r}")
    batches = [_split(b) for b in data]
    if not batches:
        raise ValueError("data yielded no batches")
    if set(model_a.state_dict()) != set(model_b.state_dict()):
        raise ValueError("model_a and model_b have different parameters (state dict keys); the same architecture "
                         "is needed")
    if align == "activations":
        b_prime, _ = align_activations(model_a, model_b, [x for x, _ in batches])
    elif align == "weights":
        b_prime, _ = align_weights(model_a, model_b)
    else:
        b_prime = model_b
    source = bn_data if bn_data is not None else [x for x, _ in batches]
    bn_inputs = []
    for i, b in enumerate(source):
        if i >= bn_batches:
            break
        bn_inputs.append(b[0] if isinstance(b, (tuple, list)) else b)
    work = copy.deepcopy(model_a)
    losses, errors = [], []
    has_bn = False
    for alpha in grid:
        _interpolate(work, model_a, b_prime, float(alpha))
        has_bn = _reset_batchnorm(work, bn_inputs) or has_bn
        work.eval()
        total, wrong, count = 0.0, 0, 0
        with torch.no_grad():
            for x, y in batches:
                out = work(x)
                total += float(loss_fn(out, y)) * len(y)
                wrong += int((out.argmax(dim=1) != y).sum())
                count += len(y)
        losses.append(total / count)
        errors.append(wrong / count)
    L, E = np.array(losses), np.array(errors)
    line_l = (1 - grid) * L[0] + grid * L[-1]
    line_e = (1 - grid) * E[0] + grid * E[-1]
    return InterpolationBarrier(alphas=grid, loss=L, error=E, barrier_loss=float(np.max(L - line_l)),
                                barrier_error=float(np.max(E - line_e)),
                                frankle_barrier=float(E.max() - 0.5 * (E[0] + E[-1])), align=align,
                                details={"batchnorm_reset": has_bn, "bn_batches": len(bn_inputs)})
