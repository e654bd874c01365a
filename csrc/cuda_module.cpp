// pybind11 glue for congruence._cuda (binding code only).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "congruence/device_query.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "congruence CUDA backend (device query; kernels arrive with the CUDA backend issue)";
    m.attr("cuda_architectures") = CONGRUENCE_CUDA_ARCHS;
    m.attr("compiler") = CONGRUENCE_CUDA_COMPILER;
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
}
