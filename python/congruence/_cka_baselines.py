"""Pure-PyTorch baselines for all-layer-pair linear CKA (benchmark P6; METHODS.md §2.1).

Two opponents, both written here from the formulas (not from any package's code):

* the **careful exact** pipeline — cache every layer's activations over the data, centre each
  layer once, form each layer's Gram once, then one product per layer pair — in the space that
  needs fewer multiply-adds (feature space, d×d, when samples outnumber features; sample space,
  n×n, otherwise);
* the **minibatch estimator** of Nguyen, Raghu & Kornblith (2021), which torch-cka and ckatorch
  compute: per minibatch t the unbiased HSIC₁ of the per-batch Grams, averaged over batches,
  CKA_mb = Σ_t HSIC₁(K_t, L_t) / √(Σ_t HSIC₁(K_t, K_t) · Σ_t HSIC₁(L_t, L_t)). It needs no cache
  but is an *estimator*: it depends on the batch size and differs from the exact CKA.

Both run the models under ``torch.no_grad()`` with forward hooks, flatten each layer's output to
``(batch, features)`` and compute in the activations' dtype.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch

__all__ = ["cache_activations", "linear_cka_all_pairs", "compare_linear_cka", "MinibatchCKA", "minibatch_cka"]


def _modules(model: torch.nn.Module, layers: Sequence[str]) -> list[torch.nn.Module]:
    named = dict(model.named_modules())
    missing = [n for n in layers if n not in named]
    if missing:
        raise ValueError(f"layers {missing} are not modules of the model")
    return [named[n] for n in layers]


def _input(batch: Any) -> Any:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


class _Hooks:
    """Forward hooks writing each layer's flattened output of the current batch into ``out``."""

    def __init__(self, model: torch.nn.Module, layers: Sequence[str]) -> None:
        self.out: list[Optional[torch.Tensor]] = [None] * len(layers)
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(_modules(model, layers))]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            self.out[i] = output.detach().flatten(1)

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _batches(models: Sequence[torch.nn.Module], layer_lists: Sequence[Sequence[str]], data: Iterable):
    """Yields, per batch, one list of flattened activations per model."""
    hooks = [_Hooks(m, ls) for m, ls in zip(models, layer_lists)]
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        with torch.no_grad():
            for batch in data:
                x = _input(batch)
                for m in models:
                    m(x)
                yield [list(h.out) for h in hooks]
    finally:
        for h in hooks:
            h.close()
        for m, mode in zip(models, modes):
            m.train(mode)


def cache_activations(model: torch.nn.Module, layers: Sequence[str], data: Iterable) -> list[torch.Tensor]:
    """Every layer's flattened activations over all of ``data``: a list of ``(n, p_l)`` tensors."""
    parts: list[list[torch.Tensor]] = [[] for _ in layers]
    for (acts,) in _batches([model], [layers], data):
        for i, a in enumerate(acts):
            parts[i].append(a)
    out = []
    for i in range(len(parts)):  # one layer at a time, so the peak is the cache plus one layer
        out.append(torch.cat(parts[i]))
        parts[i] = []
    return out


def _centre_(x: torch.Tensor) -> torch.Tensor:
    return x.sub_(x.mean(dim=0, dtype=torch.float64).to(x.dtype))


def linear_cka_all_pairs(acts_a: Sequence[torch.Tensor], acts_b: Optional[Sequence[torch.Tensor]] = None, *,
                         space: str = "auto", inplace: bool = False) -> torch.Tensor:
    """Exact linear CKA of every pair (a, b): ‖X̃_aᵀX̃_b‖²_F / (‖X̃_aᵀX̃_a‖_F ‖X̃_bᵀX̃_b‖_F).

    Parameters
    ----------
    acts_a, acts_b : sequence of torch.Tensor, each (n, p_l)
        Cached activations (``acts_b`` None: ``acts_a`` against itself).
    space : {"auto", "features", "samples"}
        "features": per-layer ‖X̃ᵀX̃‖_F once, one p_a×p_b product per pair; "samples": per-layer
        centred Grams K̃ = X̃X̃ᵀ (n×n) once, kept, and their Frobenius products; "auto": the one
        with fewer multiply-adds.
    inplace : bool
        Centre the given tensors in place (the caller owns the cache) instead of copies.

    Returns
    -------
    torch.Tensor, shape (len(acts_a), len(acts_b)), float64
    """
    if space not in ("auto", "features", "samples"):
        raise ValueError(f"space must be 'auto', 'features' or 'samples'; got {space!r}")
    same = acts_b is None
    layers = list(acts_a) if same else list(acts_a) + list(acts_b)
    na = len(acts_a)
    n = layers[0].shape[0]
    widths = [x.shape[1] for x in layers]
    if space == "auto":
        pairs = sum(widths[i] * widths[j] for i in range(na) for j in (range(na) if same else range(na, len(layers))))
        feature = n * (sum(p * p for p in widths) + pairs)
        sample = sum(n * n * p for p in widths)
        space = "features" if feature <= sample else "samples"
    centred = [_centre_(x if inplace else x.clone()) for x in layers]
    cols = range(na) if same else range(na, len(layers))
    out = torch.empty(na, len(cols), dtype=torch.float64)
    if space == "features":
        self_norm = [float(torch.linalg.matrix_norm(x.T @ x).double()) for x in centred]
        for i in range(na):
            for jj, j in enumerate(cols):
                num = float((centred[i].T @ centred[j]).double().square().sum())
                out[i, jj] = num / (self_norm[i] * self_norm[j])
        return out
    grams = torch.stack([x @ x.T for x in centred]).reshape(len(layers), -1)
    F = (grams @ grams.T).double()
    d = F.diagonal().sqrt()
    for i in range(na):
        for jj, j in enumerate(cols):
            out[i, jj] = F[i, j] / (d[i] * d[j])
    return out


