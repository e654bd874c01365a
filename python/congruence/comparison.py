"""All-pairs representational similarity between the layers of two models (or one model and
itself), in one streamed pass over the data (METHODS.md §2).

:func:`compare` runs the data through the model(s) with forward hooks
(:mod:`congruence.models`), :func:`compare_activations` reads saved activations (dicts of arrays,
``.npy`` / ``.npz`` / ``.safetensors`` files) in row batches; both feed one :class:`_Streamer` and
return a :class:`Comparison`.

Memory design (what is kept, all float64 unless noted)
------------------------------------------------------
Activations are never cached, except in the bounded reservoir below.

* **Per layer** k (width p_k): a shift s_k (the column means of its first batch, ≤ 1024 rows),
  the shifted sum a_k = Σ(x − s_k) and the Gram G_kk = Σ(x − s_k)(x − s_k)ᵀ (p_k²), computed once
  per layer however many pairs it is in; with debiased CKA also Σα, Σα², Σα·u (α_i = ‖u_i‖²,
  u_i = x_i − s_k; METHODS §2.2).
* **Per layer pair** (k, l), k ≠ l: only the cross Gram G_kl = Σ(x − s_k)(y − s_l)ᵀ (p_k·p_l);
  with debiased CKA also Σα_kα_l, Σα_l·u_k (p_k), Σα_k·u_l (p_l). For one model against itself a
  pair of distinct layers is stored once (G_lk = G_klᵀ) and a pair (k, k) uses G_kk.
* Together: 8·(Σ_k p_k² + Σ_pairs p_k·p_l) bytes plus O(Σp) vectors; at the end the
  :class:`~congruence.CrossStats` (or :class:`~congruence.HSICStats`) of one pair at a time is
  assembled from these shared parts (a copy of its three blocks) and handed to the measures'
  ``stats=`` path, which is exact (METHODS §2.0), so the result does not depend on the batching.
* **Reservoir** (only when a sample-space measure is requested: rbf_cka, rsa*, mutual_knn*, any
  measure with ``info.streamable`` False): at most ``reservoir`` rows per layer, the *same* sample
  indices for every layer (uniform reservoir sampling, Algorithm R, seeded; sample t enters with
  probability R/(t+1), decided by a counter-based draw so the choice does not depend on the
  batch sizes), stored in float32 (float64 for float64 activations): R·Σ_k p_k·(4 or 8) bytes.
  Those measures run on the reservoir; ``Comparison.subset`` records the measures computed on a
  strict subset and its size, ``info["reservoir"]["indices"]`` the sample indices used.
* Rows are processed in chunks of ≤ 1024 (fewer when the budget left after the state is tight). On
  the host a chunk of every layer is shifted into one panel in the activations' precision (float32
  unless a layer is float64) and the engine adds the per-layer Grams (symmetric updates) and each
  layer's cross rectangle against all its partners (one product) into the float64 state: float32
  products summed over ≤ 4096 samples, then in float64, the CrossStats policy (METHODS §1.2). Whitening
  cut-offs follow that precision (``EIG_RTOL_FLOAT32``). On a GPU the state is torch float64.
* ``route`` (compare docstring): "features" is all of the above; "samples" keeps every sample (the
  reservoir grows to all of them) and computes linear CKA of all pairs from per-layer sample Grams
  (upper row blocks, no n×n matrix resident), exact; "auto" takes the Gram path when only linear
  CKA is asked for, the sample count is known, every sample fits and it needs under half the
  multiply-adds — else "features", falling back to the reservoir only when the state does not fit.
* The plan is checked against a host-RAM budget; for activations on a GPU the per-layer and
  per-pair state lives on that device (torch float64) and only the finished d×d blocks of one pair
  at a time, and the reservoir rows, come to the host.

All of it is counted at the first batch, when the widths are known, and checked against
``memory_limit`` (default: half the available RAM) **before** anything is accumulated. When the
feature-space state does not fit (layers wide relative to the budget, e.g. flattened conv maps;
METHODS §2.0 path choice) the feature-space measures fall back to their sample (Gram) path on the
reservoir, which is exact only if the reservoir holds every sample (n ≤ ``reservoir``); more
samples than that raise :class:`~congruence.MemoryBudgetError` with the numbers (as does a
reservoir that does not fit). ``info["route"]`` says which path was taken.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._resources import MemoryBudgetError, format_bytes, resolve_memory_limit, resolve_threads
from .cross_stats import CrossStats
from ._xp import NUMPY
from .similarity import REGISTRY, HSICStats

__all__ = ["Comparison", "compare", "compare_activations", "available_measures"]

#: Rows per chunk of the streamed accumulation (bounds the float64 temporaries).
CHUNK_ROWS = 1024
#: Draws per block of the counter-based reservoir decisions.
_DRAW_BLOCK = 1 << 16
#: The measures computed from the streamed per-layer / per-pair state (``stats=``).
FEATURE_MEASURES = ("linear_cka", "debiased_cka", "cca", "svcca", "pwcca", "linear_regression_r2", "procrustes")
_FORMAT = "congruence.Comparison"
#: compare's routes for the feature-space measures (compare docstring).
ROUTES = ("auto", "features", "samples")


def available_measures() -> list[str]:
    """Names :func:`compare` accepts: every registered measure except batch-dependent estimators
    (minibatch CKA)."""
    return [name for name, fn in REGISTRY.items() if not fn.info.estimator]


def _check_measures(measures: Any) -> tuple[str, ...]:
    if isinstance(measures, str):
        measures = (measures,)
    try:
        measures = tuple(measures)
    except TypeError:
        raise TypeError(f"measures must be a measure name or a sequence of names; got {type(measures).__name__}") \
            from None
    if not measures:
        raise ValueError(f"measures is empty; available: {available_measures()}")
    for m in measures:
        if not isinstance(m, str):
            raise TypeError(f"measure names must be strings; got {m!r}")
        if m in REGISTRY and REGISTRY[m].info.estimator:
            raise ValueError(f"{m} is a batch-dependent estimator and is not computed by compare (it depends on the "
                             f"batching, not only on the data); call congruence.{m} directly. "
                             f"Available: {available_measures()}")
        if m not in REGISTRY:
            close = difflib.get_close_matches(m, available_measures(), n=3)
            raise ValueError(f"unknown measure {m!r}{f' (did you mean {close}?)' if close else ''}; "
                             f"available: {available_measures()}")
    if len(set(measures)) != len(measures):
        raise ValueError(f"measures lists a name twice: {list(measures)}")
    return measures


def _check_options(options: Any, measures: tuple[str, ...]) -> dict[str, dict]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError("measure_options must be a dict measure -> dict of keyword arguments")
    out = {}
    for m, kw in options.items():
        if m not in measures:
            raise ValueError(f"measure_options names {m!r}, which is not among measures {list(measures)}")
        if not isinstance(kw, Mapping):
            raise TypeError(f"measure_options[{m!r}] must be a dict of keyword arguments")
        if "stats" in kw:
            raise ValueError("measure_options may not set stats=")
        out[m] = dict(kw)
    return out


def _check_route(route: Any) -> str:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}; got {route!r}")
    return route


def _check_int(value: Any, name: str, *, minimum: int, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum >= 1 else "an integer >= 0"
        raise ValueError(f"{name} must be {kind}{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def _scalar(result: Any) -> float:
    """A measure's result as a float (CCA / SVCCA results: their mean ρ̄)."""
    if hasattr(result, "mean_rho"):
        return float(result.mean_rho)
    return float(result)


# ----------------------------------------------------------------------------------- result


