"""Permutation alignment of torch networks (Ainsworth, Hayase & Srinivasa 2023; METHODS.md §3.6).

Hidden units of a network can be permuted without changing its function, if every module that
reads them is permuted consistently. This module derives those permutation groups for *chains*:
``nn.Sequential`` models (nested ones are flattened) of Linear / Conv layers (groups = 1),
BatchNorm, elementwise activations, pooling, Dropout, Identity and one Flatten between the
convolutional and the dense part — MLPs and VGG-style CNNs. Each weight layer but the last owns a
group (its output units or channels); a BatchNorm takes the group of the layer before it; after a
Flatten a channel's group index expands to its block of spatial positions. Any other module (or a
branching graph: residual blocks) raises a ValueError naming it.

* :func:`permute_model` applies permutations (the permuted network computes the same function);
* :func:`align_activations` matches B's units to A's by the correlation of their activations
  (exact assignment, convolutions over channels × positions);
* :func:`align_weights` is Git Re-Basin's weight matching: coordinate descent over the groups,
  each step an exact assignment maximising Σ⟨W_a, P W_b Pᵀ⟩ over the weights touching the group.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .assignment import linear_assignment

__all__ = ["permutation_groups", "permute_model", "align_activations", "align_weights"]


@dataclass
class _Layer:
    index: int  # position in the flattened chain
    module: Any
    kind: str  # "weight", "norm", "flatten", "pass"


def _flatten_chain(model: Any) -> list:
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise ValueError(f"permutation alignment needs an nn.Sequential chain (MLP / VGG style); got "
                         f"{type(model).__name__}. Branching graphs (residual blocks) are not supported yet")
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
            raise ValueError(f"LayerNorm over {tuple(m.normalized_shape)} is not supported for permutation alignment")
        return "norm"
    if isinstance(m, nn.Flatten):
        return "flatten"
    elementwise = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.SiLU, nn.Softplus, nn.Identity,
                   nn.Dropout, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                   nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    if isinstance(m, elementwise):
        return "pass"
    raise ValueError(f"{type(m).__name__} is not supported for permutation alignment (supported: Linear, Conv "
                     "with groups=1, BatchNorm, LayerNorm over features, elementwise activations, pooling, Dropout, "
                     "Identity, Flatten)")


def permutation_groups(model: Any) -> list:
    """The permutable groups of a chain: a list of dicts with ``layer`` (the weight module owning
    the group), ``size`` (units / channels), ``norms`` (BatchNorms permuted with it), ``next``
    (the weight module reading it) and ``spatial`` (positions per channel after a Flatten, else 1;
    None until known from the next layer's fan-in)."""
    chain = [_Layer(i, m, _classify(m)) for i, m in enumerate(_flatten_chain(model))]
    weights = [l for l in chain if l.kind == "weight"]
    if len(weights) < 2:
        raise ValueError("permutation alignment needs at least two weight layers (one hidden group)")
    groups = []
    for a, b in zip(weights[:-1], weights[1:]):
        between = chain[a.index + 1:b.index]
        norms = [l.module for l in between if l.kind == "norm"]
        flat = any(l.kind == "flatten" for l in between)
        size = a.module.weight.shape[0]
        spatial = 1
        if flat:
            fan_in = b.module.weight.shape[1]
            if fan_in % size:
                raise ValueError(f"the Linear after Flatten reads {fan_in} features, not a multiple of {size} channels")
            spatial = fan_in // size
        elif b.module.weight.shape[1] != size:
            raise ValueError(f"{type(b.module).__name__} reads {b.module.weight.shape[1]} inputs but the previous "
                             f"layer gives {size}")
        groups.append({"layer": a.module, "size": size, "norms": norms, "next": b.module, "spatial": spatial})
    return groups


def _check_perms(groups: list, perms: Sequence[Any]) -> list:
    if len(perms) != len(groups):
        raise ValueError(f"expected {len(groups)} permutations (one per hidden group); got {len(perms)}")
    out = []
    for g, p in zip(groups, perms):
        p = np.asarray(p, dtype=np.int64)
        if p.shape != (g["size"],) or not np.array_equal(np.sort(p), np.arange(g["size"])):
            raise ValueError(f"a permutation of {g['size']} units is needed for this group; got shape {p.shape}")
        out.append(p)
    return out


def permute_model(model: Any, perms: Sequence[Any]) -> Any:
    """A copy of ``model`` whose hidden group k is reordered by ``perms[k]`` (new unit i = old
    unit perms[k][i]); it computes the same function."""
    import torch

    new = copy.deepcopy(model)
    groups = permutation_groups(new)
    perms = _check_perms(groups, perms)
    with torch.no_grad():
        for g, p in zip(groups, perms):
            idx = torch.as_tensor(p)
            layer, nxt = g["layer"], g["next"]
            layer.weight.copy_(layer.weight[idx])
            if layer.bias is not None:
                layer.bias.copy_(layer.bias[idx])
            for bn in g["norms"]:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    t = getattr(bn, name, None)
                    if t is not None:
                        t.copy_(t[idx])
            s = g["spatial"]
            cols = (idx[:, None] * s + torch.arange(s)[None, :]).reshape(-1) if s > 1 else idx
            nxt.weight.copy_(nxt.weight[:, cols])
    return new


def _unit_activations(model: Any, groups: list, data: Any) -> list:
    """Per group, the (samples, units) activations just before the next weight layer (after the
    nonlinearity and normalisation); conv maps as channels over batch x positions."""
    import torch

    chain = _flatten_chain(model)
    stops = [chain.index(g["next"]) for g in groups]
    acts = [[] for _ in groups]
    with torch.no_grad():
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            h = x
            for i, m in enumerate(chain):
                if i in stops:
                    k = stops.index(i)
                    v = h
                    if v.ndim > 2:
                        v = v.transpose(0, 1).reshape(v.shape[1], -1).T  # channels x (batch, positions)
                    elif groups[k]["spatial"] > 1:  # flattened conv maps: channels x (batch, positions)
                        s = groups[k]["spatial"]
                        v = v.reshape(v.shape[0], -1, s).transpose(1, 2).reshape(-1, groups[k]["size"])
                    acts[k].append(v.double().numpy())
                h = m(h)
    return [np.concatenate(a) for a in acts]


def align_activations(model_a: Any, model_b: Any, data: Any) -> tuple[Any, list]:
    """Permute ``model_b``'s hidden units onto ``model_a``'s by activation correlation.

    Units constant over ``data`` (dead ReLUs) correlate with nothing; they are matched among
    themselves in no particular order (the function is preserved either way).

    Returns
    -------
    (aligned_b, perms) : the permuted copy of model_b and the permutation of each group.
    """
    from .neurons import match_neurons

    ga, gb = permutation_groups(model_a), permutation_groups(model_b)
    if [g["size"] for g in ga] != [g["size"] for g in gb]:
        raise ValueError(f"the networks' hidden groups differ in size: {[g['size'] for g in ga]} and "
                         f"{[g['size'] for g in gb]}")
    data = list(data)
    modes = (model_a.training, model_b.training)
    model_a.eval()
    model_b.eval()
    try:
        acts_a, acts_b = _unit_activations(model_a, ga, data), _unit_activations(model_b, gb, data)
    finally:
        model_a.train(modes[0])
        model_b.train(modes[1])
    perms = []
    import warnings

    from .._engine import ConstantFeatureWarning

    for xa, xb in zip(acts_a, acts_b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConstantFeatureWarning)  # dead units: documented above
            m = match_neurons(xa, xb, method="hungarian")
        perm = np.empty(xa.shape[1], dtype=np.int64)
        perm[m.rows] = m.cols  # unit i of A <- unit perm[i] of B
        perms.append(perm)
    return permute_model(model_b, perms), perms


def _unit_weights(g: dict, perm_in: Optional[np.ndarray], perm_out: Optional[np.ndarray]) -> np.ndarray:
    """Rows = the group's units, columns = every weight touching them (outgoing side permuted by the
    neighbouring groups' current permutations)."""
    layer, nxt = g["layer"], g["next"]
    W = layer.weight.detach().double().numpy()
    if perm_in is not None:
        W = W[:, perm_in]
    parts = [W.reshape(W.shape[0], -1)]
    if layer.bias is not None:
        parts.append(layer.bias.detach().double().numpy()[:, None])
    for bn in g["norms"]:
        for name in ("weight", "bias"):
            t = getattr(bn, name, None)
            if t is not None:
                parts.append(t.detach().double().numpy()[:, None])
    Wn = nxt.weight.detach().double().numpy()
    if perm_out is not None:
        Wn = Wn[perm_out]
    s = g["spatial"]
    Wn = Wn.reshape(Wn.shape[0], g["size"], s, *Wn.shape[2:]) if s > 1 else Wn
    parts.append(np.moveaxis(Wn, 1, 0).reshape(g["size"], -1))
    return np.concatenate(parts, axis=1)


def _expand(p: np.ndarray, spatial: int) -> np.ndarray:
    return (p[:, None] * spatial + np.arange(spatial)[None, :]).reshape(-1) if spatial > 1 else p


def align_weights(model_a: Any, model_b: Any, *, max_iter: int = 100, seed: int = 0) -> tuple[Any, list]:
    """Git Re-Basin weight matching: permutations of B's groups maximising Σ_ℓ⟨W_a^ℓ, P_ℓ W_b^ℓ P_{ℓ-1}ᵀ⟩
    (biases and normalisation scales included), by coordinate descent over the groups in a seeded
    random order until no permutation changes (at most ``max_iter`` sweeps); each step is an exact
    assignment. Returns (aligned_b, perms)."""
    ga, gb = permutation_groups(model_a), permutation_groups(model_b)
    if [g["size"] for g in ga] != [g["size"] for g in gb]:
        raise ValueError(f"the networks' hidden groups differ in size: {[g['size'] for g in ga]} and "
                         f"{[g['size'] for g in gb]}")
    rng = np.random.default_rng(seed)
    perms = [np.arange(g["size"]) for g in gb]
    units_a = [_unit_weights(g, None, None) for g in ga]  # A never moves: once
    for _ in range(max_iter):
        changed = False
        for k in rng.permutation(len(gb)):
            pin = _expand(perms[k - 1], gb[k - 1]["spatial"]) if k > 0 else None
            pout = perms[k + 1] if k + 1 < len(gb) else None
            Ub = _unit_weights(gb[k], pin, pout)
            _, cols = linear_assignment(units_a[k] @ Ub.T, maximize=True)
            if not np.array_equal(cols, perms[k]):
                changed = True
                perms[k] = cols
        if not changed:
            break
    return permute_model(model_b, perms), perms
