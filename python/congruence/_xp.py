"""A minimal array namespace over numpy, cupy and torch (POT's backend idea, kept small).

The CUDA path and :class:`~congruence.CrossStats` do a little vector arithmetic on the caller's
arrays (shifts, scales, masks, Chan merges, re-sorting top-k rows). numpy and cupy already share
one API; torch differs in a handful of names. Only those operations live here; the ones the three
spell alike (``+ - * / **``, comparisons, ``~ & |``, slicing, boolean-mask assignment, ``.sum()``)
are used directly. :class:`NumpyNS` methods *are* the numpy functions, so host code written
against a namespace computes exactly what it computed with numpy before.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

#: Element type names used across the package -> numpy dtypes (bfloat16 has no numpy dtype: it is
#: stored as uint16 bits in numpy/cupy and as torch.bfloat16 in torch).
_NP_DTYPES = {
    "float16": np.float16, "float32": np.float32, "float64": np.float64, "bfloat16": np.uint16,
    "int64": np.int64, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16, "bool": np.bool_,
}


class NumpyNS:
    """numpy itself (host state)."""

    name = "numpy"
    device: Optional[int] = None
    nan = np.nan
    inf = np.inf

    def __init__(self, module: Any = np) -> None:
        self.m = module
        self.outer = module.outer
        self.diagonal = module.diagonal
        self.where = module.where
        self.sqrt = module.sqrt
        self.clip = module.clip
        self.maximum = module.maximum
        self.abs = module.abs
        self.isnan = module.isnan
        self.argsort = module.argsort
        self.take_along_axis = module.take_along_axis
        self.cumsum = module.cumsum
        self.concatenate = module.concatenate
        self.stack = module.stack

    # allocation -----------------------------------------------------------------------------
    def dtype(self, name: str) -> Any:
        return _NP_DTYPES[name]

    def empty(self, shape: Sequence[int], dtype: str = "float64") -> Any:
        return self.m.empty(tuple(shape), dtype=self.dtype(dtype))

    def zeros(self, shape: Sequence[int], dtype: str = "float64") -> Any:
        return self.m.zeros(tuple(shape), dtype=self.dtype(dtype))

    def full(self, shape: Sequence[int], value: float, dtype: str = "float64") -> Any:
        return self.m.full(tuple(shape), value, dtype=self.dtype(dtype))

    def ones(self, shape: Sequence[int], dtype: str = "float64") -> Any:
        return self.m.ones(tuple(shape), dtype=self.dtype(dtype))

    def asarray(self, v: Any, dtype: str = "float64") -> Any:
        """A copy of ``v`` (host or this library's array) in this library, on this device."""
        return self.m.array(v, dtype=self.dtype(dtype))

    def copy(self, a: Any) -> Any:
        return a.copy()

    def astype(self, a: Any, dtype: str) -> Any:
        return a.astype(self.dtype(dtype))

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def address(self, a: Any) -> int:
        return int(a.ctypes.data)

    def fill(self, a: Any, value: Any) -> None:
        a.fill(value)

    def is_array(self, a: Any) -> bool:
        return isinstance(a, np.ndarray)


class CupyNS(NumpyNS):
    """cupy on one device. Callers run cupy operations inside ``with cupy.cuda.Device(d)``."""

    name = "cupy"

    def __init__(self, device: int, module: Any = None) -> None:
        if module is None:
            import cupy as module
        super().__init__(module)
        self.device = int(device)

    def context(self) -> Any:
        return self.m.cuda.Device(self.device)

    def asarray(self, v: Any, dtype: str = "float64") -> Any:
        with self.context():
            return self.m.array(v, dtype=self.dtype(dtype))

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.m.asnumpy(a)

    def address(self, a: Any) -> int:
        return int(a.data.ptr)

    def is_array(self, a: Any) -> bool:
        return isinstance(a, self.m.ndarray)


class TorchNS:
    """torch on one device (CUDA, or the CPU in the package's own simulation tests)."""

    name = "torch"
    nan = float("nan")
    inf = float("inf")

    def __init__(self, device: Any, module: Any = None) -> None:
        if module is None:
            import torch as module
        self.m = module
        self.torch_device = device  # a torch.device
        self.device = device.index if device.type == "cuda" else 0

    def context(self) -> Any:
        import contextlib

        if self.torch_device.type == "cuda":
            return self.m.cuda.device(self.torch_device)
        return contextlib.nullcontext()

    def dtype(self, name: str) -> Any:
        t = self.m
        return {"float16": t.float16, "float32": t.float32, "float64": t.float64, "bfloat16": t.bfloat16,
                "int64": t.int64, "int32": t.int32, "uint8": t.uint8, "uint16": t.int16, "bool": t.bool}[name]

    def empty(self, shape: Sequence[int], dtype: str = "float64") -> Any:
        return self.m.empty(tuple(shape), dtype=self.dtype(dtype), device=self.torch_device)

    def zeros(self, shape: Sequence[int], dtype: str = "float64") -> Any:
        return self.m.zeros(tuple(shape), dtype=self.dtype(dtype), device=self.torch_device)

    def full(self, shape: Sequence[int], value: float, dtype: str = "float64") -> Any:
        return self.m.full(tuple(shape), value, dtype=self.dtype(dtype), device=self.torch_device)

    def ones(self, shape: Sequence[int], dtype: str = "float64") -> Any:
        return self.m.ones(tuple(shape), dtype=self.dtype(dtype), device=self.torch_device)

    def asarray(self, v: Any, dtype: str = "float64") -> Any:
        if isinstance(v, self.m.Tensor):
            return v.detach().to(device=self.torch_device, dtype=self.dtype(dtype), copy=True)
        return self.m.as_tensor(np.array(v, dtype=_NP_DTYPES[dtype]), device=self.torch_device)

    def copy(self, a: Any) -> Any:
        return a.clone()

    def astype(self, a: Any, dtype: str) -> Any:
        return a.to(self.dtype(dtype))

    def to_numpy(self, a: Any) -> np.ndarray:
        a = a.detach().cpu()
        if a.dtype == self.m.bfloat16:
            a = a.float()
        return a.numpy()

    def address(self, a: Any) -> int:
        return int(a.data_ptr())

    def fill(self, a: Any, value: Any) -> None:
        a.fill_(value)

    def is_array(self, a: Any) -> bool:
        return isinstance(a, self.m.Tensor)

    # arithmetic -------------------------------------------------------------------------------
    def _t(self, x: Any, like: Any) -> Any:
        if isinstance(x, self.m.Tensor):
            return x
        return self.m.as_tensor(x, dtype=like.dtype, device=like.device)

    def outer(self, a: Any, b: Any) -> Any:
        return self.m.outer(a, b)

    def diagonal(self, a: Any) -> Any:
        return self.m.diagonal(a)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        like = a if isinstance(a, self.m.Tensor) else b
        if not isinstance(like, self.m.Tensor):
            like = self.m.empty((), dtype=self.m.float64, device=cond.device)
        return self.m.where(cond, self._t(a, like), self._t(b, like))

    def sqrt(self, a: Any) -> Any:
        return self.m.sqrt(a)

    def clip(self, a: Any, lo: float, hi: float) -> Any:
        return self.m.clamp(a, lo, hi)

    def maximum(self, a: Any, b: Any) -> Any:
        if isinstance(b, self.m.Tensor):
            return self.m.maximum(a, b)
        return self.m.clamp(a, min=b)

    def abs(self, a: Any) -> Any:
        return self.m.abs(a)

    def isnan(self, a: Any) -> Any:
        return self.m.isnan(a)

    def argsort(self, a: Any, axis: int = -1) -> Any:
        return self.m.argsort(a, dim=axis)

    def take_along_axis(self, a: Any, idx: Any, axis: int = -1) -> Any:
        return self.m.take_along_dim(a, idx, dim=axis)

    def cumsum(self, a: Any, axis: int = -1) -> Any:
        return self.m.cumsum(a, dim=axis)

    def concatenate(self, arrays: Sequence[Any], axis: int = 0) -> Any:
        return self.m.cat(list(arrays), dim=axis)

    def stack(self, arrays: Sequence[Any], axis: int = 0) -> Any:
        return self.m.stack(list(arrays), dim=axis)


NUMPY = NumpyNS()


def namespace_of(a: Any) -> Any:
    """The namespace of an array: numpy, cupy (its device) or torch (its device)."""
    if isinstance(a, np.ndarray):
        return NUMPY
    mod = type(a).__module__.split(".")[0]
    if mod == "torch":
        return TorchNS(a.device)
    if mod == "cupy":
        return CupyNS(int(a.device.id))
    return NUMPY
