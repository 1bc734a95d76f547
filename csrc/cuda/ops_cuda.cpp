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

// The CUDA executor: the launch plan, a workspace from torch's caching allocator, the kernels on the
// current stream of W's device.
struct CudaExec {
  static c10::cuda::CUDAGuard enter(const at::Tensor& W) {
    check_cuda("W", W);
    return c10::cuda::CUDAGuard(W.device());
  }
  static void forward(const ForwardCall& c) {
    const gpu::Plan p = plan_for(c.z, c.W, false, false);
    at::Tensor ws = workspace(p, c.W);
    const cudaStream_t cs = c10::cuda::getCurrentCUDAStream(c.W.get_device()).stream();
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate (CUDA)", [&] {
      C10_CUDA_CHECK(gpu::simulate_forward_cuda(c.args<scalar_t>(), p, ws.data_ptr(), cs));
    });
  }
  static void backward(const BackwardCall& c) {
    const gpu::Plan p = plan_for(c.z, c.W, true, c.need_grad_W);
    at::Tensor ws = workspace(p, c.W);
    const cudaStream_t cs = c10::cuda::getCurrentCUDAStream(c.W.get_device()).stream();
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate_backward (CUDA)", [&] {
      C10_CUDA_CHECK(gpu::simulate_backward_cuda(c.args<scalar_t>(), p, ws.data_ptr(), cs));
    });
  }
};

at::Tensor noise_op_cuda(int64_t seed, const at::Tensor& stream_, int64_t N, int64_t n_steps, int64_t step_offset,
                         at::ScalarType dtype) {
  check_noise_args(seed, stream_, N, n_steps, step_offset, dtype);
  check_cuda("stream", stream_);
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
  m.impl("simulate", &simulate_op<CudaExec>);
  m.impl("simulate_backward", &simulate_backward_op<CudaExec>);
  m.impl("noise", &noise_op_cuda);
}

}  // namespace nmmfit
