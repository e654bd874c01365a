// The Mahalanobis-like distance of diffusion maps on a candidate graph (METHODS.md §6.1):
// d²(i, j) = ½ Δᵀ(C_i⁺ + C_j⁺)Δ with Δ = o_i − o_j, each pseudo-inverse given as a whitening
// factor F_i (r × D) with C_i⁺ = F_iᵀF_i, so d² = ½(‖F_iΔ‖² + ‖F_jΔ‖²): 4rD flops per pair;
// and the plain squared distance on the same kind of pair list.
#pragma once
#include <cstdint>

namespace congruence {

// O: N x D points (row-major); F: N x r x D factors (row-major per point; rows of a point beyond
// its kept rank are zero); pairs (rows[e], cols[e]); out[e] = d². OpenMP over pairs.
void mahalanobis_pairs(const double* O, std::int64_t N, std::int64_t D, const double* F, std::int64_t r,
                       const std::int64_t* rows, const std::int64_t* cols, std::int64_t n, double* out,
                       int num_threads);

// out[e] = ‖o_rows[e] − o_cols[e]‖² from explicit float64 differences (no cancellation): the exact
// recheck of candidates screened in lower precision. OpenMP over pairs.
void squared_distance_pairs(const double* O, std::int64_t N, std::int64_t D, const std::int64_t* rows,
                            const std::int64_t* cols, std::int64_t n, double* out, int num_threads);

}  // namespace congruence
