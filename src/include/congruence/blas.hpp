// BLAS through function pointers handed over at import time (scipy.linalg.cython_blas), the way
// scikit-learn reaches a BLAS without linking one: the core stays free of a BLAS link dependency
// and runs at the rate of the BLAS that scipy ships. Fortran calling convention, LP64 ints.
#pragma once
#include <cstdint>

namespace congruence {

using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const float*, const float*, const int*, const float*, const int*,
                          const float*, float*, const int*);
using dgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const double*, const double*, const int*, const double*, const int*,
                          const double*, double*, const int*);
using ssyrk_fn = void (*)(const char*, const char*, const int*, const int*, const float*,
                          const float*, const int*, const float*, float*, const int*);
using dsyrk_fn = void (*)(const char*, const char*, const int*, const int*, const double*,
                          const double*, const int*, const double*, double*, const int*);

void set_blas(sgemm_fn sgemm, dgemm_fn dgemm, ssyrk_fn ssyrk, dsyrk_fn dsyrk);
bool blas_ready();

// Row-major C (rows x cols, ldc) = A^T B + beta C, where A is K x rows (row stride lda) and
// B is K x cols (row stride ldb): the product between the columns (features) of two
// sample-major panels. Throws std::logic_error when set_blas was never called.
void gemm_tn(std::int64_t rows, std::int64_t cols, std::int64_t K, const float* A, std::int64_t lda,
             const float* B, std::int64_t ldb, float beta, float* C, std::int64_t ldc);
void gemm_tn(std::int64_t rows, std::int64_t cols, std::int64_t K, const double* A, std::int64_t lda,
             const double* B, std::int64_t ldb, double beta, double* C, std::int64_t ldc);

// Row-major C (n x n) = A^T A + beta C for A K x n: only the upper triangle (j >= i) is written.
void syrk_tn_upper(std::int64_t n, std::int64_t K, const float* A, std::int64_t lda, float beta,
                   float* C, std::int64_t ldc);
void syrk_tn_upper(std::int64_t n, std::int64_t K, const double* A, std::int64_t lda, double beta,
                   double* C, std::int64_t ldc);

}  // namespace congruence
