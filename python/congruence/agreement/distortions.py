"""The image-distortion suite of Akbarinia & Gegenfurtner (2019) (METHODS.md §4.3).

Every distortion maps a batch of float images in [0, 1] — a torch tensor of shape (N, C, H, W),
RGB channel order, on any device — to a batch of the same shape, dtype and device, still in
[0, 1]. The levels are those of the authors' evaluation scripts (2019-03 revision):

=================  ======================================  ==================================
name               levels (:data:`DISTORTION_LEVELS`)       definition
=================  ======================================  ==================================
``contrast``       0.01 0.05 0.15 0.30 0.50 0.75 1.0       (1 − c)/2 + c·img
``gamma``          0.1 0.3 0.5 0.8 1.2 2.0                 img^γ
``illuminant``     0.05 0.25 0.50 0.75                     channel 0 (R) × v; other channels × 1
``gaussian_blur``  0.1 0.3 0.5 0.7 0.9                     Gaussian of σ, size 2p + 1 (below)
``salt_pepper``    0.01 0.05 0.1                           element → 1 or 0 with probability a
``speckle``        0.01 0.05 0.1                           img + img·ε, ε ~ N(0, v); clip
``gaussian_noise`` 0.01 0.05 0.1                           img + ε, ε ~ N(0, v); clip
``poisson``        one level (1.0)                         Poisson(img·V)/V; clip
=================  ======================================  ==================================

The noise distortions follow scikit-image's ``random_noise`` with ``clip=True`` (v is the
*variance*; ``amount`` a with ``salt_vs_pepper=0.5``; V = 2^⌈log₂ #unique(img)⌉). The authors'
noise was unseeded; here (Library choice, METHODS §4.3) every image draws from its own
``torch.Generator`` seeded by :func:`image_seed` from (base seed, image index, distortion, level),
so a given image gets the same noise whatever the batch it travels in, its position there or the
batch size.

Use :func:`to_unit_range` first to bring uint8 or 0–255 images to [0, 1], and multiply by 255
afterwards before the network's own preprocessing (METHODS §4.3; :func:`~congruence.agreement.
robustness.robustness_curves` does both).

References
----------
A. Akbarinia and K. R. Gegenfurtner, "Paradox in deep neural networks: similar yet different
while different yet similar", arXiv:1903.04772 (2019).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

if TYPE_CHECKING:  # torch is an optional dependency of congruence: imported where used
    import torch

__all__ = [
    "DISTORTION_LEVELS",
    "Distortion",
    "distortion_suite",
    "to_unit_range",
    "image_seed",
    "gaussian_kernel1d",
    "contrast",
    "gamma",
    "illuminant",
    "gaussian_blur",
    "salt_and_pepper",
    "speckle",
    "gaussian_noise",
    "poisson_noise",
]

#: The levels of every distortion, in the authors' order (METHODS §4.3). ``poisson`` has one
#: level; its value (1.0) only labels it (V comes from the image itself).
DISTORTION_LEVELS: dict[str, tuple[float, ...]] = {
    "contrast": (0.01, 0.05, 0.15, 0.30, 0.50, 0.75, 1.0),
    "gamma": (0.1, 0.3, 0.5, 0.8, 1.2, 2.0),
    "illuminant": (0.05, 0.25, 0.50, 0.75),
    "gaussian_blur": (0.1, 0.3, 0.5, 0.7, 0.9),
    "salt_pepper": (0.01, 0.05, 0.1),
    "speckle": (0.01, 0.05, 0.1),
    "gaussian_noise": (0.01, 0.05, 0.1),
    "poisson": (1.0,),
}

# Distortions that draw random numbers (and so take per-image seeds).
_NOISE = frozenset({"salt_pepper", "speckle", "gaussian_noise", "poisson"})

# Kernel radius bound and tail threshold of METHODS §4.3: p = max{p ≤ 50 : exp(−p²/2σ²) > 1e-4}.
_BLUR_MAX_RADIUS = 50
_BLUR_TAIL = 1e-4


# ------------------------------------------------------------------------------ helpers


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without torch
        raise ImportError("congruence.agreement.distortions needs PyTorch (pip install torch)") from None
    return torch


def _check_images(images: Any, name: str = "images") -> "torch.Tensor":
    """Validate a batch of float images in [0, 1] of shape (N, C, H, W)."""
    torch = _torch()
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W); got {type(images).__name__}"
                        " (convert with to_unit_range)")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor in [0, 1]; got dtype {images.dtype}"
                        " (convert with to_unit_range)")
    if images.numel():
        lo, hi = torch.aminmax(images.detach())
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or Inf")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got values in [{lo:.6g}, {hi:.6g}]"
                             " (convert with to_unit_range)")
    return images


def _work_dtype(dtype: "torch.dtype") -> "torch.dtype":
    # Half types have too little mantissa for img·ε or the Poisson rates img·V (V up to 2^18 for
    # a 224×224×3 image), and several CPU kernels lack them: compute in float32, cast back.
    torch = _torch()
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_level(value: Any, name: str, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v > high or v < low or (low_open and v == low):
        lo = "(" if low_open else "["
        hi = "]" if math.isfinite(high) else ")"
        raise ValueError(f"{name} must lie in {lo}{low:g}, {high:g}{hi}; got {value!r}")
    return v


def _check_seeds(seeds: Any, n: int) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a sequence of {n} integers (one per image); got {type(seeds).__name__}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"seeds must be integers; got {s!r}")
        out.append(int(s) & 0xFFFF_FFFF_FFFF_FFFF)  # torch.Generator.manual_seed takes 64 bits
    if len(out) != n:
        raise ValueError(f"seeds must hold one seed per image ({n}); got {len(out)}")
    return out


def image_seed(seed: int, index: int, name: str, level: float) -> int:
    """The generator seed of one image under one distortion level.

    A stable 64-bit hash (BLAKE2b, not Python's salted ``hash()``) of
    ``"congruence.distortions|{seed}|{index}|{name}|{float(level)!r}"``, so the noise of image
    ``index`` depends on nothing else (not the batch, the batch size or the process).

    Parameters
    ----------
    seed : int
        Base seed.
    index : int
        The image's index in the data set.
    name : str
        Distortion name (a key of :data:`DISTORTION_LEVELS`).
    level : float
        Distortion level (``0.1`` and ``numpy.float64(0.1)`` give the same seed).

    Returns
    -------
    int
        In [0, 2⁶⁴), for ``torch.Generator.manual_seed``.
    """
    for arg, v in (("seed", seed), ("index", index)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{arg} must be an integer; got {v!r}")
    key = f"congruence.distortions|{int(seed)}|{int(index)}|{name}|{float(level)!r}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def _generators(seeds: list[int], device: "torch.device") -> Iterable["torch.Generator"]:
    torch = _torch()
    g = torch.Generator(device=device)
    for s in seeds:
        g.manual_seed(s)
        yield g


# ------------------------------------------------------------------------------ range


def to_unit_range(images: Any) -> "torch.Tensor":
    """Bring images to floats in [0, 1] by the rule of METHODS §4.3.

    * ``uint8`` → ``images / 255``;
    * otherwise (floats, other integer types), per image i with maximum m_i:
      ``images[i] / 255`` if 1 < m_i ≤ 255, else ``images[i] / m_i`` (so also when m_i ≤ 1:
      METHODS' "else /max"); an all-zero image stays zero.

    The maximum is taken per image (over every axis but the first), never over the batch, so the
    result for an image does not depend on the batch it arrives in.

    Parameters
    ----------
    images : torch.Tensor or array_like, shape (N, ...)
        Non-negative, finite; axis 0 indexes the images (any layout after it, e.g.
        (N, C, H, W)). NumPy arrays are converted to CPU tensors.

    Returns
    -------
    torch.Tensor, shape of ``images``
        A new tensor on the input's device: float64 for float64 input, else float32.

    Raises
    ------
    TypeError
        Boolean, complex or non-numeric ``images``.
    ValueError
        Fewer than 2 dimensions, negative values, NaN or Inf.
    """
    torch = _torch()
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(images)
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"images must be real numeric; got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"images must have a leading batch axis (N, ...); got shape {tuple(x.shape)}")
    out_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if x.dtype == torch.uint8:
        return x.to(out_dtype) / 255.0
    x = x.to(out_dtype)
    if x.numel() == 0:
        return x.clone()
    lo, hi = torch.aminmax(x)
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        raise ValueError("images contains NaN or Inf")
    if float(lo) < 0:
        raise ValueError(f"images must be non-negative (got minimum {float(lo):.6g}); undo any mean/std "
                         "normalisation before to_unit_range")
    m = x.reshape(x.shape[0], -1).amax(dim=1)
    scale = torch.where((m > 1) & (m <= 255), torch.full_like(m, 255.0), m)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero image: leave it
    return x / scale.reshape((-1,) + (1,) * (x.ndim - 1))


# ------------------------------------------------------------------------------ photometric


def contrast(images: "torch.Tensor", c: float) -> "torch.Tensor":
    """Contrast reduction towards mid-grey: (1 − c)/2 + c·img (METHODS §4.3).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1]
    c : float in [0, 1]
        Contrast (1: unchanged, 0: uniform grey 0.5).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor.
    """
    x = _check_images(images)
    c = _check_level(c, "c", low=0.0, high=1.0)
    wd = _work_dtype(x.dtype)
    return ((1.0 - c) / 2.0 + c * x.to(wd)).to(x.dtype)


def gamma(images: "torch.Tensor", g: float) -> "torch.Tensor":
    """Gamma correction img^γ (METHODS §4.3).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1]
    g : float > 0
        γ (< 1 brightens, > 1 darkens).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor.
    """
    x = _check_images(images)
    g = _check_level(g, "g", low=0.0, low_open=True)
    wd = _work_dtype(x.dtype)
    return x.to(wd).pow(g).to(x.dtype)


def illuminant(images: "torch.Tensor", v: float) -> "torch.Tensor":
    """Reddish-illuminant removal: channel 0 (R in RGB order) × v, other channels × 1 (METHODS §4.3).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W) with C ≥ 2, floating, values in [0, 1]
        RGB channel order (a BGR batch would scale blue instead).
    v : float in [0, 1]

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor.

    Raises
    ------
    ValueError
        Single-channel ``images`` (there is no colour channel to scale).
    """
    x = _check_images(images)
    v = _check_level(v, "v", low=0.0, high=1.0)
    if x.shape[1] < 2:
        raise ValueError(f"illuminant needs colour images (C >= 2 channels, RGB order); images has C = {x.shape[1]}")
    out = x.clone()
    out[:, 0] = (x[:, 0].to(_work_dtype(x.dtype)) * v).to(x.dtype)
    return out


# ------------------------------------------------------------------------------ blur


def gaussian_kernel1d(sigma: float) -> "torch.Tensor":
    """The 1-D Gaussian taps of the blur (METHODS §4.3).

    w_k = exp(−k²/2σ²) / Σ_j exp(−j²/2σ²) for k = −p..p, with
    p = max{p ≤ 50 : exp(−p²/2σ²) > 1e-4}; sizes 2p + 1 = 1, 3, 5, 7, 7 for σ = 0.1, 0.3, 0.5, 0.7,
    0.9 (σ = 0.7 only just keeps p = 3: exp(−9/0.98) ≈ 1.03e-4). The 2-D kernel normalised to
    sum 1 is the outer product of this one with itself.

    Parameters
    ----------
    sigma : float > 0

    Returns
    -------
    torch.Tensor, shape (2p + 1,), float64, CPU
    """
    torch = _torch()
    s = _check_level(sigma, "sigma", low=0.0, low_open=True)
    # The threshold is evaluated in float64 (σ = 0.7 sits 3 % above it).
    p = 0
    while p < _BLUR_MAX_RADIUS and math.exp(-((p + 1) ** 2) / (2.0 * s * s)) > _BLUR_TAIL:
        p += 1
    k = torch.arange(-p, p + 1, dtype=torch.float64)
    w = torch.exp(-(k * k) / (2.0 * s * s))
    return w / w.sum()


def _correlate_axis(x: "torch.Tensor", w: "torch.Tensor", dim: int) -> "torch.Tensor":
    """Correlation along ``dim`` (2: rows, 3: columns) with reflect-101 borders."""
    torch = _torch()
    p = (w.numel() - 1) // 2
    size = x.shape[dim]
    # F.pad's "reflect" mirrors about the edge sample without repeating it (…c b | a b c | b a…),
    # i.e. OpenCV's BORDER_REFLECT_101 and scipy.ndimage's "mirror".
    pad = (0, 0, p, p) if dim == 2 else (p, p, 0, 0)
    xp = torch.nn.functional.pad(x, pad, mode="reflect")
    # A short sum of shifted slices rather than conv2d: exact in the working dtype (cuDNN may use
    # TF32 for float32 convolutions) and deterministic on every device; at most 7 taps here.
    out = w[0] * xp.narrow(dim, 0, size)
    for k in range(1, w.numel()):
        out = out + w[k] * xp.narrow(dim, k, size)
    return out


def gaussian_blur(images: "torch.Tensor", sigma: float) -> "torch.Tensor":
    """Gaussian blur: separable correlation with :func:`gaussian_kernel1d` along H, then W,
    reflect-101 borders (OpenCV's default, scipy's ``mode="mirror"``) (METHODS §4.3).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1]
        H and W must exceed the kernel radius p (3 for σ ≤ 0.9).
    sigma : float > 0

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor (σ = 0.1 has the single tap 1: a copy).
    """
    x = _check_images(images)
    w = gaussian_kernel1d(sigma)
    p = (w.numel() - 1) // 2
    if p == 0:
        return x.clone()
    h, wd_ = x.shape[2], x.shape[3]
    if h <= p or wd_ <= p:
        raise ValueError(f"gaussian_blur with sigma={sigma} needs H and W > {p} (reflect-101 border of width {p}); "
                         f"images has H = {h}, W = {wd_}")
    wd = _work_dtype(x.dtype)
    taps = w.to(device=x.device, dtype=wd)
    y = _correlate_axis(x.to(wd), taps, 2)
    y = _correlate_axis(y, taps, 3)
    return y.to(x.dtype)


# ------------------------------------------------------------------------------ noise


def _noise_setup(images: Any, seeds: Any, noise_device: Any) -> tuple:
    torch = _torch()
    x = _check_images(images)
    s = _check_seeds(seeds, x.shape[0])
    nd = x.device if noise_device is None else torch.device(noise_device)
    return x, s, nd, _work_dtype(x.dtype)


def salt_and_pepper(images: "torch.Tensor", amount: float, *, seeds: Sequence[int],
                    noise_device: Any = None) -> "torch.Tensor":
    """Salt & pepper noise: each element (pixel × channel) is replaced, with probability
    ``amount``, by 1 or by 0 with equal odds (scikit-image ``random_noise(mode="s&p",
    salt_vs_pepper=0.5)``; METHODS §4.3).

    Image i draws, from a generator seeded with ``seeds[i]`` on ``noise_device``, one uniform
    tensor u of shape (2, C, H, W) in the working dtype (float64 for float64 images, else
    float32): replaced where u[0] < amount, with 1 where also u[1] < ½, else 0.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1]
    amount : float in [0, 1]
    seeds : sequence of N int
        Per-image generator seeds (see :func:`image_seed`).
    noise_device : torch.device or str, optional
        Where the random numbers are drawn (default: the images' device). CPU and CUDA
        generators give different streams; pass ``"cpu"`` for noise identical on every device
        (at the price of a host round trip).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor.
    """
    torch = _torch()
    a = _check_level(amount, "amount", low=0.0, high=1.0)
    x, s, nd, wd = _noise_setup(images, seeds, noise_device)
    if x.shape[0] == 0:
        return x.clone()
    u = torch.stack([torch.rand((2,) + tuple(x.shape[1:]), generator=g, device=nd, dtype=wd)
                     for g in _generators(s, nd)], dim=1).to(x.device)
    # torch.where rather than masked assignment: no host sync for the mask's size on CUDA.
    return torch.where(u[0] < a, (u[1] < 0.5).to(x.dtype), x)


def _normal(x: "torch.Tensor", s: list[int], nd: Any, wd: Any) -> "torch.Tensor":
    torch = _torch()
    return torch.stack([torch.randn(tuple(x.shape[1:]), generator=g, device=nd, dtype=wd)
                        for g in _generators(s, nd)]).to(x.device)


def speckle(images: "torch.Tensor", var: float, *, seeds: Sequence[int],
            noise_device: Any = None) -> "torch.Tensor":
    """Speckle (multiplicative) noise: clip(img + img·ε, 0, 1), ε ~ N(0, var) per element
    (scikit-image ``random_noise(mode="speckle", var=var)``; METHODS §4.3).

    Image i draws ε = √var · z, z one standard-normal tensor of shape (C, H, W) in the working
    dtype (float64 for float64 images, else float32) from a generator seeded with ``seeds[i]``
    on ``noise_device``.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1]
    var : float ≥ 0
        The *variance* of ε (not its standard deviation), as in scikit-image.
    seeds : sequence of N int
    noise_device : torch.device or str, optional
        See :func:`salt_and_pepper`.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor.
    """
    v = _check_level(var, "var", low=0.0)
    x, s, nd, wd = _noise_setup(images, seeds, noise_device)
    if x.shape[0] == 0:
        return x.clone()
    xw = x.to(wd)
    return (xw + xw * (math.sqrt(v) * _normal(x, s, nd, wd))).clamp_(0.0, 1.0).to(x.dtype)


def gaussian_noise(images: "torch.Tensor", var: float, *, seeds: Sequence[int],
                   noise_device: Any = None) -> "torch.Tensor":
    """Additive Gaussian noise: clip(img + ε, 0, 1), ε ~ N(0, var) per element (scikit-image
    ``random_noise(mode="gaussian", var=var)``, mean 0; METHODS §4.3).

    Image i draws ε = √var · z exactly as :func:`speckle` does.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1]
    var : float ≥ 0
        The *variance* of ε, as in scikit-image.
    seeds : sequence of N int
    noise_device : torch.device or str, optional
        See :func:`salt_and_pepper`.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor.
    """
    v = _check_level(var, "var", low=0.0)
    x, s, nd, wd = _noise_setup(images, seeds, noise_device)
    if x.shape[0] == 0:
        return x.clone()
    return (x.to(wd) + math.sqrt(v) * _normal(x, s, nd, wd)).clamp_(0.0, 1.0).to(x.dtype)


def poisson_noise(images: "torch.Tensor", *, seeds: Sequence[int], noise_device: Any = None) -> "torch.Tensor":
    """Poisson (shot) noise: clip(Poisson(img·V)/V, 0, 1) with V = 2^⌈log₂ u⌉, u the number of
    distinct values of the image (all channels), computed per image (scikit-image
    ``random_noise(mode="poisson")``; METHODS §4.3).

    ⌈log₂ u⌉ is computed exactly in integers ((u − 1).bit_length()); an image with one value
    gets V = 1. Image i draws ``torch.poisson(img·V)`` in the working dtype (float64 for float64
    images, else float32) with a generator seeded with ``seeds[i]`` on ``noise_device``. The
    result is a multiple of 1/V (exact: V is a power of two).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1]
    seeds : sequence of N int
    noise_device : torch.device or str, optional
        See :func:`salt_and_pepper`.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device; a new tensor.
    """
    torch = _torch()
    x, s, nd, wd = _noise_setup(images, seeds, noise_device)
    if x.shape[0] == 0:
        return x.clone()
    outs = []
    for img, g in zip(x, _generators(s, nd)):
        u = int(torch.unique(img).numel())
        vals = float(1 << (u - 1).bit_length())
        rate = img.to(device=nd, dtype=wd) * vals
        outs.append(torch.poisson(rate, generator=g) / vals)
    return torch.stack(outs).clamp_(0.0, 1.0).to(device=x.device, dtype=x.dtype)


# ------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Distortion:
    """One level of one distortion of the suite, callable on a batch.

    Parameters
    ----------
    name : str
        A key of :data:`DISTORTION_LEVELS`.
    level : float
        The parameter (c, γ, v, σ, a or the noise variance). Levels outside the authors' table
        are allowed within the distortion's domain (contrast, illuminant, salt & pepper: [0, 1];
        gamma, blur: > 0; speckle, Gaussian noise: ≥ 0); ``poisson`` has the single level 1.0.

    Examples
    --------
    >>> Distortion("contrast", 0.15)(images)                       # doctest: +SKIP
    >>> Distortion("speckle", 0.05)(batch, indices=range(512, 768), seed=3)  # doctest: +SKIP
    """

    name: str
    level: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in DISTORTION_LEVELS:
            raise ValueError(f"name must be one of {sorted(DISTORTION_LEVELS)}; got {self.name!r}")
        if self.name == "poisson":
            lvl = _check_level(self.level, "level", low=-math.inf)
            if lvl != 1.0:
                raise ValueError("level of 'poisson' must be 1.0 (one level; V comes from the image); "
                                 f"got {self.level!r}")
        elif self.name in ("contrast", "illuminant", "salt_pepper"):
            lvl = _check_level(self.level, "level", low=0.0, high=1.0)
        elif self.name in ("gamma", "gaussian_blur"):
            lvl = _check_level(self.level, "level", low=0.0, low_open=True)
        else:  # speckle, gaussian_noise: a variance
            lvl = _check_level(self.level, "level", low=0.0)
        object.__setattr__(self, "level", lvl)

    @property
    def is_random(self) -> bool:
        """Whether the distortion draws noise (and so depends on ``seed`` and ``indices``)."""
        return self.name in _NOISE

    @property
    def label(self) -> str:
        """``"name=level"``, e.g. ``"contrast=0.15"``."""
        return f"{self.name}={self.level:g}"

    def seeds(self, n: int, *, indices: Any = None, seed: int = 0) -> list[int]:
        """The per-image generator seeds :func:`image_seed` (seed, indices[i], name, level)."""
        if indices is None:
            idx = list(range(n))
        else:
            if hasattr(indices, "tolist"):
                indices = indices.tolist()
            idx = list(indices)
            if len(idx) != n:
                raise ValueError(f"indices must hold one index per image ({n}); got {len(idx)}")
        return [image_seed(seed, i, self.name, self.level) for i in idx]

    def __call__(self, images: "torch.Tensor", *, indices: Optional[Union[Sequence[int], Any]] = None,
                 seed: int = 0, noise_device: Any = None) -> "torch.Tensor":
        """Apply the distortion.

        Parameters
        ----------
        images : torch.Tensor, shape (N, C, H, W), floating, values in [0, 1], RGB order
        indices : sequence of N int, optional
            The images' indices in the data set, which (with ``seed``) fix each image's noise;
            default ``0..N−1``. Pass the global indices when distorting a data set batch by batch.
        seed : int
            Base seed of the noise.
        noise_device : torch.device or str, optional
            Where noise is drawn (default: the images' device; see :func:`salt_and_pepper`).

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``images``, values in [0, 1].
        """
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an integer; got {seed!r}")
        n = _check_images(images).shape[0]
        if self.name == "contrast":
            return contrast(images, self.level)
        if self.name == "gamma":
            return gamma(images, self.level)
        if self.name == "illuminant":
            return illuminant(images, self.level)
        if self.name == "gaussian_blur":
            return gaussian_blur(images, self.level)
        seeds = self.seeds(n, indices=indices, seed=seed)
        if self.name == "salt_pepper":
            return salt_and_pepper(images, self.level, seeds=seeds, noise_device=noise_device)
        if self.name == "speckle":
            return speckle(images, self.level, seeds=seeds, noise_device=noise_device)
        if self.name == "gaussian_noise":
            return gaussian_noise(images, self.level, seeds=seeds, noise_device=noise_device)
        return poisson_noise(images, seeds=seeds, noise_device=noise_device)


def distortion_suite(names: Optional[Union[str, Iterable[str]]] = None) -> list[Distortion]:
    """Every level of the named distortions, in the order of :data:`DISTORTION_LEVELS`' levels.

    Parameters
    ----------
    names : str or iterable of str, optional
        Keys of :data:`DISTORTION_LEVELS`, in the order wanted (default: all, in table order:
        32 levels).

    Returns
    -------
    list of Distortion
    """
    if names is None:
        chosen = list(DISTORTION_LEVELS)
    else:
        chosen = [names] if isinstance(names, str) else list(names)
        bad = [n for n in chosen if not isinstance(n, str) or n not in DISTORTION_LEVELS]
        if bad:
            raise ValueError(f"names must be keys of DISTORTION_LEVELS {sorted(DISTORTION_LEVELS)}; got {bad!r}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"names must not repeat a distortion; got {chosen!r}")
    return [Distortion(n, lv) for n in chosen for lv in DISTORTION_LEVELS[n]]
