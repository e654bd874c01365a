#include "congruence/pairwise.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>

#include "congruence/blas.hpp"
#include "congruence/topk_row.hpp"

namespace congruence {
namespace {

// One thread's tile: the GEMM result of rows [i0, i0+bi) x cols [j0, j0+bj), either directly in
// T (one product) or, for float32 over more than k_chunk samples, summed chunk by chunk in double.
template <class T>
struct TileWorker {
    std::vector<T> tile;
    std::vector<double> acc;

    bool chunked(std::int64_t K, const TilePlan& plan) const {
        return std::is_same<T, float>::value && K > plan.k_chunk;
    }

    // Returns the tile as T* (not chunked) or via acc (chunked); ld = bj.
    void compute(const T* A, std::int64_t lda, const T* B, std::int64_t ldb, std::int64_t K,
                 std::int64_t i0, std::int64_t bi, std::int64_t j0, std::int64_t bj,
                 const TilePlan& plan) {
        const std::size_t sz = static_cast<std::size_t>(bi * bj);
        if (tile.size() < sz) tile.resize(sz);
        if (!chunked(K, plan)) {
            gemm_tn(bi, bj, K, A + i0, lda, B + j0, ldb, T(0), tile.data(), bj);
            return;
        }
        if (acc.size() < sz) acc.resize(sz);
        std::fill(acc.begin(), acc.begin() + sz, 0.0);
        for (std::int64_t k0 = 0; k0 < K; k0 += plan.k_chunk) {
            const std::int64_t kc = std::min(plan.k_chunk, K - k0);
            gemm_tn(bi, bj, kc, A + k0 * lda + i0, lda, B + k0 * ldb + j0, ldb, T(0), tile.data(), bj);
            const T* t = tile.data();
            double* a = acc.data();
#pragma omp simd
            for (std::size_t e = 0; e < sz; ++e) a[e] += static_cast<double>(t[e]);
        }
    }
};

// Cancellation is polled by thread 0 only (it is the caller's thread and may take the GIL).
struct CancelFlag {
    std::atomic<bool> flag{false};
    void poll(const StopFn& stop) {
        if (stop && omp_get_thread_num() == 0 && !flag.load(std::memory_order_relaxed) && stop())
            flag.store(true, std::memory_order_relaxed);
    }
    bool set() const { return flag.load(std::memory_order_relaxed); }
};

template <class V>
void scan_tile_topk(const V* tile, std::int64_t bi, std::int64_t bj, std::int64_t i0,
                    std::int64_t j0, const ReduceSpec& spec, RowTopK* states) {
    for (std::int64_t r = 0; r < bi; ++r) {
        const std::int64_t excl = spec.exclude_diagonal ? (i0 + r) - j0 : -1;
        scan_row_topk<V>(tile + r * bj, bj, j0, spec, excl, states[r]);
    }
}

}  // namespace

template <class T>
Status pairwise_dense_cpu(const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                          std::int64_t K, std::int64_t na, std::int64_t nb, bool symmetric, T* C,
                          std::int64_t ldc, const TilePlan& plan, const StopFn& stop) {
    const std::int64_t bi = std::max<std::int64_t>(1, plan.block_rows);
    const std::int64_t bj = std::max<std::int64_t>(1, plan.block_cols);
    const bool chunked = std::is_same<T, float>::value && K > plan.k_chunk;
    TileWorker<T> w;
    for (std::int64_t i0 = 0; i0 < na; i0 += bi) {
        const std::int64_t ni = std::min(bi, na - i0);
        for (std::int64_t j0 = symmetric ? i0 : 0; j0 < nb; j0 += bj) {
            if (stop && stop()) return Status::cancelled;
            const std::int64_t nj = std::min(bj, nb - j0);
            T* Ct = C + i0 * ldc + j0;
            const bool diag = symmetric && j0 == i0;
            if (!chunked) {
                if (diag && ni == nj)
                    syrk_tn_upper(ni, K, A + i0, lda, T(0), Ct, ldc);
                else
                    gemm_tn(ni, nj, K, A + i0, lda, B + j0, ldb, T(0), Ct, ldc);
                continue;
            }
            w.compute(A, lda, B, ldb, K, i0, ni, j0, nj, plan);
            const double* acc = w.acc.data();
#pragma omp parallel for num_threads(plan.num_threads) schedule(static) if (ni * nj >= (1 << 16))
            for (std::int64_t r = 0; r < ni; ++r)
                for (std::int64_t c = 0; c < nj; ++c) Ct[r * ldc + c] = static_cast<T>(acc[r * nj + c]);
        }
    }
    if (symmetric) {
        // Mirror the upper triangle down in cache-friendly blocks.
        constexpr std::int64_t MB = 64;
        const std::int64_t nblk = (na + MB - 1) / MB;
#pragma omp parallel for num_threads(plan.num_threads) schedule(dynamic, 1) if (na >= 256)
        for (std::int64_t b = 0; b < nblk; ++b) {
            const std::int64_t r0 = b * MB, r1 = std::min(na, r0 + MB);
            for (std::int64_t c0 = 0; c0 <= r0; c0 += MB) {
                const std::int64_t c1 = std::min(na, c0 + MB);
                for (std::int64_t r = r0; r < r1; ++r)
                    for (std::int64_t c = c0; c < std::min(c1, r); ++c) C[r * ldc + c] = C[c * ldc + r];
            }
        }
    }
    return Status::ok;
}

template <class T>
Status pairwise_topk_cpu(const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                         std::int64_t K, std::int64_t na, std::int64_t nb, const ReduceSpec& spec,
                         T* values, std::int64_t* indices, const TilePlan& plan,
                         const StopFn& stop) {
    const std::int64_t bi = std::max<std::int64_t>(1, plan.block_rows);
    const std::int64_t bj = std::max<std::int64_t>(1, plan.block_cols);
    const std::int64_t k = spec.k;
    const std::int64_t nblocks = (na + bi - 1) / bi;
    CancelFlag cancel;
    const int nthreads = static_cast<int>(std::min<std::int64_t>(plan.num_threads, nblocks));
#pragma omp parallel num_threads(nthreads)
    {
        TileWorker<T> w;
        std::vector<RowTopK> states;
        std::vector<double> keys, vals;
        std::vector<std::int64_t> idx;
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t blk = 0; blk < nblocks; ++blk) {
            if (cancel.set()) continue;
            const std::int64_t i0 = blk * bi, ni = std::min(bi, na - i0);
            const std::size_t sz = static_cast<std::size_t>(ni * k);
            keys.assign(sz, -std::numeric_limits<double>::infinity());
            vals.assign(sz, std::numeric_limits<double>::quiet_NaN());
            idx.assign(sz, -1);
            states.resize(static_cast<std::size_t>(ni));
            for (std::int64_t r = 0; r < ni; ++r)
                states[r] = RowTopK{k, keys.data() + r * k, vals.data() + r * k, idx.data() + r * k};
            for (std::int64_t j0 = 0; j0 < nb; j0 += bj) {
                cancel.poll(stop);
                if (cancel.set()) break;
                const std::int64_t nj = std::min(bj, nb - j0);
                w.compute(A, lda, B, ldb, K, i0, ni, j0, nj, plan);
                if (w.chunked(K, plan))
                    scan_tile_topk<double>(w.acc.data(), ni, nj, i0, j0, spec, states.data());
                else
                    scan_tile_topk<T>(w.tile.data(), ni, nj, i0, j0, spec, states.data());
            }
            for (std::size_t e = 0; e < sz; ++e) {
                values[i0 * k + static_cast<std::int64_t>(e)] = static_cast<T>(vals[e]);
                indices[i0 * k + static_cast<std::int64_t>(e)] = idx[e];
            }
        }
    }
    return cancel.set() ? Status::cancelled : Status::ok;
}

