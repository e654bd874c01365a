// Shared helpers of the CUDA core: error checking, the device guard, the caller's stream, and
// element loads. Included by .cu files only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "congruence/cuda_engine.hpp"

namespace congruence {
namespace cuda {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
    throw std::runtime_error(std::string("CUDA error in ") + what + " (" + file + ":" + std::to_string(line) +
                             "): " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

// Check a runtime call. Clears a non-sticky error so the next entry point starts clean.
#define CG_CUDA_CHECK(call)                                                   \
    do {                                                                      \
        cudaError_t cg_err_ = (call);                                         \
        if (cg_err_ != cudaSuccess) {                                         \
            cudaGetLastError();                                               \
            ::congruence::cuda::throw_cuda(cg_err_, #call, __FILE__, __LINE__); \
        }                                                                     \
    } while (0)

// Check the launch that just happened (configuration errors surface here; execution errors
// surface at the next synchronising call, which is checked too).
#define CG_CUDA_CHECK_LAUNCH(name)                                            \
    do {                                                                      \
        cudaError_t cg_err_ = cudaGetLastError();                             \
        if (cg_err_ != cudaSuccess)                                           \
            ::congruence::cuda::throw_cuda(cg_err_, name, __FILE__, __LINE__); \
    } while (0)

// Make `s.device` current for the lifetime of the guard and restore the caller's device after.
class DeviceGuard {
  public:
    explicit DeviceGuard(const Stream& s) {
        CG_CUDA_CHECK(cudaGetDevice(&previous_));
        if (previous_ != s.device) CG_CUDA_CHECK(cudaSetDevice(s.device));
        device_ = s.device;
    }
    ~DeviceGuard() {
        if (previous_ != device_) cudaSetDevice(previous_);
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

  private:
    int previous_ = 0;
    int device_ = 0;
};

inline cudaStream_t stream_of(const Stream& s) { return reinterpret_cast<cudaStream_t>(s.handle); }

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Stream-ordered scratch that is released on every exit path (an exception from a later check
// must not leak it); the normal path frees explicitly so that the free is checked too.
class AsyncScratch {
  public:
    AsyncScratch(std::size_t bytes, cudaStream_t st) : stream_(st) {
        if (bytes) CG_CUDA_CHECK(cudaMallocAsync(&ptr_, bytes, st));
    }
    ~AsyncScratch() {
        // Unwinding already carries an error; only keep this one from surfacing at a later check.
        if (ptr_ && cudaFreeAsync(ptr_, stream_) != cudaSuccess) cudaGetLastError();
    }
    AsyncScratch(const AsyncScratch&) = delete;
    AsyncScratch& operator=(const AsyncScratch&) = delete;
    char* get() const { return static_cast<char*>(ptr_); }
    void free() {
        void* p = ptr_;
        ptr_ = nullptr;
        if (p) CG_CUDA_CHECK(cudaFreeAsync(p, stream_));
    }

  private:
    void* ptr_ = nullptr;
    cudaStream_t stream_;
};

// Load one element of any supported type as double.
__device__ __forceinline__ double load_as_double(const void* base, Elem e, std::int64_t offset) {
    switch (e) {
        case Elem::float16:
            return static_cast<double>(__half2float(static_cast<const __half*>(base)[offset]));
        case Elem::bfloat16:
            return static_cast<double>(__bfloat162float(static_cast<const __nv_bfloat16*>(base)[offset]));
        case Elem::float32:
            return static_cast<double>(static_cast<const float*>(base)[offset]);
        default:
            return static_cast<const double*>(base)[offset];
    }
}

// Store a double rounded once to the panel element type.
__device__ __forceinline__ void store_from_double(void* base, Elem e, std::int64_t offset, double v) {
    switch (e) {
        case Elem::float16:
            static_cast<__half*>(base)[offset] = __double2half(v);
            break;
        case Elem::bfloat16:
            static_cast<__nv_bfloat16*>(base)[offset] = __double2bfloat16(v);
            break;
        case Elem::float32:
            static_cast<float*>(base)[offset] = static_cast<float>(v);
            break;
        default:
            static_cast<double*>(base)[offset] = v;
    }
}

}  // namespace cuda
}  // namespace congruence
