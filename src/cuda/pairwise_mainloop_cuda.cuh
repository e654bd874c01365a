// Main loops of the pairwise kernels: one 128 x 128 block tile of A·Bᵀ over the whole reduction
// dimension, for A and B feature-major (K-contiguous) panels. Two families:
//   MmaMainloop<kind>  tensor cores through mma.sync (tf32, 3xTF32, bf16), cp.async 3-stage pipeline;
//   SimtMainloop<T>    plain FFMA/DFMA (float32, float64), register-staged double buffering.
// Both leave the tile in per-thread accumulators with a fixed coordinate map (row_of/col_of), so
// the epilogues (pairwise_epilogue_cuda.cuh) are written once for every precision.
//
// Built with CONGRUENCE_HOST_EMULATION defined, the instruction wrappers below call the CPU
// emulator of tests/cuda_host/simt_emulator.hpp instead of inline PTX, so the host tests can run
// these exact kernels without a GPU.
#pragma once
#ifndef CONGRUENCE_HOST_EMULATION
#include <cuda_runtime.h>
#define CG_DYNAMIC_SHARED(name) extern __shared__ __align__(16) char name[]
#else
#define CG_DYNAMIC_SHARED(name) char* name = static_cast<char*>(::cgemu::dynamic_shared())
#endif

#include <cstdint>

#include "congruence/cuda_engine.hpp"

