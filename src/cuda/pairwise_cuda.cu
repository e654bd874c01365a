// The tiled pairwise engine on the GPU: kernels (main loop x epilogue) and their host launchers.
//
// Scheduling. Dense and threshold outputs use a 2-D grid of independent 128 x 128 tiles. The
// top-k reductions are row-stationary: block (x, y) owns rows [128x, 128x + 128) of A and sweeps
// the column tiles of segment y left to right, keeping its running state in registers (k = 1) or
// in per-row lists that only it touches, so no n_a x n_b buffer exists. A merge kernel then
// combines the segments' lists in segment order (every index of segment s is below every index
// of segment s + 1, so "equal keys keep arrival order" still means "lowest index wins").
#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common_cuda.cuh"
#include "pairwise_epilogue_cuda.cuh"

namespace congruence {
namespace cuda {
namespace detail {

template <class ML, class EPI>
__global__ void __launch_bounds__(kThreads, 1) pairwise_kernel(const Job job) {
    extern __shared__ __align__(16) char smem[];
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

// ----------------------------------------------------------------------------- host side
template <class ML>
struct Tag {
    using type = ML;
};

template <class F>
void with_mainloop(Precision p, F&& f) {
    switch (p) {
        case Precision::float32: return f(Tag<SimtMainloop<float>>{});
        case Precision::float64: return f(Tag<SimtMainloop<double>>{});
        case Precision::tf32: return f(Tag<MmaMainloop<MmaKind::tf32>>{});
        case Precision::tf32x3: return f(Tag<MmaMainloop<MmaKind::tf32x3>>{});
        case Precision::bf16: return f(Tag<MmaMainloop<MmaKind::bf16>>{});
    }
    throw std::invalid_argument("unknown precision");
}

const char* precision_name(Precision p) {
    switch (p) {
        case Precision::float32: return "float32";
        case Precision::tf32: return "tf32";
        case Precision::tf32x3: return "3xtf32";
        case Precision::bf16: return "bf16";
        default: return "float64";
    }
}

std::int64_t elem_bytes(Elem e) { return e == Elem::float64 ? 8 : (e == Elem::float32 ? 4 : 2); }

void check_precision_supported(int device, Precision p) {
    if (p == Precision::float32 || p == Precision::float64) return;
    int major = 0;
    CG_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    if (major < 8)
        throw std::invalid_argument(std::string("precision '") + precision_name(p) +
                                    "' needs tensor cores with TF32/BF16 (compute capability >= 8.0); "
                                    "use precision='float32'");
}

Job make_job(Precision p, const Panel& a, const Panel& b, const Epilogue& ep) {
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
    job.col_tiles = ceil_div(ep.nb, kTileCols);
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

template <class ML, class EPI>
void launch(const Stream& s, dim3 grid, const Job& job, const char* name) {
    constexpr int smem = ML::kSmemBytes > EPI::kSmemBytes ? ML::kSmemBytes : EPI::kSmemBytes;
    auto kernel = pairwise_kernel<ML, EPI>;
    if (smem > 48 * 1024) {
        int optin = 0;
        CG_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, s.device));
        if (smem > optin)
            throw std::runtime_error(std::string(name) + " needs " + std::to_string(smem) +
                                     " bytes of shared memory per block; this device allows " + std::to_string(optin));
        CG_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    }
    if (grid.y > 65535u) throw std::invalid_argument(std::string(name) + ": too many column tiles for one launch");
    kernel<<<grid, kThreads, smem, stream_of(s)>>>(job);
    CG_CUDA_CHECK_LAUNCH(name);
}

dim3 tile_grid(const Job& job) {
    return dim3(static_cast<unsigned>(ceil_div(job.na, kTileRows)),
                static_cast<unsigned>(std::min<std::int64_t>(job.col_tiles, 65535)));
}

template <class ML, int KK>
void topk_launch(const Stream& s, Job job, void* values, std::int64_t* indices) {
    using T = typename ML::Acc;
    const dim3 grid(static_cast<unsigned>(ceil_div(job.na, kTileRows)), static_cast<unsigned>(job.segments));
    if (job.k == 1)
        launch<ML, Top1Epilogue<ML>>(s, grid, job, "pairwise top-1 kernel");
    else
        launch<ML, TopKEpilogue<ML, KK>>(s, grid, job, "pairwise top-k kernel");
    constexpr int kMergeThreads = 256;
    const auto blocks = static_cast<unsigned>(ceil_div(job.na, kMergeThreads / 32));
    topk_merge_kernel<T, KK><<<blocks, kMergeThreads, 0, stream_of(s)>>>(
        static_cast<const T*>(job.list_values), job.list_indices, job.segments, job.na, job.k, job.absolute,
        static_cast<T*>(values), indices);
    CG_CUDA_CHECK_LAUNCH("top-k merge kernel");
}

}  // namespace detail

void pairwise_dense_cuda(const Stream& s, Precision prec, const Panel& a, const Panel& b, const Epilogue& ep,
                         void* c, Elem out_elem, std::int64_t ldc, bool accumulate) {
    using namespace detail;
    DeviceGuard guard(s);
    check_precision_supported(s.device, prec);
    if (out_elem != Elem::float32 && out_elem != Elem::float64)
        throw std::invalid_argument("pairwise_dense: output must be float32 or float64");
    if (!c || ldc < ep.nb) throw std::invalid_argument("pairwise_dense: null output or ldc < nb");
    if (accumulate && out_elem != Elem::float64)
        throw std::invalid_argument("pairwise_dense: accumulate needs a float64 output");
    Job job = make_job(prec, a, b, ep);
    job.out = c;
    job.ldc = ldc;
    job.accumulate = accumulate;
    job.vector_store = ldc % 2 == 0 && reinterpret_cast<std::uintptr_t>(c) % (2 * elem_bytes(out_elem)) == 0;
    with_mainloop(prec, [&](auto tag) {
        using ML = typename decltype(tag)::type;
        if (out_elem == Elem::float64)
            launch<ML, DenseEpilogue<ML, double>>(s, tile_grid(job), job, "pairwise dense kernel");
        else
            launch<ML, DenseEpilogue<ML, float>>(s, tile_grid(job), job, "pairwise dense kernel");
    });
}

void pairwise_topk_cuda(const Stream& s, Precision prec, const Panel& a, const Panel& b, const Epilogue& ep,
                        std::int64_t k, void* values, std::int64_t* indices, int segments, void* scratch_values,
                        std::int32_t* scratch_indices) {
    using namespace detail;
    DeviceGuard guard(s);
    check_precision_supported(s.device, prec);
    if (k < 1 || k > kMaxTopK) throw std::invalid_argument("pairwise_topk: k must be in [1, 256]");
    if (!values || !indices) throw std::invalid_argument("pairwise_topk: null output");
    Job job = make_job(prec, a, b, ep);
    if (segments < 1 || segments > 65535) throw std::invalid_argument("pairwise_topk: segments must be in [1, 65535]");
    job.k = static_cast<int>(k);
    job.segments = static_cast<int>(std::min<std::int64_t>(segments, job.col_tiles));
    const std::int64_t value_bytes = prec == Precision::float64 ? 8 : 4;
    const std::size_t entries = static_cast<std::size_t>(job.segments) * job.na * k;
    // Lists go to the caller's scratch when given (its allocator, its memory budget), else to
    // stream-ordered memory released after the merge.
    const bool own = scratch_values == nullptr || scratch_indices == nullptr;
    AsyncScratch lv(own ? entries * value_bytes : 0, stream_of(s));
    AsyncScratch li(own ? entries * sizeof(std::int32_t) : 0, stream_of(s));
    job.list_values = own ? static_cast<void*>(lv.get()) : scratch_values;
    job.list_indices = own ? reinterpret_cast<std::int32_t*>(li.get()) : scratch_indices;
    with_mainloop(prec, [&](auto tag) {
        using ML = typename decltype(tag)::type;
        if (k <= 32) topk_launch<ML, 1>(s, job, values, indices);
        else if (k <= 64) topk_launch<ML, 2>(s, job, values, indices);
        else if (k <= 128) topk_launch<ML, 4>(s, job, values, indices);
        else topk_launch<ML, 8>(s, job, values, indices);
    });
    lv.free();
    li.free();
}

std::int64_t pairwise_threshold_cuda(const Stream& s, Precision prec, const Panel& a, const Panel& b,
                                     const Epilogue& ep, double threshold, std::int64_t* rows, std::int64_t* cols,
                                     void* values, std::int64_t capacity, unsigned long long* counter) {
    using namespace detail;
    DeviceGuard guard(s);
    check_precision_supported(s.device, prec);
    Job job = make_job(prec, a, b, ep);
    if (!counter || capacity < 0 || (capacity > 0 && (!rows || !cols || !values)))
        throw std::invalid_argument("pairwise_threshold: null outputs or counter");
    job.threshold = threshold;
    job.pair_rows = rows;
    job.pair_cols = cols;
    job.pair_values = values;
    job.capacity = capacity;
    job.counter = counter;
    const cudaStream_t st = stream_of(s);
    CG_CUDA_CHECK(cudaMemsetAsync(counter, 0, sizeof(unsigned long long), st));
    with_mainloop(prec, [&](auto tag) {
        using ML = typename decltype(tag)::type;
        launch<ML, ThresholdEpilogue<ML>>(s, tile_grid(job), job, "pairwise threshold kernel");
    });
    unsigned long long count = 0;
    CG_CUDA_CHECK(cudaMemcpyAsync(&count, counter, sizeof count, cudaMemcpyDeviceToHost, st));
    CG_CUDA_CHECK(cudaStreamSynchronize(st));
    return static_cast<std::int64_t>(count);
}

}  // namespace cuda
}  // namespace congruence
