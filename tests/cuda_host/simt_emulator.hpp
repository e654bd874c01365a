// A small emulator of the CUDA execution model, for running the project's device code on a CPU
// (no GPU is needed). Used only by the host tests in tests/cuda_host/.
//
// Every CUDA thread of a block is a fiber on one OS thread; a scheduler runs them
// round-robin, forwards or backwards, switching at every barrier and warp collective. So:
//   - __syncthreads / __syncwarp are real barriers; a barrier that some threads never reach is
//     reported as a deadlock (the divergent-barrier bug);
//   - shuffles, ballots and mma.sync exchange values between the lanes of a warp;
//   - cp.async copies are deferred to the issuing thread's cp.async.wait_group, so a read of a
//     stage before its wait sees stale data, as it could on a GPU;
//   - running the same launch with both scheduling orders and comparing the outputs bit for bit
//     exposes reads of shared memory that no barrier orders.
// mma.sync's fragment layouts are taken from the PTX ISA's tables (written here independently of
// the kernels' own coordinate maps); products are summed in double and rounded to float.
// What it cannot show: timing, real memory-model effects between blocks, hardware rounding of the
// tensor cores, and anything the real compiler does differently.
#pragma once
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x = 0, y = 0, z = 0;
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) double2 {
    double x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline float __uint_as_float(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline std::uint32_t __float_as_uint(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
[[noreturn]] inline void __trap() {
    std::fprintf(stderr, "__trap() reached\n");
    std::abort();
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    const unsigned long long old = *p;  // one OS thread: fibers switch only at collectives
    *p = old + v;
    return old;
}

namespace cgemu {

// ---- fibers. On x86-64 a six-register stack switch (a top-k test does tens of millions of
// switches; swapcontext's signal-mask system call would make that minutes); ucontext elsewhere.
#if defined(__x86_64__)
extern "C" void cgemu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl cgemu_switch
    .type cgemu_switch, @function
cgemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cgemu_switch, .-cgemu_switch
)");
struct Context {
    void* sp = nullptr;
};
inline void switch_to(Context& from, Context& to) { cgemu_switch(&from.sp, to.sp); }
inline void start_context(Context& c, char* stack, std::size_t bytes, void (*entry)()) {
    auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;                         // entry's (unused) return address: rsp = 8 mod 16 at entry
    *--sp = reinterpret_cast<void*>(entry);  // where the first switch "returns" to
    for (int i = 0; i < 6; ++i) *--sp = nullptr;
    c.sp = sp;
}
#else
struct Context {
    ucontext_t uc;
};
inline void switch_to(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
inline void start_context(Context& c, char* stack, std::size_t bytes, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
#endif

constexpr int kSlotWords = 12;  // per lane per collective: mma needs a[4] + b[2] + c[4]

struct Copy {
    void* dst;
    const void* src;
};

struct Block;
inline Block* g_block = nullptr;
inline uint3 g_thread, g_block_idx;
inline dim3 g_grid, g_block_dim;

struct Block {
    enum class State { runnable, waiting, done };
    unsigned threads = 0;
    std::vector<Context> ctx;
    std::vector<std::unique_ptr<char[]>> stacks;
    std::vector<State> state;
    std::vector<int> wait_kind;  // 0 none, 1 warp, 2 block
    std::vector<unsigned> collective;  // per thread: collectives done (selects the slot buffer)
    std::vector<std::uint32_t> slots;  // [warp][2][lane][kSlotWords]
    std::vector<int> warp_arrived;
    int block_arrived = 0;
    std::vector<std::vector<std::vector<Copy>>> groups;  // per thread: committed cp.async groups
    std::vector<std::vector<Copy>> open_group;          // per thread: copies since the last commit
    std::unique_ptr<char[]> smem_raw;
    char* smem = nullptr;
    struct Static {
        const void* key;
        std::unique_ptr<char[]> raw;
        char* data;
    };
    std::vector<Static> statics;  // the block's static __shared__ arrays (block_shared below)
    std::function<void()> body;
    Context main;
    unsigned current = 0;

    std::uint32_t* slot(unsigned warp, unsigned gen, unsigned lane) {
        return &slots[((warp * 2 + gen) * 32 + lane) * kSlotWords];
    }
};

// The linear thread index (x fastest), which also defines the warps: threadIdx.x of 1-D blocks.
inline unsigned g_linear_tid = 0;
inline unsigned tid() { return g_linear_tid; }

inline void yield() { switch_to(g_block->ctx[tid()], g_block->main); }

// A fiber's whole life: the kernel body, then back to the scheduler for good.
inline void fiber_entry() {
    g_block->body();
    g_block->state[tid()] = Block::State::done;
    yield();
    std::abort();  // a finished fiber is never resumed
}

// Wait until every (non-finished) thread of the warp (kind 1) or block (kind 2) has arrived.
inline void barrier(int kind) {
    Block& b = *g_block;
    const unsigned t = tid();
    const unsigned first = kind == 1 ? (t & ~31u) : 0, count = kind == 1 ? 32 : b.threads;
    int& arrived = kind == 1 ? b.warp_arrived[t >> 5] : b.block_arrived;
    ++arrived;
    if (arrived == static_cast<int>(count)) {
        arrived = 0;
        for (unsigned u = first; u < first + count; ++u)
            if (b.wait_kind[u] == kind) b.wait_kind[u] = 0, b.state[u] = Block::State::runnable;
        yield();  // let the others run first: exposes order dependence
        return;
    }
    b.wait_kind[t] = kind;
    b.state[t] = Block::State::waiting;
    yield();
}

inline void* dynamic_shared() { return g_block->smem; }

// One warp collective: deposit `words` words, wait for the warp, read from other lanes.
inline std::uint32_t* deposit(const std::uint32_t* words, int n) {
    Block& b = *g_block;
    const unsigned t = tid(), gen = b.collective[t]++ & 1u;
    std::memcpy(b.slot(t >> 5, gen, t & 31), words, 4 * n);
    barrier(1);
    return b.slot(t >> 5, gen, 0);  // lane l's words at [l * kSlotWords]
}

template <class T>
T shfl(T v, int src) {
    std::uint32_t w[2] = {0, 0};
    std::memcpy(w, &v, sizeof(T));
    const std::uint32_t* all = deposit(w, 2);
    T r;
    std::memcpy(&r, all + (src & 31) * kSlotWords, sizeof(T));
    return r;
}

inline unsigned ballot(bool pred) {
    const std::uint32_t w = pred ? 1u : 0u;
    const std::uint32_t* all = deposit(&w, 1);
    unsigned m = 0;
    for (int l = 0; l < 32; ++l) m |= (all[l * kSlotWords] & 1u) << l;
    return m;
}

// ---- cp.async: deferred to the issuing thread's wait_group
inline void cp_async16(void* dst, const void* src) { g_block->open_group[tid()].push_back({dst, src}); }
inline void cp_async_commit() {
    Block& b = *g_block;
    b.groups[tid()].push_back(std::move(b.open_group[tid()]));
    b.open_group[tid()].clear();
}
inline void cp_async_wait(int pending) {
    auto& g = g_block->groups[tid()];
    while (static_cast<int>(g.size()) > pending) {
        for (const Copy& c : g.front()) std::memcpy(c.dst, c.src, 16);
        g.erase(g.begin());
    }
}

// ---- numerics of the tensor-core instructions
inline std::uint32_t to_tf32(float x) {  // cvt.rna.tf32.f32: nearest, ties away from zero
    std::uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return u;
}
inline float tf32_value(std::uint32_t u) { return __uint_as_float(u & 0xffffe000u); }
inline float bf16_value(std::uint32_t word, int half) { return __uint_as_float((half ? word >> 16 : word & 0xffffu) << 16); }

// mma.sync m16n8k8 (tf32) and m16n8k16 (bf16), row.col, f32 accumulate. Layouts from the PTX ISA
// ("Matrix fragments for mma.m16n8k8 / m16n8k16 with floating point type"), with
// groupID = lane >> 2 and threadID_in_group = lane % 4:
//   A (row-major, M x K): tf32 a_i: row = groupID + 8·(i % 2), col = tig + 4·(i / 2);
//                          bf16 a_i holds cols 2·tig + {0,1} + 8·(i / 2), row = groupID + 8·(i % 2).
//   B (col-major, K x N): tf32 b_i: row = tig + 4·i, col = groupID; bf16 b_i: rows 2·tig + {0,1} + 8·i.
//   C/D (M x N): c_i: row = groupID + 8·(i / 2), col = 2·tig + (i % 2).
template <bool BF16>
void mma(float& d0, float& d1, float& d2, float& d3, const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
    std::uint32_t mine[10] = {a[0], a[1], a[2], a[3], b[0], b[1], __float_as_uint(d0), __float_as_uint(d1),
                              __float_as_uint(d2), __float_as_uint(d3)};
    const std::uint32_t* all = deposit(mine, 10);
    auto lane_of = [&](int l) { return all + l * kSlotWords; };
    constexpr int K = BF16 ? 16 : 8;
    auto A = [&](int row, int col) -> double {
        if (BF16) {
            const int word = col / 2, half = col % 2;
            const int lane = (row % 8) * 4 + word % 4, reg = (row / 8) + 2 * (word / 4);
            return bf16_value(lane_of(lane)[reg], half);
        }
        const int lane = (row % 8) * 4 + col % 4, reg = (row / 8) + 2 * (col / 4);
        return tf32_value(lane_of(lane)[reg]);
    };
    auto B = [&](int k, int n) -> double {
        if (BF16) {
            const int word = k / 2, half = k % 2;
            const int lane = n * 4 + word % 4, reg = word / 4;
            return bf16_value(lane_of(lane)[4 + reg], half);
        }
        const int lane = n * 4 + k % 4, reg = k / 4;
        return tf32_value(lane_of(lane)[4 + reg]);
    };
    const int l = static_cast<int>(tid() & 31), g = l >> 2, t = l & 3;
    float* d[4] = {&d0, &d1, &d2, &d3};
    for (int i = 0; i < 4; ++i) {
        const int row = g + 8 * (i / 2), col = 2 * t + (i % 2);
        double s = __uint_as_float(mine[6 + i]);
        for (int k = 0; k < K; ++k) s += A(row, k) * B(k, col);
        *d[i] = static_cast<float>(s);
    }
}

// Run `body` for every thread of every block of `grid` (blocks one after another); `block` may be
// 2-D or 3-D (threadIdx then has y/z; warps are formed along the linear index, as on a GPU).
inline void launch(dim3 grid, dim3 block, std::size_t smem_bytes, const std::function<void()>& body,
                   bool reverse = false, std::size_t stack_bytes = 256 * 1024) {
    const unsigned threads = block.x * block.y * block.z;
    const bool flat = block.y == 1 && block.z == 1;
    g_grid = grid;
    g_block_dim = block;
    g_thread = uint3{};
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                Block b;
                b.threads = threads;
                b.ctx.resize(threads);
                b.stacks.resize(threads);
                b.state.assign(threads, Block::State::runnable);
                b.wait_kind.assign(threads, 0);
                b.collective.assign(threads, 0);
                b.slots.assign((threads + 31) / 32 * 2 * 32 * kSlotWords, 0);
                b.warp_arrived.assign((threads + 31) / 32, 0);
                b.groups.assign(threads, {});
                b.open_group.assign(threads, {});
                b.smem_raw.reset(new char[smem_bytes + 64]);
                b.smem = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(b.smem_raw.get()) + 63) & ~std::uintptr_t(63));
                std::memset(b.smem, 0xCD, smem_bytes);  // poison: nothing may rely on zeroed shared memory
                b.body = body;
                g_block = &b;
                g_block_idx.x = bx, g_block_idx.y = by, g_block_idx.z = bz;
                for (unsigned t = 0; t < threads; ++t) {
                    b.stacks[t].reset(new char[stack_bytes]);
                    start_context(b.ctx[t], b.stacks[t].get(), stack_bytes, &fiber_entry);
                }
                for (;;) {
                    bool ran = false, pending = false;
                    for (unsigned i = 0; i < threads; ++i) {
                        const unsigned t = reverse ? threads - 1 - i : i;
                        if (b.state[t] == Block::State::done) continue;
                        pending = true;
                        if (b.state[t] != Block::State::runnable) continue;
                        g_linear_tid = t;
                        if (flat) {
                            g_thread.x = t;
                        } else {
                            g_thread.x = t % block.x;
                            g_thread.y = t / block.x % block.y;
                            g_thread.z = t / (block.x * block.y);
                        }
                        switch_to(b.main, b.ctx[t]);
                        ran = true;
                    }
                    if (!pending) break;
                    if (!ran) {
                        std::fprintf(stderr, "deadlock: block (%u, %u) has threads waiting at a barrier that others never reach\n", bx, by);
                        std::abort();
                    }
                }
                g_block = nullptr;
            }
}

// 1-D blocks of `threads` threads.
inline void launch(dim3 grid, unsigned threads, std::size_t smem_bytes, const std::function<void()>& body,
                   bool reverse = false, std::size_t stack_bytes = 256 * 1024) {
    launch(grid, dim3(threads), smem_bytes, body, reverse, stack_bytes);
}

// A static __shared__ array of type A (e.g. double[3][8][32]): one copy per block, shared by all of
// its threads, poisoned like the dynamic shared memory; `key` tells the declarations apart (the
// address of a static object at the declaration; see CG_STATIC_SHARED in the kernels' headers).
template <class A>
A& block_shared(const void* key) {
    Block& b = *g_block;
    for (const Block::Static& s : b.statics)
        if (s.key == key) return *reinterpret_cast<A*>(s.data);
    Block::Static s{key, std::unique_ptr<char[]>(new char[sizeof(A) + 64]), nullptr};
    s.data = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(s.raw.get()) + 63) & ~std::uintptr_t(63));
    std::memset(s.data, 0xCD, sizeof(A));
    b.statics.push_back(std::move(s));
    return *reinterpret_cast<A*>(b.statics.back().data);
}

}  // namespace cgemu

