// Runs the column-statistics kernels (src/cuda/column_stats_kernels_cuda.cuh, unchanged) on the CPU
// under the SIMT emulator, through the same launch sequences column_stats_cuda.cu uses
// (colstats::moments_launches / standardize_launches with an emulator `launch`), and checks them:
//   conversions  __double2half / __double2bfloat16 of the emulator round to nearest even
//                (every 16-bit pattern, every midpoint, the overflow thresholds);
//   moments      mean, m2, sumsq, sum_shifted against long-double references, both partial-kernel
//                shapes (a row-major view and the transposed view), float16/bfloat16/float32/
//                float64, a given shift and the computed one (first min(rows, 1024) rows), rows
//                below and above 1024, chunk counts from 1 to the warp reduce (several SM counts),
//                the reduce's grid-stride loop; bit-exact where the data make every sum exact;
//                null outputs, mean aliasing shift, NaN/Inf (and x² overflow) giving "not finite";
//   standardize  every input x output type, both paths (transposed through shared memory or
//                not), row_shift/col_shift/row_scale present or null, padding rows/columns written
//                as zeros, columns beyond out_cols untouched, sizes that are not multiples of 32,
//                fewer blocks than tiles (the grid-stride loop reusing the shared tile);
//   schedule     the same launches with the fibers run backwards give bit-identical outputs.
// Prints one line per check and "ALL OK" at the end; exits 1 on the first failure.
// Build: g++ -std=c++17 -O2 -ffp-contract=off -DCONGRUENCE_HOST_EMULATION -Isrc/include tests/cuda_host/emulate_column_stats.cpp
// (-ffp-contract=off: the bit-exact checks redo the kernels' a - b·c in the driver; neither side
// may become an fma on a machine built for one.)
#include "simt_emulator.hpp"
//
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <functional>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <random>
#include <string>
#include <vector>

#include "../../src/cuda/column_stats_kernels_cuda.cuh"
#include "check.hpp"

using namespace congruence::cuda;
using namespace congruence::cuda::colstats;

namespace {


std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

std::uint64_t bits_of(double x) {
    std::uint64_t u;
    std::memcpy(&u, &x, 8);
    return u;
}
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (bits_of(a[i]) != bits_of(b[i])) return false;
    return true;
}

const char* elem_name(Elem e) {
    switch (e) {
        case Elem::float16: return "float16";
        case Elem::bfloat16: return "bfloat16";
        case Elem::float32: return "float32";
        default: return "float64";
    }
}
std::int64_t elem_size(Elem e) { return e == Elem::float64 ? 8 : (e == Elem::float32 ? 4 : 2); }
constexpr Elem kElems[] = {Elem::float16, Elem::bfloat16, Elem::float32, Elem::float64};

void store(Elem e, void* base, std::int64_t i, double v) {
    switch (e) {
        case Elem::float16: static_cast<__half*>(base)[i] = __double2half(v); break;
        case Elem::bfloat16: static_cast<__nv_bfloat16*>(base)[i] = __double2bfloat16(v); break;
        case Elem::float32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
        default: static_cast<double*>(base)[i] = v;
    }
}
double load(Elem e, const void* base, std::int64_t i) {
    switch (e) {
        case Elem::float16: return __half2float(static_cast<const __half*>(base)[i]);
        case Elem::bfloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
        case Elem::float32: return static_cast<const float*>(base)[i];
        default: return static_cast<const double*>(base)[i];
    }
}
std::uint64_t raw_bits(Elem e, const void* base, std::int64_t i) {
    std::uint64_t u = 0;
    std::memcpy(&u, static_cast<const char*>(base) + i * elem_size(e), static_cast<std::size_t>(elem_size(e)));
    return u;
}

// ---- the emulator's `launch` for the shared launch sequences ------------------------------------
struct EmuLaunch {
    bool reverse = false;
    std::vector<std::string>* log = nullptr;
    template <class... P, class... A>
    void operator()(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, A... args) const {
        if (log) log->push_back(fmt("%s<<<%u, (%u,%u)>>>", name, grid.x, block.x, block.y));
        ::cgemu::launch(grid, block, 0, [&] { kernel(args...); }, reverse, 64 * 1024);
    }
};

