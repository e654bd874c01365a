"""Host-side tests of the CUDA path: everything that needs no GPU.

Planning (padding, top-k segments and scratch, the threshold capacity protocol, CrossStats
chunks), precision resolution and validation, DeviceArray parsing from fake
``__cuda_array_interface__`` and DLPack-CUDA objects (real DLPack capsules built with ctypes),
host/GPU mixing errors, the behaviour without a usable CUDA device, the poison hook and the array
namespace. The end-to-end GPU path against the NumPy stand-in of the kernels is in
tests/test_cuda_engine.py (backend "sim").
"""

import ctypes

import numpy as np
import pytest

import congruence as cg
from congruence import _arrays as A
from congruence import _cuda_engine as CE
from congruence import _device as D
from congruence import _engine as E
from congruence._xp import NUMPY, TorchNS

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)
X = RNG.standard_normal((20, 5))
Y = RNG.standard_normal((20, 4))

# ============================================================================ fakes


class FakeCAI:
    """A bare __cuda_array_interface__ v3 object (numba-like); never read."""

    def __init__(self, shape=(20, 5), typestr="<f4", ptr=0x7F0000001000, strides=None, stream=None, **extra):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (ptr, False), "version": 3,
                                         "strides": strides, **extra}
        if stream is not None:
            self.__cuda_array_interface__["stream"] = stream

    def __array__(self, *a, **k):  # pragma: no cover - must never be used
        raise AssertionError("a GPU array must not be copied to the host")


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32), ("dtype", _DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _DLManaged(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class _DLVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _DLManagedVersioned(ctypes.Structure):
    _fields_ = [("version", _DLVersion), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p),
                ("flags", ctypes.c_uint64), ("dl_tensor", _DLTensor)]


_NAME = b"dltensor"
_NAME_V = b"dltensor_versioned"
_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class FakeDLPackCUDA:
    """A DLPack producer on kDLCUDA whose capsule describes made-up device memory."""

    def __init__(self, shape=(20, 5), strides=None, dtype=(2, 32, 1), device=(2, 0), ptr=0x7F0000002000,
                 byte_offset=0, versioned=False, accepts_stream=True):
        self.shape, self.strides, self.dtype, self.device = shape, strides, dtype, device
        self.ptr, self.byte_offset, self.versioned, self.accepts_stream = ptr, byte_offset, versioned, accepts_stream
        self.streams = []
        self._keep = []

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None, **kw):
        if not self.accepts_stream and stream is not None:
            raise TypeError("unexpected keyword 'stream'")
        self.streams.append(stream)
        nd = len(self.shape)
        shape = (ctypes.c_int64 * nd)(*self.shape)
        strides = None if self.strides is None else (ctypes.c_int64 * nd)(*self.strides)
        t = _DLTensor(self.ptr, _DLDevice(*self.device), nd, _DLDataType(*self.dtype),
                      ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64)),
                      None if strides is None else ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64)),
                      self.byte_offset)
        mt = _DLManagedVersioned(_DLVersion(1, 0), None, None, 0, t) if self.versioned else _DLManaged(t, None, None)
        self._keep += [shape, strides, mt]
        return _PyCapsule_New(ctypes.addressof(mt), _NAME_V if self.versioned else _NAME, None)

    def __array__(self, *a, **k):  # pragma: no cover
        raise AssertionError("a GPU array must not be copied to the host")


# ============================================================================ planning


def test_padding_and_panel_shapes():
    assert [CE.padded(n, 128) for n in (1, 127, 128, 129, 256, 257)] == [128, 128, 128, 256, 256, 384]
    assert [CE.padded(n, 64) for n in (1, 63, 64, 65)] == [64, 64, 64, 128]
    # feature panel: rows = features (to 128), K = samples (to 64)
    assert CE.feature_panel_shape(n_samples=1000, n_features=300) == (384, 1024)
    assert CE.feature_panel_shape(n_samples=2, n_features=1) == (128, 64)
    # point panel: rows = points, K = dims
    assert CE.point_panel_shape(n_points=300, n_dims=3) == (384, 64)
    assert CE.panel_nbytes(384, 1024, "float32") == 384 * 1024 * 4
    assert CE.panel_nbytes(384, 1024, "bf16") == 384 * 1024 * 2
    assert CE.panel_nbytes(384, 1024, "float64") == 384 * 1024 * 8
    assert [CE.panel_code(p) for p in CE.GPU_PRECISIONS] == [A.FLOAT32, A.FLOAT32, A.FLOAT32, A.BFLOAT16, A.FLOAT64]
    assert [CE.value_code(p) for p in CE.GPU_PRECISIONS] == [A.FLOAT32] * 4 + [A.FLOAT64]


