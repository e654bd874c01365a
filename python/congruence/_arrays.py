"""Array normalisation: numpy / torch / cupy / protocol objects to raw buffers, and back.

The kernels take raw pointers and strides, so this module only has to produce

* for host data, a numpy *view* of the caller's memory (no copy for numpy and CPU torch inputs,
  any strides) plus a dtype code the kernels understand (:class:`HostArray`), and a way to hand
  results back in the caller's array type (``numpy in -> numpy out``, ``torch in -> torch out``);
* for GPU data (torch CUDA tensors, cupy arrays, objects exposing ``__cuda_array_interface__`` or
  a DLPack CUDA device), a :class:`DeviceArray`: the device address, shape, strides in elements,
  dtype code, device index and stream, with the original object kept alive. Nothing is copied.

Nothing here moves data between host and GPU: host-only code paths reject GPU arrays with a clear
error, and mixed host/GPU inputs are refused by :func:`inputs_on_device` naming both arguments.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

# Element type codes shared with src/include/congruence/dtype.hpp.
FLOAT16, BFLOAT16, FLOAT32, FLOAT64 = 0, 1, 2, 3
_NUMPY_CODES = {np.dtype(np.float16): FLOAT16, np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64}
_CODE_NAMES = {FLOAT16: "float16", BFLOAT16: "bfloat16", FLOAT32: "float32", FLOAT64: "float64"}

_ITEMSIZE = {FLOAT16: 2, BFLOAT16: 2, FLOAT32: 4, FLOAT64: 8}

GPU_NOT_YET = (
    "{name} is a GPU array, but this code path runs on the host only. Move it to the host "
    "explicitly (e.g. tensor.cpu() or cupy.asnumpy(x)); congruence never copies between GPU and "
    "host silently."
)

#: DLPack device types that are CUDA device memory (kDLCUDA, kDLCUDAManaged).
DLPACK_CUDA_DEVICES = (2, 13)
DLPACK_CPU = 1


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


def _torch_cuda_index(t: Any) -> Optional[int]:
    """Device index of a CUDA tensor, None for any other device (a test hook patches this)."""
    dev = t.device
    if dev.type != "cuda":
        return None
    return int(dev.index) if dev.index is not None else int(_torch_module().cuda.current_device())


def _from_torch(x: Any, name: str) -> HostArray:
    torch = _torch_module()
    if x.device.type != "cpu":
        if _torch_cuda_index(x) is None:
            raise ValueError(
                f"{name} is a torch tensor on device '{x.device}'; congruence supports CPU and CUDA tensors. "
                "Move it explicitly (e.g. tensor.cpu()); congruence never copies between devices silently."
            )
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
        if device_type != DLPACK_CPU:
            if device_type in DLPACK_CUDA_DEVICES:
                raise ValueError(GPU_NOT_YET.format(name=name))
            raise ValueError(
                f"{name} lives on DLPack device type {device_type}; congruence supports host memory and "
                "CUDA devices"
            )
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


def check_matrix(h: "HostArray | DeviceArray", *, min_rows: int = 1, what: str = "(n_samples, n_features)") -> None:
    """Validate a 2-D input (host or device): ndim, non-empty, enough rows."""
    shape = tuple(h.shape)
    if len(shape) != 2:
        raise ValueError(f"{h.name} must be 2-D {what}; got shape {shape}")
    rows, cols = shape
    if rows == 0 or cols == 0:
        raise ValueError(f"{h.name} is empty (shape {shape}); need at least one row and one column")
    if rows < min_rows:
        raise ValueError(f"{h.name} has {rows} row(s); at least {min_rows} are needed")


def wrap_like(result: np.ndarray, like: HostArray) -> Any:
    """Return ``result`` as the caller's array type (zero-copy for torch)."""
    if like.kind == "torch":
        torch = _torch_module()
        return torch.from_numpy(np.ascontiguousarray(result))
    return result


# ------------------------------------------------------------------------------------ GPU arrays