// ---- conversions ----------------------------------------------------------------------------
// Independent of how the emulator rounds: decoding every pattern, then the rounding of each
// value, of each midpoint between neighbours (ties go to the even pattern) and of the doubles
// just beside the midpoints (go to the nearer neighbour).
void check_conversions() {
    for (int bf = 0; bf < 2; ++bf) {
        const char* name = bf ? "__double2bfloat16" : "__double2half";
        auto enc = [&](double x) -> std::uint16_t {
            return bf ? __bfloat16_as_ushort(__double2bfloat16(x)) : __half_as_ushort(__double2half(x));
        };
        auto dec = [&](std::uint16_t u) -> double {
            return bf ? __bfloat162float(__ushort_as_bfloat16(u)) : __half2float(__ushort_as_half(u));
        };
        const std::uint16_t inf = bf ? 0x7f80 : 0x7c00;
        bool ok = true;
        std::string bad;
        // Positive finite patterns in increasing order 0x0000 .. inf - 1 (negatives mirror them),
        // each with its upper neighbour (the largest finite one is checked below).
        for (std::uint32_t u = 0; u + 1 < inf && ok; ++u) {
            const double v = dec(static_cast<std::uint16_t>(u)), w = dec(static_cast<std::uint16_t>(u + 1));
            const double mid = 0.5 * (v + w);  // exact in double
            const std::uint16_t even = (u & 1) ? static_cast<std::uint16_t>(u + 1) : static_cast<std::uint16_t>(u);
            ok = enc(v) == u && enc(-v) == (u | 0x8000) && !(w <= v) &&
                 enc(mid) == even && enc(-mid) == (even | 0x8000) &&
                 enc(std::nextafter(mid, 0.0)) == u && enc(std::nextafter(mid, 1e308)) == u + 1;
            if (!ok) bad = fmt(" (pattern 0x%04x)", u);
        }
        // Beyond the largest finite value: the midpoint to the next binade's first value rounds to
        // infinity (ties to even), anything below it to the largest finite value.
        const double maxf = dec(static_cast<std::uint16_t>(inf - 1)), over = std::ldexp(1.0, bf ? 128 : 16);
        const double thr = 0.5 * (maxf + over);
        ok = ok && enc(maxf) == inf - 1 && enc(-maxf) == ((inf - 1) | 0x8000) && enc(thr) == inf && enc(std::nextafter(thr, 0.0)) == inf - 1 && enc(1e300) == inf &&
             enc(-1e300) == (inf | 0x8000) && enc(INFINITY) == inf && enc(-INFINITY) == (inf | 0x8000) &&
             enc(NAN) == 0x7fff && std::isnan(dec(0x7fff)) && enc(-0.0) == 0x8000 && enc(1e-300) == 0 &&
             enc(-1e-300) == 0x8000;
        // The tiny end: half the smallest subnormal is a tie to 0; just above it rounds up.
        const double tiny = dec(1);
        ok = ok && enc(0.5 * tiny) == 0 && enc(std::nextafter(0.5 * tiny, 1.0)) == 1 && enc(1.5 * tiny) == 2;
        expect(ok, std::string(name) + " rounds to nearest even: every pattern, midpoint, overflow and underflow" + bad);
    }
}

// ---- host matrices --------------------------------------------------------------------------
// A rows x cols matrix of element type e stored row-major with leading dimension ld; viewed as is
// (columns contiguous) or transposed (rows contiguous). `value` holds the stored values exactly.
struct HostMatrix {
    Elem e = Elem::float64;
    std::int64_t rows = 0, cols = 0, ld = 0;
    std::vector<std::uint64_t> raw;  // 8-byte aligned storage
    std::vector<double> value;       // flat, parallel to the storage
    void* data() { return raw.data(); }
    const void* data() const { return raw.data(); }
    MatrixView view(bool transposed) const {
        MatrixView v;
        v.data = raw.data();
        v.elem = e;
        v.rows = transposed ? cols : rows;
        v.cols = transposed ? rows : cols;
        v.row_stride = transposed ? 1 : ld;
        v.col_stride = transposed ? ld : 1;
        return v;
    }
};

HostMatrix make_matrix(Elem e, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                       const std::function<double(std::int64_t, std::int64_t)>& gen) {
    HostMatrix m;
    m.e = e;
    m.rows = rows;
    m.cols = cols;
    m.ld = ld;
    const std::int64_t n = std::max<std::int64_t>(1, rows * ld);
    m.raw.assign(static_cast<std::size_t>((n * elem_size(e) + 7) / 8), 0);
    m.value.assign(static_cast<std::size_t>(n), 0.0);
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < ld; ++c) {  // the gap columns hold values too (never read)
            const std::int64_t i = r * ld + c;
            store(e, m.data(), i, c < cols ? gen(r, c) : 1e4);
            m.value[static_cast<std::size_t>(i)] = load(e, m.data(), i);
        }
    return m;
}

double view_value(const HostMatrix& m, const MatrixView& v, std::int64_t r, std::int64_t c) {
    return m.value[static_cast<std::size_t>(r * v.row_stride + c * v.col_stride)];
}

// ---- moments --------------------------------------------------------------------------------
struct Moments {
    std::vector<double> mean, m2, sumsq, ss;
    bool finite = false;
    MomentsLayout layout;
    std::vector<std::string> launches;
};

enum Outputs { kAll, kMeanOnly, kM2Only, kNoMean };

