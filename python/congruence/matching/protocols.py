"""The protocols of Brown, Vyas & Bansal (2023) as helpers (METHODS.md §3.8).

* :func:`rotate_layer` inserts a fixed random rotation at a layer: W_ℓ ← QW_ℓ, b_ℓ ← Qb_ℓ with Q a
  seeded Haar-distributed orthogonal matrix over the layer's output units (channels for a
  convolution). :func:`absorb_rotation` applies Qᵀ to the inputs of the next weight layer, which
  restores the function exactly when nothing non-linear (or unit-wise, like BatchNorm) sits
  between them — a linear network — and cannot restore it through a ReLU: the rotation test.
* :func:`share_frozen_layers` copies the first k weight layers (and the normalisation layers among
  them) of one network into another and freezes them, the setting of their "shared early
  layers" experiment.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

__all__ = ["haar_orthogonal", "rotate_layer", "absorb_rotation", "share_frozen_layers"]


def _flatten_chain(model: Any) -> list:
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise ValueError(f"the rotation and shared-layer protocols need an nn.Sequential chain (MLP / VGG "
                         f"style); got {type(model).__name__}")
    out = []
    for m in model:
        out.extend(_flatten_chain(m) if isinstance(m, nn.Sequential) else [m])
    return out


def _classify(m: Any) -> str:
    from torch import nn

    if isinstance(m, (nn.Linear,)) or (isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.groups == 1):
        return "weight"
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)):
        if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) != 1:
            raise ValueError(f"LayerNorm over {tuple(m.normalized_shape)} is not supported by these protocols")
        return "norm"
    if isinstance(m, nn.Flatten):
        return "flatten"
    elementwise = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.SiLU, nn.Softplus, nn.Identity,
                   nn.Dropout, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                   nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    if isinstance(m, elementwise):
        return "pass"
    raise ValueError(f"{type(m).__name__} is not supported by these protocols (supported: Linear, Conv "
                     "with groups=1, BatchNorm, LayerNorm over features, elementwise activations, pooling, Dropout, "
                     "Identity, Flatten)")


def haar_orthogonal(n: int, seed: int = 0) -> np.ndarray:
    """An n×n orthogonal matrix drawn from the Haar measure (QR of a Gaussian matrix with the signs
    of R's diagonal folded into Q, Mezzadri 2007), seeded."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    Z = np.random.default_rng(seed).standard_normal((n, n))
    Q, R = np.linalg.qr(Z)
    return Q * np.sign(np.diag(R))


def _weight_layers(model: Any) -> list:
    chain = _flatten_chain(model)
    for m in chain:
        _classify(m)  # unsupported modules raise here, naming themselves
    return [m for m in chain if _classify(m) == "weight"]


def _named(model: Any, layer: Any) -> Any:
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"no module named {layer!r} in the model")
        return modules[layer]
    return layer


def rotate_layer(model: Any, layer: Any, *, seed: int = 0) -> tuple[Any, np.ndarray]:
    """A copy of ``model`` with output units of ``layer`` (a name or module of an ``nn.Sequential``
    chain; Linear or Conv) rotated by a seeded Haar-orthogonal Q. Returns (rotated copy, Q)."""
    import torch

    new = copy.deepcopy(model)
    target = _named(new, layer if isinstance(layer, str) else _name_of(model, layer))
    if target not in _weight_layers(new):
        raise ValueError("layer must be a Linear or Conv layer of the chain")
    Q = haar_orthogonal(target.weight.shape[0], seed)
    with torch.no_grad():
        q = torch.as_tensor(Q, dtype=target.weight.dtype)
        W = target.weight
        target.weight.copy_((q @ W.reshape(W.shape[0], -1)).reshape(W.shape))
        if target.bias is not None:
            target.bias.copy_(q @ target.bias)
    return new, Q


def _name_of(model: Any, module: Any) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("layer is not a module of the model")


def absorb_rotation(model: Any, layer: Any, Q: np.ndarray) -> Any:
    """A copy of ``model`` whose weight layer after ``layer`` reads its inputs through Qᵀ
    (W_{ℓ+1} ← W_{ℓ+1}Qᵀ over the input channels): undoes :func:`rotate_layer` in a linear
    network. A Flatten in between (conv → dense) is handled by rotating each spatial block."""
    import torch

    new = copy.deepcopy(model)
    weights = _weight_layers(new)
    target = _named(new, layer if isinstance(layer, str) else _name_of(model, layer))
    if target not in weights or weights.index(target) == len(weights) - 1:
        raise ValueError("layer must be a Linear or Conv layer with a weight layer after it")
    nxt = weights[weights.index(target) + 1]
    c = target.weight.shape[0]
    if Q.shape != (c, c):
        raise ValueError(f"Q must be {c}x{c} for this layer; got {Q.shape}")
    with torch.no_grad():
        q = torch.as_tensor(Q, dtype=nxt.weight.dtype)
        W = nxt.weight
        if W.shape[1] == c:  # Linear or Conv reading the c channels
            Wr = torch.einsum("oi...,ji->oj...", W, q)  # W Qᵀ
        elif W.ndim == 2 and W.shape[1] % c == 0:  # Linear after Flatten of (c, spatial)
            s = W.shape[1] // c
            Wr = torch.einsum("ois,ji->ojs", W.reshape(W.shape[0], c, s), q).reshape(W.shape)
        else:
            raise ValueError(f"the next layer reads {W.shape[1]} inputs, not {c} channels")
        nxt.weight.copy_(Wr)
    return new


def share_frozen_layers(source: Any, target: Any, k: int) -> Any:
    """A copy of ``target`` whose first ``k`` weight layers — and the normalisation layers before
    the (k+1)-th — are copies of ``source``'s, frozen (``requires_grad=False``; BatchNorm
    statistics are copied too). The architectures must match up to there."""
    new = copy.deepcopy(target)
    cs, ct = _flatten_chain(source), _flatten_chain(new)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer; got {k!r}")
    n_weights = sum(_classify(m) == "weight" for m in cs)
    if k > n_weights:
        raise ValueError(f"k={k} exceeds the {n_weights} weight layers of the source")
    seen = 0
    for ms, mt in zip(cs, ct):
        kind = _classify(ms)
        if kind == "weight":
            if seen == k:
                break
            seen += 1
        if kind in ("weight", "norm"):
            if type(ms) is not type(mt) or any(a.shape != b.shape for a, b in zip(ms.state_dict().values(),
                                                                                mt.state_dict().values())):
                raise ValueError(f"the networks differ at {type(ms).__name__} (layer {seen}); cannot share it")
            mt.load_state_dict(ms.state_dict())
            for p in mt.parameters():
                p.requires_grad_(False)
    return new
