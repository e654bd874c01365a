// Column moments and the standardising panel copy on the GPU: the kernels, their planner and
// their launch sequences (the CUDA counterparts of src/cpu/column_stats_cpu.cpp). Device code and
// pure host arithmetic only; the launches go through a caller-supplied `launch` (see "Launch
// sequences" below), so column_stats_cuda.cu runs these on a stream and the host emulator of
// tests/cuda_host/ (CONGRUENCE_HOST_EMULATION defined) runs the same kernels, in the same
// sequence, on the CPU.
//
// column_moments: two deterministic passes of "partial sums, then fixed-order reduce".
//   * The rows are cut into `chunks` contiguous ranges, enough that (columns x chunks) work units
//     fill every multiprocessor about twice; each unit writes its (S1, S2, SQ) partial sums to
//     scratch, laid out [stat][chunk][column] so the reduce reads columns coalesced.
//   * The partial kernel has two shapes, picked from the strides:
//       columns contiguous (|col_stride| <= |row_stride|): a 32 x 8 block owns 32 adjacent columns;
//         a warp reads 32 adjacent columns of one row (coalesced), the 8 warps interleave rows and
//         are summed through shared memory in warp order.
//       rows contiguous (|row_stride| < |col_stride|, e.g. the transposed view used for per-row
//         statistics, or a single column): one warp per (column, chunk) strides down the rows and
//         butterfly-reduces with shuffles.
//   * The reduce kernel sums the chunks of a column in a fixed order (one thread per column, or a
//     warp per column with a fixed shuffle tree when there are many chunks) and finishes the
//     moments. No floating-point atomics anywhere, so a launch configuration gives bit-identical
//     results run to run; the configuration depends only on the shape, the layout and the SM count.
//   * Without a caller's shift, the same two kernels first run over the first min(rows, 1024) rows
//     with shift 0 and the reduce writes their mean into scratch as the shift (METHODS.md §1.2).
//   * Non-finite sums raise an integer flag (plain stores of 1; integer, so order-free) that comes
//     back to the host; that is how NaN/Inf in the data are reported, as on the CPU.
//
// standardize: a 32 x 32 tile per block iteration over the whole out_rows x out_cols block
// (padding tiles only write zeros). When the view's rows are the contiguous direction the tile is
// read with threadIdx.x along rows into padded shared memory and written with threadIdx.x along
// columns, so both the strided read and the row-major write are coalesced; otherwise the read is
// already coalesced along columns and shared memory is skipped.
#pragma once
#ifndef CONGRUENCE_HOST_EMULATION
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