// column_moments_cuda's host steps (scratch, zeroed flag, the launches, the flag read back),
// with emulator memory. Scratch is poisoned with NaN: a partial read before it is written shows.
Moments run_moments(const MatrixView& v, const double* shift, int sms, bool reverse, Outputs which = kAll) {
    Moments out;
    const std::size_t p = static_cast<std::size_t>(v.cols);
    const double poison = -std::numeric_limits<double>::quiet_NaN();
    out.mean.assign(p, poison);
    out.m2.assign(p, poison);
    out.sumsq.assign(p, poison);
    out.ss.assign(p, poison);
    if (v.cols == 0) {
        out.finite = true;
        return out;
    }
    out.layout = layout_moments(v, shift != nullptr, sms);
    std::vector<double> scratch_store((out.layout.bytes + 7) / 8);
    std::memset(scratch_store.data(), 0xff, scratch_store.size() * 8);
    char* scratch = reinterpret_cast<char*>(scratch_store.data());
    *moments_flag(out.layout, scratch) = 0;
    EmuLaunch launch{reverse, &out.launches};
    moments_launches(launch, out.layout, v, shift, scratch, which == kAll || which == kMeanOnly ? out.mean.data() : nullptr,
                     which == kAll || which == kM2Only || which == kNoMean ? out.m2.data() : nullptr,
                     which == kAll || which == kNoMean ? out.sumsq.data() : nullptr,
                     which == kAll || which == kNoMean ? out.ss.data() : nullptr);
    out.finite = *moments_flag(out.layout, scratch) == 0;
    return out;
}

// Long-double references of one column of the view around shift s (given), or the computed one.
struct RefColumn {
    long double mean = 0, m2 = 0, sumsq = 0, shift = 0, ss = 0, abs_dev = 0, first_abs = 0, s2 = 0;
};
RefColumn reference(const HostMatrix& m, const MatrixView& v, std::int64_t c, const double* shift) {
    RefColumn R;
    const std::int64_t n = v.rows, nshift = std::min<std::int64_t>(n, 1024);
    long double sum = 0, first = 0;
    for (std::int64_t r = 0; r < n; ++r) {
        const long double x = view_value(m, v, r, c);
        sum += x;
        R.sumsq += x * x;
        if (r < nshift) first += x, R.first_abs += std::fabs(x);
    }
    R.mean = sum / n;
    R.shift = shift ? static_cast<long double>(shift[c]) : first / nshift;
    for (std::int64_t r = 0; r < n; ++r) {
        const long double x = view_value(m, v, r, c);
        R.m2 += (x - R.mean) * (x - R.mean);
        R.ss += x - R.shift;
        R.abs_dev += std::fabs(x - R.shift);
        R.s2 += (x - R.shift) * (x - R.shift);
    }
    R.first_abs /= std::max<std::int64_t>(1, nshift);
    return R;
}

// Tolerance checks against the references (any data).
bool moments_close(const HostMatrix& m, const MatrixView& v, const double* shift, const Moments& got, std::string& why) {
    const long double eps = 1e-11L;  // generous for n ≤ 20000 double sums; the exact cases are exact
    for (std::int64_t c = 0; c < v.cols; ++c) {
        const RefColumn R = reference(m, v, c, shift);
        const long double n = static_cast<long double>(v.rows);
        const long double mean_tol = eps * (R.abs_dev / n + R.first_abs) + 1e-300L;
        // + n·(a few ulps of x)²: what rounding x − shift alone can leave in a constant column.
        const long double m2_tol = eps * (R.s2 + R.m2) + n * std::pow(1e-15L * R.first_abs, 2) + 1e-300L;
        const long double sq_tol = eps * R.sumsq + 1e-300L;
        const long double ss_tol = eps * (R.abs_dev + n * R.first_abs) + 1e-300L;
        const std::size_t j = static_cast<std::size_t>(c);
        const bool ok = std::fabs(got.mean[j] - R.mean) <= mean_tol && got.m2[j] >= 0.0 &&
                        std::fabs(got.m2[j] - R.m2) <= m2_tol && std::fabs(got.sumsq[j] - R.sumsq) <= sq_tol &&
                        std::fabs(got.ss[j] - R.ss) <= ss_tol;
        if (!ok) {
            why = fmt(" (column %" PRId64 ": mean %.17g vs %.17Lg, m2 %.17g vs %.17Lg, sumsq %.17g vs %.17Lg, "
                      "sum_shifted %.17g vs %.17Lg)",
                      c, got.mean[j], R.mean, got.m2[j], R.m2, got.sumsq[j], R.sumsq, got.ss[j], R.ss);
            return false;
        }
    }
    return true;
}

