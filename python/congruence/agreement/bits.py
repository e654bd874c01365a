"""Bit packing of per-example outcomes: 64 examples per uint64 word, example x in word x // 64 at
bit x % 64 (little-endian bit order), each row padded with zero bits to whole words. Labels are
bit-sliced: plane p holds bit p of every label, so two label rows agree on an example exactly
where no plane differs (the compiled equality counts, ``_cpu.gram_equal_sliced``)."""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["n_words", "pack_rows", "unpack_rows", "bit_planes", "valid_words"]


def n_words(n: int) -> int:
    """Words needed for n bits."""
    return -(-int(n) // 64)


def pack_rows(bits: np.ndarray) -> np.ndarray:
    """Boolean (..., n) -> uint64 (..., ⌈n/64⌉), little-endian bit order, zero padding."""
    b = np.asarray(bits, dtype=bool)
    n = b.shape[-1]
    W = n_words(n)
    packed = np.packbits(b, axis=-1, bitorder="little")
    out = np.zeros(b.shape[:-1] + (W * 8,), np.uint8)
    out[..., : packed.shape[-1]] = packed
    return out.view(np.uint64)


def unpack_rows(words: np.ndarray, n: int) -> np.ndarray:
    """uint64 (..., W) -> boolean (..., n)."""
    w = np.ascontiguousarray(words, dtype=np.uint64)
    return np.unpackbits(w.view(np.uint8), axis=-1, count=int(n), bitorder="little").astype(bool)


def valid_words(n: int) -> np.ndarray:
    """The (⌈n/64⌉,) mask of the n real bits."""
    return pack_rows(np.ones(int(n), dtype=bool))


def bit_planes(labels: np.ndarray, n_classes: int, num_threads: Optional[int] = None) -> np.ndarray:
    """Integer labels (K, n) in [0, n_classes) -> planes (P, K, ⌈n/64⌉), P = max(1, ⌈log₂ n_classes⌉)
    (compiled: one pass over the labels)."""
    from .. import _cpu
    from .._resources import resolve_threads

    L = np.asarray(labels)
    if L.dtype not in (np.int32, np.int64):
        L = L.astype(np.int64)
    L = np.ascontiguousarray(L)
    P = max(1, int(np.ceil(np.log2(max(2, int(n_classes))))))
    out = np.empty((P, L.shape[0], n_words(L.shape[1])), np.uint64)
    _cpu.pack_label_planes(L, P, out, resolve_threads(num_threads))
    return out
