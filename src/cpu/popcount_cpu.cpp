#include "congruence/popcount.hpp"

#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace congruence {
namespace {

constexpr std::int64_t kTile = 64;         // rows per tile (both sides)
constexpr std::int64_t kWordChunk = 256;   // words per chunk: a 64-row chunk is 128 KiB

// ---- AVX-512 VPOPCNTQ kernels (compiled for that ISA, called only when the CPU has it) -------

#define CONGRUENCE_AVX512_POPCNT __attribute__((target("avx512f,avx512vpopcntdq")))

CONGRUENCE_AVX512_POPCNT inline __m512i load_words(const std::uint64_t* p, std::int64_t rem) {
    if (rem >= 8) return _mm512_loadu_si512(static_cast<const void*>(p));
    return _mm512_maskz_loadu_epi64(static_cast<__mmask8>((1u << rem) - 1u), p);
}

// acc[a][b] += popcount(A_{r0+a} & A_{c0+b}) over words [w0, w1), 4 x 4 rows.
CONGRUENCE_AVX512_POPCNT void and_block_4x4(const std::uint64_t* A, std::int64_t W, std::int64_t r0, std::int64_t c0,
                                            std::int64_t w0, std::int64_t w1, std::int64_t acc[4][4]) {
    __m512i s[4][4];
    for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) s[a][b] = _mm512_setzero_si512();
    for (std::int64_t w = w0; w < w1; w += 8) {
        const std::int64_t rem = w1 - w;
        __m512i x[4], y[4];
        for (int a = 0; a < 4; ++a) x[a] = load_words(A + (r0 + a) * W + w, rem);
        for (int b = 0; b < 4; ++b) y[b] = load_words(A + (c0 + b) * W + w, rem);
        for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b)
                s[a][b] = _mm512_add_epi64(s[a][b], _mm512_popcnt_epi64(_mm512_and_si512(x[a], y[b])));
    }
    for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) acc[a][b] += _mm512_reduce_add_epi64(s[a][b]);
}

// acc[a][b] += popcount(valid & ~OR_p(plane_p,r0+a ^ plane_p,c0+b)), 2 x 4 rows.
CONGRUENCE_AVX512_POPCNT void equal_block_2x4(const std::uint64_t* planes, std::int64_t P, std::int64_t K,
                                              std::int64_t W, const std::uint64_t* valid, std::int64_t r0,
                                              std::int64_t c0, std::int64_t w0, std::int64_t w1,
                                              std::int64_t acc[2][4]) {
    __m512i s[2][4];
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 4; ++b) s[a][b] = _mm512_setzero_si512();
    const std::int64_t plane = K * W;
    for (std::int64_t w = w0; w < w1; w += 8) {
        const std::int64_t rem = w1 - w;
        __m512i d[2][4];
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 4; ++b) d[a][b] = _mm512_setzero_si512();
        for (std::int64_t p = 0; p < P; ++p) {
            const std::uint64_t* base = planes + p * plane + w;
            __m512i x[2], y[4];
            for (int a = 0; a < 2; ++a) x[a] = load_words(base + (r0 + a) * W, rem);
            for (int b = 0; b < 4; ++b) y[b] = load_words(base + (c0 + b) * W, rem);
            for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 4; ++b) d[a][b] = _mm512_or_si512(d[a][b], _mm512_xor_si512(x[a], y[b]));
        }
        const __m512i v = load_words(valid + w, rem);
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 4; ++b)
                s[a][b] = _mm512_add_epi64(s[a][b], _mm512_popcnt_epi64(_mm512_andnot_si512(d[a][b], v)));
    }
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 4; ++b) acc[a][b] += _mm512_reduce_add_epi64(s[a][b]);
}

// ---- portable kernels (hardware popcnt where available through the clones) -------------------

#define CONGRUENCE_POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))

CONGRUENCE_POPCNT_CLONES std::int64_t and_count(const std::uint64_t* a, const std::uint64_t* b, std::int64_t w0,
                                                std::int64_t w1) {
    std::int64_t s = 0;
    for (std::int64_t w = w0; w < w1; ++w) s += __builtin_popcountll(a[w] & b[w]);
    return s;
}

CONGRUENCE_POPCNT_CLONES std::int64_t equal_count(const std::uint64_t* planes, std::int64_t P, std::int64_t plane,
                                                  const std::uint64_t* a, const std::uint64_t* b,
                                                  const std::uint64_t* valid, std::int64_t w0, std::int64_t w1) {
    std::int64_t s = 0;
    for (std::int64_t w = w0; w < w1; ++w) {
        std::uint64_t d = 0;
        for (std::int64_t p = 0; p < P; ++p) d |= a[p * plane + w] ^ b[p * plane + w];
        s += __builtin_popcountll(valid[w] & ~d);
    }
    (void)planes;
    return s;
}

bool has_avx512_popcount() {
    static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
    return yes;
}

// The upper-triangle tile pairs (I <= J), in a fixed order for the dynamic schedule.
std::vector<std::pair<std::int64_t, std::int64_t>> tile_pairs(std::int64_t K) {
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
    for (std::int64_t i0 = 0; i0 < K; i0 += kTile)
        for (std::int64_t j0 = i0; j0 < K; j0 += kTile) pairs.emplace_back(i0, j0);
    return pairs;
}

