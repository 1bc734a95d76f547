// The op backend of the block program, written once for the CUDA device (ops_cuda.cpp) and its CPU
// emulation (emulate_cpu.cpp): plan against the device's limits, a workspace, dispatch on the dtype,
// run launch.h's sequence there. A Device provides (all static)
//   enter(W)                       a guard held for the call (device check, device guard)
//   Limits limits(W)               what the planner may use on W's device
//   at::Tensor workspace(p, W)     p.ws_bytes bytes on W's device
//   forward<T>(args, p, ws)        run_forward with the device's launch policy; throws on failure
//   backward<T>(args, p, ws)       run_backward likewise
//   const char* name               for messages
#pragma once
#include <ATen/Dispatch.h>

#include "ops.h"
#include "plan.h"

namespace nmmfit {
namespace gpu {

// The plan, or an error naming the sizes and the device's shared memory.
inline Plan checked_plan(const char* device, const Limits& lim, const Sizes& z, bool W_batched, at::ScalarType dtype,
                         bool backward, bool need_grad_W) {
  Plan p;
  const int elem = static_cast<int>(c10::elementSize(dtype));
  const char* err = make_plan(z, W_batched, elem, backward, need_grad_W, lim, overrides_from_env(), p);
  TORCH_CHECK(err == nullptr, "nmmfit (", device, "): ", err ? err : "", "; got N = ", z.N, " nodes, dtype ", dtype,
              ", ", lim.smem_per_block, " bytes of shared memory per block on this device (largest N: 1024 in ",
              "float32; in float64 ", lim.smem_per_block / (21 * 8), " for gradients). Use the CPU op for larger ",
              "networks.");
  return p;
}

template <class Device>
struct BlockBackend {
  static auto enter(const at::Tensor& W) { return Device::enter(W); }

  static void forward(const ForwardCall& c) {
    const Plan p =
        checked_plan(Device::name, Device::limits(c.W), c.z, c.W.dim() == 3, c.W.scalar_type(), false, false);
    at::Tensor ws = Device::workspace(p, c.W);
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate",
                               [&] { Device::forward(c.args<scalar_t>(), p, ws.data_ptr()); });
  }

  static void backward(const BackwardCall& c) {
    const Plan p =
        checked_plan(Device::name, Device::limits(c.W), c.z, c.W.dim() == 3, c.W.scalar_type(), true, c.need_grad_W);
    at::Tensor ws = Device::workspace(p, c.W);
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate_backward",
                               [&] { Device::backward(c.args<scalar_t>(), p, ws.data_ptr()); });
  }
};

}  // namespace gpu
}  // namespace nmmfit
