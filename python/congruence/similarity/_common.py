"""Input handling and small dense linear algebra shared by the feature-space similarity measures
(METHODS.md §2.1, §2.2, §2.5–§2.9).

Every measure takes either two aligned activation matrices X (n, p), Y (n, q) or a streamed state
(``stats=``). :func:`gather` turns that into one of two host, float64 forms:

* :class:`Data`: two-pass centred copies of host arrays (the accuracy reference; what the sample
  path and the QR / SVD paths need), constant features (METHODS §1.3) set to exactly zero;
* :class:`Blocks`: the centred co-moment blocks M_xx, M_xy, M_yy (and their diagonals, means and
  constant masks) of a :class:`~congruence.CrossStats`, either the caller's or one accumulated here
  from GPU inputs *on the device*, of which only the small d×d blocks are copied to the host.

Nothing here copies n×d data between a GPU and the host.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import _engine as E
from .._arrays import BFLOAT16, as_host_array, check_matrix, inputs_on_device, is_dask_array
from .._xp import namespace_of
from ..cross_stats import CrossStats

__all__ = [
    "DegenerateCCAWarning", "UndefinedSimilarityWarning", "Data", "Blocks", "gather", "use_sample_path",
]

#: float64 machine epsilon: the QR / SVD rank tolerance drops σ < n·u·σ_max (METHODS §2.5).
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps)
#: Covariance-path whitening drops eigenvalues λ <= EIG_RTOL·λ_max (METHODS §2.5).
EIG_RTOL = 1e-10
#: The same for Grams accumulated from float32 (or lower-precision) products: their entries carry
#: relative errors of about 2⁻²⁴·√(samples per float32 sum), so a rank-deficient input's null space
#: shows eigenvalues of ~1e-7·λ_max instead of ~1e-16; below 1e-6·λ_max is numerically zero there.
EIG_RTOL_FLOAT32 = 1e-6


def eig_rtol(precision: str) -> float:
    """The whitening cut-off for Grams accumulated at ``precision`` (a CrossStats precision)."""
    return EIG_RTOL if precision == "float64" else EIG_RTOL_FLOAT32
#: Rows per block of the tiled sample (Gram) path: a block is at most this many float64 entries.
GRAM_BLOCK_ENTRIES = 1 << 22

PATHS = ("auto", "features", "samples")


class UndefinedSimilarityWarning(RuntimeWarning):
    """A similarity is undefined for these inputs (e.g. a zero or negative denominator); NaN is
    returned."""


class DegenerateCCAWarning(UserWarning):
    """CCA is degenerate: one side spans the whole centred sample space, so every canonical
    correlation is 1 (p >= n or q >= n). Reduce the widths first (SVCCA)."""


def stacklevel() -> int:
    """stacklevel that attributes a warning to the first frame outside the package."""
    return E._caller_stacklevel()


def warn(message: str, category: type) -> None:
    warnings.warn(message, category, stacklevel=stacklevel())


# ----------------------------------------------------------------------------------- host data


@dataclass(frozen=True)
class Data:
    """Two-pass centred float64 copies of two aligned host inputs.

    Attributes
    ----------
    x, y : ndarray, shape (n, p), (n, q)
        X − 1μᵀ in float64, constant features (METHODS §1.3) set to exactly 0.
    const_x, const_y : ndarray of bool, shape (p,), (q,)
    mean_x, mean_y : ndarray, shape (p,), (q,)
        The column means μ that were subtracted.
    """

    x: np.ndarray
    y: np.ndarray
    const_x: np.ndarray
    const_y: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    roundoff_x: float = UNIT_ROUNDOFF  # machine epsilon of the input's own dtype (rank cut-offs)
    roundoff_y: float = UNIT_ROUNDOFF

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def blocks(self) -> "Blocks":
        """The centred co-moment blocks of the data (two-pass, float64)."""
        x, y = self.x, self.y
        mxx, myy = x.T @ x, y.T @ y
        return Blocks(n=self.n, mxx=mxx, mxy=x.T @ y, myy=myy, dxx=np.diag(mxx).copy(), dyy=np.diag(myy).copy(),
                      const_x=self.const_x, const_y=self.const_y)


def _float64_copy(X: Any, name: str) -> tuple[np.ndarray, float]:
    """Validated float64 copy of a host 2-D input (numpy, CPU torch, array protocols), and the
    machine epsilon of its own dtype: the rank cut-offs of float32 data must not count its
    rounding noise as rank (METHODS §2.5)."""
    h = as_host_array(X, name)  # TypeError for non-float dtypes, ValueError for GPU arrays
    check_matrix(h)
    if h.code == BFLOAT16:
        arr = (h.array.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        eps = 2.0 ** -7
    else:
        arr = h.array.astype(np.float64)  # always a private copy (centred in place below)
        eps = float(np.finfo(h.array.dtype).eps)
    if not np.isfinite(arr).all():
        raise ValueError(E.nonfinite_message(name))
    return arr, eps


def centre(arr: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-pass centring (in place on ``arr``, a private float64 copy): (X̃, constant mask, mean)."""
    n = arr.shape[0]
    with np.errstate(over="ignore"):
        rms = np.sqrt(np.einsum("ij,ij->j", arr, arr) / n)
    if not np.isfinite(rms).all():
        raise ValueError(E.nonfinite_message(name))
    mean = arr.mean(axis=0)
    arr -= mean
    correction = arr.mean(axis=0)  # second pass: the mean of the residuals, to the last bits
    arr -= correction
    std = np.sqrt(np.einsum("ij,ij->j", arr, arr) / n)
    const = (std == 0) | (std <= E.CONSTANT_RTOL * rms)
    arr[:, const] = 0.0
    return arr, const, mean + correction