template <class T>
Status pairwise_threshold_cpu(const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                              std::int64_t K, std::int64_t na, std::int64_t nb,
                              const ReduceSpec& spec, double threshold, std::int64_t max_pairs,
                              PairList<T>& out, const TilePlan& plan, const StopFn& stop) {
    const std::int64_t bi = std::max<std::int64_t>(1, plan.block_rows);
    const std::int64_t bj = std::max<std::int64_t>(1, plan.block_cols);
    const std::int64_t nblocks = (na + bi - 1) / bi;
    // Per row block, per row: the hits in increasing j (tiles are swept left to right).
    std::vector<std::vector<RowHits>> hits(static_cast<std::size_t>(nblocks));
    std::atomic<std::int64_t> total{0};
    std::atomic<bool> overflow{false};
    CancelFlag cancel;
    const int nthreads = static_cast<int>(std::min<std::int64_t>(plan.num_threads, nblocks));
#pragma omp parallel num_threads(nthreads)
    {
        TileWorker<T> w;
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t blk = 0; blk < nblocks; ++blk) {
            if (cancel.set() || overflow.load()) continue;
            const std::int64_t i0 = blk * bi, ni = std::min(bi, na - i0);
            auto& rows = hits[blk];
            rows.assign(static_cast<std::size_t>(ni), RowHits{});
            for (std::int64_t j0 = 0; j0 < nb; j0 += bj) {
                cancel.poll(stop);
                if (cancel.set() || overflow.load()) break;
                const std::int64_t nj = std::min(bj, nb - j0);
                w.compute(A, lda, B, ldb, K, i0, ni, j0, nj, plan);
                std::int64_t added = 0;
                for (std::int64_t r = 0; r < ni; ++r) {
                    const std::int64_t excl = spec.exclude_diagonal ? (i0 + r) - j0 : -1;
                    const std::size_t before = rows[r].cols.size();
                    if (w.chunked(K, plan))
                        scan_row_threshold<double>(w.acc.data() + r * nj, nj, j0, spec, excl, threshold, rows[r]);
                    else
                        scan_row_threshold<T>(w.tile.data() + r * nj, nj, j0, spec, excl, threshold, rows[r]);
                    added += static_cast<std::int64_t>(rows[r].cols.size() - before);
                }
                if (total.fetch_add(added) + added > max_pairs) overflow.store(true);
            }
        }
    }
    if (cancel.set()) return Status::cancelled;
    if (overflow.load()) return Status::too_many_pairs;
    const std::int64_t n = total.load();
    out.rows.resize(n);
    out.cols.resize(n);
    out.values.resize(n);
    std::int64_t pos = 0;
    for (std::int64_t blk = 0; blk < nblocks; ++blk) {
        const std::int64_t i0 = blk * bi;
        for (std::size_t r = 0; r < hits[blk].size(); ++r) {
            const RowHits& h = hits[blk][r];
            for (std::size_t e = 0; e < h.cols.size(); ++e, ++pos) {
                out.rows[pos] = i0 + static_cast<std::int64_t>(r);
                out.cols[pos] = h.cols[e];
                out.values[pos] = static_cast<T>(h.values[e]);
            }
        }
    }
    return Status::ok;
}

#define CONGRUENCE_INSTANTIATE(T)                                                               \
    template Status pairwise_dense_cpu<T>(const T*, std::int64_t, const T*, std::int64_t,       \
                                          std::int64_t, std::int64_t, std::int64_t, bool, T*,   \
                                          std::int64_t, const TilePlan&, const StopFn&);        \
    template Status pairwise_topk_cpu<T>(const T*, std::int64_t, const T*, std::int64_t,        \
                                         std::int64_t, std::int64_t, std::int64_t,              \
                                         const ReduceSpec&, T*, std::int64_t*, const TilePlan&, \
                                         const StopFn&);                                        \
    template Status pairwise_threshold_cpu<T>(const T*, std::int64_t, const T*, std::int64_t,   \
                                              std::int64_t, std::int64_t, std::int64_t,         \
                                              const ReduceSpec&, double, std::int64_t,          \
                                              PairList<T>&, const TilePlan&, const StopFn&);
CONGRUENCE_INSTANTIATE(float)
CONGRUENCE_INSTANTIATE(double)
#undef CONGRUENCE_INSTANTIATE

}  // namespace congruence
