#include "congruence/screen.hpp"

#include "congruence/blas.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace congruence {
namespace {

constexpr std::int64_t kChunk = 64;
// Column blocks whose lists stay in L2 while every tile row passes over them (inserts land on
// random columns: unblocked, each one missed cache, 5x the cost of the whole scan).
constexpr std::int64_t kColumnBlock = 512;

// bfloat16 is the top half of a float32: widening is a shift.
inline void widen(const std::uint16_t* __restrict src, std::int64_t n, float* __restrict dst) {
#pragma omp simd
    for (std::int64_t j = 0; j < n; ++j)
        dst[j] = __builtin_bit_cast(float, static_cast<std::uint32_t>(src[j]) << 16);
}

// float32 tiles (the kNN self-join screen) are copied, because keys are formed in place.
inline void widen(const float* __restrict src, std::int64_t n, float* __restrict dst) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
}

// Keys of a widened row, in place.
inline void to_keys(float* __restrict v, std::int64_t n, float lo, float hi, bool absolute) {
    if (absolute) {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) v[j] = std::fabs(std::min(hi, std::max(lo, v[j])));
    } else {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) v[j] = std::min(hi, std::max(lo, v[j]));
    }
}

// Keep the k best of a full list (key descending, ties to the lower index) and raise its threshold.
void trim(float* keys, std::int64_t* idx, std::int32_t& count, float& threshold, std::int64_t k) {
    if (count <= k) return;
    thread_local std::vector<std::pair<float, std::int64_t>> tmp;
    tmp.resize(static_cast<std::size_t>(count));
    for (std::int32_t e = 0; e < count; ++e) tmp[e] = {keys[e], idx[e]};
    auto better = [](const std::pair<float, std::int64_t>& a, const std::pair<float, std::int64_t>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end(), better);
    for (std::int64_t e = 0; e < k; ++e) {
        keys[e] = tmp[e].first;
        idx[e] = tmp[e].second;
    }
    count = static_cast<std::int32_t>(k);
    threshold = tmp[k - 1].first;
}

inline void append(float* keys, std::int64_t* idx, std::int32_t& count, float& threshold, std::int64_t k,
                   float key, std::int64_t i) {
    keys[count] = key;
    idx[count] = i;
    if (++count == 2 * k) trim(keys, idx, count, threshold, k);
}

// The hot loops are also compiled for AVX-512 and AVX2 and picked at load time (the library
// targets baseline x86-64); they sit outside the OpenMP regions so that the clones cover them.
#define CONGRUENCE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

// The keys of n tile entries: bfloat16 is widened and clamped into buf; a float32 tile (the kNN
// screen, never clamped) is its own keys, read in place.
template <class T>
__attribute__((always_inline)) inline const float* keys_of(const T* src, std::int64_t n, const ReduceSpec& spec,
                                                           float* buf) {
    if constexpr (std::is_same_v<T, float>) {
        (void)n, (void)spec, (void)buf;
        return src;
    } else {
        widen(src, n, buf);
        to_keys(buf, n, static_cast<float>(spec.lo), static_cast<float>(spec.hi), spec.absolute);
        return buf;
    }
}

// One row's list over the row's nb keys, compared against its threshold a chunk at a time; the
// stored index of tile column j is j0 + j. (Templates on the tile type are inlined into the
// per-type wrappers below, which carry the clones.)
template <class T>
__attribute__((always_inline)) inline void scan_row(const T* row, std::int64_t nb, std::int64_t j0,
                                                    const ReduceSpec& spec, float* buf, float* keys,
                                                    std::int64_t* idx, std::int32_t& count, float& threshold,
                                                    std::int64_t k) {
    const float* v = keys_of(row, nb, spec, buf);
    count = 0;
    threshold = -std::numeric_limits<float>::infinity();
    for (std::int64_t c0 = 0; c0 < nb; c0 += kChunk) {
        const std::int64_t c1 = std::min(nb, c0 + kChunk);
        const float t = threshold;
        int any = 0;
#pragma omp simd reduction(| : any)
        for (std::int64_t j = c0; j < c1; ++j) any |= v[j] > t;
        if (!any) continue;
        for (std::int64_t j = c0; j < c1; ++j) {
            if (!(v[j] > threshold)) continue;
            if (spec.col_valid && !spec.col_valid[j]) continue;
            append(keys, idx, count, threshold, k, v[j], j0 + j);
        }
    }
    trim(keys, idx, count, threshold, k);
}