# -------------------------------------------------------------------------------- streamed blocks


def _host(a: Any) -> np.ndarray:
    """A small array of any library (numpy, torch, cupy) as a float64 numpy array (a copy from a
    GPU: used only for d×d blocks and vectors)."""
    return np.array(namespace_of(a).to_numpy(a), dtype=np.float64)


@dataclass(frozen=True)
class Blocks:
    """Centred co-moment blocks M = Σ(x − x̄)(y − ȳ)ᵀ, float64, on the host.

    ``mxx`` / ``myy`` are None for a ``cross_only`` CrossStats (only their diagonals ``dxx`` /
    ``dyy`` are known). Rows and columns of constant features are exactly zero.
    """

    n: int
    mxx: Optional[np.ndarray]
    mxy: np.ndarray
    myy: Optional[np.ndarray]
    dxx: np.ndarray
    dyy: np.ndarray
    const_x: np.ndarray
    const_y: np.ndarray
    eig_rtol: float = EIG_RTOL  # whitening cut-off: EIG_RTOL_FLOAT32 for float32-product Grams

    def full(self, what: str) -> None:
        if self.mxx is None or self.myy is None:
            raise ValueError(f"{what} needs the full Gram blocks; the CrossStats was built with cross_only=True "
                             "(only M_xy and the diagonals are kept)")

    @classmethod
    def from_cross_stats(cls, cs: CrossStats) -> "Blocks":
        n = cs.n_samples
        mxy = _host(cs.comoment_xy())
        mean_x, mean_y = _host(cs.mean_x), _host(cs.mean_y)
        if cs.cross_only:
            mxx = myy = None
            dxx = _host(cs.variance_x(ddof=0)) * n
            dyy = _host(cs.variance_y(ddof=0)) * n
        else:
            mxx, myy = _host(cs.comoment_xx()), _host(cs.comoment_yy())
            mxx, myy = 0.5 * (mxx + mxx.T), 0.5 * (myy + myy.T)
            dxx, dyy = np.maximum(np.diag(mxx), 0.0), np.maximum(np.diag(myy), 0.0)
        cx, cy = _constant(dxx, mean_x, n), _constant(dyy, mean_y, n)
        mxy[cx, :] = 0.0
        mxy[:, cy] = 0.0
        dxx, dyy = np.where(cx, 0.0, dxx), np.where(cy, 0.0, dyy)
        if mxx is not None:
            mxx[cx, :] = 0.0
            mxx[:, cx] = 0.0
            myy[cy, :] = 0.0
            myy[:, cy] = 0.0
        return cls(n=n, mxx=mxx, mxy=mxy, myy=myy, dxx=dxx, dyy=dyy, const_x=cx, const_y=cy,
                   eig_rtol=eig_rtol(cs.precision))


