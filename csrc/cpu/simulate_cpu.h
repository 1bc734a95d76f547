// CPU executor of the step program (include/nmmfit/program.h). Torch-free: raw pointers in, the
// torch-facing checks and allocation live in csrc/ops.cpp.
#pragma once
#include "nmmfit/params.h"

namespace nmmfit {

template <class T>
void simulate_forward_cpu(const ForwardArgs<T>& a);

template <class T>
void simulate_backward_cpu(const BackwardArgs<T>& a);

// The normals (xi_E, xi_I) of every (simulation, step, node): out [B, n_steps, 2, N].
template <class T>
void noise_cpu(uint64_t seed, const int64_t* stream, int64_t B, int64_t N, int64_t n_steps,
               uint64_t step_offset, T* out);

}  // namespace nmmfit
