"""Two small CNNs on scikit-learn's 8×8 digits: the default job of ``congruence compare``.

The data are scikit-learn's bundled copy of the UCI optical-recognition digits (1,797 images,
8×8, 16 grey levels; ``sklearn.datasets.load_digits`` reads them from the installed package, no
download). The network is a ~21k-parameter CNN whose layers are named, so a comparison table
reads ``conv1 … fc2`` rather than ``0 … 8``::

    from congruence.examples.digits import default_job
    job = default_job(seed_a=0, seed_b=1)          # trains two models, ~1-2 s each on a CPU
    print(job.accuracy_a, job.accuracy_b)          # ≈ 0.97–0.98 on the held-out quarter
    # job.model_a, job.model_b, job.batches (the test split, input tensors only)

Training is deterministic for a seed: the initial weights come from ``torch.manual_seed(seed)``
(inside :func:`torch.random.fork_rng`, so the caller's global RNG state is left as it was), the
shuffling from a private :class:`torch.Generator` seeded the same way, and
``torch.use_deterministic_algorithms`` is switched on for the duration (warn-only, then restored).
Bit-identical weights are promised for the same seed, recipe, thread count and torch build on the
same kind of CPU; a different thread count changes the float rounding of the reductions (so the
default is a fixed single thread, ``num_threads=1``).

Needs torch and scikit-learn (``pip install congruence[examples]``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("congruence.examples.digits needs torch (pip install torch)") from exc

__all__ = [
    "LAYERS",
    "DigitsJob",
    "accuracy",
    "default_job",
    "load_digits_data",
    "make_digits_cnn",
    "train_digits_cnn",
    "train_model",
]

#: The named layers of :func:`make_digits_cnn`, input to output (``fc2`` gives the logits).
LAYERS: Tuple[str, ...] = ("conv1", "relu1", "conv2", "relu2", "pool", "flatten", "fc1", "relu3", "fc2")

# The training recipe (see train_digits_cnn): Adam, lr 3e-3 with cosine decay, batch 32.
DEFAULT_EPOCHS = 12
DEFAULT_BATCH_SIZE = 32
DEFAULT_LR = 3e-3
DEFAULT_WEIGHT_DECAY = 1e-4


def load_digits_data(
    seed: int = 0, test_fraction: float = 0.25
) -> Tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """The 8×8 digits as ``(X_train, y_train, X_test, y_test)``.

    ``X_*`` are float32 tensors of shape ``(N, 1, 8, 8)`` scaled to [0, 1] (the raw pixels are
    0…16); ``y_*`` are int64 class labels 0…9. The split is stratified by class and fixed by
    ``seed`` (``sklearn.model_selection.train_test_split``); the default split holds out 450 of
    the 1,797 images.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError(
            "congruence.examples.digits needs scikit-learn for the digits data (pip install scikit-learn)"
        ) from exc
    test_fraction = float(test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    X, y = load_digits(return_X_y=True)
    X = (np.asarray(X, dtype=np.float64) / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = np.asarray(y, dtype=np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_fraction, random_state=int(seed), stratify=y
    )
    return (
        torch.from_numpy(np.ascontiguousarray(X_tr)),
        torch.from_numpy(np.ascontiguousarray(y_tr)),
        torch.from_numpy(np.ascontiguousarray(X_te)),
        torch.from_numpy(np.ascontiguousarray(y_te)),
    )


def make_digits_cnn(seed: Optional[int] = None) -> "nn.Sequential":
    """A small CNN for 1×8×8 inputs with named layers (21,546 parameters).

    ``conv1`` (1→16, 3×3, pad 1) → ``relu1`` → ``conv2`` (16→32, 3×3, pad 1) → ``relu2`` →
    ``pool`` (2×2 max, → 32×4×4) → ``flatten`` (512) → ``fc1`` (512→32) → ``relu3`` → ``fc2``
    (32→10, the logits). The ReLUs are not in-place, so a forward hook on ``conv1`` sees the
    pre-activation values. With ``seed`` the initial weights come from ``torch.manual_seed(seed)``
    without touching the caller's global RNG state; without it, from the global RNG as usual.
    """
    def build() -> nn.Sequential:
        return nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(1, 16, kernel_size=3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(16, 32, kernel_size=3, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("pool", nn.MaxPool2d(2)),
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(32 * 4 * 4, 32)),
                    ("relu3", nn.ReLU()),
                    ("fc2", nn.Linear(32, 10)),
                ]
            )
        )

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def _set_deterministic(mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms`` without its import of ``torch._inductor.config``.

    The public function also sets inductor's flag, and importing that config pulls in
    ``torch._dynamo`` (~800 modules, about a second); eager CPU training needs only the ATen flag.
    Where the private setter is missing, or inductor is loaded already, the public function is used.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


@contextlib.contextmanager
def _deterministic(seed: int, num_threads: Optional[int], deterministic: bool) -> Iterator[None]:
    """Seeded global RNG (forked), optional thread count and deterministic algorithms; all restored."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            if num_threads is not None:
                if int(num_threads) < 1:
                    raise ValueError(f"num_threads must be >= 1, got {num_threads}")
                torch.set_num_threads(int(num_threads))
            if deterministic:
                _set_deterministic(True, warn_only=True)
            yield
        finally:
            if deterministic:
                _set_deterministic(prev_det, warn_only=prev_warn)
            if num_threads is not None:
                torch.set_num_threads(prev_threads)


class _Adam:
    """Adam (L2 weight decay, as ``torch.optim.Adam``) with a cosine decay of the rate to zero.

    Written out rather than taken from ``torch.optim``: constructing a ``torch.optim`` optimizer
    imports ``torch._dynamo`` (~800 modules, about a second), longer than this network takes to
    train an epoch. Same update as ``torch.optim.Adam`` + ``CosineAnnealingLR`` stepped per batch.
    """

    def __init__(self, params, *, lr: float, weight_decay: float, total_steps: int,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = params
        self.lr, self.weight_decay, self.total_steps = float(lr), float(weight_decay), int(total_steps)
        self.b1, self.b2, self.eps = float(betas[0]), float(betas[1]), float(eps)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        lr = self.lr * 0.5 * (1.0 + math.cos(math.pi * min(self.t, self.total_steps) / self.total_steps))
        self.t += 1
        bc1, bc2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.mul_(self.b1).add_(g, alpha=1.0 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1.0 - self.b2)
            p.addcdiv_(m, (v.sqrt() / math.sqrt(bc2)).add_(self.eps), value=-lr / bc1)


@torch.no_grad()
def accuracy(model: "nn.Module", X: "torch.Tensor", y: "torch.Tensor", batch_size: int = 512) -> float:
    """Fraction of ``X`` (N, 1, 8, 8) that ``model`` classifies as ``y``; evaluated in eval mode."""
    was_training = model.training
    model.eval()
    try:
        correct = 0
        for s in range(0, len(X), batch_size):
            correct += int((model(X[s : s + batch_size]).argmax(dim=1) == y[s : s + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / max(len(X), 1)


def _check_training_data(X_train: "torch.Tensor", y_train: "torch.Tensor") -> None:
    """Inputs batched along dim 0 and one label per input."""
    if X_train.ndim < 2:
        raise ValueError(f"X_train must have shape (N, ...), got {tuple(X_train.shape)}")
    if y_train.shape != (X_train.shape[0],):
        raise ValueError(f"y_train must have shape ({X_train.shape[0]},), got {tuple(y_train.shape)}")


def _default_training_data(
    X_train: Optional["torch.Tensor"], y_train: Optional["torch.Tensor"]
) -> Tuple["torch.Tensor", "torch.Tensor"]:
    """The given training data as float32 / int64 tensors, or the training split of ``seed=0``."""
    if (X_train is None) != (y_train is None):
        raise ValueError("give both X_train and y_train, or neither")
    if X_train is None:
        X_train, y_train, _, _ = load_digits_data(seed=0)
    return torch.as_tensor(X_train, dtype=torch.float32), torch.as_tensor(y_train, dtype=torch.int64)


def train_model(
    model: "nn.Module",
    seed: int = 0,
    *,
    epochs: int = DEFAULT_EPOCHS,
    X_train: Optional["torch.Tensor"] = None,
    y_train: Optional["torch.Tensor"] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    num_threads: Optional[int] = 1,
    deterministic: bool = True,
    verbose: bool = False,
) -> "nn.Module":
    """Train ``model`` in place with the recipe of :func:`train_digits_cnn`; returns it in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        Any classifier of ``X_train`` (logits out). Parameters with ``requires_grad=False`` (e.g.
        layers shared and frozen by :func:`congruence.matching.share_frozen_layers`) are left
        exactly as they are: the optimizer is given only the trainable ones.
    seed : int
        Seeds the minibatch order (a private ``torch.Generator``) and the global RNG for the
        duration (forked, so the caller's stream is untouched); the initial weights are the
        model's own.
    epochs, batch_size, lr, weight_decay
        Adam with L2 ``weight_decay`` and a cosine decay of ``lr`` to zero over ``epochs`` epochs
        of shuffled minibatches of ``batch_size`` (the last partial batch kept); cross-entropy.
    X_train, y_train : torch.Tensor, optional
        Inputs (N, ...) and int64 labels (N,); default: the training split of
        :func:`load_digits_data` (``seed=0``).
    num_threads : int or None
        torch's intra-op thread count for the duration (None: leave it as it is).
    deterministic : bool
        Switch on ``torch.use_deterministic_algorithms`` (warn-only) for the duration.
    verbose : bool
        Print the mean training loss of every epoch.

    Returns
    -------
    torch.nn.Module
        ``model`` itself, trained, in eval mode.
    """
    X_train, y_train = _default_training_data(X_train, y_train)
    _check_training_data(X_train, y_train)
    epochs, batch_size = int(epochs), int(batch_size)
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")

    n = X_train.shape[0]
    with _deterministic(seed, num_threads, deterministic):
        model.train()
        gen = torch.Generator().manual_seed(int(seed))
        steps_per_epoch = (n + batch_size - 1) // batch_size
        # Only the trainable parameters: frozen ones get no moments and no weight decay.
        opt = _Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay,
                    total_steps=max(epochs * steps_per_epoch, 1))
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for s in range(0, n, batch_size):
                idx = perm[s : s + batch_size]
                for p in opt.params:
                    p.grad = None
                loss = loss_fn(model(X_train[idx]), y_train[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            if verbose:
                print(f"  seed {seed} epoch {epoch + 1}/{epochs}: loss {total / n:.4f}")
    model.eval()
    return model


def train_digits_cnn(
    seed: int = 0,
    *,
    epochs: int = DEFAULT_EPOCHS,
    X_train: Optional["torch.Tensor"] = None,
    y_train: Optional["torch.Tensor"] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    num_threads: Optional[int] = 1,
    deterministic: bool = True,
    verbose: bool = False,
) -> "nn.Sequential":
    """Train :func:`make_digits_cnn` on the digits; returns the model on the CPU in eval mode.

    Recipe: weights initialised after ``torch.manual_seed(seed)``; Adam (``lr``, ``weight_decay``)
    with a cosine learning-rate decay to zero over ``epochs`` epochs of shuffled minibatches of
    ``batch_size`` (the order from a ``torch.Generator`` seeded with ``seed``; the last partial
    batch is kept); cross-entropy loss. ``X_train``/``y_train`` default to the training split of
    :func:`load_digits_data` (``seed=0``). ``num_threads`` sets torch's intra-op thread count for
    the duration (None: leave it as it is). The default, 1, is both the fastest for a network
    this small (per-op work is tiny; two threads gain ~20% on an idle 2-core machine and lose 4×
    when the other core is busy) and what makes the weights the same on machines with different
    core counts. The caller's global RNG state, thread count and deterministic setting are
    restored afterwards. The loop is :func:`train_model`'s.
    """
    X_train, y_train = _default_training_data(X_train, y_train)
    if X_train.ndim != 4 or tuple(X_train.shape[1:]) != (1, 8, 8):
        raise ValueError(f"X_train must have shape (N, 1, 8, 8), got {tuple(X_train.shape)}")
    # Same initial weights as building the net right after torch.manual_seed(seed): training
    # itself draws nothing from the global RNG (the batch order has its own generator).
    return train_model(
        make_digits_cnn(seed), seed, epochs=epochs, X_train=X_train, y_train=y_train, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, num_threads=num_threads, deterministic=deterministic, verbose=verbose,
    )


@dataclass
class DigitsJob:
    """What :func:`default_job` returns: two trained models and the evaluation data."""

    model_a: "nn.Sequential"
    model_b: "nn.Sequential"
    accuracy_a: float
    accuracy_b: float
    seconds_a: float  #: wall-clock training time of model A
    seconds_b: float
    X_test: "torch.Tensor"  #: (N, 1, 8, 8) float32, the held-out split
    y_test: "torch.Tensor"
    batches: List["torch.Tensor"] = field(default_factory=list)  #: X_test in input batches, for compare(data=...)
    seed_a: int = 0
    seed_b: int = 1
    layers: Tuple[str, ...] = LAYERS

    @property
    def accuracies(self) -> Tuple[float, float]:
        return (self.accuracy_a, self.accuracy_b)


def default_job(
    seed_a: int = 0,
    seed_b: int = 1,
    *,
    data_seed: int = 0,
    test_fraction: float = 0.25,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    eval_batch_size: int = 150,
    num_threads: Optional[int] = 1,
    verbose: bool = False,
) -> DigitsJob:
    """Train two digits CNNs that differ only in their seed; return them with the test split.

    Both see the same data split (``data_seed``) and recipe; ``seed_a``/``seed_b`` set their
    initial weights and shuffling. ``batches`` holds the test inputs (no labels) in batches of
    ``eval_batch_size``, ready for ``congruence.compare(job.model_a, job.model_b,
    job.batches)``. With ``verbose`` each model's accuracy and training time are printed.
    """
    if seed_a == seed_b and verbose:
        print(f"note: seed_a == seed_b == {seed_a}: the two models will be identical")
    X_tr, y_tr, X_te, y_te = load_digits_data(seed=data_seed, test_fraction=test_fraction)
    models, accs, secs = [], [], []
    for label, seed in (("A", seed_a), ("B", seed_b)):
        t0 = time.perf_counter()
        model = train_digits_cnn(
            seed, epochs=epochs, X_train=X_tr, y_train=y_tr, batch_size=batch_size, num_threads=num_threads
        )
        dt = time.perf_counter() - t0
        acc = accuracy(model, X_te, y_te)
        if verbose:
            print(f"model {label} (seed {seed}): test accuracy {acc:.4f} ({len(X_te)} images), trained in {dt:.2f} s")
        models.append(model)
        accs.append(acc)
        secs.append(dt)
    eval_batch_size = max(int(eval_batch_size), 1)
    batches = [X_te[s : s + eval_batch_size] for s in range(0, len(X_te), eval_batch_size)]
    return DigitsJob(
        model_a=models[0], model_b=models[1], accuracy_a=accs[0], accuracy_b=accs[1],
        seconds_a=secs[0], seconds_b=secs[1], X_test=X_te, y_test=y_te, batches=batches,
        seed_a=int(seed_a), seed_b=int(seed_b),
    )
