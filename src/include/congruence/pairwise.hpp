// The tiled pairwise engine: products between the columns of two standardised sample-major
// panels A (K x na) and B (K x nb), reduced tile by tile so that the na x nb result is never
// materialised unless the caller asks for the dense matrix (DESIGN.md §2).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace congruence {

struct TilePlan {
    std::int64_t block_rows = 1024;  // rows of A per tile (row-stationary: one thread owns them)
    std::int64_t block_cols = 2048;  // columns of B per tile
    std::int64_t k_chunk = 4096;     // float32 products are summed over at most this many samples,
                                     // then accumulated in float64 (METHODS.md §1.2)
    int num_threads = 1;
};

// Polled from the calling thread between tiles; returns true to cancel (Ctrl-C).
using StopFn = std::function<bool()>;

enum class Status : int { ok = 0, cancelled = 1, too_many_pairs = 2 };

// v_ij = clamp((A^T B)_ij + col_bias[j], lo, hi); the reductions rank by key = v (or |v| when
// absolute). Clamping before ranking keeps ties exact for bounded metrics (|r| <= 1).
struct ReduceSpec {
    std::int64_t k = 1;
    bool absolute = false;
    const double* col_bias = nullptr;           // nb entries, or null
    const std::uint8_t* col_valid = nullptr;    // nb entries (0 = excluded), or null
    bool exclude_diagonal = false;              // skip j == i (self-joins)
    double lo = -std::numeric_limits<double>::infinity();
    double hi = std::numeric_limits<double>::infinity();
};

// Dense C (na x nb, row stride ldc) = A^T B. With symmetric (B == A, na == nb) only the upper
// tiles are computed (syrk on the diagonal) and mirrored. The BLAS may use its own threads here:
// tiles run one after another from the calling thread.
template <class T>
Status pairwise_dense_cpu(const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                          std::int64_t K, std::int64_t na, std::int64_t nb, bool symmetric, T* C,
                          std::int64_t ldc, const TilePlan& plan, const StopFn& stop);

// Per row i of A the spec.k largest keys over j: values (na x k, signed v) and indices
// (na x k), descending by key, equal keys by increasing j; unfilled slots (NaN, -1).
// OpenMP threads own row blocks and call a single-threaded BLAS on their own tiles.
template <class T>
Status pairwise_topk_cpu(const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                         std::int64_t K, std::int64_t na, std::int64_t nb, const ReduceSpec& spec,
                         T* values, std::int64_t* indices, const TilePlan& plan,
                         const StopFn& stop);

template <class T>
struct PairList {
    std::vector<std::int64_t> rows, cols;
    std::vector<T> values;
};

// All (i, j, v_ij) with key >= threshold, sorted by (i, j). Stops with too_many_pairs when more
// than max_pairs would be returned (the caller's memory budget).
template <class T>
Status pairwise_threshold_cpu(const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                              std::int64_t K, std::int64_t na, std::int64_t nb,
                              const ReduceSpec& spec, double threshold, std::int64_t max_pairs,
                              PairList<T>& out, const TilePlan& plan, const StopFn& stop);

}  // namespace congruence
