"""Stub of the compiled CPU module (csrc/cpu_module.cpp): numpy arrays in, results written into
caller-allocated outputs; the GIL is released and Ctrl-C is honoured between tiles."""

from typing import Optional

import numpy as np

version: str
cxx_flags: str
compiler: str
openmp_version: int

def omp_max_threads() -> int: ...
def set_blas(sgemm: int, dgemm: int, ssyrk: int, dsyrk: int) -> None: ...
def blas_ready() -> bool: ...
def column_stats(X: np.ndarray, dtype: int, mean: np.ndarray, m2: np.ndarray, sumsq: np.ndarray,
                 num_threads: int) -> bool: ...
def standardize(X: np.ndarray, dtype: int, row_shift: Optional[np.ndarray], col_shift: Optional[np.ndarray],
                col_scale: Optional[np.ndarray], out: np.ndarray, num_threads: int) -> None: ...
def gram_accumulate(A: np.ndarray, B: np.ndarray, symmetric: bool, C: np.ndarray, block_rows: int, block_cols: int,
                    k_chunk: int, num_threads: int) -> None: ...
def pairwise_dense(A: np.ndarray, B: np.ndarray, symmetric: bool, C: np.ndarray, block_rows: int, block_cols: int,
                   k_chunk: int, num_threads: int) -> None: ...
def pairwise_topk(A: np.ndarray, B: np.ndarray, k: int, absolute: bool, col_bias: Optional[np.ndarray],
                  col_valid: Optional[np.ndarray], exclude_diagonal: bool, values: np.ndarray, indices: np.ndarray,
                  block_rows: int, block_cols: int, k_chunk: int, num_threads: int, clip: bool = ...) -> None: ...
def pairwise_threshold(A: np.ndarray, B: np.ndarray, threshold: float, absolute: bool, col_bias: Optional[np.ndarray],
                       col_valid: Optional[np.ndarray], exclude_diagonal: bool, max_pairs: int, block_rows: int,
                       block_cols: int, k_chunk: int, num_threads: int,
                       clip: bool = ...) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
