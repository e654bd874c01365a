#include "congruence/column_stats.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace congruence {
namespace {

constexpr std::int64_t kShiftRows = 1024;  // rows used for the shift (METHODS.md §1.2)
constexpr std::int64_t kColChunk = 512;    // accumulators of one chunk stay in L1/L2
// Below this many elements a parallel region costs more than it saves (and on a loaded machine a
// descheduled worker stalls the barrier for a whole time slice).
constexpr std::int64_t kParallelMin = 1 << 16;

template <DType D>
bool column_stats_impl(const void* Xv, std::int64_t n, std::int64_t p, std::int64_t rs,
                       std::int64_t cs, double* mean, double* m2, double* sumsq, int nthreads) {
    using S = typename Elem<D>::storage;
    const S* X = static_cast<const S*>(Xv);
    const std::int64_t nchunks = (p + kColChunk - 1) / kColChunk;
    // Split rows too when there are few column chunks, so both cores work on narrow inputs.
    const std::int64_t rsplit =
        std::max<std::int64_t>(1, std::min<std::int64_t>(n / 256 + 1, (2 * nthreads + nchunks - 1) / nchunks));
    const std::int64_t ntasks = nchunks * rsplit;
    std::vector<double> shift(p);
    std::vector<double> part(static_cast<std::size_t>(ntasks) * 3 * kColChunk, 0.0);
    const std::int64_t nshift = std::min(n, kShiftRows);
    const bool par = n * p >= kParallelMin;

#pragma omp parallel for num_threads(nthreads) schedule(static) if (par)
    for (std::int64_t c = 0; c < nchunks; ++c) {
        const std::int64_t c0 = c * kColChunk, c1 = std::min(p, c0 + kColChunk);
        for (std::int64_t j = c0; j < c1; ++j) shift[j] = 0.0;
        for (std::int64_t r = 0; r < nshift; ++r)
            for (std::int64_t j = c0; j < c1; ++j) shift[j] += Elem<D>::load(X + r * rs + j * cs);
        for (std::int64_t j = c0; j < c1; ++j) shift[j] /= static_cast<double>(nshift);
    }

#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) if (par)
    for (std::int64_t t = 0; t < ntasks; ++t) {
        const std::int64_t c = t / rsplit, s = t % rsplit;
        const std::int64_t c0 = c * kColChunk, c1 = std::min(p, c0 + kColChunk), w = c1 - c0;
        const std::int64_t r0 = n * s / rsplit, r1 = n * (s + 1) / rsplit;
        double* s1 = part.data() + static_cast<std::size_t>(t) * 3 * kColChunk;
        double* s2 = s1 + kColChunk;
        double* sq = s2 + kColChunk;
        const double* sh = shift.data() + c0;
        for (std::int64_t r = r0; r < r1; ++r) {
            const S* row = X + r * rs + c0 * cs;
            if (cs == 1) {
#pragma omp simd
                for (std::int64_t j = 0; j < w; ++j) {
                    const double x = Elem<D>::load(row + j);
                    const double d = x - sh[j];
                    s1[j] += d;
                    s2[j] += d * d;
                    sq[j] += x * x;
                }
            } else {
                for (std::int64_t j = 0; j < w; ++j) {
                    const double x = Elem<D>::load(row + j * cs);
                    const double d = x - sh[j];
                    s1[j] += d;
                    s2[j] += d * d;
                    sq[j] += x * x;
                }
            }
        }
    }

    bool finite = true;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(&& : finite) if (par)
    for (std::int64_t c = 0; c < nchunks; ++c) {
        const std::int64_t c0 = c * kColChunk, c1 = std::min(p, c0 + kColChunk);
        for (std::int64_t j = c0; j < c1; ++j) {
            double a = 0.0, b = 0.0, q = 0.0;
            for (std::int64_t s = 0; s < rsplit; ++s) {
                const double* s1 = part.data() + static_cast<std::size_t>(c * rsplit + s) * 3 * kColChunk;
                a += s1[j - c0];
                b += s1[kColChunk + j - c0];
                q += s1[2 * kColChunk + j - c0];
            }
            const double nn = static_cast<double>(n);
            mean[j] = shift[j] + a / nn;
            m2[j] = std::max(0.0, b - a * a / nn);
            sumsq[j] = q;
            if (!std::isfinite(a) || !std::isfinite(b) || !std::isfinite(q)) finite = false;
        }
    }
    return finite;
}

template <DType D, class Out>
void standardize_impl(const void* Xv, std::int64_t K, std::int64_t n, std::int64_t rs,
                      std::int64_t cs, const double* row_shift, const double* col_shift,
                      const double* col_scale, Out* out, std::int64_t ldo, int nthreads) {
    using S = typename Elem<D>::storage;
    const S* X = static_cast<const S*>(Xv);
    // Square-ish blocks so a transposed read (cs large) still reuses each cache line.
    constexpr std::int64_t BK = 32, BN = 512;
    const std::int64_t nbk = (K + BK - 1) / BK, nbn = (n + BN - 1) / BN;
#pragma omp parallel for num_threads(nthreads) schedule(static) collapse(2) if (K * n >= kParallelMin)
    for (std::int64_t bk = 0; bk < nbk; ++bk) {
        for (std::int64_t bn = 0; bn < nbn; ++bn) {
            const std::int64_t k0 = bk * BK, k1 = std::min(K, k0 + BK);
            const std::int64_t i0 = bn * BN, i1 = std::min(n, i0 + BN);
            for (std::int64_t k = k0; k < k1; ++k) {
                const double rsh = row_shift ? row_shift[k] : 0.0;
                const S* xr = X + k * rs;
                Out* o = out + k * ldo;
                for (std::int64_t i = i0; i < i1; ++i) {
                    double v = Elem<D>::load(xr + i * cs) - rsh;
                    if (col_shift) v -= col_shift[i];
                    if (col_scale) v *= col_scale[i];
                    o[i] = static_cast<Out>(v);
                }
            }
        }
    }
}

template <class Out>
void standardize_dispatch(const void* X, DType dtype, std::int64_t K, std::int64_t n,
                          std::int64_t rs, std::int64_t cs, const double* row_shift,
                          const double* col_shift, const double* col_scale, Out* out,
                          std::int64_t ldo, int nthreads) {
    switch (dtype) {
        case DType::float16:
            return standardize_impl<DType::float16>(X, K, n, rs, cs, row_shift, col_shift, col_scale, out, ldo, nthreads);
        case DType::bfloat16:
            return standardize_impl<DType::bfloat16>(X, K, n, rs, cs, row_shift, col_shift, col_scale, out, ldo, nthreads);
        case DType::float32:
            return standardize_impl<DType::float32>(X, K, n, rs, cs, row_shift, col_shift, col_scale, out, ldo, nthreads);
        case DType::float64:
            return standardize_impl<DType::float64>(X, K, n, rs, cs, row_shift, col_shift, col_scale, out, ldo, nthreads);
    }
}

}  // namespace

