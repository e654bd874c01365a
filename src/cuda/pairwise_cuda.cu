// The tiled pairwise engine on the GPU: host launchers of the kernels in
// pairwise_kernels_cuda.cuh (which documents the scheduling).
#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common_cuda.cuh"
#include "pairwise_kernels_cuda.cuh"

namespace congruence {
namespace cuda {
namespace detail {

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

void check_precision_supported(int device, Precision p) {
    if (p == Precision::float32 || p == Precision::float64) return;
    int major = 0;
    CG_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    if (major < 8)
        throw std::invalid_argument(std::string("precision '") + precision_name(p) +
                                    "' needs tensor cores with TF32/BF16 (compute capability >= 8.0); "
                                    "use precision='float32'");
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
                         void* c, Elem out_elem, std::int64_t ldc, bool accumulate, bool symmetric) {
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
    if (symmetric && (a.data != b.data || ep.na != ep.nb || ep.col_bias))
        throw std::invalid_argument("pairwise_dense: symmetric needs one panel as both operands and no column bias");
    job.symmetric = symmetric;
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