def _constant(diag: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """METHODS §1.3 from streamed moments: σ == 0 or σ <= τ·rms, rms² = (Σ(x − x̄)² + n·x̄²)/n."""
    raw = diag + n * mean * mean
    return (diag <= 0) | (np.sqrt(np.maximum(diag, 0.0) / n) <= E.CONSTANT_RTOL * np.sqrt(raw / n))


# ----------------------------------------------------------------------------------- dispatcher


def _stats_name(stats: Any) -> str:
    return type(stats).__name__


def gather(X: Any, Y: Any, stats: Any, *, measure: str, min_n: int) -> "Data | Blocks":
    """Validate a measure's inputs and return :class:`Data` (host arrays) or :class:`Blocks`
    (``stats=`` or GPU inputs).

    Parameters
    ----------
    X, Y : arrays or None
    stats : CrossStats, HSICStats or None
    measure : str
        Name used in error messages.
    min_n : int
        Fewest samples the measure accepts.
    """
    if stats is not None:
        if X is not None or Y is not None:
            raise ValueError(f"{measure}: pass either the arrays X and Y or stats=, not both")
        cs = cross_stats_of(stats, measure)
        if cs.n_samples < min_n:
            raise ValueError(f"{measure} needs at least {min_n} samples; stats holds {cs.n_samples}")
        return Blocks.from_cross_stats(cs)
    if X is None or Y is None:
        missing = "X" if X is None else "Y"
        raise TypeError(f"{measure}: {missing} is required (an array of shape (n_samples, n_features)), "
                        "unless a streamed state is given as stats=")
    if inputs_on_device(X=X, Y=Y) or is_dask_array(X) or is_dask_array(Y):
        # GPU data never leave the device; dask data are reduced to a state on the cluster.
        cs = device_cross_stats(X, Y, measure, min_n)
        return Blocks.from_cross_stats(cs)
    (x, ex), (y, ey) = _float64_copy(X, "X"), _float64_copy(Y, "Y")
    check_samples(x.shape[0], y.shape[0], measure, min_n)
    x, cx, mx = centre(x, "X")
    y, cy, my = centre(y, "Y")
    return Data(x=x, y=y, const_x=cx, const_y=cy, mean_x=mx, mean_y=my, roundoff_x=ex, roundoff_y=ey)


def check_samples(nx: int, ny: int, measure: str, min_n: int) -> None:
    if nx != ny:
        raise ValueError(f"X and Y must have the same number of samples (rows); got {nx} and {ny}")
    if nx < min_n:
        raise ValueError(f"{measure} needs at least {min_n} samples; X and Y have {nx}")


def device_cross_stats(X: Any, Y: Any, measure: str, min_n: int) -> CrossStats:
    """A float64 CrossStats accumulated where the inputs live: on their GPU, or over a dask array's
    sample chunks on the cluster (the data never leave the device / the workers)."""
    shape_x, shape_y = tuple(getattr(X, "shape", ())), tuple(getattr(Y, "shape", ()))
    if len(shape_x) == 2 and len(shape_y) == 2:
        check_samples(int(shape_x[0]), int(shape_y[0]), measure, min_n)
    cs = CrossStats().update(X, Y)
    if cs.n_samples < min_n:
        raise ValueError(f"{measure} needs at least {min_n} samples; X and Y have {cs.n_samples}")
    return cs


def cross_stats_of(stats: Any, measure: str) -> CrossStats:
    if isinstance(stats, CrossStats):
        return stats
    inner = getattr(stats, "cross_stats", None)
    if isinstance(inner, CrossStats):  # HSICStats
        return inner
    raise TypeError(f"{measure}: stats must be a CrossStats or an HSICStats; got {_stats_name(stats)}")


# ----------------------------------------------------------------------------------- arguments


def check_path(path: str) -> str:
    return E.check_choice(path, PATHS, "path")


def use_sample_path(n: int, p: int, q: int) -> bool:
    """METHODS §2.0 "Path choice": the n×n (Gram) path when p² + q² + pq >= n(p + q)."""
    return p * p + q * q + p * q >= n * (p + q)


def resolve_path(path: str, data: "Data | Blocks", measure: str) -> str:
    """"features" or "samples" for a measure with both paths."""
    check_path(path)
    if isinstance(data, Blocks):
        if path == "samples":
            raise ValueError(f"{measure}: path='samples' needs the data themselves (host arrays); a streamed state "
                             "or GPU inputs give only the d×d blocks (the feature path)")
        return "features"
    if path == "auto":
        return "samples" if use_sample_path(data.n, data.x.shape[1], data.y.shape[1]) else "features"
    return path


def check_nonnegative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral,)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def warn_constant(const_x: np.ndarray, const_y: np.ndarray, measure: str) -> None:
    """Report constant features a whitening measure dropped (METHODS §1.3)."""
    parts = [f"{name} has {int(c.sum())}" for name, c in (("X", const_x), ("Y", const_y)) if c.any()]
    if parts:
        warn(f"{measure}: {' and '.join(parts)} constant (zero-variance) feature(s); they are dropped before "
             "whitening", E.ConstantFeatureWarning)


