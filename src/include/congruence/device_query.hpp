// Device query for the CUDA module: plain C++ interface, no Python, no CUDA headers.
#pragma once
#include <string>
#include <vector>

namespace congruence {

struct CudaDeviceInfo {
    int index = 0;
    std::string name;
    int major = 0;
    int minor = 0;
    long long total_memory = 0;  // bytes
    int multiprocessors = 0;
};

struct CudaQuery {
    bool usable = false;        // a driver answered and at least one device exists
    std::string reason;         // why not, when usable is false
    int runtime_version = 0;    // CUDA runtime linked into the module (e.g. 13000)
    int driver_version = 0;     // 0 when no driver is installed
    std::vector<CudaDeviceInfo> devices;
};

// Never throws: a machine without a driver or a device gives usable=false and a reason.
CudaQuery cuda_query();

}  // namespace congruence
