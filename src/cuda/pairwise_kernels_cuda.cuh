// The tiled pairwise engine on the GPU: the kernels (main loop x epilogue), the segment merge,
// and the host-side job description they run on. Device code only (plus make_job), so the host
// emulator of tests/cuda_host/ compiles this file as it is.
//
// Scheduling. Dense and threshold outputs use a 2-D grid of independent 128 x 128 tiles. The
// top-k reductions are row-stationary: block (x, y) owns rows [128x, 128x + 128) of A and sweeps
// the column tiles of segment y left to right, keeping its running state in registers (k = 1) or
// in per-row lists that only it touches, so no n_a x n_b buffer exists. A merge kernel then
// combines the segments' lists in segment order (every index of segment s is below every index
// of segment s + 1, so "equal keys keep arrival order" still means "lowest index wins").
#pragma once
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "pairwise_epilogue_cuda.cuh"

namespace congruence {
namespace cuda {
namespace detail {

template <class ML, class EPI>
__global__ void __launch_bounds__(kThreads, 1) pairwise_kernel(const Job job) {
    CG_DYNAMIC_SHARED(smem);
    const int tid = threadIdx.x;
    const std::int64_t row0 = std::int64_t(blockIdx.x) * kBM;
    // Sweeps own a segment of column tiles; the stateless epilogues stride over the column tiles
    // with gridDim.y (which is capped at 65535) so any width fits one launch.
    std::int64_t t0 = blockIdx.y, t1 = job.col_tiles, step = gridDim.y;
    if (EPI::kSweep) {
        segment_tiles(job, t0, t1);
        step = 1;
    }
    EPI epi;
    epi.begin(job, row0, smem, tid);
    const char* a = job.a + row0 * job.lda_bytes;
    for (std::int64_t t = t0; t < t1; t += step) {
        if (job.symmetric && t < std::int64_t(blockIdx.x)) continue;  // mirrored by tile (t, x)
        typename ML::Acc acc[ML::kAcc];
        ML::run(a, job.lda_bytes, job.b + t * kBN * job.ldb_bytes, job.ldb_bytes, job.k_bytes, smem, acc, tid);
        epi.tile(job, acc, row0, t * kBN, smem, tid);
    }
    epi.end(job, row0, smem, tid);
}

// One warp per row: merge the segments' lists (each sorted, descending key, ties by index) in
// segment order into the caller's (na, k) outputs; unfilled slots become (NaN, -1).
template <class T, int KK>
__global__ void topk_merge_kernel(const T* list_values, const std::int32_t* list_indices, int segments,
                                  std::int64_t na, int k, bool absolute, T* values, std::int64_t* indices) {
    const int lane = threadIdx.x & 31;
    const std::int64_t row = std::int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
    if (row >= na) return;
    WarpList<T, KK> list;
    list.clear();
    T bar = neg_inf<T>();
    for (int s = 0; s < segments; ++s) {
        const T* lv = list_values + (std::int64_t(s) * na + row) * k;
        const std::int32_t* li = list_indices + (std::int64_t(s) * na + row) * k;
        bool done = false;
        for (int p0 = 0; p0 < k && !done; p0 += 32) {
            const int p = p0 + lane;
            const std::int32_t ix = p < k ? li[p] : -1;
            const T v = ix >= 0 ? lv[p] : quiet_nan<T>();
            const T key = key_of(v, absolute);
            unsigned m = __ballot_sync(kFullMask, ix >= 0);
            while (m) {
                const int src = __ffs(m) - 1;
                m &= m - 1;
                const T ck = __shfl_sync(kFullMask, key, src);
                const T cv = __shfl_sync(kFullMask, v, src);
                const std::int32_t cj = __shfl_sync(kFullMask, ix, src);
                if (!(ck > bar)) {  // the list is sorted: nothing after this entry can enter either
                    done = true;
                    break;
                }
                bar = list.insert(ck, cv, cj, k, lane);
            }
            if (__ballot_sync(kFullMask, ix < 0) != 0) done = true;  // unfilled slots are at the tail
        }
    }
#pragma unroll
    for (int r = 0; r < KK; ++r) {
        const int p = r * 32 + lane;
        if (p < k) {
            values[row * k + p] = list.idx[r] >= 0 ? list.val[r] : quiet_nan<T>();
            indices[row * k + p] = list.idx[r];
        }
    }
}

inline std::int64_t elem_bytes(Elem e) { return e == Elem::float64 ? 8 : (e == Elem::float32 ? 4 : 2); }

// The job of one launch from the panels and the epilogue; refuses what the kernels cannot read.
inline Job make_job(Precision p, const Panel& a, const Panel& b, const Epilogue& ep) {
    // The main loops read whole 128-row, 64-element tiles with no bounds checks: refuse any panel
    // that does not have that shape, whoever the caller is.
    for (const Panel* q : {&a, &b}) {
        if (!q->data || q->rows <= 0 || q->rows % kPanelRowAlign || q->k <= 0 || q->k % kPanelKAlign || q->ld < q->k)
            throw std::invalid_argument("pairwise: panels must be non-null, rows padded to 128, k padded to 64, ld >= k");
    }
    if (a.k != b.k) throw std::invalid_argument("pairwise: panels differ in their reduction dimension");
    if (ep.na > a.rows || ep.nb > b.rows || ep.na < 1 || ep.nb < 1)
        throw std::invalid_argument("pairwise: logical sizes exceed the panels");
    if (ep.nb > std::numeric_limits<std::int32_t>::max())
        throw std::invalid_argument("pairwise: more than 2^31 - 1 columns");
    const std::int64_t es = elem_bytes(panel_elem(p));
    Job job;
    job.a = static_cast<const char*>(a.data);
    job.b = static_cast<const char*>(b.data);
    job.lda_bytes = a.ld * es;
    job.ldb_bytes = b.ld * es;
    job.k_bytes = a.k * es;
    job.na = ep.na;
    job.nb = ep.nb;
    job.col_tiles = (ep.nb + kTileCols - 1) / kTileCols;
    job.absolute = ep.absolute;
    job.exclude_diagonal = ep.exclude_diagonal;
    job.col_bias = ep.col_bias;
    job.col_valid = ep.col_valid;
    job.lo = ep.lo;
    job.hi = ep.hi;
    if ((reinterpret_cast<std::uintptr_t>(a.data) | reinterpret_cast<std::uintptr_t>(b.data)) % 16 ||
        job.lda_bytes % 16 || job.ldb_bytes % 16)
        throw std::invalid_argument("pairwise: panels must be 16-byte aligned");
    return job;
}

}  // namespace detail
}  // namespace cuda
}  // namespace congruence
