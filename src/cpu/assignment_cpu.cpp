#include "congruence/assignment.hpp"

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace congruence {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The state shared by the dense and the sparse solvers. Rows are assigned one at a time: a
// Dijkstra search over reduced costs c_ij - u_i - v_j (>= 0 on every edge, 0 on the matching)
// finds the cheapest path from the new row to a free column through matched pairs; then the
// potentials move so that reduced costs stay >= 0 and the path is flipped.
struct Search {
    std::vector<double> u, v, dist;
    std::vector<std::int64_t> row_for_col, pred;
    std::vector<std::int64_t> seen_rows, done_cols;  // of the current search
    std::int64_t* col_for_row;

    Search(std::int64_t nr, std::int64_t nc, std::int64_t* out)
        : u(static_cast<std::size_t>(nr), 0.0), v(static_cast<std::size_t>(nc), 0.0),
          dist(static_cast<std::size_t>(nc), kInf), row_for_col(static_cast<std::size_t>(nc), -1),
          pred(static_cast<std::size_t>(nc), -1), col_for_row(out) {
        for (std::int64_t r = 0; r < nr; ++r) col_for_row[r] = -1;
    }

    // Row reduction with greedy matching (the cheap half of Jonker–Volgenant's initialisation):
    // u_i = the row's minimum cost keeps every reduced cost >= 0 with v = 0, and each row whose
    // cheapest column is still free takes it (reduced cost 0, as a matched edge needs). Rows left
    // over are assigned by the augmenting searches, which start from these potentials.
    // row_min(i, j) returns row i's minimum and its first column (-1 for an empty row).
    template <class RowMin>
    void greedy_start(std::int64_t nr, const RowMin& row_min) {
        for (std::int64_t i = 0; i < nr; ++i) {
            std::int64_t j = -1;
            const double m = row_min(i, j);
            if (j < 0) continue;
            u[static_cast<std::size_t>(i)] = m;
            if (row_for_col[static_cast<std::size_t>(j)] < 0) {
                row_for_col[static_cast<std::size_t>(j)] = i;
                col_for_row[i] = j;
            }
        }
    }

    // Jonker–Volgenant's augmenting row reduction, two sweeps over the free rows: a free row takes
    // its cheapest column j1 under c_ij - v_j; when that is strictly below its second cheapest,
    // v_j1 drops by the gap, so j1 becomes exactly as dear as the runner-up for this row and dearer
    // for every other row — every assigned row's column stays its cheapest, the invariant the
    // searches need. The displaced owner of j1 is processed next (or, on a tie, the row takes the
    // runner-up column and the owner waits for the next sweep). edges(i, f) calls f(j, c_ij) for
    // row i's allowed columns. Afterwards u_i = min_j (c_ij - v_j) for every row, and an assigned
    // row whose column is not at that minimum (floating-point ties) is released to the searches,
    // so reduced costs are >= 0 everywhere and 0 on the matching whatever happened above.
    // Square problems only: with more columns than rows, optimality also needs v_j = 0 on the
    // columns left unassigned (Crouse 2016), which lowering v here and releasing rows can break.
    template <class Edges>
    void augmenting_row_reduction(std::int64_t nr, const Edges& edges) {
        std::vector<std::int64_t> free_rows;
        for (std::int64_t i = 0; i < nr; ++i)
            if (col_for_row[i] < 0) free_rows.push_back(i);
        for (int sweep = 0; sweep < 2 && !free_rows.empty(); ++sweep) {
            const std::int64_t n_free = static_cast<std::int64_t>(free_rows.size());
            std::int64_t current = 0, kept = 0, steps = 0;
            while (current < n_free) {
                ++steps;
                const std::int64_t i = free_rows[static_cast<std::size_t>(current++)];
                double h1 = kInf, h2 = kInf;
                std::int64_t j1 = -1, j2 = -1;
                edges(i, [&](std::int64_t j, double c) {
                    const double h = c - v[static_cast<std::size_t>(j)];
                    if (h < h1) {
                        h2 = h1;
                        j2 = j1;
                        h1 = h;
                        j1 = j;
                    } else if (h < h2) {
                        h2 = h;
                        j2 = j;
                    }
                });
                if (j1 < 0) continue;  // no allowed column: the search reports infeasibility
                std::int64_t owner = row_for_col[static_cast<std::size_t>(j1)];
                const bool lowers = j2 >= 0 && h1 < h2;
                if (steps < current * nr) {  // JV's bound against cycling
                    if (lowers) {
                        v[static_cast<std::size_t>(j1)] -= h2 - h1;
                    } else if (owner >= 0 && j2 >= 0) {
                        j1 = j2;
                        owner = row_for_col[static_cast<std::size_t>(j2)];
                    }
                    if (owner >= 0) {
                        if (lowers)
                            free_rows[static_cast<std::size_t>(--current)] = owner;
                        else
                            free_rows[static_cast<std::size_t>(kept++)] = owner;
                    }
                } else if (owner >= 0) {
                    free_rows[static_cast<std::size_t>(kept++)] = owner;
                }
                if (owner >= 0) col_for_row[owner] = -1;
                col_for_row[i] = j1;
                row_for_col[static_cast<std::size_t>(j1)] = i;
            }
            free_rows.resize(static_cast<std::size_t>(kept));
        }
        for (std::int64_t i = 0; i < nr; ++i) {
            double m = kInf, own = kInf;
            const std::int64_t x = col_for_row[i];
            edges(i, [&](std::int64_t j, double c) {
                const double h = c - v[static_cast<std::size_t>(j)];
                m = h < m ? h : m;
                if (j == x) own = h < own ? h : own;
            });
            u[static_cast<std::size_t>(i)] = std::isfinite(m) ? m : 0.0;
            if (x >= 0 && !(own == m)) {
                row_for_col[static_cast<std::size_t>(x)] = -1;
                col_for_row[i] = -1;
            }
        }
    }

    // Column j's distance is final: a free column ends the path, a matched one continues the
    // search from its row.
    void settle(std::int64_t j, std::int64_t& i, std::int64_t& sink) {
        done_cols.push_back(j);
        const std::int64_t r = row_for_col[static_cast<std::size_t>(j)];
        if (r < 0)
            sink = j;
        else
            i = r;
    }

    // reached: the length of the path to sink; dist holds the final distances of done_cols.
    void finish(std::int64_t start, double reached, std::int64_t sink) {
        u[static_cast<std::size_t>(start)] += reached;
        for (const std::int64_t r : seen_rows)
            if (r != start) u[static_cast<std::size_t>(r)] += reached - dist[static_cast<std::size_t>(col_for_row[r])];
        for (const std::int64_t j : done_cols) v[static_cast<std::size_t>(j)] -= reached - dist[static_cast<std::size_t>(j)];
        for (std::int64_t j = sink;;) {
            const std::int64_t r = pred[static_cast<std::size_t>(j)];
            row_for_col[static_cast<std::size_t>(j)] = r;
            const std::int64_t prev = col_for_row[r];
            col_for_row[r] = j;
            if (r == start) break;
            j = prev;
        }
    }
};

// A binary min-heap of columns keyed by (dist, matched, column) with decrease-key, so each column
// is in the heap at most once (a lazy-deletion heap of tuples was 2x slower on correlation graphs).
class ColumnHeap {
  public:
    ColumnHeap(std::int64_t nc, const std::vector<double>& dist, const std::vector<std::int64_t>& row_for_col)
        : pos_(static_cast<std::size_t>(nc), -1), dist_(dist), row_for_col_(row_for_col) {}

    bool empty() const { return heap_.empty(); }

    void push_or_decrease(std::int64_t j) {
        std::int64_t p = pos_[static_cast<std::size_t>(j)];
        if (p < 0) {
            p = static_cast<std::int64_t>(heap_.size());
            heap_.push_back(j);
            pos_[static_cast<std::size_t>(j)] = p;
        }
        up(p);
    }

    std::int64_t pop() {
        const std::int64_t top = heap_.front();
        pos_[static_cast<std::size_t>(top)] = -1;
        const std::int64_t last = heap_.back();
        heap_.pop_back();
        if (!heap_.empty()) {
            heap_[0] = last;
            pos_[static_cast<std::size_t>(last)] = 0;
            down(0);
        }
        return top;
    }

    void clear() {
        for (const std::int64_t j : heap_) pos_[static_cast<std::size_t>(j)] = -1;
        heap_.clear();
    }

  private:
    bool less(std::int64_t a, std::int64_t b) const {
        const double da = dist_[static_cast<std::size_t>(a)], db = dist_[static_cast<std::size_t>(b)];
        if (da != db) return da < db;
        const bool ma = row_for_col_[static_cast<std::size_t>(a)] >= 0, mb = row_for_col_[static_cast<std::size_t>(b)] >= 0;
        if (ma != mb) return !ma;  // among equal distances a free column ends the path
        return a < b;
    }
    void place(std::int64_t p, std::int64_t j) {
        heap_[static_cast<std::size_t>(p)] = j;
        pos_[static_cast<std::size_t>(j)] = p;
    }
    void up(std::int64_t p) {
        const std::int64_t j = heap_[static_cast<std::size_t>(p)];
        while (p > 0) {
            const std::int64_t parent = (p - 1) / 2;
            if (!less(j, heap_[static_cast<std::size_t>(parent)])) break;
            place(p, heap_[static_cast<std::size_t>(parent)]);
            p = parent;
        }
        place(p, j);
    }
    void down(std::int64_t p) {
        const std::int64_t n = static_cast<std::int64_t>(heap_.size());
        const std::int64_t j = heap_[static_cast<std::size_t>(p)];
        for (;;) {
            std::int64_t c = 2 * p + 1;
            if (c >= n) break;
            if (c + 1 < n && less(heap_[static_cast<std::size_t>(c + 1)], heap_[static_cast<std::size_t>(c)])) ++c;
            if (!less(heap_[static_cast<std::size_t>(c)], j)) break;
            place(p, heap_[static_cast<std::size_t>(c)]);
            p = c;
        }
        place(p, j);
    }

    std::vector<std::int64_t> heap_, pos_;
    const std::vector<double>& dist_;
    const std::vector<std::int64_t>& row_for_col_;
};

}  // namespace

