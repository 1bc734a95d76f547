// CPU emulation of the CUDA kernels, for testing them on machines without a GPU.
//
// The bodies of block_program.h run here with an executor that runs each barrier-delimited phase
// as a loop over the threads of the block (in a chosen order), per-thread variables as arrays
// indexed by thread, "shared memory" as a NaN-filled buffer per block, and the same launch plan,
// workspace layout and reductions as the CUDA launcher. What is left untested without a GPU is the
// thin CUDA executor (threadIdx, __syncthreads, the launches) in simulate_cuda.cu.
//
// Ops (CPU tensors, same schemas as the real ones; test-only, no autograd):
//   nmmfit::simulate_gpu_emulated, nmmfit::simulate_backward_gpu_emulated, nmmfit::noise_gpu_emulated,
//   nmmfit::gpu_plan_emulated -> [sims_per_block, threads, groups, grid, W_in_smem, smem_bytes, workspace_bytes]
// Environment: NMMFIT_CUDA_SIMS_PER_BLOCK, NMMFIT_CUDA_W_SMEM (as on the GPU, see plan.h);
//   NMMFIT_EMU_SMS=<int> SMs of the emulated device (default 2: the backward grid is capped at what
//   the device holds, so blocks walk several groups); NMMFIT_EMU_BLOCKS_PER_SM=<int> (default 32);
//   NMMFIT_EMU_SMEM_PER_BLOCK=<bytes> (default
//   232448, an H100); NMMFIT_EMU_THREAD_ORDER=0|1|2: threads of a phase run ascending, descending, or
//   alternating per phase (a race inside a phase changes the result with the order).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "block_program.h"
#include "ops.h"

namespace nmmfit {
namespace gpu {
namespace {

struct EmuExec {
  int n;
  int64_t blk, grd;
  int order;
  int64_t phases = 0;

  template <class V>
  struct Local {
    std::vector<V> v;
    explicit Local(const EmuExec& x) : v(x.n) {}
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

Plan plan_for(const Sizes& z, bool W_batched, int elem, bool backward, bool need_grad_W) {
  Plan p;
  const Limits lim = emulated_limits();
  const char* err = make_plan(z, W_batched, elem, backward, need_grad_W, lim, overrides_from_env(), p);
  TORCH_CHECK(err == nullptr, "nmmfit (CUDA emulation): ", err ? err : "", "; got N = ", z.N, ", ",
              lim.smem_per_block, " bytes of shared memory per block");
  return p;
}

// Workspace and shared memory start as NaN (all bits set) so that a read of anything the kernel
// did not write shows in the results.
at::Tensor nan_workspace(const Plan& p) {
  at::Tensor ws = at::empty({p.ws_bytes > 0 ? p.ws_bytes : 1}, at::TensorOptions().dtype(at::kByte));
  std::memset(ws.data_ptr(), 0xff, static_cast<size_t>(ws.numel()));
  return ws;
}

template <class T>
const T* transpose_into(const T* W, int64_t nb, int N, char* ws, const Plan& p) {
  if (p.w_smem) return nullptr;
  T* Wt = reinterpret_cast<T*>(ws + p.ws_Wt);
  const int64_t NN = int64_t(N) * N;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) Wt[b * NN + j * N + i] = W[b * NN + i * N + j];
  return Wt;
}

template <class T>
void forward_emulated(const ForwardArgs<T>& a, const Plan& p, char* ws, int order) {
  const T* Wt = transpose_into(a.W, a.W_bstride ? a.z.B : 1, p.N, ws, p);
  const size_t smem_words = static_cast<size_t>((p.smem_bytes + 7) / 8);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t blk = 0; blk < p.grid; ++blk) {
    std::vector<double> smem(smem_words, std::numeric_limits<double>::quiet_NaN());
    EmuExec x{p.threads, blk, p.grid, order};
    forward_block(x, a, a.z.cfg, p, Wt, reinterpret_cast<T*>(smem.data()));
  }
}

template <class T>
void backward_emulated(const BackwardArgs<T>& a, const Plan& p, char* ws, int order) {
  const T* Wt = transpose_into(a.W, a.W_bstride ? a.z.B : 1, p.N, ws, p);
  double* G = reinterpret_cast<double*>(ws + p.ws_G);
  T* seg = reinterpret_cast<T*>(ws + p.ws_seg);
  const size_t smem_words = static_cast<size_t>((p.smem_bytes + 7) / 8);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t blk = 0; blk < p.grid; ++blk) {
    std::vector<double> smem(smem_words, std::numeric_limits<double>::quiet_NaN());
    EmuExec x{p.threads, blk, p.grid, order};
    backward_block(x, a, a.z.cfg, p, Wt, G + blk * p.G_elems, seg + blk * p.spb * p.seg_elems,
                   reinterpret_cast<T*>(smem.data()));
  }
  if (p.need_G && p.shared_W) {
    const int64_t NN = int64_t(p.N) * p.N;
    for (int64_t e = 0; e < NN; ++e) reduce_grad_W_element(G, p.grid, p.N, a.z.cfg.coupling, e, a.grad_W);
  }
}

// The CUDA kernels' block code run on the CPU, block by block, threads of a phase in the order set
// by NMMFIT_EMU_THREAD_ORDER, on a NaN-filled workspace.
struct EmulatedExec {
  static int enter(const at::Tensor& W) {
    TORCH_CHECK(W.is_cpu(), "W: the GPU emulation runs on CPU tensors");
    return 0;
  }
  static void forward(const ForwardCall& c) {
    const Plan p = plan_for(c.z, c.W.dim() == 3, static_cast<int>(c.W.element_size()), false, false);
    at::Tensor ws = nan_workspace(p);
    const int order = env_int("NMMFIT_EMU_THREAD_ORDER", 0);
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate_gpu_emulated", [&] {
      forward_emulated(c.args<scalar_t>(), p, static_cast<char*>(ws.data_ptr()), order);
    });
  }
  static void backward(const BackwardCall& c) {
    const Plan p = plan_for(c.z, c.W.dim() == 3, static_cast<int>(c.W.element_size()), true, c.need_grad_W);
    at::Tensor ws = nan_workspace(p);
    const int order = env_int("NMMFIT_EMU_THREAD_ORDER", 0);
    AT_DISPATCH_FLOATING_TYPES(c.W.scalar_type(), "nmmfit::simulate_backward_gpu_emulated", [&] {
      backward_emulated(c.args<scalar_t>(), p, static_cast<char*>(ws.data_ptr()), order);
    });
  }
};

