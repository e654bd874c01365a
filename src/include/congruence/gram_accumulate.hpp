// Streamed Gram accumulation: C += A^T B in float64 for sample-major panels A (K x na) and
// B (K x nb), the update of the cross statistics of every layer pair in one pass (METHODS.md
// §1.2, §2.0). The float64 state is touched once per call, tile by tile, so a call over a whole
// batch costs the GEMM plus one read-modify-write of C.
#pragma once
#include <cstdint>

#include "congruence/pairwise.hpp"

namespace congruence {

// One product of a batch: C (na x nb, row stride ldc, float64) += A^T B. With symmetric
// (B == A, na == nb) only the upper triangle of C (diagonal included) is updated; the caller
// mirrors it once at the end.
template <class T>
struct GramJob {
    const T* A;
    std::int64_t lda;
    const T* B;  // == A when symmetric
    std::int64_t ldb;
    std::int64_t na, nb;
    bool symmetric;
    double* C;
    std::int64_t ldc;
};

// All jobs of a batch (the same K samples) in one parallel region, so small ones (a 512-wide
// layer's Gram is a single tile) still keep every thread busy. OpenMP threads own output tiles
// (block_rows x block_cols; square block_rows tiles for symmetric jobs) and call a
// single-threaded BLAS. float32 panels: products over at most plan.k_chunk samples in float32,
// each summed into C in float64; float64 panels: one dgemm / dsyrk per tile with beta = 1.
template <class T>
Status gram_accumulate_many_cpu(const GramJob<T>* jobs, std::int64_t n_jobs, std::int64_t K,
                                const TilePlan& plan, const StopFn& stop);

}  // namespace congruence