template <class Stop>
AssignStatus linear_assignment_cpu(const double* C, std::int64_t nr, std::int64_t nc, std::int64_t ldc,
                                   std::int64_t* col_for_row, const Stop& stop) {
    Search s(nr, nc, col_for_row);
    s.greedy_start(nr, [&](std::int64_t i, std::int64_t& at) {
        const double* ci = C + i * ldc;
        double m = kInf;
        for (std::int64_t j = 0; j < nc; ++j)
            if (ci[j] < m) {
                m = ci[j];
                at = j;
            }
        return m;
    });
    if (nr == nc) s.augmenting_row_reduction(nr, [&](std::int64_t i, auto&& f) {
        const double* ci = C + i * ldc;
        for (std::int64_t j = 0; j < nc; ++j)
            if (ci[j] < kInf) f(j, ci[j]);
    });
    std::vector<std::int64_t> todo(static_cast<std::size_t>(nc));
    for (std::int64_t start = 0; start < nr; ++start) {
        if (col_for_row[start] >= 0) continue;
        if (stop()) return AssignStatus::cancelled;
        std::fill(s.dist.begin(), s.dist.end(), kInf);
        s.seen_rows.clear();
        s.done_cols.clear();
        std::int64_t n_todo = nc;
        for (std::int64_t j = 0; j < nc; ++j) todo[static_cast<std::size_t>(j)] = j;
        double reached = 0.0;
        std::int64_t i = start, sink = -1;
        while (sink < 0) {
            s.seen_rows.push_back(i);
            const double* ci = C + i * ldc;
            const double base = reached - s.u[static_cast<std::size_t>(i)];
            double* dp = s.dist.data();
            const double* vp = s.v.data();
            const std::int64_t* rp = s.row_for_col.data();
            std::int64_t* pp = s.pred.data();
            const std::int64_t* tp = todo.data();
            double best = kInf;
            std::int64_t best_at = -1;
            for (std::int64_t t = 0; t < n_todo; ++t) {
                const std::int64_t j = tp[t];
                const double d = base + ci[j] - vp[j];
                if (d < dp[j]) {
                    dp[j] = d;
                    pp[j] = i;
                }
                if (dp[j] < best || (dp[j] == best && rp[j] < 0)) {  // among equals, a free column ends the path
                    best = dp[j];
                    best_at = t;
                }
            }
            if (best_at < 0 || !std::isfinite(best)) return AssignStatus::infeasible;
            reached = best;
            const std::int64_t j = todo[static_cast<std::size_t>(best_at)];
            todo[static_cast<std::size_t>(best_at)] = todo[static_cast<std::size_t>(--n_todo)];
            s.settle(j, i, sink);
        }
        s.finish(start, reached, sink);
    }
    return AssignStatus::ok;
}