#define threadIdx (::cgemu::g_thread)
#define blockIdx (::cgemu::g_block_idx)
#define gridDim (::cgemu::g_grid)
#define blockDim (::cgemu::g_block_dim)
inline void __syncthreads() { ::cgemu::barrier(2); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::cgemu::barrier(1); }
template <class T>
T __shfl_sync(unsigned, T v, int src) {
    return ::cgemu::shfl(v, src);
}
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned d) {
    const int lane = static_cast<int>(::cgemu::tid() & 31);
    return ::cgemu::shfl(v, lane >= static_cast<int>(d) ? lane - static_cast<int>(d) : lane);
}
inline unsigned __ballot_sync(unsigned, bool pred) { return ::cgemu::ballot(pred); }

// ---- further intrinsics (the column-statistics kernels) ---------------------------------------
template <class T>
T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    return ::cgemu::shfl(v, static_cast<int>(::cgemu::tid() & 31) ^ lane_mask);
}
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned d) {
    const int lane = static_cast<int>(::cgemu::tid() & 31), src = lane + static_cast<int>(d);
    return ::cgemu::shfl(v, src < 32 ? src : lane);
}
// CUDA's device min/max overloads (global namespace); g++ already knows __restrict__.
#define CGEMU_MINMAX(T)                                \
    inline T min(T a, T b) { return b < a ? b : a; }   \
    inline T max(T a, T b) { return a < b ? b : a; }
