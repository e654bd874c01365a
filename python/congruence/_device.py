"""GPU memory and streams through the caller's own array library (DESIGN.md §1).

Every device buffer the CUDA path needs (panels, statistics vectors, scratch, outputs) is created
here with torch or cupy, on the inputs' device, so that device memory stays in the caller's
allocator (torch's caching allocator, cupy's memory pool) and results come back as that library's
arrays: torch in -> torch out; cupy, ``__cuda_array_interface__`` or DLPack in -> cupy out (torch
out when cupy is not importable but torch has CUDA).

All work runs on the *execution stream*: the current stream of that library on the device
(``torch.cuda.current_stream(d)`` / ``cupy.cuda.get_current_stream()``), which is also the stream
the library allocates and computes on, so buffers, kernels and the post-processing done with
torch/cupy operations are ordered without any host synchronisation. Inputs produced on another
stream (a cupy array passed with a torch tensor, a ``__cuda_array_interface__`` that names its
stream) are waited on with an event, never with a host synchronisation.

Debug hook: with ``CONGRUENCE_CUDA_POISON=1`` in the environment, :meth:`Context.empty` fills
every buffer with NaN (floating types) or -7 (integers), so tests can check that nothing the
kernels should have written survives.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from . import _arrays
from ._xp import CupyNS, TorchNS

POISON_ENV = "CONGRUENCE_CUDA_POISON"
#: Fill values of poisoned buffers, by element type name.
POISON_INT = -7
_BF16_NAN_BITS = 0x7FC0


def poison_enabled() -> bool:
    return os.environ.get(POISON_ENV, "") not in ("", "0")


def _torch_device(index: int) -> Any:
    """The torch device for CUDA device ``index`` (the simulation tests patch this to the CPU)."""
    import torch

    return torch.device("cuda", index)


def output_library(kind: str, name: str) -> str:
    """The array library of the results for inputs of a given source kind."""
    if kind in ("torch", "cupy"):
        return kind
    if _arrays._cupy_module() is not None:
        return "cupy"
    torch = _arrays._torch_module()
    if torch is None:
        try:
            import torch  # noqa: F811
        except ImportError:
            torch = None
    if torch is not None and torch.cuda.is_available():
        return "torch"
    what = "__cuda_array_interface__" if kind == "cai" else "DLPack"
    raise RuntimeError(
        f"{name} is a {what} GPU array; congruence returns results for such inputs as cupy arrays (or torch "
        "tensors when cupy is missing), but neither cupy nor torch with CUDA could be imported. Install "
        "cupy-cuda12x, or pass a torch CUDA tensor or a cupy array."
    )


def free_device_memory(library: str, device: int) -> int:
    """Bytes of device memory the call may use: free memory plus what the library's own pool
    holds unused (the simulation tests patch this)."""
    if library == "torch":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        pooled = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, pooled))
    import cupy

    with cupy.cuda.Device(device):
        free, _total = cupy.cuda.runtime.memGetInfo()
        pooled = cupy.get_default_memory_pool().free_bytes()
    return int(free + pooled)


def _wait_torch(device: int, producer: int) -> None:
    import torch

    dev = torch.device("cuda", device)
    src = torch.cuda.default_stream(dev) if producer == 0 else torch.cuda.ExternalStream(producer, device=dev)
    event = torch.cuda.Event()
    event.record(src)
    torch.cuda.current_stream(dev).wait_event(event)


def _wait_cupy(device: int, producer: int) -> None:
    import cupy

    with cupy.cuda.Device(device):
        src = cupy.cuda.Stream.null if producer == 0 else cupy.cuda.ExternalStream(producer)
        event = cupy.cuda.Event(disable_timing=True)
        event.record(src)
        cupy.cuda.get_current_stream().wait_event(event)


@dataclass
class Context:
    """Where and how one call runs: device, result library, execution stream."""

    device: int
    library: str  # "torch" | "cupy"
    stream: int
    xp: Any

    # ---------------------------------------------------------------------------- allocation
    def empty(self, shape: Sequence[int], dtype: str) -> Any:
        """Uninitialised device buffer (poisoned under CONGRUENCE_CUDA_POISON=1)."""
        arr = self.xp.empty(shape, dtype)
        if poison_enabled():
            self.poison(arr, dtype)
        return arr

    def zeros(self, shape: Sequence[int], dtype: str = "float64") -> Any:
        return self.xp.zeros(shape, dtype)

    def poison(self, arr: Any, dtype: str) -> None:
        if dtype in ("float16", "float32", "float64") or (dtype == "bfloat16" and self.library == "torch"):
            self.xp.fill(arr, float("nan"))
        elif dtype in ("bfloat16", "uint16"):
            self.xp.fill(arr, _BF16_NAN_BITS)
        elif dtype == "uint8":
            self.xp.fill(arr, 0xA5)
        elif dtype == "bool":
            self.xp.fill(arr, True)
        else:
            self.xp.fill(arr, POISON_INT)

    def address(self, arr: Optional[Any]) -> int:
        """Device address of a buffer (0 for None, the kernels' "absent")."""
        return 0 if arr is None else self.xp.address(arr)

    def free_memory(self) -> int:
        return free_device_memory(self.library, self.device)

    # ---------------------------------------------------------------------------- ordering
    def wait_for(self, producer: Optional[int]) -> None:
        """Make the execution stream wait for work queued on stream handle ``producer``."""
        if producer is None or producer == self.stream:
            return
        if self.library == "torch":
            _wait_torch(self.device, producer)
        else:
            _wait_cupy(self.device, producer)

    @contextlib.contextmanager
    def activate(self) -> Iterator["Context"]:
        """Make the device current for the library (cupy operations need it)."""
        with self.xp.context():
            yield self


def make_context(kind: str, device: int, name: str) -> Context:
    """The context for inputs whose first GPU argument (``name``) has source ``kind``."""
    library = output_library(kind, name)
    if library == "torch":
        xp = TorchNS(_torch_device(device))
        stream = _arrays._torch_stream(device)
    else:
        xp = CupyNS(device)
        stream = _arrays._cupy_stream(device)
    return Context(device=int(device), library=library, stream=int(stream), xp=xp)


def empty(shape: Sequence[int], dtype: str, like: Context) -> Any:
    """``like.empty(shape, dtype)``: a device buffer in the caller's library."""
    return like.empty(shape, dtype)


def zeros(shape: Sequence[int], dtype: str, like: Context) -> Any:
    return like.zeros(shape, dtype)


def address(arr: Any) -> int:
    """Device address of a torch tensor or cupy array."""
    if hasattr(arr, "data_ptr"):
        return int(arr.data_ptr())
    return int(arr.data.ptr)
