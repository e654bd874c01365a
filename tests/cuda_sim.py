"""A NumPy stand-in for ``congruence._cuda`` that runs the CUDA *Python* path on the CPU.

It implements the documented semantics of every ``_cuda`` entry point
(src/include/congruence/cuda_engine.hpp, csrc/cuda_module.cpp) on host memory addresses: strided
views of any element type and sign of stride, padded panels (checked like the binding checks
them), the epilogue (col_bias, col_valid, exclude_diagonal, clamp), top-k with the lowest-index
tie rule, the threshold capacity protocol, and precisions emulated by rounding (tf32: 10-bit
mantissa, bf16 panels: bfloat16, others float32 / float64). ``install(monkeypatch)`` makes CPU
torch tensors look like CUDA tensors on device 0, so every public function takes its GPU branch
and allocates through torch (on the CPU).

This checks the Python layer (planning, argument order, strides, masks, post-processing,
poisoning, result types) without a GPU. It says nothing about the kernels themselves: those are
checked by tests/test_cuda_engine.py on a real device.
"""

from __future__ import annotations

import ctypes

import numpy as np

FLOAT16, BFLOAT16, FLOAT32, FLOAT64 = 0, 1, 2, 3
_ITEM = {FLOAT16: 2, BFLOAT16: 2, FLOAT32: 4, FLOAT64: 8}
_STORE = {FLOAT16: np.float16, BFLOAT16: np.uint16, FLOAT32: np.float32, FLOAT64: np.float64}
PRECISIONS = ("float32", "tf32", "3xtf32", "bf16", "float64")


def _buffer(address, nbytes):
    if address == 0:
        raise ValueError("null device pointer")
    return np.ctypeslib.as_array((ctypes.c_char * nbytes).from_address(address)).view(np.uint8)


def _strided(address, code, rows, cols, rs, cs):
    """Writable numpy view of a strided matrix at a host address (strides in elements, signed)."""
    item = _ITEM[code]
    lo = min(0, (rows - 1) * rs) + min(0, (cols - 1) * cs)
    hi = max(0, (rows - 1) * rs) + max(0, (cols - 1) * cs)
    base = _buffer(address + lo * item, (hi - lo + 1) * item).view(_STORE[code])
    return np.lib.stride_tricks.as_strided(base[-lo:], shape=(rows, cols), strides=(rs * item, cs * item))


def _vector(address, n, dtype=np.float64):
    return _buffer(address, n * np.dtype(dtype).itemsize).view(dtype)


def bf16_to_f64(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def f64_to_bf16(x):
    f = np.asarray(x, dtype=np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    out[np.isnan(f)] = 0x7FC0
    return out


def _as_f64(arr, code):
    return bf16_to_f64(arr) if code == BFLOAT16 else arr.astype(np.float64)


def _tf32(x):
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x1000) & 0xFFFFE000).astype(np.uint32).view(np.float32)


