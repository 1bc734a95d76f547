// Launchers of the CUDA device (simulate_cuda.cu: launch.h's sequence with the CUDA launch policy).
// Plain C++ with raw pointers and cudaStream_t: no torch headers, so the .cu compiles in seconds;
// ops_cuda.cpp (block_backend.h) checks, plans and allocates.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "nmmfit/params.h"
#include "plan.h"

namespace nmmfit {
namespace gpu {

// The planner's view of a device (cudaDeviceGetAttribute), cached per device.
cudaError_t device_limits(int device, Limits& out);

// Forward: fills a's outputs. workspace: p.ws_bytes bytes (p from make_plan(..., backward=false)).
template <class T>
cudaError_t simulate_forward_cuda(const ForwardArgs<T>& a, const Plan& p, void* workspace, cudaStream_t stream);

// Backward: fills grad_params, grad_state0, and grad_W when a.grad_W is not null (p.need_G).
template <class T>
cudaError_t simulate_backward_cuda(const BackwardArgs<T>& a, const Plan& p, void* workspace, cudaStream_t stream);

// The normals of every (simulation, step, node): out [B, n_steps, 2, N].
template <class T>
cudaError_t noise_cuda(uint64_t seed, const int64_t* stream_idx, int64_t B, int64_t N, int64_t n_steps,
                       uint64_t step_offset, T* out, cudaStream_t stream);

}  // namespace gpu
}  // namespace nmmfit
