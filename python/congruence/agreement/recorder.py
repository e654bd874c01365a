"""Recording per-example correctness of many networks while they train (METHODS.md §7.1).

``CorrectnessRecorder.record`` takes a batch of outputs (logits or probabilities (b, C), or
predicted labels (b,)) and marks each example correct when its top-1 prediction equals the label
(``top_k > 1``: when the label is among the top k; argmax ties go to the lowest class).
``evaluate`` runs a torch model over a loader; ``callback`` returns an ``on_epoch_end(model,
epoch)`` hook for a training loop, recording checkpoint ``epoch − first_epoch`` (one checkpoint per
epoch, the initialisation excluded: METHODS' Library choice for accessibility).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from .store import CorrectnessStore

__all__ = ["CorrectnessRecorder", "top_k_correct"]


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def top_k_correct(outputs: np.ndarray, labels: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(correct, top-1 prediction) of scores (b, C) against labels (b,); predictions (b,) also accepted
    for k = 1. Ties rank the lower class first."""
    out = np.asarray(outputs)
    if out.ndim == 1:
        if k != 1:
            raise ValueError("top_k > 1 needs scores (b, C), not predicted labels")
        pred = out.astype(np.int64)
        return pred == labels, pred
    if out.ndim != 2:
        raise ValueError(f"outputs must be scores (b, C) or labels (b,); got shape {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError("outputs contain NaN or Inf values")
    pred = np.argmax(out, axis=1)  # first maximum: the lowest class among ties
    if k == 1:
        return pred == labels, pred
    # rank of the label = classes scoring higher, plus equal-scoring lower classes
    lab = out[np.arange(len(labels)), labels]
    higher = (out > lab[:, None]).sum(1) + ((out == lab[:, None]) & (np.arange(out.shape[1]) < labels[:, None])).sum(1)
    return higher < k, pred


class CorrectnessRecorder:
    """Collects correctness (and top-1 predictions) of many networks over checkpoints.

    Parameters
    ----------
    labels : array_like of int, shape (n_examples,)
    n_networks, n_checkpoints : int
    top_k : int
        Correct = the label is among the top k scores (1: top-1 accuracy).
    keep_predictions : bool
        Store each network's top-1 prediction too (for agreement matrices).
    network_names : sequence of str, optional

    Attributes
    ----------
    store : CorrectnessStore
    """

    def __init__(self, labels: Any, n_networks: int, n_checkpoints: int = 1, *, top_k: int = 1,
                 keep_predictions: bool = True, network_names: Optional[Sequence[str]] = None) -> None:
        lab = _to_numpy(labels)
        if lab.ndim != 1 or lab.size == 0 or not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0:
            raise ValueError("labels must be a non-empty 1-D array of non-negative integers")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer; got {top_k!r}")
        self.labels = lab.astype(np.int64)
        self.top_k = int(top_k)
        self.store = CorrectnessStore(n_networks, n_checkpoints, lab.size, predictions=keep_predictions,
                                      network_names=network_names, labels=self.labels)

    def record(self, network: int, checkpoint: int, outputs: Any, *, indices: Optional[Any] = None) -> np.ndarray:
        """Record a batch: ``outputs`` for the examples ``indices`` (default: all examples, in order).
        Returns the batch's correctness (bool)."""
        out = _to_numpy(outputs)
        idx = None if indices is None else _to_numpy(indices).astype(np.int64).ravel()
        lab = self.labels if idx is None else self.labels[idx] if idx.size and idx.min() >= 0 and \
            idx.max() < self.labels.size else None
        if lab is None:
            raise ValueError(f"indices must lie in [0, {self.labels.size})")
        if out.shape[0] != lab.size:
            raise ValueError(f"outputs have {out.shape[0]} rows for {lab.size} examples")
        if out.ndim == 2 and out.shape[1] <= int(lab.max()):
            raise ValueError(f"outputs have {out.shape[1]} classes but a label is {int(lab.max())}")
        correct, pred = top_k_correct(out, lab, self.top_k)
        self.store.set(network, checkpoint, correct, indices=idx,
                       predictions=pred if self.store.predictions is not None else None)
        return correct

    def evaluate(self, model: Any, loader: Any, network: int, checkpoint: int, *, device: Any = None) -> float:
        """Run ``model`` (eval mode, no grad) over ``loader`` and record; returns the accuracy.

        The loader yields (inputs, labels) in example order, or (inputs, labels, indices); the labels
        are checked against the recorder's so that a shuffled loader cannot be recorded silently."""
        import torch

        was = model.training
        model.eval()
        pos, hits, total = 0, 0, 0
        try:
            with torch.no_grad():
                for batch in loader:
                    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
                        raise ValueError("loader must yield (inputs, labels) or (inputs, labels, indices)")
                    x, y = batch[0], _to_numpy(batch[1]).astype(np.int64)
                    idx = np.arange(pos, pos + len(y)) if len(batch) == 2 else _to_numpy(batch[2]).astype(np.int64)
                    pos += len(y)
                    if idx.size and (idx.max() >= self.labels.size or not np.array_equal(self.labels[idx], y)):
                        raise ValueError("the loader's labels differ from the recorder's at these positions: use an "
                                         "unshuffled loader, or yield (inputs, labels, indices)")
                    out = model(x if device is None else x.to(device))
                    hits += int(self.record(network, checkpoint, out, indices=idx).sum())
                    total += len(y)
        finally:
            model.train(was)
        return hits / max(total, 1)

    def callback(self, loader: Any, network: int, *, first_epoch: int = 1,
                 device: Any = None) -> Callable[[Any, int], float]:
        """An ``on_epoch_end(model, epoch)`` hook recording checkpoint ``epoch − first_epoch``."""
        def on_epoch_end(model: Any, epoch: int) -> float:
            return self.evaluate(model, loader, network, int(epoch) - int(first_epoch), device=device)

        return on_epoch_end
