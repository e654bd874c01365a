// CUDA device query. Linked with the static CUDA runtime, so the module imports on machines
// without a driver; there every call below fails cleanly and we report why.
#include "congruence/device_query.hpp"

#include <cuda_runtime.h>

namespace congruence {

CudaQuery cuda_query() {
    CudaQuery q;
    cudaRuntimeGetVersion(&q.runtime_version);
    if (cudaDriverGetVersion(&q.driver_version) != cudaSuccess) q.driver_version = 0;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        q.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + ": " +
                   cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky-free error so later queries start clean
        return q;
    }
    if (count == 0) {
        q.reason = "no CUDA device visible";
        return q;
    }
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop{};
        err = cudaGetDeviceProperties(&prop, i);
        if (err != cudaSuccess) {
            q.reason = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(err);
            return q;
        }
        CudaDeviceInfo d;
        d.index = i;
        d.name = prop.name;
        d.major = prop.major;
        d.minor = prop.minor;
        d.total_memory = static_cast<long long>(prop.totalGlobalMem);
        d.multiprocessors = prop.multiProcessorCount;
        q.devices.push_back(d);
    }
    q.usable = true;
    return q;
}

}  // namespace congruence
