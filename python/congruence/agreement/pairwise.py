"""Pairwise behavioural measures of classifiers (METHODS.md §7.2).

For K models on n inputs:

- top-1 agreement A_fg = (1/n) Σ 1[argmax f = argmax g] (ties → lowest class) and disagreement
  1 − A, as K × K matrices from bit-sliced labels: plane p holds bit p of every prediction, and
  two models agree on an input where no plane differs, so A_fg·n = popcount(valid & ~OR_p(f_p ^ g_p))
  (compiled, ``_cpu.gram_equal_sliced``);
- error consistency (Cohen's κ; Geirhos et al. 2020) from bit-packed correctness: with
  b_fg = popcount(c_f & c_g) (``_cpu.gram_popcount``), c_obs = (n − |c_f| − |c_g| + 2 b_fg)/n,
  c_exp = p_f p_g + (1 − p_f)(1 − p_g), κ = (c_obs − c_exp)/(1 − c_exp), NaN with a warning where
  c_exp = 1;
- top-k agreement (mean |T_k(f) ∩ T_k(g)|/k; ``exact=True``: identical sets), per-class agreement
  and the Jensen–Shannon divergence of softmax outputs (natural log, ∈ [0, ln 2]; ``base=2`` →
  [0, 1]), from logits with log m = logaddexp(log p, log q) − ln 2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import _cpu
from .._resources import resolve_threads
from .bits import bit_planes, pack_rows, valid_words

__all__ = ["agreement_matrix", "disagreement_matrix", "error_consistency", "ErrorConsistency",
           "UndefinedKappaWarning", "topk_agreement", "class_agreement", "jensen_shannon"]


class UndefinedKappaWarning(UserWarning):
    """κ is undefined (c_exp = 1: both models always right, or always wrong)."""


def _labels(predictions: Any, name: str = "predictions") -> np.ndarray:
    P = predictions.detach().cpu().numpy() if hasattr(predictions, "detach") else np.asarray(predictions)
    if P.ndim != 2 or P.shape[0] < 1 or P.shape[1] < 1:
        raise ValueError(f"{name} must be (n_models, n_inputs) labels; got shape {P.shape}")
    if not np.issubdtype(P.dtype, np.integer):
        raise ValueError(f"{name} must be integer labels; got dtype {P.dtype}")
    if P.min() < 0:
        raise ValueError(f"{name} must be non-negative labels")
    return P


def agreement_matrix(predictions: Any, *, n_classes: Optional[int] = None,
                     num_threads: Optional[int] = None) -> np.ndarray:
    """Top-1 agreement between every pair of models.

    Parameters
    ----------
    predictions : array_like of int, shape (K, n)
        Each model's predicted label per input (``argmax`` of its outputs).
    n_classes : int, optional
        Labels are in [0, n_classes) (default: max + 1); sets the number of bit planes ⌈log₂ C⌉.
    num_threads : int, optional

    Returns
    -------
    ndarray of float64, shape (K, K)
        Symmetric, ones on the diagonal.
    """
    P = _labels(predictions)
    C = int(P.max()) + 1 if n_classes is None else int(n_classes)
    if C < 1 or P.max() >= C:
        raise ValueError(f"n_classes={n_classes} but a label is {int(P.max())}")
    K, n = P.shape
    threads = resolve_threads(num_threads)
    planes = bit_planes(P, C, threads)
    out = np.empty((K, K), np.int64)
    _cpu.gram_equal_sliced(planes, valid_words(n), out, threads)
    return out / n


def disagreement_matrix(predictions: Any, *, n_classes: Optional[int] = None,
                        num_threads: Optional[int] = None) -> np.ndarray:
    """1 − :func:`agreement_matrix`."""
    return 1.0 - agreement_matrix(predictions, n_classes=n_classes, num_threads=num_threads)


@dataclass(frozen=True)
class ErrorConsistency:
    """Cohen's κ between every pair of models' correctness.

    Attributes
    ----------
    kappa : ndarray, shape (K, K)
        NaN where c_exp = 1.
    observed : ndarray, shape (K, K)
        c_obs: the fraction of inputs where both are right or both wrong.
    expected : ndarray, shape (K, K)
        c_exp = p_f p_g + (1 − p_f)(1 − p_g).
    accuracy : ndarray, shape (K,)
    both_correct : ndarray of int64, shape (K, K)
        Inputs both models get right.
    """

    kappa: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    accuracy: np.ndarray
    both_correct: np.ndarray


def error_consistency(correct: Any, *, num_threads: Optional[int] = None) -> ErrorConsistency:
    """Error consistency (κ) of K models from their correctness (K, n) (bool, 0/1, or a
    :class:`CorrectnessStore`'s ``packed()`` words with ``n`` known: pass the store's ``correct()``)."""
    from .store import CorrectnessStore

    if isinstance(correct, CorrectnessStore):
        words, n = correct.packed(), correct.n_examples
    else:
        c = correct.detach().cpu().numpy() if hasattr(correct, "detach") else np.asarray(correct)
        if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
            raise ValueError(f"correct must be (n_models, n_inputs); got shape {c.shape}")
        if c.dtype != bool and not (np.issubdtype(c.dtype, np.integer) and np.isin(c, (0, 1)).all()):
            raise ValueError("correct must be booleans (or 0/1 integers)")
        words, n = pack_rows(c.astype(bool)), c.shape[1]
    K = words.shape[0]
    both = np.empty((K, K), np.int64)
    _cpu.gram_popcount(np.ascontiguousarray(words), both, resolve_threads(num_threads))
    right = np.diag(both).astype(np.float64)
    p = right / n
    c_obs = (n - right[:, None] - right[None, :] + 2.0 * both) / n
    c_exp = np.outer(p, p) + np.outer(1 - p, 1 - p)
    undefined = np.isclose(c_exp, 1.0, rtol=0, atol=1e-15)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(undefined, np.nan, (c_obs - c_exp) / (1.0 - c_exp))
    if undefined.any():
        warnings.warn(f"{int(undefined.sum())} model pairs have c_exp = 1 (always right or always wrong): their "
                      "kappa is NaN", UndefinedKappaWarning, stacklevel=2)
    return ErrorConsistency(kappa=kappa, observed=c_obs, expected=c_exp, accuracy=p, both_correct=both)


def _scores(a: Any, name: str) -> np.ndarray:
    A = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    if A.ndim != 2 or A.shape[0] < 1 or A.shape[1] < 1:
        raise ValueError(f"{name} must be (n_inputs, n_classes) scores; got shape {A.shape}")
    A = A.astype(np.float64)
    if not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return A


def _top_sets(S: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k largest scores, ties to the lower class (a stable sort of −S)."""
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def topk_agreement(f: Any, g: Any, k: int = 5, *, exact: bool = False) -> float:
    """Mean over inputs of |T_k(f) ∩ T_k(g)| / k (``exact``: the fraction with identical top-k sets)."""
    F, G = _scores(f, "f"), _scores(g, "g")
    if F.shape != G.shape:
        raise ValueError(f"f and g must have one shape; got {F.shape} and {G.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= F.shape[1]:
        raise ValueError(f"k must be an integer in [1, {F.shape[1]}]; got {k!r}")
    Tf, Tg = np.sort(_top_sets(F, k), axis=1), np.sort(_top_sets(G, k), axis=1)
    if exact:
        return float(np.all(Tf == Tg, axis=1).mean())
    inter = (Tf[:, :, None] == Tg[:, None, :]).any(axis=2).sum(axis=1)
    return float((inter / k).mean())


def class_agreement(pred_f: Any, pred_g: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 agreement of two models restricted to each true class: (classes, agreement per class)."""
    P = _labels(np.stack([np.asarray(pred_f), np.asarray(pred_g)]), "pred_f/pred_g")
    y = np.asarray(labels)
    if y.shape != (P.shape[1],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {P.shape[1]} integers")
    same = P[0] == P[1]
    classes = np.unique(y)
    return classes, np.array([same[y == c].mean() for c in classes])


def jensen_shannon(logits_f: Any, logits_g: Any, *, base: Optional[float] = None) -> float:
    """Mean over inputs of JSD(softmax f, softmax g), natural log (``base=2``: bits, ∈ [0, 1])."""
    from scipy.special import log_softmax

    F, G = _scores(logits_f, "logits_f"), _scores(logits_g, "logits_g")
    if F.shape != G.shape:
        raise ValueError(f"logits_f and logits_g must have one shape; got {F.shape} and {G.shape}")
    if base is not None and (isinstance(base, bool) or not base > 1):
        raise ValueError(f"base must be a number > 1; got {base!r}")
    lp, lq = log_softmax(F, axis=1), log_softmax(G, axis=1)
    lm = np.logaddexp(lp, lq) - np.log(2.0)
    p, q = np.exp(lp), np.exp(lq)
    # 0·log 0 = 0: where p = 0 exactly, lp = −inf and the product is taken as 0
    kl_p = np.where(p > 0, p * (lp - lm), 0.0).sum(axis=1)
    kl_q = np.where(q > 0, q * (lq - lm), 0.0).sum(axis=1)
    jsd = 0.5 * (kl_p + kl_q)
    if base is not None:
        jsd = jsd / np.log(base)
    return float(jsd.mean())
