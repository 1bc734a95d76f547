// CUDA registrations of nmmfit::simulate, simulate_backward and noise: checks (shared with the CPU
// ops, csrc/ops.h), launch plan, workspace from torch's caching allocator, the launch on the
// current stream. The kernels themselves are in the torch-free simulate_cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops.h"
#include "simulate_cuda.h"

namespace nmmfit {
namespace {

template <class T>
const T* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

void check_cuda(const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), name, ": expected a CUDA tensor, got device ", t.device());
}

gpu::Plan plan_for(const Sizes& z, const at::Tensor& W, bool backward, bool need_grad_W) {
  gpu::Limits lim;
  C10_CUDA_CHECK(gpu::device_limits(W.get_device(), lim));
  gpu::Plan p;
  const char* err = gpu::make_plan(z, W.dim() == 3, static_cast<int>(W.element_size()), backward, need_grad_W, lim,
                                   gpu::overrides_from_env(), p);
  TORCH_CHECK(err == nullptr, "nmmfit (CUDA): ", err ? err : "", "; got N = ", z.N, " nodes, dtype ", W.scalar_type(),
              ", ", lim.smem_per_block, " bytes of shared memory per block on this device (largest N: 1024 in float32; ",
              "in float64 ", lim.smem_per_block / (21 * 8), " for gradients). Use the CPU op for larger networks.");
  return p;
}

