// The Python module nmmfit._C: non-tensor helpers only (no torch headers here). Linking it pulls in
// the TORCH_LIBRARY registrations of csrc/ops.cpp, so `import nmmfit._C` registers the ops.
#include <omp.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "nmmfit compiled extension: registers the nmmfit:: torch ops";
  m.def("build_info", [] {
    py::dict d;
    d["torch_version"] = NMMFIT_TORCH_VERSION;
#ifdef NMMFIT_WITH_CUDA
    d["cuda"] = true;
    d["cuda_archs"] = NMMFIT_CUDA_ARCHS;
#else
    d["cuda"] = false;
    d["cuda_archs"] = "";
#endif
    d["openmp_max_threads"] = omp_get_max_threads();
    d["openmp_version"] = _OPENMP;
    return d;
  }, "What the extension was built with: torch version, CUDA on/off and arch list, OpenMP threads.");
}