@dataclass(frozen=True)
class DeviceArray:
    """A zero-copy description of a caller's GPU array.

    Attributes
    ----------
    ptr : int
        Device address of element ``[0, 0, ...]`` (strides may be negative).
    shape : tuple of int
    strides : tuple of int
        In elements, signed.
    code : int
        Element type code for the kernels (FLOAT16, BFLOAT16, FLOAT32, FLOAT64).
    device : int
        CUDA device index.
    kind : str
        ``"torch"``, ``"cupy"``, ``"cai"`` (a bare ``__cuda_array_interface__`` object) or
        ``"dlpack"`` (a bare DLPack producer): where it came from, which decides the array library
        of the results (torch -> torch; everything else -> cupy).
    name : str
        Argument name, for error messages.
    obj : object
        The original object (and, for DLPack, the capsule), kept alive while the array is in use.
    stream : int or None
        Stream handle the data was produced on as far as the interface says: torch's / cupy's
        current stream on the device, the ``stream`` entry of a ``__cuda_array_interface__``
        (None when absent: no synchronisation needed), None for DLPack (the producer has already
        ordered its work before the stream we passed to ``__dlpack__``).
    """

    ptr: int
    shape: tuple
    strides: tuple
    code: int
    device: int
    kind: str
    name: str
    obj: Any = field(default=None, repr=False, compare=False)
    stream: Optional[int] = None

    @property
    def dtype_name(self) -> str:
        return _CODE_NAMES[self.code]

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE[self.code]

    @property
    def ndim(self) -> int:
        return len(self.shape)


def itemsize_of(code: int) -> int:
    return _ITEMSIZE[code]


def _c_strides(shape: tuple) -> tuple:
    strides, step = [], 1
    for s in reversed(shape):
        strides.append(step)
        step *= max(int(s), 1)
    return tuple(reversed(strides))


def _cupy_module(required: bool = False):
    mod = sys.modules.get("cupy")
    if mod is None:
        try:
            import cupy as mod  # noqa: F811
        except Exception:  # ImportError, or a broken CUDA install raising at import
            mod = None
    if mod is None and required:
        raise RuntimeError("cupy is needed here but could not be imported")
    return mod


def _is_cupy_array(x: Any) -> bool:
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(x, getattr(cupy, "ndarray", ())):
        return True
    return type(x).__module__.split(".")[0] == "cupy" and hasattr(x, "__cuda_array_interface__")


def _torch_stream(index: int) -> int:
    """Handle of torch's current stream on a device (a test hook patches this)."""
    return int(_torch_module().cuda.current_stream(index).cuda_stream)


def _cupy_stream(index: int) -> int:
    """Handle of cupy's current stream on a device."""
    cupy = _cupy_module(required=True)
    with cupy.cuda.Device(index):
        return int(cupy.cuda.get_current_stream().ptr)


def _pointer_device(ptr: int) -> int:
    """CUDA device of a device pointer (bare ``__cuda_array_interface__`` objects carry none).

    Asks cupy when it is importable; otherwise assumes the current device (torch's, else 0)."""
    cupy = _cupy_module()
    if cupy is not None and ptr:
        try:
            return int(cupy.cuda.runtime.pointerGetAttributes(ptr).device)
        except Exception:
            pass
    torch = _torch_module()
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return int(torch.cuda.current_device())
        except Exception:
            pass
    return 0


def _float_code(dt: np.dtype, name: str) -> int:
    if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big"):
        raise TypeError(f"{name} must be little-endian floating-point data; got dtype {dt.str}")
    dt = dt.newbyteorder("=")
    if dt in _NUMPY_CODES:
        return _NUMPY_CODES[dt]
    if dt.name == "bfloat16":  # ml_dtypes
        return BFLOAT16
    raise TypeError(
        f"{name} must hold floating-point data (float16, bfloat16, float32 or float64); got dtype {dt}"
    )


def _device_from_torch(x: Any, name: str, index: int) -> DeviceArray:
    torch = _torch_module()
    t = x.detach()  # tensors that require grad are read without complaint
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()  # materialises the lazy negation (a device copy)
    codes = {torch.float16: FLOAT16, torch.bfloat16: BFLOAT16, torch.float32: FLOAT32, torch.float64: FLOAT64}
    if t.dtype not in codes:
        raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64); got {t.dtype}")
    return DeviceArray(
        ptr=int(t.data_ptr()), shape=tuple(int(s) for s in t.shape), strides=tuple(int(s) for s in t.stride()),
        code=codes[t.dtype], device=index, kind="torch", name=name, obj=t, stream=_torch_stream(index),
    )


