"""Array normalisation: numpy / torch / cupy / protocol objects to host views and back.

The kernels take raw pointers and strides, so this module only has to produce a numpy *view* of
the caller's memory (no copy for numpy and CPU torch inputs, any strides), a dtype code the
kernels understand, and a way to hand results back in the caller's array type
(``numpy in -> numpy out``, ``torch in -> torch out``). Nothing here moves data between host and
GPU: a GPU array gets a clear error until the CUDA backend exists.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

# Element type codes shared with src/include/congruence/dtype.hpp.
FLOAT16, BFLOAT16, FLOAT32, FLOAT64 = 0, 1, 2, 3
_NUMPY_CODES = {np.dtype(np.float16): FLOAT16, np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64}
_CODE_NAMES = {FLOAT16: "float16", BFLOAT16: "bfloat16", FLOAT32: "float32", FLOAT64: "float64"}

GPU_NOT_YET = (
    "{name} is a GPU array; congruence's CUDA kernels are not available yet (they arrive with the "
    "CUDA backend). Move it to the host explicitly (e.g. tensor.cpu() or cupy.asnumpy(x)); "
    "congruence never copies between GPU and host silently."
)


@dataclass(frozen=True)
class HostArray:
    """A host view of a caller's array.

    Attributes
    ----------
    array : numpy.ndarray
        View of the caller's memory (bfloat16 data is viewed as uint16).
    code : int
        Element type code for the kernels.
    kind : str
        ``"numpy"`` or ``"torch"``: the type results are returned as.
    name : str
        Argument name, for error messages.
    """

    array: np.ndarray
    code: int
    kind: str
    name: str

    @property
    def dtype_name(self) -> str:
        return _CODE_NAMES[self.code]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape


def _torch_module():
    return sys.modules.get("torch")


def _is_torch_tensor(x: Any) -> bool:
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def _from_torch(x: Any, name: str) -> HostArray:
    torch = _torch_module()
    if x.device.type != "cpu":
        raise ValueError(GPU_NOT_YET.format(name=name))
    t = x.detach()  # tensors that require grad are read without complaint
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the bits (same item size works on any strides).
        return HostArray(t.view(torch.int16).numpy().view(np.uint16), BFLOAT16, "torch", name)
    if t.dtype in (torch.float16, torch.float32, torch.float64):
        arr = t.numpy()
        return HostArray(arr, _NUMPY_CODES[arr.dtype], "torch", name)
    raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64); got {t.dtype}")


def _from_numpy(arr: np.ndarray, name: str, kind: str = "numpy") -> HostArray:
    dt = arr.dtype
    if dt in _NUMPY_CODES:
        return HostArray(arr, _NUMPY_CODES[dt], kind, name)
    if dt.name == "bfloat16":  # ml_dtypes
        return HostArray(arr.view(np.uint16), BFLOAT16, kind, name)
    raise TypeError(
        f"{name} must hold floating-point data (float16, bfloat16, float32 or float64); got dtype {dt}"
    )


def as_host_array(x: Any, name: str) -> HostArray:
    """Return a zero-copy host view of ``x`` with its dtype code and array kind.

    Raises
    ------
    ValueError
        For GPU arrays (until the CUDA backend exists).
    TypeError
        For non-floating dtypes or objects that are not arrays.
    """
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    if isinstance(x, np.ndarray):
        return _from_numpy(x, name)
    if _is_torch_tensor(x):
        return _from_torch(x, name)
    if hasattr(x, "__cuda_array_interface__") or type(x).__module__.split(".")[0] == "cupy":
        raise ValueError(GPU_NOT_YET.format(name=name))
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        device_type = int(x.__dlpack_device__()[0])
        if device_type != 1:  # kDLCPU
            raise ValueError(GPU_NOT_YET.format(name=name))
        try:
            return _from_numpy(np.from_dlpack(x), name)
        except (TypeError, BufferError, RuntimeError):
            pass  # e.g. bfloat16 that numpy cannot import: fall through to __array__
    if hasattr(x, "__array__") or isinstance(x, (list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object:
            raise TypeError(f"{name} could not be converted to a numeric array")
        return _from_numpy(arr, name)
    raise TypeError(f"{name} must be an array (numpy, torch, cupy or an array-protocol object); got {type(x).__name__}")


def check_matrix(h: HostArray, *, min_rows: int = 1, what: str = "(n_samples, n_features)") -> None:
    """Validate a 2-D input: ndim, non-empty, enough rows."""
    if h.array.ndim != 2:
        raise ValueError(f"{h.name} must be 2-D {what}; got shape {tuple(h.array.shape)}")
    rows, cols = h.array.shape
    if rows == 0 or cols == 0:
        raise ValueError(f"{h.name} is empty (shape {tuple(h.array.shape)}); need at least one row and one column")
    if rows < min_rows:
        raise ValueError(f"{h.name} has {rows} row(s); at least {min_rows} are needed")


def wrap_like(result: np.ndarray, like: HostArray) -> Any:
    """Return ``result`` as the caller's array type (zero-copy for torch)."""
    if like.kind == "torch":
        torch = _torch_module()
        return torch.from_numpy(np.ascontiguousarray(result))
    return result