// A static shared array, `__shared__ type name dims;` on the GPU. The emulator gives each block
// one poisoned copy that all of its threads share (cgemu::block_shared), keyed by the address of a
// static object at the declaration.
#ifndef CG_STATIC_SHARED
#ifndef CONGRUENCE_HOST_EMULATION
#define CG_STATIC_SHARED(type, name, dims) __shared__ type name dims
#else
#define CG_STATIC_SHARED(type, name, dims) \
    static const char cg_shared_key_##name = 0; \
    type(&name) dims = ::cgemu::block_shared<type dims>(&cg_shared_key_##name)
#endif
#endif

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "congruence/cuda_engine.hpp"

namespace congruence {
namespace cuda {
namespace colstats {

using i64 = std::int64_t;

constexpr i64 kShiftRows = 1024;       // rows used for the shift (METHODS.md §1.2)
constexpr i64 kMinChunkRows = 256;     // below this a unit's fixed cost outweighs its loads
constexpr i64 kMaxChunks = 65535;      // bounds the scratch for very tall, narrow inputs
constexpr int kBlockThreads = 256;
constexpr int kColsPerBlock = 32;      // columns-contiguous shape: 32 columns x 8 row lanes
constexpr int kRowLanes = kBlockThreads / kColsPerBlock;
constexpr int kWarpsPerBlock = kBlockThreads / 32;
constexpr i64 kWarpReduceChunks = 64;  // from here a column's chunks are summed by a whole warp

inline i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }
inline i64 iabs(i64 x) { return x < 0 ? -x : x; }

// ---- element conversions ---------------------------------------------------------------------

__device__ __forceinline__ double to_double(__half x) { return static_cast<double>(__half2float(x)); }
__device__ __forceinline__ double to_double(__nv_bfloat16 x) {
    return static_cast<double>(__bfloat162float(x));
}
__device__ __forceinline__ double to_double(float x) { return static_cast<double>(x); }
__device__ __forceinline__ double to_double(double x) { return x; }

template <class O>
__device__ __forceinline__ O from_double(double v);
template <>
__device__ __forceinline__ __half from_double<__half>(double v) { return __double2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_double<__nv_bfloat16>(double v) { return __double2bfloat16(v); }
template <>
__device__ __forceinline__ float from_double<float>(double v) { return static_cast<float>(v); }
template <>
__device__ __forceinline__ double from_double<double>(double v) { return v; }

// Independent loads in flight per thread: 16-bit elements need twice as many to keep the same
// number of bytes outstanding. (A variable template, not a constexpr function, so device code
// may use it without --expt-relaxed-constexpr.)
template <class T>
constexpr int kLoadsInFlight = sizeof(T) < 4 ? 8 : 4;

template <class T>
struct Tag { using type = T; };

// Calls f(Tag<T>{}) with T the storage type of e.
template <class F>
void dispatch_elem(Elem e, F&& f) {
    switch (e) {
        case Elem::float16: return f(Tag<__half>{});
        case Elem::bfloat16: return f(Tag<__nv_bfloat16>{});
        case Elem::float32: return f(Tag<float>{});
        case Elem::float64: return f(Tag<double>{});
    }
    throw std::invalid_argument("unknown element code " + std::to_string(static_cast<int>(e)));
}

// ---- moments: planning (pure host arithmetic) ------------------------------------------------

struct MomentPlan {
    bool rows_contiguous = false;  // partial-kernel shape (see the top of the file)
    i64 chunks = 1;                // row ranges
    i64 rows_per_chunk = 0;
    i64 blocks = 0;                // partial-kernel grid (1-D: column groups vary fastest)
    i64 col_groups = 0;            // columns-contiguous shape: 32-column groups per chunk
};

inline MomentPlan plan_moments(i64 rows, i64 cols, i64 row_stride, i64 col_stride, int multiprocessors) {
    MomentPlan pl;
    // A single column has no column direction to coalesce over; a warp down its rows does better.
    pl.rows_contiguous = cols == 1 || iabs(row_stride) < iabs(col_stride);
    const i64 sms = std::max(1, multiprocessors);
    // Two waves of fully resident 256-thread blocks (8 per SM), so one slow SM does not idle the rest.
    const i64 target_warps = sms * 2 * 64;
    i64 units_per_chunk, target_units;
    if (pl.rows_contiguous) {
        units_per_chunk = cols;  // warps
        target_units = target_warps;
    } else {
        pl.col_groups = ceil_div(cols, kColsPerBlock);
        units_per_chunk = pl.col_groups;  // blocks
        target_units = target_warps / kWarpsPerBlock;
    }
    const i64 by_size = std::max<i64>(1, rows / kMinChunkRows);
    pl.chunks = std::min({ceil_div(target_units, units_per_chunk), by_size, kMaxChunks});
    pl.chunks = std::max<i64>(1, pl.chunks);
    pl.rows_per_chunk = std::max<i64>(1, ceil_div(rows, pl.chunks));
    // Re-derive so that no chunk is empty (rows_per_chunk rounding can leave trailing ones).
    pl.chunks = std::max<i64>(1, ceil_div(rows, pl.rows_per_chunk));
    pl.blocks = pl.rows_contiguous ? ceil_div(cols * pl.chunks, kWarpsPerBlock) : pl.col_groups * pl.chunks;
    return pl;
}

// ---- moments: kernels --------------------------------------------------------------------------

struct Sums {
    double s1 = 0.0, s2 = 0.0, sq = 0.0;
};

__device__ __forceinline__ void accumulate(Sums& a, double x, double shift) {
    const double d = x - shift;
    a.s1 += d;
    a.s2 = fma(d, d, a.s2);
    a.sq = fma(x, x, a.sq);
}

// Sums over rows first, first + step, ... < end of one column; loads are batched so that U of
// them are in flight before the dependent adds.
template <class T>
__device__ __forceinline__ Sums column_sums(const T* __restrict__ col, i64 row_stride, i64 first,
                                            i64 end, i64 step, double shift) {
    constexpr int U = kLoadsInFlight<T>;
    Sums a;
    for (i64 r = first; r < end; r += step * U) {
        double x[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const i64 rr = r + u * step;
            x[u] = rr < end ? to_double(col[rr * row_stride]) : 0.0;
        }
#pragma unroll
        for (int u = 0; u < U; ++u)
            if (r + u * step < end) accumulate(a, x[u], shift);
    }
    return a;
}

// part[(stat * chunks + chunk) * cols + col]
__device__ __forceinline__ void store_partial(double* part, i64 chunks, i64 chunk, i64 cols, i64 col,
                                              const Sums& a) {
    part[(0 * chunks + chunk) * cols + col] = a.s1;
    part[(1 * chunks + chunk) * cols + col] = a.s2;
    part[(2 * chunks + chunk) * cols + col] = a.sq;
}

// Columns-contiguous shape: block (32, 8), blockIdx.x = chunk * col_groups + column group.
template <class T>
__global__ void __launch_bounds__(kBlockThreads)
moments_partial_cols(const T* __restrict__ x, i64 rows, i64 cols, i64 row_stride, i64 col_stride,
                     const double* __restrict__ shift, i64 rows_per_chunk, i64 chunks, i64 col_groups,
                     double* __restrict__ part) {
    CG_STATIC_SHARED(double, red, [3][kRowLanes][kColsPerBlock]);
    const int tx = threadIdx.x, ty = threadIdx.y;
    const i64 group = blockIdx.x % col_groups, chunk = blockIdx.x / col_groups;
    const i64 col = group * kColsPerBlock + tx;
    const i64 r0 = chunk * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
    Sums a;
    if (col < cols)
        a = column_sums(x + col * col_stride, row_stride, r0 + ty, r1, kRowLanes, shift ? shift[col] : 0.0);
    red[0][ty][tx] = a.s1;
    red[1][ty][tx] = a.s2;
    red[2][ty][tx] = a.sq;
    __syncthreads();
    if (ty == 0 && col < cols) {
        Sums t;
        for (int y = 0; y < kRowLanes; ++y) {  // fixed lane order: deterministic
            t.s1 += red[0][y][tx];
            t.s2 += red[1][y][tx];
            t.sq += red[2][y][tx];
        }
        store_partial(part, chunks, chunk, cols, col, t);
    }
}

// Rows-contiguous shape: one warp per (column, chunk), warp index = chunk * cols + column. A
// flat warp index (rather than a block per column) keeps every warp busy when there are fewer
// than 8 columns, and keeps the grid 1-D, so no dimension limit applies.
template <class T>
__global__ void __launch_bounds__(kBlockThreads)
moments_partial_rows(const T* __restrict__ x, i64 rows, i64 cols, i64 row_stride, i64 col_stride,
                     const double* __restrict__ shift, i64 rows_per_chunk, i64 chunks,
                     double* __restrict__ part) {
    const int lane = threadIdx.x & 31;
    const i64 w = static_cast<i64>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    if (w >= cols * chunks) return;  // whole warps leave: the shuffles below stay full-mask
    const i64 col = w % cols, chunk = w / cols;
    const i64 r0 = chunk * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
    Sums a = column_sums(x + col * col_stride, row_stride, r0 + lane, r1, 32, shift ? shift[col] : 0.0);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        a.s1 += __shfl_xor_sync(0xffffffffu, a.s1, o);
        a.s2 += __shfl_xor_sync(0xffffffffu, a.s2, o);
        a.sq += __shfl_xor_sync(0xffffffffu, a.sq, o);
    }
    if (lane == 0) store_partial(part, chunks, chunk, cols, col, a);
}

// Sums each column's chunk partials with G threads (G = 1 or 32) in a fixed order and finishes:
// kShiftPass writes shift_out = S1 / rows (S1 taken around 0); otherwise the moments.
template <int G, bool kShiftPass>
__global__ void __launch_bounds__(kBlockThreads)
moments_reduce(const double* __restrict__ part, i64 chunks, i64 cols, i64 rows,
               const double* shift, double* shift_out, double* mean, double* m2, double* sumsq,
               double* sum_shifted, int* nonfinite) {  // no __restrict__: a caller may pass mean == shift
    const i64 tid = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x;
    const i64 groups = static_cast<i64>(gridDim.x) * blockDim.x / G;
    const int lane = static_cast<int>(tid % G);
    // c is the same for the G lanes of a group, so with G = 32 the shuffles see a full warp.
    for (i64 c = tid / G; c < cols; c += groups) {
        Sums a;
        for (i64 k = lane; k < chunks; k += G) {
            a.s1 += part[(0 * chunks + k) * cols + c];
            if (!kShiftPass) {
                a.s2 += part[(1 * chunks + k) * cols + c];
                a.sq += part[(2 * chunks + k) * cols + c];
            }
        }
#pragma unroll
        for (int o = G / 2; o > 0; o >>= 1) {
            a.s1 += __shfl_xor_sync(0xffffffffu, a.s1, o);
            if (!kShiftPass) {
                a.s2 += __shfl_xor_sync(0xffffffffu, a.s2, o);
                a.sq += __shfl_xor_sync(0xffffffffu, a.sq, o);
            }
        }
        // One division, in every lane (the butterfly left them equal): dividing after the lane
        // branch makes ptxas spill around the division's slow-path call. S1²/n is then formed as
        // S1·(S1/n), within an ulp of the CPU's (S1·S1)/n.
        const double q = a.s1 / static_cast<double>(rows);
        if (lane != 0) continue;
        if (kShiftPass) {
            shift_out[c] = q;
            continue;
        }
        if (sum_shifted) sum_shifted[c] = a.s1;
        if (mean) mean[c] = shift[c] + q;
        if (m2) {
            // Clamped like the CPU (std::max(0.0, ·)): rounding can take a constant column below 0.
            const double d = a.s2 - a.s1 * q;
            m2[c] = 0.0 < d ? d : 0.0;
        }
        if (sumsq) sumsq[c] = a.sq;
        if (!isfinite(a.s1) || !isfinite(a.s2) || !isfinite(a.sq)) *nonfinite = 1;
    }
}

// ---- standardize: kernel ---------------------------------------------------------------------

constexpr int kTile = 32;
constexpr int kTileRowsPerPass = kBlockThreads / kTile;  // block (32, 8): 4 passes per tile

template <class T, class O, bool kTranspose>
__global__ void __launch_bounds__(kBlockThreads)
standardize_kernel(const T* __restrict__ x, i64 rows, i64 cols, i64 row_stride, i64 col_stride,
                   const double* __restrict__ row_shift, const double* __restrict__ col_shift,
                   const double* __restrict__ row_scale, O* __restrict__ out, i64 out_rows, i64 out_cols,
                   i64 ld_out, i64 tiles_c, i64 ntiles) {
    // +1 column: the transposed read (fixed column, lanes along rows) hits distinct banks.
    CG_STATIC_SHARED(double, tile, [kTranspose ? kTile : 1][kTile + 1]);
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (i64 t = blockIdx.x; t < ntiles; t += gridDim.x) {
        const i64 r0 = (t / tiles_c) * kTile, c0 = (t % tiles_c) * kTile;
        const bool has_data = r0 < rows && c0 < cols;  // block-uniform: padding tiles skip the read
        if constexpr (kTranspose) {
            if (has_data) {
                __syncthreads();  // the previous tile's readers are done with `tile`
                const i64 r = r0 + tx;
#pragma unroll
                for (int j = 0; j < kTile; j += kTileRowsPerPass) {
                    const i64 c = c0 + ty + j;
                    tile[tx][ty + j] = (r < rows && c < cols) ? to_double(x[r * row_stride + c * col_stride]) : 0.0;
                }
                __syncthreads();
            }
        }
        const i64 c = c0 + tx;
#pragma unroll
        for (int j = 0; j < kTile; j += kTileRowsPerPass) {
            const i64 r = r0 + ty + j;
            if (r >= out_rows || c >= out_cols) continue;
            double val = 0.0;
            if (r < rows && c < cols) {
                if constexpr (kTranspose)
                    val = tile[ty + j][tx];
                else
                    val = to_double(x[r * row_stride + c * col_stride]);
                // Same operation order as standardize_cpu, so both round identically.
                if (row_shift) val -= row_shift[r];
                if (col_shift) val -= col_shift[c];
                if (row_scale) val *= row_scale[r];
            }
            out[r * ld_out + c] = from_double<O>(val);
        }
    }
}

// ---- launch sequences --------------------------------------------------------------------------
// Every launch goes through launch(name, kernel, grid, block, args...), which is to run
// kernel<<<grid, block, 0, stream>>>(args...) and check it (column_stats_cuda.cu), or to run the
// kernel under the emulator (tests/cuda_host/emulate_column_stats.cpp). No launch uses dynamic
// shared memory; the launches of one sequence are ordered (one stream).

// Runs the partial kernel of plan `pl` over the first `rows` rows of v around `shift` (null: 0).
template <class Launch>
void launch_partials(Launch&& launch, const MatrixView& v, i64 rows, const MomentPlan& pl,
                     const double* shift, double* part) {
    if (pl.blocks > INT_MAX) throw std::invalid_argument("column_moments_cuda: too many columns");
    const unsigned grid = static_cast<unsigned>(pl.blocks);
    dispatch_elem(v.elem, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* x = static_cast<const T*>(v.data);
        if (pl.rows_contiguous) {
            launch("moments_partial_rows", moments_partial_rows<T>, dim3(grid), dim3(kBlockThreads), x, rows,
                   v.cols, v.row_stride, v.col_stride, shift, pl.rows_per_chunk, pl.chunks, part);
        } else {
            launch("moments_partial_cols", moments_partial_cols<T>, dim3(grid), dim3(kColsPerBlock, kRowLanes),
                   x, rows, v.cols, v.row_stride, v.col_stride, shift, pl.rows_per_chunk, pl.chunks,
                   pl.col_groups, part);
        }
    });
}

template <bool kShiftPass, class Launch>
void launch_reduce(Launch&& launch, int multiprocessors, const double* part, i64 chunks, i64 cols,
                   i64 rows, const double* shift, double* shift_out, double* mean, double* m2,
                   double* sumsq, double* sum_shifted, int* nonfinite) {
    const bool warp = chunks >= kWarpReduceChunks;
    const i64 threads = cols * (warp ? 32 : 1);
    // The grid-stride loop covers the rest; more than a few waves only adds block overhead.
    const i64 cap = static_cast<i64>(std::max(1, multiprocessors)) * 32;
    const unsigned grid = static_cast<unsigned>(std::min(ceil_div(threads, kBlockThreads), cap));
    if (warp) {
        launch("moments_reduce", moments_reduce<32, kShiftPass>, dim3(grid), dim3(kBlockThreads), part, chunks,
               cols, rows, shift, shift_out, mean, m2, sumsq, sum_shifted, nonfinite);
    } else {
        launch("moments_reduce", moments_reduce<1, kShiftPass>, dim3(grid), dim3(kBlockThreads), part, chunks,
               cols, rows, shift, shift_out, mean, m2, sumsq, sum_shifted, nonfinite);
    }
}

// The plans and the scratch of one column-moments call (cols > 0): partials (3 x chunks x cols),
// the computed shift (cols, only without a caller's shift), the non-finite flag. The two passes
// share the partials: the stream orders the second pass after the first pass's reduce.
struct MomentsLayout {
    int multiprocessors = 1;
    bool computed_shift = false;
    i64 shift_rows = 0;    // min(rows, kShiftRows)
    MomentPlan main, shift;  // the moments pass; the shift pass (computed_shift only)
    std::size_t part_bytes = 0, shift_bytes = 0, bytes = 0;
};

inline MomentsLayout layout_moments(const MatrixView& v, bool has_shift, int multiprocessors) {
    MomentsLayout L;
    L.multiprocessors = multiprocessors;
    L.computed_shift = !has_shift;
    L.shift_rows = std::min(v.rows, kShiftRows);
    L.main = plan_moments(v.rows, v.cols, v.row_stride, v.col_stride, multiprocessors);
    L.shift = plan_moments(L.shift_rows, v.cols, v.row_stride, v.col_stride, multiprocessors);
    const i64 chunks = std::max(L.main.chunks, has_shift ? i64{0} : L.shift.chunks);
    L.part_bytes = static_cast<std::size_t>(3 * chunks * v.cols) * sizeof(double);
    L.shift_bytes = has_shift ? 0 : static_cast<std::size_t>(v.cols) * sizeof(double);
    L.bytes = L.part_bytes + L.shift_bytes + sizeof(double);
    return L;
}

// The flag's place in the scratch; the caller zeroes it before moments_launches and reads it after.
inline int* moments_flag(const MomentsLayout& L, char* scratch) {
    return reinterpret_cast<int*>(scratch + L.part_bytes + L.shift_bytes);
}

// The kernels of one column-moments call, in order, on scratch of L.bytes bytes.
template <class Launch>
void moments_launches(Launch&& launch, const MomentsLayout& L, const MatrixView& v, const double* shift,
                      char* scratch, double* mean, double* m2, double* sumsq, double* sum_shifted) {
    double* part = reinterpret_cast<double*>(scratch);
    double* shift_buf = reinterpret_cast<double*>(scratch + L.part_bytes);
    int* flag = moments_flag(L, scratch);
    const double* used_shift = shift;
    if (L.computed_shift) {
        launch_partials(launch, v, L.shift_rows, L.shift, nullptr, part);
        launch_reduce<true>(launch, L.multiprocessors, part, L.shift.chunks, v.cols, L.shift_rows, nullptr,
                            shift_buf, nullptr, nullptr, nullptr, nullptr, flag);
        used_shift = shift_buf;
    }
    launch_partials(launch, v, v.rows, L.main, used_shift, part);
    launch_reduce<false>(launch, L.multiprocessors, part, L.main.chunks, v.cols, v.rows, used_shift, nullptr,
                         mean, m2, sumsq, sum_shifted, flag);
}

// The launch of one standardize call (shapes already validated). Tiles beyond max_blocks are
// covered by the kernel's grid-stride loop (the GPU path passes INT_MAX; a test may pass less).
template <class Launch>
void standardize_launches(Launch&& launch, const MatrixView& v, const double* row_shift,
                          const double* col_shift, const double* row_scale, void* out, Elem out_elem,
                          i64 out_rows, i64 out_cols, i64 ld_out, i64 max_blocks = INT_MAX) {
    if (out_rows == 0 || out_cols == 0) return;
    const i64 tiles_c = ceil_div(out_cols, kTile);
    const i64 ntiles = ceil_div(out_rows, kTile) * tiles_c;
    const unsigned grid = static_cast<unsigned>(std::min<i64>(ntiles, max_blocks));
    const dim3 block(kTile, kTileRowsPerPass);
    // Transpose through shared memory only when the rows are the contiguous direction.
    const bool transpose = v.rows > 1 && v.cols > 1 && iabs(v.row_stride) < iabs(v.col_stride);
    dispatch_elem(v.elem, [&](auto in_tag) {
        using T = typename decltype(in_tag)::type;
        dispatch_elem(out_elem, [&](auto out_tag) {
            using O = typename decltype(out_tag)::type;
            const T* x = static_cast<const T*>(v.data);
            O* o = static_cast<O*>(out);
            if (transpose) {
                launch("standardize_kernel", standardize_kernel<T, O, true>, dim3(grid), block, x, v.rows, v.cols,
                       v.row_stride, v.col_stride, row_shift, col_shift, row_scale, o, out_rows, out_cols,
                       ld_out, tiles_c, ntiles);
            } else {
                launch("standardize_kernel", standardize_kernel<T, O, false>, dim3(grid), block, x, v.rows,
                       v.cols, v.row_stride, v.col_stride, row_shift, col_shift, row_scale, o, out_rows,
                       out_cols, ld_out, tiles_c, ntiles);
            }
        });
    });
}

}  // namespace colstats
}  // namespace cuda
}  // namespace congruence
