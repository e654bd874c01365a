"""Neuron matching end to end on scikit-learn's 8×8 digits: MLPs and CNNs from different seeds.

What it measures (issue 5, item 7), for ``n_seeds`` MLPs (:func:`make_digits_mlp`) and as many
CNNs (:func:`congruence.examples.digits.make_digits_cnn`) trained deterministically from seeds
``0 … n_seeds-1`` with the recipe of :func:`congruence.examples.digits.train_model`:

1. the test accuracy of every network;
2. the **basis correlation** (Brown, Vyas & Bansal 2023; Li et al. 2016) of every hidden layer
   between every pair of different seeds — the mean matched correlation of the one-to-one
   ("hungarian") matching and of the semi-matching ("semi", partners may repeat) — on the
   post-ReLU activations of the test split (convolutions: channels as units over images ×
   positions), with two controls: a network against itself, and against a copy of itself whose
   hidden units are randomly permuted (:func:`congruence.matching.permute_model`), both 1;
3. **shared frozen early layers**: for each pair (a, b), B′ = ``share_frozen_layers(A, fresh
   net of seed b, k)`` trained with seed b (only the unshared layers learn); the basis
   correlation of the layers after the shared ones, against the independent pair (a, b);
4. the **interpolation barrier** (loss and error) between each pair on the test split, without
   alignment, after activation matching (the permutation is fitted on the *training* split's
   activations, so the test split only evaluates) and after weight matching (Git Re-Basin);
5. the wall time of each stage.

Units dead on the test split (a ReLU output constant there, usually 0) correlate with nothing.
They are left out of the *rows* of each matching (A's side) and kept as candidate partners with
correlation 0 on B's side, so a live unit of A that has to pair with a dead unit of B scores 0;
the mean number of dead units is reported per layer. With this convention the one-to-one score
never exceeds the semi-matching score, and a network matched with itself scores exactly 1.

Run it as ``python -m congruence.examples.digits_matching [--seeds N] [--epochs E] [--quick]``;
the default (4 seeds, 12 epochs) takes about half a minute on a 2-core CPU. From Python::

    from congruence.examples.digits_matching import run
    report = run(n_seeds=4)
    print(report.to_markdown())

Needs torch and scikit-learn (``pip install congruence[examples]``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("congruence.examples.digits_matching needs torch (pip install torch)") from exc

from .._engine import ConstantFeatureWarning
from ..matching import (
    align_activations,
    interpolation_barrier,
    match_neurons,
    permutation_groups,
    permute_model,
    share_frozen_layers,
)
from ..models import capture_activations
from .digits import DEFAULT_EPOCHS, accuracy, load_digits_data, make_digits_cnn, train_model

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "DigitsMatchingReport",
    "basis_correlation",
    "hidden_activations",
    "main",
    "make_digits_mlp",
    "run",
]

#: The basis-correlation methods reported (see :func:`congruence.match_neurons`).
METHODS: Tuple[str, ...] = ("hungarian", "semi")
#: The barrier variants: no alignment, activation matching (on the training split), weight matching.
ALIGNS: Tuple[str, ...] = ("none", "activations", "weights")

DEFAULT_SEEDS = 4
DEFAULT_MLP_WIDTH = 128
DEFAULT_SHARED_K: Tuple[int, ...] = (1, 2)
QUICK = {"n_seeds": 2, "epochs": 3, "mlp_width": 64}
EVAL_BATCH_SIZE = 150
BARRIER_ALPHAS = 25


def make_digits_mlp(seed: Optional[int] = None, width: int = DEFAULT_MLP_WIDTH) -> "nn.Sequential":
    """A ReLU MLP for 1×8×8 digits with named layers: 64 → ``width`` → ``width`` → ``width`` → 10.

    ``flatten`` → ``fc1`` → ``relu1`` → ``fc2`` → ``relu2`` → ``fc3`` → ``relu3`` → ``fc4``
    (the logits). Three hidden layers, so that sharing the first two still leaves a hidden
    layer after them to compare. With ``seed`` the initial weights come from
    ``torch.manual_seed(seed)`` without touching the caller's global RNG state.
    """
    width = int(width)
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")

    def build() -> nn.Sequential:
        return nn.Sequential(
            OrderedDict(
                [
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(64, width)),
                    ("relu1", nn.ReLU()),
                    ("fc2", nn.Linear(width, width)),
                    ("relu2", nn.ReLU()),
                    ("fc3", nn.Linear(width, width)),
                    ("relu3", nn.ReLU()),
                    ("fc4", nn.Linear(width, 10)),
                ]
            )
        )

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


@dataclass(frozen=True)
class Architecture:
    """A network family of the example: how to build one, and its hidden (post-ReLU) layers.

    ``hidden[i]`` is the output of the (i+1)-th weight layer, so sharing k weight layers fixes
    ``hidden[:k]`` and leaves ``hidden[k:]`` to compare.
    """

    name: str
    build: Callable[[int, int], "nn.Sequential"]  #: (seed, mlp_width) -> untrained network
    hidden: Tuple[str, ...]


ARCHITECTURES: Tuple[Architecture, ...] = (
    Architecture("MLP", lambda seed, width: make_digits_mlp(seed, width), ("relu1", "relu2", "relu3")),
    Architecture("CNN", lambda seed, width: make_digits_cnn(seed), ("relu1", "relu2", "relu3")),
)


# ----------------------------------------------------------------------------------- the report

PairValues = List[float]  # one value per seed pair, in the order of DigitsMatchingReport.pairs


@dataclass
class DigitsMatchingReport:
    """Every number of :func:`run`. Per-pair lists follow ``pairs``; tables give mean ± std.

    Attributes
    ----------
    seeds, pairs : the seeds trained and the (a, b) pairs compared, a < b.
    epochs, mlp_width, n_train, n_test : the configuration.
    accuracy : arch -> test accuracy per seed.
    units : arch -> layer -> number of units.
    dead_units : arch -> layer -> mean number of units dead on the test split (over seeds).
    basis : arch -> layer -> method -> basis correlation per pair.
    controls : arch -> layer -> {"self_hungarian", "self_semi", "permuted_hungarian",
        "permuted_semi"}: seed 0 against itself and against a permuted copy of itself.
    shared : arch -> k -> layer -> method -> basis correlation per pair of A and B′ (the layers
        after the k shared ones only).
    shared_accuracy : arch -> k -> test accuracy of B′ per pair.
    frozen_unchanged : arch -> k -> whether every shared layer of every B′ still equals A's
        after B′'s training (the freezing held).
    barrier : arch -> align ("none", "activations", "weights") -> {"loss", "error"} per pair.
    barrier_control : arch -> {"loss", "error"}: weight-matched barrier of seed 0 and a permuted
        copy of itself (0 when weight matching recovers the permutation).
    timings : stage -> seconds.
    """

    seeds: List[int]
    pairs: List[Tuple[int, int]]
    epochs: int
    mlp_width: int
    n_train: int
    n_test: int
    accuracy: Dict[str, List[float]] = field(default_factory=dict)
    units: Dict[str, Dict[str, int]] = field(default_factory=dict)
    dead_units: Dict[str, Dict[str, float]] = field(default_factory=dict)
    basis: Dict[str, Dict[str, Dict[str, PairValues]]] = field(default_factory=dict)
    controls: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    shared: Dict[str, Dict[int, Dict[str, Dict[str, PairValues]]]] = field(default_factory=dict)
    shared_accuracy: Dict[str, Dict[int, List[float]]] = field(default_factory=dict)
    frozen_unchanged: Dict[str, Dict[int, bool]] = field(default_factory=dict)
    barrier: Dict[str, Dict[str, Dict[str, PairValues]]] = field(default_factory=dict)
    barrier_control: Dict[str, Dict[str, float]] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The report as Markdown: configuration, then one table per stage."""
        parts = [
            f"{len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}), {len(self.pairs)} pairs, "
            f"{self.epochs} epochs, MLP width {self.mlp_width}; {self.n_train} training / {self.n_test} "
            "test images. Mean ± std over seed pairs (std with ddof=0).",
            "### Test accuracy\n\n" + self._accuracy_table(),
            "### Basis correlation, independent seeds (test split, post-ReLU)\n\n" + self._basis_table(),
            "### Shared frozen early layers (k weight layers copied from A and frozen; B′ trained)\n\n"
            + self._shared_table(),
            "### Interpolation barrier (test split, 25 α values)\n\n" + self._barrier_table(),
            "### Timings\n\n" + self._timings_table(),
        ]
        return "\n\n".join(parts) + "\n"

    def _accuracy_table(self) -> str:
        head = ["network"] + [f"seed {s}" for s in self.seeds] + ["mean"]
        rows = [[arch] + [f"{a:.4f}" for a in accs] + [f"{np.mean(accs):.4f}"]
                for arch, accs in self.accuracy.items()]
        return _table(head, rows)

    def _basis_table(self) -> str:
        head = ["network", "layer", "units", "dead (mean)", "hungarian", "semi", "self (hung./semi)",
                "permuted self (hung./semi)"]
        rows = []
        for arch, layers in self.basis.items():
            for layer, by_method in layers.items():
                c = self.controls[arch][layer]
                rows.append([arch, layer, str(self.units[arch][layer]), f"{self.dead_units[arch][layer]:.1f}",
                             _mean_std(by_method["hungarian"]), _mean_std(by_method["semi"]),
                             f"{c['self_hungarian']:.6f} / {c['self_semi']:.6f}",
                             f"{c['permuted_hungarian']:.6f} / {c['permuted_semi']:.6f}"])
        return _table(head, rows)

    def _shared_table(self) -> str:
        head = ["network", "k shared", "layer", "hungarian, independent", "hungarian, shared", "Δ",
                "semi, independent", "semi, shared", "Δ"]
        rows = []
        for arch, per_k in self.shared.items():
            for k, layers in per_k.items():
                for layer, by_method in layers.items():
                    row = [arch, str(k), layer]
                    for method in METHODS:
                        ind, sh = self.basis[arch][layer][method], by_method[method]
                        row += [_mean_std(ind), _mean_std(sh), f"{np.mean(sh) - np.mean(ind):+.3f}"]
                    rows.append(row)
        acc_rows = [[arch, str(k), str(len(accs)), _mean_std(accs, 4), _mean_std(self.accuracy[arch], 4),
                     "yes" if self.frozen_unchanged[arch][k] else "NO"]
                    for arch, per_k in self.shared_accuracy.items() for k, accs in per_k.items()]
        acc_head = ["network", "k shared", "B′ nets", "B′ test accuracy", "independent nets' accuracy",
                    "shared layers unchanged by training"]
        return _table(head, rows) + "\n\n" + _table(acc_head, acc_rows)

    def _barrier_table(self) -> str:
        head = ["network", "alignment", "barrier (loss)", "barrier (error)"]
        labels = {"none": "none", "activations": "activations (fit on train split)", "weights": "weights"}
        rows = []
        for arch, by_align in self.barrier.items():
            for align, vals in by_align.items():
                rows.append([arch, labels[align], _mean_std(vals["loss"], 4), _mean_std(vals["error"], 4)])
            c = self.barrier_control[arch]
            rows.append([arch, "control: weights, seed 0 vs its permuted copy", f"{c['loss']:.2e}",
                         f"{c['error']:.2e}"])
        return _table(head, rows)

    def _timings_table(self) -> str:
        # Totals first, then the per-architecture split.
        order = sorted(self.timings, key=lambda stage: (":" in stage, stage == "total"))
        rows = [[stage, f"{self.timings[stage]:.2f}"] for stage in order]
        return _table(["stage (wall time)", "seconds"], rows)