// Bit-exact checks when every sum is exact (small integers, and a shift whose differences are
// exact: an integer shift, or a computed one over a power-of-two number of rows): then
// sum_shifted and sumsq are the exact sums, mean = shift + fl(S1/n), m2 = max(0, S2 - S1·fl(S1/n)).
bool moments_exact(const HostMatrix& m, const MatrixView& v, const double* shift, const Moments& got, std::string& why) {
    const std::int64_t n = v.rows, nshift = std::min<std::int64_t>(n, 1024);
    for (std::int64_t c = 0; c < v.cols; ++c) {
        double first = 0;
        for (std::int64_t r = 0; r < nshift; ++r) first += view_value(m, v, r, c);
        const double s = shift ? shift[c] : first / static_cast<double>(nshift);
        double s1 = 0, s2 = 0, sq = 0;
        for (std::int64_t r = 0; r < n; ++r) {
            const double x = view_value(m, v, r, c), d = x - s;
            s1 += d;
            s2 += d * d;
            sq += x * x;
        }
        const double q = s1 / static_cast<double>(n), d2 = s2 - s1 * q;
        const double mean = s + q, m2 = 0.0 < d2 ? d2 : 0.0;
        const std::size_t j = static_cast<std::size_t>(c);
        if (got.ss[j] != s1 || got.sumsq[j] != sq || got.mean[j] != mean || got.m2[j] != m2) {
            why = fmt(" (column %" PRId64 ": mean %.17g vs %.17g, m2 %.17g vs %.17g, sumsq %.17g vs %.17g, "
                      "sum_shifted %.17g vs %.17g)",
                      c, got.mean[j], mean, got.m2[j], m2, got.sumsq[j], sq, got.ss[j], s1);
            return false;
        }
    }
    return true;
}

struct Coverage {
    bool rows_shape = false, cols_shape = false, warp_rows = false, warp_cols = false, one_chunk = false;
    bool shift_chunks = false, reduce_stride = false;
};
Coverage cover;

std::string plan_text(const Moments& r) {
    const MomentsLayout& L = r.layout;
    std::string s = fmt("%s, %" PRId64 " chunk%s", L.main.rows_contiguous ? "rows-contiguous" : "columns-contiguous",
                        L.main.chunks, L.main.chunks == 1 ? "" : "s");
    if (L.main.chunks >= kWarpReduceChunks) s += ", warp reduce";
    if (L.computed_shift) s += fmt(", shift pass %" PRId64 " chunk%s", L.shift.chunks, L.shift.chunks == 1 ? "" : "s");
    return s;
}
void note_coverage(const Moments& r, const MatrixView& v) {
    const MomentsLayout& L = r.layout;
    (L.main.rows_contiguous ? cover.rows_shape : cover.cols_shape) = true;
    if (L.main.chunks >= kWarpReduceChunks) (L.main.rows_contiguous ? cover.warp_rows : cover.warp_cols) = true;
    if (L.main.chunks == 1) cover.one_chunk = true;
    if (L.computed_shift && L.shift.chunks > 1) cover.shift_chunks = true;
    const std::int64_t threads = v.cols * (L.main.chunks >= kWarpReduceChunks ? 32 : 1);
    if (ceil_div(threads, kBlockThreads) > static_cast<std::int64_t>(std::max(1, L.multiprocessors)) * 32)
        cover.reduce_stride = true;
}

// Data: "ints" are small integers (exact in every type, so every sum is exact); "real" has a
// per-column offset (the shift matters), a drift over the rows (the mean of the first 1024 rows
// is not the mean), and column 0 constant 0.1 (m2 must clamp at 0, not go negative).
double gen_ints(std::int64_t r, std::int64_t c) {
    return static_cast<double>(static_cast<int>((r * 7 + c * 13 + (r * c) % 5) % 17) - 8 + static_cast<int>(c % 3));
}
double gen_real(std::int64_t r, std::int64_t c) {
    if (c == 0) return 0.1;
    return 20.0 + 3.0 * static_cast<double>(c % 11) + std::sin(0.37 * static_cast<double>(r) + static_cast<double>(c)) +
           1e-3 * static_cast<double>(r % 4096);
}

