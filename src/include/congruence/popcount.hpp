// Pairwise popcounts over bit-packed rows (METHODS.md §7): the counts behind agreement,
// disagreement and error-consistency matrices of many classifiers. A row is a model's bits over
// examples, 64 per word (example x in word x / 64, bit x % 64).
#pragma once
#include <cstdint>

namespace congruence {

// out[i * K + j] = popcount(A_i & A_j) for j >= i (the upper triangle, i and j rows of the
// K x W word matrix A, row stride W); the lower triangle is mirrored. Blocked over row tiles and
// word chunks so that both tiles' chunks stay in L1/L2; a 4 x 4 register block of AVX-512
// VPOPCNTQ counters where the CPU has it (runtime dispatch), else 64-bit popcounts.
void gram_popcount(const std::uint64_t* A, std::int64_t K, std::int64_t W, std::int64_t* out, int num_threads);

// Equality counts of bit-sliced labels: row i of plane p (P planes, each K x W) holds bit p of
// model i's label per example; out[i * K + j] = popcount(valid & ~OR_p(plane_p,i ^ plane_p,j)),
// the number of examples where models i and j give the same label. valid (W words) masks the
// padding bits of the last word.
void gram_equal_sliced(const std::uint64_t* planes, std::int64_t P, std::int64_t K, std::int64_t W,
                       const std::uint64_t* valid, std::int64_t* out, int num_threads);

// Bit-slices labels (K x n, row-major, values in [0, 2^P)) into P planes of K x W words
// (W = ceil(n / 64)): bit b of word w of plane p, row i = bit p of labels[i, 64 w + b]; padding 0.
template <class T>
void pack_label_planes(const T* labels, std::int64_t K, std::int64_t n, std::int64_t P, std::uint64_t* planes,
                       int num_threads);

}  // namespace congruence