// Columns [c0, c1) of the tile into their lists; thr[j - c0] mirrors each list's threshold.
template <class T>
__attribute__((always_inline)) inline void scan_column_range(const T* tile, std::int64_t ld, std::int64_t bi,
                                                             std::int64_t i0, std::int64_t c0, std::int64_t c1,
                                                             const ReduceSpec& spec, const std::uint8_t* row_valid,
                                                             const ScreenLists& cols, float* buf, float* thr) {
    const std::int64_t w = c1 - c0, k = cols.k, cap = 2 * k;
    for (std::int64_t j = 0; j < w; ++j) thr[j] = cols.threshold[c0 + j];
    for (std::int64_t r = 0; r < bi; ++r) {
        if (row_valid && !row_valid[i0 + r]) continue;
        const float* v = keys_of(tile + r * ld + c0, w, spec, buf);
        for (std::int64_t a = 0; a < w; a += kChunk) {
            const std::int64_t b = std::min(w, a + kChunk);
            int any = 0;
#pragma omp simd reduction(| : any)
            for (std::int64_t j = a; j < b; ++j) any |= v[j] > thr[j];
            if (!any) continue;
            // Re-comparing is exact: an append changes only its own column's threshold.
            for (std::int64_t j = a; j < b; ++j) {
                if (!(v[j] > thr[j])) continue;
                const std::int64_t col = c0 + j;
                append(cols.keys + col * cap, cols.idx + col * cap, cols.count[col], cols.threshold[col], k,
                       v[j], i0 + r);
                thr[j] = cols.threshold[col];
            }
        }
    }
}

#define CONGRUENCE_SCAN_WRAPPERS(T, suffix)                                                                  \
    CONGRUENCE_CLONES void scan_row_##suffix(const T* row, std::int64_t nb, std::int64_t j0, const ReduceSpec& spec, \
                                             float* buf, float* keys, std::int64_t* idx, std::int32_t& count,     \
                                             float& threshold, std::int64_t k) {                                  \
        scan_row<T>(row, nb, j0, spec, buf, keys, idx, count, threshold, k);                                     \
    }                                                                                                            \
    CONGRUENCE_CLONES void scan_columns_##suffix(const T* tile, std::int64_t ld, std::int64_t bi, std::int64_t i0, \
                                                 std::int64_t c0, std::int64_t c1, const ReduceSpec& spec,        \
                                                 const std::uint8_t* row_valid, const ScreenLists& cols,           \
                                                 float* buf, float* thr) {                                        \
        scan_column_range<T>(tile, ld, bi, i0, c0, c1, spec, row_valid, cols, buf, thr);                         \
    }

CONGRUENCE_SCAN_WRAPPERS(std::uint16_t, bf16)
CONGRUENCE_SCAN_WRAPPERS(float, f32)
#undef CONGRUENCE_SCAN_WRAPPERS

CONGRUENCE_CLONES
double dot_f32(const float* a, const float* b, std::int64_t K) {
    constexpr std::int64_t chunk = 1024;
    double acc = 0.0;
    for (std::int64_t k0 = 0; k0 < K; k0 += chunk) {
        const std::int64_t k1 = std::min(K, k0 + chunk);
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (std::int64_t k = k0; k < k1; ++k) s += a[k] * b[k];
        acc += static_cast<double>(s);
    }
    return acc;
}

}  // namespace

void scan_bf16_tile_two_sided(const std::uint16_t* tile, std::int64_t ld, std::int64_t bi,
                              std::int64_t nb, std::int64_t i0, const ReduceSpec& spec,
                              const std::uint8_t* row_valid, const ScreenLists& rows,
                              const ScreenLists& cols, int num_threads) {
#pragma omp parallel num_threads(num_threads)
    {
        std::vector<float> buf(static_cast<std::size_t>(nb));
#pragma omp for schedule(static)
        for (std::int64_t r = 0; r < bi; ++r)
            scan_row_bf16(tile + r * ld, nb, 0, spec, buf.data(), rows.keys + r * 2 * rows.k,
                          rows.idx + r * 2 * rows.k, rows.count[r], rows.threshold[r], rows.k);
        // Contiguous column ranges per thread, a multiple of 64 wide.
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const std::int64_t span = ((nb + nt - 1) / nt + kChunk - 1) / kChunk * kChunk;
        const std::int64_t c0 = std::min(nb, t * span), c1 = std::min(nb, c0 + span);
        std::vector<float> thr(static_cast<std::size_t>(kColumnBlock));
        for (std::int64_t b0 = c0; b0 < c1; b0 += kColumnBlock)
            scan_columns_bf16(tile, ld, bi, i0, b0, std::min(c1, b0 + kColumnBlock), spec, row_valid, cols,
                              buf.data(), thr.data());
    }
}

