// Torch-facing pieces shared by the CPU and CUDA registrations of the nmmfit ops: argument checks
// and output allocation. Each executor (csrc/cpu, csrc/cuda) only fills ForwardArgs/BackwardArgs.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include "nmmfit/params.h"

namespace nmmfit {

// Checks the inputs of nmmfit::simulate and returns the sizes. W [N, N] | [B, N, N];
// params [B, 6, N]; state0 [B, 6, N]; stream [B] int64; u [B, ceil(n_steps / u_every), N] or undefined.
Sizes check_simulate_inputs(const at::Tensor& W, const at::Tensor& params, const at::Tensor& state0,
                            const at::Tensor& stream, int64_t seed, int64_t step_offset, int64_t n_steps,
                            int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every,
                            bool noise, at::IntArrayRef switches, at::ArrayRef<double> scalars, const at::Tensor& u,
                            int64_t u_every);

// Outputs of nmmfit::simulate: bold [B, S, N], E_rec [B, R, N], I_rec [B, R, N], state [B, 6, N],
// checkpoints [B, n_seg, 6, N].
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> empty_simulate_outputs(const Sizes& z,
                                                                                           const at::Tensor& like);

// Checks a cotangent: undefined (zero) or of the given shape, dtype and device.
void check_cotangent(const char* name, const at::Tensor& g, at::IntArrayRef shape, const at::Tensor& like);

template <class T>
const T* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

// One call of nmmfit::simulate, checked: contiguous inputs and freshly allocated outputs. Every
// executor's wrapper (CPU, CUDA, the GPU emulation) starts from this and fills ForwardArgs<T>.
// A CUDA wrapper sets its device guard first (contiguous() may copy on the device).
struct ForwardCall {
  Sizes z;
  at::Tensor W, params, state0, stream;                // [N, N] | [B, N, N]; [B, 6, N]; [B, 6, N]; [B]
  at::Tensor u;                                        // [B, n_u, N] or undefined
  at::Tensor bold, E_rec, I_rec, state, checkpoints;   // [B, S, N]; [B, R, N] x 2; [B, 6, N]; [B, n_seg, 6, N]

  template <class T>
  ForwardArgs<T> args() const {
    return ForwardArgs<T>{z, W.const_data_ptr<T>(), W.dim() == 3 ? z.N * z.N : 0, params.const_data_ptr<T>(),
                          state0.const_data_ptr<T>(), stream.const_data_ptr<int64_t>(), ptr_or_null<T>(u),
                          bold.data_ptr<T>(), E_rec.data_ptr<T>(), I_rec.data_ptr<T>(), state.data_ptr<T>(),
                          checkpoints.data_ptr<T>()};
  }
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> outputs() const {
    return {bold, E_rec, I_rec, state, checkpoints};
  }
};

ForwardCall prepare_forward(const at::Tensor& W, const at::Tensor& params, const at::Tensor& state0,
                            const at::Tensor& stream, int64_t seed, int64_t step_offset, int64_t n_steps,
                            int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every, bool noise,
                            at::IntArrayRef switches, at::ArrayRef<double> scalars, const std::optional<at::Tensor>& u,
                            int64_t u_every);

// One call of nmmfit::simulate_backward, checked: contiguous inputs and cotangents (undefined where
// the output got no gradient) and freshly allocated gradients.
struct BackwardCall {
  Sizes z;
  bool need_grad_W;
  at::Tensor W, params, stream, u, checkpoints;               // as ForwardCall
  at::Tensor grad_bold, grad_E_rec, grad_I_rec, grad_state;   // cotangents of the forward outputs
  at::Tensor grad_W, grad_params, grad_state0, grad_u;        // [W's shape]; [B, 6, N]; [B, 6, N]; [B, n_u, N]

  template <class T>
  BackwardArgs<T> args() const {
    return BackwardArgs<T>{z,
                           W.const_data_ptr<T>(),
                           W.dim() == 3 ? z.N * z.N : 0,
                           params.const_data_ptr<T>(),
                           stream.const_data_ptr<int64_t>(),
                           ptr_or_null<T>(u),
                           checkpoints.const_data_ptr<T>(),
                           ptr_or_null<T>(grad_bold),
                           ptr_or_null<T>(grad_E_rec),
                           ptr_or_null<T>(grad_I_rec),
                           ptr_or_null<T>(grad_state),
                           need_grad_W ? grad_W.data_ptr<T>() : nullptr,
                           grad_params.data_ptr<T>(),
                           grad_state0.data_ptr<T>(),
                           u.defined() ? grad_u.data_ptr<T>() : nullptr};
  }
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> outputs() const {
    return {grad_W, grad_params, grad_state0, grad_u};
  }
};

BackwardCall prepare_backward(const std::optional<at::Tensor>& grad_bold, const std::optional<at::Tensor>& grad_E_rec,
                              const std::optional<at::Tensor>& grad_I_rec, const std::optional<at::Tensor>& grad_state,
                              const at::Tensor& W, const at::Tensor& params, const at::Tensor& stream,
                              const at::Tensor& checkpoints, int64_t seed, int64_t step_offset, int64_t n_steps,
                              int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every, bool noise,
                              at::IntArrayRef switches, at::ArrayRef<double> scalars, bool need_grad_W,
                              const std::optional<at::Tensor>& u, int64_t u_every);

// The simulate / simulate_backward op functions, spelled once for every op backend (CPU executor,
// CUDA device, its CPU emulation). Backend provides
//   enter(W)          a guard held for the call (CUDA: device check and device guard), set before
//                     prepare_forward/backward because contiguous() may copy on the device;
//   forward(call)     runs the forward time loop of a checked ForwardCall;
//   backward(call)    runs the adjoint of a checked BackwardCall.
template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> simulate_op(
    const at::Tensor& W, const at::Tensor& params, const at::Tensor& state0, const at::Tensor& stream, int64_t seed,
    int64_t step_offset, int64_t n_steps, int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every,
    bool noise, at::IntArrayRef switches, at::ArrayRef<double> scalars, const std::optional<at::Tensor>& u,
    int64_t u_every) {
  const auto guard = Backend::enter(W);
  const ForwardCall c = prepare_forward(W, params, state0, stream, seed, step_offset, n_steps, steps_per_sample,
                                        record_every, checkpoint_every, noise, switches, scalars, u, u_every);
  Backend::forward(c);
  return c.outputs();
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> simulate_backward_op(
    const std::optional<at::Tensor>& grad_bold, const std::optional<at::Tensor>& grad_E_rec,
    const std::optional<at::Tensor>& grad_I_rec, const std::optional<at::Tensor>& grad_state, const at::Tensor& W,
    const at::Tensor& params, const at::Tensor& stream, const at::Tensor& checkpoints, int64_t seed,
    int64_t step_offset, int64_t n_steps, int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every,
    bool noise, at::IntArrayRef switches, at::ArrayRef<double> scalars, bool need_grad_W,
    const std::optional<at::Tensor>& u, int64_t u_every) {
  const auto guard = Backend::enter(W);
  const BackwardCall c = prepare_backward(grad_bold, grad_E_rec, grad_I_rec, grad_state, W, params, stream, checkpoints,
                                          seed, step_offset, n_steps, steps_per_sample, record_every, checkpoint_every,
                                          noise, switches, scalars, need_grad_W, u, u_every);
  Backend::backward(c);
  return c.outputs();
}

// Checks the arguments of nmmfit::noise (stream [B] int64).
void check_noise_args(int64_t seed, const at::Tensor& stream, int64_t N, int64_t n_steps, int64_t step_offset,
                      at::ScalarType dtype);

}  // namespace nmmfit
