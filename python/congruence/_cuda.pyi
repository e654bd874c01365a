"""Stub of the compiled CUDA module (csrc/cuda_module.cpp). Device memory is passed as integer
addresses, the stream as the caller's cudaStream_t handle; every function sets the device, runs on
that stream and raises RuntimeError with CUDA's message on failure."""

cuda_architectures: str
compiler: str
panel_row_align: int
panel_k_align: int
tile_rows: int
tile_cols: int
max_topk: int
PRECISIONS: tuple[str, ...]

def query() -> dict: ...
def device_properties(device: int) -> dict: ...
def default_precision(device: int) -> int: ...
def column_moments(device: int, stream: int, data: int, dtype: int, rows: int, cols: int, row_stride: int,
                   col_stride: int, shift: int, mean: int, m2: int, sumsq: int, sum_shifted: int) -> bool: ...
def standardize(device: int, stream: int, data: int, dtype: int, rows: int, cols: int, row_stride: int,
                col_stride: int, row_shift: int, col_shift: int, row_scale: int, out: int, out_dtype: int,
                out_rows: int, out_cols: int, ld_out: int) -> None: ...
def pairwise_dense(device: int, stream: int, precision: int, a: int, a_rows: int, b: int, b_rows: int, k: int,
                   lda: int, ldb: int, na: int, nb: int, lo: float, hi: float, out: int, out_dtype: int, ldc: int,
                   accumulate: bool, symmetric: bool = ...) -> None: ...
def pairwise_topk(device: int, stream: int, precision: int, a: int, a_rows: int, b: int, b_rows: int, k_dim: int,
                  lda: int, ldb: int, na: int, nb: int, k: int, absolute: bool, col_bias: int, col_valid: int,
                  exclude_diagonal: bool, lo: float, hi: float, values: int, indices: int, segments: int,
                  scratch_values: int, scratch_indices: int) -> None: ...
def pairwise_threshold(device: int, stream: int, precision: int, a: int, a_rows: int, b: int, b_rows: int,
                       k_dim: int, lda: int, ldb: int, na: int, nb: int, absolute: bool, col_valid: int,
                       exclude_diagonal: bool, lo: float, hi: float, threshold: float, rows: int, cols: int,
                       values: int, capacity: int, counter: int) -> int: ...
def reference_product(device: int, stream: int, a: int, a_dtype: int, K: int, na: int, a_row_stride: int,
                      a_col_stride: int, b: int, b_dtype: int, nb: int, b_row_stride: int, b_col_stride: int,
                      out: int, ldc: int) -> None: ...