@pytest.mark.parametrize("n_rows, n_cols, sms, expected", [
    (10_000, 10_000, 132, 4),     # 79 row tiles: 4 segments give 316 >= 264 blocks (3 give 237)
    (100_000, 10_000, 132, 1),    # enough row tiles already
    (128, 100_000, 132, 264),     # one row tile: 2 x SMs segments
    (128, 1000, 132, 8),          # ...but never more than the column tiles (ceil(1000/128) = 8)
    (1, 1, 132, 1),
    (300, 129, 4, 2),             # 3 row tiles, want ceil(8/3) = 3, only 2 column tiles
    (256, 5000, 0, 1),            # a bogus SM count still gives >= 1
])
def test_topk_segments(n_rows, n_cols, sms, expected):
    s = CE.topk_segments(n_rows, n_cols, sms)
    assert s == expected
    row_tiles, col_tiles = -(-n_rows // 128), -(-n_cols // 128)
    assert 1 <= s <= col_tiles
    if s < col_tiles:
        assert row_tiles * s >= 2 * max(sms, 1)


def test_topk_scratch_sizes():
    # the kernels keep one list per segment even for one segment: always passed, always budgeted
    assert CE.topk_scratch_shape(1000, 8, 1) == (1, 1024, 8)
    assert CE.topk_scratch_nbytes(1000, 8, 1, "float32") == 1024 * 8 * 8
    assert CE.topk_scratch_shape(1000, 8, 3) == (3, 1024, 8)  # rows rounded up to whole row tiles
    assert CE.topk_scratch_nbytes(1000, 8, 3, "float32") == 3 * 1024 * 8 * (4 + 4)
    assert CE.topk_scratch_nbytes(1000, 8, 3, "float64") == 3 * 1024 * 8 * (8 + 4)
    assert CE.topk_scratch_shape(100, 256, 2)[0] * CE.topk_scratch_shape(100, 256, 2)[1] >= 2 * 100
    # halved until the scratch fits
    full = CE.topk_segments(128, 100_000, 132)
    assert CE.plan_topk_segments(128, 100_000, 256, 132, "float32", 1 << 40) == full
    small = CE.plan_topk_segments(128, 100_000, 256, 132, "float32", 10 * 128 * 256 * 8)
    assert 1 <= small < full and CE.topk_scratch_nbytes(128, 256, small, "float32") <= 10 * 128 * 256 * 8
    assert CE.plan_topk_segments(128, 100_000, 256, 132, "float32", 0) == 1
    assert CE.topk_output_nbytes(10, 3, "float32") == 10 * 3 * 12


def test_threshold_capacity():
    assert CE.threshold_capacity(10**9, 10**9) == CE.THRESHOLD_INITIAL_CAPACITY
    assert CE.threshold_capacity(5, 10**9) == 5
    assert CE.threshold_capacity(10**9, 17) == 17
    assert CE.threshold_capacity(0, 10) == 0
    assert CE.threshold_capacity(10, -3) == 0


class FakeRun:
    """Stands in for one threshold launch: `count` pairs qualify whatever the capacity."""

    def __init__(self, count):
        self.count, self.capacities = count, []

    def __call__(self, capacity):
        self.capacities.append(capacity)
        return self.count, ("buffers", capacity)


def test_collect_pairs_single_launch_when_it_fits():
    run = FakeRun(100)
    count, bufs = CE.collect_pairs(run, max_pairs=10**6, capacity=1000, threshold=0.5, fixed_bytes=0, budget=1 << 30)
    assert (count, bufs, run.capacities) == (100, ("buffers", 1000), [1000])


def test_collect_pairs_retries_once_with_the_exact_count():
    run = FakeRun(5000)
    count, bufs = CE.collect_pairs(run, max_pairs=10**6, capacity=1000, threshold=0.5, fixed_bytes=0, budget=1 << 30)
    assert (count, bufs, run.capacities) == (5000, ("buffers", 5000), [1000, 5000])


def test_collect_pairs_exactly_at_capacity_and_zero():
    assert CE.collect_pairs(FakeRun(1000), max_pairs=1000, capacity=1000, threshold=0.1, fixed_bytes=0,
                            budget=1 << 30)[0] == 1000
    run = FakeRun(0)
    assert CE.collect_pairs(run, max_pairs=0, capacity=0, threshold=0.9, fixed_bytes=0, budget=1 << 30)[0] == 0
    assert run.capacities == [0]


def test_collect_pairs_refuses_beyond_max_pairs_with_the_cpu_message():
    run = FakeRun(11)
    with pytest.raises(cg.MemoryBudgetError, match=r"more than max_pairs=10 pairs reach threshold=0.5; raise the threshold"):
        CE.collect_pairs(run, max_pairs=10, capacity=10, threshold=0.5, fixed_bytes=0, budget=1 << 30)
    assert run.capacities == [10]  # no second launch
    with pytest.raises(cg.MemoryBudgetError, match="more than max_pairs=0"):
        CE.collect_pairs(FakeRun(1), max_pairs=0, capacity=0, threshold=0.5, fixed_bytes=0, budget=1 << 30)


def test_collect_pairs_refuses_when_the_pairs_exceed_the_budget():
    run = FakeRun(10_000)
    with pytest.raises(cg.MemoryBudgetError, match=r"10000 pairs reach threshold=0.5; holding them needs .* memory_limit is"):
        CE.collect_pairs(run, max_pairs=10**6, capacity=100, threshold=0.5, fixed_bytes=1000, budget=100_000)
    assert run.capacities == [100]


def test_cross_chunk_rows():
    assert CE.cross_chunk_rows(5000, 100, 50, "float32", 1 << 30) == 1024
    assert CE.cross_chunk_rows(500, 100, 50, "float32", 1 << 30) == 500
    assert CE.cross_chunk_rows(50_000, 100, 50, "float64", 1 << 30) == 16384
    # limited by memory, in multiples of 64 rows: (128 + 128) rows x 4 bytes per sample
    assert CE.cross_chunk_rows(5000, 100, 50, "float32", 256 * 4 * 200) == 192
    with pytest.raises(cg.MemoryBudgetError, match="CrossStats needs at least"):
        CE.cross_chunk_rows(5000, 100, 50, "float32", 1000)


# ============================================================================ precision


def test_gpu_precision_resolution():
    assert CE.GPU_PRECISIONS == ("float32", "tf32", "3xtf32", "bf16", "float64")
    calls = []

    def default():
        calls.append(1)
        return 2

    assert CE.resolve_precision(None, [A.FLOAT64, A.FLOAT64], default) == "float64"
    assert calls == []  # no device query when every input is float64
    assert CE.resolve_precision(None, [A.FLOAT64, A.FLOAT32], default) == "3xtf32"
    assert CE.resolve_precision(None, [A.BFLOAT16], lambda: 0) == "float32"
    for p in CE.GPU_PRECISIONS:
        assert CE.resolve_precision(p, [A.FLOAT16], default) == p
        assert CE.GPU_PRECISIONS[CE.precision_code(p)] == p
    with pytest.raises(ValueError, match=r"precision must be one of 'float32', 'tf32', '3xtf32', 'bf16', 'float64'; got 'fp8'"):
        CE.resolve_precision("fp8", [A.FLOAT32], default)
    with pytest.raises(ValueError, match="precision must be one of"):
        CE.resolve_precision(np.float32, [A.FLOAT32], default)


@pytest.mark.parametrize("precision", ["tf32", "3xtf32", "bf16"])
def test_cpu_rejects_gpu_only_precisions(precision):
    msg = rf"precision='{precision}' needs CUDA inputs \(torch CUDA tensors or cupy arrays\)"
    with pytest.raises(ValueError, match=msg):
        cg.correlation(X, precision=precision)
    with pytest.raises(ValueError, match=msg):
        cg.topk_correlation(X, Y, 2, precision=precision)
    with pytest.raises(ValueError, match=msg):
        cg.max_correlation(X, precision=precision)
    with pytest.raises(ValueError, match=msg):
        cg.correlation_pairs(X, Y, 0.5, precision=precision)
    with pytest.raises(ValueError, match=msg):
        cg.knn(X, k=2, precision=precision)
    with pytest.raises(ValueError, match=msg):
        cg.correlation(torch.from_numpy(X), precision=precision)  # CPU tensors are host inputs
    cs = cg.CrossStats(precision=precision)  # accepted: the device is known at the first batch
    with pytest.raises(ValueError, match=msg):
        cs.update(X, Y)
    assert cs.n_samples == 0


def test_cpu_precision_errors_unchanged():
    with pytest.raises(ValueError, match=r"precision must be one of 'float32', 'float64'; got 'float16'"):
        cg.correlation(X, precision="float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        cg.CrossStats(precision="bfloat16")


def test_k_limit_message():
    CE.check_k(256)
    with pytest.raises(ValueError, match=r"k=257 exceeds the CUDA engine's maximum of 256"):
        CE.check_k(257)


# ============================================================================ DeviceArray parsing


def test_cai_parsing_contiguous():
    d = A.as_device_array(FakeCAI(shape=(20, 5), typestr="<f4"), "X")
    assert isinstance(d, A.DeviceArray)
    assert (d.ptr, d.shape, d.strides, d.code, d.kind, d.name) == (0x7F0000001000, (20, 5), (5, 1), A.FLOAT32, "cai", "X")
    assert d.stream is None and d.device == 0 and d.itemsize == 4 and d.dtype_name == "float32"
    assert A.as_device_array(FakeCAI(typestr="<f8"), "X").code == A.FLOAT64
    assert A.as_device_array(FakeCAI(typestr="<f2"), "X").code == A.FLOAT16


def test_cai_parsing_strides_in_bytes_and_stream():
    # a transposed float64 view: shape (20, 5) with byte strides (8, 160)
    d = A.as_device_array(FakeCAI(shape=(20, 5), typestr="<f8", strides=(8, 160), stream=12345), "Y")
    assert d.strides == (1, 20) and d.stream == 12345 and d.name == "Y"
    # negative and zero (broadcast) strides are passed through, signed
    d = A.as_device_array(FakeCAI(shape=(20, 5), typestr="<f4", strides=(-20, 0)), "X")
    assert d.strides == (-5, 0)
    # legacy default stream (1) is a stream handle like any other
    assert A.as_device_array(FakeCAI(stream=1), "X").stream == 1


def test_cai_parsing_errors():
    with pytest.raises(TypeError, match=r"X must hold floating-point data .* got dtype int32"):
        A.as_device_array(FakeCAI(typestr="<i4"), "X")
    with pytest.raises(TypeError, match=r"Y must be little-endian"):
        A.as_device_array(FakeCAI(typestr=">f4"), "Y")
    with pytest.raises(ValueError, match=r"X has strides \(6, 4\) that are not a multiple of its item size"):
        A.as_device_array(FakeCAI(typestr="<f4", strides=(6, 4)), "X")
    with pytest.raises(ValueError, match="masked GPU array"):
        A.as_device_array(FakeCAI(mask=object()), "X")
    bad = FakeCAI()
    del bad.__cuda_array_interface__["typestr"]
    with pytest.raises(TypeError, match="malformed __cuda_array_interface__"):
        A.as_device_array(bad, "X")


def test_dlpack_parsing():
    fake = FakeDLPackCUDA(shape=(20, 5), dtype=(2, 32, 1), device=(2, 3), ptr=0x7F0000002000, byte_offset=64)
    assert A.is_device(fake) and A.device_hint(fake) == 3 and A.source_kind(fake) == "dlpack"
    d = A.as_device_array(fake, "X", stream=0)
    assert (d.ptr, d.shape, d.strides, d.code, d.device, d.kind) == (0x7F0000002000 + 64, (20, 5), (5, 1), A.FLOAT32, 3,
                                                                      "dlpack")
    assert fake.streams == [1]  # handle 0 (legacy default stream) is passed as 1, per the DLPack protocol
    A.as_device_array(fake, "X", stream=0xABC)
    assert fake.streams[-1] == 0xABC
    A.as_device_array(fake, "X")  # no stream: the producer assumes the legacy default stream
    assert fake.streams[-1] is None
    # element strides, negative ones included; bfloat16 and float64
    d = A.as_device_array(FakeDLPackCUDA(shape=(4, 6), strides=(-1, 4), dtype=(4, 16, 1)), "Y", stream=0)
    assert d.strides == (-1, 4) and d.code == A.BFLOAT16
    assert A.as_device_array(FakeDLPackCUDA(dtype=(2, 64, 1)), "X", stream=0).code == A.FLOAT64
    assert A.as_device_array(FakeDLPackCUDA(dtype=(2, 16, 1)), "X", stream=0).code == A.FLOAT16
    # a versioned capsule (DLPack >= 1.0) and a producer without the stream keyword
    d = A.as_device_array(FakeDLPackCUDA(versioned=True, shape=(7, 2)), "X", stream=0)
    assert d.shape == (7, 2) and d.strides == (2, 1)
    old = FakeDLPackCUDA(accepts_stream=False)
    assert A.as_device_array(old, "X", stream=5).shape == (20, 5) and old.streams == [None]
    # the object stays alive with the capsule
    assert d.obj[1].__class__.__name__ == "PyCapsule"


def test_dlpack_parsing_errors():
    with pytest.raises(TypeError, match=r"X must hold floating-point data .* DLPack dtype code 0, 32 bits"):
        A.as_device_array(FakeDLPackCUDA(dtype=(0, 32, 1)), "X", stream=0)
    with pytest.raises(TypeError, match="lane"):
        A.as_device_array(FakeDLPackCUDA(dtype=(2, 32, 4)), "X", stream=0)

    class NotACapsule(FakeDLPackCUDA):
        def __dlpack__(self, stream=None):
            return object()

    with pytest.raises(TypeError, match="did not return a DLPack capsule"):
        A.as_device_array(NotACapsule(), "X", stream=0)


def test_is_device_and_kinds():
    assert not A.is_device(X) and not A.is_device(torch.from_numpy(X)) and not A.is_device(None)
    assert not A.is_device([[1.0]]) and not A.is_device(3.0)
    assert A.is_device(FakeCAI()) and A.is_device(FakeDLPackCUDA())
    assert not A.is_device(FakeDLPackCUDA(device=(1, 0)))  # a CPU DLPack producer

    class Rocm(FakeDLPackCUDA):
        pass

    assert not A.is_device(Rocm(device=(10, 0)))
    with pytest.raises(ValueError, match="DLPack device type 10"):
        cg.correlation(Rocm(device=(10, 0)))
    assert A.source_kind(FakeCAI()) == "cai" and A.source_kind(torch.zeros(1)) == "torch"
    assert A.device_hint(FakeCAI()) is None
    h = A.as_array(X, "X")
    assert isinstance(h, A.HostArray)
    assert isinstance(A.as_array(FakeCAI(), "X"), A.DeviceArray)


def test_host_paths_still_reject_gpu_arrays():
    with pytest.raises(ValueError, match=r"X is a GPU array, but this code path runs on the host only"):
        A.as_host_array(FakeCAI(), "X")


# ============================================================================ mixing and availability


FEATURE_CALLS = {
    "correlation": lambda a, b: cg.correlation(a, b),
    "topk_correlation": lambda a, b: cg.topk_correlation(a, b, 2),
    "max_correlation": lambda a, b: cg.max_correlation(a, b),
    "correlation_pairs": lambda a, b: cg.correlation_pairs(a, b, 0.5),
    "CrossStats.update": lambda a, b: cg.CrossStats().update(a, b),
}


@pytest.mark.parametrize("fn", list(FEATURE_CALLS))
@pytest.mark.parametrize("fake", [FakeCAI, FakeDLPackCUDA])
def test_mixed_inputs_name_both_arguments(fn, fake):
    call = FEATURE_CALLS[fn]
    with pytest.raises(ValueError, match=r"X is a host array but Y is a GPU array; all inputs must be on the same device"):
        call(X, fake())
    with pytest.raises(ValueError, match=r"X is a GPU array but Y is a host array"):
        call(fake(), Y)
    with pytest.raises(ValueError, match=r"X is a GPU array but Y is a host array"):
        call(fake(), torch.from_numpy(Y))  # CPU tensors are host arrays


def test_mixed_inputs_knn():
    with pytest.raises(ValueError, match=r"P is a host array but Q is a GPU array"):
        cg.knn(X, FakeCAI())
    with pytest.raises(ValueError, match=r"P is a GPU array but Q is a host array"):
        cg.knn(FakeDLPackCUDA(), X)


needs_no_cuda = pytest.mark.skipif(cg.cuda_available(), reason="checks the behaviour without a usable CUDA device")


@needs_no_cuda
@pytest.mark.parametrize("fake", [FakeCAI, FakeDLPackCUDA])
def test_gpu_input_without_usable_cuda_says_why(fake):
    reason = cg.info()["cuda"]["reason"]
    assert reason
    calls = [lambda g: cg.correlation(g), lambda g: cg.topk_correlation(g, k=2), lambda g: cg.max_correlation(g),
             lambda g: cg.correlation_pairs(g, None, 0.5), lambda g: cg.knn(g, k=2), lambda g: cg.column_stats(g),
             lambda g: cg.CrossStats().update(g, g), lambda g: cg.correlation(g, g)]
    for call in calls:
        g = fake()
        with pytest.raises(CE.CudaUnavailableError) as info:
            call(g)
        msg = str(info.value)
        assert "CUDA backend is not available" in msg and reason in msg
        assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
        if isinstance(g, FakeDLPackCUDA):
            assert g.streams == []  # never consumed


def test_argument_errors_come_before_the_device():
    g = FakeCAI()
    with pytest.raises(ValueError, match="metric must be one of"):
        cg.correlation(g, metric="spearman")
    with pytest.raises(ValueError, match="zero_var must be one of"):
        cg.correlation(g, zero_var="ignore")
    with pytest.raises(ValueError, match=r"precision must be one of 'float32', 'tf32', '3xtf32', 'bf16', 'float64'"):
        cg.correlation(g, precision="float16")
    with pytest.raises(ValueError, match="axis must be 0 or 1"):
        cg.topk_correlation(g, axis=2)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        cg.correlation_pairs(g, None, float("nan"))
    with pytest.raises(ValueError, match="max_pairs must be a non-negative integer"):
        cg.correlation_pairs(g, None, 0.5, max_pairs=-1)
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        cg.correlation(g, num_threads=0)
    with pytest.raises(ValueError, match="memory_limit must be a positive number"):
        cg.knn(g, memory_limit=-1)
    with pytest.raises(ValueError, match="metric must be one of 'sqeuclidean'"):
        cg.knn(g, metric="pearson")


def test_load_reports_missing_symbols(monkeypatch):
    import sys
    import types

    from congruence import _info

    fake = types.ModuleType("congruence._cuda")
    fake.query = lambda: {"usable": True}
    monkeypatch.setitem(sys.modules, "congruence._cuda", fake)
    monkeypatch.setattr(_info, "_cuda_query", lambda: {"usable": True, "reason": ""})
    import congruence

    monkeypatch.setattr(congruence, "_cuda", fake, raising=False)
    with pytest.raises(CE.CudaUnavailableError, match=r"X is a GPU array, but the installed congruence._cuda module lacks column_moments"):
        CE.load("X")


# ============================================================================ devices, streams, allocation


def test_two_devices_are_refused(monkeypatch):
    import cuda_sim

    cuda_sim.install(monkeypatch)
    a = FakeDLPackCUDA(device=(2, 0))
    b = FakeDLPackCUDA(device=(2, 1))
    with pytest.raises(ValueError, match=r"X is on cuda:0 but Y is on cuda:1; all inputs must be on the same GPU"):
        cg.correlation(a, b)
    with pytest.raises(ValueError, match=r"P is on cuda:0 but Q is on cuda:1"):
        cg.knn(a, b)
    assert a.streams == [] and b.streams == []  # refused before anything was consumed


def test_null_pointer_is_refused(monkeypatch):
    import cuda_sim

    cuda_sim.install(monkeypatch)
    with pytest.raises(ValueError, match=r"X has a null device pointer"):
        cg.correlation(FakeCAI(ptr=0))


def test_waits_for_other_streams(monkeypatch):
    import cuda_sim

    cuda_sim.install(monkeypatch)
    waited = []
    monkeypatch.setattr(D.Context, "wait_for",
                        lambda self, s: waited.append(s) if s is not None and s != self.stream else None)
    base = np.ascontiguousarray(RNG.standard_normal((30, 4)))

    class HostCAI:  # host memory dressed as a CAI object on stream 77 (the simulation reads it)
        def __init__(self, a, stream):
            self.a = a
            self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
                                             "version": 3, "strides": None, "stream": stream}

    R = cg.correlation(torch.from_numpy(base), HostCAI(base, 77))
    assert waited == [77]
    np.testing.assert_allclose(R.numpy(), np.corrcoef(base.T), atol=1e-6)


def test_output_library_choice(monkeypatch):
    assert D.output_library("torch", "X") == "torch"
    assert D.output_library("cupy", "X") == "cupy"
    if A._cupy_module() is None and not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match=r"X is a __cuda_array_interface__ GPU array; .* cupy"):
            D.output_library("cai", "X")
        with pytest.raises(RuntimeError, match=r"Q is a DLPack GPU array"):
            D.output_library("dlpack", "Q")


