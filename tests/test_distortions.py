"""The distortion suite of METHODS.md §4.3 against float64 NumPy/SciPy references written from the
formulas (never from the implementation): photometric formulas, the Gaussian blur against
scipy.ndimage.correlate1d (mode="mirror" = reflect-101), the noise laws, per-image seeding and
to_unit_range."""

import math

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")

from congruence.agreement.distortions import (  # noqa: E402
    DISTORTION_LEVELS,
    Distortion,
    distortion_suite,
    gaussian_kernel1d,
    image_seed,
    to_unit_range,
)

TABLE = {  # METHODS §4.3, copied by hand
    "contrast": (0.01, 0.05, 0.15, 0.30, 0.50, 0.75, 1.0),
    "gamma": (0.1, 0.3, 0.5, 0.8, 1.2, 2.0),
    "illuminant": (0.05, 0.25, 0.50, 0.75),
    "gaussian_blur": (0.1, 0.3, 0.5, 0.7, 0.9),
    "salt_pepper": (0.01, 0.05, 0.1),
    "speckle": (0.01, 0.05, 0.1),
    "gaussian_noise": (0.01, 0.05, 0.1),
    "poisson": (1.0,),
}
NOISE = ("salt_pepper", "speckle", "gaussian_noise", "poisson")


def _images(n=3, c=3, h=11, w=13, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, c, h, w), generator=g, dtype=dtype)


def _grey(n=4, c=3, h=64, w=64, dtype=torch.float64):
    return torch.full((n, c, h, w), 0.5, dtype=dtype)


# ------------------------------------------------------------------------------ registry


def test_levels_table():
    assert DISTORTION_LEVELS == TABLE
    suite = distortion_suite()
    assert len(suite) == 32
    assert [(d.name, d.level) for d in suite] == [(n, lv) for n in TABLE for lv in TABLE[n]]
    assert [d.level for d in distortion_suite("gamma")] == list(TABLE["gamma"])
    assert [d.name for d in distortion_suite(["poisson", "contrast"])] == ["poisson"] + ["contrast"] * 7


def test_distortion_is_frozen_and_hashable():
    d = Distortion("contrast", np.float64(0.15))
    assert isinstance(d.level, float) and d == Distortion("contrast", 0.15)
    assert len({d, Distortion("contrast", 0.15)}) == 1
    with pytest.raises(Exception):
        d.level = 0.3
    assert d.label == "contrast=0.15" and not d.is_random and Distortion("speckle", 0.01).is_random


# ------------------------------------------------------------------------------ photometric


@pytest.mark.parametrize("c", TABLE["contrast"])
def test_contrast_formula(c):
    x = _images()
    out = Distortion("contrast", c)(x)
    ref = (1 - c) / 2 + c * x.numpy()
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-15)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("g", TABLE["gamma"])
def test_gamma_formula(g):
    x = _images()
    x[0, 0, 0, 0] = 0.0  # 0^γ = 0
    x[0, 0, 0, 1] = 1.0
    np.testing.assert_allclose(Distortion("gamma", g)(x).numpy(), np.power(x.numpy(), g), rtol=1e-14, atol=0)


@pytest.mark.parametrize("v", TABLE["illuminant"])
def test_illuminant_formula(v):
    x = _images()
    ref = x.numpy().copy()
    ref[:, 0] *= v  # R channel only
    out = Distortion("illuminant", v)(x)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-15)
    assert torch.equal(out[:, 1:], x[:, 1:])


def test_float32_and_half_keep_dtype():
    x64 = _images()
    for dtype, tol in ((torch.float32, 2e-7), (torch.float16, 1e-3)):
        x = x64.to(dtype)
        for d in (Distortion("contrast", 0.3), Distortion("gamma", 0.5), Distortion("gaussian_blur", 0.7),
                  Distortion("speckle", 0.05), Distortion("poisson", 1.0)):
            out = d(x)
            assert out.dtype == dtype and out.shape == x.shape
            assert float(out.min()) >= 0 and float(out.max()) <= 1
        ref = (1 - 0.3) / 2 + 0.3 * x.double().numpy()
        np.testing.assert_allclose(Distortion("contrast", 0.3)(x).double().numpy(), ref, atol=tol)


# ------------------------------------------------------------------------------ blur


