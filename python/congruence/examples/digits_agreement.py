"""Functional agreement across many networks on scikit-learn's 8×8 digits (issue 8's example).

Hacohen, Choshen & Weinshall 2020, "Let's Agree to Agree" (METHODS.md §7.1). Three ensembles are
trained on one fixed split of the digits (1,297 training / 500 test images, stratified, seeded):

- **A** and **B**: ``n_networks`` MLPs each (:func:`make_agreement_mlp`, 64 → 128 → 64 → 10, ReLU);
- **C**: ``n_networks_c`` (default 10) CNNs of a different architecture
  (:func:`congruence.examples.digits.make_digits_cnn`).

Every network has its own initialisation seed and its own data order (a private
``torch.Generator`` for the minibatch shuffling), both drawn from
``numpy.random.SeedSequence([seed, ensemble, network])``, so no two networks share either. The
recipe is Adam with a *small* learning rate (1e-3, cosine decay to zero, batch 32) over 20
epochs, so that the accuracy rises over several epochs (learning order means something only if
examples are learned at different times) and still ends near 95% on the test split.

After every epoch a :class:`congruence.agreement.CorrectnessRecorder` callback records, for every
network, which training and which test examples it classifies correctly (unshuffled evaluation
batches; one checkpoint per epoch, the initialisation excluded). From the six stores:

1. the accuracy of every ensemble (final, and its mean over the networks after each epoch);
2. the **TP-agreement histogram** h_k (k = 0..N networks correct) of every ensemble against the
   Poisson-binomial independence null: h_0 and h_N against Π(1 − p_i) and Π p_i, the total
   variation distance, the χ² goodness of fit (p-value) and the dispersion ratio;
3. the **all-or-none** fractions (right by all, right by none, |all| / |any|);
4. **learning-order constancy**: Pearson and Spearman correlation of the accessibility
   acc(x) = mean over networks and epochs of c, between A and B (same architecture), A and C and
   B and C (different architectures), on the training and on the test split;
5. the **superset test** between the weaker and the stronger architecture (by mean final test
   accuracy): containment |L_W ∩ L_S| / |L_W| against the baseline |L_S| / n, and the
   accessibility correlation over the first 20% of the epochs;
6. the mean pairwise top-1 **agreement** and **error consistency** (Cohen's κ) on the test split at
   the final epoch, within each ensemble and between ensembles;
7. the wall time of each stage.

Run it as ``python -m congruence.examples.digits_agreement [--networks N] [--epochs E] [--seed S]
[--out DIR] [--quick]``; the default (20 + 20 MLPs, 10 CNNs, 20 epochs) takes about a minute on
a 2-core CPU. With ``--out DIR`` it writes ``digits_agreement.json`` (every number), three PNG
figures (the A test histogram against the null, the accessibility scatter plots, the accuracy
curves) and the six correctness stores (``store_<ensemble>_<split>.npz``, readable with
:meth:`congruence.agreement.CorrectnessStore.load`). From Python::

    from congruence.examples.digits_agreement import run
    report = run(n_networks=20)
    print(report.to_markdown())

Needs torch and scikit-learn, and matplotlib for the figures (``pip install congruence[examples]``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("congruence.examples.digits_agreement needs torch (pip install torch)") from exc

from ..agreement import (CorrectnessRecorder, CorrectnessStore, UndefinedKappaWarning, agreement_matrix,
                         all_or_none, accessibility, error_consistency, learning_order_constancy, superset_test,
                         tp_histogram)
from .digits import _Adam, _deterministic, make_digits_cnn
from .digits_matching import _table

__all__ = ["DigitsAgreementReport", "ENSEMBLES", "Ensemble", "load_split", "main", "make_agreement_mlp",
           "network_seeds", "plot_curves", "plot_histogram", "plot_learning_order", "run", "train_recorded",
           "write_json"]

DEFAULT_NETWORKS = 20  #: networks in each of A and B
DEFAULT_NETWORKS_C = 10  #: networks in C (a CNN costs ~5× an MLP to train)
DEFAULT_EPOCHS = 20
DEFAULT_LR = 1e-3
DEFAULT_BATCH_SIZE = 32
DEFAULT_WEIGHT_DECAY = 0.0
DEFAULT_SEED = 0
N_TEST = 500  #: 1,797 − 500 = 1,297 training images
EVAL_BATCH_SIZE = 500
QUICK = {"n_networks": 5, "n_networks_c": 3, "epochs": 6}
SPLITS: Tuple[str, ...] = ("train", "test")
JSON_NAME = "digits_agreement.json"
FIGURES = {"histogram": "tp_histogram_A_test.png", "order": "learning_order.png", "curves": "accuracy_curves.png"}


def make_agreement_mlp(seed: Optional[int] = None) -> "nn.Sequential":
    """A ReLU MLP for 1×8×8 digits with named layers: 64 → 128 → 64 → 10 (17,226 parameters).

    ``flatten`` → ``fc1`` → ``relu1`` → ``fc2`` → ``relu2`` → ``fc3`` (the logits). With ``seed``
    the initial weights come from ``torch.manual_seed(seed)`` without touching the caller's global
    RNG state.
    """
    def build() -> nn.Sequential:
        return nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(64, 128)),
            ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(128, 64)),
            ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(64, 10)),
        ]))

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


@dataclass(frozen=True)
class Ensemble:
    """One ensemble of the example: its name, its architecture and how to build a network."""

    name: str
    architecture: str
    build: Callable[[int], "nn.Module"]  #: init seed -> untrained network


#: A and B share the MLP architecture; C is the CNN.
ENSEMBLES: Tuple[Ensemble, ...] = (
    Ensemble("A", "MLP 64-128-64-10", make_agreement_mlp),
    Ensemble("B", "MLP 64-128-64-10", make_agreement_mlp),
    Ensemble("C", "CNN (make_digits_cnn)", make_digits_cnn),
)


def network_seeds(seed: int, ensemble: int, network: int) -> Tuple[int, int]:
    """(initialisation seed, data-order seed) of one network, from ``SeedSequence([seed, ensemble,
    network])``: independent across networks and ensembles, and the two differ within a network."""
    init, order = np.random.SeedSequence([int(seed), int(ensemble), int(network)]).generate_state(2, np.uint32)
    return int(init), int(order)


def load_split(seed: int = 0, n_test: int = N_TEST) -> Tuple["torch.Tensor", ...]:
    """The 8×8 digits as ``(X_train, y_train, X_test, y_test)``, ``n_test`` images held out.

    As :func:`congruence.examples.digits.load_digits_data` (float32 (N, 1, 8, 8) in [0, 1], int64
    labels, stratified ``train_test_split`` with ``random_state=seed``) but with an exact test size.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError("congruence.examples.digits_agreement needs scikit-learn for the digits data "
                          "(pip install scikit-learn)") from exc
    X, y = load_digits(return_X_y=True)
    X = (np.asarray(X, dtype=np.float64) / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = np.asarray(y, dtype=np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=int(n_test), random_state=int(seed), stratify=y)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (X_tr, y_tr, X_te, y_te))


