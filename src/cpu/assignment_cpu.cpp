#include "congruence/assignment.hpp"

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace congruence {

// Rows are assigned one at a time. For a new row, a Dijkstra search over reduced costs
// c_ij - u_i - v_j (non-negative for the rows already assigned) finds the cheapest path to a free
// column through alternating assigned pairs; the potentials are updated so that reduced costs
// stay non-negative and are zero on the matching, and the path is flipped. Each search touches
// every column at most once per visited row: O(nr * nc) per row, O(nr^2 nc) in all.
template <class Stop>
AssignStatus linear_assignment_cpu(const double* C, std::int64_t nr, std::int64_t nc, std::int64_t ldc,
                                   std::int64_t* col_for_row, const Stop& stop) {
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> u(static_cast<std::size_t>(nr), 0.0), v(static_cast<std::size_t>(nc), 0.0);
    std::vector<double> dist(static_cast<std::size_t>(nc));
    std::vector<std::int64_t> row_for_col(static_cast<std::size_t>(nc), -1), pred(static_cast<std::size_t>(nc));
    std::vector<std::int64_t> todo(static_cast<std::size_t>(nc));
    std::vector<char> row_seen(static_cast<std::size_t>(nr)), col_done(static_cast<std::size_t>(nc));
    std::vector<std::int64_t> seen_rows;
    for (std::int64_t r = 0; r < nr; ++r) col_for_row[r] = -1;

    for (std::int64_t start = 0; start < nr; ++start) {
        if (stop()) return AssignStatus::cancelled;
        std::fill(dist.begin(), dist.end(), inf);
        std::fill(row_seen.begin(), row_seen.end(), 0);
        std::fill(col_done.begin(), col_done.end(), 0);
        seen_rows.clear();
        std::int64_t n_todo = nc;
        for (std::int64_t j = 0; j < nc; ++j) todo[static_cast<std::size_t>(j)] = j;
        double reached = 0.0;  // the length of the shortest path found so far
        std::int64_t i = start, sink = -1;
        while (sink < 0) {
            row_seen[static_cast<std::size_t>(i)] = 1;
            seen_rows.push_back(i);
            const double* ci = C + i * ldc;
            const double base = reached - u[static_cast<std::size_t>(i)];
            double* dp = dist.data();
            const double* vp = v.data();
            const std::int64_t* rp = row_for_col.data();
            std::int64_t* pp = pred.data();
            const std::int64_t* tp = todo.data();
            double best = inf;
            std::int64_t best_at = -1;
            for (std::int64_t t = 0; t < n_todo; ++t) {
                const std::int64_t j = tp[t];
                const double d = base + ci[j] - vp[j];
                if (d < dp[j]) {
                    dp[j] = d;
                    pp[j] = i;
                }
                // among equals prefer a free column: the path ends there
                if (dp[j] < best || (dp[j] == best && rp[j] < 0)) {
                    best = dp[j];
                    best_at = t;
                }
            }
            if (best_at < 0 || !std::isfinite(best)) return AssignStatus::infeasible;
            reached = best;
            const std::int64_t j = todo[static_cast<std::size_t>(best_at)];
            col_done[static_cast<std::size_t>(j)] = 1;
            todo[static_cast<std::size_t>(best_at)] = todo[static_cast<std::size_t>(--n_todo)];
            if (row_for_col[static_cast<std::size_t>(j)] < 0)
                sink = j;
            else
                i = row_for_col[static_cast<std::size_t>(j)];
        }
        // potentials: keep reduced costs >= 0 everywhere and 0 along the matching
        u[static_cast<std::size_t>(start)] += reached;
        for (const std::int64_t r : seen_rows)
            if (r != start) u[static_cast<std::size_t>(r)] += reached - dist[static_cast<std::size_t>(col_for_row[r])];
        for (std::int64_t j = 0; j < nc; ++j)
            if (col_done[static_cast<std::size_t>(j)]) v[static_cast<std::size_t>(j)] -= reached - dist[static_cast<std::size_t>(j)];
        // flip the path
        for (std::int64_t j = sink;;) {
            const std::int64_t r = pred[static_cast<std::size_t>(j)];
            row_for_col[static_cast<std::size_t>(j)] = r;
            const std::int64_t prev = col_for_row[r];
            col_for_row[r] = j;
            if (r == start) break;
            j = prev;
        }
    }
    return AssignStatus::ok;
}

template AssignStatus linear_assignment_cpu<std::function<bool()>>(const double*, std::int64_t, std::int64_t,
                                                                   std::int64_t, std::int64_t*,
                                                                   const std::function<bool()>&);

}  // namespace congruence