void self_join_screen(const float* left, const float* right, std::int64_t N, std::int64_t Dp,
                      std::int64_t tile_rows, const ScreenLists& rows, const ScreenLists& cols, int num_threads) {
    if (!blas_ready()) throw std::logic_error("self_join_screen: BLAS not initialised");
    const std::int64_t bmax = std::min(tile_rows, N);
    std::vector<float> tile(static_cast<std::size_t>(bmax * N));
    ReduceSpec spec;  // keys are the tile values: no clamp, no |.|
    spec.k = rows.k;
    const std::int64_t rcap = 2 * rows.k, ccap = 2 * cols.k;
#pragma omp parallel num_threads(num_threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        std::vector<float> thr(static_cast<std::size_t>(kColumnBlock));
        for (std::int64_t i0 = 0; i0 < N; i0 += tile_rows) {
            const std::int64_t bi = std::min(tile_rows, N - i0), nb = N - i0;
            float* T = tile.data();
            // Each thread forms its own column slice of the tile (single-threaded BLAS), masks the
            // diagonal block's lower triangle and diagonal, and feeds the slice's column lists.
            const std::int64_t span = ((nb + nt - 1) / nt + kChunk - 1) / kChunk * kChunk;
            const std::int64_t c0 = std::min(nb, t * span), c1 = std::min(nb, c0 + span);
            if (c1 > c0) {
                gemm_tn(bi, c1 - c0, Dp, left + i0, N, right + i0 + c0, N, 0.0f, T + c0, nb);
                for (std::int64_t r = 0; r < bi; ++r)
                    for (std::int64_t c = c0; c < std::min(c1, r + 1); ++c)
                        T[r * nb + c] = -std::numeric_limits<float>::infinity();
                const ScreenLists shifted{cols.k, cols.keys + i0 * ccap, cols.idx + i0 * ccap, cols.count + i0,
                                          cols.threshold + i0};
                for (std::int64_t b0 = c0; b0 < c1; b0 += kColumnBlock)
                    scan_columns_f32(T, nb, bi, i0, b0, std::min(c1, b0 + kColumnBlock), spec, nullptr, shifted,
                                     nullptr, thr.data());
            }
#pragma omp barrier
#pragma omp for schedule(static)
            for (std::int64_t r = 0; r < bi; ++r)
                scan_row_f32(T + r * nb, nb, i0, spec, nullptr, rows.keys + (i0 + r) * rcap,
                             rows.idx + (i0 + r) * rcap, rows.count[i0 + r], rows.threshold[i0 + r], rows.k);
            // the loop's implicit barrier: every row is read before the next tile overwrites it
        }
    }
}

void finalize_lists(const ScreenLists& lists, std::int64_t n, int num_threads) {
#pragma omp parallel for num_threads(num_threads) schedule(static, 256)
    for (std::int64_t u = 0; u < n; ++u)
        trim(lists.keys + u * 2 * lists.k, lists.idx + u * 2 * lists.k, lists.count[u], lists.threshold[u], lists.k);
}

void pair_dot_products(const float* At, std::int64_t lda, const float* Bt, std::int64_t ldb,
                       std::int64_t K, const std::int64_t* rows, const std::int64_t* cols,
                       std::int64_t n, double* out, int num_threads) {
#pragma omp parallel for num_threads(num_threads) schedule(static, 256)
    for (std::int64_t e = 0; e < n; ++e) out[e] = dot_f32(At + rows[e] * lda, Bt + cols[e] * ldb, K);
}

void candidate_graph(const ScreenLists& rows, std::int64_t p, const ScreenLists& cols, std::int64_t q,
                     std::vector<std::int64_t>& indptr, std::vector<std::int64_t>& indices) {
    const std::int64_t rcap = 2 * rows.k, ccap = 2 * cols.k;
    auto in_row_list = [&](std::int64_t i, std::int64_t j) {
        const std::int64_t* r = rows.idx + i * rcap;
        for (std::int32_t t = 0; t < rows.count[i]; ++t)
            if (r[t] == j) return true;
        return false;
    };
    indptr.assign(static_cast<std::size_t>(p + 1), 0);
    for (std::int64_t i = 0; i < p; ++i) indptr[i + 1] = rows.count[i];
    for (std::int64_t j = 0; j < q; ++j)
        for (std::int32_t t = 0; t < cols.count[j]; ++t) {
            const std::int64_t i = cols.idx[j * ccap + t];
            if (!in_row_list(i, j)) ++indptr[i + 1];
        }
    for (std::int64_t i = 0; i < p; ++i) indptr[i + 1] += indptr[i];
    indices.resize(static_cast<std::size_t>(indptr[p]));
    std::vector<std::int64_t> fill(indptr.begin(), indptr.end() - 1);
    for (std::int64_t i = 0; i < p; ++i)
        for (std::int32_t t = 0; t < rows.count[i]; ++t) indices[fill[i]++] = rows.idx[i * rcap + t];
    for (std::int64_t j = 0; j < q; ++j)
        for (std::int32_t t = 0; t < cols.count[j]; ++t) {
            const std::int64_t i = cols.idx[j * ccap + t];
            if (!in_row_list(i, j)) indices[fill[i]++] = j;
        }
}

}  // namespace congruence
