"""Robustness curves of several classifiers under the distortion suite (METHODS.md §4.3, §7.2).

For every distortion level d and every network k: top-1 and top-k accuracy, the top-1
predictions, the same-prediction agreement A_kl(d) = (1/n) Σ_x 1[ŷ_k(x) = ŷ_l(x)] between every
pair of networks (METHODS §7.2; argmax ties → lowest class), its mean over the pairs, and per
distortion the Pearson correlation of the networks' accuracy curves (accuracy against level).
The undistorted images give the reference point of every curve.

Pipeline per batch (METHODS §4.3): images in any range → :func:`~congruence.agreement.
distortions.to_unit_range` (floats in [0, 1]) → distortion → ×255 → the network's own
preprocessing → network (eval mode, no gradients).

References
----------
A. Akbarinia and K. R. Gegenfurtner, "Paradox in deep neural networks: similar yet different
while different yet similar", arXiv:1903.04772 (2019). R. Geirhos et al., "Beyond accuracy:
quantifying trial-by-trial behaviour of CNNs and humans by measuring error consistency",
NeurIPS 2020 (agreement between classifiers).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .distortions import DISTORTION_LEVELS, Distortion, _torch, distortion_suite, to_unit_range

if TYPE_CHECKING:  # torch is an optional dependency of congruence
    import torch
    from matplotlib.figure import Figure

__all__ = ["RobustnessCurves", "robustness_curves"]

Preprocess = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class RobustnessCurves:
    """Accuracy and agreement of K networks under each distortion level.

    Every per-distortion entry is a dict keyed by distortion name (in :attr:`distortions`
    order), with the levels along the axis marked L (in :attr:`levels` order). Accuracies are
    fractions in [0, 1] (float64); n is the number of images.

    Attributes
    ----------
    model_names : tuple of str, length K
        The dict keys of ``models``, or ``"model0"``, ``"model1"``, … for a list.
    distortions : tuple of str
        The distortion names evaluated.
    levels : dict name → ndarray, shape (L,), float64
    top1, topk : dict name → ndarray, shape (K, L), float64
        Top-1 and top-``top_k`` accuracy.
    predictions : dict name → ndarray, shape (K, L, n), int64
        Top-1 predictions (ties → lowest class).
    agreement : dict name → ndarray, shape (L, K, K), float64
        A_kl: fraction of images on which networks k and l predict the same class. Symmetric,
        ones on the diagonal.
    mean_agreement : dict name → ndarray, shape (L,), float64
        Mean of A_kl over the K(K − 1) off-diagonal entries (NaN when K = 1).
    curve_correlation : dict name → ndarray, shape (K, K), float64
        Pearson correlation, across networks, of the top-1 accuracy curves over the levels (the
        undistorted point excluded). NaN for a distortion with a single level (``poisson``);
        0 for a constant curve (METHODS §1.3's default; a warning says which).
    reference_top1, reference_topk : ndarray, shape (K,), float64
        Accuracy on the undistorted images.
    reference_predictions : ndarray, shape (K, n), int64
    reference_agreement : ndarray, shape (K, K), float64
    labels : ndarray, shape (n,), int64
    top_k : int
    seed : int
        Base seed of the noise (see :func:`~congruence.agreement.distortions.image_seed`).
    """

    model_names: tuple
    distortions: tuple
    levels: dict
    top1: dict
    topk: dict
    predictions: dict
    agreement: dict
    mean_agreement: dict
    curve_correlation: dict
    reference_top1: np.ndarray
    reference_topk: np.ndarray
    reference_predictions: np.ndarray
    reference_agreement: np.ndarray
    labels: np.ndarray
    top_k: int = 5
    seed: int = 0
    info: dict = field(default_factory=dict)

    def class_agreement(self, distortion: str) -> tuple[np.ndarray, np.ndarray]:
        """Same-prediction agreement per true class (METHODS §7.2, "per class").

        Parameters
        ----------
        distortion : str
            One of :attr:`distortions`, or ``"reference"`` for the undistorted images.

        Returns
        -------
        classes : ndarray, shape (M,), int64
            The classes present in :attr:`labels`, ascending.
        agreement : ndarray, shape (L, K, K, M), float64
            A_kl restricted to the images of each class (L = 1 for ``"reference"``).
        """
        if distortion == "reference":
            pred = self.reference_predictions[:, None, :]
        elif distortion in self.predictions:
            pred = self.predictions[distortion]
        else:
            raise ValueError(f"distortion must be 'reference' or one of {list(self.distortions)}; got {distortion!r}")
        classes = np.unique(self.labels)
        same = pred[:, None, :, :] == pred[None, :, :, :]  # (K, K, L, n)
        out = np.stack([same[..., self.labels == c].mean(axis=-1) for c in classes], axis=-1)
        return classes, np.ascontiguousarray(out.transpose(2, 0, 1, 3))

    def plot(self, path: Optional[Union[str, os.PathLike]] = None, *, metric: str = "top1",
             dpi: int = 100) -> "Figure":
        """Accuracy against level, one panel per distortion, one line per network; the
        undistorted accuracy as a dotted horizontal line of the same colour.

        Draws on matplotlib's Agg canvas directly (no pyplot, no change of the global backend).

        Parameters
        ----------
        path : str or path-like, optional
            Where to save the figure as a PNG.
        metric : {"top1", "topk"}
        dpi : int

        Returns
        -------
        matplotlib.figure.Figure
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("RobustnessCurves.plot needs matplotlib (pip install matplotlib)") from None
        if metric not in ("top1", "topk"):
            raise ValueError(f"metric must be 'top1' or 'topk'; got {metric!r}")
        acc = self.top1 if metric == "top1" else self.topk
        ref = self.reference_top1 if metric == "top1" else self.reference_topk
        ylabel = "top-1 accuracy" if metric == "top1" else f"top-{self.top_k} accuracy"
        n = max(1, len(self.distortions))
        cols = min(4, n)
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(3.4 * cols, 2.8 * rows))
        FigureCanvasAgg(fig)
        colours = [f"C{k % 10}" for k in range(len(self.model_names))]
        for i, name in enumerate(self.distortions):
            ax = fig.add_subplot(rows, cols, i + 1)
            x = self.levels[name]
            for k, model in enumerate(self.model_names):
                ax.plot(x, acc[name][k], marker="o", ms=3, color=colours[k], label=model)
                ax.axhline(ref[k], color=colours[k], ls=":", lw=0.8)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("level", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            ax.tick_params(labelsize=7)
            if name == "gamma":
                ax.set_xscale("log")
        if self.distortions:
            fig.axes[0].legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(os.fspath(path), format="png", dpi=dpi)
        return fig

    def __repr__(self) -> str:
        return (f"RobustnessCurves(models={list(self.model_names)}, {len(self.distortions)} distortions, "
                f"{sum(len(v) for v in self.levels.values())} levels, n={self.labels.size}, top_k={self.top_k})")


# ------------------------------------------------------------------------------ helpers


def _model_device(model: Any) -> Any:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


def _logits(out: Any, name: str) -> "torch.Tensor":
    torch = _torch()
    # Torchvision's Inception/GoogLeNet return named tuples, HF models objects with .logits.
    if hasattr(out, "logits"):
        out = out.logits
    elif isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ValueError(f"model {name!r} must return logits of shape (batch, n_classes); "
                         f"got {type(out).__name__}{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
    return out


def _first_argmax(logits: "torch.Tensor") -> "torch.Tensor":
    """Index of the first maximum of each row.

    ``torch.argmax`` documents the same rule ("the indices of the first maximal value"); it is
    spelled out here so the tie rule of METHODS §0 holds by construction on every device.
    """
    torch = _torch()
    c = logits.shape[1]
    mx = logits.amax(dim=1, keepdim=True)
    ar = torch.arange(c, device=logits.device).expand_as(logits)
    return torch.where(logits == mx, ar, torch.full_like(ar, c)).amin(dim=1)


def _label_rank(logits: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    """Rank of the true class under "higher score first, ties → lower class": the label is in the
    top k iff its rank < k. Exact, unlike ``torch.topk``, whose choice among tied scores is
    unspecified."""
    torch = _torch()
    s = logits.gather(1, labels[:, None])
    ar = torch.arange(logits.shape[1], device=logits.device)
    above = (logits > s) | ((logits == s) & (ar[None, :] < labels[:, None]))
    return above.sum(dim=1)


def _pairwise_agreement(pred: np.ndarray) -> np.ndarray:
    """(K, n) predictions → (K, K) fraction of equal entries (the compiled bit-sliced counts)."""
    from .pairwise import agreement_matrix

    return agreement_matrix(np.asarray(pred, dtype=np.int64))


def _mean_off_diagonal(a: np.ndarray) -> float:
    k = a.shape[0]
    if k < 2:
        return math.nan
    return float((a.sum() - np.trace(a)) / (k * (k - 1)))


def _curve_correlation(acc: np.ndarray, name: str, model_names: Sequence[str]) -> np.ndarray:
    """(K, L) curves → (K, K) Pearson; NaN for L < 2, 0 for constant curves (METHODS §1.3)."""
    k, n_levels = acc.shape
    if n_levels < 2:
        return np.full((k, k), math.nan)
    c = acc - acc.mean(axis=1, keepdims=True)
    norm = np.sqrt((c * c).sum(axis=1))
    rms = np.sqrt((acc * acc).mean(axis=1))
    const = norm <= 1e-10 * np.maximum(rms, np.finfo(float).tiny) * math.sqrt(n_levels)
    if const.any():
        which = [model_names[i] for i in np.flatnonzero(const)]
        warnings.warn(f"robustness_curves: the {name} accuracy curve of {which} is constant; its curve "
                      "correlations are set to 0", RuntimeWarning, stacklevel=3)
    safe = np.where(const, 1.0, norm)
    r = (c @ c.T) / np.outer(safe, safe)
    r[const, :] = 0.0
    r[:, const] = 0.0
    np.fill_diagonal(r, np.where(const, 0.0, 1.0))
    return np.clip(r, -1.0, 1.0)


def _resolve_distortions(distortions: Any, n_channels: int) -> list[Distortion]:
    if distortions is None:
        suite = distortion_suite()
        # The illuminant scales the red channel; a grey image has none (METHODS §4.3 is RGB).
        return [d for d in suite if not (d.name == "illuminant" and n_channels < 2)]
    if isinstance(distortions, (str, Distortion)):
        distortions = [distortions]
    out: list[Distortion] = []
    for d in distortions:
        if isinstance(d, Distortion):
            out.append(d)
        elif isinstance(d, str):
            if d not in DISTORTION_LEVELS:
                raise ValueError(f"distortions must be Distortion objects or names in {sorted(DISTORTION_LEVELS)}; "
                                 f"got {d!r}")
            out.extend(distortion_suite([d]))
        else:
            raise TypeError(f"distortions must be Distortion objects or names; got {type(d).__name__}")
    if len(set(out)) != len(out):
        raise ValueError("distortions must not repeat a (name, level)")
    return out


def _resolve_preprocess(preprocess: Any, names: list[str]) -> list[Optional[Preprocess]]:
    if preprocess is None or callable(preprocess):
        return [preprocess] * len(names)
    if isinstance(preprocess, Mapping):
        missing = [n for n in names if n not in preprocess]
        if missing:
            raise ValueError(f"preprocess is missing entries for models {missing}")
        out = [preprocess[n] for n in names]
    elif isinstance(preprocess, Sequence) and not isinstance(preprocess, str):
        if len(preprocess) != len(names):
            raise ValueError(f"preprocess must hold one callable per model ({len(names)}); got {len(preprocess)}")
        out = list(preprocess)
    else:
        raise TypeError("preprocess must be None, a callable, or one callable per model (list or dict)")
    bad = [n for n, p in zip(names, out) if p is not None and not callable(p)]
    if bad:
        raise TypeError(f"preprocess entries must be callables or None; not for models {bad}")
    return out


# ------------------------------------------------------------------------------ entry point


def robustness_curves(models: Union[Sequence[Any], Mapping[str, Any]], images: Any, labels: Any,
                      distortions: Optional[Union[str, Distortion, Sequence[Union[str, Distortion]]]] = None, *,
                      preprocess: Optional[Union[Preprocess, Sequence[Optional[Preprocess]],
                                                 Mapping[str, Optional[Preprocess]]]] = None,
                      batch_size: int = 256, seed: int = 0, device: Any = None, top_k: int = 5,
                      noise_device: Any = None, progress: bool = False) -> RobustnessCurves:
    """Accuracy and same-prediction agreement of classifiers under the distortion suite
    (Akbarinia & Gegenfurtner 2019; METHODS.md §4.3, §7.2).

    Each batch goes: ``images`` → :func:`~congruence.agreement.distortions.to_unit_range`
    (uint8 /255; floats /255 if the image's max ∈ (1, 255], else /max) → distortion (on
    ``device``) → ×255 → ``preprocess`` (the network's own preprocessing) → network. The undistorted
    images give the reference accuracy.

    Parameters
    ----------
    models : sequence of torch.nn.Module or dict name → torch.nn.Module
        K classifiers returning logits (batch, n_classes) with one shared class set (a tuple or
        an object with ``.logits`` is accepted: its first element / ``.logits``). Put in eval mode
        for the run, their previous mode restored afterwards; run under ``torch.no_grad``. Each
        model receives its inputs on the device of its own parameters (``device`` if it has none).
    images : torch.Tensor or ndarray, shape (n, C, H, W)
        Any range accepted by ``to_unit_range`` (uint8, 0–255 floats or [0, 1] floats); RGB order.
        Stays where it is; one batch at a time is converted and moved to ``device``.
    labels : array_like of int, shape (n,)
        True classes in [0, n_classes).
    distortions : Distortion, str, or sequence of them, optional
        Distortion levels, or names (all their levels). Default: the whole suite
        (:func:`~congruence.agreement.distortions.distortion_suite`, 32 levels), without
        ``illuminant`` when the images have a single channel.
    preprocess : callable, or one per model (sequence or dict by name), optional
        Maps a float batch (B, C, H, W) with values in [0, 255] on ``device`` to the model's input,
        e.g. ``lambda x: normalize(x / 255)``. Default: the identity on [0, 1], i.e. ×255
        followed by /255, performed as the identity so that no rounding enters.
    batch_size : int
        Images per batch. Results do not depend on it (each image's noise comes from
        (``seed``, its index, distortion, level)).
    seed : int
        Base seed of the noise.
    device : torch.device or str, optional
        Where distortions are applied. Default: the device of the first model's parameters, else
        that of ``images`` (CPU for NumPy).
    top_k : int
        k of the top-k accuracy (1 ≤ k ≤ n_classes).
    noise_device : torch.device or str, optional
        Where noise is drawn (default ``device``); ``"cpu"`` makes the noise identical on every
        device.
    progress : bool
        Show a tqdm bar over the distortion levels.

    Returns
    -------
    RobustnessCurves

    Notes
    -----
    Top-1 predictions take the lowest class among tied maxima (METHODS §0, §7.2); ``torch.argmax``
    documents the same rule ("the first maximal value"), which the tests check, but the
    predictions are formed by an explicit first-maximum rule so the result cannot depend on the
    backend. Top-k counts the label as found when fewer than k classes beat it under the order
    "higher logit first, ties → lower class" — exact, where ``torch.topk`` leaves ties
    unspecified. A NaN logit raises (a NaN row has no argmax).
    """
    torch = _torch()
    # ---- models
    if isinstance(models, Mapping):
        names = [str(k) for k in models]
        nets = list(models.values())
    elif isinstance(models, Sequence) and not isinstance(models, str):
        nets = list(models)
        names = [f"model{i}" for i in range(len(nets))]
    else:
        raise TypeError(f"models must be a list of torch modules or a dict name -> module; got {type(models).__name__}")
    if not nets:
        raise ValueError("models must hold at least one model")
    for n, m in zip(names, nets):
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"models[{n!r}] must be a torch.nn.Module; got {type(m).__name__}")
    # ---- images and labels
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, C, H, W); got shape {tuple(images.shape)}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("images must hold at least one image")
    lab = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) (one per image); got shape {lab.shape}")
    if lab.dtype.kind not in "iu":
        if lab.dtype.kind == "f" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
            pass
        else:
            raise TypeError(f"labels must be integer class indices; got dtype {lab.dtype}")
    lab = lab.astype(np.int64)
    if lab.min() < 0:
        raise ValueError(f"labels must be non-negative class indices; got minimum {lab.min()}")
    # ---- options
    for arg, v in (("batch_size", batch_size), ("top_k", top_k), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{arg} must be an integer; got {v!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; got {top_k}")
    suite = _resolve_distortions(distortions, images.shape[1])
    pre = _resolve_preprocess(preprocess, names)
    if device is None:
        device = next((d for d in map(_model_device, nets) if d is not None), images.device)
    device = torch.device(device)
    model_devs = [_model_device(m) or device for m in nets]
    noise_device = device if noise_device is None else torch.device(noise_device)
    labels_t = torch.as_tensor(lab)

    # ---- evaluation: one pass over the data per distortion level, all models on each batch
    groups: dict[str, list[Distortion]] = {}
    for d in suite:
        groups.setdefault(d.name, []).append(d)
    plan: list[Optional[Distortion]] = [None] + suite  # None: the undistorted reference
    K = len(nets)
    preds = np.empty((len(plan), K, n), dtype=np.int64)
    ranks = np.empty((len(plan), K, n), dtype=np.int64)
    n_classes: Optional[int] = None

    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(plan), desc="robustness", leave=False)
        except ImportError:
            warnings.warn("progress=True needs tqdm (pip install tqdm); continuing without a progress bar",
                          stacklevel=2)
    modes = [m.training for m in nets]
    try:
        for m in nets:
            m.eval()
        with torch.no_grad():
            for p, dist in enumerate(plan):
                for start in range(0, n, batch_size):
                    stop = min(start + batch_size, n)
                    x = to_unit_range(images[start:stop].to(device))
                    if dist is not None:
                        x = dist(x, indices=range(start, stop), seed=seed, noise_device=noise_device)
                    x255 = None
                    for k, (name, net) in enumerate(zip(names, nets)):
                        if pre[k] is None:
                            inp = x
                        else:
                            if x255 is None:
                                x255 = x * 255.0
                            inp = pre[k](x255)
                        out = _logits(net(inp.to(model_devs[k])), name)
                        if out.shape[0] != stop - start:
                            raise ValueError(f"model {name!r} returned {out.shape[0]} rows for a batch "
                                             f"of {stop - start}")
                        if n_classes is None:
                            n_classes = int(out.shape[1])
                            if top_k > n_classes:
                                raise ValueError(f"top_k must be <= the number of classes ({n_classes}); got {top_k}")
                            if lab.max() >= n_classes:
                                raise ValueError(f"labels must be < the number of classes ({n_classes}); "
                                                 f"got maximum {lab.max()}")
                        elif out.shape[1] != n_classes:
                            raise ValueError(f"every model must output the same classes; model {name!r} gives "
                                             f"{out.shape[1]} logits, the first gave {n_classes}")
                        if torch.isnan(out).any():
                            where = "the undistorted images" if dist is None else dist.label
                            raise ValueError(f"model {name!r} returned NaN logits on {where}")
                        preds[p, k, start:stop] = _first_argmax(out).cpu().numpy()
                        ranks[p, k, start:stop] = _label_rank(
                            out, labels_t[start:stop].to(out.device)).cpu().numpy()
                if bar is not None:
                    bar.update(1)
    finally:
        for m, mode in zip(nets, modes):
            m.train(mode)
        if bar is not None:
            bar.close()

    top1_all = (ranks < 1).mean(axis=2)      # (P, K)
    topk_all = (ranks < top_k).mean(axis=2)
    position = {d: i + 1 for i, d in enumerate(suite)}
    levels, top1, topk, predictions, agreement, mean_agr, curve_r = {}, {}, {}, {}, {}, {}, {}
    for name, ds in groups.items():
        rows = [position[d] for d in ds]
        levels[name] = np.array([d.level for d in ds], dtype=np.float64)
        top1[name] = np.ascontiguousarray(top1_all[rows].T)
        topk[name] = np.ascontiguousarray(topk_all[rows].T)
        predictions[name] = np.ascontiguousarray(preds[rows].transpose(1, 0, 2))
        agreement[name] = np.stack([_pairwise_agreement(preds[r]) for r in rows])
        mean_agr[name] = np.array([_mean_off_diagonal(a) for a in agreement[name]])
        curve_r[name] = _curve_correlation(top1[name], name, names)
    return RobustnessCurves(
        model_names=tuple(names), distortions=tuple(groups), levels=levels, top1=top1, topk=topk,
        predictions=predictions, agreement=agreement, mean_agreement=mean_agr, curve_correlation=curve_r,
        reference_top1=top1_all[0].copy(), reference_topk=topk_all[0].copy(),
        reference_predictions=preds[0].copy(), reference_agreement=_pairwise_agreement(preds[0]),
        labels=lab, top_k=int(top_k), seed=int(seed),
        info={"n_images": n, "n_classes": n_classes, "batch_size": int(batch_size), "device": str(device),
              "noise_device": str(noise_device), "preprocess": "identity" if all(q is None for q in pre) else "custom"},
    )
