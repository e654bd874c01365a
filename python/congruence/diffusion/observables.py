"""What a transformation observes of a torch network (METHODS.md §6.7–6.8): its outputs, the
flattened output of a named submodule (all neurons or chosen ones), or its input; their Jacobians
with respect to the variables whose geometry is kept (the inputs, or latent parameters ξ mapped
to inputs by a differentiable ``generator``), by ``torch.func.vmap(jacrev(...))``; and the choice
of 2d+1 generic neurons by greedy column-pivoted QR on the stacked Jacobian rows (Library choice:
each pick is the neuron whose gradients add the most new directions to those already chosen).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

__all__ = ["observe", "select_neurons", "Neurons"]

Neurons = Union[None, str, Sequence[int], np.ndarray]

#: Inputs per vmap(jacrev) call (bounds the memory of one batched Jacobian).
JACOBIAN_BATCH = 256


def _dtype_of(net: Any):
    import torch

    for p in net.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _layer_function(net: Any, layer: str, name: str) -> Callable:
    """x (n, ...) -> the observed tensor flattened to (n, D)."""
    if layer == "output":
        return lambda x: net(x).reshape(x.shape[0], -1)
    if layer == "input":
        return lambda x: x.reshape(x.shape[0], -1)
    try:
        module = net.get_submodule(layer)
    except AttributeError as exc:
        raise ValueError(f"{name}={layer!r} is not 'output', 'input' or a submodule name of the network "
                         f"(named_modules())") from exc

    def hooked(x):
        seen = []
        handle = module.register_forward_hook(lambda m, i, o: seen.append(o))
        try:
            net(x)
        finally:
            handle.remove()
        if not seen:
            raise ValueError(f"{name}={layer!r}: that submodule is not called by the network's forward pass")
        out = seen[-1]
        if not hasattr(out, "reshape"):
            raise ValueError(f"{name}={layer!r}: that submodule returns a {type(out).__name__}, not a tensor")
        return out.reshape(x.shape[0], -1)

    return hooked


def observe(net: Any, inputs: Any, *, layer: str = "output", neurons: Optional[Any] = None,
            generator: Optional[Callable] = None, jacobians: bool = False, name: str = "layer",
            batch_size: int = 1024) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Observations of ``net`` at ``inputs`` and, optionally, their Jacobians.

    Parameters
    ----------
    net : torch.nn.Module
        Run in eval mode (restored afterwards), in its own parameter dtype.
    inputs : array_like or torch.Tensor, shape (N, d_in) or (N, ...)
        The variables ξ (network inputs, or a generator's latent parameters).
    layer : str
        "output", "input" (the network input x itself) or a submodule name.
    neurons : sequence of int, optional
        Columns of the flattened observation kept (default: all).
    generator : callable, optional
        Differentiable torch map ξ (n, d) -> network input x (n, ...).
    jacobians : bool
        Also return ∂o/∂ξ per input.

    Returns
    -------
    observations : ndarray of float64, shape (N, D)
    jacobians : ndarray of float64, shape (N, D, d), or None
    """
    import torch
    from torch.func import jacrev, vmap

    dtype = _dtype_of(net)
    xi = inputs.detach() if torch.is_tensor(inputs) else torch.as_tensor(np.asarray(inputs))
    xi = xi.to(dtype)
    if xi.ndim < 2 or xi.shape[0] < 1:
        raise ValueError(f"inputs must be (N, ...) with N >= 1; got shape {tuple(xi.shape)}")
    if not torch.isfinite(xi).all():
        raise ValueError("inputs contain NaN or Inf values")
    device = next((p.device for p in net.parameters()), xi.device)
    xi = xi.to(device)
    fn = _layer_function(net, layer, name)
    cols = None if neurons is None else torch.as_tensor(np.asarray(neurons, dtype=np.int64), device=device)

    def observed(z):
        x = z if generator is None else generator(z)
        out = fn(x)
        return out if cols is None else out[:, cols]

    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            width = fn(xi[:1] if generator is None else generator(xi[:1])).shape[1]
            if cols is not None and (cols.numel() == 0 or int(cols.min()) < 0 or int(cols.max()) >= width):
                raise ValueError(f"neurons must be non-empty indices into the {width} columns observed at "
                                 f"{name}={layer!r}")
            obs = torch.cat([observed(xi[i:i + batch_size]) for i in range(0, xi.shape[0], batch_size)])
        J = None
        if jacobians:
            single = vmap(jacrev(lambda z: observed(z[None])[0]))
            J = torch.cat([single(xi[i:i + JACOBIAN_BATCH]) for i in range(0, xi.shape[0], JACOBIAN_BATCH)])
            J = J.reshape(J.shape[0], J.shape[1], -1).detach().to(torch.float64).cpu().numpy()
    finally:
        net.train(was)
    return obs.detach().to(torch.float64).cpu().numpy(), J


def select_neurons(jacobians: Any, n_neurons: int) -> np.ndarray:
    """Indices of ``n_neurons`` generic neurons: greedy column-pivoted QR (LAPACK geqp3) of the
    matrix whose column c stacks neuron c's Jacobian rows at every input, shape (N·d, D).

    Parameters
    ----------
    jacobians : array_like, shape (N, D, d)
    n_neurons : int

    Returns
    -------
    ndarray of int64, shape (n_neurons,)
        In pick order (the first adds the most, each next the most beyond the span of those before).
    """
    import scipy.linalg

    J = np.asarray(jacobians, dtype=np.float64)
    if J.ndim != 3:
        raise ValueError(f"jacobians must be (N, D, d); got shape {J.shape}")
    N, D, d = J.shape
    if isinstance(n_neurons, bool) or not isinstance(n_neurons, (int, np.integer)) or not 1 <= n_neurons <= D:
        raise ValueError(f"n_neurons must be an integer in [1, {D}] (the observed neurons); got {n_neurons!r}")
    M = np.transpose(J, (0, 2, 1)).reshape(N * d, D)
    _, piv = scipy.linalg.qr(M, mode="r", pivoting=True)
    return piv[:n_neurons].astype(np.int64)
