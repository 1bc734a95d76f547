// Torch-facing pieces shared by the CPU and CUDA registrations of the nmmfit ops: argument checks
// and output allocation. Each executor (csrc/cpu, csrc/cuda) only fills ForwardArgs/BackwardArgs.
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

#include "nmmfit/params.h"

namespace nmmfit {

// Checks the inputs of nmmfit::simulate and returns the sizes. W [N, N] | [B, N, N];
// params [B, 6, N]; state0 [B, 6, N]; stream [B] int64.
Sizes check_simulate_inputs(const at::Tensor& W, const at::Tensor& params, const at::Tensor& state0,
                            const at::Tensor& stream, int64_t seed, int64_t step_offset, int64_t n_steps,
                            int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every,
                            bool noise, at::IntArrayRef switches, at::ArrayRef<double> scalars);

// Outputs of nmmfit::simulate: bold [B, S, N], E_rec [B, R, N], I_rec [B, R, N], state [B, 6, N],
// checkpoints [B, n_seg, 6, N].
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> empty_simulate_outputs(const Sizes& z,
                                                                                           const at::Tensor& like);

// Checks a cotangent: undefined (zero) or of the given shape, dtype and device.
void check_cotangent(const char* name, const at::Tensor& g, at::IntArrayRef shape, const at::Tensor& like);

}  // namespace nmmfit