void moments_case(Elem e, std::int64_t rows, std::int64_t cols, bool transposed, bool ints, bool given_shift,
                  int sms, bool also_reverse, std::int64_t ld_pad = 0) {
    // Stored so that the view has `rows` x `cols`: transposed views store the transpose.
    const std::int64_t sr = transposed ? cols : rows, sc = transposed ? rows : cols;
    auto gen = [&](std::int64_t r, std::int64_t c) {
        const std::int64_t vr = transposed ? c : r, vc = transposed ? r : c;
        return ints ? gen_ints(vr, vc) : gen_real(vr, vc);
    };
    const HostMatrix m = make_matrix(e, sr, sc, sc + ld_pad, gen);
    const MatrixView v = m.view(transposed);
    std::vector<double> shift(static_cast<std::size_t>(cols));
    for (std::int64_t c = 0; c < cols; ++c)  // integers for the exact data, near the column level otherwise
        shift[static_cast<std::size_t>(c)] = ints ? static_cast<double>(c % 5 - 2) : 20.0 + 3.0 * static_cast<double>(c % 11) + 0.25;
    const double* sh = given_shift ? shift.data() : nullptr;
    const Moments got = run_moments(v, sh, sms, false);
    note_coverage(got, v);
    const std::int64_t nshift = std::min<std::int64_t>(rows, 1024);
    const bool exact = ints && (given_shift || (nshift & (nshift - 1)) == 0);
    std::string why;
    bool ok = got.finite && moments_close(m, v, sh, got, why);
    if (ok && exact) ok = moments_exact(m, v, sh, got, why);
    const std::string what = fmt("moments %s %" PRId64 "x%" PRId64 "%s%s, %s data, %s shift, %d SMs [%s]%s", elem_name(e),
                                 rows, cols, transposed ? " (transposed view)" : "", ld_pad ? " (padded ld)" : "",
                                 ints ? "integer" : "real", given_shift ? "given" : "computed", sms,
                                 plan_text(got).c_str(), exact ? " bit-exact" : "");
    expect(ok, what + why);
    if (also_reverse) {
        const Moments back = run_moments(v, sh, sms, true);
        expect(back.finite && same_bits(back.mean, got.mean) && same_bits(back.m2, got.m2) &&
                   same_bits(back.sumsq, got.sumsq) && same_bits(back.ss, got.ss),
               "  reversed schedule, bit-identical: " + what);
    }
}

