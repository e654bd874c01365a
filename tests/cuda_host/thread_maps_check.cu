// Host-side check of the pairwise kernels' thread maps (runs on a CPU; no GPU needed): every main
// loop must cover each element of the 128 x 128 tile exactly once, pair adjacent columns (e, e+1)
// as the dense epilogue's vector stores assume, and agree with the top-1 slot/partner maps.
#include <cstdio>
#include <set>
#include <utility>
#include <vector>

#include "../../src/cuda/pairwise_mainloop_cuda.cuh"

using namespace congruence::cuda::detail;

template <class ML>
int check(const char* name) {
    int errors = 0;
    std::vector<int> seen(kBM * kBN, 0);
    std::vector<std::set<int>> partners(kBM);
    for (int tid = 0; tid < kThreads; ++tid) {
        for (int e = 0; e < ML::kAcc; ++e) {
            const int r = ML::row_of(e, tid), c = ML::col_of(e, tid);
            if (r < 0 || r >= kBM || c < 0 || c >= kBN) {
                std::printf("%s: tid %d e %d -> (%d, %d) outside the tile\n", name, tid, e, r, c);
                return 1;
            }
            ++seen[r * kBN + c];
            if (ML::slot_row(ML::slot_of(e), tid) != r) ++errors;
            if (e % 2 == 0 && (ML::row_of(e + 1, tid) != r || ML::col_of(e + 1, tid) != c + 1 || c % 2)) ++errors;
        }
        for (int s = 0; s < ML::kSlots; ++s) partners[ML::slot_row(s, tid)].insert(ML::partner_of(tid));
    }
    for (int x : seen) errors += x != 1;
    for (const auto& p : partners) errors += static_cast<int>(p.size()) != ML::kPartners;
    std::printf("%s: %s\n", name, errors ? "FAILED" : "ok");
    return errors ? 1 : 0;
}

// The swizzled fragment loads of one warp (rows base + g, words ks*8 + t (+4)) hit 32 banks.
int check_swizzle() {
    int errors = 0;
    for (int base = 0; base < kBM; base += 8)
        for (int ks = 0; ks < 4; ++ks)
            for (int plus = 0; plus <= 4; plus += 4) {
                std::set<int> banks;
                for (int lane = 0; lane < 32; ++lane) {
                    const int g = lane >> 2, t = lane & 3, row = base + g;
                    banks.insert((row * kRowWords + swizzled_word(row, ks * 8 + t + plus)) % 32);
                }
                errors += banks.size() != 32;
            }
    // and the swizzle is a permutation of each row's words
    for (int row = 0; row < 8; ++row) {
        std::set<int> words;
        for (int w = 0; w < kRowWords; ++w) words.insert(swizzled_word(row, w));
        errors += words.size() != static_cast<std::size_t>(kRowWords);
    }
    std::printf("swizzle: %s\n", errors ? "FAILED" : "ok");
    return errors ? 1 : 0;
}

int main() {
    int bad = check_swizzle();
    bad |= check<MmaMainloop<MmaKind::tf32>>("mma");
    bad |= check<SimtMainloop<float>>("simt");
    return bad;
}
