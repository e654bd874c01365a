"""Permutation alignment of torch networks (Ainsworth, Hayase & Srinivasa 2023; METHODS.md §3.6).

Hidden units of a network can be permuted without changing its function if every layer that
writes or reads them is permuted consistently. The permutation groups come from the traced module
graph (:mod:`congruence.matching.permutation_graph`): MLPs, VGG-style CNNs and ResNets with
BatchNorm (a residual stream is one group shared by all the blocks adding to it); unsupported
operations raise a ValueError naming the traced node.

* :func:`permute_model` applies permutations (the permuted network computes the same function);
* :func:`align_activations` matches B's units to A's by the correlation of their activations
  (exact assignment; convolutions over channels × positions; a group read at several places, such
  as a residual stream, pools the samples of all of them);
* :func:`align_weights` is Git Re-Basin's weight matching: coordinate descent over the groups,
  each step an exact assignment maximising Σ⟨W_a, P W_b Pᵀ⟩ over every weight touching the group.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Optional, Sequence

import numpy as np

from .assignment import linear_assignment
from .permutation_graph import PermutationGraph, PermutationGroup, trace_permutation_graph

__all__ = ["permutation_groups", "permute_model", "align_activations", "align_weights"]


def permutation_groups(model: Any) -> list[PermutationGroup]:
    """The permutable groups of ``model`` (a torch ``nn.Module``), in the order their first
    producing layer appears in the traced forward pass. See
    :class:`~congruence.matching.permutation_graph.PermutationGroup`."""
    return list(trace_permutation_graph(model).groups)


def _check_perms(groups: Sequence[PermutationGroup], perms: Sequence[Any]) -> list:
    if len(perms) != len(groups):
        raise ValueError(f"expected {len(groups)} permutations (one per hidden group); got {len(perms)}")
    out = []
    for g, p in zip(groups, perms):
        p = np.asarray(p, dtype=np.int64)
        if p.shape != (g.size,) or not np.array_equal(np.sort(p), np.arange(g.size)):
            raise ValueError(f"a permutation of {g.size} units is needed for this group; got shape {p.shape}")
        out.append(p)
    return out


def _expand(p: np.ndarray, spatial: int) -> np.ndarray:
    """Unit permutation -> input permutation of a layer reading ``spatial`` consecutive inputs per unit."""
    return (p[:, None] * spatial + np.arange(spatial)[None, :]).reshape(-1) if spatial > 1 else p


def permute_model(model: Any, perms: Sequence[Any]) -> Any:
    """A copy of ``model`` whose hidden group k is reordered by ``perms[k]`` (new unit i = old
    unit perms[k][i]); it computes the same function."""
    import torch

    new = copy.deepcopy(model)
    graph = trace_permutation_graph(new)
    perms = _check_perms(graph.groups, perms)
    with torch.no_grad():
        for g, p in zip(graph.groups, perms):
            idx = torch.as_tensor(p)
            for name in g.producers:
                layer = new.get_submodule(name)
                layer.weight.copy_(layer.weight[idx])
                if layer.bias is not None:
                    layer.bias.copy_(layer.bias[idx])
            for name in g.norms:
                bn = new.get_submodule(name)
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    t = getattr(bn, attr, None)
                    if t is not None:
                        t.copy_(t[idx])
            for name, spatial in g.consumers:
                layer = new.get_submodule(name)
                layer.weight.copy_(layer.weight[:, torch.as_tensor(_expand(p, spatial))])
    return new


def _as_units(v: Any, spatial: int, size: int) -> np.ndarray:
    """A traced tensor as (samples, units): conv maps as channels over batch × positions, a
    flattened map read with ``spatial`` positions per channel likewise."""
    if v.ndim > 2:
        v = v.transpose(0, 1).reshape(v.shape[1], -1).T
    elif spatial > 1:
        v = v.reshape(v.shape[0], size, spatial).transpose(1, 2).reshape(-1, size)
    return v.double().numpy()


def _unit_activations(graph: PermutationGraph, data: Sequence[Any]) -> list:
    """Per group, its activations (the tensors its consumers read) stacked over samples."""
    import torch
    import torch.fx as fx

    wanted = {name for g in graph.groups for name, _ in g.activations}
    seen: dict = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in wanted:
                seen[n.name] = out
            return out

    acts: list = [[] for _ in graph.groups]
    with torch.no_grad():
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            seen.clear()
            Recorder(graph.module).run(x)
            for k, g in enumerate(graph.groups):
                for name, spatial in g.activations:
                    acts[k].append(_as_units(seen[name], spatial, g.size))
    return [np.concatenate(a) for a in acts]


def _same_groups(ga: PermutationGraph, gb: PermutationGraph) -> None:
    if [g.size for g in ga.groups] != [g.size for g in gb.groups]:
        raise ValueError(f"the networks' hidden groups differ in size: {[g.size for g in ga.groups]} and "
                         f"{[g.size for g in gb.groups]}")


def align_activations(model_a: Any, model_b: Any, data: Any) -> tuple[Any, list]:
    """Permute ``model_b``'s hidden units onto ``model_a``'s by activation correlation.

    ``data`` is an iterable of input batches (or (inputs, targets) pairs); both models run in
    eval mode on it. Units constant over ``data`` (dead ReLUs) correlate with nothing; they are
    matched among themselves in no particular order (the function is preserved either way).

    Returns
    -------
    (aligned_b, perms) : the permuted copy of model_b and the permutation of each group.
    """
    from .._engine import ConstantFeatureWarning
    from .neurons import match_neurons

    ga, gb = trace_permutation_graph(model_a), trace_permutation_graph(model_b)
    _same_groups(ga, gb)
    data = list(data)
    modes = (model_a.training, model_b.training)
    model_a.eval()
    model_b.eval()
    try:
        acts_a, acts_b = _unit_activations(ga, data), _unit_activations(gb, data)
    finally:
        model_a.train(modes[0])
        model_b.train(modes[1])
    perms = []
    for xa, xb in zip(acts_a, acts_b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConstantFeatureWarning)  # dead units: documented above
            m = match_neurons(xa, xb, method="hungarian")
        perm = np.empty(xa.shape[1], dtype=np.int64)
        perm[m.rows] = m.cols  # unit i of A <- unit perm[i] of B
        perms.append(perm)
    return permute_model(model_b, perms), perms


def _unit_weights(model: Any, graph: PermutationGraph, k: int, perms: Optional[list]) -> np.ndarray:
    """Rows = group k's units, columns = every weight touching them, the other axis of each weight
    permuted by its own group's current permutation (``perms`` None: unpermuted)."""
    g = graph.groups[k]

    def perm_of(group: Optional[int], spatial: int = 1) -> Optional[np.ndarray]:
        if perms is None or group is None:
            return None
        return _expand(perms[group], spatial)

    parts = []
    for name in g.producers:
        layer = model.get_submodule(name)
        W = layer.weight.detach().double().numpy()
        g_in, spatial, _ = graph.layers[name]
        p_in = perm_of(g_in, spatial)
        if p_in is not None:
            W = W[:, p_in]
        parts.append(W.reshape(W.shape[0], -1))
        if layer.bias is not None:
            parts.append(layer.bias.detach().double().numpy()[:, None])
    for name in g.norms:
        bn = model.get_submodule(name)
        for attr in ("weight", "bias"):
            t = getattr(bn, attr, None)
            if t is not None:
                parts.append(t.detach().double().numpy()[:, None])
    for name, spatial in g.consumers:
        Wn = model.get_submodule(name).weight.detach().double().numpy()
        p_out = perm_of(graph.layers[name][2])
        if p_out is not None:
            Wn = Wn[p_out]
        Wn = Wn.reshape(Wn.shape[0], g.size, spatial, *Wn.shape[2:])
        parts.append(np.moveaxis(Wn, 1, 0).reshape(g.size, -1))
    return np.concatenate(parts, axis=1)