at::Tensor noise_emulated(int64_t seed, const at::Tensor& stream_, int64_t N, int64_t n_steps, int64_t step_offset,
                          at::ScalarType dtype) {
  check_noise_args(seed, stream_, N, n_steps, step_offset, dtype);
  const at::Tensor stream = stream_.contiguous();
  const int64_t B = stream.size(0), total = B * n_steps * N;
  at::Tensor out = at::empty({B, n_steps, 2, N}, stream.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES(dtype, "nmmfit::noise_gpu_emulated", [&] {
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
  const Plan p = plan_for(z, W_batched, static_cast<int>(c10::elementSize(dtype)), backward, need_grad_W);
  return {p.spb, p.threads, p.groups, p.grid, p.w_smem ? 1 : 0, p.smem_bytes, p.ws_bytes};
}

}  // namespace
}  // namespace gpu

TORCH_LIBRARY_FRAGMENT(nmmfit, m) {
  m.def(
      "simulate_gpu_emulated(Tensor W, Tensor params, Tensor state0, Tensor stream, int seed, int step_offset, "
      "int n_steps, int steps_per_sample, int record_every, int checkpoint_every, bool noise, int[] switches, "
      "float[] scalars, Tensor? u=None, int u_every=1) -> (Tensor bold, Tensor E_rec, Tensor I_rec, Tensor state, "
      "Tensor checkpoints)");
  m.def(
      "simulate_backward_gpu_emulated(Tensor? grad_bold, Tensor? grad_E_rec, Tensor? grad_I_rec, Tensor? grad_state, "
      "Tensor W, Tensor params, Tensor stream, Tensor checkpoints, int seed, int step_offset, int n_steps, "
      "int steps_per_sample, int record_every, int checkpoint_every, bool noise, int[] switches, float[] scalars, "
      "bool need_grad_W, Tensor? u=None, int u_every=1) -> (Tensor grad_W, Tensor grad_params, Tensor grad_state0, "
      "Tensor grad_u)");
  m.def("noise_gpu_emulated(int seed, Tensor stream, int N, int n_steps, int step_offset, ScalarType dtype) -> Tensor");
  m.def(
      "gpu_plan_emulated(int B, int N, int n_steps, int checkpoint_every, bool W_batched, ScalarType dtype, "
      "bool backward, bool need_grad_W) -> int[]",
      &gpu::plan_emulated);
}

TORCH_LIBRARY_IMPL(nmmfit, CPU, m) {
  m.impl("simulate_gpu_emulated", &simulate_op<gpu::EmulatedExec>);
  m.impl("simulate_backward_gpu_emulated", &simulate_backward_op<gpu::EmulatedExec>);
  m.impl("noise_gpu_emulated", &gpu::noise_emulated);
}

}  // namespace nmmfit