def test_poison_hook(monkeypatch):
    ctx = D.Context(device=0, library="torch", stream=0, xp=TorchNS(torch.device("cpu")))
    monkeypatch.delenv(D.POISON_ENV, raising=False)
    assert not D.poison_enabled()
    monkeypatch.setenv(D.POISON_ENV, "1")
    assert D.poison_enabled()
    assert torch.isnan(ctx.empty((3, 4), "float32")).all()
    assert torch.isnan(ctx.empty((3,), "float64")).all()
    assert torch.isnan(ctx.empty((2, 2), "bfloat16").float()).all()
    assert (ctx.empty((5,), "int64") == D.POISON_INT).all()
    assert (ctx.empty((5,), "int32") == D.POISON_INT).all()
    assert (ctx.zeros((4,)) == 0).all()  # zeros are never poisoned
    assert D.empty((2,), "float32", ctx).shape == (2,)
    monkeypatch.setenv(D.POISON_ENV, "0")
    assert not D.poison_enabled()


# ============================================================================ array namespace


def test_canonical_order_matches_the_cpu_helper():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 4, size=(50, 9)).astype(np.float32)
    values.sort(axis=1)
    indices = np.stack([rng.permutation(30)[:9] for _ in range(50)]).astype(np.int64)
    values[:5, -2:] = np.nan
    indices[:5, -2:] = -1
    ev, ei = values.copy(), indices.copy()
    E.canonical_order(ev, ei, descending=False)
    for xp, conv in ((NUMPY, lambda a: a.copy()), (TorchNS(torch.device("cpu")), torch.from_numpy)):
        v, i = CE.canonical_order(xp, conv(values), conv(indices), descending=False)
        np.testing.assert_array_equal(xp.to_numpy(v), ev)
        np.testing.assert_array_equal(xp.to_numpy(i), ei)
    # descending, shuffled rows (the general case, not only the "sorted with ties" one)
    rv = rng.integers(0, 3, size=(20, 6)).astype(np.float64)
    ri = np.stack([rng.permutation(6) for _ in range(20)]).astype(np.int64)
    ev, ei = rv.copy(), ri.copy()
    E.canonical_order(ev, ei, descending=True)
    v, i = CE.canonical_order(TorchNS(torch.device("cpu")), torch.from_numpy(rv), torch.from_numpy(ri),
                              descending=True)
    np.testing.assert_array_equal(v.numpy(), ev)
    np.testing.assert_array_equal(i.numpy(), ei)


