// Column moments and the standardising panel copy on the GPU: the host entry points. The kernels,
// their planner and their launch sequences are in column_stats_kernels_cuda.cuh (which documents
// them); here they run on the caller's stream, with stream-ordered scratch and checked launches.
#include <climits>
#include <cstdint>
#include <stdexcept>

#include "column_stats_kernels_cuda.cuh"
#include "common_cuda.cuh"

namespace congruence {
namespace cuda {
namespace {

// The `launch` of the sequences in column_stats_kernels_cuda.cuh: one checked launch on `st`.
struct StreamLaunch {
    cudaStream_t st;
    template <class... P, class... A>
    void operator()(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, A... args) const {
        kernel<<<grid, block, 0, st>>>(args...);
        CG_CUDA_CHECK_LAUNCH(name);
    }
};

}  // namespace

bool column_moments_cuda(const Stream& s, const MatrixView& v, const double* shift, double* mean,
                         double* m2, double* sumsq, double* sum_shifted) {
    if (v.rows < 0 || v.cols < 0) throw std::invalid_argument("column_moments_cuda: negative shape");
    DeviceGuard guard(s);
    const cudaStream_t st = stream_of(s);
    if (v.cols == 0) return true;
    int sms = 0;
    CG_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, s.device));

    const colstats::MomentsLayout layout = colstats::layout_moments(v, shift != nullptr, sms);
    AsyncScratch scratch(layout.bytes, st);
    int* flag = colstats::moments_flag(layout, scratch.get());
    CG_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), st));
    colstats::moments_launches(StreamLaunch{st}, layout, v, shift, scratch.get(), mean, m2, sumsq, sum_shifted);

    int host_flag = 0;
    CG_CUDA_CHECK(cudaMemcpyAsync(&host_flag, flag, sizeof(int), cudaMemcpyDeviceToHost, st));
    scratch.free();
    CG_CUDA_CHECK(cudaStreamSynchronize(st));
    return host_flag == 0;
}

void standardize_cuda(const Stream& s, const MatrixView& v, const double* row_shift,
                      const double* col_shift, const double* row_scale, void* out, Elem out_elem,
                      std::int64_t out_rows, std::int64_t out_cols, std::int64_t ld_out) {
    if (v.rows < 0 || v.cols < 0 || out_rows < v.rows || out_cols < v.cols || ld_out < out_cols)
        throw std::invalid_argument("standardize_cuda: output smaller than the input (or bad ld_out)");
    DeviceGuard guard(s);
    colstats::standardize_launches(StreamLaunch{stream_of(s)}, v, row_shift, col_shift, row_scale, out, out_elem,
                                   out_rows, out_cols, ld_out, INT_MAX);
}

}  // namespace cuda
}  // namespace congruence
