// CPU emulation of the CUDA kernels, for testing them on machines without a GPU. Test-only: built
// under the CMake option NMMFIT_TESTING (on for `make test`, off for wheels), registered in the
// nmmfit_testing namespace.
//
// The bodies of block_program.h run here with a block runner that runs each barrier-delimited phase
// as a loop over the threads of the block (in a chosen order), per-thread variables as arrays
// indexed by thread, "shared memory" as a NaN-filled buffer per block, and the same launch plan,
// workspace layout and launch sequence (launch.h, block_backend.h) as the CUDA device. What is left
// untested without a GPU is the thin CUDA launch policy (threadIdx, __syncthreads, the kernel
// launches) in simulate_cuda.cu.
//
// Ops (CPU tensors, the schemas of the nmmfit ops, csrc/schema.h; no autograd):
//   nmmfit_testing::simulate, simulate_backward, noise,
//   nmmfit_testing::gpu_plan -> [sims_per_block, threads, groups, grid, W_in_smem, smem_bytes, workspace_bytes]
// Environment: NMMFIT_CUDA_SIMS_PER_BLOCK, NMMFIT_CUDA_W_SMEM (as on the GPU, see plan.h);
//   NMMFIT_EMU_SMS=<int> SMs of the emulated device (default 2: the backward grid is capped at what
//   the device holds, so blocks walk several groups); NMMFIT_EMU_BLOCKS_PER_SM=<int> (default 32);
//   NMMFIT_EMU_SMEM_PER_BLOCK=<bytes> (default 232448, an H100); NMMFIT_EMU_THREAD_ORDER=0|1|2:
//   threads of a phase run ascending, descending, or alternating per phase (a race inside a phase
//   changes the result with the order).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "block_backend.h"
#include "block_program.h"
#include "launch.h"
#include "ops.h"
#include "schema.h"

namespace nmmfit {
namespace gpu {
namespace {

// The block runner of block_program.h on the CPU: one block's threads run phase by phase.
struct EmulatedBlock {
  int n;
  int64_t blk, grd;
  int order;
  int64_t phases = 0;

  template <class V>
  struct Local {
    std::vector<V> v;
    explicit Local(const EmulatedBlock& x) : v(x.n) {}
    V& operator[](int tid) { return v[tid]; }
  };
  int nthreads() const { return n; }
  int64_t block() const { return blk; }
  int64_t grid() const { return grd; }
  template <class F>
  void phase(F&& f) {
    const bool down = order == 1 || (order == 2 && (phases & 1));
    ++phases;
    if (down) {
      for (int t = n - 1; t >= 0; --t) f(t);
    } else {
      for (int t = 0; t < n; ++t) f(t);
    }
  }
};

int env_int(const char* name, int fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::atoi(s) : fallback;
}

Limits emulated_limits() {
  Limits lim;
  lim.num_sms = env_int("NMMFIT_EMU_SMS", 2);
  lim.max_threads_per_sm = 2048;
  lim.max_blocks_per_sm = env_int("NMMFIT_EMU_BLOCKS_PER_SM", 32);
  lim.smem_per_block = env_int("NMMFIT_EMU_SMEM_PER_BLOCK", 232448);
  lim.smem_per_sm = lim.smem_per_block + 1024;
  return lim;
}

// Runs f(block runner, block index, shared memory) for every block of the grid, blocks in parallel; shared
// memory starts as NaN so that a read of anything not written shows in the results.
template <class T, class F>
void for_each_block(const Plan& p, int order, F&& f) {
  const size_t smem_words = static_cast<size_t>((p.smem_bytes + 7) / 8);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t blk = 0; blk < p.grid; ++blk) {
    std::vector<double> smem(smem_words, std::numeric_limits<double>::quiet_NaN());
    EmulatedBlock x{p.threads, blk, p.grid, order};
    f(x, blk, reinterpret_cast<T*>(smem.data()));
  }
}

// launch.h's policy on the CPU: the block program block by block, the transpose and the reduction as
// plain loops. Nothing fails here (errors are the planner's, checked before).
struct EmulatedLaunch {
  using Status = int;
  static constexpr Status success = 0;
  static bool ok(Status e) { return e == success; }
  int order;  // NMMFIT_EMU_THREAD_ORDER