at::Tensor workspace(const gpu::Plan& p, const at::Tensor& like) {
  return at::empty({p.ws_bytes > 0 ? p.ws_bytes : 1}, like.options().dtype(at::kByte));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> simulate_op_cuda(
    const at::Tensor& W_, const at::Tensor& params_, const at::Tensor& state0_, const at::Tensor& stream_,
    int64_t seed, int64_t step_offset, int64_t n_steps, int64_t steps_per_sample, int64_t record_every,
    int64_t checkpoint_every, bool noise, at::IntArrayRef switches, at::ArrayRef<double> scalars) {
  check_cuda("W", W_);
  const Sizes z = check_simulate_inputs(W_, params_, state0_, stream_, seed, step_offset, n_steps, steps_per_sample,
                                        record_every, checkpoint_every, noise, switches, scalars);
  const c10::cuda::CUDAGuard guard(W_.device());
  const at::Tensor W = W_.contiguous(), params = params_.contiguous(), state0 = state0_.contiguous(),
                   stream = stream_.contiguous();
  auto out = empty_simulate_outputs(z, W);
  const gpu::Plan p = plan_for(z, W, false, false);
  at::Tensor ws = workspace(p, W);
  const cudaStream_t cs = c10::cuda::getCurrentCUDAStream(W.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES(W.scalar_type(), "nmmfit::simulate (CUDA)", [&] {
    ForwardArgs<scalar_t> a{z, W.const_data_ptr<scalar_t>(), W.dim() == 3 ? z.N * z.N : 0,
                            params.const_data_ptr<scalar_t>(), state0.const_data_ptr<scalar_t>(),
                            stream.const_data_ptr<int64_t>(), std::get<0>(out).data_ptr<scalar_t>(),
                            std::get<1>(out).data_ptr<scalar_t>(), std::get<2>(out).data_ptr<scalar_t>(),
                            std::get<3>(out).data_ptr<scalar_t>(), std::get<4>(out).data_ptr<scalar_t>()};
    C10_CUDA_CHECK(gpu::simulate_forward_cuda(a, p, ws.data_ptr(), cs));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> simulate_backward_op_cuda(
    const std::optional<at::Tensor>& grad_bold_, const std::optional<at::Tensor>& grad_E_rec_,
    const std::optional<at::Tensor>& grad_I_rec_, const std::optional<at::Tensor>& grad_state_, const at::Tensor& W_,
    const at::Tensor& params_, const at::Tensor& stream_, const at::Tensor& checkpoints_, int64_t seed,
    int64_t step_offset, int64_t n_steps, int64_t steps_per_sample, int64_t record_every, int64_t checkpoint_every,
    bool noise, at::IntArrayRef switches, at::ArrayRef<double> scalars, bool need_grad_W) {
  check_cuda("W", W_);
  const c10::cuda::CUDAGuard guard(W_.device());
  const at::Tensor W = W_.contiguous(), params = params_.contiguous(), stream = stream_.contiguous(),
                   checkpoints = checkpoints_.contiguous();
  const Sizes z = check_simulate_inputs(W, params, params, stream, seed, step_offset, n_steps, steps_per_sample,
                                        record_every, checkpoint_every, noise, switches, scalars);
  auto cot = [&](const char* name, const std::optional<at::Tensor>& g, at::IntArrayRef shape) {
    at::Tensor t = g.has_value() ? g->contiguous() : at::Tensor();
    check_cotangent(name, t, shape, W);
    return t;
  };
  const at::Tensor gb = cot("grad_bold", grad_bold_, {z.B, z.n_samples(), z.N});
  const at::Tensor gE = cot("grad_E_rec", grad_E_rec_, {z.B, z.n_records(), z.N});
  const at::Tensor gI = cot("grad_I_rec", grad_I_rec_, {z.B, z.n_records(), z.N});
  const at::Tensor gs = cot("grad_state", grad_state_, {z.B, kNumVars, z.N});
  check_cotangent("checkpoints", checkpoints, {z.B, z.n_segments(), kNumVars, z.N}, W);
  at::Tensor grad_W = need_grad_W ? at::empty(W.sizes(), W.options()) : at::zeros(W.sizes(), W.options());
  at::Tensor grad_params = at::empty(params.sizes(), params.options());
  at::Tensor grad_state0 = at::empty(params.sizes(), params.options());
  const gpu::Plan p = plan_for(z, W, true, need_grad_W);
  at::Tensor ws = workspace(p, W);
  const cudaStream_t cs = c10::cuda::getCurrentCUDAStream(W.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES(W.scalar_type(), "nmmfit::simulate_backward (CUDA)", [&] {
    BackwardArgs<scalar_t> a{z,
                             W.const_data_ptr<scalar_t>(),
                             W.dim() == 3 ? z.N * z.N : 0,
                             params.const_data_ptr<scalar_t>(),
                             stream.const_data_ptr<int64_t>(),
                             checkpoints.const_data_ptr<scalar_t>(),
                             ptr_or_null<scalar_t>(gb),
                             ptr_or_null<scalar_t>(gE),
                             ptr_or_null<scalar_t>(gI),
                             ptr_or_null<scalar_t>(gs),
                             need_grad_W ? grad_W.data_ptr<scalar_t>() : nullptr,
                             grad_params.data_ptr<scalar_t>(),
                             grad_state0.data_ptr<scalar_t>()};
    C10_CUDA_CHECK(gpu::simulate_backward_cuda(a, p, ws.data_ptr(), cs));
  });
  return {grad_W, grad_params, grad_state0};
}

at::Tensor noise_op_cuda(int64_t seed, const at::Tensor& stream_, int64_t N, int64_t n_steps, int64_t step_offset,
                         at::ScalarType dtype) {
  TORCH_CHECK(seed >= 0, "seed: expected a non-negative int, got ", seed);
  TORCH_CHECK(stream_.scalar_type() == at::kLong && stream_.dim() == 1, "stream: expected an int64 tensor of shape [B]");
  check_cuda("stream", stream_);
  TORCH_CHECK(N >= 1 && n_steps >= 0 && step_offset >= 0,
              "N, n_steps, step_offset: expected N >= 1, n_steps >= 0, step_offset >= 0");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "dtype: expected float32 or float64, got ", dtype);
  const c10::cuda::CUDAGuard guard(stream_.device());
  const at::Tensor stream = stream_.contiguous();
  const int64_t B = stream.size(0);
  at::Tensor out = at::empty({B, n_steps, 2, N}, stream.options().dtype(dtype));
  const cudaStream_t cs = c10::cuda::getCurrentCUDAStream(stream.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES(dtype, "nmmfit::noise (CUDA)", [&] {
    C10_CUDA_CHECK(gpu::noise_cuda<scalar_t>(static_cast<uint64_t>(seed), stream.const_data_ptr<int64_t>(), B, N,
                                             n_steps, static_cast<uint64_t>(step_offset), out.data_ptr<scalar_t>(), cs));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(nmmfit, CUDA, m) {
  m.impl("simulate", &simulate_op_cuda);
  m.impl("simulate_backward", &simulate_backward_op_cuda);
  m.impl("noise", &noise_op_cuda);
}

}  // namespace nmmfit
