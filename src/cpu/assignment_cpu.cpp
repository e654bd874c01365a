#include "congruence/assignment.hpp"

#include <cmath>
#include <functional>
#include <limits>
#include <queue>
#include <tuple>
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

}  // namespace

template <class Stop>
AssignStatus linear_assignment_cpu(const double* C, std::int64_t nr, std::int64_t nc, std::int64_t ldc,
                                   std::int64_t* col_for_row, const Stop& stop) {
    Search s(nr, nc, col_for_row);
    std::vector<std::int64_t> todo(static_cast<std::size_t>(nc));
    for (std::int64_t start = 0; start < nr; ++start) {
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
    std::vector<char> done(static_cast<std::size_t>(nc), 0);
    std::vector<std::int64_t> touched;
    // (distance, 1 if the column is matched, column): among equal distances free columns first
    using Item = std::tuple<double, int, std::int64_t>;
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
    for (std::int64_t start = 0; start < nr; ++start) {
        if (stop()) return AssignStatus::cancelled;
        for (const std::int64_t j : touched) {
            s.dist[static_cast<std::size_t>(j)] = kInf;
            done[static_cast<std::size_t>(j)] = 0;
        }
        touched.clear();
        s.seen_rows.clear();
        s.done_cols.clear();
        heap = decltype(heap)();
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
                    heap.emplace(d, s.row_for_col[static_cast<std::size_t>(j)] >= 0 ? 1 : 0, j);
                }
            }
            std::int64_t j = -1;
            while (!heap.empty()) {
                const Item top = heap.top();
                heap.pop();
                const std::int64_t c = std::get<2>(top);
                if (!done[static_cast<std::size_t>(c)] && std::get<0>(top) == s.dist[static_cast<std::size_t>(c)]) {
                    j = c;
                    break;
                }
            }
            if (j < 0) return AssignStatus::infeasible;  // no path from this row to a free column
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
