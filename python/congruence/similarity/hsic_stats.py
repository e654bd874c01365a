"""HSICStats: the extended streamed state that makes debiased linear CKA exact (METHODS.md §2.2)."""

from __future__ import annotations

import contextlib
from typing import Any, Optional

import numpy as np

from .._arrays import BFLOAT16, as_host_array, inputs_on_device
from .._xp import namespace_of
from ..cross_stats import CrossStats
from ._common import _host

__all__ = ["HSICStats"]

#: Rows per chunk when the per-sample norms are computed (bounds the float64 temporaries).
_CHUNK_ROWS = 4096
#: Order of the five scalar sums in the state vector.
_SCALARS = ("sum_alpha", "sum_beta", "sum_alpha_beta", "sum_alpha2", "sum_beta2")


class HSICStats:
    """Streamed, exactly mergeable state for the unbiased HSIC of linear kernels (Song et al. 2012).

    On top of a :class:`~congruence.CrossStats` (n, shifts s, t, a = Σu_i, b = Σv_i and the shifted
    Grams G_xx, G_xy, G_yy, with u_i = x_i − s, v_i = y_i − t) it accumulates, in float64, with
    α_i = ‖u_i‖² and β_i = ‖v_i‖² (METHODS §2.2):

    * the scalars Σα, Σβ, Σαβ, Σα², Σβ²;
    * the vectors Σα_iu_i, Σβ_iu_i (p,) and Σβ_iv_i, Σα_iv_i (q,).

    From them (with K = UUᵀ, L = VVᵀ, K̃, L̃ their zero-diagonal versions)
    tr(K̃L̃) = ‖G_xy‖²_F − Σαβ, 1ᵀK̃1 = ‖a‖² − Σα,
    1ᵀK̃L̃1 = aᵀG_xy b − (Σβ_iu_i)ᵀa − (Σα_iv_i)ᵀb + Σαβ (self terms alike), and
    HSIC₁ = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1]/(n(n−3)),
    exactly, because HSIC₁ of a linear kernel does not change under a translation of X or Y.

    Merging is plain addition, so **all partial states of one computation must share one shift**
    (the Library choice of METHODS §2.2): fix it with ``shift_x`` / ``shift_y`` (e.g. the column
    means of a first batch, or ``first.shift_x``), or create the workers' states with
    :meth:`spawn`. :meth:`merge` refuses states with different shifts.

    Parameters
    ----------
    shift_x, shift_y : array-like, optional
        Fixed shifts (p,), (q,); default: the column means of the first batch (≤ 1024 rows).
    precision : {"float64", "float32", ...}
        Precision of the Gram products (as :class:`~congruence.CrossStats`); the extra sums are
        always float64.
    memory_limit, num_threads
        As :class:`~congruence.CrossStats`.

    GPU batches
    -----------
    torch CUDA tensors and cupy arrays are accepted: the Gram part runs in the CrossStats' GPU
    engine, the extra sums with the batch's own library on the device, in float64, over chunks of
    ≤ 4096 rows (a float64 copy of one chunk at a time on the device). The state stays on the
    device; only the finished scalars reach the host. Bare ``__cuda_array_interface__`` / DLPack
    objects raise NotImplementedError (wrap them with torch or cupy).

    Examples
    --------
    >>> hs = HSICStats()
    >>> for xb, yb in batches:              # doctest: +SKIP
    ...     hs.update(xb, yb)
    >>> debiased_cka(stats=hs)              # doctest: +SKIP
    """

    def __init__(self, *, shift_x: Any = None, shift_y: Any = None, precision: str = "float64",
                 memory_limit: Optional[float] = None, num_threads: Optional[int] = None) -> None:
        self._cs = CrossStats(shift_x=shift_x, shift_y=shift_y, precision=precision, memory_limit=memory_limit,
                              num_threads=num_threads)
        self._options = dict(precision=precision, memory_limit=memory_limit, num_threads=num_threads)
        self._scal = None  # (5,) [Σα, Σβ, Σαβ, Σα², Σβ²]
        self._au = self._bu = self._bv = self._av = None
        self._sx = self._sy = None  # shifts in the state's library (numpy on the host)
        self._xp = None

    # ------------------------------------------------------------------ accumulation
    @property
    def cross_stats(self) -> CrossStats:
        """The Gram part (a :class:`~congruence.CrossStats`; linear CKA and the CCA family read it)."""
        return self._cs

    @property
    def n_samples(self) -> int:
        return self._cs.n_samples

    @property
    def n_x(self) -> int:
        return self._cs.n_x

    @property
    def n_y(self) -> int:
        return self._cs.n_y

    @property
    def shift_x(self) -> Any:
        return self._cs.shift_x

    @property
    def shift_y(self) -> Any:
        return self._cs.shift_y

    def update(self, X: Any, Y: Any) -> "HSICStats":
        """Add a batch of samples.

        Parameters
        ----------
        X : array, shape (n_batch, p)
        Y : array, shape (n_batch, q)
            Same rows as X; any float dtype; host (numpy, CPU torch) or GPU (torch, cupy).

        Returns
        -------
        self
        """
        on_device = inputs_on_device(X=X, Y=Y)
        if on_device:
            for name, arr in (("X", X), ("Y", Y)):
                if namespace_of(arr).name not in ("torch", "cupy"):
                    raise NotImplementedError(
                        f"HSICStats takes GPU batches as torch tensors or cupy arrays; {name} is a "
                        f"{type(arr).__name__} (wrap it with torch.as_tensor / cupy.asarray)")
        self._cs.update(X, Y)  # validates shapes, widths, NaN/Inf, device rules; fixes the shifts
        if self._scal is None:
            self._start()
        if on_device:
            self._accumulate_device(X, Y)
        else:
            self._accumulate_host(as_host_array(X, "X"), as_host_array(Y, "Y"))
        return self

    def _start(self) -> None:
        sx, sy = self._cs.shift_x, self._cs.shift_y
        if self._cs.device is None:  # host state (its shift may come back as a CPU torch tensor)
            sx, sy = _host(sx), _host(sy)
            xp = namespace_of(sx)
        else:  # the state's library on its device
            xp = namespace_of(self._cs.gram_xy)
        self._xp, self._sx, self._sy = xp, sx, sy
        p, q = self._cs.n_x, self._cs.n_y
        self._scal = xp.zeros((5,))
        self._au, self._bu = xp.zeros((p,)), xp.zeros((p,))
        self._bv, self._av = xp.zeros((q,)), xp.zeros((q,))

    def _add(self, u: Any, v: Any) -> None:
        xp = self._xp
        alpha = (u * u).sum(1)
        beta = (v * v).sum(1)
        self._scal += xp.stack([alpha.sum(), beta.sum(), (alpha * beta).sum(), (alpha * alpha).sum(),
                                (beta * beta).sum()])
        self._au += u.T @ alpha
        self._bu += u.T @ beta
        self._bv += v.T @ beta
        self._av += v.T @ alpha

    def _accumulate_host(self, hx: Any, hy: Any) -> None:
        for r0 in range(0, hx.shape[0], _CHUNK_ROWS):
            u = _f64(hx.array[r0:r0 + _CHUNK_ROWS], hx.code) - self._sx
            v = _f64(hy.array[r0:r0 + _CHUNK_ROWS], hy.code) - self._sy
            self._add(u, v)

    def _accumulate_device(self, X: Any, Y: Any) -> None:
        xp = self._xp
        ctx = getattr(xp, "context", None)
        X = X.detach() if hasattr(X, "detach") else X
        Y = Y.detach() if hasattr(Y, "detach") else Y
        with (ctx() if ctx is not None else contextlib.nullcontext()):
            for r0 in range(0, X.shape[0], _CHUNK_ROWS):
                u = xp.astype(X[r0:r0 + _CHUNK_ROWS], "float64") - self._sx
                v = xp.astype(Y[r0:r0 + _CHUNK_ROWS], "float64") - self._sy
                self._add(u, v)

    # ------------------------------------------------------------------ merging
    def spawn(self) -> "HSICStats":
        """An empty state with this state's shifts (and options), for a worker whose result will be
        merged into this one."""
        if self.n_samples == 0:
            raise ValueError("spawn() needs a state that has seen a batch (its shifts are fixed by the first batch); "
                             "or pass shift_x / shift_y to every HSICStats")
        sx, sy = self._xp.to_numpy(self._sx), self._xp.to_numpy(self._sy)
        return HSICStats(shift_x=sx, shift_y=sy, **self._options)

    def merge(self, other: "HSICStats") -> "HSICStats":
        """Add another state's samples, exactly (addition; both states must share their shifts).

        Returns
        -------
        self
        """
        if not isinstance(other, HSICStats):
            raise TypeError(f"other must be an HSICStats; got {type(other).__name__}")
        if other.n_samples == 0:
            return self
        if self.n_samples == 0:
            self._cs.merge(other._cs)  # copies
            oxp = other._xp
            self._xp = oxp
            self._sx, self._sy = oxp.copy(other._sx), oxp.copy(other._sy)
            self._scal = oxp.copy(other._scal)
            self._au, self._bu = oxp.copy(other._au), oxp.copy(other._bu)
            self._bv, self._av = oxp.copy(other._bv), oxp.copy(other._av)
            return self
        if (self._xp.name, self._xp.device) != (other._xp.name, other._xp.device):
            raise ValueError("cannot merge HSICStats held on different devices or array libraries")
        if (self.n_x, self.n_y) != (other.n_x, other.n_y):
            raise ValueError(f"widths differ: ({self.n_x}, {self.n_y}) vs ({other.n_x}, {other.n_y})")
        same = (np.array_equal(self._xp.to_numpy(self._sx), other._xp.to_numpy(other._sx))
                and np.array_equal(self._xp.to_numpy(self._sy), other._xp.to_numpy(other._sy)))
        if not same:
            raise ValueError(
                "these HSICStats were accumulated around different shifts; merging is exact only for one shared "
                "shift (METHODS §2.2). Create the partial states with the same shift_x / shift_y, e.g. "
                "first.spawn() or HSICStats(shift_x=first.shift_x, shift_y=first.shift_y)")
        self._cs.merge(other._cs)
        self._scal += other._scal
        self._au += other._au
        self._bu += other._bu
        self._bv += other._bv
        self._av += other._av
        return self

    # ------------------------------------------------------------------ results
    def sums(self) -> dict:
        """The extra sums as float64 numpy values (a host copy of the small vectors)."""
        if self.n_samples == 0:
            raise ValueError("HSICStats holds 0 samples")
        to = self._xp.to_numpy
        scal = np.asarray(to(self._scal), dtype=np.float64)
        out = {k: float(scal[i]) for i, k in enumerate(_SCALARS)}
        out.update(alpha_u=np.array(to(self._au), dtype=np.float64), beta_u=np.array(to(self._bu), dtype=np.float64),
                   beta_v=np.array(to(self._bv), dtype=np.float64), alpha_v=np.array(to(self._av), dtype=np.float64))
        return out

    def hsic1(self) -> tuple[float, float, float]:
        """(HSIC₁(K, L), HSIC₁(K, K), HSIC₁(L, L)) of the accumulated samples (n >= 4)."""
        return self._terms()[:3]

    def _terms(self) -> tuple[float, float, float, float, float]:
        """HSIC₁(K, L), HSIC₁(K, K), HSIC₁(L, L) and the scales ‖G_xx‖²/(n(n−3)), ‖G_yy‖²/(n(n−3))
        of the self terms (their largest summands: a self term far below its scale is rounding)."""
        n = self.n_samples
        if n < 4:
            raise ValueError(f"unbiased HSIC needs at least 4 samples; HSICStats holds {n}")
        cs = self._cs
        a, b = _host(cs.sum_x), _host(cs.sum_y)
        gxx, gxy, gyy = _host(cs.gram_xx), _host(cs.gram_xy), _host(cs.gram_yy)
        s = self.sums()
        c1 = 1.0 / ((n - 1) * (n - 2))
        c2 = 2.0 / (n - 2)
        norm = 1.0 / (n * (n - 3))
        sk = a @ a - s["sum_alpha"]  # 1ᵀK̃1
        sl = b @ b - s["sum_beta"]  # 1ᵀL̃1
        tr_kl = np.sum(gxy * gxy) - s["sum_alpha_beta"]
        kl1 = a @ gxy @ b - s["beta_u"] @ a - s["alpha_v"] @ b + s["sum_alpha_beta"]
        gxx2, gyy2 = float(np.sum(gxx * gxx)), float(np.sum(gyy * gyy))
        tr_kk = gxx2 - s["sum_alpha2"]
        kk1 = a @ gxx @ a - 2.0 * (s["alpha_u"] @ a) + s["sum_alpha2"]
        tr_ll = gyy2 - s["sum_beta2"]
        ll1 = b @ gyy @ b - 2.0 * (s["beta_v"] @ b) + s["sum_beta2"]
        hxy = (tr_kl + sk * sl * c1 - c2 * kl1) * norm
        hxx = (tr_kk + sk * sk * c1 - c2 * kk1) * norm
        hyy = (tr_ll + sl * sl * c1 - c2 * ll1) * norm
        return float(hxy), float(hxx), float(hyy), gxx2 * norm, gyy2 * norm

    def __repr__(self) -> str:
        return f"HSICStats(n_samples={self.n_samples}, n_x={self.n_x}, n_y={self.n_y})"


def _f64(arr: np.ndarray, code: int) -> np.ndarray:
    if code == BFLOAT16:
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return arr.astype(np.float64)
