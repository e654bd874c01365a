#include "congruence/gram_accumulate.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <type_traits>
#include <vector>

#include "congruence/blas.hpp"

namespace congruence {
namespace {

struct Tile {
    std::int64_t job, i0, ni, j0, nj;
};

void add_tiles(std::vector<Tile>& out, std::int64_t job, std::int64_t na, std::int64_t nb, std::int64_t bi,
               std::int64_t bj, bool symmetric) {
    if (symmetric) bj = bi;  // square tiles, the upper ones only
    for (std::int64_t i0 = 0; i0 < na; i0 += bi)
        for (std::int64_t j0 = 0; j0 < nb; j0 += bj) {
            if (symmetric && j0 + bj <= i0) continue;
            out.push_back({job, i0, std::min(bi, na - i0), j0, std::min(bj, nb - j0)});
        }
}

// Adds the tile t (ni x nj, ld nj) into C; on a diagonal tile of a symmetric update only the
// upper triangle (the part syrk wrote).
template <class T>
void add_tile(const T* t, const Tile& tl, bool diag, double* C, std::int64_t ldc) {
    for (std::int64_t r = 0; r < tl.ni; ++r) {
        double* c = C + (tl.i0 + r) * ldc + tl.j0;
        const T* s = t + r * tl.nj;
        const std::int64_t c0 = diag ? r : 0;
#pragma omp simd
        for (std::int64_t e = c0; e < tl.nj; ++e) c[e] += static_cast<double>(s[e]);
    }
}

void tile_update(const double* A, std::int64_t lda, const double* B, std::int64_t ldb,
                 std::int64_t K, const Tile& tl, bool diag, double* C, std::int64_t ldc,
                 std::int64_t, std::vector<double>&) {
    double* c = C + tl.i0 * ldc + tl.j0;
    if (diag)
        syrk_tn_upper(tl.ni, K, A + tl.i0, lda, 1.0, c, ldc);
    else
        gemm_tn(tl.ni, tl.nj, K, A + tl.i0, lda, B + tl.j0, ldb, 1.0, c, ldc);
}

void tile_update(const float* A, std::int64_t lda, const float* B, std::int64_t ldb,
                 std::int64_t K, const Tile& tl, bool diag, double* C, std::int64_t ldc,
                 std::int64_t k_chunk, std::vector<float>& buf) {
    buf.resize(static_cast<std::size_t>(tl.ni * tl.nj));
    for (std::int64_t k0 = 0; k0 < K; k0 += k_chunk) {
        const std::int64_t kc = std::min(k_chunk, K - k0);
        if (diag)
            syrk_tn_upper(tl.ni, kc, A + k0 * lda + tl.i0, lda, 0.0f, buf.data(), tl.nj);
        else
            gemm_tn(tl.ni, tl.nj, kc, A + k0 * lda + tl.i0, lda, B + k0 * ldb + tl.j0, ldb, 0.0f,
                    buf.data(), tl.nj);
        add_tile(buf.data(), tl, diag, C, ldc);
    }
}

}  // namespace

template <class T>
Status gram_accumulate_many_cpu(const GramJob<T>* jobs, std::int64_t n_jobs, std::int64_t K,
                                const TilePlan& plan, const StopFn& stop) {
    if (K <= 0) return Status::ok;
    const std::int64_t bi = std::max<std::int64_t>(1, plan.block_rows);
    const std::int64_t bj = std::max<std::int64_t>(1, plan.block_cols);
    const std::int64_t k_chunk = std::max<std::int64_t>(1, plan.k_chunk);
    std::vector<Tile> work;
    for (std::int64_t j = 0; j < n_jobs; ++j) add_tiles(work, j, jobs[j].na, jobs[j].nb, bi, bj, jobs[j].symmetric);
    // largest tiles first, so the dynamic schedule ends with the small ones
    std::stable_sort(work.begin(), work.end(),
                     [](const Tile& a, const Tile& b) { return a.ni * a.nj > b.ni * b.nj; });
    const auto n = static_cast<std::int64_t>(work.size());
    std::atomic<bool> cancelled{false};
    const int nthreads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(plan.num_threads, n)));
#pragma omp parallel num_threads(nthreads)
    {
        // Kept per thread across calls (OpenMP pool threads persist): a fresh 8 MB tile buffer per
        // call is a fresh mmap and 2048 page faults per thread once glibc maps large blocks.
        static thread_local std::vector<T> buf;
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t w = 0; w < n; ++w) {
            if (cancelled.load(std::memory_order_relaxed)) continue;
            if (stop && omp_get_thread_num() == 0 && stop()) {
                cancelled.store(true, std::memory_order_relaxed);
                continue;
            }
            const Tile& tl = work[static_cast<std::size_t>(w)];
            const GramJob<T>& jb = jobs[tl.job];
            tile_update(jb.A, jb.lda, jb.B, jb.ldb, K, tl, jb.symmetric && tl.i0 == tl.j0, jb.C, jb.ldc, k_chunk,
                        buf);
        }
    }
    return cancelled.load() ? Status::cancelled : Status::ok;
}

template Status gram_accumulate_many_cpu<float>(const GramJob<float>*, std::int64_t, std::int64_t,
                                                const TilePlan&, const StopFn&);
template Status gram_accumulate_many_cpu<double>(const GramJob<double>*, std::int64_t, std::int64_t,
                                                 const TilePlan&, const StopFn&);

}  // namespace congruence