def _device_from_cupy(x: Any, name: str) -> DeviceArray:
    code = _float_code(np.dtype(x.dtype), name)
    item = _ITEMSIZE[code]
    if any(s % item for s in x.strides):
        raise ValueError(f"{name} has strides {x.strides} that are not a multiple of its item size ({item} bytes)")
    index = int(x.device.id)
    return DeviceArray(
        ptr=int(x.data.ptr), shape=tuple(int(s) for s in x.shape), strides=tuple(int(s) // item for s in x.strides),
        code=code, device=index, kind="cupy", name=name, obj=x, stream=_cupy_stream(index),
    )


def _device_from_cai(x: Any, name: str) -> DeviceArray:
    cai = x.__cuda_array_interface__
    try:
        shape = tuple(int(s) for s in cai["shape"])
        typestr = cai["typestr"]
        ptr = cai["data"][0]
    except (KeyError, TypeError, IndexError) as exc:
        raise TypeError(f"{name} has a malformed __cuda_array_interface__ ({exc!r})") from None
    if cai.get("mask") is not None:
        raise ValueError(f"{name} is a masked GPU array (__cuda_array_interface__ 'mask'); masks are not supported")
    try:
        dt = np.dtype(typestr)
    except TypeError:
        raise TypeError(f"{name} must hold floating-point data (float16, bfloat16, float32 or float64); "
                        f"got typestr {typestr!r}") from None
    code = _float_code(dt, name)
    item = _ITEMSIZE[code]
    strides = cai.get("strides")
    if strides is None:
        el_strides = _c_strides(shape)
    else:
        strides = tuple(int(s) for s in strides)
        if len(strides) != len(shape):
            raise TypeError(f"{name} has a malformed __cuda_array_interface__ (strides {strides} for shape {shape})")
        if any(s % item for s in strides):
            raise ValueError(f"{name} has strides {strides} that are not a multiple of its item size ({item} bytes)")
        el_strides = tuple(s // item for s in strides)
    stream = cai.get("stream")
    ptr = int(ptr or 0)
    return DeviceArray(
        ptr=ptr, shape=shape, strides=el_strides, code=code, device=_pointer_device(ptr), kind="cai", name=name,
        obj=x, stream=None if stream is None else int(stream),
    )


# DLPack structures (dlpack.h), read through ctypes so that any producer works without a consumer
# library. The capsule is kept alive and never renamed, so the producer's capsule destructor frees
# the tensor when we drop it (we never take ownership).
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32), ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class _DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", _DLPackVersion), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p),
                ("flags", ctypes.c_uint64), ("dl_tensor", _DLTensor)]


def _capsule_pointer(capsule: Any, name: bytes) -> Optional[int]:
    api = ctypes.pythonapi
    api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_IsValid.restype = ctypes.c_int
    if not api.PyCapsule_IsValid(capsule, name):
        return None
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    return int(api.PyCapsule_GetPointer(capsule, name))


_DLPACK_CODES = {(2, 16): FLOAT16, (2, 32): FLOAT32, (2, 64): FLOAT64, (4, 16): BFLOAT16}


def dlpack_stream_argument(handle: int) -> int:
    """The ``stream=`` value for ``__dlpack__`` on CUDA: 1 means the legacy default stream."""
    return 1 if handle == 0 else int(handle)


def _device_from_dlpack(x: Any, name: str, stream: Optional[int]) -> DeviceArray:
    if stream is None:
        capsule = x.__dlpack__()  # the producer then assumes the legacy default stream
    else:
        try:
            capsule = x.__dlpack__(stream=dlpack_stream_argument(stream))
        except TypeError:  # an older producer without the stream keyword
            capsule = x.__dlpack__()
    address = _capsule_pointer(capsule, b"dltensor")
    if address is not None:
        t = _DLManagedTensor.from_address(address).dl_tensor
    else:
        address = _capsule_pointer(capsule, b"dltensor_versioned")
        if address is None:
            raise TypeError(f"{name}.__dlpack__() did not return a DLPack capsule")
        t = _DLManagedTensorVersioned.from_address(address).dl_tensor
    if t.device.device_type not in DLPACK_CUDA_DEVICES:
        raise ValueError(f"{name} claims a CUDA DLPack device but its tensor is on device type {t.device.device_type}")
    key = (int(t.dtype.code), int(t.dtype.bits))
    if key not in _DLPACK_CODES or t.dtype.lanes != 1:
        raise TypeError(f"{name} must hold floating-point data (float16, bfloat16, float32 or float64); got DLPack "
                        f"dtype code {t.dtype.code}, {t.dtype.bits} bits, {t.dtype.lanes} lane(s)")
    ndim = int(t.ndim)
    shape = tuple(int(t.shape[i]) for i in range(ndim))
    strides = _c_strides(shape) if not t.strides else tuple(int(t.strides[i]) for i in range(ndim))
    ptr = int(t.data or 0) + int(t.byte_offset)
    return DeviceArray(ptr=ptr, shape=shape, strides=strides, code=_DLPACK_CODES[key], device=int(t.device.device_id),
                       kind="dlpack", name=name, obj=(x, capsule), stream=None)