void check_moments() {
    // Chunk counts: with sms = 1 a few chunks at most; with 132 SMs many (tall inputs reach the
    // warp reduce, >= 64 chunks); 7 SMs gives uneven chunkings.
    for (Elem e : kElems) {
        for (bool tr : {false, true}) {
            moments_case(e, 700, 37, tr, true, true, 4, e == Elem::float32);   // < 1024 rows, exact
            moments_case(e, 700, 37, tr, false, false, 4, false);              // < 1024 rows, computed shift
            moments_case(e, 3000, 45, tr, true, false, 7, e == Elem::float16);  // > 1024 rows, shift over 1024 rows: exact
            moments_case(e, 3000, 45, tr, false, false, 132, e == Elem::float64);
            moments_case(e, 3000, 45, tr, false, true, 1, false);
        }
        moments_case(e, 17000, 40, false, true, true, 132, e == Elem::bfloat16);  // columns-contiguous warp reduce
        moments_case(e, 20000, 3, true, false, false, 132, e == Elem::float32);   // rows-contiguous warp reduce
    }
    // Odd shapes, strides and SM counts.
    moments_case(Elem::float64, 1, 5, false, false, false, 132, true);
    moments_case(Elem::float64, 1, 1, false, true, true, 132, false);
    moments_case(Elem::float32, 2000, 1, false, false, false, 132, true, 4);  // single column, row stride 5
    moments_case(Elem::float32, 2000, 1, true, true, false, 132, false);   // single column of a transposed view
    moments_case(Elem::float32, 2048, 2, false, true, false, 64, false);   // 2 columns, exact computed shift
    moments_case(Elem::float32, 1500, 33, false, false, false, 16, false, 5);  // padded leading dimension
    moments_case(Elem::float16, 1500, 33, true, true, true, 16, true, 3);
    moments_case(Elem::float64, 3, 8200, false, true, true, 1, true);  // reduce grid-stride (G = 1), cols contiguous
    moments_case(Elem::float64, 3, 8200, true, false, false, 1, false);  // the same, rows contiguous
    moments_case(Elem::float64, 300000, 1, true, true, true, 132, false);  // a long column: 1171 chunks

    expect(cover.rows_shape && cover.cols_shape && cover.warp_rows && cover.warp_cols && cover.one_chunk &&
               cover.shift_chunks && cover.reduce_stride,
           "moments coverage: both shapes, 1 chunk, warp reduce in both shapes, multi-chunk shift pass, reduce grid-stride");

    // The launch sequence: the shift pass (partials over the first 1024 rows, reduce to the shift)
    // only without a given shift, then the moments pass; block shapes per partial-kernel shape.
    {
        const HostMatrix m = make_matrix(Elem::float32, 3000, 70, 70, gen_real);
        std::vector<double> shift(70, 1.0);
        const Moments rc = run_moments(m.view(false), nullptr, 132, false), rg = run_moments(m.view(false), shift.data(), 132, false);
        const Moments tc = run_moments(m.view(true), nullptr, 132, false);
        // 3000 x 70: 3 column groups x (4 chunks over 1024 rows | 11 chunks over 3000 rows);
        // transposed, 70 x 3000: one chunk, 3000 warps in blocks of 8; the reduce one thread per column.
        const std::vector<std::string> want_rc = {"moments_partial_cols<<<12, (32,8)>>>", "moments_reduce<<<1, (256,1)>>>",
                                                  "moments_partial_cols<<<33, (32,8)>>>", "moments_reduce<<<1, (256,1)>>>"};
        const std::vector<std::string> want_tc = {"moments_partial_rows<<<375, (256,1)>>>", "moments_reduce<<<12, (256,1)>>>",
                                                  "moments_partial_rows<<<375, (256,1)>>>", "moments_reduce<<<12, (256,1)>>>"};
        std::string got;
        for (const Moments* r : {&rc, &tc})
            for (const std::string& l : r->launches) got += " " + l;
        expect(rc.launches == want_rc && rg.launches == std::vector<std::string>(want_rc.begin() + 2, want_rc.end()) &&
                   tc.launches == want_tc,
               "moments launch sequence: shift pass only without a given shift; both shapes' grids and blocks (" + got + " )");
    }

    // Null outputs and mean aliasing shift (the reduce reads shift[c] before writing mean[c]).
    {
        const HostMatrix m = make_matrix(Elem::float32, 1300, 50, 50, gen_real);
        for (bool tr : {false, true}) {
            const MatrixView v = m.view(tr);
            const Moments all = run_moments(v, nullptr, 8, false);
            const Moments mean_only = run_moments(v, nullptr, 8, false, kMeanOnly);
            const Moments m2_only = run_moments(v, nullptr, 8, false, kM2Only);
            const Moments no_mean = run_moments(v, nullptr, 8, false, kNoMean);
            bool ok = same_bits(mean_only.mean, all.mean) && same_bits(m2_only.m2, all.m2) &&
                      same_bits(no_mean.m2, all.m2) && same_bits(no_mean.sumsq, all.sumsq) &&
                      same_bits(no_mean.ss, all.ss) && mean_only.finite && m2_only.finite && no_mean.finite;
            for (std::size_t j = 0; j < mean_only.m2.size() && ok; ++j)  // untouched where null
                ok = std::isnan(mean_only.m2[j]) && std::isnan(mean_only.sumsq[j]) && std::isnan(m2_only.mean[j]) &&
                     std::isnan(no_mean.mean[j]);
            expect(ok, std::string("moments with null outputs: the others bit-identical, nothing written for nulls") +
                           (tr ? " (transposed view)" : ""));
            // mean == shift: pass the computed means as the shift, in place.
            std::vector<double> shift = all.mean, inplace = all.mean;
            const Moments ref = run_moments(v, shift.data(), 8, false);
            MomentsLayout L = layout_moments(v, true, 8);
            std::vector<double> scratch_store((L.bytes + 7) / 8);
            std::memset(scratch_store.data(), 0xff, scratch_store.size() * 8);
            char* scratch = reinterpret_cast<char*>(scratch_store.data());
            *moments_flag(L, scratch) = 0;
            EmuLaunch launch{false, nullptr};
            moments_launches(launch, L, v, inplace.data(), scratch, inplace.data(), nullptr, nullptr, nullptr);
            expect(same_bits(inplace, ref.mean) && *moments_flag(L, scratch) == 0,
                   std::string("moments with mean aliasing shift (in place)") + (tr ? " (transposed view)" : ""));
        }
    }

    // Zero rows: no crash, zero sums, "finite" (as the CPU: mean 0/0 = NaN, m2 clamps to 0).
    {
        const HostMatrix m = make_matrix(Elem::float64, 0, 6, 6, gen_real);
        for (bool tr : {false, true}) {
            MatrixView v = m.view(false);
            if (tr) std::swap(v.row_stride, v.col_stride);  // rows = 0 still, rows the contiguous direction
            const Moments r = run_moments(v, nullptr, 4, false);
            bool ok = r.finite;
            for (std::size_t j = 0; j < 6 && ok; ++j) ok = std::isnan(r.mean[j]) && r.m2[j] == 0.0 && r.sumsq[j] == 0.0 && r.ss[j] == 0.0;
            expect(ok, std::string("moments with 0 rows: zero sums, mean NaN, m2 0, finite (as the CPU)") + (tr ? " (rows-contiguous)" : ""));
        }
    }

    // Non-finite data: NaN/Inf before and after row 1024 (shift pass / main pass only), +Inf and
    // -Inf in one column, x² overflowing; the flag reports it, the clean columns are unaffected.
    struct Bad {
        const char* name;
        std::int64_t row;
        double value, value2;
        std::int64_t row2;
    };
    const Bad bads[] = {{"NaN in row 5", 5, NAN, 0, -1},        {"NaN in row 2500", 2500, NAN, 0, -1},
                        {"+Inf in row 0", 0, INFINITY, 0, -1},  {"-Inf in row 2999", 2999, -INFINITY, 0, -1},
                        {"+Inf and -Inf", 100, INFINITY, -INFINITY, 2000}, {"1e200 (x² overflows)", 1700, 1e200, 0, -1}};
    for (Elem e : kElems) {
        for (const Bad& b : bads) {
            if (e != Elem::float64 && b.value == 1e200) continue;  // not representable below float64
            for (bool tr : {false, true}) {
                for (bool given : {false, true}) {
                    const std::int64_t rows = 3000, cols = 40, badcol = 17;
                    auto gen = [&](std::int64_t r, std::int64_t c) {
                        const std::int64_t vr = tr ? c : r, vc = tr ? r : c;
                        if (vc == badcol && vr == b.row) return b.value;
                        if (vc == badcol && vr == b.row2) return b.value2;
                        return gen_ints(vr, vc);
                    };
                    const HostMatrix m = tr ? make_matrix(e, cols, rows, rows, gen) : make_matrix(e, rows, cols, cols, gen);
                    const MatrixView v = m.view(tr);
                    std::vector<double> shift(static_cast<std::size_t>(cols), 1.0);
                    const double* sh = given ? shift.data() : nullptr;
                    const Moments r = run_moments(v, sh, 132, false);
                    // The other columns: exact as before (integer data; computed shift over 1024 rows).
                    std::string why;
                    bool others = true;
                    {
                        Moments clean = r;
                        const HostMatrix mc = tr ? make_matrix(e, cols, rows, rows, [&](std::int64_t rr, std::int64_t cc) { return gen_ints(cc, rr); })
                                                 : make_matrix(e, rows, cols, cols, gen_ints);
                        clean.mean[badcol] = clean.m2[badcol] = clean.sumsq[badcol] = clean.ss[badcol] = 0;
                        Moments want = run_moments(mc.view(tr), sh, 132, false);
                        want.mean[badcol] = want.m2[badcol] = want.sumsq[badcol] = want.ss[badcol] = 0;
                        others = same_bits(clean.mean, want.mean) && same_bits(clean.m2, want.m2) &&
                                 same_bits(clean.sumsq, want.sumsq) && same_bits(clean.ss, want.ss);
                    }
                    const bool flagged = !r.finite && !std::isfinite(r.sumsq[badcol] + r.ss[badcol]);
                    expect(flagged && others, fmt("moments %s %s%s, %s shift: not finite; other columns unchanged", elem_name(e),
                                                  b.name, tr ? " (transposed view)" : "", given ? "given" : "computed"));
                }
            }
        }
    }
}