def train_recorded(model: "nn.Module", X_train: "torch.Tensor", y_train: "torch.Tensor", *, order_seed: int,
                   epochs: int, callbacks: Sequence[Callable[[Any, int], Any]] = (), lr: float = DEFAULT_LR,
                   batch_size: int = DEFAULT_BATCH_SIZE, weight_decay: float = DEFAULT_WEIGHT_DECAY,
                   num_threads: Optional[int] = 1) -> List[List[Any]]:
    """Train ``model`` in place, calling every ``callback(model, epoch)`` after epochs 1..``epochs``.

    The loop of :func:`congruence.examples.digits.train_model` (Adam with L2 ``weight_decay`` and a
    cosine decay of ``lr`` to zero, cross-entropy, shuffled minibatches with the last partial batch
    kept, deterministic algorithms) with the minibatch order drawn from a private generator seeded
    with ``order_seed``. Returns what the callbacks returned, per epoch.
    """
    epochs, batch_size = int(epochs), int(batch_size)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"need epochs >= 1 and batch_size >= 1, got {epochs}, {batch_size}")
    n = X_train.shape[0]
    out: List[List[Any]] = []
    with _deterministic(order_seed, num_threads, True):
        gen = torch.Generator().manual_seed(int(order_seed))
        opt = _Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay,
                    total_steps=epochs * ((n + batch_size - 1) // batch_size))
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(1, epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n, batch_size):
                idx = perm[s: s + batch_size]
                for p in opt.params:
                    p.grad = None
                loss_fn(model(X_train[idx]), y_train[idx]).backward()
                opt.step()
            out.append([cb(model, epoch) for cb in callbacks])
    model.eval()
    return out


# ----------------------------------------------------------------------------------- the report


@dataclass
class DigitsAgreementReport:
    """Every number of :func:`run` (plain Python types, so :meth:`to_dict` is JSON-ready).

    Attributes
    ----------
    config : the configuration (networks per ensemble, epochs, seed, recipe, split sizes, threads).
    architectures : ensemble -> architecture.
    seeds : ensemble -> [[init seed, order seed] per network].
    accuracy : ensemble -> split -> final accuracy per network.
    accuracy_curve : ensemble -> split -> mean accuracy over the networks after each epoch.
    histogram : ensemble -> split -> the TP-agreement histogram against the Poisson-binomial null
        (counts, frequencies, null, h0, hN, null_h0, null_hN, total_variation, chi2, dof, p_value,
        dispersion).
    all_or_none : ensemble -> split -> {all_correct, none_correct, all_over_any}.
    order : "X-Y" -> split -> {pearson, spearman} of the accessibility of ensembles X and Y.
    weak, strong : the ensembles of the weaker and the stronger architecture (A or C).
    superset : split -> {containment, baseline, early_correlation, n_weak, n_strong}.
    agreement, kappa : "X" (within, off-diagonal pairs) or "X-Y" (between) -> mean pairwise top-1
        agreement / error-consistency κ on the test split at the final epoch.
    timings : stage -> seconds.
    files : what was written under ``out`` (names relative to it).
    """

    config: Dict[str, Any]
    architectures: Dict[str, str] = field(default_factory=dict)
    seeds: Dict[str, List[List[int]]] = field(default_factory=dict)
    accuracy: Dict[str, Dict[str, List[float]]] = field(default_factory=dict)
    accuracy_curve: Dict[str, Dict[str, List[float]]] = field(default_factory=dict)
    histogram: Dict[str, Dict[str, Dict[str, Any]]] = field(default_factory=dict)
    all_or_none: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    order: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    weak: str = ""
    strong: str = ""
    superset: Dict[str, Dict[str, float]] = field(default_factory=dict)
    agreement: Dict[str, float] = field(default_factory=dict)
    kappa: Dict[str, float] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        c = self.config
        nets = ", ".join(f"{e} = {c['networks'][e]} × {self.architectures[e]}" for e in self.architectures)
        parts = [
            f"Ensembles {nets}; {c['epochs']} epochs (Adam lr {c['lr']:g}, cosine decay, batch "
            f"{c['batch_size']}), seed {c['seed']}; {c['n_train']} training / {c['n_test']} test images. "
            "Correctness recorded after every epoch on both splits; mean ± std over networks (ddof=0).",
            "### Accuracy\n\n" + self._accuracy_table() + "\n\nMean accuracy after each epoch:\n\n"
            + self._curve_table(),
            "### TP-agreement histogram, ensemble A, test split\n\n" + self._histogram_table("A", "test"),
            "### TP-agreement against the independence null (Poisson-binomial)\n\n" + self._null_table(),
            "### All-or-none (final epoch)\n\n" + self._all_or_none_table(),
            "### Learning-order constancy (accessibility over all epochs)\n\n" + self._order_table(),
            f"### Superset test (weak = {self.weak}, {self.architectures.get(self.weak, '')}; strong = "
            f"{self.strong}, {self.architectures.get(self.strong, '')})\n\n" + self._superset_table(),
            "### Pairwise agreement and error consistency (test split, final epoch)\n\n" + self._pairwise_table(),
            "### Timings\n\n" + _table(["stage (wall time)", "seconds"],
                                       [[s, f"{t:.2f}"] for s, t in self.timings.items()]),
        ]
        if self.files:
            parts.append("### Files\n\n" + "\n".join(f"- `{f}`" for f in self.files))
        return "\n\n".join(parts) + "\n"

    def _accuracy_table(self) -> str:
        rows = [[e, self.architectures[e], str(len(self.accuracy[e]["test"]))]
                + [_mean_std(self.accuracy[e][s], 4) for s in SPLITS]
                + [f"{min(self.accuracy[e]['test']):.4f}–{max(self.accuracy[e]['test']):.4f}"]
                for e in self.accuracy]
        return _table(["ensemble", "architecture", "networks", "train accuracy", "test accuracy",
                       "test range"], rows)

    def _curve_table(self) -> str:
        names = list(self.accuracy_curve)
        E = self.config["epochs"]
        rows = [[str(ep + 1)] + [f"{self.accuracy_curve[e][s][ep]:.4f}" for e in names for s in SPLITS]
                for ep in range(E)]
        return _table(["epoch"] + [f"{e} {s}" for e in names for s in SPLITS], rows)

    def _histogram_table(self, e: str, split: str) -> str:
        h = self.histogram[e][split]
        n = int(sum(h["counts"]))
        rows = [[str(k), str(h["counts"][k]), f"{h['frequencies'][k]:.4f}", f"{n * h['null'][k]:.3g}",
                 f"{h['null'][k]:.3g}"] for k in range(len(h["counts"]))]
        return _table(["k networks correct", "examples", "h_k", "null: expected examples", "null pmf"], rows)

    def _null_table(self) -> str:
        rows = []
        for e, by_split in self.histogram.items():
            for s, h in by_split.items():
                rows.append([e, s, str(len(h["counts"]) - 1), f"{h['h0']:.4f}", f"{h['null_h0']:.3g}",
                             f"{h['hN']:.4f}", f"{h['null_hN']:.3g}", f"{h['total_variation']:.4f}",
                             f"{h['chi2']:.4g} ({h['dof']})", f"{h['p_value']:.3g}", f"{h['dispersion']:.3f}"])
        return _table(["ensemble", "split", "N", "h_0", "null Π(1−p_i)", "h_N", "null Π p_i", "total variation",
                       "χ² (dof)", "p-value", "dispersion"], rows)

    def _all_or_none_table(self) -> str:
        rows = [[e, s, f"{v['all_correct']:.4f}", f"{v['none_correct']:.4f}", f"{v['all_over_any']:.4f}"]
                for e, by_split in self.all_or_none.items() for s, v in by_split.items()]
        return _table(["ensemble", "split", "right by all", "right by none", "all / any"], rows)

    def _order_table(self) -> str:
        rows = []
        for pair, by_split in self.order.items():
            a, b = pair[0], pair.split("-")[1][0]  # "A-B", or "A-B[:10]" (B's first 10 networks)
            kind = "same architecture" if self.architectures[a] == self.architectures[b] else "cross-architecture"
            rows.append([pair, kind] + [f"{by_split[s][m]:.4f}" for s in SPLITS for m in ("pearson", "spearman")])
        return _table(["ensembles", "kind", "train Pearson", "train Spearman", "test Pearson", "test Spearman"], rows)

    def _superset_table(self) -> str:
        rows = [[s, f"{v['containment']:.4f}", f"{v['baseline']:.4f}", str(v["n_weak"]), str(v["n_strong"]),
                 f"{v['early_correlation']:.4f}"] for s, v in self.superset.items()]
        return _table(["split", "containment #(L_W ∩ L_S) / #L_W", "baseline #L_S / n", "#L_W", "#L_S",
                       "accessibility r, first 20% of epochs"], rows)

    def _pairwise_table(self) -> str:
        rows = [[k, "within (off-diagonal)" if "-" not in k else "between", f"{self.agreement[k]:.4f}",
                 f"{self.kappa[k]:.4f}"] for k in self.agreement]
        return _table(["ensembles", "pairs", "mean top-1 agreement", "mean error consistency κ"], rows)


def _mean_std(values: Sequence[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


# ----------------------------------------------------------------------------------- measurements


def _histogram_dict(store: CorrectnessStore) -> Dict[str, Any]:
    h = tp_histogram(store)
    return {"counts": [int(x) for x in h.counts], "frequencies": [float(x) for x in h.frequencies],
            "null": [float(x) for x in h.null], "h0": h.none_correct, "hN": h.all_correct,
            "null_h0": h.null_none_correct, "null_hN": h.null_all_correct, "total_variation": h.total_variation,
            "chi2": h.chi2, "dof": int(h.dof), "p_value": h.p_value, "dispersion": float(h.dispersion)}


def _block_means(M: np.ndarray, sizes: Dict[str, int]) -> Dict[str, float]:
    """Mean of each diagonal block's off-diagonal entries ("X") and of each off-diagonal block ("X-Y")."""
    names = list(sizes)
    start = np.cumsum([0] + [sizes[e] for e in names])
    sl = {e: slice(start[i], start[i + 1]) for i, e in enumerate(names)}
    out: Dict[str, float] = {}
    for i, a in enumerate(names):
        block = M[sl[a], sl[a]]
        off = ~np.eye(block.shape[0], dtype=bool)
        out[a] = float(np.nanmean(block[off])) if off.any() else float("nan")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out[f"{a}-{b}"] = float(np.nanmean(M[sl[a], sl[b]]))
    return out


def _order(a: Dict[str, CorrectnessStore], b: Dict[str, CorrectnessStore]) -> Dict[str, Dict[str, float]]:
    """split -> {pearson, spearman} of the accessibility of two ensembles."""
    out = {}
    for s in SPLITS:
        o = learning_order_constancy(a[s], b[s])
        out[s] = {"pearson": o.pearson, "spearman": o.spearman}
    return out


def _measure(report: DigitsAgreementReport, stores: Dict[str, Dict[str, CorrectnessStore]]) -> None:
    names = list(stores)
    for e in names:
        report.histogram[e] = {s: _histogram_dict(stores[e][s]) for s in SPLITS}
        report.all_or_none[e] = {s: asdict(all_or_none(stores[e][s])) for s in SPLITS}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            report.order[f"{a}-{b}"] = _order(stores[a], stores[b])
    n_c = stores["C"]["test"].n_networks
    if n_c < stores["B"]["test"].n_networks:
        # Control: A against as many B networks as C has, so that within- and cross-architecture
        # correlations rest on equally large ensembles on the second side.
        report.order[f"A-B[:{n_c}]"] = _order(stores["A"], {s: stores["B"][s].subset(range(n_c)) for s in SPLITS})
    # Weaker / stronger architecture: A (MLP) or C (CNN), by mean final test accuracy.
    mean_test = {e: float(np.mean(report.accuracy[e]["test"])) for e in ("A", "C")}
    report.weak, report.strong = sorted(("A", "C"), key=lambda e: (mean_test[e], e))
    report.superset = {s: asdict(superset_test(stores[report.weak][s], stores[report.strong][s])) for s in SPLITS}
    sizes = {e: stores[e]["test"].n_networks for e in names}
    preds = np.concatenate([stores[e]["test"].predictions[:, -1] for e in names])
    correct = np.concatenate([stores[e]["test"].correct(-1) for e in names])
    report.agreement = _block_means(agreement_matrix(preds, n_classes=10), sizes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedKappaWarning)  # a network right on every test image: κ NaN
        report.kappa = _block_means(error_consistency(correct).kappa, sizes)


# ----------------------------------------------------------------------------------- figures and files


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_histogram(report: DigitsAgreementReport, path: str, ensemble: str = "A", split: str = "test") -> None:
    """Bar chart of h_k with the Poisson-binomial null, linear and log scale side by side."""
    h = report.histogram[ensemble][split]
    k = np.arange(len(h["counts"]))
    fig = _figure(10, 3.8)
    for j, log in enumerate((False, True)):
        ax = fig.add_subplot(1, 2, j + 1)
        ax.bar(k, h["frequencies"], color="C0", label="observed h_k")
        ax.plot(k, h["null"], "o-", color="C3", ms=4, lw=1, label="independence null (Poisson-binomial)")
        ax.set_xlabel(f"k = networks correct (of {len(k) - 1})")
        ax.set_ylabel("fraction of examples")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(max(1e-8, min([f for f in h["frequencies"] if f > 0] + [1e-3]) / 10), 1.5)
            ax.set_title("log scale")
        else:
            ax.set_title(f"ensemble {ensemble}, {split} split: TV {h['total_variation']:.3f}, "
                         f"dispersion {h['dispersion']:.2f}", fontsize=9)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_learning_order(report: DigitsAgreementReport, acc: Dict[str, Dict[str, np.ndarray]], path: str) -> None:
    """Accessibility scatter plots: A against B and A against C, training and test split."""
    fig = _figure(9, 8)
    for r, other in enumerate(("B", "C")):
        for c, s in enumerate(SPLITS):
            ax = fig.add_subplot(2, 2, 2 * r + c + 1)
            ax.scatter(acc["A"][s], acc[other][s], s=4, alpha=0.4, color="C0" if other == "B" else "C2")
            ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
            o = report.order[f"A-{other}"][s]
            ax.set_title(f"{s}: A vs {other}, Pearson {o['pearson']:.3f}, Spearman {o['spearman']:.3f}", fontsize=9)
            ax.set_xlabel("accessibility, A")
            ax.set_ylabel(f"accessibility, {other}")
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_curves(report: DigitsAgreementReport, path: str) -> None:
    """Mean accuracy of each ensemble after each epoch, training and test split."""
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    for i, (e, by_split) in enumerate(report.accuracy_curve.items()):
        for s, ls in zip(SPLITS, ("--", "-")):
            ax.plot(np.arange(1, len(by_split[s]) + 1), by_split[s], ls, color=f"C{i}", marker="o", ms=3,
                    label=f"{e} ({report.architectures[e]}), {s}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _json_ready(x: Any) -> Any:
    """``x`` with NaN and ±inf floats as None (strict JSON)."""
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _write_files(report: DigitsAgreementReport, stores: Dict[str, Dict[str, CorrectnessStore]], out: str) -> None:
    """The correctness stores and the figures (the JSON comes last, in :func:`run`)."""
    os.makedirs(out, exist_ok=True)
    files = []
    for e, by_split in stores.items():
        for s, store in by_split.items():
            name = f"store_{e}_{s}.npz"
            store.save(os.path.join(out, name))
            files.append(name)
    acc = {e: {s: accessibility(stores[e][s]) for s in SPLITS} for e in stores}
    plot_histogram(report, os.path.join(out, FIGURES["histogram"]))
    plot_learning_order(report, acc, os.path.join(out, FIGURES["order"]))
    plot_curves(report, os.path.join(out, FIGURES["curves"]))
    report.files = [JSON_NAME] + list(FIGURES.values()) + files


def write_json(report: DigitsAgreementReport, path: str) -> None:
    """Every number of ``report`` as JSON (NaN written as null)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_json_ready(report.to_dict()), f, indent=1, allow_nan=False)
        f.write("\n")


# ----------------------------------------------------------------------------------- run


def run(n_networks: int = DEFAULT_NETWORKS, epochs: int = DEFAULT_EPOCHS, seed: int = DEFAULT_SEED,
        out: Optional[str] = None, *, n_networks_c: Optional[int] = None, lr: float = DEFAULT_LR,
        batch_size: int = DEFAULT_BATCH_SIZE, num_threads: Optional[int] = 1,
        verbose: bool = False) -> DigitsAgreementReport:
    """Train the three ensembles, record correctness every epoch and measure (module docstring).

    Parameters
    ----------
    n_networks : int
        Networks in each of A and B (at least 2).
    epochs : int
        Training epochs = checkpoints recorded per network (at least 1).
    seed : int
        Seeds the split and, through :func:`network_seeds`, every network's initialisation and
        data order.
    out : str, optional
        Directory for the JSON, the PNG figures and the correctness stores.
    n_networks_c : int, optional
        Networks in C (default :data:`DEFAULT_NETWORKS_C`; at least 2). When C is smaller than B,
        the learning-order table adds the control ``A-B[:n_c]``: A against B's first ``n_c``
        networks.
    lr, batch_size : the training recipe (Adam, cosine decay to zero).
    num_threads : int or None
        torch's thread count during training (1: fastest for these small nets, and reproducible).
    verbose : bool
        Print progress.
    """
    n_networks, epochs = int(n_networks), int(epochs)
    n_c = DEFAULT_NETWORKS_C if n_networks_c is None else int(n_networks_c)
    if n_networks < 2 or n_c < 2:
        raise ValueError(f"every ensemble needs at least 2 networks; got n_networks={n_networks}, "
                         f"n_networks_c={n_c}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    t_start = time.perf_counter()
    X_tr, y_tr, X_te, y_te = load_split(seed)
    counts = {"A": n_networks, "B": n_networks, "C": n_c}
    report = DigitsAgreementReport(config={
        "networks": counts, "epochs": epochs, "seed": int(seed), "lr": float(lr), "batch_size": int(batch_size),
        "weight_decay": DEFAULT_WEIGHT_DECAY, "n_train": int(len(X_tr)), "n_test": int(len(X_te)),
        "num_threads": num_threads, "checkpoints": "one per epoch, after epochs 1..E (initialisation excluded)"})
    data = {"train": (X_tr, y_tr), "test": (X_te, y_te)}
    loaders = {s: [(X[i: i + EVAL_BATCH_SIZE], y[i: i + EVAL_BATCH_SIZE]) for i in range(0, len(X), EVAL_BATCH_SIZE)]
               for s, (X, y) in data.items()}
    stores: Dict[str, Dict[str, CorrectnessStore]] = {}
    for k, ens in enumerate(ENSEMBLES):
        t0 = time.perf_counter()
        N = counts[ens.name]
        names = [f"{ens.name}{i:02d}" for i in range(N)]
        recorders = {s: CorrectnessRecorder(data[s][1].numpy(), N, epochs, keep_predictions=True, network_names=names)
                     for s in SPLITS}
        seeds = [network_seeds(seed, k, i) for i in range(N)]
        curves = np.zeros((len(SPLITS), N, epochs))
        for i, (init_seed, order_seed) in enumerate(seeds):
            callbacks = [recorders[s].callback(loaders[s], i, first_epoch=1) for s in SPLITS]
            per_epoch = train_recorded(ens.build(init_seed), X_tr, y_tr, order_seed=order_seed, epochs=epochs,
                                       callbacks=callbacks, lr=lr, batch_size=batch_size, num_threads=num_threads)
            curves[:, i, :] = np.asarray(per_epoch, dtype=np.float64).T
        stores[ens.name] = {s: recorders[s].store for s in SPLITS}
        report.architectures[ens.name] = ens.architecture
        report.seeds[ens.name] = [list(p) for p in seeds]
        report.accuracy[ens.name] = {s: [float(a) for a in curves[j, :, -1]] for j, s in enumerate(SPLITS)}
        report.accuracy_curve[ens.name] = {s: [float(a) for a in curves[j].mean(axis=0)] for j, s in enumerate(SPLITS)}
        report.timings[f"training {ens.name} ({N} networks, recording both splits)"] = time.perf_counter() - t0
        if verbose:
            acc_test = _mean_std(report.accuracy[ens.name]["test"], 4)
            print(f"{ens.name}: {N} × {ens.architecture}, test accuracy {acc_test} ({time.perf_counter() - t0:.1f} s)",
                  flush=True)
    t0 = time.perf_counter()
    _measure(report, stores)
    report.timings["measures"] = time.perf_counter() - t0
    if out is not None:
        t0 = time.perf_counter()
        _write_files(report, stores, out)
        report.timings["figures and stores"] = time.perf_counter() - t0
    report.timings["total"] = time.perf_counter() - t_start
    if out is not None:
        write_json(report, os.path.join(out, JSON_NAME))
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m congruence.examples.digits_agreement``: run and print the Markdown tables."""
    parser = argparse.ArgumentParser(
        prog="python -m congruence.examples.digits_agreement",
        description="Functional agreement across many networks on the 8x8 digits (Hacohen, Choshen & Weinshall "
                    "2020): TP-agreement histogram against the independence null, all-or-none, learning-order "
                    "constancy within and across architectures, the superset test, pairwise agreement and kappa.")
    parser.add_argument("--networks", type=int, default=None,
                        help=f"networks in each MLP ensemble A and B (default {DEFAULT_NETWORKS})")
    parser.add_argument("--networks-c", type=int, default=None,
                        help=f"networks in the CNN ensemble C (default {DEFAULT_NETWORKS_C})")
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"master seed (default {DEFAULT_SEED})")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"Adam learning rate (default {DEFAULT_LR:g})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads during training (default 1)")
    parser.add_argument("--out", default=None, help="directory for the JSON, PNG figures and correctness stores")
    parser.add_argument("--quick", action="store_true",
                        help=f"a fast smoke run: {QUICK['n_networks']} + {QUICK['n_networks']} MLPs, "
                             f"{QUICK['n_networks_c']} CNNs, {QUICK['epochs']} epochs (explicit options still win)")
    parser.add_argument("--verbose", action="store_true", help="print progress")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else {"n_networks": DEFAULT_NETWORKS, "n_networks_c": DEFAULT_NETWORKS_C,
                                     "epochs": DEFAULT_EPOCHS}
    report = run(
        n_networks=args.networks if args.networks is not None else base["n_networks"],
        epochs=args.epochs if args.epochs is not None else base["epochs"],
        seed=args.seed,
        out=args.out,
        n_networks_c=args.networks_c if args.networks_c is not None else base["n_networks_c"],
        lr=args.lr,
        num_threads=args.threads,
        verbose=args.verbose,
    )
    print(report.to_markdown(), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    raise SystemExit(main())