CGEMU_MINMAX(int)
CGEMU_MINMAX(unsigned)
CGEMU_MINMAX(long)
CGEMU_MINMAX(unsigned long)
CGEMU_MINMAX(long long)
CGEMU_MINMAX(unsigned long long)
#undef CGEMU_MINMAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
using std::isfinite;
using std::isinf;
using std::isnan;

// ---- 16-bit floating-point storage (cuda_fp16.h, cuda_bf16.h): the types hold the bits, the
// conversions round to nearest even as cvt.rn does (one rounding from double; NaN gives the
// canonical 0x7fff); no arithmetic on the types themselves.
struct __half {
    std::uint16_t bits;
};
struct __nv_bfloat16 {
    std::uint16_t bits;
};

namespace cgemu {

// A 16-bit binary format with `mant` fraction bits (sign, 15 - mant exponent bits, bias).
inline std::uint16_t round_to_16(double x, int mant, int bias) {
    const int exp_bits = 15 - mant, emin = 1 - bias;
    const std::uint16_t inf = static_cast<std::uint16_t>(((1u << exp_bits) - 1) << mant);
    if (std::isnan(x)) return 0x7fff;
    const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs(x);
    if (std::isinf(a)) return sign | inf;
    int e = 0;
    std::frexp(a, &e);                            // 2^(e-1) <= a < 2^e (a > 0)
    int q = std::max(e - 1, emin) - mant;         // exponent of the last kept bit
    const double n = std::nearbyint(std::ldexp(a, -q));  // exact scaling; ties to even
    std::uint32_t m = static_cast<std::uint32_t>(n);
    if (m == 0) return sign;
    if (m >> (mant + 1)) m >>= 1, ++q;            // rounding carried into a new binade
    if (m < (1u << mant)) return static_cast<std::uint16_t>(sign | m);  // subnormal
    const int biased = q + mant + bias;
    if (biased >= (1 << exp_bits) - 1) return sign | inf;
    return static_cast<std::uint16_t>(sign | (biased << mant) | (m - (1u << mant)));
}
inline double value_of_16(std::uint16_t h, int mant, int bias) {
    const int exp_bits = 15 - mant;
    const int E = (h >> mant) & ((1 << exp_bits) - 1), M = h & ((1 << mant) - 1);
    double v;
    if (E == (1 << exp_bits) - 1)
        v = M ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else if (E == 0)
        v = std::ldexp(static_cast<double>(M), 1 - bias - mant);
    else
        v = std::ldexp(static_cast<double>(M + (1 << mant)), E - bias - mant);
    return (h & 0x8000) ? -v : v;
}

}  // namespace cgemu

inline __half __double2half(double x) { return {::cgemu::round_to_16(x, 10, 15)}; }
inline __half __float2half(float x) { return __double2half(static_cast<double>(x)); }
inline float __half2float(__half h) { return static_cast<float>(::cgemu::value_of_16(h.bits, 10, 15)); }
inline __nv_bfloat16 __double2bfloat16(double x) { return {::cgemu::round_to_16(x, 7, 127)}; }
inline __nv_bfloat16 __float2bfloat16(float x) { return __double2bfloat16(static_cast<double>(x)); }
inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float(static_cast<std::uint32_t>(h.bits) << 16); }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline __half __ushort_as_half(unsigned short u) { return {u}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return {u}; }