// Copies a tile's counts (rows [i0, i1) x cols [j0, j1), upper part) into out and its mirror.
void store_tile(const std::vector<std::int64_t>& c, std::int64_t i0, std::int64_t i1, std::int64_t j0,
                std::int64_t j1, std::int64_t K, std::int64_t* out) {
    for (std::int64_t i = i0; i < i1; ++i)
        for (std::int64_t j = std::max(j0, i); j < j1; ++j) {
            const std::int64_t v = c[(i - i0) * kTile + (j - j0)];
            out[i * K + j] = v;
            out[j * K + i] = v;
        }
}

// The driver both Grams share: 64 x 64 tile pairs of the upper triangle under a dynamic schedule,
// word chunks of `chunk` words, R x Q register blocks by `block` (AVX-512, when `vec`) or pair by
// pair by `pair` (edges and CPUs without VPOPCNTQ); blocks wholly below a diagonal tile's
// diagonal are skipped (store_tile mirrors the upper part).
template <int R, int Q, class Block, class Pair>
void upper_gram(std::int64_t K, std::int64_t W, std::int64_t chunk, bool vec, std::int64_t* out, int num_threads,
                Block block, Pair pair) {
    const auto pairs = tile_pairs(K);
#pragma omp parallel num_threads(num_threads)
    {
        std::vector<std::int64_t> c(static_cast<std::size_t>(kTile * kTile));
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t t = 0; t < static_cast<std::int64_t>(pairs.size()); ++t) {
            const std::int64_t i0 = pairs[t].first, j0 = pairs[t].second;
            const std::int64_t i1 = std::min(K, i0 + kTile), j1 = std::min(K, j0 + kTile);
            std::fill(c.begin(), c.end(), 0);
            for (std::int64_t w0 = 0; w0 < W; w0 += chunk) {
                const std::int64_t w1 = std::min(W, w0 + chunk);
                for (std::int64_t r = i0; r < i1; r += R)
                    for (std::int64_t q = j0; q < j1; q += Q) {
                        if (i0 == j0 && q + Q - 1 < r) continue;
                        if (vec && r + R <= i1 && q + Q <= j1) {
                            std::int64_t acc[R][Q] = {};
                            block(r, q, w0, w1, acc);
                            for (int x = 0; x < R; ++x)
                                for (int y = 0; y < Q; ++y) c[(r + x - i0) * kTile + (q + y - j0)] += acc[x][y];
                        } else {
                            for (std::int64_t x = r; x < std::min(i1, r + R); ++x)
                                for (std::int64_t y = q; y < std::min(j1, q + Q); ++y)
                                    c[(x - i0) * kTile + (y - j0)] += pair(x, y, w0, w1);
                        }
                    }
            }
            store_tile(c, i0, i1, j0, j1, K, out);
        }
    }
}

}  // namespace

void gram_popcount(const std::uint64_t* A, std::int64_t K, std::int64_t W, std::int64_t* out, int num_threads) {
    upper_gram<4, 4>(
        K, W, kWordChunk, has_avx512_popcount(), out, num_threads,
        [&](std::int64_t r, std::int64_t q, std::int64_t w0, std::int64_t w1, std::int64_t (&acc)[4][4]) {
            and_block_4x4(A, W, r, q, w0, w1, acc);
        },
        [&](std::int64_t x, std::int64_t y, std::int64_t w0, std::int64_t w1) {
            return and_count(A + x * W, A + y * W, w0, w1);
        });
}

void gram_equal_sliced(const std::uint64_t* planes, std::int64_t P, std::int64_t K, std::int64_t W,
                       const std::uint64_t* valid, std::int64_t* out, int num_threads) {
    const std::int64_t plane = K * W;
    // P planes per word: shorter chunks keep the same bytes in cache
    const std::int64_t chunk = std::max<std::int64_t>(8, kWordChunk / std::max<std::int64_t>(1, P) / 8 * 8);
    upper_gram<2, 4>(
        K, W, chunk, has_avx512_popcount(), out, num_threads,
        [&](std::int64_t r, std::int64_t q, std::int64_t w0, std::int64_t w1, std::int64_t (&acc)[2][4]) {
            equal_block_2x4(planes, P, K, W, valid, r, q, w0, w1, acc);
        },
        [&](std::int64_t x, std::int64_t y, std::int64_t w0, std::int64_t w1) {
            return equal_count(planes, P, plane, planes + x * W, planes + y * W, valid, w0, w1);
        });
}

template <class T>
void pack_label_planes(const T* labels, std::int64_t K, std::int64_t n, std::int64_t P, std::uint64_t* planes,
                       int num_threads) {
    const std::int64_t W = (n + 63) / 64, plane = K * W;
#pragma omp parallel for num_threads(num_threads) schedule(static)
    for (std::int64_t i = 0; i < K; ++i) {
        const T* row = labels + i * n;
        for (std::int64_t w = 0; w < W; ++w) {
            const std::int64_t x0 = w * 64, x1 = std::min(n, x0 + 64);
            for (std::int64_t p = 0; p < P; ++p) {
                std::uint64_t word = 0;
                for (std::int64_t x = x0; x < x1; ++x)
                    word |= static_cast<std::uint64_t>((static_cast<std::uint64_t>(row[x]) >> p) & 1u) << (x - x0);
                planes[p * plane + i * W + w] = word;
            }
        }
    }
}

template void pack_label_planes<std::int32_t>(const std::int32_t*, std::int64_t, std::int64_t, std::int64_t,
                                              std::uint64_t*, int);
template void pack_label_planes<std::int64_t>(const std::int64_t*, std::int64_t, std::int64_t, std::int64_t,
                                              std::uint64_t*, int);

}  // namespace congruence
