// The Python module nmmfit._C: non-tensor helpers only (no torch headers here). Linking it pulls in
// the TORCH_LIBRARY registrations of csrc/ops.cpp, so `import nmmfit._C` registers the ops.
#include <omp.h>
#include <pybind11/pybind11.h>

#include "interrupt.h"

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
#ifdef NMMFIT_TESTING
    d["testing_ops"] = true;
#else
    d["testing_ops"] = false;
#endif
    d["openmp_max_threads"] = omp_get_max_threads();
    d["openmp_version"] = _OPENMP;
    return d;
  }, "What the extension was built with: torch version, CUDA on/off and arch list, the test-only ops "
      "(nmmfit_testing::) on/off, OpenMP threads.");
  m.def("begin_interruptible", &nmmfit::begin_interruptible,
        "Main thread only: until end_interruptible, SIGINT sets a flag the CPU kernels check between checkpoint "
        "segments (they stop and the op raises) instead of running Python's handler.");
  m.def("end_interruptible", &nmmfit::end_interruptible,
        "Restores the SIGINT handler of before begin_interruptible; returns whether SIGINT arrived meanwhile.");
}
