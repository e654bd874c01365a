// pybind11 glue for congruence._cpu: unpack arrays into pointers/strides, release the GIL, call
// the core, translate statuses into Python exceptions. No computation lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <omp.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "congruence/assignment.hpp"
#include "congruence/blas.hpp"
#include "congruence/column_stats.hpp"
#include "congruence/gram_accumulate.hpp"
#include "congruence/pairwise.hpp"
#include "congruence/mahalanobis.hpp"
#include "congruence/popcount.hpp"
#include "congruence/screen.hpp"

namespace py = pybind11;
using namespace congruence;

namespace {

struct View2D {
    const void* data;
    std::int64_t rows, cols, rs, cs;  // strides in elements
};

View2D view2d(const py::array& a, const char* name) {
    if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + ": expected a 2-D array");
    const auto item = static_cast<std::int64_t>(a.itemsize());
    if (a.strides(0) % item || a.strides(1) % item)
        throw std::invalid_argument(std::string(name) + ": strides must be multiples of the item size");
    return {a.data(), a.shape(0), a.shape(1), a.strides(0) / item, a.strides(1) / item};
}

template <class T>
T* mutable_ptr(py::array& a, const char* name) {
    if (!py::isinstance<py::array_t<T>>(a)) throw std::invalid_argument(std::string(name) + ": wrong dtype");
    if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": not writeable");
    return static_cast<T*>(a.mutable_data());
}