def align_weights(model_a: Any, model_b: Any, *, max_iter: int = 100, seed: int = 0) -> tuple[Any, list]:
    """Git Re-Basin weight matching: permutations of B's groups maximising Σ_ℓ⟨W_a^ℓ, P_ℓ W_b^ℓ P_{ℓ-1}ᵀ⟩
    (biases and normalisation scales included), by coordinate descent over the groups in a seeded
    random order until no permutation changes (at most ``max_iter`` sweeps); each step is an exact
    assignment. Returns (aligned_b, perms)."""
    ga, gb = trace_permutation_graph(model_a), trace_permutation_graph(model_b)
    _same_groups(ga, gb)
    rng = np.random.default_rng(seed)
    perms = [np.arange(g.size) for g in gb.groups]
    units_a = [_unit_weights(model_a, ga, k, None) for k in range(len(ga.groups))]  # A never moves: once
    for _ in range(max_iter):
        changed = False
        for k in rng.permutation(len(gb.groups)):
            Ub = _unit_weights(model_b, gb, k, perms)
            if Ub.shape != units_a[k].shape:
                raise ValueError(f"group {k} of the two networks touches weights of different shapes "
                                 f"({units_a[k].shape} and {Ub.shape})")
            _, cols = linear_assignment(units_a[k] @ Ub.T, maximize=True)
            if not np.array_equal(cols, perms[k]):
                changed = True
                perms[k] = cols
        if not changed:
            break
    return permute_model(model_b, perms), perms
