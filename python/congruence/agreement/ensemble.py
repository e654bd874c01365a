"""Agreement across an ensemble of networks and the order in which examples are learned
(Hacohen, Choshen & Weinshall 2020, "Let's Agree to Agree"; METHODS.md §7.1).

With correctness c[e, i, x] of networks i = 1..N at checkpoints e = 1..E:

- TP-agreement TPA(x) = (1/N) Σ_i c[E, i, x] (final checkpoint) and its histogram
  h_k = #{x : N·TPA(x) = k} / n, k = 0..N;
- the independence null (Library choice): the Poisson-binomial law of Σ_i Bernoulli(p_i), p_i the
  accuracy of network i, compared by total variation, the masses at k = 0 and N against
  Π(1 − p_i) and Π p_i, a χ² goodness-of-fit test (bins pooled until each expects ≥ 5 examples) and
  the dispersion ratio Var(k)/Σ p_i(1 − p_i) (> 1: networks agree more than independent ones);
- accessibility acc(x) = (1/(N·E)) Σ_e Σ_i c[e, i, x];
- learning-order constancy: Pearson and Spearman correlation of two ensembles' accessibility;
- the superset test (Library choice): L = {x : final TPA(x) ≥ 0.5}, containment
  |L_W ∩ L_S| / |L_W| of a weaker ensemble's set in a stronger one's against the baseline
  |L_S| / n, and the accessibility correlation over the first 20% of the checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from .store import CorrectnessStore

__all__ = ["tp_agreement", "tp_histogram", "TPAHistogram", "poisson_binomial_pmf", "all_or_none", "AllOrNone",
           "accessibility", "learning_order_constancy", "OrderConstancy", "superset_test", "SupersetTest"]

Correctness = Union[CorrectnessStore, np.ndarray]


def _final_correct(data: Correctness, checkpoint: int = -1) -> np.ndarray:
    """(N, n) bool at a checkpoint from a store, or a given (N, n) boolean array."""
    if isinstance(data, CorrectnessStore):
        return data.correct(checkpoint)
    c = np.asarray(data)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"correctness must be a CorrectnessStore or an (n_networks, n_examples) array; got shape "
                         f"{c.shape}")
    if c.dtype != bool and not (np.issubdtype(c.dtype, np.integer) and np.isin(c, (0, 1)).all()):
        raise ValueError("correctness must be booleans (or 0/1 integers)")
    return c.astype(bool)


def tp_agreement(data: Correctness, *, checkpoint: int = -1) -> np.ndarray:
    """TPA(x): the fraction of networks correct on each example, float64 (n,)."""
    return _final_correct(data, checkpoint).mean(axis=0)


def poisson_binomial_pmf(p: Any) -> np.ndarray:
    """P(Σ_i B_i = k), k = 0..N, for independent Bernoulli(p_i) (exact dynamic programme, float64)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    if p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p must be probabilities in [0, 1]")
    pmf = np.zeros(p.size + 1)
    pmf[0] = 1.0
    for i, q in enumerate(p):
        pmf[1:i + 2] = pmf[1:i + 2] * (1 - q) + pmf[:i + 1] * q
        pmf[0] *= 1 - q
    return pmf


@dataclass(frozen=True)
class TPAHistogram:
    """The TP-agreement histogram against the independence null.

    Attributes
    ----------
    counts : ndarray of int64, shape (N + 1,)
        Examples on which exactly k networks are correct.
    frequencies : ndarray, shape (N + 1,)
        h_k = counts / n.
    null : ndarray, shape (N + 1,)
        Poisson-binomial pmf of the networks' accuracies.
    accuracies : ndarray, shape (N,)
    all_correct, none_correct : float
        h_N and h_0; ``null_all_correct`` = Π p_i, ``null_none_correct`` = Π(1 − p_i).
    total_variation : float
        ½ Σ_k |h_k − null_k|.
    chi2, dof, p_value : float, int, float
        χ² goodness of fit of the counts to n·null (bins pooled until each expects ≥ 5).
    dispersion : float
        Var(k) / Σ p_i(1 − p_i) (1 under independence; inf if the null variance is 0).
    """

    counts: np.ndarray
    frequencies: np.ndarray
    null: np.ndarray
    accuracies: np.ndarray
    all_correct: float
    none_correct: float
    null_all_correct: float
    null_none_correct: float
    total_variation: float
    chi2: float
    dof: int
    p_value: float
    dispersion: float


def _pooled_chi2(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0) -> tuple[float, int]:
    """χ² over bins merged left to right until each expects ≥ min_expected (the last group joins
    its neighbour when short)."""
    groups_o, groups_e, o, e = [], [], 0.0, 0.0
    for ob, ex in zip(observed, expected):
        o += ob
        e += ex
        if e >= min_expected:
            groups_o.append(o)
            groups_e.append(e)
            o = e = 0.0
    if e > 0 or o > 0:
        if groups_e:
            groups_o[-1] += o
            groups_e[-1] += e
        else:
            groups_o.append(o)
            groups_e.append(e)
    go, ge = np.array(groups_o), np.array(groups_e)
    return float(np.sum((go - ge) ** 2 / ge)), max(len(ge) - 1, 0)


