// The op signatures, spelled once. TORCH_LIBRARY(nmmfit) defines simulate, simulate_backward and noise
// with them, and the test-only emulation ops (nmmfit_testing::, csrc/cuda/emulate_cpu.cpp) take the
// same ones; at registration torch checks every C++ implementation against the schema it is bound
// to. python/nmmfit/ops.py reads argument positions by name from the registered schema.
#pragma once
#include <string>

namespace nmmfit {

inline constexpr const char* kSimulateSignature =
    "(Tensor W, Tensor params, Tensor state0, Tensor stream, int seed, int step_offset, int n_steps, "
    "int steps_per_sample, int record_every, int checkpoint_every, bool noise, int[] switches, float[] scalars, "
    "Tensor? u=None, int u_every=1) -> (Tensor bold, Tensor E_rec, Tensor I_rec, Tensor state, Tensor checkpoints)";

inline constexpr const char* kSimulateBackwardSignature =
    "(Tensor? grad_bold, Tensor? grad_E_rec, Tensor? grad_I_rec, Tensor? grad_state, Tensor W, Tensor params, "
    "Tensor stream, Tensor checkpoints, int seed, int step_offset, int n_steps, int steps_per_sample, "
    "int record_every, int checkpoint_every, bool noise, int[] switches, float[] scalars, bool need_grad_W, "
    "Tensor? u=None, int u_every=1) -> (Tensor grad_W, Tensor grad_params, Tensor grad_state0, Tensor grad_u)";

inline constexpr const char* kNoiseSignature =
    "(int seed, Tensor stream, int N, int n_steps, int step_offset, ScalarType dtype) -> Tensor";

// "name(args) -> returns" for m.def (which parses it at once: pass .c_str()).
inline std::string op_schema(const char* name, const char* signature) { return std::string(name) + signature; }

}  // namespace nmmfit
