"""Streamed, mergeable second-order statistics of two feature sets (METHODS.md §0, §1.2)."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import numpy as np

from . import _cpu
from . import _cuda_engine as CE
from . import _engine as E
from ._arrays import HostArray, as_host_array, check_matrix, inputs_on_device, is_dask_array, is_device, wrap_like
from ._resources import blas_threads, format_bytes, MemoryBudgetError, resolve_memory_limit, resolve_threads
from ._xp import NUMPY, namespace_of

__all__ = ["CrossStats"]

#: float32 batch products sum at most this many rows before joining the float64 accumulators.
_JOINT_ROWS = 8192
_FLOAT32_ROWS = 1024
#: Precisions of the batch products (the last three need GPU batches).
PRECISIONS = ("float64", "float32", "3xtf32", "tf32", "bf16")


def _on_state_device(fn: Callable) -> Callable:
    """Run a method with the state's device current (cupy operations need it; host: no-op)."""

    @functools.wraps(fn)
    def wrapper(self: "CrossStats", *args: Any, **kwargs: Any) -> Any:
        context = getattr(self._xp, "context", None)
        if context is None:
            return fn(self, *args, **kwargs)
        with context():
            return fn(self, *args, **kwargs)

    return wrapper


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
    precision : {"float64", "float32", "3xtf32", "tf32", "bf16"}
        Precision of each batch product. float64 (default): dgemm on the shifted batch. float32:
        sgemm over at most 1024 rows at a time, each partial product added to the float64
        accumulators (error ~2e-7 relative to the co-moment scale; METHODS.md §1.2). GPU batches
        take the same two and the tensor-core modes "3xtf32" (≈ float32), "tf32" (≈ 1e-5) and
        "bf16" (≈ 1e-3), also over ≤ 1024-row chunks (bounds as in :mod:`congruence.pairwise`;
        not yet verified on a GPU). The sums a, b always accumulate in float64 from the raw data.
    shift_x, shift_y : array-like, optional
        Fixed shifts; give the same shifts to partial states that will be merged to make the merge a
        plain addition (different shifts are re-expressed exactly).
    memory_limit : float, optional
        Bytes the accumulators may take (default: half the available RAM; for GPU batches 80% of
        the free device memory); refused at the first batch if the Gram blocks would not fit.
    num_threads : int, optional
        Ignored for GPU batches.

    GPU batches
    -----------
    When the first batch is a GPU array (torch CUDA tensor, cupy array, protocol object), the state
    lives on that device as float64 arrays of the caller's library (torch -> torch, otherwise
    cupy) and every later batch must be on the same device; products run on the caller's current
    stream through the CUDA engine (shift-only panels, ``pairwise_dense`` accumulating into the
    float64 Gram blocks). Accessors, :meth:`merge` and :meth:`state_dict` then return / take that
    library's arrays on the device. A host batch into a device state (or the reverse), or states
    on different devices, raise ValueError. Given shifts (host arrays) are copied to the device.

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
        E.check_choice(precision, PRECISIONS, "precision")
        self.cross_only = bool(cross_only)
        self.precision = precision
        self._threads = resolve_threads(num_threads)
        self._budget = resolve_memory_limit(memory_limit)
        self._memory_limit = memory_limit  # None: the GPU default is taken at the first GPU batch
        self._n = 0
        self._sx = None if shift_x is None else _vector(shift_x, "shift_x")
        self._sy = None if shift_y is None else _vector(shift_y, "shift_y")
        self._a = self._b = None
        self._gxx = self._gxy = self._gyy = None
        self._kind: Optional[HostArray] = None
        self._xp = NUMPY  # array namespace of the state (numpy, or torch / cupy on one device)
        self._device_budget = 0  # bytes the device state may use, fixed at its first GPU batch

    @property
    def device(self) -> Optional[int]:
        """CUDA device index of the state, None while it is on the host (or empty)."""
        return self._xp.device

    def _where(self) -> str:
        return "on the host" if self._xp.device is None else f"on cuda:{self._xp.device} ({self._xp.name})"

    # ------------------------------------------------------------------ accumulation
    def update(self, X: Any, Y: Any) -> "CrossStats":
        """Add a batch of samples.

        Parameters
        ----------
        X : array, shape (n_batch, p)
        Y : array, shape (n_batch, q)
            Same rows (samples) as X. Any float dtype and strides; read in place. Host or GPU,
            both on the same device as the state.

        Returns
        -------
        self
        """
        if is_dask_array(X) or is_dask_array(Y):
            return self._update_dask(X, Y)
        on_device = inputs_on_device(X=X, Y=Y)
        if self._gxy is not None and on_device != (self._xp.device is not None):
            raise ValueError(
                f"this CrossStats holds its state {self._where()} but the batch is "
                f"{'on a GPU' if on_device else 'on the host'}; pass batches on the state's device (move them "
                "explicitly; congruence never copies between GPU and host silently)"
            )
        if on_device:
            return self._update_device(X, Y)
        E.reject_gpu_precision(self.precision, "CrossStats on host batches")
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
        if dtype == np.float64 and not self.cross_only:
            a, b = self._update_joint(hx, hy)
            self._a += a
            self._b += b
            self._n += hx.shape[0]
            return self
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

    def _update_dask(self, X: Any, Y: Any) -> "CrossStats":
        """Dask inputs: a tree of per-sample-chunk states on the cluster, merged into this one."""
        from .distributed._dispatch import features_pair
        from .distributed.cross_stats import cross_stats

        X, Y = features_pair(X, Y)
        part = cross_stats(X, Y, cross_only=self.cross_only, precision=self.precision, shift_x=self._sx,
                           shift_y=self._sy, num_threads=self._threads)
        return self.merge(part)

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

    def _update_device(self, X: Any, Y: Any) -> "CrossStats":
        cu = CE.load("X" if is_device(X) else "Y")
        ctx, arrays = CE.device_inputs(cu, {"X": X, "Y": Y})
        dx, dy = arrays["X"], arrays["Y"]
        with ctx.activate():
            check_matrix(dx)
            check_matrix(dy)
            if dx.shape[0] != dy.shape[0]:
                raise ValueError(
                    f"X and Y must have the same number of samples (rows); got {dx.shape[0]} and {dy.shape[0]}"
                )
            p, q = dx.shape[1], dy.shape[1]
            if self._gxy is None:
                self._start_device(cu, ctx, dx, dy)
            else:
                if (ctx.device, ctx.library) != (self._xp.device, self._xp.name):
                    raise ValueError(
                        f"this CrossStats holds its state {self._where()} but the batch is on cuda:{ctx.device} "
                        f"({ctx.library}); pass batches on the state's device and of the state's array library"
                    )
                if (p, q) != (self.n_x, self.n_y):
                    raise ValueError(
                        f"batch widths ({p}, {q}) differ from the accumulated widths ({self.n_x}, {self.n_y})"
                    )
            state_bytes = 8 * (p * q + (p + q if self.cross_only else p * p + q * q) + 2 * (p + q))
            CE.cross_update(cu, ctx, dx, dy, sx=self._sx, sy=self._sy, a=self._a, b=self._b, gxx=self._gxx,
                            gxy=self._gxy, gyy=self._gyy, precision=self.precision, cross_only=self.cross_only,
                            available_bytes=self._device_budget - state_bytes)
            self._n += dx.shape[0]
        return self

    def _start_device(self, cu: Any, ctx: Any, dx: Any, dy: Any) -> None:
        p, q = dx.shape[1], dy.shape[1]
        budget = CE.resolve_budget(self._memory_limit, ctx)
        grams = p * q + (p + q if self.cross_only else p * p + q * q)
        need = 8 * grams
        if need > budget:
            raise MemoryBudgetError(
                f"CrossStats for {p} x {q} features needs {format_bytes(need)} of float64 accumulators but "
                f"memory_limit is {format_bytes(budget)}" + ("" if self.cross_only else "; try cross_only=True")
            )
        for shift, width, name in ((self._sx, p, "shift_x"), (self._sy, q, "shift_y")):
            if shift is not None and shift.shape != (width,):
                raise ValueError(f"{name} has shape {shift.shape}; expected ({width},)")
        xp = ctx.xp
        sx = CE.cross_shift(cu, ctx, dx) if self._sx is None else xp.asarray(self._sx)
        sy = CE.cross_shift(cu, ctx, dy) if self._sy is None else xp.asarray(self._sy)
        self._sx, self._sy = sx, sy
        self._a, self._b = xp.zeros((p,)), xp.zeros((q,))
        self._gxy = xp.zeros((p, q))
        if self.cross_only:
            self._gxx, self._gyy = xp.zeros((p,)), xp.zeros((q,))
        else:
            self._gxx, self._gyy = xp.zeros((p, p)), xp.zeros((q, q))
        self._xp = xp
        self._device_budget = budget
        self._kind = None

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

    def _update_joint(self, hx: HostArray, hy: HostArray) -> tuple[np.ndarray, np.ndarray]:
        """float64 batches: 8192 rows at a time, both inputs are shifted into one [U V 1] block and
        all three Gram blocks, and the column sums (the last column), come from one symmetric
        product of it — the multiply-adds of syrk(U) + syrk(V) + UᵀV in one cache-resident BLAS
        call, and no whole-batch copies. For 512 + 512 features over 100k samples this took 1.7 s
        against 2.9 s for the three whole-batch products (development box, 2 threads). Returns the
        column sums (a, b)."""
        p, q = hx.shape[1], hy.shape[1]
        rows = min(hx.shape[0], _JOINT_ROWS)
        buf = np.empty((rows, p + q + 1))
        buf[:, -1] = 1.0
        a, b = np.zeros(p), np.zeros(q)
        with blas_threads(self._threads):
            for r0 in range(0, hx.shape[0], rows):
                r1 = min(hx.shape[0], r0 + rows)
                blk = buf[: r1 - r0]
                self._shift_into(hx, r0, r1, self._sx, blk[:, :p])
                self._shift_into(hy, r0, r1, self._sy, blk[:, p:p + q])
                G = blk.T @ blk  # numpy hands AᵀA to syrk
                d = np.diag(G)
                if not np.isfinite(d[:p]).all():
                    raise ValueError("X contains NaN or Inf values")
                if not np.isfinite(d[p:p + q]).all():
                    raise ValueError("Y contains NaN or Inf values")
                self._gxx += G[:p, :p]
                self._gxy += G[:p, p:p + q]
                self._gyy += G[p:p + q, p:p + q]
                a += G[-1, :p]
                b += G[-1, p:p + q]
        return a, b

    def _shift_into(self, h: HostArray, r0: int, r1: int, shift: np.ndarray, out: np.ndarray) -> None:
        """out (float64, unit column stride) = rows r0:r1 of h minus shift. numpy's cast-subtract is
        1.5x faster than the compiled kernel for plain float32/float64 arrays (one thread, cache
        blocks); other dtypes (float16, bfloat16 bits, integers) go through the kernel."""
        src = h.array[r0:r1]
        if src.dtype in (np.float32, np.float64):
            np.subtract(src, shift, out=out)
        else:
            _cpu.standardize(src, h.code, None, shift, None, out, self._threads)

    @_on_state_device
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
        if (self._xp.device, self._xp.name) != (other._xp.device, other._xp.name):
            raise ValueError(f"cannot merge a state held {other._where()} into one held {self._where()}; "
                             "both must be on the same device (and array library)")
        if (self.n_x, self.n_y) != (other.n_x, other.n_y):
            raise ValueError(f"widths differ: ({self.n_x}, {self.n_y}) vs ({other.n_x}, {other.n_y})")
        xp = self._xp
        n = other._n
        dx, dy = other._sx - self._sx, other._sy - self._sy
        a, b = other._a, other._b
        self._gxy += other._gxy + xp.outer(a, dy) + xp.outer(dx, b) + n * xp.outer(dx, dy)
        if self.cross_only:
            self._gxx += other._gxx + 2 * a * dx + n * dx * dx
            self._gyy += other._gyy + 2 * b * dy + n * dy * dy
        else:
            self._gxx += other._gxx + xp.outer(a, dx) + xp.outer(dx, a) + n * xp.outer(dx, dx)
            self._gyy += other._gyy + xp.outer(b, dy) + xp.outer(dy, b) + n * xp.outer(dy, dy)
        self._a += a + n * dx
        self._b += b + n * dy
        self._n += n
        return self

    def _copy_from(self, other: "CrossStats") -> None:
        xp = other._xp
        self._n = other._n
        self._sx, self._sy = xp.copy(other._sx), xp.copy(other._sy)
        self._a, self._b = xp.copy(other._a), xp.copy(other._b)
        self._gxx, self._gxy, self._gyy = xp.copy(other._gxx), xp.copy(other._gxy), xp.copy(other._gyy)
        self._kind = other._kind
        self._xp = xp
        self._device_budget = other._device_budget

    # ------------------------------------------------------------------ accessors
    def _need(self, min_n: int = 1) -> None:
        if self._n < min_n:
            raise ValueError(f"CrossStats holds {self._n} sample(s); at least {min_n} are needed")

    def _out(self, arr: Any) -> Any:
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
    @_on_state_device
    def mean_x(self) -> Any:
        self._need()
        return self._out(self._sx + self._a / self._n)

    @property
    @_on_state_device
    def mean_y(self) -> Any:
        self._need()
        return self._out(self._sy + self._b / self._n)

    def _m_xx(self) -> Any:
        return self._gxx - self._xp.outer(self._a, self._a) / self._n

    def _m_yy(self) -> Any:
        return self._gyy - self._xp.outer(self._b, self._b) / self._n

    def _diag_xx(self) -> Any:
        g = self._gxx if self.cross_only else self._xp.diagonal(self._gxx)
        return self._xp.maximum(g - self._a ** 2 / self._n, 0.0)

    def _diag_yy(self) -> Any:
        g = self._gyy if self.cross_only else self._xp.diagonal(self._gyy)
        return self._xp.maximum(g - self._b ** 2 / self._n, 0.0)

    @_on_state_device
    def comoment_xy(self) -> Any:
        """M_xy = Σ(x_i − x̄)(y_i − ȳ)ᵀ = G_xy − abᵀ/n, shape (p, q)."""
        self._need()
        return self._out(self._gxy - self._xp.outer(self._a, self._b) / self._n)

    @_on_state_device
    def comoment_xx(self) -> Any:
        self._need()
        self._full("comoment_xx")
        return self._out(self._m_xx())

    @_on_state_device
    def comoment_yy(self) -> Any:
        self._need()
        self._full("comoment_yy")
        return self._out(self._m_yy())

    def _ddof(self, ddof: int) -> float:
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not (0 <= ddof < self._n):
            raise ValueError(f"ddof must be an integer with 0 <= ddof < n_samples ({self._n}); got {ddof!r}")
        return float(self._n - ddof)

    @_on_state_device
    def covariance_xy(self, ddof: int = 1) -> Any:
        """Σ_xy = M_xy / (n − ddof), shape (p, q)."""
        self._need(2)
        return self._out((self._gxy - self._xp.outer(self._a, self._b) / self._n) / self._ddof(ddof))

    @_on_state_device
    def covariance_xx(self, ddof: int = 1) -> Any:
        self._need(2)
        self._full("covariance_xx")
        return self._out(self._m_xx() / self._ddof(ddof))

    @_on_state_device
    def covariance_yy(self, ddof: int = 1) -> Any:
        self._need(2)
        self._full("covariance_yy")
        return self._out(self._m_yy() / self._ddof(ddof))

    @_on_state_device
    def variance_x(self, ddof: int = 1) -> Any:
        self._need(2)
        return self._out(self._diag_xx() / self._ddof(ddof))

    @_on_state_device
    def variance_y(self, ddof: int = 1) -> Any:
        self._need(2)
        return self._out(self._diag_yy() / self._ddof(ddof))

    def _constant(self, diag: Any, shift: Any, a: Any) -> Any:
        xp = self._xp
        n = self._n
        mean = shift + a / n
        raw = diag + n * mean * mean  # Σx² = Σ(x − x̄)² + n·x̄²
        return (diag == 0) | (xp.sqrt(diag / n) <= E.CONSTANT_RTOL * xp.sqrt(raw / n))

    def _corr(self, m: Any, dx: Any, dy: Any, cx: Any, cy: Any, zero_var: str, names: tuple[str, str]) -> Any:
        xp = self._xp
        E.check_choice(zero_var, E.ZERO_VAR_POLICIES, "zero_var")
        # The policy (warning / raise) looks at host masks; the NaN fill uses the state's own masks.
        bad_x = E._apply_zero_var(xp.to_numpy(cx), zero_var, names[0], "pearson")
        bad_y = E._apply_zero_var(xp.to_numpy(cy), zero_var, names[1], "pearson")
        sx = xp.where(cx, 0.0, 1.0 / xp.sqrt(xp.where(cx, 1.0, dx)))
        sy = xp.where(cy, 0.0, 1.0 / xp.sqrt(xp.where(cy, 1.0, dy)))
        r = xp.clip(m * sx[:, None] * sy[None, :], -1.0, 1.0)
        if bad_x is not None:
            r[cx, :] = xp.nan
        if bad_y is not None:
            r[:, cy] = xp.nan
        return r

    @_on_state_device
    def correlation_xy(self, zero_var: str = "zero") -> Any:
        """Pearson correlations between the features of X and Y, shape (p, q).

        Constant features follow ``zero_var`` as in :func:`congruence.correlation`.
        """
        self._need(2)
        dx, dy = self._diag_xx(), self._diag_yy()
        cx, cy = self._constant(dx, self._sx, self._a), self._constant(dy, self._sy, self._b)
        m = self._gxy - self._xp.outer(self._a, self._b) / self._n
        return self._out(self._corr(m, dx, dy, cx, cy, zero_var, ("X", "Y")))

    @_on_state_device
    def correlation_xx(self, zero_var: str = "zero") -> Any:
        self._need(2)
        self._full("correlation_xx")
        d = self._diag_xx()
        c = self._constant(d, self._sx, self._a)
        return self._out(self._corr(self._m_xx(), d, d, c, c, zero_var, ("X", "X")))

    @_on_state_device
    def correlation_yy(self, zero_var: str = "zero") -> Any:
        self._need(2)
        self._full("correlation_yy")
        d = self._diag_yy()
        c = self._constant(d, self._sy, self._b)
        return self._out(self._corr(self._m_yy(), d, d, c, c, zero_var, ("Y", "Y")))

    # ------------------------------------------------------------------ persistence
    @_on_state_device
    def state_dict(self) -> dict:
        """The complete state as plain values and copies of the arrays: numpy for a host state
        (e.g. for ``np.savez``), the state's library (torch / cupy) on its device for a GPU state."""
        self._need()
        c = self._xp.copy
        return {
            "n": self._n, "cross_only": self.cross_only, "precision": self.precision,
            "shift_x": c(self._sx), "shift_y": c(self._sy), "sum_x": c(self._a), "sum_y": c(self._b),
            "gram_xx": c(self._gxx), "gram_xy": c(self._gxy), "gram_yy": c(self._gyy),
        }

    @classmethod
    def from_state_dict(cls, state: dict, *, num_threads: Optional[int] = None) -> "CrossStats":
        """Rebuild a state saved with :meth:`state_dict`. GPU arrays (torch CUDA / cupy) rebuild a
        state on their device; anything else a host state."""
        missing = {"n", "cross_only", "precision", "shift_x", "shift_y", "sum_x", "sum_y",
                   "gram_xx", "gram_xy", "gram_yy"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        cs = cls(cross_only=bool(state["cross_only"]), precision=str(state["precision"]), num_threads=num_threads)
        cs._n = int(state["n"])
        if is_device(state["gram_xy"]):
            xp = namespace_of(state["gram_xy"])
            with xp.context():
                vals = {k: xp.asarray(state[k]) for k in ("shift_x", "shift_y", "sum_x", "sum_y",
                                                         "gram_xx", "gram_xy", "gram_yy")}
            for k in ("shift_x", "shift_y", "sum_x", "sum_y"):
                vals[k] = vals[k].reshape(-1)
                if not np.isfinite(xp.to_numpy(vals[k])).all():  # small vectors: checked on the host
                    raise ValueError(f"{k} contains NaN or Inf values")
            cs._sx, cs._sy, cs._a, cs._b = vals["shift_x"], vals["shift_y"], vals["sum_x"], vals["sum_y"]
            cs._gxx, cs._gxy, cs._gyy = vals["gram_xx"], vals["gram_xy"], vals["gram_yy"]
            cs._xp = xp
            cs._device_budget = CE.resolve_budget(cs._memory_limit, _StateContext(xp))
            return cs
        cs._sx, cs._sy = _vector(state["shift_x"], "shift_x"), _vector(state["shift_y"], "shift_y")
        cs._a, cs._b = _vector(state["sum_x"], "sum_x"), _vector(state["sum_y"], "sum_y")
        cs._gxx = np.array(state["gram_xx"], dtype=np.float64)
        cs._gxy = np.array(state["gram_xy"], dtype=np.float64)
        cs._gyy = np.array(state["gram_yy"], dtype=np.float64)
        return cs

    def __repr__(self) -> str:
        return (f"CrossStats(n_samples={self._n}, n_x={self.n_x}, n_y={self.n_y}, "
                f"cross_only={self.cross_only}, precision={self.precision!r})")


class _StateContext:
    """The few Context attributes :func:`congruence._cuda_engine.resolve_budget` reads."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def free_memory(self) -> int:
        from ._device import free_device_memory

        return free_device_memory(self.xp.name, self.xp.device)


def _vector(v: Any, name: str) -> np.ndarray:
    if hasattr(v, "detach"):  # torch tensor (possibly on a GPU: a small vector, copied on purpose)
        v = v.detach().cpu()
    arr = np.array(v, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return arr