def compare_linear_cka(model_a: torch.nn.Module, model_b: Optional[torch.nn.Module], data: Iterable,
                       layers_a: Sequence[str], layers_b: Sequence[str], *, space: str = "auto") -> torch.Tensor:
    """The careful exact pipeline end to end: cache every layer of both models over ``data``
    (one pass), then :func:`linear_cka_all_pairs` on the cache (centred in place)."""
    data = list(data) if model_b is not None else data
    acts_a = cache_activations(model_a, layers_a, data)
    acts_b = cache_activations(model_b if model_b is not None else model_a, layers_b, data)
    return linear_cka_all_pairs(acts_a, acts_b, space=space, inplace=True)


def _hsic1_all(acts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Unbiased HSIC₁ (Song et al. 2012) of every pair of layers of one minibatch, vectorised:
    with K̃ the Gram with its diagonal zeroed, r = K̃1 and s = 1ᵀK̃1,
    HSIC₁ = [tr(K̃L̃) + s_K s_L/((b−1)(b−2)) − 2 r_K·r_L/(b−2)] / (b(b−3))."""
    b = acts[0].shape[0]
    grams = torch.stack([a @ a.T for a in acts])  # (L, b, b)
    grams.diagonal(dim1=1, dim2=2).zero_()
    flat = grams.reshape(len(acts), -1)
    rows = grams.sum(dim=2)  # (L, b)
    sums = rows.sum(dim=1)
    tr = flat @ flat.T
    return ((tr + torch.outer(sums, sums) / ((b - 1) * (b - 2)) - 2.0 * (rows @ rows.T) / (b - 2))
            / (b * (b - 3))).double()


class MinibatchCKA:
    """Accumulator of the minibatch CKA estimator (Nguyen et al. 2021) over layer lists A and B.

    ``update(acts_a, acts_b)`` with one minibatch (≥ 4 rows) of every layer; ``compute()`` gives
    the (len(A), len(B)) float64 estimate Σ_t HSIC₁(K_t, L_t) / √(Σ_t HSIC₁(K_t,K_t) Σ_t HSIC₁(L_t,L_t)).
    """

    def __init__(self) -> None:
        self.total: Optional[torch.Tensor] = None
        self.na = 0
        self.batches = 0

    def update(self, acts_a: Sequence[torch.Tensor], acts_b: Sequence[torch.Tensor]) -> None:
        if acts_a[0].shape[0] < 4:
            raise ValueError(f"a minibatch needs at least 4 rows for HSIC₁; got {acts_a[0].shape[0]}")
        h = _hsic1_all(list(acts_a) + list(acts_b))
        self.total = h if self.total is None else self.total + h
        self.na = len(acts_a)
        self.batches += 1

    def compute(self) -> torch.Tensor:
        if self.total is None:
            raise ValueError("no minibatches were given")
        t, na = self.total, self.na
        d = t.diagonal()
        return t[:na, na:] / torch.sqrt(torch.outer(d[:na], d[na:]))


def minibatch_cka(model_a: torch.nn.Module, model_b: Optional[torch.nn.Module], data: Iterable,
                  layers_a: Sequence[str], layers_b: Sequence[str]) -> torch.Tensor:
    """Minibatch CKA of every layer pair in one pass over ``data`` (each batch a minibatch)."""
    acc = MinibatchCKA()
    if model_b is None:
        for (acts,) in _batches([model_a], [list(layers_a) + list(layers_b)], data):
            acc.update(acts[:len(layers_a)], acts[len(layers_a):])
    else:
        for acts_a, acts_b in _batches([model_a, model_b], [layers_a, layers_b], data):
            acc.update(acts_a, acts_b)
    return acc.compute()