bool column_stats_cpu(const void* X, DType dtype, std::int64_t n, std::int64_t p, std::int64_t rs,
                      std::int64_t cs, double* mean, double* m2, double* sumsq, int num_threads) {
    switch (dtype) {
        case DType::float16: return column_stats_impl<DType::float16>(X, n, p, rs, cs, mean, m2, sumsq, num_threads);
        case DType::bfloat16: return column_stats_impl<DType::bfloat16>(X, n, p, rs, cs, mean, m2, sumsq, num_threads);
        case DType::float32: return column_stats_impl<DType::float32>(X, n, p, rs, cs, mean, m2, sumsq, num_threads);
        case DType::float64: return column_stats_impl<DType::float64>(X, n, p, rs, cs, mean, m2, sumsq, num_threads);
    }
    return false;
}

void standardize_cpu(const void* X, DType dtype, std::int64_t K, std::int64_t n, std::int64_t rs,
                     std::int64_t cs, const double* row_shift, const double* col_shift,
                     const double* col_scale, float* out, std::int64_t ldo, int num_threads) {
    standardize_dispatch(X, dtype, K, n, rs, cs, row_shift, col_shift, col_scale, out, ldo, num_threads);
}

void standardize_cpu(const void* X, DType dtype, std::int64_t K, std::int64_t n, std::int64_t rs,
                     std::int64_t cs, const double* row_shift, const double* col_shift,
                     const double* col_scale, double* out, std::int64_t ldo, int num_threads) {
    standardize_dispatch(X, dtype, K, n, rs, cs, row_shift, col_shift, col_scale, out, ldo, num_threads);
}

}  // namespace congruence
