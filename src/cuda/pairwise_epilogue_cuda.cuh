// Epilogues of the pairwise kernels: what happens to a 128 x 128 tile of A·Bᵀ while it is still
// in registers. Each is written once against the main loops' coordinate map (row_of / col_of /
// slot_of), so every precision shares them.
//   DenseEpilogue      store (or add into float64) the tile: the only one that writes n_a x n_b.
//   ThresholdEpilogue  append (i, j, v) with key >= threshold through a warp-aggregated counter.
//   Top1Epilogue       running max/argmax per row in registers across the column sweep.
//   TopKEpilogue       running top-k per row: the tile is staged in shared memory and each warp
//                      merges its rows' candidates into a sorted list with warp shuffles.
// Value v = clamp(acc + col_bias[j], lo, hi); key = |v| when absolute, else v. Ties: lowest j.
#pragma once
#include <cstdint>
#include <limits>

#include "pairwise_mainloop_cuda.cuh"

namespace congruence {
namespace cuda {
namespace detail {

constexpr unsigned kFullMask = 0xffffffffu;

// Everything a pairwise kernel needs; one struct so every kernel has the same signature.
struct Job {
    const char* a = nullptr;
    const char* b = nullptr;
    std::int64_t lda_bytes = 0, ldb_bytes = 0, k_bytes = 0;
    std::int64_t na = 0, nb = 0, col_tiles = 0;
    bool absolute = false, exclude_diagonal = false;
    const double* col_bias = nullptr;
    const std::uint8_t* col_valid = nullptr;
    double lo = 0, hi = 0;
    // dense
    void* out = nullptr;
    std::int64_t ldc = 0;
    bool accumulate = false, vector_store = false;
    bool symmetric = false;  // A == B: only tiles on or above the diagonal run, and mirror their values
    // top-k (lists: segments x na x k values of the accumulator type, int32 indices)
    int k = 1, segments = 1;
    void* list_values = nullptr;
    std::int32_t* list_indices = nullptr;
    // threshold
    double threshold = 0;
    std::int64_t* pair_rows = nullptr;
    std::int64_t* pair_cols = nullptr;
    void* pair_values = nullptr;
    std::int64_t capacity = 0;
    unsigned long long* counter = nullptr;
};

template <class T>
__device__ __forceinline__ T neg_inf() {
    return -std::numeric_limits<T>::infinity();
}
template <class T>
__device__ __forceinline__ T quiet_nan() {
    return std::numeric_limits<T>::quiet_NaN();
}
template <class T>
__device__ __forceinline__ T key_of(T v, bool absolute) {
    return absolute ? (v < T(0) ? -v : v) : v;
}

__device__ __forceinline__ bool selectable(const Job& job, std::int64_t i, std::int64_t j) {
    return i < job.na && j < job.nb && !(job.col_valid && !job.col_valid[j]) && !(job.exclude_diagonal && i == j);
}

template <class T>
__device__ __forceinline__ T value_of(const Job& job, T acc, std::int64_t j) {
    T v = acc;
    if (job.col_bias) v += static_cast<T>(job.col_bias[j]);
    const T lo = static_cast<T>(job.lo), hi = static_cast<T>(job.hi);
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

// Column tiles of the sweep's segment y: contiguous, increasing with y, sizes within one of each
// other (the merge relies on "every index of segment s is below every index of segment s + 1").
__device__ __forceinline__ void segment_tiles(const Job& job, std::int64_t& t0, std::int64_t& t1) {
    t0 = std::int64_t(blockIdx.y) * job.col_tiles / job.segments;
    t1 = std::int64_t(blockIdx.y + 1) * job.col_tiles / job.segments;
}

// Epilogues that keep nothing across tiles: one tile per block-step, no shared memory.
struct StatelessEpilogue {
    static constexpr int kSmemBytes = 0;
    static constexpr bool kSweep = false;
    __device__ void begin(const Job&, std::int64_t, char*, int) {}
    __device__ void end(const Job&, std::int64_t, char*, int) {}
};

// ----------------------------------------------------------------------------- dense
template <class ML, class Out>
struct DenseEpilogue : StatelessEpilogue {
    using T = typename ML::Acc;

    __device__ void tile(const Job& job, const T (&acc)[ML::kAcc], std::int64_t row0, std::int64_t col0, char*,
                         int tid) {
        Out* out = static_cast<Out*>(job.out);
        // Accumulator pairs (e, e+1) are adjacent columns of one row in every main loop's map.
#pragma unroll
        for (int e = 0; e < ML::kAcc; e += 2) {
            const std::int64_t i = row0 + ML::row_of(e, tid), j = col0 + ML::col_of(e, tid);
            if (i >= job.na || j >= job.nb) continue;
            const Out v0 = static_cast<Out>(value_of(job, acc[e], j));
            Out* p = out + i * job.ldc + j;
            if (j + 1 < job.nb) {
                const Out v1 = static_cast<Out>(value_of(job, acc[e + 1], j + 1));
                if (job.accumulate) {
                    p[0] += v0;
                    p[1] += v1;
                } else if (job.vector_store) {
                    if constexpr (sizeof(Out) == 4)
                        *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
                    else
                        *reinterpret_cast<double2*>(p) = make_double2(v0, v1);
                } else {
                    p[0] = v0;
                    p[1] = v1;
                }
            } else {
                p[0] = job.accumulate ? p[0] + v0 : v0;
            }
        }
        // Above the diagonal a symmetric product also writes its transpose (the tile below is
        // skipped). The eight rows g of a fragment are consecutive, so each mirrored store of a
        // warp covers whole 32-byte segments.
        if (job.symmetric && col0 > row0) {
#pragma unroll
            for (int e = 0; e < ML::kAcc; ++e) {
                const std::int64_t i = row0 + ML::row_of(e, tid), j = col0 + ML::col_of(e, tid);
                if (i >= job.na || j >= job.nb) continue;
                Out* q = out + j * job.ldc + i;
                const Out v = static_cast<Out>(value_of(job, acc[e], j));
                *q = job.accumulate ? *q + v : v;
            }
        }
    }
};

// ----------------------------------------------------------------------------- threshold
template <class ML>
struct ThresholdEpilogue : StatelessEpilogue {
    using T = typename ML::Acc;

    __device__ void tile(const Job& job, const T (&acc)[ML::kAcc], std::int64_t row0, std::int64_t col0, char*,
                         int tid) {
        const int lane = tid & 31;
        T* values = static_cast<T*>(job.pair_values);
#pragma unroll
        for (int e = 0; e < ML::kAcc; ++e) {
            const std::int64_t i = row0 + ML::row_of(e, tid), j = col0 + ML::col_of(e, tid);
            bool hit = false;
            T v = T(0);
            if (selectable(job, i, j)) {
                v = value_of(job, acc[e], j);
                hit = static_cast<double>(key_of(v, job.absolute)) >= job.threshold;
            }
            const unsigned mask = __ballot_sync(kFullMask, hit);
            if (!mask) continue;
            const int leader = __ffs(mask) - 1;
            unsigned long long base = 0;
            if (lane == leader) base = atomicAdd(job.counter, static_cast<unsigned long long>(__popc(mask)));
            base = __shfl_sync(kFullMask, base, leader);
            if (hit) {
                const auto slot = static_cast<std::int64_t>(base + __popc(mask & ((1u << lane) - 1u)));
                if (slot < job.capacity) {
                    job.pair_rows[slot] = i;
                    job.pair_cols[slot] = j;
                    values[slot] = v;
                }
            }
        }
    }
};

// ----------------------------------------------------------------------------- top-1
template <class T>
__device__ __forceinline__ bool better(T k1, std::int64_t j1, T k2, std::int64_t j2) {
    return k1 > k2 || (k1 == k2 && j2 >= 0 && j1 < j2);
}

template <class ML>
struct Top1Epilogue {
    using T = typename ML::Acc;
    static constexpr int kEntries = kBM * ML::kPartners;
    static constexpr int kSmemBytes = kEntries * (2 * static_cast<int>(sizeof(T)) + 8);
    static constexpr bool kSweep = true;

    T best_key[ML::kSlots], best_val[ML::kSlots];
    std::int64_t best_idx[ML::kSlots];

    __device__ void begin(const Job&, std::int64_t, char*, int) {
#pragma unroll
        for (int s = 0; s < ML::kSlots; ++s) best_key[s] = neg_inf<T>(), best_val[s] = quiet_nan<T>(), best_idx[s] = -1;
    }

    __device__ void tile(const Job& job, const T (&acc)[ML::kAcc], std::int64_t row0, std::int64_t col0, char*,
                         int tid) {
#pragma unroll
        for (int e = 0; e < ML::kAcc; ++e) {
            const std::int64_t i = row0 + ML::row_of(e, tid), j = col0 + ML::col_of(e, tid);
            if (!selectable(job, i, j)) continue;
            const T v = value_of(job, acc[e], j);
            const T key = key_of(v, job.absolute);
            const int s = ML::slot_of(e);
            if (better(key, j, best_key[s], best_idx[s])) best_key[s] = key, best_val[s] = v, best_idx[s] = j;
        }
    }

    // The 16 threads holding a row meet in shared memory; thread r picks row r's winner in a fixed
    // order with the same tie rule, so the result does not depend on scheduling.
    __device__ void end(const Job& job, std::int64_t row0, char* smem, int tid) {
        T* keys = reinterpret_cast<T*>(smem);
        T* vals = keys + kEntries;
        std::int64_t* idx = reinterpret_cast<std::int64_t*>(vals + kEntries);
        const int p = ML::partner_of(tid);
#pragma unroll
        for (int s = 0; s < ML::kSlots; ++s) {
            const int r = ML::slot_row(s, tid);
            keys[r * ML::kPartners + p] = best_key[s];
            vals[r * ML::kPartners + p] = best_val[s];
            idx[r * ML::kPartners + p] = best_idx[s];
        }
        __syncthreads();
        if (tid < kBM && row0 + tid < job.na) {
            T bk = neg_inf<T>(), bv = quiet_nan<T>();
            std::int64_t bi = -1;
            for (int q = 0; q < ML::kPartners; ++q) {
                const int at = tid * ML::kPartners + q;
                if (idx[at] >= 0 && better(keys[at], idx[at], bk, bi)) bk = keys[at], bv = vals[at], bi = idx[at];
            }
            const std::int64_t slot = std::int64_t(blockIdx.y) * job.na + row0 + tid;
            static_cast<T*>(job.list_values)[slot] = bv;
            job.list_indices[slot] = static_cast<std::int32_t>(bi);
        }
    }
};

// ----------------------------------------------------------------------------- top-k
// A warp's sorted list of up to 32·KK entries, striped over lanes (position p = 32·r + lane).
// Insertion keeps keys descending and puts a new key after equal ones; candidates arrive in
// increasing column order, so ties resolve to the lowest index.
template <class T, int KK>
struct WarpList {
    T key[KK], val[KK];
    std::int32_t idx[KK];

    __device__ void clear() {
#pragma unroll
        for (int r = 0; r < KK; ++r) key[r] = neg_inf<T>(), val[r] = quiet_nan<T>(), idx[r] = -1;
    }

    __device__ void load(const T* vals, const std::int32_t* idxs, int k, bool absolute, int lane) {
#pragma unroll
        for (int r = 0; r < KK; ++r) {
            const int p = r * 32 + lane;
            if (p < k && idxs[p] >= 0) {
                idx[r] = idxs[p];
                val[r] = vals[p];
                key[r] = key_of(val[r], absolute);
            } else {
                key[r] = neg_inf<T>(), val[r] = quiet_nan<T>(), idx[r] = -1;
            }
        }
    }

    __device__ void store(T* vals, std::int32_t* idxs, int k, int lane) const {
#pragma unroll
        for (int r = 0; r < KK; ++r) {
            const int p = r * 32 + lane;
            if (p < k) vals[p] = val[r], idxs[p] = idx[r];
        }
    }

    // Key of the k-th entry (-inf while fewer than k are held): the bar a candidate must clear.
    __device__ T bar(int k) const {
        const int rk = (k - 1) >> 5, lk = (k - 1) & 31;
        T t = neg_inf<T>();
#pragma unroll
        for (int r = 0; r < KK; ++r)
            if (r == rk) t = key[r];
        return __shfl_sync(kFullMask, t, lk);
    }

    // Warp-uniform arguments. Returns the new bar.
    __device__ T insert(T ck, T cv, std::int32_t cj, int k, int lane) {
        int pos = 0;
#pragma unroll
        for (int r = 0; r < KK; ++r) pos += __popc(__ballot_sync(kFullMask, r * 32 + lane < k && key[r] >= ck));
#pragma unroll
        for (int r = KK - 1; r >= 0; --r) {
            T uk = __shfl_up_sync(kFullMask, key[r], 1), uv = __shfl_up_sync(kFullMask, val[r], 1);
            std::int32_t ui = __shfl_up_sync(kFullMask, idx[r], 1);
            if (r > 0) {
                const T ck2 = __shfl_sync(kFullMask, key[r > 0 ? r - 1 : 0], 31);
                const T cv2 = __shfl_sync(kFullMask, val[r > 0 ? r - 1 : 0], 31);
                const std::int32_t ci2 = __shfl_sync(kFullMask, idx[r > 0 ? r - 1 : 0], 31);
                if (lane == 0) uk = ck2, uv = cv2, ui = ci2;
            }
            const int p = r * 32 + lane;
            if (p > pos) {
                key[r] = uk, val[r] = uv, idx[r] = ui;
            } else if (p == pos) {
                key[r] = ck, val[r] = cv, idx[r] = cj;
            }
        }
        return bar(k);
    }
};

template <class ML, int KK>
struct TopKEpilogue {
    using T = typename ML::Acc;
    // +8: the (e, e+1) pair stores of a warp's fragment rows land in distinct banks.
    static constexpr int kLds = kBN + 8;
    // The tile is staged in passes of kPassRows rows so that float64 fits the shared memory of
    // 99 KB parts too (128 x 136 doubles would need 136 KB).
    static constexpr int kPassRows = sizeof(T) == 8 ? kBM / 2 : kBM;
    static constexpr int kStageBytes = kPassRows * kLds * static_cast<int>(sizeof(T));
    // The per-row bars live after the region the main loop reuses, so they survive the sweep.
    static constexpr int kBarOffset = (ML::kSmemBytes > kStageBytes ? ML::kSmemBytes : kStageBytes);
    static constexpr int kSmemBytes = kBarOffset + kBM * static_cast<int>(sizeof(T));
    static constexpr bool kSweep = true;
    static constexpr int kRowsPerWarp = kPassRows / (kThreads / 32);

    __device__ T* list_values(const Job& job, std::int64_t i) const {
        return static_cast<T*>(job.list_values) + (std::int64_t(blockIdx.y) * job.na + i) * job.k;
    }
    __device__ std::int32_t* list_indices(const Job& job, std::int64_t i) const {
        return job.list_indices + (std::int64_t(blockIdx.y) * job.na + i) * job.k;
    }

    __device__ void begin(const Job& job, std::int64_t row0, char* smem, int tid) {
        T* bars = reinterpret_cast<T*>(smem + kBarOffset);
        if (tid < kBM) bars[tid] = neg_inf<T>();
        const int lane = tid & 31, warp = tid >> 5;
        for (int r = warp; r < kBM; r += kThreads / 32) {
            const std::int64_t i = row0 + r;
            if (i >= job.na) break;
            T* lv = list_values(job, i);
            std::int32_t* li = list_indices(job, i);
            for (int p = lane; p < job.k; p += 32) lv[p] = quiet_nan<T>(), li[p] = -1;
        }
        __syncthreads();
    }

    __device__ void tile(const Job& job, const T (&acc)[ML::kAcc], std::int64_t row0, std::int64_t col0, char* smem,
                         int tid) {
        T* stage = reinterpret_cast<T*>(smem);
        T* bars = reinterpret_cast<T*>(smem + kBarOffset);
        const int lane = tid & 31, warp = tid >> 5;
#pragma unroll
        for (int pass = 0; pass < kBM / kPassRows; ++pass) {
            const int first = pass * kPassRows;
            // Accumulator pairs (e, e+1) are adjacent columns of one row: one vector store each.
#pragma unroll
            for (int e = 0; e < ML::kAcc; e += 2) {
                const int r = ML::row_of(e, tid), c = ML::col_of(e, tid);
                if (r < first || r >= first + kPassRows) continue;
                const std::int64_t i = row0 + r, j = col0 + c;
                const T v0 = selectable(job, i, j) ? value_of(job, acc[e], j) : quiet_nan<T>();
                const T v1 = selectable(job, i, j + 1) ? value_of(job, acc[e + 1], j + 1) : quiet_nan<T>();
                T* p = stage + (r - first) * kLds + c;
                if constexpr (sizeof(T) == 4)
                    *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
                else
                    *reinterpret_cast<double2*>(p) = make_double2(v0, v1);
            }
            __syncthreads();
            for (int rr = warp * kRowsPerWarp; rr < (warp + 1) * kRowsPerWarp; ++rr) {
                const int r = first + rr;
                const std::int64_t i = row0 + r;
                if (i >= job.na) break;
                const T bar0 = bars[r];
                T v[4], key[4];
                unsigned hits[4], any = 0;
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                    v[q] = stage[rr * kLds + q * 32 + lane];
                    key[q] = key_of(v[q], job.absolute);
                    hits[q] = __ballot_sync(kFullMask, key[q] > bar0);  // NaN (not selectable) never passes
                    any |= hits[q];
                }
                if (!any) continue;
                WarpList<T, KK> list;
                list.load(list_values(job, i), list_indices(job, i), job.k, job.absolute, lane);
                T bar = list.bar(job.k);
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                    unsigned m = hits[q];
                    while (m) {
                        const int src = __ffs(m) - 1;
                        m &= m - 1;
                        const T ck = __shfl_sync(kFullMask, key[q], src);
                        const T cv = __shfl_sync(kFullMask, v[q], src);
                        if (ck > bar)
                            bar = list.insert(ck, cv, static_cast<std::int32_t>(col0 + q * 32 + src), job.k, lane);
                    }
                }
                list.store(list_values(job, i), list_indices(job, i), job.k, lane);
                if (lane == 0) bars[r] = bar;
                __syncwarp();
            }
            // The next pass, or the next tile's main loop, overwrites the staging area. The list
            // of a row may be handled by another warp in the next pass or tile: this barrier also
            // makes its global writes visible block-wide.
            __syncthreads();
        }
    }

    __device__ void end(const Job&, std::int64_t, char*, int) {}
};

}  // namespace detail
}  // namespace cuda
}  // namespace congruence
