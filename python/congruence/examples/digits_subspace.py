"""Subspace match (Wang et al. 2018) per layer on scikit-learn's 8×8 digits: CNNs and MLPs from different seeds.

What it measures (issue 6's example), for ``n_seeds`` CNNs
(:func:`congruence.examples.digits.make_digits_cnn`) and as many MLPs
(:func:`congruence.examples.digits_matching.make_digits_mlp`) trained deterministically from seeds
``0 … n_seeds-1`` with the recipe of :func:`congruence.examples.digits.train_model`:

1. the test accuracy of every network;
2. for every pair of different seeds and every hidden ReLU layer, on the post-ReLU activations of
   the test split, the **maximum-match similarity** (|X*| + |Y*|)/(n₁ + n₂) at each ε of
   ``eps_values`` (METHODS.md §5.1–5.2), the sizes |X*| and |Y*|, and the **maximal ε** (the
   smallest ε at which the complete live layers match, §5.4). Conv layers are channels over
   images × positions (:func:`congruence.subspace.conv_max_match`): with ``columns="all"`` the
   exact match on every column, with ``columns=N`` the authors' protocol (§5.5: N columns drawn
   without replacement, the same for both networks, mean over ``repeats`` draws, seed 0). Dense
   layers are units over images (:func:`congruence.max_match`, one Gram reused across ε);
3. two controls per layer: seed 0 against itself (every live neuron lies in the span of the same
   layer, so the similarity is live/n at every ε) and seed 0 against an untrained network of the
   same architecture with an unrelated random initialisation (seed :data:`RANDOM_INIT_SEED`);
4. the wall time of each stage.

Dead neurons (‖z‖ < 1e-16, i.e. a ReLU that is 0 on every test input) are removed before the
match and never match, but count in the denominator; their numbers are reported per layer. The
maximal ε is always computed on the full data (every column), also with ``columns=N``.

Run it as ``python -m congruence.examples.digits_subspace [--seeds N] [--epochs E] [--quick]
[--columns N|all]``; the default (3 seeds, 12 epochs, exact conv match) takes well under a minute
on a 2-core CPU. From Python::

    from congruence.examples.digits_subspace import run
    report = run(n_seeds=3)
    print(report.to_markdown())

Needs torch and scikit-learn (``pip install congruence[examples]``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from itertools import combinations
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

try:
    import torch  # noqa: F401  (the helpers below need it; fail early with a clear message)
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("congruence.examples.digits_subspace needs torch (pip install torch)") from exc

from ..subspace import conv_max_match, max_match, maximal_epsilon, subspace_gram
from ..subspace.match import DEAD_NORM
from .digits import DEFAULT_EPOCHS, accuracy, load_digits_data, train_model
from .digits_matching import ARCHITECTURES, DEFAULT_MLP_WIDTH, Architecture, _mean_std, _table, hidden_activations

__all__ = ["DEFAULT_EPS", "DigitsSubspaceReport", "RANDOM_INIT_SEED", "layer_match", "main", "run"]

#: The ε values of the authors' code (METHODS §5.5).
DEFAULT_EPS: Tuple[float, ...] = (0.15, 0.2, 0.25, 0.3, 0.5)
DEFAULT_SEEDS = 3
DEFAULT_REPEATS = 16
#: Seed of the untrained control network (far from the training seeds 0 … n_seeds-1).
RANDOM_INIT_SEED = 10_000
QUICK = {"n_seeds": 2, "epochs": 3, "mlp_width": 64}

Columns = Union[int, str]
PairValues = List[float]  # one value per seed pair, in the order of DigitsSubspaceReport.pairs


# ----------------------------------------------------------------------------------- the report


@dataclass
class DigitsSubspaceReport:
    """Every number of :func:`run`. Per-pair lists follow ``pairs``; tables give mean ± std.

    Attributes
    ----------
    seeds, pairs : the seeds trained and the (a, b) pairs compared, a < b.
    epochs, mlp_width, eps_values, columns, repeats, n_test : the configuration.
    accuracy : arch -> test accuracy per seed; ``random_accuracy`` : arch -> that of the untrained net.
    units : arch -> layer -> neurons (channels or units) per network.
    conv : arch -> layer -> whether it is a conv layer (channels over images × positions).
    samples : arch -> layer -> sample columns M on the full test split (images, or images × positions).
    dead : arch -> layer -> dead neurons of each trained network (per seed).
    similarity, size_x, size_y : arch -> layer -> ε -> per pair: maximum-match similarity and
        |X*|, |Y*| (means over the repetitions with ``columns=N`` on conv layers).
    max_eps : arch -> layer -> maximal ε per pair.
    self_similarity : arch -> layer -> ε -> similarity of seed 0 against itself.
    random_similarity, random_size_x, random_size_y : arch -> layer -> ε -> seed 0 against the
        untrained network (X = seed 0, Y = the untrained one).
    random_max_eps : arch -> layer -> maximal ε of that control; ``random_dead`` its dead neurons.
    unverified : near-boundary decisions that could not be re-checked on raw vectors (after the
        fallback to raw activations: expected 0); ``fallbacks`` : how many matches needed that fallback.
    timings : stage -> seconds.
    """

    seeds: List[int]
    pairs: List[Tuple[int, int]]
    epochs: int
    mlp_width: int
    eps_values: Tuple[float, ...]
    columns: Columns
    repeats: int
    n_test: int
    accuracy: Dict[str, List[float]] = field(default_factory=dict)
    random_accuracy: Dict[str, float] = field(default_factory=dict)
    units: Dict[str, Dict[str, int]] = field(default_factory=dict)
    conv: Dict[str, Dict[str, bool]] = field(default_factory=dict)
    samples: Dict[str, Dict[str, int]] = field(default_factory=dict)
    dead: Dict[str, Dict[str, List[int]]] = field(default_factory=dict)
    similarity: Dict[str, Dict[str, Dict[float, PairValues]]] = field(default_factory=dict)
    size_x: Dict[str, Dict[str, Dict[float, PairValues]]] = field(default_factory=dict)
    size_y: Dict[str, Dict[str, Dict[float, PairValues]]] = field(default_factory=dict)
    max_eps: Dict[str, Dict[str, PairValues]] = field(default_factory=dict)
    self_similarity: Dict[str, Dict[str, Dict[float, float]]] = field(default_factory=dict)
    random_similarity: Dict[str, Dict[str, Dict[float, float]]] = field(default_factory=dict)
    random_size_x: Dict[str, Dict[str, Dict[float, float]]] = field(default_factory=dict)
    random_size_y: Dict[str, Dict[str, Dict[float, float]]] = field(default_factory=dict)
    random_max_eps: Dict[str, Dict[str, float]] = field(default_factory=dict)
    random_dead: Dict[str, Dict[str, int]] = field(default_factory=dict)
    unverified: int = 0
    fallbacks: int = 0
    timings: Dict[str, float] = field(default_factory=dict)

    def _protocol(self) -> str:
        if self.columns == "all":
            return "conv layers: exact match on every column (columns=\"all\")"
        return (f"conv layers: the authors' protocol, {self.columns} columns drawn per repetition (the same for "
                f"both networks), mean over {self.repeats} repetitions, seed 0")

    def to_markdown(self) -> str:
        """The report as Markdown: configuration, then one table per stage."""
        parts = [
            f"{len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}), {len(self.pairs)} pairs, "
            f"{self.epochs} epochs, MLP width {self.mlp_width}; post-ReLU activations of the {self.n_test} "
            f"test images; {self._protocol()}; dense layers: units over images. Mean ± std over seed pairs "
            f"(std with ddof=0). Near-boundary decisions left unverified: {self.unverified}.",
            "### Test accuracy\n\n" + self._accuracy_table(),
            "### Maximum-match similarity, independent seeds\n\n" + self._similarity_table(),
            "### Maximum-match sizes |X\\*| / |Y\\*|, independent seeds (mean over pairs)\n\n" + self._size_table(),
            "### Controls: seed 0 against itself, and against an untrained random-init network\n\n"
            + self._control_table(),
            "### Timings\n\n" + self._timings_table(),
        ]
        return "\n\n".join(parts) + "\n"

    def _eps_head(self) -> List[str]:
        return [f"ε={e:g}" for e in self.eps_values]

    def _layer_cells(self, arch: str, layer: str) -> List[str]:
        kind = (f"conv ({self.samples[arch][layer]} = images × positions)" if self.conv[arch][layer]
                else f"dense ({self.samples[arch][layer]} images)")
        return [arch, layer, kind, str(self.units[arch][layer])]

    def _accuracy_table(self) -> str:
        head = ["network"] + [f"seed {s}" for s in self.seeds] + ["mean", f"untrained (seed {RANDOM_INIT_SEED})"]
        rows = [[arch] + [f"{a:.4f}" for a in accs] + [f"{np.mean(accs):.4f}", f"{self.random_accuracy[arch]:.4f}"]
                for arch, accs in self.accuracy.items()]
        return _table(head, rows)

    def _similarity_table(self) -> str:
        head = ["network", "layer", "samples", "neurons", "dead (mean)", "maximal ε"] + self._eps_head()
        rows = []
        for arch, layers in self.similarity.items():
            for layer, by_eps in layers.items():
                rows.append(self._layer_cells(arch, layer)
                            + [f"{np.mean(self.dead[arch][layer]):.1f}", _mean_std(self.max_eps[arch][layer])]
                            + [_mean_std(by_eps[e]) for e in self.eps_values])
        return _table(head, rows)

    def _size_table(self) -> str:
        head = ["network", "layer", "neurons"] + self._eps_head()
        rows = []
        for arch, layers in self.similarity.items():
            for layer in layers:
                sx, sy = self.size_x[arch][layer], self.size_y[arch][layer]
                rows.append([arch, layer, str(self.units[arch][layer])]
                            + [f"{np.mean(sx[e]):.1f} / {np.mean(sy[e]):.1f}" for e in self.eps_values])
        return _table(head, rows)

    def _control_table(self) -> str:
        head = (["network", "layer", "live/n (seed 0)", "self, every ε", "untrained: dead", "untrained: maximal ε"]
                + [f"untrained {h}" for h in self._eps_head()])
        rows = []
        for arch, layers in self.self_similarity.items():
            for layer, by_eps in layers.items():
                n = self.units[arch][layer]
                live = n - self.dead[arch][layer][0]
                vals = sorted(set(by_eps.values()))
                self_cell = (f"{vals[0]:.4f}" if len(vals) == 1
                             else " / ".join(f"{by_eps[e]:.4f}" for e in self.eps_values))
                rows.append([arch, layer, f"{live}/{n} = {live / n:.4f}", self_cell,
                             str(self.random_dead[arch][layer]), f"{self.random_max_eps[arch][layer]:.3f}"]
                            + [f"{self.random_similarity[arch][layer][e]:.3f} "
                               f"({self.random_size_x[arch][layer][e]:.1f} / {self.random_size_y[arch][layer][e]:.1f})"
                               for e in self.eps_values])
        return _table(head, rows) + ("\n\nUntrained cells: similarity (|X\\*| / |Y\\*|), X = seed 0 (trained), "
                                     "Y = the untrained network.")

    def _timings_table(self) -> str:
        order = sorted(self.timings, key=lambda stage: (":" in stage, stage == "total"))
        return _table(["stage (wall time)", "seconds"], [[s, f"{self.timings[s]:.2f}"] for s in order])


# ----------------------------------------------------------------------------------- measurements


@dataclass
class LayerMatch:
    """What :func:`layer_match` returns: per ε, the similarity and mean |X*|, |Y*|; the maximal ε."""

    similarity: Dict[float, float]
    size_x: Dict[float, float]
    size_y: Dict[float, float]
    max_eps: float
    dead_x: int
    dead_y: int
    unverified: int = 0
    fallbacks: int = 0


def _dead(A: np.ndarray) -> int:
    """Neurons of A (samples, neurons) with ‖z‖ < 1e-16 (METHODS §5.1)."""
    return int(np.sum(np.linalg.norm(A, axis=0) < DEAD_NORM))


def layer_match(A: np.ndarray, B: np.ndarray, eps_values: Sequence[float], *, conv: bool,
                columns: Columns = "all", repeats: int = DEFAULT_REPEATS, seed: int = 0) -> LayerMatch:
    """The maximum match of two layers at every ε, and their maximal ε.

    ``A``, ``B`` are (samples, neurons) float64 activations of the same inputs (conv layers: rows
    are images × positions). Conv layers go through :func:`congruence.subspace.conv_max_match`
    (``columns``, ``repeats``, ``seed``); dense layers through :func:`congruence.max_match` on one
    Gram reused across ε. A match computed from a Gram alone cannot re-check near-boundary decisions
    on the raw vectors; any such match (``details["unverified"] > 0``) is recomputed from the raw
    activations, which re-checks them (counted in ``fallbacks``).
    """
    sim, sx, sy = {}, {}, {}
    unverified = fallbacks = 0
    gram = None if conv else subspace_gram(A, B)
    for eps in eps_values:
        eps = float(eps)
        if conv:
            res = conv_max_match(A, B, eps, columns=columns, repeats=repeats, seed=seed)
            matches = res.matches
        else:
            matches = [max_match(gram=gram, eps=eps)]
        if columns == "all" or not conv:
            if matches[0].details["unverified"]:
                fallbacks += 1
                matches = [max_match(A, B, eps)]
        unverified += sum(m.details["unverified"] for m in matches)
        sim[eps] = float(np.mean([m.similarity for m in matches]))
        sx[eps] = float(np.mean([len(m.x) for m in matches]))
        sy[eps] = float(np.mean([len(m.y) for m in matches]))
    dead_x, dead_y = _dead(A), _dead(B)
    if dead_x == A.shape[1] or dead_y == B.shape[1]:
        max_eps = float("nan")  # a layer with no live neuron matches at no ε
    else:
        max_eps = maximal_epsilon(A, B)
    return LayerMatch(similarity=sim, size_x=sx, size_y=sy, max_eps=max_eps, dead_x=dead_x, dead_y=dead_y,
                      unverified=unverified, fallbacks=fallbacks)


# ----------------------------------------------------------------------------------- the stages


def _train_all(arch: Architecture, report: DigitsSubspaceReport, data: tuple, num_threads: Optional[int],
               verbose: bool) -> list:
    X_tr, y_tr, X_te, y_te = data
    models = [train_model(arch.build(seed, report.mlp_width), seed, epochs=report.epochs, X_train=X_tr,
                          y_train=y_tr, num_threads=num_threads) for seed in report.seeds]
    report.accuracy[arch.name] = [accuracy(m, X_te, y_te) for m in models]
    if verbose:
        print(f"{arch.name}: test accuracy " + ", ".join(f"{a:.4f}" for a in report.accuracy[arch.name]))
    return models


def _match_stage(arch: Architecture, report: DigitsSubspaceReport, acts: list) -> None:
    name = arch.name
    report.similarity[name], report.size_x[name], report.size_y[name] = {}, {}, {}
    report.max_eps[name] = {}
    index = {s: n for n, s in enumerate(report.seeds)}
    for layer in arch.hidden:
        per = {key: {e: [] for e in report.eps_values} for key in ("sim", "sx", "sy")}
        report.max_eps[name][layer] = []
        for a, b in report.pairs:
            m = layer_match(acts[index[a]][layer], acts[index[b]][layer], report.eps_values,
                            conv=report.conv[name][layer], columns=report.columns, repeats=report.repeats)
            for e in report.eps_values:
                per["sim"][e].append(m.similarity[e])
                per["sx"][e].append(m.size_x[e])
                per["sy"][e].append(m.size_y[e])
            report.max_eps[name][layer].append(m.max_eps)
            report.unverified += m.unverified
            report.fallbacks += m.fallbacks
        report.similarity[name][layer] = per["sim"]
        report.size_x[name][layer] = per["sx"]
        report.size_y[name][layer] = per["sy"]


def _control_stage(arch: Architecture, report: DigitsSubspaceReport, acts0: dict, random_acts: dict) -> None:
    name = arch.name
    for table in (report.self_similarity, report.random_similarity, report.random_size_x, report.random_size_y,
                  report.random_max_eps, report.random_dead):
        table[name] = {}
    for layer in arch.hidden:
        conv = report.conv[name][layer]
        own = layer_match(acts0[layer], acts0[layer], report.eps_values, conv=conv, columns=report.columns,
                          repeats=report.repeats)
        rnd = layer_match(acts0[layer], random_acts[layer], report.eps_values, conv=conv, columns=report.columns,
                          repeats=report.repeats)
        report.self_similarity[name][layer] = own.similarity
        report.random_similarity[name][layer] = rnd.similarity
        report.random_size_x[name][layer] = rnd.size_x
        report.random_size_y[name][layer] = rnd.size_y
        report.random_max_eps[name][layer] = rnd.max_eps
        report.random_dead[name][layer] = rnd.dead_y
        for m in (own, rnd):
            report.unverified += m.unverified
            report.fallbacks += m.fallbacks


def _check_columns(columns: Columns) -> Columns:
    if columns == "all":
        return "all"
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer or 'all'; got {columns!r}")
    return int(columns)


def run(
    n_seeds: int = DEFAULT_SEEDS,
    epochs: int = DEFAULT_EPOCHS,
    eps_values: Sequence[float] = DEFAULT_EPS,
    num_threads: Optional[int] = 1,
    columns: Columns = "all",
    repeats: int = DEFAULT_REPEATS,
    verbose: bool = False,
    *,
    mlp_width: int = DEFAULT_MLP_WIDTH,
) -> DigitsSubspaceReport:
    """Train the networks and measure everything in the module docstring.

    Parameters
    ----------
    n_seeds : int
        Networks per architecture (seeds 0 … n_seeds-1); at least 2. Every pair is compared.
    epochs : int
        Training epochs of every network.
    eps_values : sequence of float
        The ε values (relative tolerance, METHODS §5.1), each ≥ 0; reported in this order.
    num_threads : int or None
        torch's thread count during training (1: fastest for these nets, and reproducible).
    columns : int or "all"
        Conv layers: "all" for the exact match on every column, or the number of sample columns
        per repetition of the authors' protocol (at most the test split's images × positions).
    repeats : int
        Repetitions of the column draw (only with an integer ``columns``).
    verbose : bool
        Print progress.
    mlp_width : int
        Units of each hidden layer of the MLP.

    Returns
    -------
    DigitsSubspaceReport
    """
    n_seeds, epochs = int(n_seeds), int(epochs)
    if n_seeds < 2:
        raise ValueError(f"n_seeds must be >= 2 (pairs of different seeds are compared), got {n_seeds}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    eps_values = tuple(float(e) for e in eps_values)
    if (not eps_values or any(not np.isfinite(e) or e < 0 for e in eps_values)
            or len(set(eps_values)) != len(eps_values)):
        raise ValueError(f"eps_values must be distinct finite numbers >= 0, got {eps_values}")
    columns = _check_columns(columns)
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer; got {repeats!r}")
    data = load_digits_data(seed=0)
    X_te, y_te = data[2], data[3]
    seeds = list(range(n_seeds))
    report = DigitsSubspaceReport(seeds=seeds, pairs=list(combinations(seeds, 2)), epochs=epochs,
                                  mlp_width=int(mlp_width), eps_values=eps_values, columns=columns,
                                  repeats=int(repeats), n_test=len(X_te))
    stage_names = ("training", "activations", "maximum match", "controls")
    for stage in stage_names:
        report.timings[stage] = 0.0
    t_start = time.perf_counter()
    for arch in ARCHITECTURES:
        name = arch.name
        t0 = time.perf_counter()
        models = _train_all(arch, report, data, num_threads, verbose)
        t1 = time.perf_counter()
        acts = [hidden_activations(m, arch.hidden, X_te) for m in models]
        untrained = arch.build(RANDOM_INIT_SEED, report.mlp_width).eval()
        report.random_accuracy[name] = accuracy(untrained, X_te, y_te)
        random_acts = hidden_activations(untrained, arch.hidden, X_te)
        report.units[name] = {layer: int(acts[0][layer].shape[1]) for layer in arch.hidden}
        report.samples[name] = {layer: int(acts[0][layer].shape[0]) for layer in arch.hidden}
        # Conv maps come back as (images × positions, channels): more rows than images.
        report.conv[name] = {layer: report.samples[name][layer] != len(X_te) for layer in arch.hidden}
        report.dead[name] = {layer: [_dead(a[layer]) for a in acts] for layer in arch.hidden}
        if columns != "all":
            for layer in arch.hidden:
                if report.conv[name][layer] and columns > report.samples[name][layer]:
                    raise ValueError(f"columns={columns} exceeds the {report.samples[name][layer]} sample columns "
                                     f"of {name} {layer}")
        t2 = time.perf_counter()
        _match_stage(arch, report, acts)
        t3 = time.perf_counter()
        _control_stage(arch, report, acts[0], random_acts)
        t4 = time.perf_counter()
        for stage, dt in zip(stage_names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            report.timings[stage] += dt
            report.timings[f"{name}: {stage}"] = dt
        if verbose:
            print(f"{name}: matched in {t3 - t2:.2f} s, controls in {t4 - t3:.2f} s")
    report.timings["total"] = time.perf_counter() - t_start
    return report


def _columns_arg(text: str) -> Columns:
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m congruence.examples.digits_subspace``: run and print the Markdown tables."""
    parser = argparse.ArgumentParser(
        prog="python -m congruence.examples.digits_subspace",
        description="Maximum-match similarity (subspace match, Wang et al. 2018) per hidden layer of CNNs and MLPs "
                    "trained from different seeds on the 8x8 digits, at eps in {0.15, 0.2, 0.25, 0.3, 0.5}.")
    parser.add_argument("--seeds", type=int, default=None, help=f"networks per architecture (default {DEFAULT_SEEDS})")
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument("--mlp-width", type=int, default=None, help=f"MLP hidden width (default {DEFAULT_MLP_WIDTH})")
    parser.add_argument("--columns", type=_columns_arg, default="all",
                        help="conv layers: 'all' (exact, default) or the sample columns per repetition of the "
                             "authors' protocol (e.g. 10000)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"repetitions with --columns N (default {DEFAULT_REPEATS})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a fast smoke run: {QUICK['n_seeds']} seeds, {QUICK['epochs']} epochs, MLP width "
                             f"{QUICK['mlp_width']} (explicit options still win)")
    parser.add_argument("--verbose", action="store_true", help="print progress")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else {"n_seeds": DEFAULT_SEEDS, "epochs": DEFAULT_EPOCHS, "mlp_width": DEFAULT_MLP_WIDTH}
    report = run(
        n_seeds=args.seeds if args.seeds is not None else base["n_seeds"],
        epochs=args.epochs if args.epochs is not None else base["epochs"],
        columns=args.columns,
        repeats=args.repeats,
        verbose=args.verbose,
        mlp_width=args.mlp_width if args.mlp_width is not None else base["mlp_width"],
    )
    print(report.to_markdown(), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    raise SystemExit(main())
