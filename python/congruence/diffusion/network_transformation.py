"""``transformation(net_a, net_b, inputs)``: is network B's behaviour a function of what network A
computes? The pipeline of METHODS.md §6.7 (Bertalan, Dietrich & Kevrekidis 2020) on torch
networks.

1. The inputs are split into training points x_i and held-out points x′ (seeded).
2. A is observed at its outputs or at a layer's neurons; ``neurons_a="auto"`` picks 2d+1 of them
   by pivoted QR on their Jacobians (§6.8), with d the given ``intrinsic_dim`` or the modal rank
   of the layer's Jacobians. The observations' Jacobians with respect to the inputs (or to latent
   parameters ξ through ``generator``) give the local covariances C_i = J_iJ_iᵀ.
3. :class:`~congruence.diffusion.transformation.TransformationMap` fits the Mahalanobis diffusion
   map, the LLR intrinsic coordinates Φ_A, and geometric harmonics Φ_A → o_B.
4. The held-out error e decides the verdict: ``equivalent`` when e < ``threshold`` (0.05,
   METHODS' configurable default; e ≈ 1 means T predicts no better than B's mean).

Optionally (``consistency=True``) the same coordinates are computed from B's observations and
compared by canonical correlations with Φ_A on the training inputs (≥ 0.99 when both networks
see the same intrinsic geometry; this sidesteps eigenvector sign and order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np

from .mahalanobis import factors_from_jacobians
from .observables import Neurons, observe, select_neurons
from .transformation import EQUIVALENCE_THRESHOLD, TransformationMap, intrinsic_coordinates

__all__ = ["transformation", "Transformation"]

#: Inputs whose full-layer Jacobians are used to choose neurons.
SELECTION_POINTS = 512
#: Canonical correlation above which Φ_A and Φ_B count as consistent.
CONSISTENCY_THRESHOLD = 0.99


@dataclass(frozen=True)
class Transformation:
    """The result of :func:`transformation`.

    Attributes
    ----------
    error : float
        Held-out ‖T(o_A(x′)) − o_B(x′)‖_F / ‖o_B(x′) − mean‖_F.
    feature_errors : ndarray, shape (D_B,)
        The same per feature of B.
    equivalent : bool
        error < threshold.
    threshold : float
    intrinsic_dim : int
        d used; ``intrinsic_dim_llr`` and ``covariance_rank`` are its two estimates.
    intrinsic_dim_llr : int
    covariance_rank : int
    residuals : ndarray
        LLR residuals r_1..r_m of A's diffusion eigenvectors.
    coordinates : ndarray of int64
        The ψ indices (1-based) used as Φ_A.
    neurons_a, neurons_b : ndarray of int64 or None
        Observed columns (None: all).
    consistency : ndarray or None
        Canonical correlations of Φ_A and Φ_B (``consistency=True``).
    n_train, n_held_out : int
    map : TransformationMap
        The fitted T (``map.predict(o_A)``).
    """

    error: float
    feature_errors: np.ndarray
    equivalent: bool
    threshold: float
    intrinsic_dim: int
    intrinsic_dim_llr: int
    covariance_rank: int
    residuals: np.ndarray
    coordinates: np.ndarray
    neurons_a: Optional[np.ndarray]
    neurons_b: Optional[np.ndarray]
    consistency: Optional[np.ndarray]
    n_train: int
    n_held_out: int
    map: TransformationMap

    @property
    def consistent(self) -> Optional[bool]:
        """Whether every canonical correlation of Φ_A and Φ_B is ≥ 0.99 (None if not checked)."""
        return None if self.consistency is None else bool(np.min(self.consistency) >= CONSISTENCY_THRESHOLD)


def _split(inputs: Any, held_out: Any, seed: int) -> tuple[Any, Any]:
    import torch

    X = inputs if torch.is_tensor(inputs) else np.asarray(inputs)
    N = X.shape[0] if X.ndim >= 1 else 0
    if isinstance(held_out, (float, np.floating)) and not isinstance(held_out, bool):
        if not 0 < held_out < 1:
            raise ValueError(f"held_out must be a fraction in (0, 1) or an array of held-out inputs; got {held_out!r}")
        n_out = int(round(held_out * N))
        if n_out < 1 or N - n_out < 10:
            raise ValueError(f"held_out={held_out} of {N} inputs leaves {n_out} held-out and {N - n_out} training "
                             "points; need at least 1 and 10")
        perm = np.random.default_rng(seed).permutation(N)
        tr, te = np.sort(perm[n_out:]), np.sort(perm[:n_out])
        if torch.is_tensor(X):
            return X[torch.as_tensor(tr)], X[torch.as_tensor(te)]
        return X[tr], X[te]
    H = held_out if torch.is_tensor(held_out) else np.asarray(held_out)
    if H.ndim != X.ndim or tuple(H.shape[1:]) != tuple(X.shape[1:]) or H.shape[0] < 1:
        raise ValueError(f"held_out inputs must have the inputs' shape per row {tuple(X.shape[1:])}; got "
                         f"{tuple(H.shape)}")
    return X, H


def _choose_neurons(net: Any, inputs: Any, layer: str, generator: Optional[Callable], intrinsic_dim: Optional[int],
                    seed: int, name: str) -> np.ndarray:
    """2d+1 neurons of ``layer`` by pivoted QR on Jacobians at up to SELECTION_POINTS inputs."""
    N = inputs.shape[0]
    pick = np.sort(np.random.default_rng(seed + 1).choice(N, min(N, SELECTION_POINTS), replace=False))
    _, J = observe(net, inputs[pick], layer=layer, generator=generator, jacobians=True, name=name)
    if intrinsic_dim is None:
        intrinsic_dim = int(np.bincount(factors_from_jacobians(J).rank).argmax())
    n = 2 * int(intrinsic_dim) + 1
    if n > J.shape[1]:
        raise ValueError(f"{name}={layer!r} has {J.shape[1]} neurons, fewer than 2d+1 = {n}; observe a wider layer")
    return select_neurons(J, n)


def transformation(net_a: Any, net_b: Any, inputs: Any, *, held_out: Any = 0.2, layer_a: str = "output",
                   neurons_a: Neurons = None, layer_b: str = "output", neurons_b: Neurons = None,
                   generator: Optional[Callable] = None, intrinsic_dim: Optional[int] = None,
                   threshold: float = EQUIVALENCE_THRESHOLD, consistency: bool = False, n_components: int = 10,
                   k: Optional[int] = 30, epsilon: Union[float, str] = "median", seed: int = 0,
                   num_threads: Optional[int] = None) -> Transformation:
    """Fit T_{A→B} from A's observations to B's and test it on held-out inputs (METHODS §6.7).

    Parameters
    ----------
    net_a, net_b : torch.nn.Module
        Networks taking the same inputs (or ``generator``'s output).
    inputs : array_like or torch.Tensor, shape (N, d_in) or (N, ...)
        Samples of the input manifold (or of the latent parameters ξ, with ``generator``).
    held_out : float or array_like
        Fraction of ``inputs`` held out (seeded), or separate held-out inputs.
    layer_a, layer_b : str
        "output", "input" (B only, in practice: reconstruct the input) or a submodule name.
    neurons_a, neurons_b : sequence of int, "auto" or None
        Columns observed (None: all; "auto": 2d+1 by pivoted QR on the Jacobians, §6.8).
    generator : callable, optional
        Differentiable torch map ξ -> network input; the geometry kept is ξ's.
    intrinsic_dim : int, optional
        d. Default: estimated (LLR count, checked against the Jacobians' modal rank).
    threshold : float
        e < threshold is the ``equivalent`` verdict.
    consistency : bool
        Also compute Φ_B from B's observations and its canonical correlations with Φ_A.
    n_components, k, epsilon, seed, num_threads
        Of the diffusion maps (see :class:`TransformationMap`).

    Returns
    -------
    Transformation

    Examples
    --------
    >>> result = transformation(net_a, net_b, x)          # doctest: +SKIP
    >>> result.error, result.equivalent                   # doctest: +SKIP
    """
    if isinstance(threshold, bool) or not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive number; got {threshold!r}")
    train, test = _split(inputs, held_out, seed)
    cols = {}
    for side, net, layer, neurons in (("a", net_a, layer_a, neurons_a), ("b", net_b, layer_b, neurons_b)):
        if isinstance(neurons, str):
            if neurons != "auto":
                raise ValueError(f"neurons_{side} must be None, 'auto' or a sequence of indices; got {neurons!r}")
            cols[side] = _choose_neurons(net, train, layer, generator, intrinsic_dim, seed, f"layer_{side}")
        else:
            cols[side] = None if neurons is None else np.asarray(neurons, dtype=np.int64).ravel()
    obs_a, J_a = observe(net_a, train, layer=layer_a, neurons=cols["a"], generator=generator, jacobians=True,
                         name="layer_a")
    test_a, J_ta = observe(net_a, test, layer=layer_a, neurons=cols["a"], generator=generator, jacobians=True,
                           name="layer_a")
    obs_b, J_b = observe(net_b, train, layer=layer_b, neurons=cols["b"], generator=generator, jacobians=consistency,
                         name="layer_b")
    test_b, _ = observe(net_b, test, layer=layer_b, neurons=cols["b"], generator=generator, name="layer_b")
    fac_a = factors_from_jacobians(J_a)
    T = TransformationMap(intrinsic_dim, n_components=n_components, k=k, epsilon=epsilon, seed=seed,
                          num_threads=num_threads).fit(obs_a, obs_b, factors=fac_a)
    err, per = T.score(test_a, test_b, factors=factors_from_jacobians(J_ta))
    cc = None
    if consistency:
        from ..similarity.cca import cca

        phi_b = intrinsic_coordinates(obs_b, factors=factors_from_jacobians(J_b), intrinsic_dim=T.intrinsic_dim_,
                                      n_components=n_components, k=k, epsilon=epsilon, seed=seed,
                                      num_threads=num_threads).coordinates
        cc = np.asarray(cca(T.coordinates_, phi_b).rho)
    return Transformation(error=err, feature_errors=per, equivalent=bool(err < threshold), threshold=float(threshold),
                          intrinsic_dim=T.intrinsic_dim_, intrinsic_dim_llr=T.intrinsic_dim_llr_,
                          covariance_rank=T.covariance_rank_, residuals=T.selection_.residuals,
                          coordinates=T.selection_.selected, neurons_a=cols["a"], neurons_b=cols["b"],
                          consistency=cc, n_train=int(obs_a.shape[0]), n_held_out=int(test_a.shape[0]), map=T)