def _mean_std(values: Sequence[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- measurements


def hidden_activations(model: "nn.Module", layers: Sequence[str], X: "torch.Tensor") -> Dict[str, np.ndarray]:
    """Post-ReLU activations of ``layers`` on ``X`` as float64 (samples, units) arrays.

    Convolutional maps use channels as units over images × positions (the "positions" policy).
    Float64, so that a unit matched with itself correlates to 1 within rounding of 1e-15 rather
    than float32's 1e-7.
    """
    acts = capture_activations(model, list(layers), X, spatial="positions")
    return {name: a.double().numpy() for name, a in acts.items()}


def _live(X: np.ndarray) -> np.ndarray:
    """Mask of the units that vary over the samples (ReLUs not dead on this data)."""
    return X.std(axis=0) > 0


def basis_correlation(X: np.ndarray, Y: np.ndarray, method: str) -> float:
    """Mean matched correlation of X's live units with Y's units (``hungarian`` or ``semi``).

    X's dead units are left out (nothing to match); Y's stay, correlating 0 with everything, so
    a live unit of X left with only dead partners scores 0 rather than being dropped.
    """
    with warnings.catch_warnings():
        # Y's dead units: their correlations are 0 by the engine's zero_var policy, as intended.
        warnings.simplefilter("ignore", ConstantFeatureWarning)
        return float(match_neurons(X[:, _live(X)], Y, method=method).score)


def _random_permutation_of(model: "nn.Module", seed: int) -> "nn.Module":
    """``model`` with every hidden group's units shuffled (the same function)."""
    rng = np.random.default_rng(seed)
    return permute_model(model, [rng.permutation(g.size) for g in permutation_groups(model)])


def _layer_prefix(model: "nn.Module", k: int) -> List[str]:
    """Names of the modules holding the first ``k`` weight layers (what share_frozen_layers shares)."""
    names = [n for n, m in model.named_children() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return names[:k]


def _same_layers(a: "nn.Module", b: "nn.Module", names: Sequence[str]) -> bool:
    """Whether the parameters of the named modules are bit-identical in ``a`` and ``b``."""
    return all(torch.equal(pa, pb) for n in names
               for pa, pb in zip(a.get_submodule(n).parameters(), b.get_submodule(n).parameters()))


def _batches(X: "torch.Tensor", y: "torch.Tensor") -> List[Tuple["torch.Tensor", "torch.Tensor"]]:
    return [(X[s : s + EVAL_BATCH_SIZE], y[s : s + EVAL_BATCH_SIZE]) for s in range(0, len(X), EVAL_BATCH_SIZE)]


def _barriers(a: "nn.Module", b: "nn.Module", test: list, train_inputs: list) -> Dict[str, Tuple[float, float]]:
    """(loss, error) barriers of a pair on the test batches, for each entry of ALIGNS."""
    out = {}
    for align in ALIGNS:
        if align == "activations":
            # Fit the permutation on the training split so the test split only evaluates it.
            b_prime, _ = align_activations(a, b, train_inputs)
            res = interpolation_barrier(a, b_prime, test, alphas=BARRIER_ALPHAS)
        else:
            res = interpolation_barrier(a, b, test, align=None if align == "none" else align,
                                        alphas=BARRIER_ALPHAS)
        out[align] = (res.barrier_loss, res.barrier_error)
    return out


# ----------------------------------------------------------------------------------- the stages


def _train_all(arch: Architecture, report: DigitsMatchingReport, data: tuple, num_threads: int,
               verbose: bool) -> List["nn.Module"]:
    X_tr, y_tr, X_te, y_te = data
    models = []
    for seed in report.seeds:
        model = train_model(arch.build(seed, report.mlp_width), seed, epochs=report.epochs, X_train=X_tr,
                            y_train=y_tr, num_threads=num_threads)
        models.append(model)
    report.accuracy[arch.name] = [accuracy(m, X_te, y_te) for m in models]
    if verbose:
        print(f"{arch.name}: test accuracy " + ", ".join(f"{a:.4f}" for a in report.accuracy[arch.name]))
    return models


def _basis_stage(arch: Architecture, report: DigitsMatchingReport, models: list, X_te: "torch.Tensor") -> list:
    acts = [hidden_activations(m, arch.hidden, X_te) for m in models]
    report.units[arch.name] = {layer: int(acts[0][layer].shape[1]) for layer in arch.hidden}
    report.dead_units[arch.name] = {
        layer: float(np.mean([np.sum(~_live(a[layer])) for a in acts])) for layer in arch.hidden}
    report.basis[arch.name] = {
        layer: {method: [basis_correlation(acts[i][layer], acts[j][layer], method)
                         for i, j in _pair_indices(report)] for method in METHODS}
        for layer in arch.hidden}
    permuted = hidden_activations(_random_permutation_of(models[0], seed=12345), arch.hidden, X_te)
    report.controls[arch.name] = {
        layer: {f"{who}_{method}": basis_correlation(acts[0][layer], other[layer], method)
                for who, other in (("self", acts[0]), ("permuted", permuted)) for method in METHODS}
        for layer in arch.hidden}
    return acts


def _shared_stage(arch: Architecture, report: DigitsMatchingReport, models: list, acts: list, data: tuple,
                  ks: Sequence[int], num_threads: int, verbose: bool) -> None:
    X_tr, y_tr, X_te, y_te = data
    report.shared[arch.name], report.shared_accuracy[arch.name] = {}, {}
    report.frozen_unchanged[arch.name] = {}
    for k in ks:
        layers = arch.hidden[k:]
        per_layer: Dict[str, Dict[str, PairValues]] = {layer: {m: [] for m in METHODS} for layer in layers}
        accs, frozen_ok = [], True
        for (i, j), (_, seed_b) in zip(_pair_indices(report), report.pairs):
            b_shared = share_frozen_layers(models[i], arch.build(seed_b, report.mlp_width), k)
            train_model(b_shared, seed_b, epochs=report.epochs, X_train=X_tr, y_train=y_tr, num_threads=num_threads)
            frozen_ok &= _same_layers(models[i], b_shared, _layer_prefix(b_shared, k))
            accs.append(accuracy(b_shared, X_te, y_te))
            acts_b = hidden_activations(b_shared, layers, X_te)
            for layer in layers:
                for method in METHODS:
                    per_layer[layer][method].append(basis_correlation(acts[i][layer], acts_b[layer], method))
        report.shared[arch.name][k] = per_layer
        report.shared_accuracy[arch.name][k] = accs
        report.frozen_unchanged[arch.name][k] = bool(frozen_ok)
        if verbose:
            print(f"{arch.name}, k={k} shared: B′ accuracy {_mean_std(accs, 4)}")


def _barrier_stage(arch: Architecture, report: DigitsMatchingReport, models: list, data: tuple) -> None:
    X_tr, y_tr, X_te, y_te = data
    test = _batches(X_te, y_te)
    train_inputs = [x for x, _ in _batches(X_tr, y_tr)]
    per_align: Dict[str, Dict[str, PairValues]] = {a: {"loss": [], "error": []} for a in ALIGNS}
    for i, j in _pair_indices(report):
        for align, (loss, err) in _barriers(models[i], models[j], test, train_inputs).items():
            per_align[align]["loss"].append(loss)
            per_align[align]["error"].append(err)
    report.barrier[arch.name] = per_align
    control = interpolation_barrier(models[0], _random_permutation_of(models[0], seed=54321), test,
                                    align="weights", alphas=BARRIER_ALPHAS)
    report.barrier_control[arch.name] = {"loss": control.barrier_loss, "error": control.barrier_error}


def _pair_indices(report: DigitsMatchingReport) -> List[Tuple[int, int]]:
    index = {s: n for n, s in enumerate(report.seeds)}
    return [(index[a], index[b]) for a, b in report.pairs]


def run(
    n_seeds: int = DEFAULT_SEEDS,
    epochs: int = DEFAULT_EPOCHS,
    mlp_width: int = DEFAULT_MLP_WIDTH,
    num_threads: Optional[int] = 1,
    verbose: bool = False,
    *,
    shared_k: Sequence[int] = DEFAULT_SHARED_K,
) -> DigitsMatchingReport:
    """Train the networks and measure everything in the module docstring.

    Parameters
    ----------
    n_seeds : int
        Networks per architecture (seeds 0 … n_seeds-1); at least 2. Every pair is compared.
    epochs : int
        Training epochs of every network (also of the B′ networks with shared layers).
    mlp_width : int
        Units of each hidden layer of the MLP.
    num_threads : int or None
        torch's thread count during training (1: fastest for these nets, and reproducible).
    verbose : bool
        Print progress.
    shared_k : sequence of int
        Numbers of shared frozen weight layers to try (each < the number of hidden layers, so a
        hidden layer is left to compare).

    Returns
    -------
    DigitsMatchingReport
    """
    n_seeds, epochs = int(n_seeds), int(epochs)
    if n_seeds < 2:
        raise ValueError(f"n_seeds must be >= 2 (pairs of different seeds are compared), got {n_seeds}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    for k in shared_k:
        if not 1 <= int(k) < min(len(a.hidden) for a in ARCHITECTURES):
            raise ValueError(f"shared_k values must lie in [1, {min(len(a.hidden) for a in ARCHITECTURES) - 1}]; "
                             f"got {k}")
    data = load_digits_data(seed=0)
    seeds = list(range(n_seeds))
    report = DigitsMatchingReport(seeds=seeds, pairs=list(combinations(seeds, 2)), epochs=epochs,
                                  mlp_width=int(mlp_width), n_train=len(data[0]), n_test=len(data[2]))
    stage_names = ("training", "basis correlation", "shared frozen layers", "barrier")
    for stage in stage_names:
        report.timings[stage] = 0.0
    t_start = time.perf_counter()
    for arch in ARCHITECTURES:
        t0 = time.perf_counter()
        models = _train_all(arch, report, data, num_threads, verbose)
        t1 = time.perf_counter()
        acts = _basis_stage(arch, report, models, data[2])
        t2 = time.perf_counter()
        _shared_stage(arch, report, models, acts, data, [int(k) for k in shared_k], num_threads, verbose)
        t3 = time.perf_counter()
        _barrier_stage(arch, report, models, data)
        t4 = time.perf_counter()
        for stage, dt in zip(stage_names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            report.timings[stage] += dt
            report.timings[f"{arch.name}: {stage}"] = dt
    report.timings["total"] = time.perf_counter() - t_start
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m congruence.examples.digits_matching``: run and print the Markdown tables."""
    parser = argparse.ArgumentParser(
        prog="python -m congruence.examples.digits_matching",
        description="Neuron matching of MLPs and CNNs trained from different seeds on the 8x8 digits: basis "
                    "correlation, shared frozen early layers, and the interpolation barrier with and without "
                    "alignment.")
    parser.add_argument("--seeds", type=int, default=None, help=f"networks per architecture (default {DEFAULT_SEEDS})")
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument("--mlp-width", type=int, default=None, help=f"MLP hidden width (default {DEFAULT_MLP_WIDTH})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a fast smoke run: {QUICK['n_seeds']} seeds, {QUICK['epochs']} epochs, MLP width "
                             f"{QUICK['mlp_width']} (explicit options still win)")
    parser.add_argument("--verbose", action="store_true", help="print progress")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else {"n_seeds": DEFAULT_SEEDS, "epochs": DEFAULT_EPOCHS, "mlp_width": DEFAULT_MLP_WIDTH}
    report = run(
        n_seeds=args.seeds if args.seeds is not None else base["n_seeds"],
        epochs=args.epochs if args.epochs is not None else base["epochs"],
        mlp_width=args.mlp_width if args.mlp_width is not None else base["mlp_width"],
        verbose=args.verbose,
    )
    print(report.to_markdown(), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    raise SystemExit(main())
