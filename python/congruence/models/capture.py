"""Capture activations from torch modules with forward hooks (METHODS.md §0 conventions).

Three entry points:

* :func:`list_layers` names the modules of a model worth comparing by default;
* :class:`ActivationRecorder`, a context manager whose forward hooks keep the latest batch's
  activations of the chosen layers as 2-D ``(n_samples, n_features)`` tensors;
* :func:`capture_activations`, one batch through a model (no grad, eval mode, restored after).

Outputs are turned into one 2-D tensor per layer in two steps:

1. **selection** (``select=``): a module may return a tensor, a tuple / list, a dict or a
   Hugging Face ``ModelOutput`` (an ``OrderedDict`` subclass). ``None`` takes the tensor itself,
   element 0 of a tuple / list, and ``"last_hidden_state"`` of a mapping (else an error listing
   the keys); an ``int`` indexes a sequence (or the values of a mapping, like
   ``ModelOutput.to_tuple()``); a ``str`` is a mapping key or an attribute; a callable gets the
   raw output and returns the tensor. ``select`` may be a dict ``{layer: selector}``.
2. **spatial policy** (``spatial=``) for outputs with more than two dimensions, read as
   ``[N, C, *spatial]`` (PyTorch's conv layout): ``"flatten"`` -> ``(N, C·H·W)`` (the default,
   and the convention for representational similarity), ``"mean"`` -> ``(N, C)`` (mean over the
   spatial positions), ``"positions"`` -> ``(N·H·W, C)`` (every image position a sample, channel =
   feature; rows ordered image-major, then positions in C order). 2-D outputs pass through;
   0-D / 1-D outputs raise a ValueError naming the layer. Token sequences laid out ``[N, T, D]``
   (features last) are not conv maps: ``"flatten"`` gives ``(N, T·D)``; for a per-token or
   mean-over-tokens view pass a callable selector (e.g. ``lambda o: o[0].mean(1)``).
   ``spatial`` may also be a dict ``{layer: policy}``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Optional, Union

try:  # torch is an optional dependency of congruence; this module needs it
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("congruence.models needs PyTorch (pip install torch)") from exc

__all__ = ["ActivationRecorder", "capture_activations", "list_layers", "SPATIAL_POLICIES"]

#: The conv policies (METHODS.md §0).
SPATIAL_POLICIES = ("flatten", "mean", "positions")

#: Leaves left out of :func:`list_layers`: in eval mode their output repeats their input.
_PASSTHROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                nn.FeatureAlphaDropout)
#: Containers that are never blocks (always descended into).
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
#: Class-name endings of the "common blocks" :func:`list_layers` lists whole.
_BLOCK_SUFFIXES = ("Block", "Bottleneck", "Layer")

Selector = Union[None, int, str, Callable[[Any], Any]]
LayerSpec = Union[str, "nn.Module"]


# ----------------------------------------------------------------------------------- layers


def _is_block(module: "nn.Module") -> bool:
    if isinstance(module, _CONTAINERS):
        return False
    name = type(module).__name__
    return any(name.endswith(s) for s in _BLOCK_SUFFIXES) and any(True for _ in module.children())


def list_layers(model: "nn.Module", *, blocks: bool = True) -> list[str]:
    """Names of the modules of ``model`` that :func:`congruence.compare` compares by default.

    The rule: walk the module tree from the root in registration order (``named_modules``
    order). A **common block** (a module with children whose class name ends in ``Block``,
    ``Bottleneck`` or ``Layer``: torchvision's ``BasicBlock`` / ``Bottleneck``,
    ``nn.TransformerEncoderLayer``, Hugging Face ``BertLayer`` / ``GPT2Block`` …) is listed and
    not descended into. Containers (``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``) and
    other modules with children are descended into. A **leaf** (no children) is listed unless it
    is an ``nn.Identity`` or a dropout module (in eval mode their output repeats their input).
    The root itself is never listed. With ``blocks=False`` every leaf is listed, blocks included.

    Any named module (``dict(model.named_modules())``; ``""`` is the root, i.e. the model's
    output) may still be passed explicitly as a layer.

    Parameters
    ----------
    model : torch.nn.Module
    blocks : bool
        Treat common blocks as single layers (default) or list their leaves.

    Returns
    -------
    list of str
    """
    _check_module(model, "model")
    out: list[str] = []

    def walk(module: "nn.Module", prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if blocks and _is_block(child):
                out.append(full)
            elif any(True for _ in child.children()):
                walk(child, full)
            elif not isinstance(child, _PASSTHROUGH):
                out.append(full)

    walk(model, "")
    return out


def _check_module(model: Any, name: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(model).__name__}")


def resolve_layers(model: "nn.Module", layers: Union[LayerSpec, Iterable[LayerSpec], None],
                   what: str = "layers") -> list[tuple[str, "nn.Module"]]:
    """``[(name, module)]`` for layer names or module objects (None: :func:`list_layers`).

    Raises
    ------
    ValueError
        Unknown names (with the closest matches), modules not inside ``model``, duplicates, or an
        empty list.
    """
    _check_module(model, "model")
    named = dict(model.named_modules())
    if layers is None:
        layers = list_layers(model)
        if not layers:
            layers = [""]  # a model without submodules: its output
    elif isinstance(layers, (str, nn.Module)):
        layers = [layers]
    out: list[tuple[str, nn.Module]] = []
    seen: set[str] = set()
    by_id = None
    for spec in layers:
        if isinstance(spec, str):
            if spec not in named:
                close = difflib.get_close_matches(spec, [k for k in named if k], n=5, cutoff=0.5)
                hint = f"; close matches: {close}" if close else ""
                listed = list_layers(model)
                raise ValueError(f"unknown layer {spec!r} in {what} for {type(model).__name__}{hint}. "
                                 f"Layers (list_layers): {listed[:20]}{' …' if len(listed) > 20 else ''}")
            name = spec
        elif isinstance(spec, nn.Module):
            if by_id is None:
                by_id = {id(m): k for k, m in named.items()}
            if id(spec) not in by_id:
                raise ValueError(f"the {type(spec).__name__} module given in {what} is not a submodule of the "
                                 f"{type(model).__name__} model")
            name = by_id[id(spec)]
        else:
            raise TypeError(f"{what} must hold layer names (str) or torch.nn.Module objects; got {type(spec).__name__}")
        if name in seen:
            raise ValueError(f"layer {name!r} is listed twice in {what}")
        seen.add(name)
        out.append((name, named[name]))
    if not out:
        raise ValueError(f"{what} is empty; name at least one layer (see congruence.models.list_layers)")
    return out


# ------------------------------------------------------------------------ output -> 2-D tensor


def check_spatial(spatial: Any) -> None:
    policies = spatial.values() if isinstance(spatial, Mapping) else [spatial]
    for p in policies:
        if p not in SPATIAL_POLICIES:
            raise ValueError(f"spatial must be one of {SPATIAL_POLICIES} (or a dict layer -> policy); got {p!r}")


def check_select(select: Any) -> None:
    selectors = select.values() if isinstance(select, Mapping) else [select]
    for s in selectors:
        if not (s is None or callable(s) or isinstance(s, (str, int))) or isinstance(s, bool):
            raise TypeError(f"select must be None, an int index, a str key, a callable(output) -> tensor, or a "
                            f"dict layer -> selector; got {type(s).__name__}")


def per_layer(option: Any, names: list[str], what: str, default: Any) -> dict[str, Any]:
    """Expand a scalar option or a dict ``{layer: value}`` to every layer (unknown keys raise)."""
    if isinstance(option, Mapping):
        unknown = [k for k in option if k not in names]
        if unknown:
            raise ValueError(f"{what} names unknown layers {unknown}; the layers are {names}")
        return {n: option.get(n, default) for n in names}
    return {n: option for n in names}


def _describe(output: Any) -> str:
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, Mapping):
        return f"a {type(output).__name__} with keys {list(output.keys())}"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of length {len(output)}"
    return f"a {type(output).__name__}"


def select_output(output: Any, selector: Selector, layer: str) -> "torch.Tensor":
    """Pick the tensor of one module output (see the module docstring)."""
    if callable(selector) and not isinstance(selector, (str, int)):
        value = selector(output)
        how = "the select callable"
    elif selector is None:
        how = "select=None"
        if isinstance(output, torch.Tensor):
            value = output
        elif isinstance(output, Mapping):
            if "last_hidden_state" not in output:
                raise ValueError(f"layer {layer!r} returned {_describe(output)}; with select=None a mapping output "
                                 "must have 'last_hidden_state'. Pass select= a key, an index or a callable")
            value = output["last_hidden_state"]
        elif isinstance(output, (tuple, list)):
            if len(output) == 0:
                raise ValueError(f"layer {layer!r} returned an empty {type(output).__name__}")
            value = output[0]
        else:
            raise TypeError(f"layer {layer!r} returned {_describe(output)}; pass select= a callable that returns "
                            "the tensor to compare")
    elif isinstance(selector, int):
        how = f"select={selector}"
        seq = [v for v in output.values() if v is not None] if isinstance(output, Mapping) else output
        if not isinstance(seq, (tuple, list)):
            raise TypeError(f"layer {layer!r} returned {_describe(output)}; an int selector needs a tuple, list or "
                            "mapping output")
        try:
            value = seq[selector]
        except IndexError:
            raise ValueError(f"select={selector} is out of range for layer {layer!r}, which returned "
                             f"{_describe(output)}") from None
    else:  # str
        how = f"select={selector!r}"
        if isinstance(output, Mapping):
            if selector not in output:
                raise ValueError(f"layer {layer!r} returned {_describe(output)}, which has no key {selector!r}")
            value = output[selector]
        elif hasattr(output, selector):
            value = getattr(output, selector)
        else:
            raise ValueError(f"layer {layer!r} returned {_describe(output)}, which has no key or attribute "
                             f"{selector!r}")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{how} gave {_describe(value)} for layer {layer!r}; a tensor is needed (output was "
                        f"{_describe(output)})")
    return value


def to_2d(x: "torch.Tensor", spatial: str, layer: str) -> "torch.Tensor":
    """Apply the spatial policy: 2-D passes through, ndim > 2 read as ``[N, C, *spatial]``."""
    if x.ndim == 2:
        return x
    if x.ndim < 2:
        raise ValueError(f"layer {layer!r} produced a {x.ndim}-D output of shape {tuple(x.shape)}; activations "
                         "need a sample axis and a feature axis (n_samples, n_features, ...). Choose another layer "
                         "or pass select= a callable that returns a 2-D (or [N, C, ...]) tensor")
    if spatial == "flatten":
        return x.reshape(x.shape[0], -1)
    if spatial == "mean":
        return x.mean(dim=tuple(range(2, x.ndim)))
    if spatial == "positions":
        return x.movedim(1, -1).reshape(-1, x.shape[1])
    raise ValueError(f"spatial must be one of {SPATIAL_POLICIES}; got {spatial!r}")


# ----------------------------------------------------------------------------------- recorder


class ActivationRecorder:
    """Context manager: forward hooks that keep the latest 2-D activations of named layers.

    Inside the ``with`` block every forward pass of ``model`` stores, for each layer, the selected
    output (``select``) reshaped by the spatial policy (``spatial``), detached, on the module's
    device and in its dtype, in :attr:`activations` (a dict ``name -> tensor``; the next forward
    replaces it). Nothing accumulates: one batch is held at a time. The hooks are removed on exit
    (also on an exception). The recorder does not change the model's train / eval mode or grad
    mode; :func:`capture_activations` does.

    Parameters
    ----------
    model : torch.nn.Module
    layers : str, nn.Module, or a sequence of them
        Names from ``model.named_modules()`` (``""`` is the model's own output) or the module
        objects. None: :func:`list_layers`.
    spatial : {"flatten", "mean", "positions"} or dict layer -> policy
    select : None, int, str, callable or dict layer -> selector
        See the module docstring.

    Attributes
    ----------
    layers : list of str
        The resolved layer names, in the order given.
    activations : dict of str -> torch.Tensor
        The latest batch's ``(n_samples, n_features)`` activation per layer.
    calls : dict of str -> int
        How many times each layer ran since the last :meth:`clear` (a module reused inside one
        forward pass runs more than once; the activation of its last call is kept).
    shapes : dict of str -> tuple
        The shape of the selected output before the spatial policy, per layer (latest call).

    Examples
    --------
    >>> with ActivationRecorder(model, ["0", "2"]) as rec:   # doctest: +SKIP
    ...     model(x)
    ...     h = rec.activations["2"]
    """

    def __init__(self, model: "nn.Module", layers: Union[LayerSpec, Iterable[LayerSpec], None] = None, *,
                 spatial: Any = "flatten", select: Any = None) -> None:
        check_spatial(spatial)
        check_select(select)
        self.model = model
        self._resolved = resolve_layers(model, layers)
        self.layers = [name for name, _ in self._resolved]
        self._spatial = per_layer(spatial, self.layers, "spatial", "flatten")
        self._select = per_layer(select, self.layers, "select", None)
        self.activations: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {name: 0 for name in self.layers}
        self.shapes: dict[str, tuple] = {}
        self._handles: list[Any] = []
        self._versions: dict[str, int] = {}
        #: Layers whose output a later in-place operation changes (``nn.ReLU(inplace=True)`` after
        #: a captured ``BatchNorm``): their activations are cloned in the hook. Filled by
        #: :func:`record_batch`, which notices the change through the tensors' version counters.
        self.clone_layers: set[str] = set()

    def _hook(self, name: str) -> Callable:
        def hook(module: "nn.Module", args: Any, output: Any) -> None:
            value = select_output(output, self._select[name], name).detach()
            self.shapes[name] = tuple(value.shape)
            act = to_2d(value, self._spatial[name], name)
            if name in self.clone_layers:
                act = act.clone()
            self.activations[name] = act
            self._versions[name] = act._version
            self.calls[name] += 1

        return hook

    def modified(self) -> list[str]:
        """Layers whose recorded activation was changed in place after its hook ran."""
        return [n for n, a in self.activations.items() if a._version != self._versions.get(n)]

    def clear(self) -> None:
        """Forget the stored activations and call counts."""
        self.activations = {}
        self.calls = {name: 0 for name in self.layers}

    def __enter__(self) -> "ActivationRecorder":
        if self._handles:
            raise RuntimeError("this ActivationRecorder is already active")
        self.clear()
        try:
            for name, module in self._resolved:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Remove the hooks (done on exit of the ``with`` block)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __getitem__(self, name: str) -> "torch.Tensor":
        return self.activations[name]

    def __repr__(self) -> str:
        return f"ActivationRecorder({type(self.model).__name__}, layers={self.layers})"


# ----------------------------------------------------------------------------------- one batch


def record_batch(rec: ActivationRecorder, model: "nn.Module", inputs: Any) -> Any:
    """Run one batch through ``model`` with ``rec``'s hooks active and return the model's output.

    A captured output that a later operation changes in place (version counter moved) is the
    wrong value; such layers are added to ``rec.clone_layers`` and the batch runs again, so the
    activations are the layers' outputs as they left the layer (later batches clone directly).
    """
    rec.clear()
    out = call_model(model, inputs)
    changed = rec.modified()
    if changed:
        rec.clone_layers.update(changed)
        rec.clear()
        out = call_model(model, inputs)
    return out


def move_batch(batch: Any, device: Any) -> Any:
    """Tensors of a batch (nested tuples / lists / dicts) moved to ``device`` (None: unchanged)."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_batch(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_batch(v, device) for v in batch) if not hasattr(batch, "_fields") else \
            type(batch)(*(move_batch(v, device) for v in batch))
    return batch


def model_input(batch: Any) -> tuple[tuple, dict]:
    """(args, kwargs) for a batch: a tensor -> model(x); a tuple / list -> model(batch[0]) (the
    input of an (input, target, ...) sample, as a DataLoader yields); a dict -> model(**batch)."""
    if isinstance(batch, Mapping):
        return (), dict(batch)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise ValueError("a batch is an empty tuple / list; expected (input, ...) with the input first")
        return (batch[0],), {}
    return (batch,), {}


def call_model(model: "nn.Module", batch: Any) -> Any:
    args, kwargs = model_input(batch)
    return model(*args, **kwargs)


def param_device(model: "nn.Module") -> Optional["torch.device"]:
    """The device of the model's first parameter (or buffer), None for a model without any."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


class eval_mode:
    """Context manager: ``model.eval()`` and no grad; every module's training flag restored after."""

    def __init__(self, *models: "nn.Module") -> None:
        self.models = models

    def __enter__(self) -> "eval_mode":
        self._flags = [(m, m.training) for model in self.models for m in model.modules()]
        self._grad = torch.no_grad()
        self._grad.__enter__()
        for model in self.models:
            model.eval()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._grad.__exit__(*exc)
        for m, flag in self._flags:
            m.training = flag


def capture_activations(model: "nn.Module", layers: Union[LayerSpec, Iterable[LayerSpec], None], inputs: Any, *,
                        spatial: Any = "flatten", select: Any = None) -> dict[str, "torch.Tensor"]:
    """Run one batch through ``model`` and return the 2-D activations of ``layers``.

    Runs under ``torch.no_grad()`` with the model in eval mode; each module's train / eval flag is
    restored afterwards. The inputs are not moved: put them on the model's device.

    Parameters
    ----------
    model : torch.nn.Module
    layers : str, nn.Module, or a sequence of them (None: :func:`list_layers`)
    inputs : tensor, tuple / list, or dict
        A tensor is passed as ``model(inputs)``; a tuple / list as ``model(inputs[0])`` (the input
        of an ``(input, target)`` batch); a dict as ``model(**inputs)``.
    spatial : {"flatten", "mean", "positions"} or dict layer -> policy
        Policy for outputs with ndim > 2, read as ``[N, C, *spatial]``: ``(N, C·H·W)``,
        ``(N, C)`` (spatial mean) or ``(N·H·W, C)``.
    select : None, int, str, callable or dict layer -> selector
        Which element of a tuple / dict / ModelOutput output to take (module docstring).

    Returns
    -------
    dict of str -> torch.Tensor
        ``name -> (n_samples, n_features)`` tensor, detached, on the model's device, in the
        output's dtype, in the order of ``layers``.

    Raises
    ------
    ValueError
        Unknown layer names (with close matches), 0-D / 1-D outputs, a layer that did not run in
        the forward pass, a selector that does not fit the output.
    """
    rec = ActivationRecorder(model, layers, spatial=spatial, select=select)
    with eval_mode(model), rec:
        record_batch(rec, model, inputs)
    missing = [name for name in rec.layers if rec.calls[name] == 0]
    if missing:
        raise ValueError(f"layer(s) {missing} did not run in the forward pass of {type(model).__name__}; "
                         "choose modules that are called")
    return {name: rec.activations[name] for name in rec.layers}
