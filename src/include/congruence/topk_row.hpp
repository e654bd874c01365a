// Per-row reductions applied to one GEMM tile: top-k insertion and threshold collection.
// Both skip a chunk of 64 entries with one vectorised max unless something in it can enter,
// which keeps the epilogue nearly free next to the product (DESIGN.md §2).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "congruence/pairwise.hpp"

namespace congruence {

// A row's running top-k: keys descending; equal keys keep arrival order, and columns arrive in
// increasing j, so ties resolve to the lowest index.
struct RowTopK {
    std::int64_t k = 0;
    double* keys = nullptr;
    double* vals = nullptr;
    std::int64_t* idx = nullptr;
};

struct RowHits {
    std::vector<std::int64_t> cols;
    std::vector<double> values;
};

namespace detail {

constexpr std::int64_t kScanChunk = 64;

inline void topk_insert(RowTopK& s, double key, double val, std::int64_t j) {
    std::int64_t pos = s.k - 1;
    while (pos > 0 && s.keys[pos - 1] < key) {
        s.keys[pos] = s.keys[pos - 1];
        s.vals[pos] = s.vals[pos - 1];
        s.idx[pos] = s.idx[pos - 1];
        --pos;
    }
    s.keys[pos] = key;
    s.vals[pos] = val;
    s.idx[pos] = j;
}

template <class V, bool ABS, bool BIAS>
inline V value_at(const V* row, const double* bias, std::int64_t j, std::int64_t j0, V lo, V hi) {
    V v = row[j];
    if (BIAS) v += static_cast<V>(bias[j0 + j]);
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

template <class V, bool ABS>
inline V key_from(V v) {
    return ABS ? std::fabs(v) : v;
}

template <class V, bool ABS, bool BIAS>
inline V chunk_max_key(const V* row, const double* bias, std::int64_t c0, std::int64_t c1,
                       std::int64_t j0, V lo, V hi) {
    V m = -std::numeric_limits<V>::infinity();
#pragma omp simd reduction(max : m)
    for (std::int64_t j = c0; j < c1; ++j) {
        const V kk = key_from<V, ABS>(value_at<V, ABS, BIAS>(row, bias, j, j0, lo, hi));
        m = kk > m ? kk : m;
    }
    return m;
}

template <class V, bool ABS, bool BIAS>
void scan_topk(const V* row, std::int64_t n, std::int64_t j0, const ReduceSpec& spec,
               std::int64_t excl, RowTopK& s) {
    const V lo = static_cast<V>(spec.lo), hi = static_cast<V>(spec.hi);
    double thr = s.keys[s.k - 1];
    for (std::int64_t c0 = 0; c0 < n; c0 += kScanChunk) {
        const std::int64_t c1 = c0 + kScanChunk < n ? c0 + kScanChunk : n;
        if (!(static_cast<double>(chunk_max_key<V, ABS, BIAS>(row, spec.col_bias, c0, c1, j0, lo, hi)) > thr))
            continue;
        for (std::int64_t j = c0; j < c1; ++j) {
            const V v = value_at<V, ABS, BIAS>(row, spec.col_bias, j, j0, lo, hi);
            const double kk = static_cast<double>(key_from<V, ABS>(v));
            if (!(kk > thr) || j == excl) continue;
            if (spec.col_valid && !spec.col_valid[j0 + j]) continue;
            topk_insert(s, kk, static_cast<double>(v), j0 + j);
            thr = s.keys[s.k - 1];
        }
    }
}

template <class V, bool ABS, bool BIAS>
void scan_threshold(const V* row, std::int64_t n, std::int64_t j0, const ReduceSpec& spec,
                    std::int64_t excl, double thr, RowHits& h) {
    const V lo = static_cast<V>(spec.lo), hi = static_cast<V>(spec.hi);
    for (std::int64_t c0 = 0; c0 < n; c0 += kScanChunk) {
        const std::int64_t c1 = c0 + kScanChunk < n ? c0 + kScanChunk : n;
        if (!(static_cast<double>(chunk_max_key<V, ABS, BIAS>(row, spec.col_bias, c0, c1, j0, lo, hi)) >= thr))
            continue;
        for (std::int64_t j = c0; j < c1; ++j) {
            const V v = value_at<V, ABS, BIAS>(row, spec.col_bias, j, j0, lo, hi);
            const double kk = static_cast<double>(key_from<V, ABS>(v));
            if (!(kk >= thr) || j == excl) continue;
            if (spec.col_valid && !spec.col_valid[j0 + j]) continue;
            h.cols.push_back(j0 + j);
            h.values.push_back(static_cast<double>(v));
        }
    }
}

}  // namespace detail

// excl: the local column to skip (self-join diagonal), or any value outside [0, n).
template <class V>
void scan_row_topk(const V* row, std::int64_t n, std::int64_t j0, const ReduceSpec& spec,
                   std::int64_t excl, RowTopK& s) {
    const bool bias = spec.col_bias != nullptr;
    if (spec.absolute) {
        if (bias) detail::scan_topk<V, true, true>(row, n, j0, spec, excl, s);
        else detail::scan_topk<V, true, false>(row, n, j0, spec, excl, s);
    } else {
        if (bias) detail::scan_topk<V, false, true>(row, n, j0, spec, excl, s);
        else detail::scan_topk<V, false, false>(row, n, j0, spec, excl, s);
    }
}

template <class V>
void scan_row_threshold(const V* row, std::int64_t n, std::int64_t j0, const ReduceSpec& spec,
                        std::int64_t excl, double thr, RowHits& h) {
    const bool bias = spec.col_bias != nullptr;
    if (spec.absolute) {
        if (bias) detail::scan_threshold<V, true, true>(row, n, j0, spec, excl, thr, h);
        else detail::scan_threshold<V, true, false>(row, n, j0, spec, excl, thr, h);
    } else {
        if (bias) detail::scan_threshold<V, false, true>(row, n, j0, spec, excl, thr, h);
        else detail::scan_threshold<V, false, false>(row, n, j0, spec, excl, thr, h);
    }
}

}  // namespace congruence
