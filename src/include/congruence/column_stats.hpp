// Column statistics and the standardising copy that feeds the pairwise engine.
#pragma once
#include <cstdint>

#include "congruence/dtype.hpp"

namespace congruence {

// Per-column statistics of a strided n x p matrix X (element (r, c) at X + r*rs + c*cs, strides
// in elements, any sign), accumulated in float64 around a shift (the mean of the first
// min(n, 1024) rows) so that no cancellation occurs for |mean| >> std (METHODS.md §1.2):
//   mean[c]  = shift + sum(x - shift) / n
//   m2[c]    = sum((x - shift)^2) - (sum(x - shift))^2 / n        (sum of squared deviations)
//   sumsq[c] = sum(x^2)                                              (raw, for cosine)
// Returns false when any value is NaN or Inf (detected from the sums, no extra sweep).
bool column_stats_cpu(const void* X, DType dtype, std::int64_t n, std::int64_t p, std::int64_t rs,
                      std::int64_t cs, double* mean, double* m2, double* sumsq, int num_threads);

// out[k*ldo + i] = (x(k, i) - row_shift[k] - col_shift[i]) * col_scale[i] for a strided K x n
// input; any of the three vectors may be null (meaning 0, 0, 1). Computed in double, stored as
// float or double. Used to centre/normalise features before the product, and (with a transposed
// view) to lay points out sample-major for kNN.
void standardize_cpu(const void* X, DType dtype, std::int64_t K, std::int64_t n, std::int64_t rs,
                     std::int64_t cs, const double* row_shift, const double* col_shift,
                     const double* col_scale, float* out, std::int64_t ldo, int num_threads);
void standardize_cpu(const void* X, DType dtype, std::int64_t K, std::int64_t n, std::int64_t rs,
                     std::int64_t cs, const double* row_shift, const double* col_shift,
                     const double* col_scale, double* out, std::int64_t ldo, int num_threads);

}  // namespace congruence