// ---- standardize ----------------------------------------------------------------------------
struct StdCase {
    Elem in, out;
    std::int64_t rows, cols, out_rows, out_cols, ld_out;
    bool transposed;  // the view's rows contiguous: the shared-memory path (when rows, cols > 1)
    bool rsh, csh, rsc;
    std::int64_t max_blocks = INT_MAX;
};

// Returns the output bytes (out_rows x ld_out elements); the gap beyond out_cols starts as 0xAB.
std::vector<unsigned char> run_standardize(const StdCase& t, const HostMatrix& m, const std::vector<double>& row_shift,
                                           const std::vector<double>& col_shift, const std::vector<double>& row_scale,
                                           bool reverse) {
    const std::int64_t es = elem_size(t.out);
    std::vector<unsigned char> out(static_cast<std::size_t>(std::max<std::int64_t>(1, t.out_rows * t.ld_out) * es + 8), 0xAB);
    EmuLaunch launch{reverse, nullptr};
    standardize_launches(launch, m.view(t.transposed), t.rsh ? row_shift.data() : nullptr, t.csh ? col_shift.data() : nullptr,
                         t.rsc ? row_scale.data() : nullptr, out.data(), t.out, t.out_rows, t.out_cols, t.ld_out, t.max_blocks);
    return out;
}