def _dlpack_device_type(x: Any) -> Optional[tuple]:
    if not hasattr(x, "__dlpack_device__"):
        return None
    try:
        dev = x.__dlpack_device__()
        return int(dev[0]), int(dev[1])
    except Exception:
        return None


def is_device(x: Any) -> bool:
    """True for GPU arrays the CUDA engine reads: torch CUDA tensors, cupy arrays, objects with
    ``__cuda_array_interface__`` or a DLPack CUDA device. Never copies or imports the data."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, int, float, str)):
        return False
    if _is_torch_tensor(x):
        return _torch_cuda_index(x) is not None
    if _is_cupy_array(x) or hasattr(x, "__cuda_array_interface__"):
        return True
    dev = _dlpack_device_type(x)
    return dev is not None and dev[0] in DLPACK_CUDA_DEVICES


def device_hint(x: Any) -> Optional[int]:
    """The device index of a GPU array when its interface tells it without reading the data
    (torch, cupy, DLPack); None for a bare ``__cuda_array_interface__`` object."""
    if _is_torch_tensor(x):
        return _torch_cuda_index(x)
    if _is_cupy_array(x):
        return int(x.device.id)
    if hasattr(x, "__cuda_array_interface__"):
        return None
    dev = _dlpack_device_type(x)
    return None if dev is None else dev[1]


def source_kind(x: Any) -> str:
    """"torch", "cupy", "cai" or "dlpack" for a GPU array (see :class:`DeviceArray`)."""
    if _is_torch_tensor(x):
        return "torch"
    if _is_cupy_array(x):
        return "cupy"
    if hasattr(x, "__cuda_array_interface__"):
        return "cai"
    return "dlpack"


def as_device_array(x: Any, name: str, stream: Optional[int] = None) -> DeviceArray:
    """Return a zero-copy :class:`DeviceArray` for a GPU array.

    ``stream`` is the stream handle the caller will work on; a bare DLPack producer is asked to
    order its pending work before it (``__dlpack__(stream=...)``).

    Raises
    ------
    TypeError
        For non-floating dtypes, or objects that are not GPU arrays.
    """
    if _is_torch_tensor(x):
        index = _torch_cuda_index(x)
        if index is None:
            raise TypeError(f"{name} is not a CUDA tensor (device '{x.device}')")
        return _device_from_torch(x, name, index)
    if _is_cupy_array(x):
        return _device_from_cupy(x, name)
    if hasattr(x, "__cuda_array_interface__"):
        return _device_from_cai(x, name)
    dev = _dlpack_device_type(x)
    if dev is not None and dev[0] in DLPACK_CUDA_DEVICES and hasattr(x, "__dlpack__"):
        return _device_from_dlpack(x, name, stream)
    raise TypeError(f"{name} is not a GPU array (torch CUDA tensor, cupy array, __cuda_array_interface__ or "
                    f"DLPack CUDA object); got {type(x).__name__}")


def as_array(x: Any, name: str, stream: Optional[int] = None) -> "HostArray | DeviceArray":
    """:class:`DeviceArray` for GPU arrays, else the :class:`HostArray` of :func:`as_host_array`."""
    if is_device(x):
        return as_device_array(x, name, stream)
    return as_host_array(x, name)


def is_dask_array(x: Any) -> bool:
    """A dask collection (checked by type, so dask is never imported here)."""
    return x is not None and type(x).__module__.startswith("dask.") and hasattr(x, "__dask_graph__")


def inputs_on_device(**named: Any) -> bool:
    """True when the (non-None) arrays are all on a GPU, False when all are on the host.

    Raises
    ------
    ValueError
        When some are on the host and some on a GPU; the message names both arguments.
    """
    host, device = [], []
    for name, x in named.items():
        if x is not None:
            (device if is_device(x) else host).append(name)
    if host and device:
        first_host, first_dev = host[0], device[0]
        order = list(named)
        if order.index(first_host) < order.index(first_dev):
            what = f"{first_host} is a host array but {first_dev} is a GPU array"
        else:
            what = f"{first_dev} is a GPU array but {first_host} is a host array"
        raise ValueError(
            f"{what}; all inputs must be on the same device. Move one of them explicitly (e.g. "
            "tensor.cuda() / tensor.cpu(), cupy.asarray(x) / cupy.asnumpy(x)); congruence never copies "
            "between GPU and host silently."
        )
    return bool(device)