def _jsonable(obj: Any) -> Any:
    """Plain JSON values (numpy scalars / arrays to Python, non-finite floats to None)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return repr(obj)


@dataclass
class Comparison:
    """All-pairs similarity matrices between the layers of two models (or activation sets).

    Attributes
    ----------
    measures : tuple of str
    layers_a, layers_b : list of str
        Row (model A) and column (model B) layer names.
    values : dict of str -> ndarray
        ``values[m][i, j]`` = m(layer_a[i], layer_b[j]), float64, shape
        (len(layers_a), len(layers_b)); for asymmetric measures (pwcca, linear_regression_r2)
        the A layer is the first argument (for R²: the target, B the predictor).
    n_samples : int
        Rows seen (samples; image positions times images for ``spatial="positions"``).
    subset : dict of str -> int
        Measures computed on a reservoir subset smaller than ``n_samples``, and its size.
    info : dict
        ``spatial``, ``shapes`` (per-sample output shape per layer, before the spatial policy),
        ``widths``, ``timing`` (seconds), ``route`` ("streamed" or "reservoir"), ``sources``
        (measure -> "streamed" | "reservoir"), ``memory`` (bytes planned), ``reservoir`` (size,
        capacity, seed, sample indices), ``n_batches``, ``self_comparison`` …
    """

    measures: tuple
    layers_a: list
    layers_b: list
    values: dict
    n_samples: int
    subset: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.measures = tuple(self.measures)
        self.layers_a, self.layers_b = list(self.layers_a), list(self.layers_b)
        shape = (len(self.layers_a), len(self.layers_b))
        vals = {}
        for m in self.measures:
            if m not in self.values:
                raise ValueError(f"values has no matrix for measure {m!r}")
            v = np.array(self.values[m], dtype=np.float64)
            if v.shape != shape:
                raise ValueError(f"values[{m!r}] has shape {v.shape}; expected {shape}")
            vals[m] = v
        self.values = vals

    def __getitem__(self, measure: str) -> np.ndarray:
        if measure not in self.values:
            raise KeyError(f"{measure!r} was not computed; measures: {list(self.measures)}")
        return self.values[measure]

    def _pick(self, measure: Optional[str]) -> tuple[str, ...]:
        if measure is None:
            return self.measures
        self[measure]  # KeyError for unknown names
        return (measure,)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """Plain JSON-ready values (NaN as None)."""
        return {
            "format": _FORMAT, "version": 1, "measures": list(self.measures), "layers_a": self.layers_a,
            "layers_b": self.layers_b, "values": {m: _jsonable(self.values[m]) for m in self.measures},
            "n_samples": int(self.n_samples), "subset": _jsonable(self.subset), "info": _jsonable(self.info),
        }

    def to_json(self, path: Union[str, os.PathLike, None] = None, *, indent: Optional[int] = 1) -> str:
        """The comparison as JSON (NaN written as null); also written to ``path`` when given.

        Round-trips with :meth:`from_json` (the ``info`` values come back as JSON types: lists for
        tuples, None for non-finite numbers)."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, source: Union[str, os.PathLike]) -> "Comparison":
        """Read :meth:`to_json` output: a JSON string or the path of a file holding one."""
        if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            source = Path(source).read_text()
        d = json.loads(source)
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"not a serialised Comparison (expected a JSON object with format={_FORMAT!r})")
        values = {m: np.array([[np.nan if v is None else v for v in row] for row in d["values"][m]],
                              dtype=np.float64).reshape(len(d["layers_a"]), len(d["layers_b"]))
                  for m in d["measures"]}
        return cls(measures=tuple(d["measures"]), layers_a=d["layers_a"], layers_b=d["layers_b"], values=values,
                   n_samples=int(d["n_samples"]), subset={k: int(v) for k, v in d.get("subset", {}).items()},
                   info=d.get("info", {}))

    def to_dataframe(self, measure: Optional[str] = None) -> Any:
        """Long-format ``pandas.DataFrame`` with columns layer_a, layer_b, measure, value (one row
        per layer pair and measure; only ``measure`` when given)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Comparison.to_dataframe needs pandas (pip install pandas); to_json() and table() "
                              "work without it") from None
        rows = [(a, b, m, float(self.values[m][i, j])) for m in self._pick(measure)
                for i, a in enumerate(self.layers_a) for j, b in enumerate(self.layers_b)]
        return pd.DataFrame(rows, columns=["layer_a", "layer_b", "measure", "value"])

    def table(self, measure: Optional[str] = None, *, digits: int = 4) -> str:
        """Plain-text matrices (rows: layers of A, columns: layers of B), one per measure."""
        blocks = []
        for m in self._pick(measure):
            v = self.values[m]
            cells = [["" if not math.isfinite(x) else f"{x:.{digits}f}" for x in row] for row in v]
            cells = [[c if c else "nan" for c in row] for row in cells]
            head = f"{m}" + (f"  (reservoir subset of {self.subset[m]} samples)" if m in self.subset else "")
            w0 = max([len("A \\ B")] + [len(a) for a in self.layers_a])
            widths = [max(len(b), *(len(row[j]) for row in cells)) if cells else len(b)
                      for j, b in enumerate(self.layers_b)]
            lines = [head, "  ".join(["A \\ B".ljust(w0)] + [b.rjust(w) for b, w in zip(self.layers_b, widths)])]
            for a, row in zip(self.layers_a, cells):
                lines.append("  ".join([a.ljust(w0)] + [c.rjust(w) for c, w in zip(row, widths)]))
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def plot(self, path: Union[str, os.PathLike], measure: Optional[str] = None, *, annotate: bool = True,
             dpi: int = 100) -> str:
        """Heatmaps (one panel per measure; layer_a on the y axis, layer_b on the x axis) saved as a
        PNG. Uses matplotlib's Agg canvas directly (no pyplot, no change of the global backend).

        Returns
        -------
        str
            ``path``.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("Comparison.plot needs matplotlib (pip install matplotlib)") from None
        names = self._pick(measure)
        na, nb = len(self.layers_a), len(self.layers_b)
        w = max(3.5, 0.55 * nb + 2.5)
        h = max(3.0, 0.45 * na + 1.8)
        fig = Figure(figsize=(w * len(names), h))
        FigureCanvasAgg(fig)
        for k, m in enumerate(names):
            ax = fig.add_subplot(1, len(names), k + 1)
            v = self.values[m]
            finite = v[np.isfinite(v)]
            lo = min(0.0, float(finite.min())) if finite.size else 0.0
            hi = max(1.0, float(finite.max())) if finite.size else 1.0
            im = ax.imshow(np.ma.masked_invalid(v), vmin=lo, vmax=hi, cmap="viridis", aspect="auto",
                           interpolation="nearest")
            ax.set_xticks(range(nb))
            ax.set_xticklabels(self.layers_b, rotation=60, ha="right", fontsize=8)
            ax.set_yticks(range(na))
            ax.set_yticklabels(self.layers_a, fontsize=8)
            ax.set_xlabel(self.info.get("label_b", "model B"))
            ax.set_ylabel(self.info.get("label_a", "model A"))
            title = m + (f" (n={self.subset[m]} subset)" if m in self.subset else "")
            ax.set_title(title, fontsize=10)
            if annotate and na * nb <= 400:
                for i in range(na):
                    for j in range(nb):
                        x = v[i, j]
                        text = "nan" if not math.isfinite(x) else f"{x:.2f}"
                        shade = (x - lo) / (hi - lo) if math.isfinite(x) and hi > lo else 0.0
                        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                                color="black" if shade > 0.6 else "white")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        fig.savefig(os.fspath(path), format="png", dpi=dpi)
        return os.fspath(path)

    def __repr__(self) -> str:
        sub = f", subset={self.subset}" if self.subset else ""
        return (f"Comparison(measures={list(self.measures)}, {len(self.layers_a)} x {len(self.layers_b)} layers, "
                f"n_samples={self.n_samples}{sub})")


# ------------------------------------------------------------------------------ array helpers


def _is_torch(x: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _cuda_device(x: Any) -> Optional[Any]:
    """The torch device of a CUDA (non-CPU) tensor, else None."""
    if _is_torch(x) and x.device.type != "cpu":
        return x.device
    return None


def _host_view(x: Any) -> np.ndarray:
    """A host numpy view (or copy for bfloat16 / memmap slices) of a 2-D batch."""
    if _is_torch(x):
        import torch

        t = x.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        if not t.is_floating_point():
            raise TypeError(f"activations must be floating point; got {t.dtype}")
        return t.resolve_conj().resolve_neg().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind != "f" and arr.dtype.name != "bfloat16":
        raise TypeError(f"activations must be floating point; got dtype {arr.dtype}")
    if arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float32)
    return arr


def _tensors(batch: Any) -> list:
    """The torch tensors in a (nested) batch."""
    if _is_torch(batch):
        return [batch]
    if isinstance(batch, Mapping):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, (list, tuple)):
        return [t for v in batch for t in _tensors(v)]
    return []


def _host_copy(x: Any) -> np.ndarray:
    """A host numpy copy of a CUDA tensor batch (bfloat16 as float32)."""
    import torch

    t = x.detach()
    t = t.float() if t.dtype == torch.bfloat16 else t
    return t.cpu().numpy()


def _all_finite(x: Any) -> bool:
    if _is_torch(x):
        import torch

        return bool(torch.isfinite(x.detach()).all())
    return bool(np.isfinite(_host_view(x)).all())


def _storage_dtype(x: Any) -> np.dtype:
    """Reservoir dtype: float64 for float64 activations, else float32 (lossless for every float
    format up to 32 bits)."""
    dt = x.dtype
    name = str(dt).replace("torch.", "")
    return np.dtype(np.float64) if name == "float64" else np.dtype(np.float32)


