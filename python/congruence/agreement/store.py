"""The correctness store: c[network, checkpoint, example] ∈ {0, 1} for many networks and
checkpoints (Hacohen, Choshen & Weinshall 2020; METHODS.md §7.1), bit-packed 64 examples per word,
with the examples recorded so far and, optionally, each network's top-1 predictions."""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import numpy as np

from .bits import n_words, pack_rows, unpack_rows, valid_words

__all__ = ["CorrectnessStore"]

FORMAT_VERSION = 1


def _index(value: Any, size: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -size <= value < size:
        raise ValueError(f"{name} must be an integer in [{-size}, {size}); got {value!r}")
    return int(value) % size


class CorrectnessStore:
    """Bit-packed per-example correctness of ``n_networks`` networks at ``n_checkpoints`` checkpoints.

    Parameters
    ----------
    n_networks, n_checkpoints, n_examples : int
    predictions : bool
        Also keep each network's top-1 predicted label (int32, −1 until recorded).
    network_names : sequence of str, optional
    labels : array_like of int, shape (n_examples,), optional
        The true labels (kept with the store for later measures).

    Attributes
    ----------
    bits : ndarray of uint64, shape (n_networks, n_checkpoints, ⌈n_examples/64⌉)
    recorded : ndarray of uint64, same shape
        Which examples have been recorded.
    predictions : ndarray of int32, shape (n_networks, n_checkpoints, n_examples), or None
    """

    def __init__(self, n_networks: int, n_checkpoints: int, n_examples: int, *, predictions: bool = False,
                 network_names: Optional[Sequence[str]] = None, labels: Optional[Any] = None) -> None:
        for name, v in (("n_networks", n_networks), ("n_checkpoints", n_checkpoints), ("n_examples", n_examples)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        self.n_networks, self.n_checkpoints, self.n_examples = int(n_networks), int(n_checkpoints), int(n_examples)
        W = n_words(self.n_examples)
        self.bits = np.zeros((self.n_networks, self.n_checkpoints, W), np.uint64)
        self.recorded = np.zeros_like(self.bits)
        self.predictions = (np.full((self.n_networks, self.n_checkpoints, self.n_examples), -1, np.int32)
                            if predictions else None)
        if network_names is not None and len(network_names) != self.n_networks:
            raise ValueError(f"network_names must have {self.n_networks} entries; got {len(network_names)}")
        self.network_names = None if network_names is None else [str(s) for s in network_names]
        self.labels = None
        if labels is not None:
            lab = np.asarray(labels)
            if lab.shape != (self.n_examples,) or not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"labels must be {self.n_examples} integers; got shape {lab.shape}, dtype {lab.dtype}")
            self.labels = lab.astype(np.int64)
        self._valid = valid_words(self.n_examples)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_networks, n_checkpoints, n_examples)."""
        return self.n_networks, self.n_checkpoints, self.n_examples

    def set(self, network: int, checkpoint: int, correct: Any, *, predictions: Optional[Any] = None,
            indices: Optional[Any] = None) -> None:
        """Record ``correct`` (bool, one per example, or per ``indices``) for one network and checkpoint."""
        i = _index(network, self.n_networks, "network")
        e = _index(checkpoint, self.n_checkpoints, "checkpoint")
        c = np.asarray(correct)
        if c.dtype != bool and not (np.issubdtype(c.dtype, np.integer) and np.isin(c, (0, 1)).all()):
            raise ValueError("correct must be booleans (or 0/1 integers)")
        c = c.astype(bool).ravel()
        if indices is None:
            if c.size != self.n_examples:
                raise ValueError(f"correct must have one entry per example ({self.n_examples}) when indices is not "
                                 f"given; got {c.size}")
            self.bits[i, e] = pack_rows(c)
            self.recorded[i, e] = self._valid
            idx = None
        else:
            idx = np.asarray(indices).ravel()
            if not np.issubdtype(idx.dtype, np.integer) or idx.size != c.size:
                raise ValueError(f"indices must be {c.size} integers (one per entry of correct)")
            if idx.size and (idx.min() < 0 or idx.max() >= self.n_examples):
                raise ValueError(f"indices must lie in [0, {self.n_examples})")
            row = unpack_rows(self.bits[i, e], self.n_examples)
            seen = unpack_rows(self.recorded[i, e], self.n_examples)
            row[idx] = c
            seen[idx] = True
            self.bits[i, e] = pack_rows(row)
            self.recorded[i, e] = pack_rows(seen)
        if predictions is not None:
            if self.predictions is None:
                raise ValueError("this store keeps no predictions (create it with predictions=True)")
            p = np.asarray(predictions).ravel()
            if not np.issubdtype(p.dtype, np.integer) or p.size != c.size:
                raise ValueError(f"predictions must be {c.size} integer labels")
            if idx is None:
                self.predictions[i, e] = p
            else:
                self.predictions[i, e, idx] = p

    def is_complete(self, checkpoint: Optional[int] = None) -> bool:
        """Whether every example is recorded for every network (at ``checkpoint``, or at all)."""
        rec = self.recorded if checkpoint is None else self.recorded[:, _index(checkpoint, self.n_checkpoints,
                                                                               "checkpoint")]
        return bool(np.all(rec == self._valid))

    def _require(self, checkpoint: Optional[int]) -> None:
        if not self.is_complete(checkpoint):
            where = "" if checkpoint is None else f" at checkpoint {checkpoint}"
            raise ValueError(f"the store is incomplete{where}: some (network, example) outcomes were never recorded")

    def packed(self, checkpoint: int = -1) -> np.ndarray:
        """Bit-packed correctness (n_networks, ⌈n/64⌉) at one checkpoint."""
        e = _index(checkpoint, self.n_checkpoints, "checkpoint")
        self._require(e)
        return np.ascontiguousarray(self.bits[:, e])

    def correct(self, checkpoint: int = -1) -> np.ndarray:
        """Correctness (n_networks, n_examples) bool at one checkpoint."""
        return unpack_rows(self.packed(checkpoint), self.n_examples)

    def counts(self, checkpoints: Optional[Sequence[int]] = None) -> np.ndarray:
        """Σ over networks (and the given checkpoints; default all) of c, per example: int64 (n,)."""
        es = range(self.n_checkpoints) if checkpoints is None else [
            _index(e, self.n_checkpoints, "checkpoints") for e in checkpoints]
        total = np.zeros(self.n_examples, np.int64)
        for e in es:
            self._require(e)
            total += unpack_rows(self.bits[:, e], self.n_examples).sum(axis=0)
        return total

    def subset(self, networks: Sequence[int]) -> "CorrectnessStore":
        """A store of the given networks only (e.g. to split an ensemble into two)."""
        idx = [_index(i, self.n_networks, "networks") for i in networks]
        if not idx:
            raise ValueError("networks must name at least one network")
        out = CorrectnessStore(len(idx), self.n_checkpoints, self.n_examples, predictions=self.predictions is not None,
                               network_names=None if self.network_names is None else
                               [self.network_names[i] for i in idx], labels=self.labels)
        out.bits[:] = self.bits[idx]
        out.recorded[:] = self.recorded[idx]
        if self.predictions is not None:
            out.predictions[:] = self.predictions[idx]
        return out

    def save(self, path: str) -> None:
        """Write an .npz file (bits, recorded, predictions and labels when kept, metadata as JSON)."""
        meta = {"version": FORMAT_VERSION, "shape": list(self.shape), "network_names": self.network_names}
        arrays = {"bits": self.bits, "recorded": self.recorded, "meta": np.array(json.dumps(meta))}
        if self.predictions is not None:
            arrays["predictions"] = self.predictions
        if self.labels is not None:
            arrays["labels"] = self.labels
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str) -> "CorrectnessStore":
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported correctness-store version {meta.get('version')!r}")
            N, E, n = meta["shape"]
            out = cls(N, E, n, predictions="predictions" in f.files, network_names=meta["network_names"],
                      labels=f["labels"] if "labels" in f.files else None)
            if f["bits"].shape != out.bits.shape:
                raise ValueError(f"{path}: bits have shape {f['bits'].shape}, expected {out.bits.shape}")
            out.bits[:] = f["bits"]
            out.recorded[:] = f["recorded"]
            if out.predictions is not None:
                out.predictions[:] = f["predictions"]
        return out