  template <class T>
  Status transpose(const T* W, T* Wt, int64_t nb, int N) {
    const int64_t NN = int64_t(N) * N;
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) Wt[b * NN + j * N + i] = W[b * NN + i * N + j];
    return success;
  }
  template <class T>
  Status forward(const ForwardArgs<T>& a, const Plan& p, const T* Wt) {
    for_each_block<T>(p, order, [&](EmulatedBlock& x, int64_t, T* sm) { forward_block(x, a, a.z.cfg, p, Wt, sm); });
    return success;
  }
  template <class T>
  Status backward(const BackwardArgs<T>& a, const Plan& p, const T* Wt, double* G, T* seg) {
    for_each_block<T>(p, order, [&](EmulatedBlock& x, int64_t blk, T* sm) {
      backward_block(x, a, a.z.cfg, p, Wt, block_G(p, G, blk), block_segments(p, seg, blk), sm);
    });
    return success;
  }
  template <class T>
  Status reduce_grad_W(const double* G, int64_t slots, int N, int coupling, T* grad_W) {
    for (int64_t e = 0; e < int64_t(N) * N; ++e) reduce_grad_W_element(G, slots, N, coupling, e, grad_W);
    return success;
  }
};

// The emulated device of BlockBackend: CPU tensors, a NaN-filled workspace, the limits above.
struct EmulatedDevice {
  static constexpr const char* name = "CUDA emulation";
  static int enter(const at::Tensor& W) {
    TORCH_CHECK(W.is_cpu(), "W: the GPU emulation runs on CPU tensors");
    return 0;
  }
  static Limits limits(const at::Tensor&) { return emulated_limits(); }
  static at::Tensor workspace(const Plan& p, const at::Tensor&) {
    at::Tensor ws = at::empty({p.ws_bytes > 0 ? p.ws_bytes : 1}, at::TensorOptions().dtype(at::kByte));
    std::memset(ws.data_ptr(), 0xff, static_cast<size_t>(ws.numel()));
    return ws;
  }
  template <class T>
  static void forward(const ForwardArgs<T>& a, const Plan& p, void* ws) {
    EmulatedLaunch dev{env_int("NMMFIT_EMU_THREAD_ORDER", 0)};
    run_forward(dev, a, p, ws);
  }
  template <class T>
  static void backward(const BackwardArgs<T>& a, const Plan& p, void* ws) {
    EmulatedLaunch dev{env_int("NMMFIT_EMU_THREAD_ORDER", 0)};
    run_backward(dev, a, p, ws);
  }
};

using EmulatedBackend = BlockBackend<EmulatedDevice>;

at::Tensor noise_emulated(int64_t seed, const at::Tensor& stream_, int64_t N, int64_t n_steps, int64_t step_offset,
                          at::ScalarType dtype) {
  check_noise_args(seed, stream_, N, n_steps, step_offset, dtype);
  const at::Tensor stream = stream_.contiguous();
  const int64_t B = stream.size(0), total = B * n_steps * N;
  at::Tensor out = at::empty({B, n_steps, 2, N}, stream.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES(dtype, "nmmfit_testing::noise", [&] {
    for (int64_t e = 0; e < total; ++e)
      noise_element<scalar_t>(static_cast<uint64_t>(seed), stream.const_data_ptr<int64_t>(), N, n_steps,
                              static_cast<uint64_t>(step_offset), e, out.data_ptr<scalar_t>());
  });
  return out;
}

std::vector<int64_t> plan_emulated(int64_t B, int64_t N, int64_t n_steps, int64_t checkpoint_every, bool W_batched,
                                   at::ScalarType dtype, bool backward, bool need_grad_W) {
  TORCH_CHECK(B >= 1 && N >= 1 && n_steps >= 1 && checkpoint_every >= 1, "B, N, n_steps, checkpoint_every: expected >= 1");
  Sizes z{};
  z.B = B;
  z.N = N;
  z.n_steps = n_steps;
  z.steps_per_sample = 1;
  z.checkpoint_every = checkpoint_every < n_steps ? checkpoint_every : n_steps;
  const Plan p = checked_plan(EmulatedDevice::name, emulated_limits(), z, W_batched, dtype, backward, need_grad_W);
  return {p.spb, p.threads, p.groups, p.grid, p.w_smem ? 1 : 0, p.smem_bytes, p.ws_bytes};
}

}  // namespace
}  // namespace gpu

TORCH_LIBRARY(nmmfit_testing, m) {
  m.def(op_schema("simulate", kSimulateSignature).c_str());
  m.def(op_schema("simulate_backward", kSimulateBackwardSignature).c_str());
  m.def(op_schema("noise", kNoiseSignature).c_str());
  m.def(
      "gpu_plan(int B, int N, int n_steps, int checkpoint_every, bool W_batched, ScalarType dtype, bool backward, "
      "bool need_grad_W) -> int[]",
      &gpu::plan_emulated);
}

TORCH_LIBRARY_IMPL(nmmfit_testing, CPU, m) {
  m.impl("simulate", &simulate_op<gpu::EmulatedBackend>);
  m.impl("simulate_backward", &simulate_backward_op<gpu::EmulatedBackend>);
  m.impl("noise", &gpu::noise_emulated);
}

}  // namespace nmmfit