def _ref_kernel(sigma):
    p = 0
    for q in range(0, 51):
        if math.exp(-q * q / (2 * sigma * sigma)) > 1e-4:
            p = q
    k = np.exp(-np.arange(-p, p + 1) ** 2 / (2 * sigma * sigma))
    return k / k.sum()


def test_blur_kernel_sizes():
    assert [gaussian_kernel1d(s).numel() for s in TABLE["gaussian_blur"]] == [1, 3, 5, 7, 7]
    for s in TABLE["gaussian_blur"] + (2.0, 40.0):
        np.testing.assert_allclose(gaussian_kernel1d(s).numpy(), _ref_kernel(s), rtol=1e-14, atol=0)
    assert gaussian_kernel1d(1000.0).numel() == 101  # p capped at 50


@pytest.mark.parametrize("sigma", TABLE["gaussian_blur"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-14), (torch.float32, 1e-6)])
def test_blur_matches_scipy_mirror(sigma, dtype, tol):
    x = _images(n=2, c=3, h=9, w=12, dtype=dtype)
    k = _ref_kernel(sigma)
    ref = ndimage.correlate1d(x.double().numpy(), k, axis=2, mode="mirror")
    ref = ndimage.correlate1d(ref, k, axis=3, mode="mirror")
    out = Distortion("gaussian_blur", sigma)(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.double().numpy(), ref, rtol=0, atol=tol)


def test_blur_reflect101_border_by_hand():
    # One row [a b c d]: reflect-101 pads as  b | a b c d | c  (edge sample not repeated).
    x = torch.tensor([0.1, 0.7, 0.2, 0.9], dtype=torch.float64).reshape(1, 1, 1, 4).expand(1, 1, 4, 4).contiguous()
    w = gaussian_kernel1d(0.3).numpy()
    row = x[0, 0, 0].numpy()
    padded = np.concatenate([[row[1]], row, [row[2]]])
    ref_row = np.array([w @ padded[i:i + 3] for i in range(4)])
    out = Distortion("gaussian_blur", 0.3)(x)
    np.testing.assert_allclose(out[0, 0, 0].numpy(), ref_row, atol=1e-15)


def test_blur_sigma_01_is_identity():
    x = _images(dtype=torch.float32)
    out = Distortion("gaussian_blur", 0.1)(x)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


def test_blur_too_small_image():
    with pytest.raises(ValueError, match="H and W"):
        Distortion("gaussian_blur", 0.9)(_images(h=3, w=8))


# ------------------------------------------------------------------------------ noise


def _generator(seed, index, name, level):
    return torch.Generator().manual_seed(image_seed(seed, index, name, level))


@pytest.mark.parametrize("a", TABLE["salt_pepper"])
def test_salt_pepper_fraction(a):
    x = _grey()
    out = Distortion("salt_pepper", a)(x, seed=5)
    changed = (out != x).numpy()
    n = changed.size
    frac = changed.mean()
    assert abs(frac - a) <= 5 * math.sqrt(a * (1 - a) / n)
    vals = out.numpy()[changed]
    assert set(np.unique(vals)) <= {0.0, 1.0}
    salt = (vals == 1.0).mean()
    assert abs(salt - 0.5) <= 5 * math.sqrt(0.25 / vals.size)


def test_salt_pepper_stream():
    # Documented draw: per image, u = rand((2, C, H, W)); replaced where u[0] < a, by 1 where u[1] < 1/2.
    x = _images(n=2)
    out = Distortion("salt_pepper", 0.1)(x, indices=[7, 3], seed=2)
    for row, idx in enumerate([7, 3]):
        u = torch.rand((2,) + tuple(x.shape[1:]), generator=_generator(2, idx, "salt_pepper", 0.1),
                       dtype=torch.float64).numpy()
        ref = np.where(u[0] < 0.1, (u[1] < 0.5).astype(float), x[row].numpy())
        np.testing.assert_array_equal(out[row].numpy(), ref)


@pytest.mark.parametrize("v", [0.01])
def test_gaussian_noise_variance(v):
    x = _grey()
    out = Distortion("gaussian_noise", v)(x, seed=1)
    r = (out - x).numpy().ravel()
    assert (out.numpy() == 0).mean() + (out.numpy() == 1).mean() < 1e-4  # clipping is negligible
    n = r.size
    assert abs(r.mean()) <= 5 * math.sqrt(v / n)
    assert abs(r.var() / v - 1) <= 5 * math.sqrt(2 / n)