def tp_histogram(data: Correctness, *, checkpoint: int = -1) -> TPAHistogram:
    """Histogram of N·TPA(x) with the Poisson-binomial independence null (see the module notes)."""
    from scipy.stats import chi2 as chi2_dist

    c = _final_correct(data, checkpoint)
    N, n = c.shape
    k = c.sum(axis=0)
    counts = np.bincount(k, minlength=N + 1).astype(np.int64)
    freq = counts / n
    p = c.mean(axis=1)
    null = poisson_binomial_pmf(p)
    stat, dof = _pooled_chi2(counts.astype(np.float64), n * null)
    null_var = float(np.sum(p * (1 - p)))
    var = float(np.var(k))
    dispersion = var / null_var if null_var > 0 else (1.0 if var == 0 else np.inf)
    return TPAHistogram(counts=counts, frequencies=freq, null=null, accuracies=p, all_correct=float(freq[N]),
                        none_correct=float(freq[0]), null_all_correct=float(np.prod(p)),
                        null_none_correct=float(np.prod(1 - p)),
                        total_variation=float(0.5 * np.abs(freq - null).sum()), chi2=stat, dof=dof,
                        p_value=float(chi2_dist.sf(stat, dof)) if dof > 0 else float("nan"), dispersion=dispersion)


@dataclass(frozen=True)
class AllOrNone:
    """Fractions of examples every network gets right, none does, and (Pliushch et al. 2021) the
    ratio |right by all| / |right by at least one| (nan when no example is right by any)."""

    all_correct: float
    none_correct: float
    all_over_any: float


def all_or_none(data: Correctness, *, checkpoint: int = -1) -> AllOrNone:
    """All-or-none fractions at a checkpoint."""
    c = _final_correct(data, checkpoint)
    every, some = c.all(axis=0), c.any(axis=0)
    return AllOrNone(all_correct=float(every.mean()), none_correct=float(1 - some.mean()),
                     all_over_any=float(every.sum() / some.sum()) if some.any() else float("nan"))


def accessibility(store: CorrectnessStore, *, checkpoints: Optional[Sequence[int]] = None) -> np.ndarray:
    """acc(x) = mean of c over networks and checkpoints (default all recorded ones), float64 (n,)."""
    if not isinstance(store, CorrectnessStore):
        raise ValueError(f"store must be a CorrectnessStore; got {type(store).__name__}")
    es = list(range(store.n_checkpoints)) if checkpoints is None else list(checkpoints)
    if not es:
        raise ValueError("checkpoints must name at least one checkpoint")
    return store.counts(es) / (store.n_networks * len(es))


@dataclass(frozen=True)
class OrderConstancy:
    """Pearson and Spearman correlation of two accessibility vectors (n examples)."""

    pearson: float
    spearman: float
    n: int


def _as_accessibility(x: Any, name: str) -> np.ndarray:
    if isinstance(x, CorrectnessStore):
        return accessibility(x)
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or not np.isfinite(a).all():
        raise ValueError(f"{name} must be a CorrectnessStore or a finite 1-D accessibility vector")
    return a


def learning_order_constancy(a: Any, b: Any) -> OrderConstancy:
    """How much two ensembles (stores, or accessibility vectors) agree on the order of learning.

    Constant accessibility on either side leaves the correlation undefined: ValueError."""
    from scipy.stats import rankdata

    x, y = _as_accessibility(a, "a"), _as_accessibility(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b cover different examples: {x.size} and {y.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("an accessibility vector is constant: the correlation is undefined")
    rx, ry = rankdata(x), rankdata(y)
    return OrderConstancy(pearson=float(np.corrcoef(x, y)[0, 1]), spearman=float(np.corrcoef(rx, ry)[0, 1]),
                          n=int(x.size))


@dataclass(frozen=True)
class SupersetTest:
    """Whether what a weaker ensemble learns is a subset of what a stronger one learns.

    Attributes
    ----------
    containment : float
        |L_W ∩ L_S| / |L_W| (nan if L_W is empty).
    baseline : float
        |L_S| / n: the containment expected if the sets were unrelated.
    early_correlation : float
        Pearson correlation of the two ensembles' accessibility over their first ``early_fraction``
        of checkpoints (nan when undefined).
    n_weak, n_strong : int
        |L_W|, |L_S|.
    """

    containment: float
    baseline: float
    early_correlation: float
    n_weak: int
    n_strong: int


def superset_test(weak: CorrectnessStore, strong: CorrectnessStore, *, threshold: float = 0.5,
                  early_fraction: float = 0.2) -> SupersetTest:
    """The cross-architecture superset test of METHODS §7.1 (Library choice of statistic)."""
    for name, s in (("weak", weak), ("strong", strong)):
        if not isinstance(s, CorrectnessStore):
            raise ValueError(f"{name} must be a CorrectnessStore; got {type(s).__name__}")
    if weak.n_examples != strong.n_examples:
        raise ValueError(f"weak and strong cover different examples: {weak.n_examples} and {strong.n_examples}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1]; got {threshold!r}")
    if not 0 < early_fraction <= 1:
        raise ValueError(f"early_fraction must be in (0, 1]; got {early_fraction!r}")
    Lw = tp_agreement(weak) >= threshold
    Ls = tp_agreement(strong) >= threshold
    early = []
    for s in (weak, strong):
        e = max(1, int(round(early_fraction * s.n_checkpoints)))
        early.append(accessibility(s, checkpoints=range(e)))
    r = (float(np.corrcoef(early[0], early[1])[0, 1]) if np.ptp(early[0]) > 0 and np.ptp(early[1]) > 0
         else float("nan"))
    nw = int(Lw.sum())
    return SupersetTest(containment=float((Lw & Ls).sum() / nw) if nw else float("nan"),
                        baseline=float(Ls.mean()), early_correlation=r, n_weak=nw, n_strong=int(Ls.sum()))