template <class T>
const T* optional_ptr(const py::object& o, std::int64_t n, const char* name) {
    if (o.is_none()) return nullptr;
    auto a = o.cast<py::array>();
    if (!py::isinstance<py::array_t<T>>(a) || a.ndim() != 1 || a.shape(0) != n ||
        !(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + ": expected a contiguous 1-D array of length " +
                                    std::to_string(n));
    return static_cast<const T*>(a.data());
}

// Panels fed to the engine: K x n, unit column stride, row stride >= n.
template <class T>
View2D panel(const py::array& a, const char* name) {
    if (!py::isinstance<py::array_t<T>>(a)) throw std::invalid_argument(std::string(name) + ": wrong dtype");
    View2D v = view2d(a, name);
    if (v.cs != 1 || v.rs < v.cols)
        throw std::invalid_argument(std::string(name) + ": panel must have unit column stride");
    return v;
}

StopFn python_stop() {
    return []() {
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    };
}

void raise_status(Status s) {
    if (s == Status::cancelled) throw py::error_already_set();  // KeyboardInterrupt is pending
    if (s == Status::too_many_pairs) throw py::value_error("too_many_pairs");
}

TilePlan make_plan(std::int64_t br, std::int64_t bc, std::int64_t kc, int nt) {
    TilePlan p;
    p.block_rows = br;
    p.block_cols = bc;
    p.k_chunk = kc;
    p.num_threads = nt;
    return p;
}

ReduceSpec make_spec(std::int64_t k, bool absolute, const py::object& col_bias,
                     const py::object& col_valid, std::int64_t nb, bool exclude_diagonal, bool clip) {
    ReduceSpec spec;
    spec.k = k;
    spec.absolute = absolute;
    spec.col_bias = optional_ptr<double>(col_bias, nb, "col_bias");
    spec.col_valid = optional_ptr<std::uint8_t>(col_valid, nb, "col_valid");
    spec.exclude_diagonal = exclude_diagonal;
    if (clip) {
        spec.lo = -1.0;
        spec.hi = 1.0;
    }
    return spec;
}

template <class T>
void dense(const py::array& A, const py::array& B, bool symmetric, py::array& C, std::int64_t br,
           std::int64_t bc, std::int64_t kc, int nt) {
    View2D a = panel<T>(A, "A"), b = panel<T>(B, "B");
    T* c = mutable_ptr<T>(C, "C");
    View2D cv = view2d(C, "C");
    if (a.rows != b.rows || cv.rows != a.cols || cv.cols != b.cols || cv.cs != 1)
        throw std::invalid_argument("pairwise_dense: shape mismatch");
    Status s;
    {
        py::gil_scoped_release nogil;
        s = pairwise_dense_cpu<T>(static_cast<const T*>(a.data), a.rs, static_cast<const T*>(b.data),
                                  b.rs, a.rows, a.cols, b.cols, symmetric, c, cv.rs,
                                  make_plan(br, bc, kc, nt), python_stop());
    }
    raise_status(s);
}

template <class T>
void topk(const py::array& A, const py::array& B, std::int64_t k, bool absolute,
          const py::object& col_bias, const py::object& col_valid, bool exclude_diagonal,
          py::array& values, py::array& indices, std::int64_t br, std::int64_t bc, std::int64_t kc,
          int nt, bool clip) {
    View2D a = panel<T>(A, "A"), b = panel<T>(B, "B");
    if (a.rows != b.rows) throw std::invalid_argument("pairwise_topk: sample counts differ");
    T* vp = mutable_ptr<T>(values, "values");
    std::int64_t* ip = mutable_ptr<std::int64_t>(indices, "indices");
    if (!(values.flags() & py::array::c_style) || !(indices.flags() & py::array::c_style) ||
        values.size() != a.cols * k || indices.size() != a.cols * k)
        throw std::invalid_argument("pairwise_topk: outputs must be contiguous (na, k)");
    const ReduceSpec spec = make_spec(k, absolute, col_bias, col_valid, b.cols, exclude_diagonal, clip);
    Status s;
    {
        py::gil_scoped_release nogil;
        s = pairwise_topk_cpu<T>(static_cast<const T*>(a.data), a.rs, static_cast<const T*>(b.data),
                                 b.rs, a.rows, a.cols, b.cols, spec, vp, ip,
                                 make_plan(br, bc, kc, nt), python_stop());
    }
    raise_status(s);
}

template <class T>
py::tuple threshold(const py::array& A, const py::array& B, double thr, bool absolute,
                    const py::object& col_bias, const py::object& col_valid, bool exclude_diagonal,
                    std::int64_t max_pairs, std::int64_t br, std::int64_t bc, std::int64_t kc,
                    int nt, bool clip) {
    View2D a = panel<T>(A, "A"), b = panel<T>(B, "B");
    if (a.rows != b.rows) throw std::invalid_argument("pairwise_threshold: sample counts differ");
    const ReduceSpec spec = make_spec(1, absolute, col_bias, col_valid, b.cols, exclude_diagonal, clip);
    auto* out = new PairList<T>();
    py::capsule owner(out, [](void* p) { delete static_cast<PairList<T>*>(p); });
    Status s;
    {
        py::gil_scoped_release nogil;
        s = pairwise_threshold_cpu<T>(static_cast<const T*>(a.data), a.rs,
                                      static_cast<const T*>(b.data), b.rs, a.rows, a.cols, b.cols,
                                      spec, thr, max_pairs, *out, make_plan(br, bc, kc, nt),
                                      python_stop());
    }
    raise_status(s);
    const auto n = static_cast<py::ssize_t>(out->rows.size());
    return py::make_tuple(py::array_t<std::int64_t>({n}, out->rows.data(), owner),
                          py::array_t<std::int64_t>({n}, out->cols.data(), owner),
                          py::array_t<T>({n}, out->values.data(), owner));
}

// A C-contiguous array of exactly `n` elements of T (shape checked by the caller's message).
template <class T>
T* exact_out(py::array& a, std::int64_t n, const char* name) {
    T* p = mutable_ptr<T>(a, name);
    if (!(a.flags() & py::array::c_style) || a.size() != n)
        throw std::invalid_argument(std::string(name) + ": expected a contiguous array of " + std::to_string(n) +
                                    " elements");
    return p;
}

// A screen's lists from (keys (n, 2k) float32, idx (n, 2k) int64, count (n,) int32, threshold (n,) float32).
ScreenLists screen_lists(const py::tuple& t, std::int64_t n, const char* name) {
    if (t.size() != 4) throw std::invalid_argument(std::string(name) + ": expected (keys, idx, count, threshold)");
    auto keys = t[0].cast<py::array>();
    auto idx = t[1].cast<py::array>();
    auto count = t[2].cast<py::array>();
    auto thr = t[3].cast<py::array>();
    if (keys.ndim() != 2 || keys.shape(0) != n || keys.shape(1) < 2 || keys.shape(1) % 2)
        throw std::invalid_argument(std::string(name) + ": keys must be (" + std::to_string(n) + ", 2k)");
    const std::int64_t cap = keys.shape(1);
    ScreenLists s;
    s.k = cap / 2;
    s.keys = exact_out<float>(keys, n * cap, name);
    s.idx = exact_out<std::int64_t>(idx, n * cap, name);
    s.count = exact_out<std::int32_t>(count, n, name);
    s.threshold = exact_out<float>(thr, n, name);
    return s;
}

void scan_bf16(const py::array& tile, std::int64_t i0, bool absolute, bool clip, const py::object& col_valid,
               const py::object& row_valid, std::int64_t na, const py::tuple& row_lists, const py::tuple& col_lists,
               int nt) {
    if (!py::isinstance<py::array_t<std::uint16_t>>(tile) && !py::isinstance<py::array_t<std::int16_t>>(tile))
        throw std::invalid_argument("tile: expected 16-bit bfloat16 bit patterns");
    View2D t = view2d(tile, "tile");
    if (t.cs != 1) throw std::invalid_argument("tile: unit column stride needed");
    const std::int64_t bi = t.rows, nb = t.cols;
    if (i0 < 0 || i0 + bi > na) throw std::invalid_argument("tile: rows out of range");
    ScreenLists rows = screen_lists(row_lists, bi, "row_lists");
    ScreenLists cols = screen_lists(col_lists, nb, "col_lists");
    ReduceSpec spec = make_spec(rows.k, absolute, py::none(), col_valid, nb, false, clip);
    const std::uint8_t* rv = optional_ptr<std::uint8_t>(row_valid, na, "row_valid");
    py::gil_scoped_release nogil;
    scan_bf16_tile_two_sided(static_cast<const std::uint16_t*>(t.data), t.rs, bi, nb, i0, spec, rv, rows, cols, nt);
}

void self_join_py(const py::array_t<float, py::array::c_style>& left, const py::array_t<float, py::array::c_style>& right,
                  std::int64_t tile_rows, const py::tuple& row_lists, const py::tuple& col_lists, int nt) {
    if (left.ndim() != 2 || right.ndim() != 2 || left.shape(0) != right.shape(0) || left.shape(1) != right.shape(1))
        throw std::invalid_argument("self_join_screen: left and right must be (Dp, N) float32 panels of one shape");
    if (tile_rows < 1) throw std::invalid_argument("self_join_screen: tile_rows must be positive");
    const std::int64_t Dp = left.shape(0), N = left.shape(1);
    ScreenLists rows = screen_lists(row_lists, N, "row_lists");
    ScreenLists cols = screen_lists(col_lists, N, "col_lists");
    py::gil_scoped_release nogil;
    self_join_screen(left.data(), right.data(), N, Dp, tile_rows, rows, cols, nt);
}

void finalize_py(const py::tuple& lists, std::int64_t n, int nt) {
    ScreenLists s = screen_lists(lists, n, "lists");
    py::gil_scoped_release nogil;
    finalize_lists(s, n, nt);
}

void pair_dots(const py::array& At, const py::array& Bt, const py::array_t<std::int64_t>& rows,
               const py::array_t<std::int64_t>& cols, py::array& out, int nt) {
    View2D a = panel<float>(At, "At"), b = panel<float>(Bt, "Bt");
    if (a.cols != b.cols) throw std::invalid_argument("pair_dot_products: panels differ in length");
    const std::int64_t n = rows.size();
    if (cols.size() != n || rows.ndim() != 1 || cols.ndim() != 1 || !(rows.flags() & py::array::c_style) ||
        !(cols.flags() & py::array::c_style))
        throw std::invalid_argument("pair_dot_products: rows and cols must be contiguous 1-D arrays of one length");
    const std::int64_t* r = rows.data();
    const std::int64_t* c = cols.data();
    for (std::int64_t e = 0; e < n; ++e)
        if (r[e] < 0 || r[e] >= a.rows || c[e] < 0 || c[e] >= b.rows)
            throw std::invalid_argument("pair_dot_products: index out of range");
    double* o = exact_out<double>(out, n, "out");
    py::gil_scoped_release nogil;
    pair_dot_products(static_cast<const float*>(a.data), a.rs, static_cast<const float*>(b.data), b.rs, a.cols, r, c,
                      n, o, nt);
}

py::tuple candidate_graph_py(const py::tuple& row_lists, std::int64_t p, const py::tuple& col_lists,
                             std::int64_t q) {
    ScreenLists rows = screen_lists(row_lists, p, "row_lists");
    ScreenLists cols = screen_lists(col_lists, q, "col_lists");
    for (std::int64_t i = 0; i < p; ++i) {
        if (rows.count[i] < 0 || rows.count[i] > rows.k) throw std::invalid_argument("candidate_graph: lists not finalized");
        for (std::int32_t t = 0; t < rows.count[i]; ++t)
            if (rows.idx[i * 2 * rows.k + t] < 0 || rows.idx[i * 2 * rows.k + t] >= q)
                throw std::invalid_argument("candidate_graph: row list index out of range");
    }
    for (std::int64_t j = 0; j < q; ++j) {
        if (cols.count[j] < 0 || cols.count[j] > cols.k) throw std::invalid_argument("candidate_graph: lists not finalized");
        for (std::int32_t t = 0; t < cols.count[j]; ++t)
            if (cols.idx[j * 2 * cols.k + t] < 0 || cols.idx[j * 2 * cols.k + t] >= p)
                throw std::invalid_argument("candidate_graph: column list index out of range");
    }
    auto* indptr = new std::vector<std::int64_t>();
    auto* indices = new std::vector<std::int64_t>();
    py::capsule own_p(indptr, [](void* v) { delete static_cast<std::vector<std::int64_t>*>(v); });
    py::capsule own_i(indices, [](void* v) { delete static_cast<std::vector<std::int64_t>*>(v); });
    {
        py::gil_scoped_release nogil;
        candidate_graph(rows, p, cols, q, *indptr, *indices);
    }
    return py::make_tuple(py::array_t<std::int64_t>({static_cast<py::ssize_t>(indptr->size())}, indptr->data(), own_p),
                          py::array_t<std::int64_t>({static_cast<py::ssize_t>(indices->size())}, indices->data(), own_i));
}

// Checks (N, D) points and 1-D in-range pair lists of one length; returns the pair count.
std::int64_t check_pairs(const py::array_t<double, py::array::c_style>& O,
                         const py::array_t<std::int64_t, py::array::c_style>& rows,
                         const py::array_t<std::int64_t, py::array::c_style>& cols, const char* name) {
    const std::int64_t N = O.shape(0), n = rows.size();
    if (rows.ndim() != 1 || cols.ndim() != 1 || cols.size() != n)
        throw std::invalid_argument(std::string(name) + ": rows and cols must be 1-D of one length");
    const std::int64_t* rp = rows.data();
    const std::int64_t* cp = cols.data();
    for (std::int64_t e = 0; e < n; ++e)
        if (rp[e] < 0 || rp[e] >= N || cp[e] < 0 || cp[e] >= N)
            throw std::invalid_argument(std::string(name) + ": index out of range");
    return n;
}

void mahalanobis_py(const py::array_t<double, py::array::c_style>& O, const py::array_t<double, py::array::c_style>& F,
                    const py::array_t<std::int64_t, py::array::c_style>& rows,
                    const py::array_t<std::int64_t, py::array::c_style>& cols, py::array& out, int nt) {
    if (O.ndim() != 2 || F.ndim() != 3 || F.shape(0) != O.shape(0) || F.shape(2) != O.shape(1))
        throw std::invalid_argument("mahalanobis_pairs: points must be (N, D) and factors (N, r, D)");
    const std::int64_t n = check_pairs(O, rows, cols, "mahalanobis_pairs");
    double* o = exact_out<double>(out, n, "out");
    py::gil_scoped_release nogil;
    mahalanobis_pairs(O.data(), O.shape(0), O.shape(1), F.data(), F.shape(1), rows.data(), cols.data(), n, o, nt);
}

void gram_popcount_py(const py::array_t<std::uint64_t, py::array::c_style>& A, py::array& out, int nt) {
    if (A.ndim() != 2) throw std::invalid_argument("gram_popcount: A must be (K, W) uint64 words");
    const std::int64_t K = A.shape(0), W = A.shape(1);
    std::int64_t* o = exact_out<std::int64_t>(out, K * K, "out");
    py::gil_scoped_release nogil;
    gram_popcount(A.data(), K, W, o, nt);
}

void gram_equal_sliced_py(const py::array_t<std::uint64_t, py::array::c_style>& planes,
                          const py::array_t<std::uint64_t, py::array::c_style>& valid, py::array& out, int nt) {
    if (planes.ndim() != 3 || planes.shape(0) < 1)
        throw std::invalid_argument("gram_equal_sliced: planes must be (P >= 1, K, W) uint64 words");
    const std::int64_t P = planes.shape(0), K = planes.shape(1), W = planes.shape(2);
    if (valid.ndim() != 1 || valid.shape(0) != W)
        throw std::invalid_argument("gram_equal_sliced: valid must have one word per plane word");
    std::int64_t* o = exact_out<std::int64_t>(out, K * K, "out");
    py::gil_scoped_release nogil;
    gram_equal_sliced(planes.data(), P, K, W, valid.data(), o, nt);
}

template <class T>
void pack_planes_typed(const py::array& labels, std::int64_t P, py::array& out, int nt) {
    auto L = py::array_t<T, py::array::c_style>::ensure(labels);
    if (!L || L.ndim() != 2) throw std::invalid_argument("pack_label_planes: labels must be a (K, n) array");
    const std::int64_t K = L.shape(0), n = L.shape(1), W = (n + 63) / 64;
    std::uint64_t* o = exact_out<std::uint64_t>(out, P * K * W, "out");
    py::gil_scoped_release nogil;
    pack_label_planes<T>(L.data(), K, n, P, o, nt);
}

void pack_planes_py(const py::array& labels, std::int64_t P, py::array& out, int nt) {
    if (P < 1 || P > 62) throw std::invalid_argument("pack_label_planes: planes must be in [1, 62]");
    if (py::isinstance<py::array_t<std::int32_t>>(labels)) return pack_planes_typed<std::int32_t>(labels, P, out, nt);
    if (py::isinstance<py::array_t<std::int64_t>>(labels)) return pack_planes_typed<std::int64_t>(labels, P, out, nt);
    throw std::invalid_argument("pack_label_planes: labels must be int32 or int64");
}

void squared_distances_py(const py::array_t<double, py::array::c_style>& O,
                          const py::array_t<std::int64_t, py::array::c_style>& rows,
                          const py::array_t<std::int64_t, py::array::c_style>& cols, py::array& out, int nt) {
    if (O.ndim() != 2) throw std::invalid_argument("squared_distance_pairs: points must be (N, D)");
    const std::int64_t n = check_pairs(O, rows, cols, "squared_distance_pairs");
    double* o = exact_out<double>(out, n, "out");
    py::gil_scoped_release nogil;
    squared_distance_pairs(O.data(), O.shape(0), O.shape(1), rows.data(), cols.data(), n, o, nt);
}

// jobs: a list of (A, B or None, C); all panels share dtype and sample count.
template <class T>
void accumulate_many(const py::list& jobs, std::int64_t br, std::int64_t bc, std::int64_t kc, int nt) {
    std::vector<GramJob<T>> js;
    std::int64_t K = -1;
    for (const py::handle& h : jobs) {
        auto t = h.cast<py::tuple>();
        if (t.size() != 3) throw std::invalid_argument("gram_accumulate_many: jobs are (A, B or None, C)");
        auto A = t[0].cast<py::array>();
        const bool symmetric = t[1].is_none();
        auto B = symmetric ? A : t[1].cast<py::array>();
        auto C = t[2].cast<py::array>();
        View2D a = panel<T>(A, "A"), b = panel<T>(B, "B");
        double* c = mutable_ptr<double>(C, "C");
        View2D cv = view2d(C, "C");
        if (a.rows != b.rows || cv.rows != a.cols || cv.cols != b.cols || cv.cs != 1 || cv.rs < cv.cols)
            throw std::invalid_argument("gram_accumulate_many: shape mismatch");
        if (K >= 0 && a.rows != K) throw std::invalid_argument("gram_accumulate_many: sample counts differ");
        K = a.rows;
        js.push_back({static_cast<const T*>(a.data), a.rs, static_cast<const T*>(b.data), b.rs, a.cols, b.cols,
                      symmetric, c, cv.rs});
    }
    if (js.empty()) return;
    Status s;
    {
        py::gil_scoped_release nogil;
        s = gram_accumulate_many_cpu<T>(js.data(), static_cast<std::int64_t>(js.size()), K,
                                        make_plan(br, bc, kc, nt), python_stop());
    }
    raise_status(s);
}

bool is_f32(const py::array& a) { return py::isinstance<py::array_t<float>>(a); }

std::uintptr_t as_address(const py::object& o) { return o.cast<std::uintptr_t>(); }

}  // namespace

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "congruence CPU engine (OpenMP kernels; BLAS through scipy's function pointers)";
    m.attr("version") = CONGRUENCE_VERSION;
    m.attr("cxx_flags") = CONGRUENCE_CXX_FLAGS;
    m.attr("compiler") = CONGRUENCE_COMPILER;
    m.attr("openmp_version") = _OPENMP;
    m.def("omp_max_threads", []() { return omp_get_max_threads(); });

    m.def("set_blas", [](py::object s, py::object d, py::object ss, py::object ds) {
        set_blas(reinterpret_cast<sgemm_fn>(as_address(s)), reinterpret_cast<dgemm_fn>(as_address(d)),
                 reinterpret_cast<ssyrk_fn>(as_address(ss)), reinterpret_cast<dsyrk_fn>(as_address(ds)));
    }, "Install Fortran BLAS entry points (addresses as integers).");
    m.def("blas_ready", &blas_ready);

    m.def("column_stats", [](const py::array& X, int dtype, py::array& mean, py::array& m2,
                             py::array& sumsq, int nt) {
        View2D x = view2d(X, "X");
        double* mp = mutable_ptr<double>(mean, "mean");
        double* m2p = mutable_ptr<double>(m2, "m2");
        double* sp = mutable_ptr<double>(sumsq, "sumsq");
        if (mean.size() != x.cols || m2.size() != x.cols || sumsq.size() != x.cols)
            throw std::invalid_argument("column_stats: output length mismatch");
        py::gil_scoped_release nogil;
        return column_stats_cpu(x.data, static_cast<DType>(dtype), x.rows, x.cols, x.rs, x.cs, mp, m2p, sp, nt);
    }, py::arg("X"), py::arg("dtype"), py::arg("mean"), py::arg("m2"), py::arg("sumsq"), py::arg("num_threads"));

    m.def("standardize", [](const py::array& X, int dtype, const py::object& row_shift,
                            const py::object& col_shift, const py::object& col_scale,
                            py::array& out, int nt) {
        View2D x = view2d(X, "X");
        View2D o = view2d(out, "out");
        if (o.rows != x.rows || o.cols != x.cols || o.cs != 1)
            throw std::invalid_argument("standardize: out must match X with unit column stride");
        const double* rsh = optional_ptr<double>(row_shift, x.rows, "row_shift");
        const double* csh = optional_ptr<double>(col_shift, x.cols, "col_shift");
        const double* csc = optional_ptr<double>(col_scale, x.cols, "col_scale");
        if (is_f32(out)) {
            float* op = mutable_ptr<float>(out, "out");
            py::gil_scoped_release nogil;
            standardize_cpu(x.data, static_cast<DType>(dtype), x.rows, x.cols, x.rs, x.cs, rsh, csh, csc, op, o.rs, nt);
        } else {
            double* op = mutable_ptr<double>(out, "out");
            py::gil_scoped_release nogil;
            standardize_cpu(x.data, static_cast<DType>(dtype), x.rows, x.cols, x.rs, x.cs, rsh, csh, csc, op, o.rs, nt);
        }
    }, py::arg("X"), py::arg("dtype"), py::arg("row_shift"), py::arg("col_shift"), py::arg("col_scale"),
       py::arg("out"), py::arg("num_threads"));

    m.def("pairwise_dense", [](const py::array& A, const py::array& B, bool symmetric, py::array& C,
                               std::int64_t br, std::int64_t bc, std::int64_t kc, int nt) {
        if (is_f32(A)) dense<float>(A, B, symmetric, C, br, bc, kc, nt);
        else dense<double>(A, B, symmetric, C, br, bc, kc, nt);
    }, py::arg("A"), py::arg("B"), py::arg("symmetric"), py::arg("C"), py::arg("block_rows"),
       py::arg("block_cols"), py::arg("k_chunk"), py::arg("num_threads"));

    m.def("gram_accumulate_many", [](const py::list& jobs, std::int64_t br, std::int64_t bc, std::int64_t kc,
                                     int nt) {
        if (jobs.empty()) return;
        auto first = jobs[0].cast<py::tuple>()[0].cast<py::array>();
        if (is_f32(first)) accumulate_many<float>(jobs, br, bc, kc, nt);
        else accumulate_many<double>(jobs, br, bc, kc, nt);
    }, py::arg("jobs"), py::arg("block_rows"), py::arg("block_cols"), py::arg("k_chunk"), py::arg("num_threads"),
       "For each job (A, B or None, C): C += A^T B (None: symmetric, upper triangle), in one parallel region.");

    m.def("linear_assignment", [](const py::array_t<double, py::array::c_style | py::array::forcecast>& C) {
        if (C.ndim() != 2) throw std::invalid_argument("cost: expected a 2-D array");
        const std::int64_t nr = C.shape(0), nc = C.shape(1);
        if (nr > nc) throw std::invalid_argument("cost: needs rows <= columns (transpose first)");
        py::array_t<std::int64_t> out(nr);
        AssignStatus s;
        {
            py::gil_scoped_release nogil;
            s = linear_assignment_cpu<StopFn>(C.data(), nr, nc, nc, out.mutable_data(), python_stop());
        }
        if (s == AssignStatus::cancelled) throw py::error_already_set();
        if (s == AssignStatus::infeasible) throw py::value_error("infeasible");
        return out;
    }, py::arg("C"),
       "Minimum-cost assignment of the rows of C (nr <= nc; +inf forbidden) to distinct columns: col_for_row.");

    m.def("sparse_assignment", [](const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& indptr,
                                  const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& indices,
                                  const py::array_t<double, py::array::c_style | py::array::forcecast>& costs,
                                  std::int64_t nr, std::int64_t nc) {
        if (indptr.ndim() != 1 || indptr.shape(0) != nr + 1) throw std::invalid_argument("indptr: expected nr + 1 entries");
        if (indices.ndim() != 1 || costs.ndim() != 1 || indices.shape(0) != costs.shape(0))
            throw std::invalid_argument("indices / costs: expected two 1-D arrays of the same length");
        const std::int64_t* ip = indptr.data();
        const std::int64_t nnz = indices.shape(0);
        if (ip[0] != 0 || ip[nr] != nnz) throw std::invalid_argument("indptr: must start at 0 and end at nnz");
        for (std::int64_t r = 0; r < nr; ++r)
            if (ip[r + 1] < ip[r]) throw std::invalid_argument("indptr: must be non-decreasing");
        const std::int64_t* jp = indices.data();
        for (std::int64_t e = 0; e < nnz; ++e)
            if (jp[e] < 0 || jp[e] >= nc) throw std::invalid_argument("indices: out of range");
        if (nr > nc) throw std::invalid_argument("cost: needs rows <= columns (transpose first)");
        py::array_t<std::int64_t> out(nr);
        AssignStatus s;
        {
            py::gil_scoped_release nogil;
            s = sparse_assignment_cpu<StopFn>(ip, jp, costs.data(), nr, nc, out.mutable_data(), python_stop());
        }
        if (s == AssignStatus::cancelled) throw py::error_already_set();
        if (s == AssignStatus::infeasible) throw py::value_error("infeasible");
        return out;
    }, py::arg("indptr"), py::arg("indices"), py::arg("costs"), py::arg("n_rows"), py::arg("n_cols"),
       "Minimum-cost assignment of every row to a distinct column over a CSR candidate graph: col_for_row.");

    m.def("pairwise_topk", [](const py::array& A, const py::array& B, std::int64_t k, bool absolute,
                              const py::object& col_bias, const py::object& col_valid, bool excl,
                              py::array& values, py::array& indices, std::int64_t br, std::int64_t bc,
                              std::int64_t kc, int nt, bool clip) {
        if (k < 1) throw std::invalid_argument("k must be >= 1");
        if (is_f32(A)) topk<float>(A, B, k, absolute, col_bias, col_valid, excl, values, indices, br, bc, kc, nt, clip);
        else topk<double>(A, B, k, absolute, col_bias, col_valid, excl, values, indices, br, bc, kc, nt, clip);
    }, py::arg("A"), py::arg("B"), py::arg("k"), py::arg("absolute"), py::arg("col_bias"),
       py::arg("col_valid"), py::arg("exclude_diagonal"), py::arg("values"), py::arg("indices"),
       py::arg("block_rows"), py::arg("block_cols"), py::arg("k_chunk"), py::arg("num_threads"),
       py::arg("clip") = false);

    m.def("pairwise_threshold", [](const py::array& A, const py::array& B, double thr, bool absolute,
                                   const py::object& col_bias, const py::object& col_valid, bool excl,
                                   std::int64_t max_pairs, std::int64_t br, std::int64_t bc,
                                   std::int64_t kc, int nt, bool clip) {
        if (is_f32(A)) return threshold<float>(A, B, thr, absolute, col_bias, col_valid, excl, max_pairs, br, bc, kc, nt, clip);
        return threshold<double>(A, B, thr, absolute, col_bias, col_valid, excl, max_pairs, br, bc, kc, nt, clip);
    }, py::arg("A"), py::arg("B"), py::arg("threshold"), py::arg("absolute"), py::arg("col_bias"),
       py::arg("col_valid"), py::arg("exclude_diagonal"), py::arg("max_pairs"), py::arg("block_rows"),
       py::arg("block_cols"), py::arg("k_chunk"), py::arg("num_threads"), py::arg("clip") = false);

    m.def("scan_bf16_two_sided", &scan_bf16, py::arg("tile"), py::arg("i0"), py::arg("absolute"), py::arg("clip"),
          py::arg("col_valid"), py::arg("row_valid"), py::arg("na"), py::arg("row_lists"), py::arg("col_lists"),
          py::arg("num_threads"));
    m.def("self_join_screen", &self_join_py, py::arg("left"), py::arg("right"), py::arg("tile_rows"),
          py::arg("row_lists"), py::arg("col_lists"), py::arg("num_threads"));
    m.def("finalize_screen_lists", &finalize_py, py::arg("lists"), py::arg("n"), py::arg("num_threads"));
    m.def("mahalanobis_pairs", &mahalanobis_py, py::arg("points"), py::arg("factors"), py::arg("rows"),
          py::arg("cols"), py::arg("out"), py::arg("num_threads"));
    m.def("pack_label_planes", &pack_planes_py, py::arg("labels"), py::arg("planes"), py::arg("out"),
          py::arg("num_threads"));
    m.def("gram_popcount", &gram_popcount_py, py::arg("A"), py::arg("out"), py::arg("num_threads"));
    m.def("gram_equal_sliced", &gram_equal_sliced_py, py::arg("planes"), py::arg("valid"), py::arg("out"),
          py::arg("num_threads"));
    m.def("squared_distance_pairs", &squared_distances_py, py::arg("points"), py::arg("rows"), py::arg("cols"),
          py::arg("out"), py::arg("num_threads"));
    m.def("candidate_graph", &candidate_graph_py, py::arg("row_lists"), py::arg("p"), py::arg("col_lists"),
          py::arg("q"));
    m.def("pair_dot_products", &pair_dots, py::arg("At"), py::arg("Bt"), py::arg("rows"), py::arg("cols"),
          py::arg("out"), py::arg("num_threads"));
}