namespace congruence {
namespace cuda {
namespace detail {

constexpr int kThreads = 256;  // 8 warps per block
constexpr int kBM = static_cast<int>(kTileRows);
constexpr int kBN = static_cast<int>(kTileCols);
static_assert(kBM == 128 && kBN == 128, "the thread maps below assume 128 x 128 tiles");
// Accumulate float32 products over this many reduction elements, then add the partial tile into
// a second accumulator: the long-sum error then grows with 256 + K/256 terms rather than K
// (METHODS.md §1.2 measured ~10x less error from chunking).
constexpr int kChunkElems = 256;

// ----------------------------------------------------------------------------- tensor cores
enum class MmaKind { tf32, tf32x3, bf16 };

constexpr int kRowBytes = 128;  // one K-tile of one panel row: 32 floats or 64 bf16, eight 16-byte chunks
constexpr int kRowWords = kRowBytes / 4;
constexpr int kStages = 3;
constexpr int kStageBytes = (kBM + kBN) * kRowBytes;
// 96 KB: fits the 99 KB opt-in limit of sm_86/sm_89 as well as Hopper's 227 KB.
constexpr int kMmaSmemBytes = kStages * kStageBytes;

// Unpadded rows with the 16-byte chunks XOR-swizzled by (row mod 8): the fragment loads of a warp
// (rows g = 0..7, words t = 0..3 of one chunk) then hit 32 distinct banks.
__host__ __device__ constexpr int swizzled_word(int row, int word) {
    return (((word >> 2) ^ (row & 7)) << 2) | (word & 3);
}

#ifndef CONGRUENCE_HOST_EMULATION
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ std::uint32_t to_tf32(float x) {
    std::uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void mma_tf32(float& d0, float& d1, float& d2, float& d3, const std::uint32_t (&a)[4],
                                         const std::uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_bf16(float& d0, float& d1, float& d2, float& d3, const std::uint32_t (&a)[4],
                                         const std::uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#else  // the CPU emulator's versions (tests/cuda_host/simt_emulator.hpp)
inline void cp_async16(void* smem, const void* gmem) { ::cgemu::cp_async16(smem, gmem); }
inline void cp_async_commit() { ::cgemu::cp_async_commit(); }
template <int N>
inline void cp_async_wait() {
    ::cgemu::cp_async_wait(N);
}
inline std::uint32_t to_tf32(float x) { return ::cgemu::to_tf32(x); }
inline void mma_tf32(float& d0, float& d1, float& d2, float& d3, const std::uint32_t (&a)[4],
                     const std::uint32_t (&b)[2]) {
    ::cgemu::mma<false>(d0, d1, d2, d3, a, b);
}
inline void mma_bf16(float& d0, float& d1, float& d2, float& d3, const std::uint32_t (&a)[4],
                     const std::uint32_t (&b)[2]) {
    ::cgemu::mma<true>(d0, d1, d2, d3, a, b);
}
#endif

// Warp grid 2 (rows) x 4 (cols); a warp owns 64 x 32 as 4 x 4 fragments of 16 x 8.
// Fragment layouts are those of the PTX ISA for m16n8k8 (tf32) and m16n8k16 (bf16): with
// g = lane / 4 and t = lane % 4, A words (g, t), (g+8, t), (g, t+4), (g+8, t+4); B words
// (n = g; t), (g; t+4); C (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1). Counting A and B in 32-bit
// words of the K-tile makes the tf32 (1 float/word) and bf16 (2 bf16/word) loads identical.
// Rows of a fragment start at multiples of 8, so (row mod 8) = g and the swizzle spreads the eight
// rows of a load over the eight 16-byte chunk positions.
template <MmaKind KIND>
struct MmaMainloop {
    using Acc = float;
    static constexpr int kAcc = 64;
    static constexpr int kMF = 4, kNF = 4;
    static constexpr bool kTwoLevel = KIND == MmaKind::tf32x3;  // input rounding dominates otherwise
    static constexpr int kElemBytes = KIND == MmaKind::bf16 ? 2 : 4;
    static constexpr int kSmemBytes = kMmaSmemBytes;
    static constexpr int kSlots = 8;     // distinct tile rows a thread holds
    static constexpr int kPartners = 16; // threads holding the same tile row

    __host__ __device__ static int row_of(int e, int tid) {
        const int lane = tid & 31, warp = tid >> 5;
        const int mi = e / 16, c = e & 3;
        return (warp >> 2) * 64 + mi * 16 + (lane >> 2) + ((c >> 1) << 3);
    }
    __host__ __device__ static int col_of(int e, int tid) {
        const int lane = tid & 31, warp = tid >> 5;
        const int ni = (e / 4) & 3, c = e & 3;
        return (warp & 3) * 32 + ni * 8 + 2 * (lane & 3) + (c & 1);
    }
    __host__ __device__ static constexpr int slot_of(int e) { return (e / 16) * 2 + ((e & 3) >> 1); }
    __host__ __device__ static int slot_row(int slot, int tid) {
        const int lane = tid & 31, warp = tid >> 5;
        return (warp >> 2) * 64 + (slot >> 1) * 16 + (lane >> 2) + (slot & 1) * 8;
    }
    __host__ __device__ static int partner_of(int tid) { return (tid >> 5 & 3) * 4 + (tid & 3); }

    __device__ static void load_stage(char* stage, const char* ga, const char* gb, std::int64_t lda_bytes,
                                      std::int64_t ldb_bytes, int kt, int tid) {
        char* sa = stage;
        char* sb = stage + kBM * kRowBytes;
#pragma unroll
        for (int i = 0; i < (kBM * kRowBytes / 16) / kThreads; ++i) {
            const int chunk = tid + i * kThreads;
            const int row = chunk >> 3, col = (chunk & 7) * 16;
            const int dst = row * kRowBytes + swizzled_word(row, col / 4) * 4;
            cp_async16(sa + dst, ga + row * lda_bytes + std::int64_t(kt) * kRowBytes + col);
            cp_async16(sb + dst, gb + row * ldb_bytes + std::int64_t(kt) * kRowBytes + col);
        }
    }

    __device__ static void compute_stage(const char* stage, float (&acc)[kAcc], int tid) {
        const std::uint32_t* wa = reinterpret_cast<const std::uint32_t*>(stage);
        const std::uint32_t* wb = reinterpret_cast<const std::uint32_t*>(stage + kBM * kRowBytes);
        const int lane = tid & 31, warp = tid >> 5;
        const int g = lane >> 2, t = lane & 3;
        const int m0 = (warp >> 2) * 64, n0 = (warp & 3) * 32;
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            const int w = ks * 8 + t;
            std::uint32_t bh[kNF][2], bl[kNF][2];
#pragma unroll
            for (int ni = 0; ni < kNF; ++ni) {
                const int n = n0 + ni * 8 + g;
                const std::uint32_t b0 = wb[n * kRowWords + swizzled_word(n, w)];
                const std::uint32_t b1 = wb[n * kRowWords + swizzled_word(n, w + 4)];
                if constexpr (KIND == MmaKind::bf16) {
                    bh[ni][0] = b0;
                    bh[ni][1] = b1;
                } else {
                    bh[ni][0] = to_tf32(__uint_as_float(b0));
                    bh[ni][1] = to_tf32(__uint_as_float(b1));
                    if constexpr (KIND == MmaKind::tf32x3) {
                        bl[ni][0] = to_tf32(__uint_as_float(b0) - __uint_as_float(bh[ni][0]));
                        bl[ni][1] = to_tf32(__uint_as_float(b1) - __uint_as_float(bh[ni][1]));
                    }
                }
            }
#pragma unroll
            for (int mi = 0; mi < kMF; ++mi) {
                const int m = m0 + mi * 16 + g;
                const std::uint32_t raw[4] = {wa[m * kRowWords + swizzled_word(m, w)],
                                              wa[(m + 8) * kRowWords + swizzled_word(m + 8, w)],
                                              wa[m * kRowWords + swizzled_word(m, w + 4)],
                                              wa[(m + 8) * kRowWords + swizzled_word(m + 8, w + 4)]};
                std::uint32_t ah[4], al[4];
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    if constexpr (KIND == MmaKind::bf16) {
                        ah[r] = raw[r];
                    } else {
                        ah[r] = to_tf32(__uint_as_float(raw[r]));
                        if constexpr (KIND == MmaKind::tf32x3)
                            al[r] = to_tf32(__uint_as_float(raw[r]) - __uint_as_float(ah[r]));
                    }
                }
#pragma unroll
                for (int ni = 0; ni < kNF; ++ni) {
                    const int e = (mi * kNF + ni) * 4;
                    float &d0 = acc[e], &d1 = acc[e + 1], &d2 = acc[e + 2], &d3 = acc[e + 3];
                    if constexpr (KIND == MmaKind::bf16) {
                        mma_bf16(d0, d1, d2, d3, ah, bh[ni]);
                    } else if constexpr (KIND == MmaKind::tf32) {
                        mma_tf32(d0, d1, d2, d3, ah, bh[ni]);
                    } else {  // small cross terms first, then the big product (3xTF32)
                        mma_tf32(d0, d1, d2, d3, al, bh[ni]);
                        mma_tf32(d0, d1, d2, d3, ah, bl[ni]);
                        mma_tf32(d0, d1, d2, d3, ah, bh[ni]);
                    }
                }
            }
        }
    }

    // acc = A[row0:row0+128] · B[col0:col0+128]ᵀ over k_bytes of each panel row.
    __device__ static void run(const char* ga, std::int64_t lda_bytes, const char* gb, std::int64_t ldb_bytes,
                               std::int64_t k_bytes, char* smem, float (&acc)[kAcc], int tid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
        __trap();  // the host refuses tensor-core precisions below compute capability 8.0
#else
        const int nk = static_cast<int>(k_bytes / kRowBytes);
        constexpr int kChunkTiles = kChunkElems * kElemBytes / kRowBytes;
        float part[kAcc];
#pragma unroll
        for (int e = 0; e < kAcc; ++e) acc[e] = 0.f, part[e] = 0.f;
#pragma unroll
        for (int s = 0; s < kStages - 1; ++s) {
            if (s < nk) load_stage(smem + s * kStageBytes, ga, gb, lda_bytes, ldb_bytes, s, tid);
            cp_async_commit();
        }
        for (int kt = 0; kt < nk; ++kt) {
            cp_async_wait<kStages - 2>();
            __syncthreads();  // stage kt landed for everyone; stage kt-1 is free to refill
            const int next = kt + kStages - 1;
            if (next < nk) load_stage(smem + (next % kStages) * kStageBytes, ga, gb, lda_bytes, ldb_bytes, next, tid);
            cp_async_commit();
            if constexpr (kTwoLevel) {
                compute_stage(smem + (kt % kStages) * kStageBytes, part, tid);
                if ((kt + 1) % kChunkTiles == 0 || kt + 1 == nk) {
#pragma unroll
                    for (int e = 0; e < kAcc; ++e) acc[e] += part[e], part[e] = 0.f;
                }
            } else {
                compute_stage(smem + (kt % kStages) * kStageBytes, acc, tid);
            }
        }
        cp_async_wait<0>();
        __syncthreads();  // the epilogue may reuse the pipeline's shared memory
#endif
    }
};

// ----------------------------------------------------------------------------- SIMT
// 16 x 16 threads, each 8 x 8 outputs: rows {4ty..4ty+3, 64+4ty..64+4ty+3}, columns likewise
// with tx, so a warp's shared-memory reads are 16-byte vectors without conflicts.
template <class T>
struct SimtMainloop {
    using Acc = T;
    static constexpr int kAcc = 64;
    static constexpr int kBK = 8;
    static constexpr int kLds = kBM + 4;  // padded row of the K-major shared tiles
    static constexpr bool kTwoLevel = sizeof(T) == 4;
    static constexpr int kSmemBytes = 2 * 2 * kBK * kLds * static_cast<int>(sizeof(T));
    static constexpr int kSlots = 8;
    static constexpr int kPartners = 16;

    __host__ __device__ static int local(int r, int base) { return r < 4 ? base * 4 + r : 64 + base * 4 + (r - 4); }
    __host__ __device__ static int row_of(int e, int tid) { return local(e / 8, tid / 16); }
    __host__ __device__ static int col_of(int e, int tid) { return local(e % 8, tid % 16); }
    __host__ __device__ static constexpr int slot_of(int e) { return e / 8; }
    __host__ __device__ static int slot_row(int slot, int tid) { return local(slot, tid / 16); }
    __host__ __device__ static int partner_of(int tid) { return tid % 16; }

    // One thread's share of a 128 x 8 K-tile of one panel: row tid/2, elements 4·(tid%2)...+3.
    __device__ static void load_regs(const T* g, std::int64_t ld, int kt, int tid, T (&r)[4]) {
        const T* p = g + std::int64_t(tid >> 1) * ld + std::int64_t(kt) * kBK + (tid & 1) * 4;
        if constexpr (sizeof(T) == 4) {
            const float4 v = *reinterpret_cast<const float4*>(p);
            r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
        } else {
            const double2 v0 = *reinterpret_cast<const double2*>(p);
            const double2 v1 = *reinterpret_cast<const double2*>(p + 2);
            r[0] = v0.x, r[1] = v0.y, r[2] = v1.x, r[3] = v1.y;
        }
    }
    __device__ static void store_smem(T* s, int tid, const T (&r)[4]) {
        const int row = tid >> 1, k0 = (tid & 1) * 4;
#pragma unroll
        for (int i = 0; i < 4; ++i) s[(k0 + i) * kLds + row] = r[i];
    }

    __device__ static void compute(const T* sa, const T* sb, T (&acc)[kAcc], int tid) {
        const int ty = tid / 16, tx = tid % 16;
#pragma unroll
        for (int k = 0; k < kBK; ++k) {
            T a[8], b[8];
#pragma unroll
            for (int r = 0; r < 8; ++r) {
                a[r] = sa[k * kLds + local(r, ty)];
                b[r] = sb[k * kLds + local(r, tx)];
            }
#pragma unroll
            for (int r = 0; r < 8; ++r)
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r * 8 + c] = fma(a[r], b[c], acc[r * 8 + c]);
        }
    }

    __device__ static void run(const char* ga, std::int64_t lda_bytes, const char* gb, std::int64_t ldb_bytes,
                               std::int64_t k_bytes, char* smem, T (&acc)[kAcc], int tid) {
        const T* A = reinterpret_cast<const T*>(ga);
        const T* B = reinterpret_cast<const T*>(gb);
        const std::int64_t lda = lda_bytes / static_cast<std::int64_t>(sizeof(T));
        const std::int64_t ldb = ldb_bytes / static_cast<std::int64_t>(sizeof(T));
        const int nk = static_cast<int>(k_bytes / static_cast<std::int64_t>(sizeof(T)) / kBK);
        constexpr int kChunkTiles = kChunkElems / kBK;
        // Buffer b holds A at base + 2b·kBK·kLds and B right after it; computed, not indexed, so
        // the pointers stay in registers.
        T* const base = reinterpret_cast<T*>(smem);
        auto sa = [base](int b) { return base + b * 2 * kBK * kLds; };
        auto sb = [base](int b) { return base + b * 2 * kBK * kLds + kBK * kLds; };
        T part[kAcc];
#pragma unroll
        for (int e = 0; e < kAcc; ++e) acc[e] = T(0), part[e] = T(0);
        T ra[4], rb[4];
        load_regs(A, lda, 0, tid, ra);
        load_regs(B, ldb, 0, tid, rb);
        store_smem(sa(0), tid, ra);
        store_smem(sb(0), tid, rb);
        __syncthreads();
        for (int kt = 0; kt < nk; ++kt) {
            const int buf = kt & 1;
            if (kt + 1 < nk) {
                load_regs(A, lda, kt + 1, tid, ra);
                load_regs(B, ldb, kt + 1, tid, rb);
            }
            if constexpr (kTwoLevel) {
                compute(sa(buf), sb(buf), part, tid);
                if ((kt + 1) % kChunkTiles == 0 || kt + 1 == nk) {
#pragma unroll
                    for (int e = 0; e < kAcc; ++e) acc[e] += part[e], part[e] = T(0);
                }
            } else {
                compute(sa(buf), sb(buf), acc, tid);
            }
            if (kt + 1 < nk) {
                store_smem(sa(buf ^ 1), tid, ra);
                store_smem(sb(buf ^ 1), tid, rb);
            }
            __syncthreads();
        }
    }
};

}  // namespace detail
}  // namespace cuda
}  // namespace congruence
