#include "congruence/mahalanobis.hpp"

#include <vector>

namespace congruence {
namespace {

// ‖F Δ‖² for one r x D factor.
inline double whitened_norm2(const double* F, std::int64_t r, std::int64_t D, const double* delta) {
    double total = 0.0;
    for (std::int64_t a = 0; a < r; ++a) {
        const double* f = F + a * D;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (std::int64_t t = 0; t < D; ++t) s += f[t] * delta[t];
        total += s * s;
    }
    return total;
}

}  // namespace

void mahalanobis_pairs(const double* O, std::int64_t N, std::int64_t D, const double* F, std::int64_t r,
                       const std::int64_t* rows, const std::int64_t* cols, std::int64_t n, double* out,
                       int num_threads) {
    (void)N;
#pragma omp parallel num_threads(num_threads)
    {
        std::vector<double> delta(static_cast<std::size_t>(D));
#pragma omp for schedule(static, 512)
        for (std::int64_t e = 0; e < n; ++e) {
            const std::int64_t i = rows[e], j = cols[e];
            const double* oi = O + i * D;
            const double* oj = O + j * D;
            for (std::int64_t t = 0; t < D; ++t) delta[t] = oi[t] - oj[t];
            out[e] = 0.5 * (whitened_norm2(F + i * r * D, r, D, delta.data()) +
                            whitened_norm2(F + j * r * D, r, D, delta.data()));
        }
    }
}

void squared_distance_pairs(const double* O, std::int64_t N, std::int64_t D, const std::int64_t* rows,
                            const std::int64_t* cols, std::int64_t n, double* out, int num_threads) {
    (void)N;
#pragma omp parallel for num_threads(num_threads) schedule(static, 512)
    for (std::int64_t e = 0; e < n; ++e) {
        const double* oi = O + rows[e] * D;
        const double* oj = O + cols[e] * D;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (std::int64_t t = 0; t < D; ++t) {
            const double d = oi[t] - oj[t];
            s += d * d;
        }
        out[e] = s;
    }
}

}  // namespace congruence