class _Reservoir:
    """Uniform reservoir sample of rows (Algorithm R), the same indices for every layer.

    Sample t (0-based, counted over all batches) fills slot t while t < R; afterwards it replaces
    slot j = ⌊u_t·(t + 1)⌋ when j < R, with u_t uniform in [0, 1) from a counter-based stream
    (block t // 65536 of ``default_rng([seed, block])``), so the outcome depends only on the seed and
    the sample order, not on the batch sizes.
    """

    def __init__(self, capacity: int, seed: int, widths: dict, dtypes: dict) -> None:
        self.capacity = capacity
        self.seed = seed
        self.widths, self.dtypes = widths, dtypes
        self.filled = 0
        self.index = np.zeros(0, dtype=np.int64)
        self.rows = {k: np.zeros((0, p), dtype=dtypes[k]) for k, p in widths.items()}
        self._block_id = -1
        self._block = None
        #: Keep-all mode (compare's Gram path, every sample kept): the batches' own host arrays
        #: are kept as chunks instead of being copied into preallocated rows (they are compare's
        #: own: fresh layer outputs, or clones of outputs a later in-place op changes).
        self.chunks: Optional[dict] = None

    def keep_all(self) -> None:
        self.chunks = {k: [] for k in self.widths}
        self._held: set = set()  # storages of the kept chunks and of the current batch's inputs
        self._versions: list = []  # (tensor, version at adoption): in-place changes are detected

    def protect(self, tensors: Sequence[Any]) -> None:
        """Storages a kept chunk must not alias (the model's inputs of the current batch): a layer
        whose output is a view of them is copied, as is one aliasing another kept chunk."""
        if self.chunks is not None:
            self._inputs = {t.untyped_storage().data_ptr() for t in tensors}

    def _adopt(self, x: Any) -> np.ndarray:
        if _cuda_device(x) is not None:
            return _host_copy(x)
        if not _is_torch(x):
            return np.array(_host_view(x))
        ptr = x.untyped_storage().data_ptr()
        if ptr in self._held or ptr in getattr(self, "_inputs", ()):
            self.check_unchanged()  # a kept chunk rewritten by this batch: its samples are gone
            x = x.clone()
            ptr = x.untyped_storage().data_ptr()
        self._held.add(ptr)
        self._versions.append((x, x._version))
        h = _host_view(x)
        if h.dtype not in (np.float32, np.float64):  # float16: products in float32, like the reservoir
            h = h.astype(np.float32)
        return h

    def check_unchanged(self) -> None:
        """Raise if a kept chunk was changed in place after it was kept (a model reusing its
        output buffers across batches)."""
        if self.chunks is not None and any(t._version != v for t, v in self._versions):
            raise RuntimeError("compare: a layer output kept for the sample-space (Gram) route was changed in place "
                               "by a later batch (the model reuses its output buffers across calls), so those samples "
                               "are lost; pass route='features', which consumes every batch before the next one")

    def _draws(self, t: np.ndarray) -> np.ndarray:
        out = np.empty(t.shape[0])
        blocks = t // _DRAW_BLOCK
        for b in np.unique(blocks):
            if b != self._block_id:
                self._block = np.random.default_rng([self.seed, int(b)]).random(_DRAW_BLOCK)
                self._block_id = int(b)
            sel = blocks == b
            out[sel] = self._block[t[sel] % _DRAW_BLOCK]
        return out

    def _grow(self, need: int, exact: bool = False) -> None:
        have = self.index.shape[0]
        if need <= have:
            return
        new = need if exact else min(self.capacity, max(need, 2 * have))
        self.index = np.concatenate([self.index, np.zeros(new - have, dtype=np.int64)])
        for k in self.rows:
            r = self.rows[k]
            grown = np.empty((new, r.shape[1]), dtype=r.dtype)
            grown[:have] = r
            self.rows[k] = grown

    def reserve(self, rows: int) -> None:
        """Allocate room for ``rows`` samples at once (the known sample count of the Gram path):
        growing by doubling would copy the reservoir and, while copying, hold it 1.5 times."""
        self._grow(min(self.capacity, rows), exact=True)

    def plan(self, start: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows of the batch to store, their slots) for samples start … start + b − 1."""
        t = np.arange(start, start + b, dtype=np.int64)
        R = self.capacity
        slots = np.full(b, -1, dtype=np.int64)
        fill = t < R
        slots[fill] = t[fill]
        late = ~fill
        if late.any():
            j = np.floor(self._draws(t[late]) * (t[late] + 1).astype(np.float64)).astype(np.int64)
            j[j > t[late]] = t[late][j > t[late]]  # guard against rounding up at u ≈ 1
            slots[late] = np.where(j < R, j, -1)
        rows = np.nonzero(slots >= 0)[0]
        slots = slots[rows]
        if rows.size:  # a slot hit twice within the batch keeps its last sample (sequential order)
            rev_slots = slots[::-1]
            _, first_in_rev = np.unique(rev_slots, return_index=True)
            keep = np.sort(rows.size - 1 - first_in_rev)
            rows, slots = rows[keep], slots[keep]
        return rows, slots

    def update(self, start: int, batch: dict) -> None:
        b = next(iter(batch.values())).shape[0]
        if self.chunks is not None:
            if start + b > self.capacity:
                raise RuntimeError("keep-all reservoir overflow")  # the streamer moves on before this
            for k, x in batch.items():
                self.chunks[k].append(self._adopt(x))
            self.filled = start + b
            return
        rows, slots = self.plan(start, b)
        if rows.size == 0:
            return
        self._grow(min(self.capacity, start + b))
        self.filled = min(self.capacity, start + b)
        self.index[slots] = start + rows
        for k, x in batch.items():
            if _cuda_device(x) is not None:  # the bounded subset is copied to the host on purpose
                import torch

                vals = _host_copy(x[torch.as_tensor(rows, device=x.device)])
            else:
                vals = _host_view(x)
                if rows.size == vals.shape[0] and (rows.size == 1 or bool(np.all(np.diff(slots) == 1))):
                    self.rows[k][slots[0]:slots[-1] + 1] = vals  # the filling phase: one block copy
                    continue
                vals = vals[rows]
            self.rows[k][slots] = vals

    def arrays(self, concatenate: bool = True) -> tuple[np.ndarray, dict]:
        """(sorted sample indices, {key: rows in that order}); in keep-all mode with
        ``concatenate=False`` the rows are lists of chunks (no copy)."""
        if self.chunks is not None:
            idx = np.arange(self.filled, dtype=np.int64)
            if not concatenate:
                return idx, {k: list(c) for k, c in self.chunks.items()}
            return idx, {k: (np.concatenate(c) if c else np.zeros((0, self.widths[k]), self.dtypes[k]))
                         for k, c in self.chunks.items()}
        idx = self.index[:self.filled]
        if np.array_equal(idx, np.arange(idx.size)):  # every sample so far, in order: views, no copy
            return idx.copy(), {k: r[:self.filled] for k, r in self.rows.items()}
        order = np.argsort(idx, kind="stable")
        return idx[order], {k: r[:self.filled][order] for k, r in self.rows.items()}

    def bytes_for(self, rows: int) -> int:
        return int(sum(rows * p * self.dtypes[k].itemsize for k, p in self.widths.items()))


class _Streamer:
    """One pass: per-layer states, per-pair cross blocks and the reservoir (module docstring).

    Parameters
    ----------
    keys_a, keys_b : list of hashable
        Layer keys (rows, columns of the result). A key in both lists is one layer (one model
        against itself): its state is shared.
    labels : dict key -> str
        For messages ("layer 'fc1' of model_a").
    """

    def __init__(self, keys_a: list, keys_b: list, labels: dict, measures: tuple, options: dict, *, reservoir: int,
                 seed: int, memory_limit: Any, n_total: Optional[int] = None, num_threads: int = 1,
                 route: str = "auto", n_estimate: Optional[int] = None, owned: bool = False) -> None:
        self.keys_a, self.keys_b = keys_a, keys_b
        self.keys = list(dict.fromkeys(list(keys_a) + list(keys_b)))
        self.pos = {k: i for i, k in enumerate(self.keys)}
        self.labels = labels
        self.measures, self.options = measures, options
        self.feature = [m for m in measures if REGISTRY[m].info.streamable]
        self.sample = [m for m in measures if not REGISTRY[m].info.streamable]
        unknown = [m for m in self.feature if m not in FEATURE_MEASURES]
        if unknown:  # a streamable measure compare does not know how to feed: treat it as sample-space
            self.sample += unknown
            self.feature = [m for m in self.feature if m in FEATURE_MEASURES]
        self.hsic = "debiased_cka" in self.feature
        self.capacity = self.user_capacity = reservoir
        self.seed = seed
        self.budget = resolve_memory_limit(memory_limit)
        self.n_total = n_total
        self.n = 0
        self.n_batches = 0
        self.route: Optional[str] = None
        self.widths: dict = {}
        self.pairs = []  # canonical distinct pairs (k, l), pos[k] < pos[l]
        seen = set()
        for ka in keys_a:
            for kb in keys_b:
                if ka != kb:
                    pair = (ka, kb) if self.pos[ka] < self.pos[kb] else (kb, ka)
                    if pair not in seen:
                        seen.add(pair)
                        self.pairs.append(pair)
        self.chunk_rows = CHUNK_ROWS
        self.memory: dict = {}
        self.device = None  # torch device of the state for CUDA activations; None on the host
        self.res: Optional[_Reservoir] = None
        self.num_threads = num_threads
        self._panel: Optional[np.ndarray] = None
        self.requested_route = route
        self.owned = owned  # the batches are compare's own arrays (model outputs), not the caller's
        self.n_estimate = n_total if n_total is not None else n_estimate
        self.route_reason = ""

    # ------------------------------------------------------------------ planning
    def _plan(self, batch: dict) -> None:
        self.widths = {k: int(batch[k].shape[1]) for k in self.keys}
        dtypes = {k: _storage_dtype(batch[k]) for k in self.keys}
        devices = {k: _cuda_device(batch[k]) for k in self.keys}
        distinct = {str(d) for d in devices.values()}
        if len(distinct) > 1:
            where = {self.labels[k]: str(d or "cpu") for k, d in devices.items()}
            raise ValueError(f"activations are on different devices ({where}); compare needs every layer on one device "
                             "(move the models; congruence never copies between devices silently)")
        self.device = next(iter(devices.values()))
        W = self.widths
        sum_p = sum(W.values())
        layer_b = sum(W[k] ** 2 + 2 * W[k] + (W[k] + 2 if self.hsic else 0) for k in self.keys)
        pair_b = sum(W[k] * W[l] + (W[k] + W[l] + 1 if self.hsic else 0) for k, l in self.pairs)
        # Finishing one pair: its CrossStats copy of the three blocks, the centred co-moments and the
        # measures' own dense work (eigh / svd): about four copies of the pair's blocks.
        finish_b = max((4 * (W[ka] + W[kb]) ** 2 for ka in self.keys_a for kb in self.keys_b), default=0)
        res_rows = self.capacity if self.n_total is None else min(self.capacity, self.n_total)
        self.res = _Reservoir(self.capacity, self.seed, W, dtypes)
        reservoir_bytes = self.res.bytes_for(res_rows)
        # Rows per chunk: CHUNK_ROWS, fewer when the budget left after the state is tight (float64
        # copies of one chunk of every layer plus the per-sample norms).
        rows = CHUNK_ROWS if self.n_total is None else max(1, min(CHUNK_ROWS, self.n_total))
        # Products run in the activations' precision (float32 unless a layer is float64), the sums
        # in float64: the policy of CrossStats (METHODS §1.2).
        self.panel_dtype = np.dtype(np.float64) if any(d == np.float64 for d in dtypes.values()) else \
            np.dtype(np.float32)
        item = self.panel_dtype.itemsize
        left = self.budget - 8 * (layer_b + pair_b + finish_b) - (reservoir_bytes if self.sample else 0)
        self.chunk_rows = max(1, min(rows, left // (2 * item * sum_p))) if left > 0 else 1
        # Rows staged in the shifted panel before each engine call: one chunk, or up to 4096 (the
        # engine's float32 run) while the panel stays under an eighth of the state it saves passes
        # over (wide layers; narrow ones flush every chunk and keep the memory small).
        state_b = 8 * (layer_b + pair_b)
        self.stage_rows = int(max(self.chunk_rows, min(4096, state_b // (8 * item * max(sum_p, 1)))))
        if left > 0:
            self.stage_rows = int(min(self.stage_rows, max(self.chunk_rows, left // (2 * item * sum_p))))
        # the shifted panel (host), or float64 copies of one chunk (CUDA state)
        chunk_b = (self.stage_rows * sum_p * item) // 8 if self.device is None else 2 * self.chunk_rows * sum_p
        feature_bytes = 8 * (layer_b + pair_b + finish_b + chunk_b) if self.feature else 0
        self.memory = {"memory_limit": int(self.budget), "feature_state_bytes": int(feature_bytes),
                       "reservoir_bytes": int(reservoir_bytes if self.sample else 0),
                       "per_layer_gram_entries": int(sum(W[k] ** 2 for k in self.keys)),
                       "per_pair_cross_entries": int(sum(W[k] * W[l] for k, l in self.pairs))}
        self.memory["planned_feature_state_bytes"] = int(feature_bytes)
        need = feature_bytes + (reservoir_bytes if self.sample else 0)
        widths = ", ".join(f"{self.labels[k]}: {W[k]}" for k in self.keys)
        if self.requested_route != "features" and self._prefer_samples(feature_bytes):
            return
        if need <= self.budget:
            self.route = "streamed"
            self.route_reason = self.route_reason or "the feature-space state fits"
            if not self.sample:
                self.res = None
            self._allocate()
            return
        if self.requested_route == "features":
            raise MemoryBudgetError(
                f"compare(route='features'): the streamed feature-space state for {self.feature} needs "
                f"{format_bytes(need)} but memory_limit is {format_bytes(self.budget)}; widths: {widths}. Use "
                "route='auto' or 'samples' (the Gram path on every sample), fewer or narrower layers, or a larger "
                "memory_limit")
        if not self.feature:
            raise MemoryBudgetError(
                f"compare: the reservoir for the sample-space measures {self.sample} ({res_rows} rows of {sum_p} "
                f"features in all) needs {format_bytes(reservoir_bytes)} but memory_limit is "
                f"{format_bytes(self.budget)}. Lower reservoir=, compare fewer or narrower layers (spatial='mean'), "
                f"or raise memory_limit. Widths: {widths}")
        # The feature-space state does not fit: fall back to the sample (Gram) path on the reservoir,
        # exact only if the reservoir holds every sample.
        fallback = (f"compare: the streamed feature-space state for {self.feature} needs "
                    f"{format_bytes(feature_bytes)} (per-layer Grams: {self.memory['per_layer_gram_entries']} "
                    f"float64 entries; per-pair cross Grams: {self.memory['per_pair_cross_entries']}) but "
                    f"memory_limit is {format_bytes(self.budget)}; widths: {widths}. ")
        if self.n_total is not None and self.n_total > self.capacity:
            raise MemoryBudgetError(
                fallback + f"The sample path would need all {self.n_total} samples in the reservoir, but "
                f"reservoir={self.capacity}. Use spatial='mean', fewer or narrower layers, reservoir >= n_samples, "
                "or a larger memory_limit")
        if reservoir_bytes > self.budget:
            raise MemoryBudgetError(
                fallback + f"The sample path on the reservoir ({res_rows} rows) would need "
                f"{format_bytes(reservoir_bytes)}, also beyond memory_limit. Use spatial='mean', fewer or narrower "
                "layers, or a larger memory_limit")
        self.route = "reservoir"
        self.route_reason = "the feature-space state does not fit in memory_limit"
        self._fallback_message = fallback
        self.memory["feature_state_bytes"] = 0
        self.memory["reservoir_bytes"] = int(reservoir_bytes)

    def _flops(self) -> tuple[float, float]:
        """(feature-space, sample-space) multiply-adds of linear CKA for the planned sample count:
        Σ_k n·p_k²/2 + Σ_pairs n·p_k·p_l against Σ_k n²·p_k/2 + L²·n²/2 (per-layer n×n Grams by
        upper row blocks, then their Frobenius products)."""
        W, n = self.widths, float(self.n_estimate or 0)
        feature = sum(n * W[k] ** 2 / 2 for k in self.keys) + sum(n * W[k] * W[l] for k, l in self.pairs)
        sample = sum(n * n * W[k] / 2 for k in self.keys) + len(self.keys) ** 2 * n * n / 2
        return feature, sample

    def _sample_route_bytes(self, rows: int) -> int:
        """Every sample of every layer (the reservoir) plus the row blocks of the Gram path."""
        assert self.res is not None
        L = len(self.keys)
        block = self._gram_block_rows(rows)
        return self.res.bytes_for(rows) + 8 * L * block * rows + 4 * block * rows

    def _gram_block_rows(self, n: int) -> int:
        """Rows per block of the Gram path: about n/8 (only upper blocks are formed, so smaller
        blocks skip more of the lower triangle: (1 + 1/b)/2 of the full work for b blocks), at
        most 512 and ≤ 2²⁵ block entries (256 MiB) over all layers, at least 64."""
        return int(max(64, min(512, -(-n // 8), (1 << 25) // max(1, len(self.keys) * n))))

    def _reserve(self, n: int) -> None:
        """Room for n samples: keep the batches themselves when the Gram path of linear CKA is
        the only consumer and they are compare's own arrays, else preallocate the rows."""
        assert self.res is not None
        if self.owned and not self.sample and self.feature == ["linear_cka"] and not self.options.get("linear_cka"):
            self.res.keep_all()
        else:
            self.res.reserve(n)

    def _prefer_samples(self, feature_bytes: int) -> bool:
        """route='samples', or 'auto' when the sample (Gram) path is exact here (the reservoir can
        hold every sample), fits, and needs under half the multiply-adds of the feature path; the
        sample count is the known or estimated one (len(data) x the first batch)."""
        assert self.res is not None
        n = self.n_estimate
        explicit = self.requested_route == "samples"
        lin_only = set(self.feature) <= {"linear_cka"}
        if not explicit and (n is None or not self.feature or not lin_only):
            return False
        if explicit:
            if n is not None and n > self.capacity and not self.sample:
                self.capacity = n  # the Gram path needs every sample; nothing else uses the reservoir
            self.res.capacity = self.capacity
            if n is not None:
                self._reserve(n)
            need = self._sample_route_bytes(min(self.capacity, n) if n is not None else self.capacity)
            if need > self.budget:
                raise MemoryBudgetError(
                    f"compare(route='samples'): every sample of every layer ({n if n is not None else self.capacity} "
                    f"rows of {sum(self.widths.values())} features) needs {format_bytes(need)} but memory_limit is "
                    f"{format_bytes(self.budget)}")
            self.route_reason = "route='samples' was asked for"
        else:
            capacity = self.capacity if self.sample else max(self.capacity, n)
            if n > capacity:
                return False
            need = self._sample_route_bytes(n)
            feature, sample = self._flops()
            if need > self.budget or sample >= 0.5 * feature:
                return False
            self.capacity = self.res.capacity = capacity
            self._reserve(n)
            self.route_reason = (f"auto: the sample (Gram) path needs {sample:.3g} multiply-adds against "
                                 f"{feature:.3g} for the feature path, and every sample fits in memory_limit")
        self.route = "reservoir"
        self._fallback_message = "compare: " + self.route_reason + ". "
        self.memory["feature_state_bytes"] = 0
        self.memory["reservoir_bytes"] = int(self._sample_route_bytes(min(self.capacity, n or self.capacity)))
        return True

    def _to_features(self) -> None:
        """Leave the auto-chosen sample path: replay the samples seen so far (all of them are in the
        reservoir, in order) into the feature-space state, then stream on."""
        self.route = "streamed"
        self.route_reason = ("auto: the data had more samples than estimated, so the pass moved to the feature-space "
                             f"state after {self.n} samples (replayed from the reservoir)")
        self.memory["feature_state_bytes"] = self.memory.get("planned_feature_state_bytes", 0)
        self._allocate()
        _, rows = self.res.arrays()
        for r0 in range(0, self.n, CHUNK_ROWS):
            self._accumulate({k: r[r0:r0 + CHUNK_ROWS] for k, r in rows.items()}, min(CHUNK_ROWS, self.n - r0))
        if self.sample:
            self.capacity = self.res.capacity = self.user_capacity
        else:
            self.res = None

    def _zeros(self, *shape: int) -> Any:
        if self.device is None:
            return np.zeros(shape)
        import torch

        return torch.zeros(shape, dtype=torch.float64, device=self.device)

    def _allocate(self) -> None:
        self.shift: dict = {}
        self.a = {k: None for k in self.keys}
        self.G = {}
        self.Gp = {}
        if not self.feature:
            return
        W = self.widths
        for k in self.keys:
            self.a[k] = self._zeros(W[k])
            self.G[k] = self._zeros(W[k], W[k])
        # Per layer k, its partners l (pos[k] < pos[l]) share one rectangle when their columns are
        # contiguous in the panel (two models: every A layer against all B layers; one model: every
        # layer against the later ones), so one product serves them all; other pairs get their own.
        self.offset, off = {}, 0
        for k in self.keys:
            self.offset[k] = off
            off += W[k]
        self.rect: dict = {}
        partners: dict = {k: [] for k in self.keys}
        for k, l in self.pairs:
            partners[k].append(l)
        for k, ls in partners.items():
            cols = [self.offset[l] for l in ls]
            contiguous = bool(ls) and all(cols[i + 1] == cols[i] + W[ls[i]] for i in range(len(ls) - 1))
            if contiguous and self.device is None:
                R = self._zeros(W[k], sum(W[l] for l in ls))
                self.rect[k] = (cols[0], R)
                for l in ls:
                    c = self.offset[l] - cols[0]
                    self.Gp[(k, l)] = R[:, c:c + W[l]]
            else:
                for l in ls:
                    self.Gp[(k, l)] = self._zeros(W[k], W[l])
        self.sealed = False
        if self.hsic:
            self.s_alpha = {k: 0.0 for k in self.keys}
            self.s_alpha2 = {k: 0.0 for k in self.keys}
            self.alpha_u = {k: self._zeros(W[k]) for k in self.keys}
            self.s_cross = {pr: 0.0 for pr in self.pairs}
            self.w_kl = {pr: self._zeros(W[pr[0]]) for pr in self.pairs}  # Σ‖u_l‖² u_k
            self.w_lk = {pr: self._zeros(W[pr[1]]) for pr in self.pairs}  # Σ‖u_k‖² u_l

    # ------------------------------------------------------------------ accumulation
    def _f64(self, x: Any) -> Any:
        if self.device is not None:
            import torch

            return x.detach().to(torch.float64)
        return np.asarray(_host_view(x), dtype=np.float64)

    def _finite(self, u: Any) -> bool:
        if self.device is not None:
            import torch

            return bool(torch.isfinite(u).all())
        return bool(np.isfinite(u).all())

    def _nonfinite(self, k: Any) -> ValueError:
        return ValueError(f"the activations of {self.labels[k]} contain NaN or Inf values (batch {self.n_batches}, "
                          f"samples {self.n} onwards)")

    def update(self, batch: dict, inputs: Sequence[Any] = ()) -> None:
        """Add one batch (layer -> (b, p_k)); ``inputs``: the model inputs of the batch, which a
        kept layer output must not alias (the Gram route centres its kept samples in place)."""
        missing = [self.labels[k] for k in self.keys if k not in batch]
        if missing:
            raise ValueError(f"no activations for {missing}")
        for k in self.keys:
            x = batch[k]
            if len(x.shape) != 2:
                raise ValueError(f"the activations of {self.labels[k]} must be 2-D (n_samples, n_features); got shape "
                                 f"{tuple(x.shape)}")
        rows = {k: int(batch[k].shape[0]) for k in self.keys}
        if len(set(rows.values())) > 1:
            counts = ", ".join(f"{self.labels[k]}: {r}" for k, r in rows.items())
            raise ValueError(f"the layers give different numbers of samples (rows) for the same batch ({counts}); "
                             "compared activations must be aligned row by row. With spatial='positions' the rows are "
                             "image positions, so layers of different spatial sizes cannot be paired (use 'flatten' "
                             "or 'mean')")
        b = next(iter(rows.values()))
        if b == 0:
            return
        if self.route is None:
            for k in self.keys:
                if int(batch[k].shape[1]) == 0:
                    raise ValueError(f"the activations of {self.labels[k]} have no features (shape "
                                     f"{tuple(batch[k].shape)})")
            self._plan(batch)
        for k in self.keys:
            if int(batch[k].shape[1]) != self.widths[k]:
                raise ValueError(f"{self.labels[k]} has {int(batch[k].shape[1])} features in this batch but "
                                 f"{self.widths[k]} in the first one")
        if self.route == "reservoir" and self.n + b > self.capacity and self.route_reason.startswith("auto"):
            self._to_features()  # more samples than len(data) promised: replay them into the feature state
        if self.route == "reservoir" and self.n + b > self.capacity:
            raise MemoryBudgetError(
                self._fallback_message + f"The sample path needs every sample in the reservoir, but the data have "
                f"more than reservoir={self.capacity} samples. Use spatial='mean', fewer or narrower layers, a larger "
                "reservoir, or a larger memory_limit")
        if self.route == "streamed" and self.feature:
            self._accumulate(batch, b)
        elif self.res is None or self.res.chunks is None:  # keep-all: checked once, by the means
            for k in self.keys:
                if not _all_finite(batch[k]):
                    raise self._nonfinite(k)
        if self.res is not None:
            self.res.protect(inputs)
            self.res.update(self.n, batch)
        self.n += b
        self.n_batches += 1

    def _accumulate(self, batch: dict, b: int) -> None:
        if self.device is None:
            self._accumulate_host(batch, b)
        else:
            self._accumulate_device(batch, b)

    def _accumulate_host(self, batch: dict, b: int) -> None:
        """Host path: rows are shifted into one panel of every layer (the products' precision)
        and staged there until ``stage_rows`` are in; then the engine adds the per-layer Grams
        (symmetric updates) and each layer's cross rectangle (one product) into the float64
        state (float32 products over ≤ 4096 samples). Staging matters for wide layers: each flush
        reads and writes the whole state once (8.6 GB at P6B), so flushing 4096 rows instead of
        every 1000-row batch cuts that traffic fourfold."""
        if not self.shift:
            for k in self.keys:
                head = np.asarray(_host_view(batch[k][:CHUNK_ROWS]), dtype=np.float64)
                if not np.isfinite(head).all():
                    raise self._nonfinite(k)
                self.shift[k] = head.mean(0)
        width = sum(self.widths.values())
        if self._panel is None:
            self._panel = np.empty((self.stage_rows, width), self.panel_dtype)
            self._fill = 0
        step = self.stage_rows
        for r0 in range(0, b, step):
            rows = min(step, b - r0)
            if self._fill + rows > self.stage_rows:
                self._flush()
            U = self._panel[self._fill:self._fill + rows]
            u: dict = {}
            for k in self.keys:
                o = self.offset[k]
                uk = U[:, o:o + self.widths[k]]
                np.subtract(_host_view(batch[k][r0:r0 + rows]), self.shift[k], out=uk, casting="unsafe")
                col = uk.sum(0, dtype=np.float64)
                if not np.isfinite(col).all():  # a NaN or Inf anywhere in the chunk makes its column sum so
                    raise self._nonfinite(k)
                self.a[k] += col
                u[k] = uk
            self._fill += rows
            if self.hsic:
                alpha = {}
                for k in self.keys:
                    al = np.einsum("ij,ij->i", u[k], u[k], dtype=np.float64)
                    alpha[k] = al
                    self.s_alpha[k] += float(al.sum())
                    self.s_alpha2[k] += float(al @ al)
                    self.alpha_u[k] += al @ u[k]
                for pr in self.pairs:
                    k, l = pr
                    self.s_cross[pr] += float(alpha[k] @ alpha[l])
                    self.w_kl[pr] += alpha[l] @ u[k]
                    self.w_lk[pr] += alpha[k] @ u[l]

    def _flush(self) -> None:
        """Add the staged rows' Grams into the state (one engine call for all of them)."""
        from . import _engine as E
        from ._resources import blas_threads

        if self.device is not None or not getattr(self, "_fill", 0):
            return
        U = self._panel[:self._fill]
        u = {k: U[:, self.offset[k]:self.offset[k] + self.widths[k]] for k in self.keys}
        jobs = [(u[k], None, self.G[k]) for k in self.keys]
        for k, (c0, R) in self.rect.items():
            jobs.append((u[k], U[:, c0:c0 + R.shape[1]], R))
        jobs += [(u[k], u[l], g) for (k, l), g in self.Gp.items() if k not in self.rect]
        with blas_threads(1):
            E.accumulate_grams(jobs, self.num_threads)
        self._fill = 0

    def _seal(self) -> None:
        """Add the staged rows, then mirror the per-layer Grams (the host path updates their
        upper triangles), once."""
        if self.device is not None or self.sealed or not self.G:
            return
        self._flush()
        for g in self.G.values():
            p = g.shape[0]
            for r0 in range(0, p, 256):  # by blocks of rows: no p²-sized index arrays
                r1 = min(p, r0 + 256)
                g[r0:r1, :r0] = g[:r0, r0:r1].T
                blk = g[r0:r1, r0:r1]
                lower = np.tril_indices(r1 - r0, -1)
                blk[lower] = blk.T[lower]
        self.sealed = True

    def _accumulate_device(self, batch: dict, b: int) -> None:
        if not self.shift:
            for k in self.keys:
                head = self._f64(batch[k][:CHUNK_ROWS])
                if not self._finite(head):
                    raise self._nonfinite(k)
                self.shift[k] = head.mean(0)
        step = self.chunk_rows
        for r0 in range(0, b, step):
            u, alpha = {}, {}
            for k in self.keys:
                v = self._f64(batch[k][r0:r0 + step]) - self.shift[k]
                if not self._finite(v):
                    raise self._nonfinite(k)
                u[k] = v
                self.a[k] += v.sum(0)
                self.G[k] += v.T @ v
                if self.hsic:
                    al = (v * v).sum(1)
                    alpha[k] = al
                    self.s_alpha[k] += float(al.sum())
                    self.s_alpha2[k] += float((al * al).sum())
                    self.alpha_u[k] += al @ v
            for pr in self.pairs:
                k, l = pr
                self.Gp[pr] += u[k].T @ u[l]
                if self.hsic:
                    self.s_cross[pr] += float(alpha[k] @ alpha[l])
                    self.w_kl[pr] += alpha[l] @ u[k]
                    self.w_lk[pr] += alpha[k] @ u[l]

    # ------------------------------------------------------------------ results
    @staticmethod
    def _np(a: Any) -> np.ndarray:
        if _is_torch(a):
            return a.detach().cpu().numpy().astype(np.float64)
        return np.asarray(a, dtype=np.float64)

    def _precision(self) -> str:
        """The CrossStats precision of the streamed products (float64 for float64 activations and
        on the CUDA path, which accumulates float64 copies)."""
        if self.device is not None:
            return "float64"
        return str(getattr(self, "panel_dtype", np.dtype(np.float64)))

    def _pair_sums(self, kx: Any, ky: Any) -> tuple:
        """Σα_xα_y, Σβ_i u_i (p) and Σα_i v_i (q) of the pair (METHODS §2.2), in the pair's orientation."""
        h = self._np
        if kx == ky:
            return self.s_alpha2[kx], h(self.alpha_u[kx]), h(self.alpha_u[kx])
        if (kx, ky) in self.s_cross:
            pr = (kx, ky)
            return self.s_cross[pr], h(self.w_kl[pr]), h(self.w_lk[pr])
        pr = (ky, kx)
        return self.s_cross[pr], h(self.w_lk[pr]), h(self.w_kl[pr])

    def _stats(self, kx: Any, ky: Any) -> Any:
        """CrossStats (or HSICStats) of the pair X = layer kx, Y = layer ky, assembled from the
        shared parts (copies of the three blocks)."""
        h = self._np
        if kx == ky:
            gxy = h(self.G[kx])
        elif (kx, ky) in self.Gp:
            gxy = h(self.Gp[(kx, ky)])
        else:
            gxy = h(self.Gp[(ky, kx)]).T
        state = {"n": self.n, "cross_only": False, "precision": self._precision(), "shift_x": h(self.shift[kx]),
                 "shift_y": h(self.shift[ky]), "sum_x": h(self.a[kx]), "sum_y": h(self.a[ky]),
                 "gram_xx": h(self.G[kx]), "gram_xy": gxy, "gram_yy": h(self.G[ky])}
        cs = CrossStats.from_state_dict(state)
        if not self.hsic:
            return cs
        hs = HSICStats()
        # Fill the extended state (METHODS §2.2) from the shared per-layer / per-pair sums.
        cross, beta_u, alpha_v = self._pair_sums(kx, ky)
        hs._cs = cs
        hs._xp = NUMPY
        hs._sx, hs._sy = state["shift_x"], state["shift_y"]
        hs._scal = np.array([self.s_alpha[kx], self.s_alpha[ky], cross, self.s_alpha2[kx], self.s_alpha2[ky]])
        hs._au, hs._bu = h(self.alpha_u[kx]), beta_u
        hs._bv, hs._av = h(self.alpha_u[ky]), alpha_v
        return hs

    # ------------------------------------------------------------------ fast CKA path
    def _fast_measures(self, streamed: list) -> dict:
        """measure -> f(kx, ky) for the CKA measures finished without a per-pair CrossStats.

        Exact, and the same arithmetic as the measures' ``stats=`` path (cka.linear_cka,
        cka.debiased_cka via Blocks.from_cross_stats / HSICStats._terms), but the per-layer parts
        (the centred co-moment M_kk, its constant mask and ‖M_kk‖²_F; the HSIC₁ self terms) are
        computed once per layer, lazily, and only the cross block is centred per pair. Used only
        without measure_options (a ``path=`` option keeps the generic path and its checks) and for
        enough samples (fewer: the generic path raises its error)."""
        fast: dict = {}
        if "linear_cka" in streamed and not self.options.get("linear_cka") and self.n >= 2:
            fast["linear_cka"] = self._fast_linear_cka
        if "debiased_cka" in streamed and not self.options.get("debiased_cka") and self.n >= 4:
            fast["debiased_cka"] = self._fast_debiased_cka
        self._layer_cache: dict = {}
        self._num_cache: dict = {}
        return fast

    def _cross_gram(self, kx: Any, ky: Any) -> np.ndarray:
        """G_xy (host float64, p_x × p_y; a view where possible)."""
        h = self._np
        if kx == ky:
            return h(self.G[kx])
        if (kx, ky) in self.Gp:
            return h(self.Gp[(kx, ky)])
        return h(self.Gp[(ky, kx)]).T

    def _layer(self, k: Any) -> dict:
        """Per-layer parts, once per layer: constant mask (METHODS §1.3, the rule of
        Blocks.from_cross_stats) and ‖M_kk‖²_F with constant rows / columns zeroed; the centred
        block itself is not kept (one p_k² temporary at a time)."""
        out = self._layer_cache.get(k)
        if out is not None:
            return out
        from .similarity._common import _constant

        h, n = self._np, self.n
        a, g = h(self.a[k]), h(self.G[k])
        m = np.multiply.outer(a, a / n)
        np.subtract(g, m, out=m)  # exactly symmetric from the sealed host Gram
        if self.device is not None:
            m = 0.5 * (m + m.T)
        d = np.maximum(np.diag(m), 0.0)
        const = _constant(d, h(self.shift[k]) + a / n, n)
        m[const, :] = 0.0
        m[:, const] = 0.0
        out = {"a": a, "const": const, "mm": float(np.einsum("ij,ij->", m, m))}
        del m
        if self.hsic:
            c1, c2, norm = 1.0 / ((n - 1) * (n - 2)), 2.0 / (n - 2), 1.0 / (n * (n - 3))
            s_alpha, s_alpha2 = self.s_alpha[k], self.s_alpha2[k]
            g2 = float(np.sum(g * g))
            sk = a @ a - s_alpha
            kk1 = a @ g @ a - 2.0 * (h(self.alpha_u[k]) @ a) + s_alpha2
            out["sk"] = sk
            out["hsic_self"] = float(((g2 - s_alpha2) + sk * sk * c1 - c2 * kk1) * norm)
            out["hsic_scale"] = g2 * norm
        self._layer_cache[k] = out
        return out

    def _rect_numerators(self, k: Any) -> dict:
        """‖M_kl‖²_F for every partner l of layer k that shares its cross rectangle, in one pass
        over the rectangle by blocks of rows (M = G − a_k a_lᵀ/n, constant rows / columns zeroed):
        one reused buffer instead of a few p_k×p_l temporaries per pair."""
        cache = self._num_cache
        c0, R = self.rect[k]
        partners = [l for (kk, l) in self.pairs if kk == k]
        lk = self._layer(k)
        a_cols = np.concatenate([self._layer(l)["a"] for l in partners]) / self.n
        const_cols = np.concatenate([self._layer(l)["const"] for l in partners])
        R = self._np(R)
        col_ss = np.zeros(R.shape[1])
        step = max(1, min(R.shape[0], (1 << 20) // max(1, R.shape[1])))
        buf = np.empty((step, R.shape[1]))
        for r0 in range(0, R.shape[0], step):
            r1 = min(R.shape[0], r0 + step)
            t = buf[:r1 - r0]
            np.multiply.outer(lk["a"][r0:r1], a_cols, out=t)
            np.subtract(R[r0:r1], t, out=t)
            t[lk["const"][r0:r1], :] = 0.0
            np.multiply(t, t, out=t)
            col_ss += t.sum(axis=0)
        col_ss[const_cols] = 0.0
        offsets = np.cumsum([0] + [self.widths[l] for l in partners])[:-1]
        for l, v in zip(partners, np.add.reduceat(col_ss, offsets)):
            cache[(k, l)] = float(v)
        return cache

    def _fast_linear_cka(self, kx: Any, ky: Any) -> float:
        from .similarity.cka import _ratio

        lx, ly = self._layer(kx), self._layer(ky)
        pair = (kx, ky) if (kx, ky) in self.Gp else (ky, kx)
        if kx != ky and pair[0] in self.rect:
            if pair not in self._num_cache:
                self._rect_numerators(pair[0])
            return _ratio(self._num_cache[pair], lx["mm"], ly["mm"], "linear_cka")
        mxy = self._cross_gram(kx, ky) - np.outer(lx["a"], ly["a"]) / self.n
        mxy[lx["const"], :] = 0.0
        mxy[:, ly["const"]] = 0.0
        return _ratio(float(np.sum(mxy * mxy)), lx["mm"], ly["mm"], "linear_cka")

    def _fast_debiased_cka(self, kx: Any, ky: Any) -> float:
        from .similarity.cka import _all_constant_warning, _ratio

        lx, ly = self._layer(kx), self._layer(ky)
        if lx["const"].all() or ly["const"].all():
            return _all_constant_warning(lx["const"], ly["const"])
        n = self.n
        cross, beta_u, alpha_v = self._pair_sums(kx, ky)
        a, b = lx["a"], ly["a"]
        gxy = self._cross_gram(kx, ky)
        c1, c2, norm = 1.0 / ((n - 1) * (n - 2)), 2.0 / (n - 2), 1.0 / (n * (n - 3))
        tr_kl = float(np.sum(gxy * gxy)) - cross
        kl1 = a @ gxy @ b - beta_u @ a - alpha_v @ b + cross
        hxy = float((tr_kl + lx["sk"] * ly["sk"] * c1 - c2 * kl1) * norm)
        return _ratio(hxy, lx["hsic_self"], ly["hsic_self"], "debiased_cka", lx["hsic_scale"], ly["hsic_scale"])

    def _gram_path_linear_cka(self, rows: dict) -> np.ndarray:
        """Linear CKA of every (A, B) layer pair from the sample-space Grams (METHODS §2.1):
        ⟨K̃_k, K̃_l⟩_F with K̃_k = X̃_k X̃_kᵀ over all n samples, by blocks of rows and only the
        upper blocks (the lower ones by symmetry), so no n×n matrix is resident and each layer's
        Gram is formed once. ``rows[k]``: the layer's samples as one array or a list of row
        chunks (keep-all reservoir), all compare's own, so they are centred in place (two-pass
        float64 means; constant features, METHODS §1.3, set to 0). Products in the rows'
        precision, float32 products summed over ≤ 4096 features, then in float64."""
        from .similarity._common import _constant
        from .similarity.cka import _ratio
        from ._resources import blas_threads

        n, keys = self.n, self.keys
        chunks = {k: (list(v) if isinstance(v, list) else [v]) for k, v in rows.items()}
        for k in keys:
            parts = chunks[k]
            mean = sum(c.sum(axis=0, dtype=np.float64) for c in parts) / n
            if not np.isfinite(mean).all():
                raise ValueError(f"the activations of {self.labels[k]} contain NaN or Inf values")
            for c in parts:
                c -= mean.astype(c.dtype)
            second = sum(c.sum(axis=0, dtype=np.float64) for c in parts) / n  # the residual mean
            ss = np.zeros(self.widths[k])
            for c in parts:
                c -= second.astype(c.dtype)
                ss += np.einsum("ij,ij->j", c, c)  # in the rows' precision: only for the constant rule
            const = _constant(ss, mean + second, n)
            if const.any():
                for c in parts:
                    c[:, const] = 0
        starts = np.cumsum([0] + [c.shape[0] for c in chunks[keys[0]]])
        L, rb = len(keys), self._gram_block_rows(n)
        F = np.zeros((L, L))
        feat_chunk = 4096
        # buffers allocated once (a fresh n-wide block per row block would be fresh pages each time);
        # one product buffer per dtype (a float64 layer among float32 ones keeps its precision)
        block_buf = np.empty(L * rb * n)
        widest = max(int(np.diff(starts).max()), 1)
        prod_bufs = {dt: np.empty(rb * widest, dtype=dt) for dt in {chunks[k][0].dtype for k in keys}}
        square_buf = np.empty(L * rb * rb)
        with blas_threads(self.num_threads):
            for ci in range(len(starts) - 1):
                for s0 in range(0, int(starts[ci + 1] - starts[ci]), rb):
                    r0 = int(starts[ci]) + s0
                    rows_b = min(rb, int(starts[ci + 1]) - r0)
                    m = n - r0
                    blocks = block_buf[:L * rows_b * m].reshape(L, rows_b, m)
                    for i, k in enumerate(keys):
                        xs = chunks[k][ci][s0:s0 + rows_b]
                        col = 0
                        for cj in range(ci, len(starts) - 1):
                            y = chunks[k][cj][s0:] if cj == ci else chunks[k][cj]
                            width = y.shape[0]
                            dst = blocks[i, :, col:col + width]
                            prod = prod_bufs[xs.dtype][:rows_b * width].reshape(rows_b, width)
                            p = xs.shape[1]
                            step = p if (p <= feat_chunk or xs.dtype == np.float64) else feat_chunk
                            for f0 in range(0, p, step):
                                np.matmul(xs[:, f0:f0 + step], y[:, f0:f0 + step].T, out=prod)
                                if f0 == 0:
                                    dst[...] = prod
                                else:
                                    dst += prod
                            col += width
                    flat = blocks.reshape(L, -1)
                    square = square_buf[:L * rows_b * rows_b].reshape(L, rows_b, rows_b)
                    np.copyto(square, blocks[:, :, :rows_b])
                    sq = square.reshape(L, -1)
                    F += 2.0 * (flat @ flat.T) - sq @ sq.T  # off-diagonal blocks count twice
        pos = {k: i for i, k in enumerate(keys)}
        out = np.empty((len(self.keys_a), len(self.keys_b)))
        for i, ka in enumerate(self.keys_a):
            for j, kb in enumerate(self.keys_b):
                a, b = pos[ka], pos[kb]
                out[i, j] = _ratio(F[a, b], F[a, a], F[b, b], "linear_cka")
        return out

    def finish(self, progress: bool = False) -> tuple[dict, dict, dict]:
        if self.n == 0:
            raise ValueError("the data yielded no samples (no batches, or only empty ones); nothing to compare")
        if self.route == "streamed" and self.feature:
            self._seal()
        na, nb = len(self.keys_a), len(self.keys_b)
        values = {m: np.full((na, nb), np.nan) for m in self.measures}
        timing = {m: 0.0 for m in self.measures}
        cache: dict = {}
        streamed = self.feature if self.route == "streamed" else []
        on_res = [m for m in self.measures if m not in streamed]
        indices, res_rows = (None, None)
        if on_res:
            self.res.check_unchanged()
            indices, res_rows = self.res.arrays(concatenate=self.res.chunks is None)
        fast = self._fast_measures(streamed)
        # linear CKA on every sample without options: all pairs at once from per-layer Grams
        gram_path = [m for m in on_res if m == "linear_cka" and not self.options.get(m) and self.res is not None
                     and self.res.filled == self.n and self.n >= 2]
        bar = _progress(progress, total=na * nb, desc="pairs")
        try:
            for i, ka in enumerate(self.keys_a):
                for j, kb in enumerate(self.keys_b):
                    st = None
                    for m in self.measures:
                        fn = REGISTRY[m]
                        key = (m, frozenset((ka, kb))) if fn.info.symmetric else (m, ka, kb)
                        if key in cache:
                            values[m][i, j] = cache[key]
                            continue
                        t0 = time.perf_counter()
                        if m in gram_path:
                            continue  # below, after the other reservoir measures (it centres the rows in place)
                        if m in fast:
                            v = fast[m](ka, kb)
                        elif m in streamed:
                            if st is None:
                                st = self._stats(ka, kb)
                            v = _scalar(fn(stats=st, **self.options.get(m, {})))
                        else:
                            v = _scalar(fn(res_rows[ka], res_rows[kb], **self.options.get(m, {})))
                        timing[m] += time.perf_counter() - t0
                        cache[key] = values[m][i, j] = v
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        for m in gram_path:
            t0 = time.perf_counter()
            values[m][:] = self._gram_path_linear_cka(res_rows)
            timing[m] += time.perf_counter() - t0
        filled = 0 if self.res is None else self.res.filled
        subset = {m: int(filled) for m in on_res if filled < self.n}
        info = {"route": self.route, "route_reason": self.route_reason, "precision": self._precision(),
                "sources": {m: ("streamed" if m in streamed else "reservoir")
                                                  for m in self.measures},
                "memory": self.memory, "n_batches": self.n_batches,
                "timing": {"measures_s": timing}}
        if self.res is not None:
            info["reservoir"] = {"size": int(filled), "capacity": int(self.capacity), "seed": int(self.seed),
                                 "indices": [] if indices is None else indices.tolist()}
        return values, subset, info


def _progress(enabled: bool, total: Optional[int], desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        warnings.warn("progress=True needs tqdm (pip install tqdm); continuing without a progress bar", stacklevel=3)
        return None
    return tqdm(total=total, desc=desc, leave=False)


# ----------------------------------------------------------------------------------- models


def _split_option(option: Any, names_a: list[str], names_b: list[str], what: str) -> tuple[Any, Any]:
    """A scalar option applies to both models; a dict {layer: value} is split by layer name."""
    if not isinstance(option, Mapping):
        return option, option
    unknown = [k for k in option if k not in names_a and k not in names_b]
    if unknown:
        known = list(dict.fromkeys(names_a + names_b))
        raise ValueError(f"{what} names unknown layers {unknown}; the layers are {known}")
    return ({k: v for k, v in option.items() if k in names_a}, {k: v for k, v in option.items() if k in names_b})


def compare(model_a: Any, model_b: Any = None, data: Any = None, *, layers_a: Any = None, layers_b: Any = None,
            measures: Union[str, Sequence[str]] = ("linear_cka",), spatial: Any = "flatten", select: Any = None,
            max_batches: Optional[int] = None, reservoir: int = 4096, device: Any = None, progress: bool = False,
            seed: int = 0, memory_limit: Optional[float] = None,
            measure_options: Optional[dict] = None, route: str = "auto",
            num_threads: Optional[int] = None) -> Comparison:
    """All-pairs similarity between the layers of two torch models on the same data, in one pass.

    Every batch of ``data`` runs through ``model_a`` and ``model_b`` (once through the model when
    comparing a model with itself) under ``torch.no_grad()`` in eval mode (each module's mode is
    restored after); forward hooks (:class:`congruence.models.ActivationRecorder`) turn each
    layer's output into an ``(n_samples, n_features)`` batch, which is streamed into shared
    per-layer and per-pair states (module docstring: "Memory design") and, for sample-space
    measures, a bounded reservoir. Activations are never cached otherwise.

    Parameters
    ----------
    model_a : torch.nn.Module
    model_b : torch.nn.Module, optional
        None, or ``model_a`` itself: one model against itself (run once per batch; a layer pair
        is stored once and a layer's own Gram serves the diagonal).
    data : iterable of batches
        Each batch a tensor (``model(x)``), a tuple / list whose first element is the input (a
        ``DataLoader`` of ``(x, y)`` works; ``model(batch[0])``), or a dict (``model(**batch)``).
        A bare tensor or dict is one batch. Both models see the same batches.
    layers_a, layers_b : sequence of str or nn.Module, optional
        Layer names (``model.named_modules()``) or modules; default
        :func:`congruence.models.list_layers` (for one model: ``layers_b`` defaults to
        ``layers_a``). Default layers that never run in the forward pass are dropped with a
        warning (``info["skipped_layers"]``); named ones raise.
    measures : str or sequence of str
        Names from :data:`congruence.similarity.REGISTRY` (:func:`available_measures`).
        Feature-space measures (linear_cka, debiased_cka, cca (its mean ρ̄), svcca, pwcca,
        linear_regression_r2, procrustes) are exact from the streamed state; sample-space
        measures (rbf_cka, rsa, rsa_euclidean, rsa_sqeuclidean, mutual_knn, mutual_knn_euclidean)
        run on the reservoir. Asymmetric measures take the A layer first.
    spatial : {"flatten", "mean", "positions"} or dict layer -> policy
        Conv policy for outputs with ndim > 2 (METHODS §0): (N, C·H·W), (N, C), (N·H·W, C).
    select : None, int, str, callable or dict layer -> selector
        Which tensor of a tuple / dict / ModelOutput output to take (see
        :mod:`congruence.models.capture`). A dict applies by layer name to both models.
    max_batches : int, optional
        Stop after this many batches.
    reservoir : int
        Rows kept per layer for the sample-space measures (same indices for every layer; seeded).
    device : torch device, optional
        Where the inputs are sent (the models are not moved); None: each model's own parameter
        device.
    progress : bool
        tqdm bars for the batches and the pairs (when tqdm is importable).
    seed : int
        Seed of the reservoir sampling.
    memory_limit : float, optional
        Bytes for the states and the reservoir (default: half the available RAM); checked at the
        first batch (:class:`~congruence.MemoryBudgetError`, or the reservoir fallback).
    measure_options : dict measure -> dict, optional
        Keyword arguments per measure, e.g. ``{"mutual_knn": {"k": 5}, "svcca": {"k": 10}}``.
    route : {"auto", "features", "samples"}
        How the feature-space measures are computed (``info["route"]``, ``info["route_reason"]``).
        "features": the streamed d×d state (one pass, activations never cached).
        "samples": every sample kept (the reservoir grows to all of them) and the sample-space
        (n×n Gram) path, exact; linear CKA then takes all layer pairs from per-layer Grams.
        "auto" (default): "features", except (a) when its state does not fit ``memory_limit``
        (then "samples", exact only if every sample fits the reservoir) and (b) when only
        linear CKA is asked for, the sample count is known (``len(data)`` x the first batch's
        rows), every sample fits, and the Gram path needs under half the multiply-adds
        (Σ_k n²p_k/2 against Σ_k n p_k²/2 + Σ_pairs n p_k p_l, i.e. n well below the widths).
        Should the data hold more samples than estimated, the pass moves to "features" by
        replaying the samples seen.
    num_threads : int, optional
        Threads for the products (default: all available cores).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Unknown measures, layers or route, empty data, layers with different sample counts, NaN /
        Inf activations (naming the layer).
    MemoryBudgetError
        The states (or the reservoir fallback) do not fit in ``memory_limit``.
    """
    t_start = time.perf_counter()
    from .models import capture as cap

    measures = _check_measures(measures)
    options = _check_options(measure_options, measures)
    route = _check_route(route)
    threads = resolve_threads(num_threads)
    max_batches = _check_int(max_batches, "max_batches", minimum=1, allow_none=True)
    reservoir = _check_int(reservoir, "reservoir", minimum=0)
    seed = _check_int(seed, "seed", minimum=0)
    cap.check_spatial(spatial)
    cap.check_select(select)
    cap._check_module(model_a, "model_a")
    same = model_b is None or model_b is model_a
    if not same:
        cap._check_module(model_b, "model_b")
    if data is None:
        raise TypeError("compare: data is required (an iterable of batches, e.g. a DataLoader)")
    import torch

    if isinstance(data, (torch.Tensor, Mapping)):
        data = [data]
    strict_a = layers_a is not None
    ra = cap.resolve_layers(model_a, layers_a, "layers_a")
    names_a = [n for n, _ in ra]
    if same:
        strict_b = layers_b is not None or strict_a
        rb = cap.resolve_layers(model_a, layers_b if layers_b is not None else names_a, "layers_b")
    else:
        strict_b = layers_b is not None
        rb = cap.resolve_layers(model_b, layers_b, "layers_b")
    names_b = [n for n, _ in rb]
    spatial_a, spatial_b = _split_option(spatial, names_a, names_b, "spatial")
    select_a, select_b = _split_option(select, names_a, names_b, "select")

    side_b = "a" if same else "b"
    label_a, label_b = ("model", "model") if same else ("model_a", "model_b")
    if same:
        union = list(dict.fromkeys(names_a + names_b))
        sp = spatial if not isinstance(spatial, Mapping) else {k: v for k, v in spatial.items() if k in union}
        se = select if not isinstance(select, Mapping) else {k: v for k, v in select.items() if k in union}
        recorders = [("a", model_a, cap.ActivationRecorder(model_a, union, spatial=sp, select=se))]
        strict = {n: (strict_a and n in names_a) or (strict_b and n in names_b) for n in union}
        strict = {("a", n): s for n, s in strict.items()}
    else:
        recorders = [("a", model_a, cap.ActivationRecorder(model_a, names_a, spatial=spatial_a, select=select_a)),
                     ("b", model_b, cap.ActivationRecorder(model_b, names_b, spatial=spatial_b, select=select_b))]
        strict = {**{("a", n): strict_a for n in names_a}, **{("b", n): strict_b for n in names_b}}
    label = {"a": label_a, "b": label_b}
    devices = {side: (device if device is not None else cap.param_device(m)) for side, m, _ in recorders}

    total = None
    try:
        total = len(data)  # type: ignore[arg-type]
    except TypeError:
        pass
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    keys_a = [("a", n) for n in names_a]
    keys_b = [(side_b, n) for n in names_b]
    streamer: Optional[_Streamer] = None
    skipped: list[str] = []
    shapes: dict = {"a": {}, "b": {}}
    bar = _progress(progress, total=total, desc="batches")
    models = [model_a] if same else [model_a, model_b]
    t_pass = time.perf_counter()
    try:
        with cap.eval_mode(*models), recorders[0][2], (recorders[1][2] if len(recorders) > 1 else _Null()):
            for bi, batch in enumerate(data):
                acts: dict = {}
                for side, model, rec in recorders:
                    cap.record_batch(rec, model, cap.move_batch(batch, devices[side]))
                    for n in rec.layers:
                        key = (side, n)
                        if streamer is not None and key not in streamer.pos:
                            continue  # a default layer left out at the first batch
                        calls = rec.calls[n]
                        if calls == 0:
                            if streamer is None and not strict[key]:
                                continue
                            raise ValueError(f"layer {n!r} of {label[side]} did not run in the forward pass of batch "
                                             f"{bi}; choose modules that are called once per forward pass")
                        if calls > 1:
                            raise ValueError(f"layer {n!r} of {label[side]} ran {calls} times in one forward pass; its "
                                             "activations are ambiguous (a reused module). Choose a module that runs "
                                             "once per forward pass, or wrap each use in its own module")
                        acts[key] = rec.activations[n]
                        if n not in shapes[side]:
                            shapes[side][n] = list(rec.shapes[n][1:])
                if streamer is None:
                    present = set(acts)
                    dropped = [k for k in dict.fromkeys(keys_a + keys_b) if k not in present]
                    if dropped:
                        skipped = [f"{label[s]}:{n}" for s, n in dropped]
                        warnings.warn(f"compare: default layers {skipped} did not run in the forward pass and are left "
                                      "out", stacklevel=2)
                        keys_a = [k for k in keys_a if k in present]
                        keys_b = [k for k in keys_b if k in present]
                        if not keys_a or not keys_b:
                            raise ValueError("compare: none of the layers of a model ran in the forward pass")
                    labels = {k: f"layer {k[1]!r} of {label[k[0]]}" for k in dict.fromkeys(keys_a + keys_b)}
                    rows0 = int(next(iter(acts.values())).shape[0]) if acts else 0
                    streamer = _Streamer(keys_a, keys_b, labels, measures, options, reservoir=reservoir, seed=seed,
                                         memory_limit=memory_limit, num_threads=threads, route=route,
                                         n_estimate=None if total is None else total * rows0, owned=True)
                streamer.update({k: acts[k] for k in streamer.keys}, inputs=_tensors(batch))
                if bar is not None:
                    bar.update(1)
                if max_batches is not None and bi + 1 >= max_batches:
                    break  # before the next batch is drawn from the iterator
    finally:
        if bar is not None:
            bar.close()
    if streamer is None:
        raise ValueError("compare: data yielded no batches; nothing to compare")
    pass_s = time.perf_counter() - t_pass
    values, subset, info = streamer.finish(progress)
    layers_a_out = [n for _, n in streamer.keys_a]
    layers_b_out = [n for _, n in streamer.keys_b]
    widths = {"a": {n: streamer.widths[("a", n)] for n in layers_a_out},
              "b": {n: streamer.widths[(side_b, n)] for n in layers_b_out}}
    shapes_out = {"a": {n: shapes["a"][n] for n in layers_a_out},
                  "b": {n: shapes[side_b][n] for n in layers_b_out}}
    info.update({
        "spatial": spatial if not isinstance(spatial, Mapping) else dict(spatial), "shapes": shapes_out,
        "widths": widths, "self_comparison": same, "label_a": label_a, "label_b": label_b,
        "models": {"a": type(model_a).__name__, "b": type(model_a if same else model_b).__name__},
        "skipped_layers": skipped, "measure_options": options,
    })
    info["timing"].update({"pass_s": pass_s, "total_s": time.perf_counter() - t_start})
    return Comparison(measures=measures, layers_a=layers_a_out, layers_b=layers_b_out, values=values,
                      n_samples=streamer.n, subset=subset, info=info)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


# ------------------------------------------------------------------------------ activations


class _Safetensors:
    """Lazy row slices of one tensor of a .safetensors file."""

    def __init__(self, handle: Any, name: str) -> None:
        self._slice = handle.get_slice(name)
        self.shape = tuple(self._slice.get_shape())
        self.dtype = self._slice.get_dtype()

    def __getitem__(self, sl: slice) -> Any:
        return self._slice[sl]


def _load(acts: Any, what: str) -> tuple[dict, list]:
    """(name -> row-sliceable array, things to close) for a dict or a file / directory path."""
    if isinstance(acts, Mapping):
        if not acts:
            raise ValueError(f"{what} is an empty dict; expected layer name -> array (n_samples, ...)")
        for k, v in acts.items():
            if not isinstance(k, str):
                raise TypeError(f"{what} keys must be layer names (str); got {k!r}")
            if not hasattr(v, "shape"):
                acts = {**acts, k: np.asarray(v)}
        return dict(acts), []
    if not isinstance(acts, (str, os.PathLike)):
        raise TypeError(f"{what} must be a dict layer -> array or a path to .npy / .npz / .safetensors (or a "
                        f"directory of .npy files); got {type(acts).__name__}")
    path = Path(acts)
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise ValueError(f"{what}: directory {path} holds no .npy files")
        return {f.stem: np.load(f, mmap_mode="r") for f in files}, []
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return {path.stem: np.load(path, mmap_mode="r")}, []
    if suffix == ".npz":
        with np.load(path) as z:  # zip members cannot be memory-mapped: each is read once, whole
            return {k: z[k] for k in z.files}, []
    if suffix == ".safetensors":
        try:
            from safetensors import safe_open
        except ImportError:
            raise ImportError("reading .safetensors needs the safetensors package (pip install safetensors)") from None
        framework = "numpy"
        with safe_open(os.fspath(path), framework="numpy") as probe:
            if any(probe.get_slice(k).get_dtype() == "BF16" for k in probe.keys()):
                try:  # numpy has no bfloat16: read through torch (CPU tensors)
                    import torch  # noqa: F401

                    framework = "pt"
                except ImportError:
                    raise TypeError(f"{what}: {path} holds bfloat16 tensors, which need torch to read") from None
        handle = safe_open(os.fspath(path), framework=framework)
        handle.__enter__()
        try:
            out = {k: _Safetensors(handle, k) for k in handle.keys()}
        except BaseException:
            handle.__exit__(None, None, None)
            raise
        return out, [handle]
    raise ValueError(f"{what}: unsupported file type {suffix!r}; use .npy (one layer, named by the file stem), .npz "
                     "or .safetensors (one array per layer)")


def _pick_layers(available: dict, layers: Any, what: str) -> list[str]:
    names = list(available)
    if layers is None:
        return names
    if isinstance(layers, str):
        layers = [layers]
    out = []
    for n in layers:
        if n not in available:
            close = difflib.get_close_matches(str(n), names, n=5, cutoff=0.5)
            raise ValueError(f"unknown layer {n!r} in {what}{f'; close matches: {close}' if close else ''}; "
                             f"available: {names[:20]}{' …' if len(names) > 20 else ''}")
        if n in out:
            raise ValueError(f"layer {n!r} is listed twice in {what}")
        out.append(n)
    if not out:
        raise ValueError(f"{what} is empty")
    return out


def _array_to_2d(x: Any, policy: str, name: str) -> Any:
    """The spatial policy for numpy arrays (torch tensors: congruence.models.capture.to_2d)."""
    if _is_torch(x):
        from .models.capture import to_2d

        return to_2d(x, policy, name)
    if x.ndim == 2:
        return x
    if x.ndim < 2:
        raise ValueError(f"layer {name!r} has a {x.ndim}-D array of shape {x.shape}; expected (n_samples, n_features, "
                         "...)")
    if policy == "flatten":
        return x.reshape(x.shape[0], -1)
    if policy == "mean":
        return x.mean(axis=tuple(range(2, x.ndim)), dtype=np.float64)
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _rows_after(shape: tuple, policy: str) -> int:
    if len(shape) > 2 and policy == "positions":
        return int(np.prod(shape[:1] + shape[2:]))
    return int(shape[0])


def compare_activations(acts_a: Any, acts_b: Any = None, *, measures: Union[str, Sequence[str]] = ("linear_cka",),
                        layers_a: Optional[Sequence[str]] = None, layers_b: Optional[Sequence[str]] = None,
                        spatial: Any = "flatten", batch_size: int = 4096, reservoir: int = 4096,
                        progress: bool = False, seed: int = 0, memory_limit: Optional[float] = None,
                        measure_options: Optional[dict] = None, route: str = "auto",
                        num_threads: Optional[int] = None) -> Comparison:
    """All-pairs similarity from saved activations, streamed in row batches.

    Parameters
    ----------
    acts_a, acts_b : dict or path
        A dict ``layer name -> array (n_samples, ...)`` (numpy arrays and memory maps, torch
        tensors, anything with ``shape`` and row slicing), or a path: ``.npy`` (one layer named
        by the file stem; memory-mapped), ``.npz`` (one array per layer; zip members cannot be
        memory-mapped, so each is read whole, once), ``.safetensors`` (one tensor per layer;
        rows are read lazily, batch by batch), or a directory of ``.npy`` files (one layer each).
        ``acts_b`` None (or the same object / path as ``acts_a``): ``acts_a`` against itself.
        Rows are samples and must be aligned between all layers.
    measures, reservoir, seed, memory_limit, measure_options, progress, route, num_threads
        As :func:`compare` (the sample count is known here, so route="auto" can take the Gram
        path by cost).
    layers_a, layers_b : sequence of str, optional
        Default: every array, in file / dict order (``layers_b`` defaults to ``layers_a`` for one
        set).
    spatial : {"flatten", "mean", "positions"} or dict layer -> policy
        For arrays with ndim > 2, read as ``[N, C, *spatial]``.
    batch_size : int
        Rows (of the stored arrays) read per step: only one batch of every layer is in memory at
        a time (besides the states and the reservoir).

    Returns
    -------
    Comparison
    """
    t_start = time.perf_counter()
    measures = _check_measures(measures)
    options = _check_options(measure_options, measures)
    route = _check_route(route)
    threads = resolve_threads(num_threads)
    batch_size = _check_int(batch_size, "batch_size", minimum=1)
    reservoir = _check_int(reservoir, "reservoir", minimum=0)
    seed = _check_int(seed, "seed", minimum=0)
    same = acts_b is None or acts_b is acts_a or (isinstance(acts_a, (str, os.PathLike))
                                                  and isinstance(acts_b, (str, os.PathLike))
                                                  and Path(acts_a).resolve() == Path(acts_b).resolve())
    handles: list = []
    try:
        src_a, h = _load(acts_a, "acts_a")
        handles += h
        if same:
            src_b = src_a
        else:
            src_b, h = _load(acts_b, "acts_b")
            handles += h
        names_a = _pick_layers(src_a, layers_a, "layers_a")
        names_b = _pick_layers(src_b, layers_b if (layers_b is not None or not same) else names_a, "layers_b")
        side_b = "a" if same else "b"
        label = {"a": "acts_a" if not same else "acts", "b": "acts_b"}
        keys_a = [("a", n) for n in names_a]
        keys_b = [(side_b, n) for n in names_b]
        keys = list(dict.fromkeys(keys_a + keys_b))
        src = {"a": src_a, "b": src_b}
        policies = {}
        for k in keys:
            pol = spatial.get(k[1], "flatten") if isinstance(spatial, Mapping) else spatial
            if pol not in ("flatten", "mean", "positions"):
                raise ValueError("spatial must be one of ('flatten', 'mean', 'positions') (or a dict layer -> "
                                 f"policy); got {pol!r}")
            policies[k] = pol
        if isinstance(spatial, Mapping):
            unknown = [n for n in spatial if n not in names_a and n not in names_b]
            if unknown:
                raise ValueError(f"spatial names unknown layers {unknown}")
        labels = {k: f"layer {k[1]!r} of {label[k[0]]}" for k in keys}
        shapes = {k: tuple(int(s) for s in src[k[0]][k[1]].shape) for k in keys}
        for k, s in shapes.items():
            if len(s) < 2:
                raise ValueError(f"{labels[k]} has shape {s}; expected (n_samples, n_features, ...)")
        lead = {k: s[0] for k, s in shapes.items()}
        if len(set(lead.values())) > 1:
            counts = ", ".join(f"{labels[k]}: {v}" for k, v in lead.items())
            raise ValueError(f"the activation sets have different numbers of samples ({counts}); rows must be aligned")
        n_rows = next(iter(lead.values()))
        if n_rows == 0:
            raise ValueError("the activations hold no samples (0 rows)")
        rows = {k: _rows_after(shapes[k], policies[k]) for k in keys}
        if len(set(rows.values())) > 1:
            counts = ", ".join(f"{labels[k]}: {v}" for k, v in rows.items())
            raise ValueError(f"after the spatial policy the layers have different numbers of samples ({counts}); with "
                             "spatial='positions' the rows are positions, so layers of different spatial sizes cannot "
                             "be paired")
        streamer = _Streamer(keys_a, keys_b, labels, measures, options, reservoir=reservoir, seed=seed,
                             memory_limit=memory_limit, n_total=next(iter(rows.values())), num_threads=threads,
                             route=route)
        bar = _progress(progress, total=-(-n_rows // batch_size), desc="batches")
        t_pass = time.perf_counter()
        try:
            for r0 in range(0, n_rows, batch_size):
                batch = {}
                for k in keys:
                    x = src[k[0]][k[1]][r0:min(n_rows, r0 + batch_size)]  # safetensors slices do not clamp
                    if not _is_torch(x):
                        x = np.asarray(x)
                    batch[k] = _array_to_2d(x, policies[k], k[1])
                streamer.update(batch)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        pass_s = time.perf_counter() - t_pass
    finally:
        for hd in handles:
            hd.__exit__(None, None, None)
    values, subset, info = streamer.finish(progress)
    info.update({
        "spatial": spatial if not isinstance(spatial, Mapping) else dict(spatial),
        "shapes": {"a": {n: list(shapes[("a", n)][1:]) for n in names_a},
                   "b": {n: list(shapes[(side_b, n)][1:]) for n in names_b}},
        "widths": {"a": {n: streamer.widths[("a", n)] for n in names_a},
                   "b": {n: streamer.widths[(side_b, n)] for n in names_b}},
        "self_comparison": same, "label_a": label["a"], "label_b": label["a"] if same else label["b"],
        "sources_files": {"a": _describe_source(acts_a), "b": _describe_source(acts_a if same else acts_b)},
        "measure_options": options,
    })
    info["timing"].update({"pass_s": pass_s, "total_s": time.perf_counter() - t_start})
    return Comparison(measures=measures, layers_a=names_a, layers_b=names_b, values=values, n_samples=streamer.n,
                      subset=subset, info=info)


def _describe_source(acts: Any) -> str:
    return os.fspath(acts) if isinstance(acts, (str, os.PathLike)) else "dict"