def test_torch_namespace_matches_numpy():
    tn = TorchNS(torch.device("cpu"))
    a = RNG.standard_normal(5)
    b = RNG.standard_normal(4)
    m = RNG.standard_normal((5, 5))
    ta, tb, tm = map(torch.from_numpy, (a, b, m))
    np.testing.assert_array_equal(tn.outer(ta, tb).numpy(), NUMPY.outer(a, b))
    np.testing.assert_array_equal(tn.diagonal(tm).numpy(), NUMPY.diagonal(m))
    np.testing.assert_array_equal(tn.where(ta > 0, 0.0, ta).numpy(), NUMPY.where(a > 0, 0.0, a))
    np.testing.assert_array_equal(tn.where(ta > 0, ta, 1.0).numpy(), NUMPY.where(a > 0, a, 1.0))
    np.testing.assert_array_equal(tn.clip(tm, -0.5, 0.5).numpy(), NUMPY.clip(m, -0.5, 0.5))
    np.testing.assert_array_equal(tn.maximum(tm, 0.0).numpy(), NUMPY.maximum(m, 0.0))
    np.testing.assert_array_equal(tn.sqrt(tn.abs(ta)).numpy(), NUMPY.sqrt(NUMPY.abs(a)))
    assert tn.asarray([1, 2]).dtype == torch.float64 and tn.full((2,), 3.0).tolist() == [3.0, 3.0]
    c = tn.copy(ta)
    c[0] = 99.0
    assert ta[0] != 99.0
    assert tn.to_numpy(tn.astype(ta, "bfloat16")).dtype == np.float32
    assert tn.address(ta) == ta.data_ptr()
