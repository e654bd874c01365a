// The correctness oracle and the device properties the planner needs.
//
// reference_product_cuda is deliberately naive: one thread per output element, reading both
// operands straight from their strided views through the generic element load, summing over k in
// increasing order with an explicit fused multiply-add in float64. It shares no code with the
// tiled kernels (no panels, no tensor cores, no shared memory), so an agreement between the two is
// evidence about the tiled kernels rather than about shared helpers. Speed is irrelevant here.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>

#include "common_cuda.cuh"

namespace congruence {
namespace cuda {
namespace {

using i64 = std::int64_t;

__global__ void __launch_bounds__(256)
reference_product_kernel(MatrixView a, MatrixView b, double* __restrict__ c, i64 ldc) {
    const i64 total = a.cols * b.cols;
    const i64 stride = static_cast<i64>(gridDim.x) * blockDim.x;
    for (i64 idx = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const i64 i = idx / b.cols, j = idx % b.cols;
        double acc = 0.0;
        for (i64 k = 0; k < a.rows; ++k)
            acc = fma(load_as_double(a.data, a.elem, k * a.row_stride + i * a.col_stride),
                      load_as_double(b.data, b.elem, k * b.row_stride + j * b.col_stride), acc);
        c[i * ldc + j] = acc;
    }
}

}  // namespace

void reference_product_cuda(const Stream& s, const MatrixView& a, const MatrixView& b, double* c,
                            std::int64_t ldc) {
    if (a.rows != b.rows)
        throw std::invalid_argument("reference_product_cuda: A and B need the same number of rows (K)");
    if (a.rows < 0 || a.cols < 0 || b.cols < 0) throw std::invalid_argument("reference_product_cuda: negative shape");
    if (ldc < b.cols) throw std::invalid_argument("reference_product_cuda: ldc < nb");
    DeviceGuard guard(s);
    const i64 total = a.cols * b.cols;
    if (total == 0) return;
    constexpr int kThreads = 256;
    const unsigned grid = static_cast<unsigned>(std::min<i64>(ceil_div(total, kThreads), INT_MAX));
    reference_product_kernel<<<grid, kThreads, 0, stream_of(s)>>>(a, b, c, ldc);
    CG_CUDA_CHECK_LAUNCH("reference_product_kernel");
}

DeviceProperties device_properties_cuda(int device) {
    cudaDeviceProp prop{};
    CG_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    DeviceProperties p;
    p.multiprocessors = prop.multiProcessorCount;
    p.major = prop.major;
    p.minor = prop.minor;
    p.shared_per_block_optin = static_cast<std::int64_t>(prop.sharedMemPerBlockOptin);
    p.total_memory = static_cast<std::int64_t>(prop.totalGlobalMem);
    return p;
}

Precision default_precision_cuda(int device) {
    // A single attribute: cheaper than the whole property struct.
    int major = 0;
    CG_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    return major >= 8 ? Precision::tf32x3 : Precision::float32;
}

}  // namespace cuda
}  // namespace congruence