class SimCuda:
    """Host emulation of the ``_cuda`` module (see the module docstring)."""

    PRECISIONS = PRECISIONS
    panel_row_align = 128
    panel_k_align = 64
    tile_rows = tile_cols = 128
    max_topk = 256
    cuda_architectures = "sim"
    compiler = "numpy"

    def __init__(self, multiprocessors=4, default=2):
        self.multiprocessors = multiprocessors
        self.default = default
        self.calls = []  # (name, kwargs) of every launch, for tests that check what was asked

    def query(self):
        return {"usable": True, "reason": "", "devices": [{"index": 0, "multiprocessors": self.multiprocessors}]}

    def device_properties(self, device):
        return {"multiprocessors": self.multiprocessors, "compute_capability": (9, 0),
                "shared_per_block_optin": 232448, "total_memory": 1 << 34}

    def default_precision(self, device):
        return self.default

    # ---------------------------------------------------------------- statistics and panels
    def column_moments(self, device, stream, data, dtype, rows, cols, row_stride, col_stride, shift, mean, m2,
                       sumsq, sum_shifted):
        self.calls.append(("column_moments", dict(rows=rows, cols=cols, rs=row_stride, cs=col_stride)))
        assert rows >= 1 and cols >= 1
        X = _as_f64(_strided(data, dtype, rows, cols, row_stride, col_stride), dtype)
        s = _vector(shift, cols).copy() if shift else X[: min(rows, 1024)].mean(axis=0)
        with np.errstate(all="ignore"):
            d = X - s
            s1, s2, sq = d.sum(axis=0), (d * d).sum(axis=0), (X * X).sum(axis=0)
        if not (np.isfinite(s1).all() and np.isfinite(s2).all() and np.isfinite(sq).all()):
            return False
        for address, value in ((mean, s + s1 / rows), (m2, s2 - s1 * s1 / rows), (sumsq, sq), (sum_shifted, s1)):
            if address:
                _vector(address, cols)[:] = value
        return True

    def standardize(self, device, stream, data, dtype, rows, cols, row_stride, col_stride, row_shift, col_shift,
                    row_scale, out, out_dtype, out_rows, out_cols, ld_out):
        self.calls.append(("standardize", dict(rows=rows, cols=cols, out_rows=out_rows, out_cols=out_cols,
                                               ld=ld_out, out_dtype=out_dtype)))
        if out_rows < rows or out_cols < cols or ld_out < out_cols:
            raise ValueError("standardize: output smaller than the input")
        X = _as_f64(_strided(data, dtype, rows, cols, row_stride, col_stride), dtype)
        if row_shift:
            X = X - _vector(row_shift, rows)[:, None]
        if col_shift:
            X = X - _vector(col_shift, cols)[None, :]
        if row_scale:
            X = X * _vector(row_scale, rows)[:, None]
        block = np.zeros((out_rows, out_cols))
        block[:rows, :cols] = X
        O = _strided(out, out_dtype, out_rows, out_cols, ld_out, 1)
        O[...] = f64_to_bf16(block) if out_dtype == BFLOAT16 else block.astype(_STORE[out_dtype])

    # ---------------------------------------------------------------- the pairwise engine
    @staticmethod
    def _panel(address, rows, k, ld, prec, name):
        if rows % 128 or k % 64 or ld < k or rows <= 0 or k <= 0:
            raise ValueError(f"{name}: panel must be padded (rows to 128, k to 64) with ld >= k")
        code = BFLOAT16 if PRECISIONS[prec] == "bf16" else (FLOAT64 if PRECISIONS[prec] == "float64" else FLOAT32)
        return _as_f64(_strided(address, code, rows, k, ld, 1), code)

    def _product(self, prec, a, a_rows, b, b_rows, k, lda, ldb, na, nb):
        if na > a_rows or nb > b_rows or na < 1 or nb < 1:
            raise ValueError("pairwise: logical sizes exceed the panels")
        PA = self._panel(a, a_rows, k, lda, prec, "A")[:na]
        PB = self._panel(b, b_rows, k, ldb, prec, "B")[:nb]
        name = PRECISIONS[prec]
        if name == "float64":
            return PA @ PB.T
        if name == "tf32":
            PA, PB = _tf32(PA), _tf32(PB)
        return (PA.astype(np.float32) @ PB.astype(np.float32).T).astype(np.float64)

    @staticmethod
    def _epilogue(V, col_bias, col_valid, exclude_diagonal, lo, hi):
        na, nb = V.shape
        if col_bias:
            V = V + _vector(col_bias, nb)[None, :]
        V = np.clip(V, lo, hi)
        mask = np.ones_like(V, dtype=bool)
        if col_valid:
            mask &= (_vector(col_valid, nb, np.uint8) != 0)[None, :]
        if exclude_diagonal:
            d = min(na, nb)
            mask[np.arange(d), np.arange(d)] = False
        return V, mask

    def pairwise_dense(self, device, stream, precision, a, a_rows, b, b_rows, k, lda, ldb, na, nb, lo, hi, out,
                       out_dtype, ldc, accumulate, symmetric=False):
        self.calls.append(("pairwise_dense", dict(precision=precision, na=na, nb=nb, k=k, accumulate=accumulate,
                                                  symmetric=symmetric)))
        if out_dtype not in (FLOAT32, FLOAT64) or (accumulate and out_dtype != FLOAT64) or ldc < nb:
            raise ValueError("pairwise_dense: bad output")
        if symmetric and (a != b or na != nb):
            raise ValueError("pairwise_dense: symmetric needs one panel as both operands")
        V, _ = self._epilogue(self._product(precision, a, a_rows, b, b_rows, k, lda, ldb, na, nb), 0, 0, False, lo, hi)
        C = _strided(out, out_dtype, na, nb, ldc, 1)
        if accumulate:
            C += V
        else:
            C[...] = V.astype(_STORE[out_dtype])

    def pairwise_topk(self, device, stream, precision, a, a_rows, b, b_rows, k_dim, lda, ldb, na, nb, k, absolute,
                      col_bias, col_valid, exclude_diagonal, lo, hi, values, indices, segments, scratch_values,
                      scratch_indices):
        self.calls.append(("pairwise_topk", dict(precision=precision, na=na, nb=nb, k=k, segments=segments,
                                                 absolute=absolute, exclude=exclude_diagonal)))
        if not 1 <= k <= 256 or segments < 1:
            raise ValueError("pairwise_topk: bad k or segments")
        V, mask = self._epilogue(self._product(precision, a, a_rows, b, b_rows, k_dim, lda, ldb, na, nb), col_bias,
                                 col_valid, exclude_diagonal, lo, hi)
        vcode = FLOAT64 if PRECISIONS[precision] == "float64" else FLOAT32
        V = V.astype(_STORE[vcode]).astype(np.float64)  # the kernels rank the values they store
        segs = min(segments, -(-nb // 128))
        self.scratch_given = bool(scratch_values and scratch_indices)
        if self.scratch_given:  # the kernels' partial lists fill segments x na x k
            _vector(scratch_values, segs * na * k, _STORE[vcode])[:] = 0
            _vector(scratch_indices, segs * na * k, np.int32)[:] = 0
        vals = np.full((na, k), np.nan)
        idx = np.full((na, k), -1, dtype=np.int64)
        key = np.abs(V) if absolute else V
        for i in range(na):
            cand = np.flatnonzero(mask[i])
            order = cand[np.argsort(-key[i, cand], kind="stable")][:k]
            vals[i, : len(order)] = V[i, order]
            idx[i, : len(order)] = order
        _strided(values, vcode, na, k, k, 1)[...] = vals
        _strided(indices, FLOAT64, na, k, k, 1).view(np.int64)[...] = idx

    def pairwise_threshold(self, device, stream, precision, a, a_rows, b, b_rows, k_dim, lda, ldb, na, nb, absolute,
                           col_valid, exclude_diagonal, lo, hi, threshold, rows, cols, values, capacity, counter):
        self.calls.append(("pairwise_threshold", dict(precision=precision, capacity=capacity)))
        if capacity < 0 or not counter:
            raise ValueError("pairwise_threshold: bad capacity/counter")
        V, mask = self._epilogue(self._product(precision, a, a_rows, b, b_rows, k_dim, lda, ldb, na, nb), 0,
                                 col_valid, exclude_diagonal, lo, hi)
        vcode = FLOAT64 if PRECISIONS[precision] == "float64" else FLOAT32
        V = V.astype(_STORE[vcode]).astype(np.float64)
        key = np.abs(V) if absolute else V
        r, c = np.nonzero(mask & (key >= threshold))
        perm = np.random.default_rng(len(r)).permutation(len(r))  # the kernel writes in no particular order
        r, c = r[perm], c[perm]
        m = min(len(r), capacity)
        if m:
            _vector(rows, m, np.int64)[:] = r[:m]
            _vector(cols, m, np.int64)[:] = c[:m]
            _vector(values, m, _STORE[vcode])[:] = V[r[:m], c[:m]]
        _vector(counter, 1, np.int64)[0] = len(r)
        return int(len(r))

    def reference_product(self, device, stream, a, a_dtype, K, na, a_rs, a_cs, b, b_dtype, nb, b_rs, b_cs, out, ldc):
        A = _as_f64(_strided(a, a_dtype, K, na, a_rs, a_cs), a_dtype)
        B = _as_f64(_strided(b, b_dtype, K, nb, b_rs, b_cs), b_dtype)
        _strided(out, FLOAT64, na, nb, ldc, 1)[...] = A.T @ B


def install(monkeypatch, sim=None):
    """Route the GPU path through ``sim`` and make CPU torch tensors pass for CUDA tensors."""
    import torch

    from congruence import _arrays, _cuda_engine, _device

    sim = SimCuda() if sim is None else sim
    monkeypatch.setattr(_cuda_engine, "_override", sim)
    monkeypatch.setattr(_arrays, "_torch_cuda_index", lambda t: 0 if t.device.type == "cpu" else None)
    monkeypatch.setattr(_arrays, "_torch_stream", lambda index: 0)
    monkeypatch.setattr(_device, "_torch_device", lambda index: torch.device("cpu"))
    monkeypatch.setattr(_device, "free_device_memory", lambda library, device: 1 << 34)
    # Bare protocol objects return cupy arrays; without cupy (this machine) route them to torch.
    orig = _device.output_library
    monkeypatch.setattr(_device, "output_library",
                        lambda kind, name: "torch" if kind in ("cai", "dlpack") else orig(kind, name))
    return sim
