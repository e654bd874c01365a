// The CUDA engine's host interface: plain C++ (no CUDA headers, no Python), so that the pybind11
// glue compiles with the host compiler. Every pointer is a device pointer unless named host_*.
// Every entry point sets the device, launches on the caller's stream, checks each CUDA call and
// the last error after each launch, and throws std::runtime_error carrying CUDA's message.
#pragma once
#include <cstdint>
#include <limits>

namespace congruence {
namespace cuda {

// Element codes shared with dtype.hpp / _arrays.py (float16, bfloat16, float32, float64).
enum class Elem : int { float16 = 0, bfloat16 = 1, float32 = 2, float64 = 3 };

// Compute precision of the pairwise products (docs: pairwise.py "Precision modes").
//  float32 : SIMT FFMA on float32 panels.
//  tf32    : tensor cores, inputs rounded to TF32 (10-bit mantissa), FP32 accumulation.
//  tf32x3  : "3xTF32": a = a_hi + a_lo split into two TF32 numbers, a·b ≈ a_hi·b_hi + a_hi·b_lo +
//            a_lo·b_hi on tensor cores; FP32-level accuracy.
//  bf16    : tensor cores on bfloat16 panels (inputs rounded once, after centring), FP32 accumulation.
//  float64 : SIMT DFMA on float64 panels.
enum class Precision : int { float32 = 0, tf32 = 1, tf32x3 = 2, bf16 = 3, float64 = 4 };

// The element type a panel of this precision holds.
inline Elem panel_elem(Precision p) {
    return p == Precision::bf16 ? Elem::bfloat16 : (p == Precision::float64 ? Elem::float64 : Elem::float32);
}

// Panel geometry: rows padded to kPanelRowAlign (zero rows), the reduction dimension K padded to
// kPanelKAlign elements (zero columns), so the kernels' main loops need no bounds checks.
constexpr std::int64_t kPanelRowAlign = 128;
constexpr std::int64_t kPanelKAlign = 64;
// Block tile of the pairwise kernels (rows of A x rows of B).
constexpr std::int64_t kTileRows = 128;
constexpr std::int64_t kTileCols = 128;
constexpr std::int64_t kMaxTopK = 256;

struct Stream {
    int device = 0;
    std::uintptr_t handle = 0;  // cudaStream_t of the caller (0: legacy default stream)
};

// A strided 2-D device matrix V (rows x cols); element (r, c) at data + r*row_stride + c*col_stride
// (strides in elements, may be any sign-free layout).
struct MatrixView {
    const void* data = nullptr;
    Elem elem = Elem::float32;
    std::int64_t rows = 0, cols = 0, row_stride = 0, col_stride = 0;
};

// A panel: rows_padded x k_padded, row-major with leading dimension ld (elements), element type
// panel_elem(precision); rows >= `rows` and columns >= `k` are zero.
struct Panel {
    const void* data = nullptr;
    std::int64_t rows = 0, k = 0, ld = 0;
};

// Per-column moments of V in float64 over its rows: with a shift s (given, or the mean of the
// first min(rows, 1024) rows), sum_shifted = Σ(x − s), mean = s + Σ(x − s)/n,
// m2 = Σ(x − s)² − (Σ(x − s))²/n, sumsq = Σx². Any output may be null. Returns false when a sum is
// not finite (NaN/Inf in the data). Synchronises the stream (the finite flag comes to the host).
bool column_moments_cuda(const Stream& s, const MatrixView& v, const double* shift, double* mean,
                         double* m2, double* sumsq, double* sum_shifted);

// Panel build: out[r, c] = (V(r, c) − row_shift[r] − col_shift[c]) · row_scale[r] for r < rows,
// c < cols, computed in float64 and rounded once to out_elem; out is out_rows x out_cols with
// leading dimension ld_out, and everything outside the data block is written 0. Nulls mean
// "no shift"/"scale 1".
void standardize_cuda(const Stream& s, const MatrixView& v, const double* row_shift,
                      const double* col_shift, const double* row_scale, void* out, Elem out_elem,
                      std::int64_t out_rows, std::int64_t out_cols, std::int64_t ld_out);

// What the epilogue does with v_ij = clamp((A Bᵀ)_ij + col_bias[j], lo, hi).
struct Epilogue {
    std::int64_t na = 0, nb = 0;            // logical sizes (panels may be padded)
    bool absolute = false;                  // rank by |v| (the signed value is returned)
    const double* col_bias = nullptr;       // nb entries or null
    const std::uint8_t* col_valid = nullptr;  // nb entries (0 = never selected) or null
    bool exclude_diagonal = false;          // skip j == i
    double lo = -std::numeric_limits<double>::infinity();  // clamp before ranking (bounded metrics: ±1)
    double hi = std::numeric_limits<double>::infinity();
};

// Dense C (na x nb, leading dimension ldc, element out_elem ∈ {float32, float64}) = v_ij, or
// C += v_ij when accumulate (float64 output only; used by the cross statistics). Tiles are
// independent: a 2-D grid, no reduction state. With symmetric (a and b the same panel) only the
// tiles on and above the diagonal are computed and each also writes its mirror: half the work.
void pairwise_dense_cuda(const Stream& s, Precision prec, const Panel& a, const Panel& b,
                         const Epilogue& ep, void* c, Elem out_elem, std::int64_t ldc,
                         bool accumulate, bool symmetric = false);

// Per row i the k largest keys (v or |v|) over valid j (a NaN or -inf key is never selected; the
// panels are finite, so neither occurs unless col_bias makes it so): values (na x k; float64 panels give
// double, others float) and indices (na x k int64), descending by key, equal keys by increasing j,
// unfilled slots (NaN, -1). Row-stationary: a block owns kTileRows rows and sweeps its segment of
// column tiles, keeping the running lists in registers (k = 1) or in per-row lists it alone
// touches. The columns are split into `segments` contiguous ranges (more blocks for narrow A;
// clamped to the number of column tiles); the partial lists, segments x na x k values (the
// values' type) and int32 indices, go to scratch_values/scratch_indices when both are given, else
// to stream-ordered memory of the CUDA pool; a merge kernel combines them in segment order,
// preserving the tie rule. nb must be below 2^31.
void pairwise_topk_cuda(const Stream& s, Precision prec, const Panel& a, const Panel& b,
                        const Epilogue& ep, std::int64_t k, void* values, std::int64_t* indices,
                        int segments, void* scratch_values, std::int32_t* scratch_indices);

// All (i, j, v_ij) with key >= threshold, written in no particular order into rows/cols/values
// (capacity entries; values of the accumulator type: double for float64 panels, else float). Returns the number of qualifying pairs, which may exceed capacity (then
// only capacity were written and the caller retries with more room). counter: one device int64
// of scratch. Synchronises the stream.
std::int64_t pairwise_threshold_cuda(const Stream& s, Precision prec, const Panel& a,
                                     const Panel& b, const Epilogue& ep, double threshold,
                                     std::int64_t* rows, std::int64_t* cols, void* values,
                                     std::int64_t capacity, unsigned long long* counter);

// The correctness oracle: C[i, j] = Σ_k A(k, i)·B(k, j) in float64, one thread per output, read
// straight from two strided views (K x na, K x nb) of any element type. Deliberately naive.
void reference_product_cuda(const Stream& s, const MatrixView& a, const MatrixView& b, double* c,
                            std::int64_t ldc);

struct DeviceProperties {
    int multiprocessors = 0;
    int major = 0, minor = 0;
    std::int64_t shared_per_block_optin = 0;
    std::int64_t total_memory = 0;
};
DeviceProperties device_properties_cuda(int device);

// Default precision on this device: tf32x3 on compute capability >= 8.0 (tensor cores with TF32),
// else float32.
Precision default_precision_cuda(int device);

}  // namespace cuda
}  // namespace congruence
