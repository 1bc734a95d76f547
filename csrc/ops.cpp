// TORCH_LIBRARY schemas of the nmmfit ops, their argument checks, and the CPU implementations.
// The autograd formula and the fake (meta) kernels are registered from python/nmmfit/ops.py.
#include "ops.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "cpu/simulate_cpu.h"
#include "interrupt.h"
#include "schema.h"

namespace nmmfit {

namespace {
void check_tensor(const char* name, const at::Tensor& t, at::IntArrayRef shape, const at::Tensor& like) {
  TORCH_CHECK(t.defined(), name, ": expected a tensor");
  TORCH_CHECK(t.sizes() == shape, name, ": expected shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, ": expected dtype ", like.scalar_type(), " (as W), got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == like.device(), name, ": expected device ", like.device(), " (as W), got ", t.device());
}
}  // namespace

void check_cotangent(const char* name, const at::Tensor& g, at::IntArrayRef shape, const at::Tensor& like) {
  if (g.defined()) check_tensor(name, g, shape, like);
}

Sizes check_simulate_inputs(const at::Tensor& W, const at::Tensor& params, const at::Tensor& state0,
                            const at::Tensor& stream, int64_t seed, int64_t step_offset, int64_t n_steps,
                            int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every,
                            bool noise, at::IntArrayRef switches, at::ArrayRef<double> scalars, const at::Tensor& u,
                            int64_t u_every) {
  TORCH_CHECK(W.dim() == 2 || W.dim() == 3, "W: expected shape [N, N] or [B, N, N], got ", W.sizes());
  TORCH_CHECK(W.scalar_type() == at::kFloat || W.scalar_type() == at::kDouble,
              "W: expected dtype float32 or float64, got ", W.scalar_type());
  const int64_t N = W.size(-1);
  TORCH_CHECK(N >= 1 && W.size(-2) == N, "W: expected a square coupling matrix, got ", W.sizes());
  TORCH_CHECK(params.dim() == 3, "params: expected shape [B, 6, N], got ", params.sizes());
  const int64_t B = params.size(0);
  TORCH_CHECK(B >= 1, "params: expected B >= 1 simulations");
  check_tensor("params", params, {B, kNumParams, N}, W);
  check_tensor("state0", state0, {B, kNumVars, N}, W);
  if (W.dim() == 3) check_tensor("W", W, {B, N, N}, W);
  TORCH_CHECK(stream.scalar_type() == at::kLong && stream.dim() == 1 && stream.size(0) == B,
              "stream: expected an int64 tensor of shape [", B, "], got ", stream.scalar_type(), " ", stream.sizes());
  TORCH_CHECK(stream.device() == W.device(), "stream: expected device ", W.device(), ", got ", stream.device());
  TORCH_CHECK(seed >= 0, "seed: expected a non-negative int, got ", seed);
  TORCH_CHECK(step_offset >= 0, "step_offset: expected a non-negative int, got ", step_offset);
  TORCH_CHECK(n_steps >= 1, "n_steps: expected an int >= 1, got ", n_steps);
  TORCH_CHECK(steps_per_sample >= 1, "steps_per_sample: expected an int >= 1, got ", steps_per_sample);
  TORCH_CHECK(record_every >= 0, "record_every: expected an int >= 0, got ", record_every);
  TORCH_CHECK(checkpoint_every >= 1, "checkpoint_every: expected an int >= 1, got ", checkpoint_every);
  TORCH_CHECK(switches.size() == 6, "switches: expected 6 ints (coupling, squash, rate, state_bound, hemo_bound, hemo_every)");
  TORCH_CHECK(scalars.size() == 3, "scalars: expected 3 floats (dt, hemo_dt, bold_scale)");
  TORCH_CHECK(switches[0] == kAdjacency || switches[0] == kLaplacian, "switches[0] (coupling): expected 0 or 1");
  TORCH_CHECK(switches[1] == kIdentity || switches[1] == kTanhRelu, "switches[1] (current_squash): expected 0 or 1");
  TORCH_CHECK(switches[2] == kStandard || switches[2] == kGriffiths, "switches[2] (rate): expected 0 or 1");
  TORCH_CHECK(switches[3] == kClamp01 || switches[3] == kTanhReluBound, "switches[3] (state_bound): expected 0 or 1");
  TORCH_CHECK(switches[4] == 0 || switches[4] == 1, "switches[4] (hemo_bound): expected 0 or 1");
  TORCH_CHECK(switches[5] >= 1, "switches[5] (hemo_every): expected an int >= 1");
  TORCH_CHECK(scalars[0] > 0 && scalars[1] > 0, "scalars: expected dt > 0 and hemo_dt > 0");
  TORCH_CHECK(u_every >= 1, "u_every: expected an int >= 1, got ", u_every);
  const int64_t n_u = u.defined() ? (n_steps + u_every - 1) / u_every : 0;
  if (u.defined()) check_tensor("u", u, {B, n_u, N}, W);
  Sizes z{};
  z.B = B;
  z.N = N;
  z.n_steps = n_steps;
  z.steps_per_sample = steps_per_sample;
  z.record_every = record_every;
  z.checkpoint_every = std::min(checkpoint_every, n_steps);
  z.seed = static_cast<uint64_t>(seed);
  z.step_offset = static_cast<uint64_t>(step_offset);
  z.noise = noise;
  z.u_every = u_every;
  z.n_u = n_u;
  z.cfg = Config{int(switches[0]), int(switches[1]), int(switches[2]), int(switches[3]), int(switches[4]),
                 int(switches[5]), scalars[0], scalars[1], scalars[2]};
  return z;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> empty_simulate_outputs(const Sizes& z,
                                                                                           const at::Tensor& like) {
  const auto o = like.options();
  return {at::empty({z.B, z.n_samples(), z.N}, o), at::empty({z.B, z.n_records(), z.N}, o),
          at::empty({z.B, z.n_records(), z.N}, o), at::empty({z.B, kNumVars, z.N}, o),
          at::empty({z.B, z.n_segments(), kNumVars, z.N}, o)};
}

ForwardCall prepare_forward(const at::Tensor& W, const at::Tensor& params, const at::Tensor& state0,
                            const at::Tensor& stream, int64_t seed, int64_t step_offset, int64_t n_steps,
                            int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every, bool noise,
                            at::IntArrayRef switches, at::ArrayRef<double> scalars, const std::optional<at::Tensor>& u,
                            int64_t u_every) {
  ForwardCall c;
  c.u = u.has_value() ? u->contiguous() : at::Tensor();
  c.z = check_simulate_inputs(W, params, state0, stream, seed, step_offset, n_steps, steps_per_sample, record_every,
                              checkpoint_every, noise, switches, scalars, c.u, u_every);
  c.W = W.contiguous();
  c.params = params.contiguous();
  c.state0 = state0.contiguous();
  c.stream = stream.contiguous();
  std::tie(c.bold, c.E_rec, c.I_rec, c.state, c.checkpoints) = empty_simulate_outputs(c.z, c.W);
  return c;
}

BackwardCall prepare_backward(const std::optional<at::Tensor>& grad_bold, const std::optional<at::Tensor>& grad_E_rec,
                              const std::optional<at::Tensor>& grad_I_rec, const std::optional<at::Tensor>& grad_state,
                              const at::Tensor& W, const at::Tensor& params, const at::Tensor& stream,
                              const at::Tensor& checkpoints, int64_t seed, int64_t step_offset, int64_t n_steps,
                              int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every, bool noise,
                              at::IntArrayRef switches, at::ArrayRef<double> scalars, bool need_grad_W,
                              const std::optional<at::Tensor>& u, int64_t u_every) {
  BackwardCall c;
  c.W = W.contiguous();
  c.params = params.contiguous();
  c.stream = stream.contiguous();
  c.u = u.has_value() ? u->contiguous() : at::Tensor();
  c.checkpoints = checkpoints.contiguous();
  c.need_grad_W = need_grad_W;
  c.z = check_simulate_inputs(c.W, c.params, c.params, c.stream, seed, step_offset, n_steps, steps_per_sample,
                              record_every, checkpoint_every, noise, switches, scalars, c.u, u_every);
  const Sizes& z = c.z;
  auto cotangent = [&](const char* name, const std::optional<at::Tensor>& g, at::IntArrayRef shape) {
    at::Tensor t = g.has_value() ? g->contiguous() : at::Tensor();
    check_cotangent(name, t, shape, c.W);
    return t;
  };
  c.grad_bold = cotangent("grad_bold", grad_bold, {z.B, z.n_samples(), z.N});
  c.grad_E_rec = cotangent("grad_E_rec", grad_E_rec, {z.B, z.n_records(), z.N});
  c.grad_I_rec = cotangent("grad_I_rec", grad_I_rec, {z.B, z.n_records(), z.N});
  c.grad_state = cotangent("grad_state", grad_state, {z.B, kNumVars, z.N});
  check_cotangent("checkpoints", c.checkpoints, {z.B, z.n_segments(), kNumVars, z.N}, c.W);
  c.grad_W = need_grad_W ? at::empty(c.W.sizes(), c.W.options()) : at::zeros(c.W.sizes(), c.W.options());
  c.grad_params = at::empty(c.params.sizes(), c.params.options());
  c.grad_state0 = at::empty(c.params.sizes(), c.params.options());
  // summed over each row's steps by the executors; [B, 0, N] without an input
  c.grad_u = at::zeros({z.B, z.n_u, z.N}, c.params.options());
  return c;
}

void check_noise_args(int64_t seed, const at::Tensor& stream, int64_t N, int64_t n_steps, int64_t step_offset,
                      at::ScalarType dtype) {
  TORCH_CHECK(seed >= 0, "seed: expected a non-negative int, got ", seed);
  TORCH_CHECK(stream.scalar_type() == at::kLong && stream.dim() == 1, "stream: expected an int64 tensor of shape [B]");
  TORCH_CHECK(N >= 1 && n_steps >= 0 && step_offset >= 0,
              "N, n_steps, step_offset: expected N >= 1, n_steps >= 0, step_offset >= 0");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "dtype: expected float32 or float64, got ", dtype);
}

namespace {

// The executor stops between checkpoint segments on SIGINT (interrupt.h): its outputs are then
// incomplete, so the op raises; python/nmmfit/ops.py turns this into KeyboardInterrupt.
void check_not_interrupted() { TORCH_CHECK(!interrupt_requested(), "nmmfit: interrupted (SIGINT)"); }

// The CPU op backend: the executor of csrc/cpu, OpenMP over simulations on the calling thread's pool.
struct CpuBackend {
  static int enter(const at::Tensor&) { return 0; }
  static void forward(const ForwardCall& c) {
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate", [&] { simulate_forward_cpu(c.args<scalar_t>()); });
    check_not_interrupted();
  }
  static void backward(const BackwardCall& c) {
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate_backward",
                               [&] { simulate_backward_cpu(c.args<scalar_t>()); });
    check_not_interrupted();
  }
};

at::Tensor noise_op_cpu(int64_t seed, const at::Tensor& stream_, int64_t N, int64_t n_steps, int64_t step_offset,
                        at::ScalarType dtype) {
  check_noise_args(seed, stream_, N, n_steps, step_offset, dtype);
  const at::Tensor stream = stream_.contiguous();
  const int64_t B = stream.size(0);
  at::Tensor out = at::empty({B, n_steps, 2, N}, stream.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES(dtype, "nmmfit::noise", [&] {
    noise_cpu<scalar_t>(static_cast<uint64_t>(seed), stream.const_data_ptr<int64_t>(), B, N, n_steps,
                        static_cast<uint64_t>(step_offset), out.data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(nmmfit, m) {
  m.def(op_schema("simulate", kSimulateSignature).c_str());
  m.def(op_schema("simulate_backward", kSimulateBackwardSignature).c_str());
  m.def(op_schema("noise", kNoiseSignature).c_str());
}

TORCH_LIBRARY_IMPL(nmmfit, CPU, m) {
  m.impl("simulate", &simulate_op<CpuBackend>);
  m.impl("simulate_backward", &simulate_backward_op<CpuBackend>);
  m.impl("noise", &noise_op_cpu);
}

}  // namespace nmmfit
