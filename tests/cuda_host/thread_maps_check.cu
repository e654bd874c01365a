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

int main() {
    int bad = 0;
    bad |= check<MmaMainloop<MmaKind::tf32>>("mma");
    bad |= check<SimtMainloop<float>>("simt");
    return bad;
}
