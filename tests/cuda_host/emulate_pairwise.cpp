// Runs the pairwise kernels (src/cuda/pairwise_kernels_cuda.cuh, unchanged) on the CPU under the
// SIMT emulator and checks them:
//   dense     against a float64 product of the same (rounded) panel values, every precision;
//   top-k     against a stable sort of the dense tile values (bit-exact, ties by lowest index),
//             for k = 1 (register path) and the shared-memory lists, segments, bias, clamps,
//             validity masks, self-exclusion and |v| ranking, through the merge kernel;
//   threshold against the dense values, including a capacity overflow;
//   schedule  the same launch with the fibers run backwards gives bit-identical outputs.
// Prints one line per check and "ALL OK" at the end; exits 1 on the first failure.
// Build: g++ -std=c++17 -O2 -DCONGRUENCE_HOST_EMULATION -Isrc/include tests/cuda_host/emulate_pairwise.cpp
#include "simt_emulator.hpp"
//
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../../src/cuda/pairwise_kernels_cuda.cuh"
#include "check.hpp"

using namespace congruence::cuda;
using namespace congruence::cuda::detail;

namespace {


std::uint16_t to_bf16_bits(double v) {  // round to nearest even, as __double2bfloat16 via float
    float f = static_cast<float>(v);
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
}
double bf16_to_double(std::uint16_t b) {
    std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
double tf32_of(float x) { return ::cgemu::tf32_value(::cgemu::to_tf32(x)); }

// A panel of `n` logical rows and K logical columns, padded, in the element type of `prec`, plus
// the values the kernels will actually multiply (after rounding) as doubles.
struct HostPanel {
    std::int64_t n = 0, rows = 0, K = 0, k = 0;
    std::vector<char> bytes;  // rows x k elements
    std::vector<double> value;  // n x K: exactly what the precision's products see
    Panel view() const {
        Panel p;
        p.data = bytes.data();
        p.rows = rows;
        p.k = k;
        p.ld = k;
        return p;
    }
};

HostPanel make_panel(Precision prec, std::int64_t n, std::int64_t K, std::mt19937_64& rng, bool ties) {
    HostPanel h;
    h.n = n;
    h.K = K;
    h.rows = (n + 127) / 128 * 128;
    h.k = (K + 63) / 64 * 64;
    const std::int64_t es = elem_bytes(panel_elem(prec));
    h.bytes.assign(static_cast<std::size_t>(h.rows * h.k * es), 0);
    h.value.assign(static_cast<std::size_t>(n * K), 0.0);
    std::normal_distribution<double> normal(0.0, 1.0 / std::sqrt(static_cast<double>(K)));
    std::uniform_int_distribution<int> small(-2, 2);
    for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t c = 0; c < K; ++c) {
            const double x = ties ? small(rng) * 0.125 : normal(rng);
            const std::size_t at = static_cast<std::size_t>(r * h.k + c);
            double seen;
            if (prec == Precision::float64) {
                reinterpret_cast<double*>(h.bytes.data())[at] = x;
                seen = x;
            } else if (prec == Precision::bf16) {
                const std::uint16_t b = to_bf16_bits(x);
                reinterpret_cast<std::uint16_t*>(h.bytes.data())[at] = b;
                seen = bf16_to_double(b);
            } else {
                const float f = static_cast<float>(x);
                reinterpret_cast<float*>(h.bytes.data())[at] = f;
                seen = prec == Precision::tf32 ? tf32_of(f) : static_cast<double>(f);
            }
            h.value[static_cast<std::size_t>(r * K + c)] = seen;
        }
    return h;
}

std::vector<double> product64(const HostPanel& a, const HostPanel& b) {
    std::vector<double> c(static_cast<std::size_t>(a.n * b.n), 0.0);
    for (std::int64_t i = 0; i < a.n; ++i)
        for (std::int64_t j = 0; j < b.n; ++j) {
            double s = 0;
            for (std::int64_t q = 0; q < a.K; ++q) s += a.value[i * a.K + q] * b.value[j * b.K + q];
            c[i * b.n + j] = s;
        }
    return c;
}

double abs_scale(const HostPanel& a, const HostPanel& b, std::int64_t i, std::int64_t j) {
    double s = 0;
    for (std::int64_t q = 0; q < a.K; ++q) s += std::fabs(a.value[i * a.K + q] * b.value[j * b.K + q]);
    return s;
}

Epilogue plain_epilogue(std::int64_t na, std::int64_t nb) {
    Epilogue e;
    e.na = na;
    e.nb = nb;
    return e;
}

template <class ML, class EPI>
void run(const Job& job, dim3 grid, bool reverse = false) {
    constexpr int smem = ML::kSmemBytes > EPI::kSmemBytes ? ML::kSmemBytes : EPI::kSmemBytes;
    ::cgemu::launch(grid, kThreads, smem, [&job]() { pairwise_kernel<ML, EPI>(job); }, reverse);
}

dim3 tiles(const Job& job) { return dim3(static_cast<unsigned>((job.na + 127) / 128), static_cast<unsigned>(job.col_tiles)); }

// Dense values of the kernel itself (accumulator type), no clamp, no bias.
template <class ML>
std::vector<typename ML::Acc> dense_values(Precision prec, const HostPanel& a, const HostPanel& b, bool reverse = false) {
    using T = typename ML::Acc;
    std::vector<T> c(static_cast<std::size_t>(a.n * b.n), std::numeric_limits<T>::quiet_NaN());
    Job job = make_job(prec, a.view(), b.view(), plain_epilogue(a.n, b.n));
    job.out = c.data();
    job.ldc = b.n;
    job.vector_store = b.n % 2 == 0;
    run<ML, DenseEpilogue<ML, T>>(job, tiles(job), reverse);
    return c;
}

struct TopKCase {
    int k = 1, segments = 1;
    bool absolute = false, bias = false, valid = false, exclude = false, clamp = false, reverse = false;
    std::string name() const {
        char buf[160];
        std::snprintf(buf, sizeof buf, "k=%d seg=%d%s%s%s%s%s%s", k, segments, absolute ? " abs" : "", bias ? " bias" : "",
                      valid ? " valid-mask" : "", exclude ? " exclude-self" : "", clamp ? " clamp" : "",
                      reverse ? " reversed-schedule" : "");
        return buf;
    }
};

template <class ML, int KK>
void topk_check(Precision prec, const char* pname, const HostPanel& a, const HostPanel& b,
                const std::vector<typename ML::Acc>& dense, const TopKCase& tc, std::mt19937_64& rng) {
    using T = typename ML::Acc;
    const std::int64_t na = a.n, nb = b.n;
    const int k = tc.k;
    std::vector<double> bias(static_cast<std::size_t>(nb));
    std::vector<std::uint8_t> valid(static_cast<std::size_t>(nb), 1);
    std::uniform_real_distribution<double> u(-0.3, 0.3);
    for (auto& x : bias) x = tc.bias ? u(rng) : 0.0;
    if (tc.valid)
        for (std::int64_t j = 0; j < nb; ++j) valid[j] = (rng() % 5) != 0;
    Epilogue ep = plain_epilogue(na, nb);
    ep.absolute = tc.absolute;
    ep.col_bias = tc.bias ? bias.data() : nullptr;
    ep.col_valid = tc.valid ? valid.data() : nullptr;
    ep.exclude_diagonal = tc.exclude;
    if (tc.clamp) ep.lo = -0.05, ep.hi = 0.05;
    Job job = make_job(prec, a.view(), b.view(), ep);
    job.k = k;
    job.segments = std::min<int>(tc.segments, static_cast<int>(job.col_tiles));
    std::vector<T> lv(static_cast<std::size_t>(job.segments * na * k), T(-7));
    std::vector<std::int32_t> li(lv.size(), -7);
    job.list_values = lv.data();
    job.list_indices = li.data();
    const dim3 grid(static_cast<unsigned>((na + 127) / 128), static_cast<unsigned>(job.segments));
    if (k == 1)
        run<ML, Top1Epilogue<ML>>(job, grid, tc.reverse);
    else
        run<ML, TopKEpilogue<ML, KK>>(job, grid, tc.reverse);
    std::vector<T> values(static_cast<std::size_t>(na * k), T(-7));
    std::vector<std::int64_t> indices(values.size(), -7);
    ::cgemu::launch(dim3(static_cast<unsigned>((na + 7) / 8)), 256, 0, [&]() {
        topk_merge_kernel<T, KK>(lv.data(), li.data(), job.segments, na, k, tc.absolute, values.data(), indices.data());
    }, tc.reverse);
    // expected: stable order of (key desc, j asc) over the selectable columns
    bool ok = true;
    std::string first_bad;
    for (std::int64_t i = 0; i < na && ok; ++i) {
        std::vector<std::pair<T, std::int64_t>> cand;  // (value, j)
        for (std::int64_t j = 0; j < nb; ++j) {
            if (!valid[j] || (tc.exclude && i == j)) continue;
            T v = dense[i * nb + j];
            if (tc.bias) v += static_cast<T>(bias[j]);
            const T lo = static_cast<T>(ep.lo), hi = static_cast<T>(ep.hi);
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            cand.push_back({v, j});
        }
        auto key = [&](T v) { return tc.absolute ? std::fabs(v) : v; };
        std::stable_sort(cand.begin(), cand.end(), [&](const auto& x, const auto& y) { return key(x.first) > key(y.first); });
        for (int q = 0; q < k; ++q) {
            const std::int64_t at = i * k + q;
            const bool have = q < static_cast<int>(cand.size());
            const std::int64_t want_j = have ? cand[q].second : -1;
            const bool good = have ? (indices[at] == want_j && values[at] == cand[q].first)
                                   : (indices[at] == -1 && std::isnan(values[at]));
            if (!good) {
                ok = false;
                char buf[200];
                std::snprintf(buf, sizeof buf, " (row %" PRId64 " slot %d: got (%.9g, %" PRId64 ") want (%.9g, %" PRId64 "))", i, q,
                              static_cast<double>(values[at]), indices[at], have ? static_cast<double>(cand[q].first) : NAN,
                              want_j);
                first_bad = buf;
                break;
            }
        }
    }
    expect(ok, std::string(pname) + " top-k " + tc.name() + first_bad);
}

template <class ML>
void threshold_check(Precision prec, const char* pname, const HostPanel& a, const HostPanel& b,
                     const std::vector<typename ML::Acc>& dense, bool absolute) {
    using T = typename ML::Acc;
    const std::int64_t na = a.n, nb = b.n;
    std::vector<double> keys;
    for (T v : dense) keys.push_back(absolute ? std::fabs(static_cast<double>(v)) : static_cast<double>(v));
    std::vector<double> sorted = keys;
    std::sort(sorted.begin(), sorted.end());
    const double thr = sorted[sorted.size() * 97 / 100];  // ~3% of the pairs
    std::vector<std::pair<std::int64_t, std::int64_t>> want;
    for (std::int64_t i = 0; i < na; ++i)
        for (std::int64_t j = 0; j < nb; ++j)
            if (keys[i * nb + j] >= thr) want.push_back({i, j});
    for (std::int64_t capacity : {static_cast<std::int64_t>(want.size()) + 5, static_cast<std::int64_t>(want.size()) / 3}) {
        Epilogue ep = plain_epilogue(na, nb);
        ep.absolute = absolute;
        Job job = make_job(prec, a.view(), b.view(), ep);
        std::vector<std::int64_t> rows(static_cast<std::size_t>(capacity), -7), cols(rows.size(), -7);
        std::vector<T> vals(rows.size(), T(-7));
        unsigned long long counter = 0;
        job.threshold = thr;
        job.pair_rows = rows.data();
        job.pair_cols = cols.data();
        job.pair_values = vals.data();
        job.capacity = capacity;
        job.counter = &counter;
        run<ML, ThresholdEpilogue<ML>>(job, tiles(job));
        bool ok = counter == want.size();
        const std::int64_t written = std::min<std::int64_t>(capacity, static_cast<std::int64_t>(counter));
        std::vector<std::pair<std::int64_t, std::int64_t>> got;
        for (std::int64_t s = 0; s < written && ok; ++s) {
            got.push_back({rows[s], cols[s]});
            ok = rows[s] >= 0 && rows[s] < na && cols[s] >= 0 && cols[s] < nb && vals[s] == dense[rows[s] * nb + cols[s]];
        }
        std::sort(got.begin(), got.end());
        if (ok && capacity >= static_cast<std::int64_t>(want.size())) ok = got == want;
        if (ok && capacity < static_cast<std::int64_t>(want.size()))  // the written ones are distinct qualifying pairs
            ok = std::adjacent_find(got.begin(), got.end()) == got.end() &&
                 std::all_of(got.begin(), got.end(), [&](const auto& p) { return keys[p.first * nb + p.second] >= thr; });
        for (std::int64_t s = written; s < capacity && ok; ++s) ok = rows[s] == -7;  // nothing beyond the count
        expect(ok, std::string(pname) + " threshold" + (absolute ? " abs" : "") + " capacity " + std::to_string(capacity) +
                       " of " + std::to_string(want.size()) + " (count " + std::to_string(counter) + ")");
    }
}

template <class ML>
void check_precision(Precision prec, const char* pname, double tol, std::mt19937_64& rng) {
    using T = typename ML::Acc;
    // Sizes not multiples of the tile; K crosses the two-level accumulation chunk (256 elements).
    const std::int64_t na = 150, nb = 300, K = 300;
    for (bool ties : {false, true}) {
        HostPanel a = make_panel(prec, na, K, rng, ties), b = make_panel(prec, nb, K, rng, ties);
        const std::vector<T> dense = dense_values<ML>(prec, a, b);
        const std::vector<double> ref = product64(a, b);
        double worst = 0;
        bool finite = true;
        for (std::int64_t i = 0; i < na; ++i)
            for (std::int64_t j = 0; j < nb; ++j) {
                const double got = static_cast<double>(dense[i * nb + j]);
                finite = finite && std::isfinite(got);
                worst = std::max(worst, std::fabs(got - ref[i * nb + j]) / std::max(1e-30, abs_scale(a, b, i, j)));
            }
        char buf[128];
        std::snprintf(buf, sizeof buf, " (max error / sum|ab| = %.2e, tolerance %.0e)", worst, tol);
        expect(finite && worst <= tol, std::string(pname) + " dense" + (ties ? " small-integer data" : " random data") + buf);
        if (!ties) continue;
        // The same launch scheduled backwards: any unordered shared-memory access would show.
        expect(dense_values<ML>(prec, a, b, /*reverse=*/true) == dense, std::string(pname) + " dense, reversed schedule, bit-identical");
        // float64 accumulate mode (cross statistics), and clamps
        {
            std::vector<double> acc(static_cast<std::size_t>(na * nb), 1.0);
            Job job = make_job(prec, a.view(), b.view(), plain_epilogue(na, nb));
            job.out = acc.data();
            job.ldc = nb;
            job.accumulate = true;
            run<ML, DenseEpilogue<ML, double>>(job, tiles(job));
            bool ok = true;
            for (std::size_t x = 0; x < acc.size() && ok; ++x) ok = acc[x] == 1.0 + static_cast<double>(static_cast<T>(dense[x]));
            expect(ok, std::string(pname) + " dense accumulate into float64");
        }
    }
    // Reductions on ties-heavy data (exact ties everywhere) and on random data.
    for (bool ties : {true, false}) {
        HostPanel a = make_panel(prec, na, 64, rng, ties), b = make_panel(prec, nb, 64, rng, ties);
        const std::vector<T> dense = dense_values<ML>(prec, a, b);
        const char* data = ties ? " [ties]" : " [random]";
        const std::string pn = std::string(pname) + data;
        topk_check<ML, 1>(prec, pn.c_str(), a, b, dense, {1, 1}, rng);
        topk_check<ML, 1>(prec, pn.c_str(), a, b, dense, {1, 3, true}, rng);
        topk_check<ML, 1>(prec, pn.c_str(), a, b, dense, {1, 2, false, false, false, false, false, true}, rng);
        topk_check<ML, 1>(prec, pn.c_str(), a, b, dense, {5, 1}, rng);
        topk_check<ML, 1>(prec, pn.c_str(), a, b, dense, {32, 2, false, true, true}, rng);
        topk_check<ML, 2>(prec, pn.c_str(), a, b, dense, {33, 3, true}, rng);
        topk_check<ML, 2>(prec, pn.c_str(), a, b, dense, {40, 3, false, true, false, false, false, true}, rng);
        topk_check<ML, 8>(prec, pn.c_str(), a, b, dense, {200, 2, false, false, false, false, true}, rng);
        if (ties) {
            threshold_check<ML>(prec, pn.c_str(), a, b, dense, false);
            threshold_check<ML>(prec, pn.c_str(), a, b, dense, true);
        }
    }
    // Self-join: exclusion of the diagonal (A and B the same panel), k = 1 and k > 1; and the
    // symmetric dense product (upper tiles only, mirrored), stored and accumulated.
    {
        HostPanel a = make_panel(prec, nb, 64, rng, true);
        const std::vector<T> dense = dense_values<ML>(prec, a, a);
        for (bool accumulate : {false, true}) {
            std::vector<double> sym(static_cast<std::size_t>(nb * nb), accumulate ? 1.0 : std::nan(""));
            Job job = make_job(prec, a.view(), a.view(), plain_epilogue(nb, nb));
            job.out = sym.data();
            job.ldc = nb;
            job.accumulate = accumulate;
            job.symmetric = true;
            run<ML, DenseEpilogue<ML, double>>(job, tiles(job), /*reverse=*/accumulate);
            bool ok = true;
            for (std::int64_t i = 0; i < nb && ok; ++i)
                for (std::int64_t j = 0; j < nb && ok; ++j) {
                    const double want = (accumulate ? 1.0 : 0.0) + static_cast<double>(dense[(i <= j ? i * nb + j : j * nb + i)]);
                    ok = sym[i * nb + j] == want;
                }
            expect(ok, std::string(pname) + " dense symmetric (upper tiles mirrored)" + (accumulate ? ", accumulate" : ""));
        }
        const std::string pn = std::string(pname) + " [self-join]";
        topk_check<ML, 1>(prec, pn.c_str(), a, a, dense, {1, 2, false, false, false, true}, rng);
        topk_check<ML, 4>(prec, pn.c_str(), a, a, dense, {100, 1, true, true, false, true}, rng);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::mt19937_64 rng(20261201);
    const std::string only = argc > 1 ? argv[1] : "";
    auto want = [&](const char* name) { return only.empty() || only == name; };
    if (want("float32")) check_precision<SimtMainloop<float>>(Precision::float32, "float32", 1e-5, rng);
    if (want("float64")) check_precision<SimtMainloop<double>>(Precision::float64, "float64", 1e-14, rng);
    if (want("tf32")) check_precision<MmaMainloop<MmaKind::tf32>>(Precision::tf32, "tf32", 1e-5, rng);
    if (want("3xtf32")) check_precision<MmaMainloop<MmaKind::tf32x3>>(Precision::tf32x3, "3xtf32", 1e-5, rng);
    if (want("bf16")) check_precision<MmaMainloop<MmaKind::bf16>>(Precision::bf16, "bf16", 1e-5, rng);
    std::printf("ALL OK\n");
    return 0;
}