void standardize_case(const StdCase& t, bool also_reverse) {
    const std::int64_t sr = t.transposed ? t.cols : t.rows, sc = t.transposed ? t.rows : t.cols;
    auto gen = [&](std::int64_t r, std::int64_t c) {
        const std::int64_t vr = t.transposed ? c : r, vc = t.transposed ? r : c;
        return 3.0 + std::sin(0.7 * static_cast<double>(vr) + 1.3 * static_cast<double>(vc)) * 2.5 + 0.01 * static_cast<double>(vc);
    };
    const HostMatrix m = make_matrix(t.in, sr, sc, sc + 3, gen);
    const MatrixView v = m.view(t.transposed);
    std::vector<double> row_shift(static_cast<std::size_t>(t.rows)), col_shift(static_cast<std::size_t>(t.cols)),
        row_scale(static_cast<std::size_t>(t.rows));
    for (std::int64_t r = 0; r < t.rows; ++r) {
        row_shift[static_cast<std::size_t>(r)] = 0.5 + 0.013 * static_cast<double>(r);
        row_scale[static_cast<std::size_t>(r)] = 1.0 / (1.0 + 0.07 * static_cast<double>(r % 13));
    }
    for (std::int64_t c = 0; c < t.cols; ++c) col_shift[static_cast<std::size_t>(c)] = 2.0 + 0.031 * static_cast<double>(c);
    const std::vector<unsigned char> out = run_standardize(t, m, row_shift, col_shift, row_scale, false);
    // Reference: the contract's formula in the same operation order, rounded once.
    std::vector<unsigned char> want(out.size(), 0xAB);
    for (std::int64_t r = 0; r < t.out_rows; ++r)
        for (std::int64_t c = 0; c < t.out_cols; ++c) {
            double val = 0.0;
            if (r < t.rows && c < t.cols) {
                val = view_value(m, v, r, c);
                if (t.rsh) val -= row_shift[static_cast<std::size_t>(r)];
                if (t.csh) val -= col_shift[static_cast<std::size_t>(c)];
                if (t.rsc) val *= row_scale[static_cast<std::size_t>(r)];
            }
            store(t.out, want.data(), r * t.ld_out + c, val);
        }
    std::string why;
    bool ok = true;
    for (std::int64_t r = 0; r < t.out_rows && ok; ++r)
        for (std::int64_t c = 0; c < t.ld_out && ok; ++c) {
            const std::int64_t i = r * t.ld_out + c;
            const std::uint64_t g = raw_bits(t.out, out.data(), i), w = raw_bits(t.out, want.data(), i);
            const bool padding = r >= t.rows || c >= t.cols;
            if (g != w || (padding && c < t.out_cols && g != 0)) {
                ok = false;
                why = fmt(" (at %" PRId64 ", %" PRId64 ": bits 0x%" PRIx64 ", want 0x%" PRIx64 ")", r, c, g, w);
            }
        }
    const bool shm = t.transposed && t.rows > 1 && t.cols > 1;
    const std::string what = fmt("standardize %s -> %s %" PRId64 "x%" PRId64 " into %" PRId64 "x%" PRId64 " (ld %" PRId64
                                 ")%s, %s, row_shift %s, col_shift %s, row_scale %s%s",
                                 elem_name(t.in), elem_name(t.out), t.rows, t.cols, t.out_rows, t.out_cols, t.ld_out,
                                 t.transposed ? " transposed view" : "", shm ? "shared-memory transpose" : "direct",
                                 t.rsh ? "yes" : "null", t.csh ? "yes" : "null", t.rsc ? "yes" : "null",
                                 t.max_blocks < INT_MAX ? fmt(", %" PRId64 " block(s), grid-stride", t.max_blocks).c_str() : "");
    expect(ok, what + why);
    if (also_reverse)
        expect(run_standardize(t, m, row_shift, col_shift, row_scale, true) == out, "  reversed schedule, bit-identical: " + what);
}

void check_standardize() {
    // Every input x output type, both paths, every combination of the three optional vectors.
    for (Elem in : kElems)
        for (Elem out : kElems)
            for (bool tr : {false, true})
                for (int mask = 0; mask < 8; ++mask) {
                    StdCase t{in, out, 45, 70, 45 + 13, 70 + 7, 70 + 7 + 5, tr, (mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
                    standardize_case(t, mask == 7 && in == out);
                }
    // Shapes: exact multiples of the tile, no padding, ld = out_cols, single rows/columns (no
    // transpose), padding-only tiles, and fewer blocks than tiles (grid-stride; the transposed
    // path reuses its shared tile, with padding tiles in between that skip the barriers).
    const StdCase shapes[] = {
        {Elem::float32, Elem::float32, 64, 32, 64, 32, 32, true, true, true, true},
        {Elem::float64, Elem::float64, 64, 32, 64, 32, 32, false, true, true, true},
        {Elem::float16, Elem::float32, 1, 50, 7, 64, 64, true, true, true, true},
        {Elem::bfloat16, Elem::float64, 50, 1, 50, 40, 41, true, true, true, true},
        {Elem::float32, Elem::bfloat16, 33, 31, 100, 97, 97, true, true, false, true},
        {Elem::float64, Elem::float16, 33, 31, 100, 97, 97, false, false, true, false},
        {Elem::float32, Elem::float32, 70, 90, 130, 100, 101, true, true, true, true, 1},
        {Elem::float32, Elem::float32, 70, 90, 130, 100, 101, true, true, true, true, 5},
        {Elem::float16, Elem::bfloat16, 70, 90, 130, 100, 101, false, true, true, true, 3},
        {Elem::float64, Elem::float32, 0, 0, 40, 40, 40, true, false, false, false},
    };
    for (const StdCase& t : shapes) standardize_case(t, true);
}

}  // namespace

int main() {
#if defined(__GLIBC__)
    // Every block allocates its fibers' stacks and frees them at the end; keep glibc from handing
    // the heap back to the kernel each time (the page faults of regrowing it cost ~5x the run).
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
#endif
    const auto t0 = std::chrono::steady_clock::now();
    check_conversions();
    check_moments();
    check_standardize();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("(%.1f s)\n", secs);
    std::printf("ALL OK\n");  // expect() exits at the first failure
    return 0;
}