@pytest.mark.parametrize("v", [0.01, 0.05])
def test_speckle_variance(v):
    x = _grey()
    out = Distortion("speckle", v)(x, seed=1)
    # At 0.5, clipping needs |ε| > 1, i.e. > 4.5 standard deviations even for v = 0.05.
    assert (out.numpy() == 0).mean() + (out.numpy() == 1).mean() < 1e-4
    eps = ((out - x) / x).numpy().ravel()  # img·ε / img
    n = eps.size
    assert abs(eps.mean()) <= 5 * math.sqrt(v / n)
    assert abs(eps.var() / v - 1) <= 5 * math.sqrt(2 / n)


@pytest.mark.parametrize("name", ["gaussian_noise", "speckle"])
@pytest.mark.parametrize("v", [0.01, 0.05, 0.1])
def test_normal_noise_against_unclipped_formula(name, v):
    # Same generator, the skimage formula in float64, then clip.
    x = _images(n=3)
    out = Distortion(name, v)(x, seed=9)
    for i in range(3):
        z = torch.randn(tuple(x.shape[1:]), generator=_generator(9, i, name, v), dtype=torch.float64).numpy()
        img = x[i].numpy()
        eps = math.sqrt(v) * z
        raw = img + eps if name == "gaussian_noise" else img + img * eps
        np.testing.assert_allclose(out[i].numpy(), np.clip(raw, 0, 1), rtol=0, atol=1e-15)


def test_poisson_v_from_unique():
    # image 0: 5 distinct values → V = 8; image 1: 2 → V = 2; image 2: 1 → V = 1; image 3: 17 → 32.
    shape = (3, 8, 8)
    imgs = []
    for u in (5, 2, 1, 17):
        vals = np.linspace(0.05, 0.9, u) if u > 1 else np.array([0.3])
        flat = np.resize(vals, int(np.prod(shape)))
        imgs.append(flat.reshape(shape))
    x = torch.tensor(np.stack(imgs))
    out = Distortion("poisson", 1.0)(x, seed=4)
    for i, (u, V) in enumerate(((5, 8), (2, 2), (1, 1), (17, 32))):
        assert len(np.unique(x[i].numpy())) == u
        assert V == 2 ** math.ceil(math.log2(u)) if u > 1 else V == 1
        scaled = out[i].numpy() * V
        np.testing.assert_array_equal(scaled, np.round(scaled))  # multiples of 1/V
        counts = torch.poisson(x[i] * V, generator=_generator(4, i, "poisson", 1.0)).numpy()
        np.testing.assert_array_equal(out[i].numpy(), np.clip(counts / V, 0, 1))


def test_poisson_mean():
    # Large V (many distinct values): Poisson(img·V)/V has mean img; keep img ≤ 0.5 so clipping is rare.
    g = torch.Generator().manual_seed(3)
    x = 0.1 + 0.3 * torch.rand((2, 3, 32, 32), generator=g, dtype=torch.float64)
    out = Distortion("poisson", 1.0)(x)
    V = 2 ** math.ceil(math.log2(3 * 32 * 32))
    r = (out - x).numpy().ravel()
    sd = math.sqrt(float(x.mean()) / V / r.size)
    assert abs(r.mean()) <= 5 * sd


@pytest.mark.parametrize("name", NOISE)
def test_noise_independent_of_batch(name):
    level = TABLE[name][-1]
    d = Distortion(name, level)
    x = _images(n=6)
    full = d(x, seed=11)
    sub = d(x[[4, 1]], indices=[4, 1], seed=11)
    assert torch.equal(sub, full[[4, 1]])
    parts = torch.cat([d(x[i:i + 2], indices=range(i, i + 2), seed=11) for i in (0, 2, 4)])
    assert torch.equal(parts, full)
    assert torch.equal(d(x, seed=11), full)  # repeatable
    assert not torch.equal(d(x, seed=12), full)  # and seed-dependent
    assert not torch.equal(d(x, indices=[1, 0, 2, 3, 4, 5], seed=11)[:2], full[:2])  # index-dependent


def test_image_seed_stable():
    s = image_seed(0, 3, "speckle", 0.05)
    assert s == image_seed(0, 3, "speckle", np.float64(0.05)) and 0 <= s < 2 ** 64
    assert len({s, image_seed(1, 3, "speckle", 0.05), image_seed(0, 4, "speckle", 0.05),
                image_seed(0, 3, "speckle", 0.1), image_seed(0, 3, "gaussian_noise", 0.05)}) == 5


