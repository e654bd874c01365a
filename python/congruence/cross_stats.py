"""Streamed, mergeable second-order statistics of two feature sets (METHODS.md §0, §1.2)."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import _cpu
from . import _engine as E
from ._arrays import HostArray, as_host_array, check_matrix, wrap_like
from ._resources import blas_threads, format_bytes, MemoryBudgetError, resolve_memory_limit, resolve_threads

__all__ = ["CrossStats"]

#: float32 batch products sum at most this many rows before joining the float64 accumulators.
_FLOAT32_ROWS = 1024


class CrossStats:
    """Streamed, exactly mergeable sums of XᵀX, XᵀY and YᵀY over sample batches.

    State (all float64; METHODS.md §0): the sample count n; per-feature shifts s (p,) and t (q,),
    fixed at the first batch (its column means) unless given; a = Σ(x_i − s), b = Σ(y_i − t);
    G_xx = Σ(x_i − s)(x_i − s)ᵀ, G_xy = Σ(x_i − s)(y_i − t)ᵀ, G_yy likewise. The centred co-moments
    follow exactly as M_xy = G_xy − abᵀ/n; accumulating around a shift close to the mean keeps them
    free of the cancellation of the naive one-pass formula (Chan, Golub & LeVeque 1983).

    Parameters
    ----------
    cross_only : bool
        Keep only G_xy and the diagonals of G_xx, G_yy (for very wide layers: p·q instead of
        (p + q)² numbers). Correlations and variances remain available; ``gram_xx`` does not.
    precision : {"float64", "float32"}
        Precision of each batch product. float64 (default): dgemm on the shifted batch. float32:
        sgemm over at most 1024 rows at a time, each partial product added to the float64
        accumulators (error ~2e-7 relative to the co-moment scale; METHODS.md §1.2).
    shift_x, shift_y : array-like, optional
        Fixed shifts; give the same shifts to partial states that will be merged to make the merge a
        plain addition (different shifts are re-expressed exactly).
    memory_limit : float, optional
        Bytes the accumulators may take (default: half the available RAM); refused at the first
        batch if the Gram blocks would not fit.
    num_threads : int, optional

    Examples
    --------
    >>> cs = CrossStats()
    >>> for xb, yb in batches:            # doctest: +SKIP
    ...     cs.update(xb, yb)
    >>> r = cs.correlation_xy()           # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        cross_only: bool = False,
        precision: str = "float64",
        shift_x: Any = None,
        shift_y: Any = None,
        memory_limit: Optional[float] = None,
        num_threads: Optional[int] = None,
    ) -> None:
        E.check_choice(precision, E.PRECISIONS, "precision")
        self.cross_only = bool(cross_only)
        self.precision = precision
        self._threads = resolve_threads(num_threads)
        self._budget = resolve_memory_limit(memory_limit)
        self._n = 0
        self._sx = None if shift_x is None else _vector(shift_x, "shift_x")
        self._sy = None if shift_y is None else _vector(shift_y, "shift_y")
        self._a = self._b = None
        self._gxx = self._gxy = self._gyy = None
        self._kind: Optional[HostArray] = None

    # ------------------------------------------------------------------ accumulation
    def update(self, X: Any, Y: Any) -> "CrossStats":
        """Add a batch of samples.

        Parameters
        ----------
        X : array, shape (n_batch, p)
        Y : array, shape (n_batch, q)
            Same rows (samples) as X. Any float dtype and strides; read in place.

        Returns
        -------
        self
        """
        hx, hy = as_host_array(X, "X"), as_host_array(Y, "Y")
        check_matrix(hx)
        check_matrix(hy)
        if hx.shape[0] != hy.shape[0]:
            raise ValueError(f"X and Y must have the same number of samples (rows); got {hx.shape[0]} and {hy.shape[0]}")
        p, q = hx.shape[1], hy.shape[1]
        if self._gxy is None:
            self._start(hx, hy)
        elif (p, q) != (self.n_x, self.n_y):
            raise ValueError(f"batch widths ({p}, {q}) differ from the accumulated widths ({self.n_x}, {self.n_y})")
        dtype = np.dtype(self.precision)
        U = self._shifted(hx, self._sx, dtype)
        V = self._shifted(hy, self._sy, dtype)
        a, b = U.sum(axis=0, dtype=np.float64), V.sum(axis=0, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError("X contains NaN or Inf values")
        if not np.isfinite(b).all():
            raise ValueError("Y contains NaN or Inf values")
        with blas_threads(self._threads):
            self._accumulate(U, V)
        self._a += a
        self._b += b
        self._n += hx.shape[0]
        return self

    def _start(self, hx: HostArray, hy: HostArray) -> None:
        p, q = hx.shape[1], hy.shape[1]
        grams = p * q + (p + q if self.cross_only else p * p + q * q)
        need = 8 * grams
        if need > self._budget:
            raise MemoryBudgetError(
                f"CrossStats for {p} x {q} features needs {format_bytes(need)} of float64 accumulators but "
                f"memory_limit is {format_bytes(self._budget)}" + ("" if self.cross_only else "; try cross_only=True")
            )
        for shift, h, name in ((self._sx, hx, "shift_x"), (self._sy, hy, "shift_y")):
            if shift is not None and shift.shape != (h.shape[1],):
                raise ValueError(f"{name} has shape {shift.shape}; expected ({h.shape[1]},)")
        if self._sx is None:
            self._sx = E.moments(hx.array[:1024], hx.code, self._threads, "X").mean
        if self._sy is None:
            self._sy = E.moments(hy.array[:1024], hy.code, self._threads, "Y").mean
        self._a, self._b = np.zeros(p), np.zeros(q)
        self._gxy = np.zeros((p, q))
        if self.cross_only:
            self._gxx, self._gyy = np.zeros(p), np.zeros(q)
        else:
            self._gxx, self._gyy = np.zeros((p, p)), np.zeros((q, q))
        self._kind = hx

    def _shifted(self, h: HostArray, shift: np.ndarray, dtype: np.dtype) -> np.ndarray:
        out = np.empty(h.shape, dtype=dtype)
        _cpu.standardize(h.array, h.code, None, shift, None, out, self._threads)
        return out

    def _accumulate(self, U: np.ndarray, V: np.ndarray) -> None:
        step = U.shape[0] if U.dtype == np.float64 else _FLOAT32_ROWS
        for r0 in range(0, U.shape[0], step):
            u, v = U[r0:r0 + step], V[r0:r0 + step]
            self._gxy += u.T @ v
            if self.cross_only:
                self._gxx += np.einsum("ij,ij->j", u, u, dtype=np.float64)
                self._gyy += np.einsum("ij,ij->j", v, v, dtype=np.float64)
            else:
                self._gxx += u.T @ u  # numpy dispatches Aᵀ·A to syrk
                self._gyy += v.T @ v

    def merge(self, other: "CrossStats") -> "CrossStats":
        """Add another state's samples to this one, exactly.

        Different shifts are re-expressed algebraically: with δ = s_other − s_self,
        a' = a + nδ and G'_xy = G_xy + a δ_yᵀ + δ_x bᵀ + n δ_x δ_yᵀ (and likewise for G_xx, G_yy).

        Returns
        -------
        self
        """
        if not isinstance(other, CrossStats):
            raise TypeError(f"other must be a CrossStats; got {type(other).__name__}")
        if other._n == 0:
            return self
        if self.cross_only != other.cross_only:
            raise ValueError("cannot merge a cross_only state with a full one")
        if self._n == 0 and self._gxy is None:
            self._copy_from(other)
            return self
        if (self.n_x, self.n_y) != (other.n_x, other.n_y):
            raise ValueError(f"widths differ: ({self.n_x}, {self.n_y}) vs ({other.n_x}, {other.n_y})")
        n = other._n
        dx, dy = other._sx - self._sx, other._sy - self._sy
        a, b = other._a, other._b
        self._gxy += other._gxy + np.outer(a, dy) + np.outer(dx, b) + n * np.outer(dx, dy)
        if self.cross_only:
            self._gxx += other._gxx + 2 * a * dx + n * dx * dx
            self._gyy += other._gyy + 2 * b * dy + n * dy * dy
        else:
            self._gxx += other._gxx + np.outer(a, dx) + np.outer(dx, a) + n * np.outer(dx, dx)
            self._gyy += other._gyy + np.outer(b, dy) + np.outer(dy, b) + n * np.outer(dy, dy)
        self._a += a + n * dx
        self._b += b + n * dy
        self._n += n
        return self

    def _copy_from(self, other: "CrossStats") -> None:
        self._n = other._n
        self._sx, self._sy = other._sx.copy(), other._sy.copy()
        self._a, self._b = other._a.copy(), other._b.copy()
        self._gxx, self._gxy, self._gyy = other._gxx.copy(), other._gxy.copy(), other._gyy.copy()
        self._kind = other._kind

    # ------------------------------------------------------------------ accessors
    def _need(self, min_n: int = 1) -> None:
        if self._n < min_n:
            raise ValueError(f"CrossStats holds {self._n} sample(s); at least {min_n} are needed")

    def _out(self, arr: np.ndarray) -> Any:
        return arr if self._kind is None else wrap_like(arr, self._kind)

    def _full(self, what: str) -> None:
        if self.cross_only:
            raise ValueError(f"{what} is not kept with cross_only=True (only its diagonal is)")

    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def n_x(self) -> int:
        return 0 if self._a is None else self._a.shape[0]

    @property
    def n_y(self) -> int:
        return 0 if self._b is None else self._b.shape[0]

    @property
    def shift_x(self) -> Any:
        self._need()
        return self._out(self._sx)

    @property
    def shift_y(self) -> Any:
        self._need()
        return self._out(self._sy)

    @property
    def sum_x(self) -> Any:
        """a = Σ(x_i − s), shape (p,)."""
        self._need()
        return self._out(self._a)

    @property
    def sum_y(self) -> Any:
        self._need()
        return self._out(self._b)

    @property
    def gram_xx(self) -> Any:
        """G_xx = Σ(x_i − s)(x_i − s)ᵀ, shape (p, p)."""
        self._need()
        self._full("gram_xx")
        return self._out(self._gxx)

    @property
    def gram_xy(self) -> Any:
        """G_xy = Σ(x_i − s)(y_i − t)ᵀ, shape (p, q)."""
        self._need()
        return self._out(self._gxy)

    @property
    def gram_yy(self) -> Any:
        self._need()
        self._full("gram_yy")
        return self._out(self._gyy)

    @property
    def mean_x(self) -> Any:
        self._need()
        return self._out(self._sx + self._a / self._n)

    @property
    def mean_y(self) -> Any:
        self._need()
        return self._out(self._sy + self._b / self._n)

    def _m_xx(self) -> np.ndarray:
        return self._gxx - np.outer(self._a, self._a) / self._n

    def _m_yy(self) -> np.ndarray:
        return self._gyy - np.outer(self._b, self._b) / self._n

    def _diag_xx(self) -> np.ndarray:
        g = self._gxx if self.cross_only else np.diagonal(self._gxx)
        return np.maximum(g - self._a ** 2 / self._n, 0.0)

    def _diag_yy(self) -> np.ndarray:
        g = self._gyy if self.cross_only else np.diagonal(self._gyy)
        return np.maximum(g - self._b ** 2 / self._n, 0.0)

    def comoment_xy(self) -> Any:
        """M_xy = Σ(x_i − x̄)(y_i − ȳ)ᵀ = G_xy − abᵀ/n, shape (p, q)."""
        self._need()
        return self._out(self._gxy - np.outer(self._a, self._b) / self._n)

    def comoment_xx(self) -> Any:
        self._need()
        self._full("comoment_xx")
        return self._out(self._m_xx())

    def comoment_yy(self) -> Any:
        self._need()
        self._full("comoment_yy")
        return self._out(self._m_yy())

    def _ddof(self, ddof: int) -> float:
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not (0 <= ddof < self._n):
            raise ValueError(f"ddof must be an integer with 0 <= ddof < n_samples ({self._n}); got {ddof!r}")
        return float(self._n - ddof)

    def covariance_xy(self, ddof: int = 1) -> Any:
        """Σ_xy = M_xy / (n − ddof), shape (p, q)."""
        self._need(2)
        return self._out((self._gxy - np.outer(self._a, self._b) / self._n) / self._ddof(ddof))

    def covariance_xx(self, ddof: int = 1) -> Any:
        self._need(2)
        self._full("covariance_xx")
        return self._out(self._m_xx() / self._ddof(ddof))

    def covariance_yy(self, ddof: int = 1) -> Any:
        self._need(2)
        self._full("covariance_yy")
        return self._out(self._m_yy() / self._ddof(ddof))

    def variance_x(self, ddof: int = 1) -> Any:
        self._need(2)
        return self._out(self._diag_xx() / self._ddof(ddof))

    def variance_y(self, ddof: int = 1) -> Any:
        self._need(2)
        return self._out(self._diag_yy() / self._ddof(ddof))

    def _constant(self, diag: np.ndarray, shift: np.ndarray, a: np.ndarray) -> np.ndarray:
        n = self._n
        mean = shift + a / n
        raw = diag + n * mean * mean  # Σx² = Σ(x − x̄)² + n·x̄²
        return (diag == 0) | (np.sqrt(diag / n) <= E.CONSTANT_RTOL * np.sqrt(raw / n))

    def _corr(self, m: np.ndarray, dx: np.ndarray, dy: np.ndarray, cx: np.ndarray, cy: np.ndarray,
              zero_var: str, names: tuple[str, str]) -> np.ndarray:
        E.check_choice(zero_var, E.ZERO_VAR_POLICIES, "zero_var")
        bad_x = E._apply_zero_var(cx, zero_var, names[0], "pearson")
        bad_y = E._apply_zero_var(cy, zero_var, names[1], "pearson")
        sx = np.where(cx, 0.0, 1.0 / np.sqrt(np.where(cx, 1.0, dx)))
        sy = np.where(cy, 0.0, 1.0 / np.sqrt(np.where(cy, 1.0, dy)))
        r = np.clip(m * sx[:, None] * sy[None, :], -1.0, 1.0)
        if bad_x is not None:
            r[bad_x, :] = np.nan
        if bad_y is not None:
            r[:, bad_y] = np.nan
        return r

    def correlation_xy(self, zero_var: str = "zero") -> Any:
        """Pearson correlations between the features of X and Y, shape (p, q).

        Constant features follow ``zero_var`` as in :func:`congruence.correlation`.
        """
        self._need(2)
        dx, dy = self._diag_xx(), self._diag_yy()
        cx, cy = self._constant(dx, self._sx, self._a), self._constant(dy, self._sy, self._b)
        m = self._gxy - np.outer(self._a, self._b) / self._n
        return self._out(self._corr(m, dx, dy, cx, cy, zero_var, ("X", "Y")))

    def correlation_xx(self, zero_var: str = "zero") -> Any:
        self._need(2)
        self._full("correlation_xx")
        d = self._diag_xx()
        c = self._constant(d, self._sx, self._a)
        return self._out(self._corr(self._m_xx(), d, d, c, c, zero_var, ("X", "X")))

    def correlation_yy(self, zero_var: str = "zero") -> Any:
        self._need(2)
        self._full("correlation_yy")
        d = self._diag_yy()
        c = self._constant(d, self._sy, self._b)
        return self._out(self._corr(self._m_yy(), d, d, c, c, zero_var, ("Y", "Y")))

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        """The complete state as numpy arrays and plain values (e.g. for ``np.savez``)."""
        self._need()
        return {
            "n": self._n, "cross_only": self.cross_only, "precision": self.precision,
            "shift_x": self._sx.copy(), "shift_y": self._sy.copy(), "sum_x": self._a.copy(), "sum_y": self._b.copy(),
            "gram_xx": self._gxx.copy(), "gram_xy": self._gxy.copy(), "gram_yy": self._gyy.copy(),
        }

    @classmethod
    def from_state_dict(cls, state: dict, *, num_threads: Optional[int] = None) -> "CrossStats":
        """Rebuild a state saved with :meth:`state_dict`."""
        missing = {"n", "cross_only", "precision", "shift_x", "shift_y", "sum_x", "sum_y",
                   "gram_xx", "gram_xy", "gram_yy"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        cs = cls(cross_only=bool(state["cross_only"]), precision=str(state["precision"]), num_threads=num_threads)
        cs._n = int(state["n"])
        cs._sx, cs._sy = _vector(state["shift_x"], "shift_x"), _vector(state["shift_y"], "shift_y")
        cs._a, cs._b = _vector(state["sum_x"], "sum_x"), _vector(state["sum_y"], "sum_y")
        cs._gxx = np.array(state["gram_xx"], dtype=np.float64)
        cs._gxy = np.array(state["gram_xy"], dtype=np.float64)
        cs._gyy = np.array(state["gram_yy"], dtype=np.float64)
        return cs

    def __repr__(self) -> str:
        return (f"CrossStats(n_samples={self._n}, n_x={self.n_x}, n_y={self.n_y}, "
                f"cross_only={self.cross_only}, precision={self.precision!r})")


def _vector(v: Any, name: str) -> np.ndarray:
    if hasattr(v, "detach"):  # torch tensor (possibly on a GPU: a small vector, copied on purpose)
        v = v.detach().cpu()
    arr = np.array(v, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return arr