template <class Stop>
AssignStatus sparse_assignment_cpu(const std::int64_t* indptr, const std::int64_t* indices, const double* costs,
                                   std::int64_t nr, std::int64_t nc, std::int64_t* col_for_row, const Stop& stop) {
    Search s(nr, nc, col_for_row);
    s.greedy_start(nr, [&](std::int64_t i, std::int64_t& at) {
        double m = kInf;
        for (std::int64_t e = indptr[i]; e < indptr[i + 1]; ++e)
            if (costs[e] < m || (costs[e] == m && indices[e] < at)) {
                m = costs[e];
                at = indices[e];
            }
        return m;
    });
    if (nr == nc) s.augmenting_row_reduction(nr, [&](std::int64_t i, auto&& f) {
        for (std::int64_t e = indptr[i]; e < indptr[i + 1]; ++e) f(indices[e], costs[e]);
    });
    std::vector<char> done(static_cast<std::size_t>(nc), 0);
    std::vector<std::int64_t> touched;
    ColumnHeap heap(nc, s.dist, s.row_for_col);
    for (std::int64_t start = 0; start < nr; ++start) {
        if (col_for_row[start] >= 0) continue;
        if (stop()) return AssignStatus::cancelled;
        for (const std::int64_t j : touched) {
            s.dist[static_cast<std::size_t>(j)] = kInf;
            done[static_cast<std::size_t>(j)] = 0;
        }
        touched.clear();
        heap.clear();
        s.seen_rows.clear();
        s.done_cols.clear();
        double reached = 0.0;
        std::int64_t i = start, sink = -1;
        while (sink < 0) {
            s.seen_rows.push_back(i);
            const double base = reached - s.u[static_cast<std::size_t>(i)];
            for (std::int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
                const std::int64_t j = indices[e];
                if (done[static_cast<std::size_t>(j)]) continue;
                const double d = base + costs[e] - s.v[static_cast<std::size_t>(j)];
                double& dj = s.dist[static_cast<std::size_t>(j)];
                if (d < dj) {
                    if (dj == kInf) touched.push_back(j);
                    dj = d;
                    s.pred[static_cast<std::size_t>(j)] = i;
                    heap.push_or_decrease(j);
                }
            }
            if (heap.empty()) return AssignStatus::infeasible;  // no path from this row to a free column
            const std::int64_t j = heap.pop();
            reached = s.dist[static_cast<std::size_t>(j)];
            done[static_cast<std::size_t>(j)] = 1;
            s.settle(j, i, sink);
        }
        s.finish(start, reached, sink);
    }
    return AssignStatus::ok;
}

template AssignStatus linear_assignment_cpu<std::function<bool()>>(const double*, std::int64_t, std::int64_t,
                                                                   std::int64_t, std::int64_t*,
                                                                   const std::function<bool()>&);
template AssignStatus sparse_assignment_cpu<std::function<bool()>>(const std::int64_t*, const std::int64_t*,
                                                                   const double*, std::int64_t, std::int64_t,
                                                                   std::int64_t*, const std::function<bool()>&);

}  // namespace congruence
