// CUDA registrations of nmmfit::simulate, simulate_backward and noise: checks (shared with the CPU
// ops, csrc/ops.h), then BlockBackend (block_backend.h: plan, workspace from torch's caching
// allocator) over the CUDA device. The kernels themselves are in the torch-free simulate_cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "block_backend.h"
#include "ops.h"
#include "simulate_cuda.h"

namespace nmmfit {
namespace {

void check_cuda(const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), name, ": expected a CUDA tensor, got device ", t.device());
}

// The CUDA device of BlockBackend: the kernels on the current stream of W's device, the workspace
// from torch's caching allocator.
struct CudaDevice {
  static constexpr const char* name = "CUDA";
  static c10::cuda::CUDAGuard enter(const at::Tensor& W) {
    check_cuda("W", W);
    return c10::cuda::CUDAGuard(W.device());
  }
  static gpu::Limits limits(const at::Tensor& W) {
    gpu::Limits lim;
    C10_CUDA_CHECK(gpu::device_limits(W.get_device(), lim));
    return lim;
  }
  static at::Tensor workspace(const gpu::Plan& p, const at::Tensor& W) {
    return at::empty({p.ws_bytes > 0 ? p.ws_bytes : 1}, W.options().dtype(at::kByte));
  }
  template <class T>
  static void forward(const ForwardArgs<T>& a, const gpu::Plan& p, void* ws) {
    C10_CUDA_CHECK(gpu::simulate_forward_cuda(a, p, ws, c10::cuda::getCurrentCUDAStream().stream()));
  }
  template <class T>
  static void backward(const BackwardArgs<T>& a, const gpu::Plan& p, void* ws) {
    C10_CUDA_CHECK(gpu::simulate_backward_cuda(a, p, ws, c10::cuda::getCurrentCUDAStream().stream()));
  }
};

using CudaBackend = gpu::BlockBackend<CudaDevice>;

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
  m.impl("simulate", &simulate_op<CudaBackend>);
  m.impl("simulate_backward", &simulate_backward_op<CudaBackend>);
  m.impl("noise", &noise_op_cuda);
}

}  // namespace nmmfit
