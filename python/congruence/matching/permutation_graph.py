"""Permutation groups of a torch network, derived from its traced graph (torch.fx).

A hidden unit (a Linear output, a conv channel) can be renamed without changing the network's
function provided every tensor that carries it is renamed consistently. Tracing the forward pass
with :func:`torch.fx.symbolic_trace` gives every tensor's *channel axis* a group id:

* a Linear / Conv (groups = 1) layer starts a new group for its output (it *produces* the group)
  and *consumes* its input's group along weight axis 1;
* normalisation layers, elementwise activations, pooling, Dropout and Identity keep their input's
  group (normalisation parameters are permuted with it);
* a binary elementwise op of two tensors (``x + f(x)``: residual connections, gating products)
  merges the two groups — a residual stream is one group shared by every block writing to it;
* ``flatten`` from dim 1 (``nn.Flatten``, ``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``)
  keeps the group but marks it *flattened*: the Linear reading it sees each channel as a block of
  ``spatial`` consecutive inputs;
* the model's inputs and outputs are fixed: a group reaching either cannot move.

Any other operation (concatenation, attention, reshapes that mix channels, depthwise convs, ...)
raises a ValueError naming the node, so a permutation is never applied to a graph it would break.
This covers MLPs, VGG-style CNNs and ResNets with BatchNorm (Ainsworth, Hayase & Srinivasa 2023,
§3 and Appendix A's residual handling).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["PermutationGroup", "PermutationGraph", "trace_permutation_graph"]


@dataclass(frozen=True)
class PermutationGroup:
    """One set of hidden units that must be permuted together.

    Attributes
    ----------
    size : int
        Units (features or channels) in the group.
    producers : tuple of str
        Qualified names of the Linear / Conv layers whose outputs (weight axis 0, bias) are the group.
    norms : tuple of str
        Normalisation layers whose parameters and running statistics are permuted with it.
    consumers : tuple of (str, int)
        Layers reading the group along weight axis 1, with ``spatial``: the number of consecutive
        inputs per unit (1, or the positions per channel when the layer reads a flattened map).
    activations : tuple of (str, int)
        The traced nodes (name, spatial) whose values the consumers read: the group's activations.
    """

    size: int
    producers: tuple
    norms: tuple
    consumers: tuple
    activations: tuple

    @property
    def spatial(self) -> int:
        """Positions per unit as the first consumer reads them (1 unless it reads a flattened map)."""
        return self.consumers[0][1] if self.consumers else 1


@dataclass(frozen=True)
class PermutationGraph:
    """The traced module (``module``, a ``torch.fx.GraphModule`` sharing the model's layers), its
    permutable groups, and per weight layer the group index of its input and output (None when
    fixed) with the input's ``spatial``: ``layers[name] = (in_group, spatial, out_group)``."""

    module: Any
    groups: tuple
    layers: dict


_WEIGHT = ("Linear", "Conv1d", "Conv2d", "Conv3d")
_NORM = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm")
_PASS_MODULES = ("ReLU", "LeakyReLU", "GELU", "Tanh", "Sigmoid", "ELU", "SiLU", "Softplus", "Identity", "Dropout",
                 "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
                 "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "Hardswish",
                 "Mish", "ReLU6")
_PASS_METHODS = ("relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "detach", "float", "double", "to")


def _pass_functions() -> tuple:
    import torch
    import torch.nn.functional as F

    names = ("relu", "relu6", "gelu", "silu", "elu", "leaky_relu", "softplus", "hardswish", "mish", "dropout",
             "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
             "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d")
    fns = [getattr(F, n) for n in names if hasattr(F, n)]
    fns += [torch.relu, torch.sigmoid, torch.tanh, torch.nn.functional.sigmoid, torch.nn.functional.tanh]
    return tuple(fns)


def _binary_functions() -> tuple:
    import torch

    return (operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul, torch.add,
            torch.sub, torch.mul)


class _Groups:
    """Union-find over group ids with a size and a 'fixed' flag per root."""

    def __init__(self) -> None:
        self.parent: list = []
        self.size: list = []
        self.fixed: list = []

    def new(self, size: Optional[int], fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.fixed.append(fixed)
        return len(self.parent) - 1

    def root(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int, where: str) -> int:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return ra
        sa, sb = self.size[ra], self.size[rb]
        if sa is not None and sb is not None and sa != sb:
            raise ValueError(f"{where} combines tensors of {sa} and {sb} channels")
        self.parent[rb] = ra
        self.size[ra] = sa if sa is not None else sb
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb]
        return ra


def trace_permutation_graph(model: Any) -> PermutationGraph:
    """Trace ``model`` and derive its permutation groups (see the module docstring).

    Raises
    ------
    ValueError
        If the model cannot be traced, uses an operation whose effect on channels is not known
        here (named in the message), or has no permutable group.
    """
    import torch.fx as fx

    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises assorted types for data-dependent control flow
        raise ValueError(f"permutation alignment traces the model with torch.fx, which failed for "
                         f"{type(model).__name__}: {exc}") from exc
    modules = dict(gm.named_modules())
    G = _Groups()
    layout: dict = {}  # node -> (group id, flattened) for tensors; absent for non-tensors
    weight_io: dict = {}  # layer name -> (input group id or None, flattened, output group id)
    reads: list = []  # (layer name, node name, group id, flattened)
    norms: list = []  # (layer name, group id)
    pass_fns, binary_fns = _pass_functions(), _binary_functions()

    def tensor_args(node) -> list:
        return [a for a in _flat_nodes((node.args, node.kwargs)) if isinstance(a, fx.Node) and a in layout]

    def unsupported(node, what: str) -> ValueError:
        return ValueError(f"{what} (traced node {node.name!r}) is not supported for permutation alignment; "
                          "supported: Linear, Conv with groups=1, normalisation, elementwise activations, "
                          "pooling, Dropout, Identity, flatten from dim 1 and residual additions")

    def flatten_dim_ok(node, start_pos: int) -> bool:
        start = node.args[start_pos] if len(node.args) > start_pos else node.kwargs.get("start_dim", 0)
        return start == 1

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            layout[node] = (G.new(None, fixed=True), False)
        elif node.op == "output":
            for a in _flat_nodes(node.args):
                if a in layout:
                    G.fixed[G.root(layout[a][0])] = True
        elif node.op == "get_attr":
            raise unsupported(node, f"a direct use of the attribute {node.target!r}")
        elif node.op == "call_module":
            m = modules[node.target]
            kind = type(m).__name__
            ins = tensor_args(node)
            if not ins:
                raise unsupported(node, f"{kind} {node.target!r} without a tensor input")
            g_in, flat = layout[ins[0]]
            if kind in _WEIGHT and getattr(m, "groups", 1) == 1:
                out = G.new(int(m.weight.shape[0]))
                weight_io[node.target] = (g_in, flat, out)
                reads.append((node.target, ins[0].name, g_in, flat))
                layout[node] = (out, False)
            elif kind in _NORM:
                if flat:
                    raise unsupported(node, f"{kind} {node.target!r} on a flattened map")
                norms.append((node.target, g_in))
                layout[node] = (g_in, False)
            elif kind in _PASS_MODULES:
                layout[node] = (g_in, flat)
            elif kind == "Flatten":
                if m.start_dim != 1 or m.end_dim != -1:
                    raise unsupported(node, f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})")
                layout[node] = (g_in, True)
            else:
                raise unsupported(node, f"{kind} {node.target!r}")
        else:  # call_function / call_method
            ins = tensor_args(node)
            target = node.target
            if not ins:
                continue  # arithmetic on sizes and other non-tensors
            if node.op == "call_method" and target in ("size", "dim"):
                continue  # not a tensor
            if node.op == "call_function" and target is getattr and node.args[1] in ("shape",):
                continue
            g_in, flat = layout[ins[0]]
            if (node.op == "call_function" and target in binary_fns) or \
                    (node.op == "call_method" and target in ("add", "add_", "sub", "sub_", "mul", "mul_")):
                g = g_in
                for other in ins[1:]:
                    if layout[other][1] != flat:
                        raise unsupported(node, f"{target} of a flattened and an unflattened tensor")
                    g = G.union(g, layout[other][0], f"{getattr(target, '__name__', target)} at {node.name!r}")
                layout[node] = (g, flat)
            elif (node.op == "call_function" and target in pass_fns) or \
                    (node.op == "call_method" and target in _PASS_METHODS):
                layout[node] = (g_in, flat)
            elif (node.op == "call_function" and getattr(target, "__name__", "") == "flatten") or \
                    (node.op == "call_method" and target == "flatten"):
                if not flatten_dim_ok(node, 1):
                    raise unsupported(node, "flatten not starting at dim 1")
                layout[node] = (g_in, True)
            elif node.op == "call_method" and target in ("view", "reshape") and len(node.args) == 3 \
                    and node.args[2] == -1:
                layout[node] = (g_in, True)  # x.view(x.size(0), -1)
            else:
                raise unsupported(node, f"{node.op} {getattr(target, '__name__', target)!r}")
    return _collect(gm, modules, G, weight_io, reads, norms)


def _flat_nodes(args) -> list:
    """The leaves of nested tuples / lists / dicts, in order."""
    if isinstance(args, (tuple, list)):
        return [leaf for a in args for leaf in _flat_nodes(a)]
    if isinstance(args, dict):
        return [leaf for a in args.values() for leaf in _flat_nodes(a)]
    return [args]


def _collect(gm, modules, G: _Groups, weight_io: dict, reads: list, norms: list) -> PermutationGraph:
    roots: dict = {}  # root id -> group index, for permutable roots produced by some layer
    order = []
    for name, (_, _, out) in weight_io.items():
        r = G.root(out)
        if not G.fixed[r] and r not in roots:
            roots[r] = len(order)
            order.append(r)
    if not order:
        raise ValueError("the model has no permutable hidden group (it needs at least two weight layers with "
                         "hidden units between them)")
    producers = {r: [] for r in order}
    consumers = {r: [] for r in order}
    acts = {r: [] for r in order}
    norm_of = {r: [] for r in order}
    layers = {}
    for name, (g_in, flat, out) in weight_io.items():
        r_out, r_in = G.root(out), G.root(g_in)
        if r_out in roots:
            producers[r_out].append(name)
        spatial = 1
        if r_in in roots:
            size = G.size[r_in]
            fan_in = int(modules[name].weight.shape[1])
            if flat:
                if fan_in % size:
                    raise ValueError(f"{name!r} reads {fan_in} features after a flatten, not a multiple of "
                                     f"{size} channels")
                spatial = fan_in // size
            elif fan_in != size:
                raise ValueError(f"{name!r} reads {fan_in} inputs but its input carries {size} channels")
            consumers[r_in].append((name, spatial))
        layers[name] = (roots.get(r_in), spatial, roots.get(r_out))
    for name, node_name, g_in, flat in reads:
        r = G.root(g_in)
        if r in roots:
            entry = (node_name, layers[name][1])
            if entry not in acts[r]:
                acts[r].append(entry)
    for name, g in norms:
        r = G.root(g)
        if r in roots:
            m = modules[name]
            if type(m).__name__ in ("LayerNorm", "GroupNorm"):
                shape = tuple(getattr(m, "normalized_shape", ())) if type(m).__name__ == "LayerNorm" else None
                if type(m).__name__ == "GroupNorm" and m.num_groups != m.num_channels:
                    raise ValueError(f"GroupNorm {name!r} with {m.num_groups} groups mixes channels; only one "
                                     "channel per group can be permuted")
                if shape is not None and shape != (G.size[r],):
                    raise ValueError(f"LayerNorm {name!r} over {shape} is not supported for permutation alignment "
                                     f"(only a LayerNorm over the {G.size[r]} features of the group)")
            norm_of[r].append(name)
    groups = tuple(PermutationGroup(size=int(G.size[r]), producers=tuple(producers[r]), norms=tuple(norm_of[r]),
                                    consumers=tuple(consumers[r]), activations=tuple(acts[r])) for r in order)
    return PermutationGraph(module=gm, groups=groups, layers=layers)
