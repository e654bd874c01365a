#include "congruence/blas.hpp"

#include <stdexcept>

namespace congruence {
namespace {
sgemm_fn g_sgemm = nullptr;
dgemm_fn g_dgemm = nullptr;
ssyrk_fn g_ssyrk = nullptr;
dsyrk_fn g_dsyrk = nullptr;

void require(const void* fn) {
    if (fn == nullptr) throw std::logic_error("congruence: BLAS function pointers were not set");
}
int as_int(std::int64_t v) { return static_cast<int>(v); }  // ranges checked by the caller
}  // namespace

void set_blas(sgemm_fn sgemm, dgemm_fn dgemm, ssyrk_fn ssyrk, dsyrk_fn dsyrk) {
    g_sgemm = sgemm;
    g_dgemm = dgemm;
    g_ssyrk = ssyrk;
    g_dsyrk = dsyrk;
}

bool blas_ready() { return g_sgemm && g_dgemm && g_ssyrk && g_dsyrk; }

// Row-major C = A^T B is column-major C^T = B_cm A_cm^T with B_cm = (cols x K, ld ldb).
void gemm_tn(std::int64_t rows, std::int64_t cols, std::int64_t K, const float* A, std::int64_t lda,
             const float* B, std::int64_t ldb, float beta, float* C, std::int64_t ldc) {
    require(reinterpret_cast<const void*>(g_sgemm));
    const int m = as_int(cols), n = as_int(rows), k = as_int(K);
    const int la = as_int(ldb), lb = as_int(lda), lc = as_int(ldc);
    const float one = 1.0f;
    g_sgemm("N", "T", &m, &n, &k, &one, B, &la, A, &lb, &beta, C, &lc);
}

void gemm_tn(std::int64_t rows, std::int64_t cols, std::int64_t K, const double* A, std::int64_t lda,
             const double* B, std::int64_t ldb, double beta, double* C, std::int64_t ldc) {
    require(reinterpret_cast<const void*>(g_dgemm));
    const int m = as_int(cols), n = as_int(rows), k = as_int(K);
    const int la = as_int(ldb), lb = as_int(lda), lc = as_int(ldc);
    const double one = 1.0;
    g_dgemm("N", "T", &m, &n, &k, &one, B, &la, A, &lb, &beta, C, &lc);
}

// Row-major upper triangle == column-major lower triangle of A_cm A_cm^T.
void syrk_tn_upper(std::int64_t n, std::int64_t K, const float* A, std::int64_t lda, float beta,
                   float* C, std::int64_t ldc) {
    require(reinterpret_cast<const void*>(g_ssyrk));
    const int nn = as_int(n), k = as_int(K), la = as_int(lda), lc = as_int(ldc);
    const float one = 1.0f;
    g_ssyrk("L", "N", &nn, &k, &one, A, &la, &beta, C, &lc);
}

void syrk_tn_upper(std::int64_t n, std::int64_t K, const double* A, std::int64_t lda, double beta,
                   double* C, std::int64_t ldc) {
    require(reinterpret_cast<const void*>(g_dsyrk));
    const int nn = as_int(n), k = as_int(K), la = as_int(lda), lc = as_int(ldc);
    const double one = 1.0;
    g_dsyrk("L", "N", &nn, &k, &one, A, &la, &beta, C, &lc);
}

}  // namespace congruence
