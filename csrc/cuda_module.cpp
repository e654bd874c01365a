// pybind11 glue for congruence._cuda (binding code only). Device memory arrives as integer
// addresses (from torch / cupy / __cuda_array_interface__ / DLPack, unpacked in _arrays.py), the
// stream as the caller's cudaStream_t handle. The GIL is released around every call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "congruence/cuda_engine.hpp"
#include "congruence/device_query.hpp"

namespace py = pybind11;
using namespace congruence;
namespace cu = congruence::cuda;

namespace {

template <class T>
T* ptr(std::uintptr_t address) {
    return reinterpret_cast<T*>(address);
}

cu::Elem elem(int code, const char* name) {
    if (code < 0 || code > 3) throw std::invalid_argument(std::string(name) + ": unknown element code " + std::to_string(code));
    return static_cast<cu::Elem>(code);
}

cu::Precision precision(int code) {
    if (code < 0 || code > 4) throw std::invalid_argument("unknown precision code " + std::to_string(code));
    return static_cast<cu::Precision>(code);
}

cu::MatrixView view(std::uintptr_t data, int code, std::int64_t rows, std::int64_t cols,
                    std::int64_t rs, std::int64_t cs, const char* name) {
    if (rows < 0 || cols < 0) throw std::invalid_argument(std::string(name) + ": negative shape");
    cu::MatrixView v;
    v.data = ptr<const void>(data);
    v.elem = elem(code, name);
    v.rows = rows;
    v.cols = cols;
    v.row_stride = rs;
    v.col_stride = cs;
    return v;
}

cu::Panel panel(std::uintptr_t data, std::int64_t rows, std::int64_t k, std::int64_t ld, const char* name) {
    if (rows % cu::kPanelRowAlign || k % cu::kPanelKAlign || ld < k || rows <= 0 || k <= 0)
        throw std::invalid_argument(std::string(name) + ": panel must be padded (rows to " +
                                    std::to_string(cu::kPanelRowAlign) + ", k to " +
                                    std::to_string(cu::kPanelKAlign) + ") with ld >= k");
    cu::Panel p;
    p.data = ptr<const void>(data);
    p.rows = rows;
    p.k = k;
    p.ld = ld;
    return p;
}

cu::Epilogue epilogue(std::int64_t na, std::int64_t nb, bool absolute, std::uintptr_t col_bias,
                      std::uintptr_t col_valid, bool exclude_diagonal, double lo, double hi) {
    cu::Epilogue e;
    e.na = na;
    e.nb = nb;
    e.absolute = absolute;
    e.col_bias = ptr<const double>(col_bias);
    e.col_valid = ptr<const std::uint8_t>(col_valid);
    e.exclude_diagonal = exclude_diagonal;
    e.lo = lo;
    e.hi = hi;
    return e;
}

cu::Stream stream(int device, std::uintptr_t handle) {
    cu::Stream s;
    s.device = device;
    s.handle = handle;
    return s;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "congruence CUDA engine: column statistics, panels, and the tiled pairwise kernels "
              "(dense, top-k, threshold) on the caller's stream. Addresses are integers.";
    m.attr("cuda_architectures") = CONGRUENCE_CUDA_ARCHS;
    m.attr("compiler") = CONGRUENCE_CUDA_COMPILER;
    m.attr("panel_row_align") = cu::kPanelRowAlign;
    m.attr("panel_k_align") = cu::kPanelKAlign;
    m.attr("tile_rows") = cu::kTileRows;
    m.attr("tile_cols") = cu::kTileCols;
    m.attr("max_topk") = cu::kMaxTopK;
    m.attr("PRECISIONS") = py::make_tuple("float32", "tf32", "3xtf32", "bf16", "float64");

    m.def("query", []() {
        congruence::CudaQuery q = congruence::cuda_query();
        py::list devices;
        for (const auto& d : q.devices) {
            py::dict dd;
            dd["index"] = d.index;
            dd["name"] = d.name;
            dd["compute_capability"] = py::make_tuple(d.major, d.minor);
            dd["total_memory"] = d.total_memory;
            dd["multiprocessors"] = d.multiprocessors;
            devices.append(dd);
        }
        py::dict out;
        out["usable"] = q.usable;
        out["reason"] = q.reason;
        out["runtime_version"] = q.runtime_version;
        out["driver_version"] = q.driver_version;
        out["devices"] = devices;
        return out;
    }, "Query the CUDA driver and devices; never raises. Returns a dict.");

    m.def("device_properties", [](int device) {
        cu::DeviceProperties p;
        {
            py::gil_scoped_release nogil;
            p = cu::device_properties_cuda(device);
        }
        py::dict d;
        d["multiprocessors"] = p.multiprocessors;
        d["compute_capability"] = py::make_tuple(p.major, p.minor);
        d["shared_per_block_optin"] = p.shared_per_block_optin;
        d["total_memory"] = p.total_memory;
        return d;
    }, py::arg("device"));

    m.def("default_precision", [](int device) {
        py::gil_scoped_release nogil;
        return static_cast<int>(cu::default_precision_cuda(device));
    }, py::arg("device"), "Precision code (index into PRECISIONS) of the default mode on this device.");

    m.def("column_moments", [](int device, std::uintptr_t strm, std::uintptr_t data, int code,
                               std::int64_t rows, std::int64_t cols, std::int64_t rs, std::int64_t cs,
                               std::uintptr_t shift, std::uintptr_t mean, std::uintptr_t m2,
                               std::uintptr_t sumsq, std::uintptr_t sum_shifted) {
        const cu::MatrixView v = view(data, code, rows, cols, rs, cs, "X");
        if (rows < 1 || cols < 1) throw std::invalid_argument("column_moments: empty input");
        py::gil_scoped_release nogil;
        return cu::column_moments_cuda(stream(device, strm), v, ptr<const double>(shift), ptr<double>(mean),
                                       ptr<double>(m2), ptr<double>(sumsq), ptr<double>(sum_shifted));
    }, py::arg("device"), py::arg("stream"), py::arg("data"), py::arg("dtype"), py::arg("rows"),
       py::arg("cols"), py::arg("row_stride"), py::arg("col_stride"), py::arg("shift"), py::arg("mean"),
       py::arg("m2"), py::arg("sumsq"), py::arg("sum_shifted"),
       "Per-column float64 moments of a strided device matrix; returns False on NaN/Inf. Null outputs (0) are skipped.");

    m.def("standardize", [](int device, std::uintptr_t strm, std::uintptr_t data, int code,
                            std::int64_t rows, std::int64_t cols, std::int64_t rs, std::int64_t cs,
                            std::uintptr_t row_shift, std::uintptr_t col_shift, std::uintptr_t row_scale,
                            std::uintptr_t out, int out_code, std::int64_t out_rows, std::int64_t out_cols,
                            std::int64_t ld_out) {
        const cu::MatrixView v = view(data, code, rows, cols, rs, cs, "X");
        if (out_rows < rows || out_cols < cols || ld_out < out_cols)
            throw std::invalid_argument("standardize: output smaller than the input");
        py::gil_scoped_release nogil;
        cu::standardize_cuda(stream(device, strm), v, ptr<const double>(row_shift), ptr<const double>(col_shift),
                             ptr<const double>(row_scale), ptr<void>(out), elem(out_code, "out"), out_rows,
                             out_cols, ld_out);
    }, py::arg("device"), py::arg("stream"), py::arg("data"), py::arg("dtype"), py::arg("rows"),
       py::arg("cols"), py::arg("row_stride"), py::arg("col_stride"), py::arg("row_shift"),
       py::arg("col_shift"), py::arg("row_scale"), py::arg("out"), py::arg("out_dtype"),
       py::arg("out_rows"), py::arg("out_cols"), py::arg("ld_out"));

    m.def("pairwise_dense", [](int device, std::uintptr_t strm, int prec, std::uintptr_t a, std::int64_t a_rows,
                               std::uintptr_t b, std::int64_t b_rows, std::int64_t k, std::int64_t lda,
                               std::int64_t ldb, std::int64_t na, std::int64_t nb, double lo, double hi,
                               std::uintptr_t c, int out_code, std::int64_t ldc, bool accumulate,
                               bool symmetric) {
        const cu::Panel pa = panel(a, a_rows, k, lda, "A"), pb = panel(b, b_rows, k, ldb, "B");
        if (na > a_rows || nb > b_rows || ldc < nb) throw std::invalid_argument("pairwise_dense: shape mismatch");
        const cu::Elem oe = elem(out_code, "out");
        if (oe != cu::Elem::float32 && oe != cu::Elem::float64)
            throw std::invalid_argument("pairwise_dense: output must be float32 or float64");
        if (accumulate && oe != cu::Elem::float64)
            throw std::invalid_argument("pairwise_dense: accumulate needs a float64 output");
        const cu::Epilogue ep = epilogue(na, nb, false, 0, 0, false, lo, hi);
        py::gil_scoped_release nogil;
        cu::pairwise_dense_cuda(stream(device, strm), precision(prec), pa, pb, ep, ptr<void>(c), oe, ldc, accumulate,
                                symmetric);
    }, py::arg("device"), py::arg("stream"), py::arg("precision"), py::arg("a"), py::arg("a_rows"),
       py::arg("b"), py::arg("b_rows"), py::arg("k"), py::arg("lda"), py::arg("ldb"), py::arg("na"),
       py::arg("nb"), py::arg("lo"), py::arg("hi"), py::arg("out"), py::arg("out_dtype"), py::arg("ldc"),
       py::arg("accumulate"), py::arg("symmetric") = false,
       "Dense (or accumulated) A·Bᵀ; symmetric=True (A is B) computes the upper tiles and mirrors them.");

    m.def("pairwise_topk", [](int device, std::uintptr_t strm, int prec, std::uintptr_t a, std::int64_t a_rows,
                              std::uintptr_t b, std::int64_t b_rows, std::int64_t k_dim, std::int64_t lda,
                              std::int64_t ldb, std::int64_t na, std::int64_t nb, std::int64_t k, bool absolute,
                              std::uintptr_t col_bias, std::uintptr_t col_valid, bool exclude_diagonal,
                              double lo, double hi, std::uintptr_t values, std::uintptr_t indices, int segments,
                              std::uintptr_t scratch_values, std::uintptr_t scratch_indices) {
        const cu::Panel pa = panel(a, a_rows, k_dim, lda, "A"), pb = panel(b, b_rows, k_dim, ldb, "B");
        if (na > a_rows || nb > b_rows) throw std::invalid_argument("pairwise_topk: shape mismatch");
        if (k < 1 || k > cu::kMaxTopK)
            throw std::invalid_argument("pairwise_topk: k must be in [1, " + std::to_string(cu::kMaxTopK) + "]");
        if (segments < 1) throw std::invalid_argument("pairwise_topk: segments must be >= 1");
        const cu::Epilogue ep = epilogue(na, nb, absolute, col_bias, col_valid, exclude_diagonal, lo, hi);
        py::gil_scoped_release nogil;
        cu::pairwise_topk_cuda(stream(device, strm), precision(prec), pa, pb, ep, k, ptr<void>(values),
                               ptr<std::int64_t>(indices), segments, ptr<void>(scratch_values),
                               ptr<std::int32_t>(scratch_indices));
    }, py::arg("device"), py::arg("stream"), py::arg("precision"), py::arg("a"), py::arg("a_rows"),
       py::arg("b"), py::arg("b_rows"), py::arg("k_dim"), py::arg("lda"), py::arg("ldb"), py::arg("na"),
       py::arg("nb"), py::arg("k"), py::arg("absolute"), py::arg("col_bias"), py::arg("col_valid"),
       py::arg("exclude_diagonal"), py::arg("lo"), py::arg("hi"), py::arg("values"), py::arg("indices"),
       py::arg("segments"), py::arg("scratch_values"), py::arg("scratch_indices"));

    m.def("pairwise_threshold", [](int device, std::uintptr_t strm, int prec, std::uintptr_t a, std::int64_t a_rows,
                                   std::uintptr_t b, std::int64_t b_rows, std::int64_t k_dim, std::int64_t lda,
                                   std::int64_t ldb, std::int64_t na, std::int64_t nb, bool absolute,
                                   std::uintptr_t col_valid, bool exclude_diagonal, double lo, double hi,
                                   double threshold, std::uintptr_t rows, std::uintptr_t cols,
                                   std::uintptr_t values, std::int64_t capacity, std::uintptr_t counter) {
        const cu::Panel pa = panel(a, a_rows, k_dim, lda, "A"), pb = panel(b, b_rows, k_dim, ldb, "B");
        if (na > a_rows || nb > b_rows) throw std::invalid_argument("pairwise_threshold: shape mismatch");
        if (capacity < 0 || !counter) throw std::invalid_argument("pairwise_threshold: bad capacity/counter");
        const cu::Epilogue ep = epilogue(na, nb, absolute, 0, col_valid, exclude_diagonal, lo, hi);
        py::gil_scoped_release nogil;
        return cu::pairwise_threshold_cuda(stream(device, strm), precision(prec), pa, pb, ep, threshold,
                                           ptr<std::int64_t>(rows), ptr<std::int64_t>(cols), ptr<void>(values),
                                           capacity, ptr<unsigned long long>(counter));
    }, py::arg("device"), py::arg("stream"), py::arg("precision"), py::arg("a"), py::arg("a_rows"),
       py::arg("b"), py::arg("b_rows"), py::arg("k_dim"), py::arg("lda"), py::arg("ldb"), py::arg("na"),
       py::arg("nb"), py::arg("absolute"), py::arg("col_valid"), py::arg("exclude_diagonal"), py::arg("lo"),
       py::arg("hi"), py::arg("threshold"), py::arg("rows"), py::arg("cols"), py::arg("values"),
       py::arg("capacity"), py::arg("counter"),
       "Returns the number of qualifying pairs (may exceed capacity; then retry with more room).");

    m.def("reference_product", [](int device, std::uintptr_t strm, std::uintptr_t a, int a_code, std::int64_t K,
                                  std::int64_t na, std::int64_t a_rs, std::int64_t a_cs, std::uintptr_t b,
                                  int b_code, std::int64_t nb, std::int64_t b_rs, std::int64_t b_cs,
                                  std::uintptr_t c, std::int64_t ldc) {
        const cu::MatrixView va = view(a, a_code, K, na, a_rs, a_cs, "A");
        const cu::MatrixView vb = view(b, b_code, K, nb, b_rs, b_cs, "B");
        py::gil_scoped_release nogil;
        cu::reference_product_cuda(stream(device, strm), va, vb, ptr<double>(c), ldc);
    }, py::arg("device"), py::arg("stream"), py::arg("a"), py::arg("a_dtype"), py::arg("K"), py::arg("na"),
       py::arg("a_row_stride"), py::arg("a_col_stride"), py::arg("b"), py::arg("b_dtype"), py::arg("nb"),
       py::arg("b_row_stride"), py::arg("b_col_stride"), py::arg("out"), py::arg("ldc"),
       "Naive float64 oracle: out[i, j] = sum_k A[k, i] * B[k, j] over strided (K x n) views.");
}