def test_empty_batch():
    x = torch.zeros((0, 3, 8, 8))
    for d in distortion_suite():
        assert d(x).shape == (0, 3, 8, 8)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch has no CUDA device")
def test_cuda_matches_cpu():
    x = _images(n=4, dtype=torch.float32)
    xc = x.cuda()
    for d in distortion_suite():
        if d.is_random:
            out = d(xc, seed=3, noise_device="cpu")
            ref = d(x, seed=3)
            # Same CPU stream; arithmetic on the GPU may differ in the last bit.
            torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=1e-6)
            on_dev = d(xc, seed=3)
            assert on_dev.is_cuda and torch.equal(on_dev, d(xc, seed=3))
            sub = d(xc[[2, 0]], indices=[2, 0], seed=3)
            assert torch.equal(sub, on_dev[[2, 0]])
        else:
            torch.testing.assert_close(d(xc).cpu(), d(x), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ to_unit_range


def test_to_unit_range_cases():
    u8 = np.array([[[0, 128, 255]], [[0, 1, 2]]], dtype=np.uint8)  # uint8: always /255
    out = to_unit_range(u8)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), u8 / 255.0, rtol=1e-7)
    f = np.array([[[0.0, 100.0, 200.0]],     # max in (1, 255]: /255
                  [[0.0, 0.25, 0.5]],        # max <= 1: /max
                  [[0.0, 1.0, 1.0]],         # max 1: unchanged
                  [[0.0, 500.0, 1000.0]],    # max > 255: /max
                  [[0.0, 0.0, 0.0]]])        # all zero: unchanged
    out = to_unit_range(f)
    assert out.dtype == torch.float64
    ref = np.stack([f[0] / 255, f[1] / 0.5, f[2], f[3] / 1000, f[4]])
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-15)
    # Per image: an image's result does not depend on its batch.
    np.testing.assert_array_equal(to_unit_range(f[1:2]).numpy(), out[1:2].numpy())
    t = torch.tensor(f, dtype=torch.float32)
    assert to_unit_range(t).dtype == torch.float32
    i16 = np.array([[[0, 300, 600]]], dtype=np.int16)  # other integers: the float rule
    np.testing.assert_allclose(to_unit_range(i16).numpy(), i16 / 600.0, rtol=1e-7)
    assert to_unit_range(t).data_ptr() != t.data_ptr()


def test_to_unit_range_errors():
    with pytest.raises(ValueError, match="non-negative"):
        to_unit_range(np.array([[-1.0, 2.0]]))
    with pytest.raises(ValueError, match="NaN"):
        to_unit_range(np.array([[np.nan, 2.0]]))
    with pytest.raises(TypeError, match="dtype"):
        to_unit_range(np.array([[True, False]]))
    with pytest.raises(ValueError, match="batch axis"):
        to_unit_range(np.array([1.0, 2.0]))


# ------------------------------------------------------------------------------ errors


def test_errors():
    x = _images()
    with pytest.raises(ValueError, match="name"):
        Distortion("blur", 0.5)
    with pytest.raises(ValueError, match="level"):
        Distortion("poisson", 0.5)
    with pytest.raises(ValueError, match="level"):
        Distortion("contrast", 1.5)
    with pytest.raises(ValueError, match="level"):
        Distortion("gamma", 0.0)
    with pytest.raises(ValueError, match="level"):
        Distortion("speckle", -0.1)
    with pytest.raises(ValueError, match="level"):
        Distortion("gaussian_blur", float("nan"))
    with pytest.raises(TypeError, match="level"):
        Distortion("contrast", "0.5")
    with pytest.raises(ValueError, match="names"):
        distortion_suite(["contrast", "nope"])
    with pytest.raises(ValueError, match="C = 1"):
        Distortion("illuminant", 0.5)(x[:, :1])
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        Distortion("contrast", 0.5)(x * 2)
    with pytest.raises(TypeError, match="floating"):
        Distortion("contrast", 0.5)((x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        Distortion("contrast", 0.5)(x[0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        Distortion("contrast", 0.5)(x.numpy())
    with pytest.raises(ValueError, match="indices"):
        Distortion("speckle", 0.05)(x, indices=[0, 1])
    with pytest.raises(TypeError, match="seed"):
        Distortion("speckle", 0.05)(x, seed=1.5)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Distortion("gamma", 0.5)(nan)
