// Low-precision screening for the sparse neuron-matching route (METHODS.md §3.4): the product is
// formed in bfloat16 by the caller (a tile of rows against every column), and these kernels keep
// each row's and each column's best candidates from it; the candidates' values are then
// recomputed exactly from the float32 panels (pair_dot_products).
#pragma once
#include <cstdint>
#include <vector>

#include "congruence/pairwise.hpp"

namespace congruence {

// Candidate lists of a screen, one per unit, each keeping its k best (key, index) pairs by key
// descending, ties to the lower index. A list has 2k slots: entries above its threshold are
// appended, and when the slots are full the k best are kept (a selection, not a sort) and the
// threshold becomes the k-th key. Appending is a store where a heap insert would be a chain of
// unpredictable branches (5x slower measured). Lists are unsorted; finalize_lists trims each to
// its k best.
struct ScreenLists {
    std::int64_t k = 0;
    float* keys = nullptr;         // n x 2k slots
    std::int64_t* idx = nullptr;   // n x 2k slots
    std::int32_t* count = nullptr;  // n: slots in use
    float* threshold = nullptr;     // n: -inf until the first trim
};

// Trim lists [0, n) to their k best entries (count <= k afterwards).
void finalize_lists(const ScreenLists& lists, std::int64_t n, int num_threads);

// tile: bi x nb bfloat16 bit patterns (row stride ld) holding rows [i0, i0 + bi) of the product,
// keys = values clamped to [spec.lo, spec.hi] (|.| when spec.absolute). rows: the lists of those
// bi rows, filled from scratch and trimmed (spec.col_valid masks columns). cols: the nb column
// lists, updated with the tile's rows (row_valid[i0 + r] == 0 skips a row). Threads split the rows
// for the first part and the columns for the second, so no list is shared.
void scan_bf16_tile_two_sided(const std::uint16_t* tile, std::int64_t ld, std::int64_t bi,
                              std::int64_t nb, std::int64_t i0, const ReduceSpec& spec,
                              const std::uint8_t* row_valid, const ScreenLists& rows,
                              const ScreenLists& cols, int num_threads);

// The kNN candidates of a self-join from the upper triangle of one float32 product (see
// python/congruence/_knn_screen.py): left and right are the lifted panels [a, -h, 1] and
// [a, 1, -h] stored feature-major (Dp x N, row stride N), so tile (i, j) = -d²_ij / 2. Tiles of
// tile_rows rows cover columns j >= i0 with the diagonal block's j <= i masked; rows[i] collects
// i's best partners j > i, cols[j] its best partners i < j (both n = N lists, fresh, keys
// descending). Inside one parallel region each thread forms its own column slice of a tile with a
// single-threaded BLAS call and feeds that slice's column lists; after a barrier the threads split
// the tile's rows. Row lists are final on return, column lists need finalize_lists.
void self_join_screen(const float* left, const float* right, std::int64_t N, std::int64_t Dp,
                      std::int64_t tile_rows, const ScreenLists& rows, const ScreenLists& cols, int num_threads);

// out[e] = sum_k At[rows[e], k] * Bt[cols[e], k] for feature-major float32 panels (na x K and
// nb x K, row strides lda / ldb): float32 products summed over 1024 samples, then in double
// (the engine's float32 policy). Pairs sorted by row reuse the cached row of At.
void pair_dot_products(const float* At, std::int64_t lda, const float* Bt, std::int64_t ldb,
                       std::int64_t K, const std::int64_t* rows, const std::int64_t* cols,
                       std::int64_t n, double* out, int num_threads);

// The union of both sides' finalized lists as a CSR graph over rows: row i holds its own list's
// columns followed by every column j whose list names i and that i's list does not hold.
// indptr has p + 1 entries; indices is sized indptr[p].
void candidate_graph(const ScreenLists& rows, std::int64_t p, const ScreenLists& cols, std::int64_t q,
                     std::vector<std::int64_t>& indptr, std::vector<std::int64_t>& indices);

}  // namespace congruence