def no_features(name: str, measure: str) -> ValueError:
    return ValueError(f"{measure}: every feature of {name} is constant (zero variance); the measure is undefined")


# ------------------------------------------------------------------------------ linear algebra


def sign_fix(V: np.ndarray) -> np.ndarray:
    """Flip columns so that each one's entry of largest magnitude is positive (lowest index among
    equals; METHODS §0)."""
    if V.size == 0:
        return V
    idx = np.argmax(np.abs(V), axis=0)
    signs = np.where(V[idx, np.arange(V.shape[1])] < 0, -1.0, 1.0)
    return V * signs


def basis(xc: np.ndarray, roundoff: float = UNIT_ROUNDOFF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-revealing thin SVD of centred data: (U_r, s_r, V_rᵀ) with σ >= n·u·σ_max kept
    (METHODS §2.5), u the machine epsilon of the data's own dtype (``roundoff``)."""
    U, s, Vt = np.linalg.svd(xc, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return U[:, :0], s[:0], Vt[:0]
    r = int(np.count_nonzero(s >= xc.shape[0] * roundoff * s[0]))
    return U[:, :r], s[:r], Vt[:r]


def eigh_desc(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors of a symmetric matrix, signs per METHODS §0."""
    w, V = np.linalg.eigh(M)
    order = np.argsort(-w, kind="stable")
    return w[order], sign_fix(V[:, order])


def whitener(M: np.ndarray, rtol: float = EIG_RTOL) -> tuple[np.ndarray, np.ndarray]:
    """(W_k, λ_k): eigenpairs of a PSD matrix with λ > rtol·λ_max (1e-10 by default; METHODS
    §2.5), so that W_k diag(λ_k^{-1/2}) whitens M on its numerical range."""
    w, V = eigh_desc(M)
    if w.size == 0 or w[0] <= 0:
        return V[:, :0], w[:0]
    keep = w > rtol * w[0]
    return V[:, keep], w[keep]


def gram_row_blocks(n: int) -> int:
    """Rows per block of the tiled n×n computations."""
    return max(1, min(n, GRAM_BLOCK_ENTRIES // max(n, 1)))
