// Dense linear assignment (METHODS.md §3.2): the minimum-cost injection of the rows of an
// nr x nc cost matrix (nr <= nc) into its columns, by shortest augmenting paths with dual
// potentials (Jonker & Volgenant 1987; the rectangular formulation of Crouse 2016).
#pragma once
#include <cstdint>

namespace congruence {

enum class AssignStatus : int { ok = 0, infeasible = 1, cancelled = 2 };

// C: row-major nr x nc (row stride ldc), nr <= nc; +inf marks a forbidden pair (no NaN, no
// -inf: the caller checks). col_for_row (nr entries) receives each row's column. stop() is
// polled between rows (Ctrl-C).
template <class Stop>
AssignStatus linear_assignment_cpu(const double* C, std::int64_t nr, std::int64_t nc, std::int64_t ldc,
                                   std::int64_t* col_for_row, const Stop& stop);

// The same on a sparse candidate graph: row i's allowed columns are indices[indptr[i] ..
// indptr[i+1]) with finite costs; Dijkstra with a binary heap over the touched columns only, so a
// search costs O(E log E) in the edges it reaches. infeasible when some row cannot be matched.
template <class Stop>
AssignStatus sparse_assignment_cpu(const std::int64_t* indptr, const std::int64_t* indices, const double* costs,
                                   std::int64_t nr, std::int64_t nc, std::int64_t* col_for_row, const Stop& stop);

}  // namespace congruence
