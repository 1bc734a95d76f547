// Launch plan of the CUDA executor: how simulations map to blocks and threads, what lives in
// shared memory, and the layout of the global workspace. Torch-free and CUDA-free (plain C++), so
// the CUDA launcher (simulate_cuda.cu), the torch wrapper (ops_cuda.cpp) and the CPU emulation of
// the kernels (emulate_cpu.cpp) share one planner.
//
// Thread mapping. One thread per node; sims_per_block (spb) simulations are packed contiguously in a
// block: thread tid runs node i = tid % N of simulation slot s = tid / N, blockDim = spb * N rounded
// up to a multiple of 32 (threads past spb * N, and slots past B in the last group, idle but take
// part in every barrier). A block walks "groups" of spb simulations (g = blockIdx, blockIdx + grid,
// ...). So N <= kMaxNodes = 1024 (threads per block). Packing fills warps and shares a barrier
// between simulations when N is small; spb is chosen so that blocks stay <= 256 threads.
//
// Shared memory (elements of T; per simulation slot unless said otherwise):
//   W        [N, ldw]  shared W only, when it fits (ldw = N | 1, odd: a column walk is bank-conflict free)
//   rowsum   [N]
//   S        [2, 6, N] the state, double-buffered so a step needs one barrier (read S[t&1], write S[~t&1])
//   xi       [2, N]    forward only: the step's noise
//   L        [6, N]    backward only: the running cotangent
//   gc       [2, N]    backward only: dL/dc, double-buffered (phase 2 of step t runs inside phase 1 of t-1)
// Forward: 15 N per simulation, backward: 21 N (+ N * ldw for a shared W in shared memory).
//
// Global workspace (bytes, allocated by the caller):
//   G     doubles [grid, N, N] (shared W) or [grid, spb, N, N] (per-simulation W): coupling-matrix
//         gradient partials, one per block, reduced in a fixed order (deterministic, no atomics)
//   seg   T [grid, spb, seg_elems]: one recomputed checkpoint segment per simulation in flight:
//         states (K + 1) x 6N, c K x N, xi K x 2N, gc K x N
//   Wt    T: W transposed ([N, N] or [B, N, N]) when W is read from global memory, so that the
//         forward coupling c_i = sum_j W_ij E_j reads it coalesced (thread i, column walk over j).
// The backward grid is capped at what the device holds at once (SMs x blocks per SM), so the
// workspace is bounded by the device, not by B.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "nmmfit/params.h"

namespace nmmfit {
namespace gpu {

constexpr int kMaxNodes = 1024;      // one thread per node, at most 1024 threads per block
constexpr int kSmallBlock = 256;     // packing target; kernels for blocks <= 256 threads get 255 registers
constexpr int64_t kWSmemMaxBytes = 64 * 1024;  // a shared W above this goes through L1/L2 (occupancy)

// What the planner needs to know about the device (cudaDeviceGetAttribute values).
struct Limits {
  int num_sms = 1;
  int max_threads_per_sm = 2048;
  int max_blocks_per_sm = 32;
  int64_t smem_per_block = 48 * 1024;  // opt-in maximum of dynamic shared memory per block
  int64_t smem_per_sm = 100 * 1024;
};

// Overrides for tests and tuning, from the environment:
//   NMMFIT_CUDA_SIMS_PER_BLOCK=<int>   simulations packed per block (clamped to 1024 threads)
//   NMMFIT_CUDA_W_SMEM=0|1             force a shared W out of / into shared memory (1: if it fits)
struct Overrides {
  int spb = 0;     // 0: heuristic
  int w_smem = -1; // -1: heuristic
};

inline Overrides overrides_from_env() {
  Overrides o;
  if (const char* s = std::getenv("NMMFIT_CUDA_SIMS_PER_BLOCK")) o.spb = std::atoi(s);
  if (const char* s = std::getenv("NMMFIT_CUDA_W_SMEM")) {
    if (std::strcmp(s, "0") == 0) o.w_smem = 0;
    if (std::strcmp(s, "1") == 0) o.w_smem = 1;
  }
  return o;
}

struct Plan {
  int N = 0, spb = 1, threads = 32, ldw = 0;
  int64_t B = 0, groups = 0, grid = 0;
  bool backward = false, shared_W = false, w_smem = false, need_G = false;
  // shared memory: element offsets (T) and total bytes
  int64_t sm_W = 0, sm_rowsum = 0, sm_S = 0, sm_xi = 0, sm_L = 0, sm_gc = 0, sm_elems = 0, smem_bytes = 0;
  // one simulation's segment buffer (elements of T): offsets and size
  int64_t K = 0, seg_states = 0, seg_c = 0, seg_xi = 0, seg_gc = 0, seg_elems = 0;
  int64_t G_elems = 0;  // doubles of coupling-gradient partial per block
  // workspace (bytes): offsets and total
  int64_t ws_G = 0, ws_seg = 0, ws_Wt = 0, ws_bytes = 0;
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Fills p; returns nullptr, or a message when the problem does not fit the device (the caller adds
// the sizes). elem = sizeof(T); W_batched: W is [B, N, N].
inline const char* make_plan(const Sizes& z, bool W_batched, int elem, bool backward, bool need_G,
                             const Limits& lim, const Overrides& ov, Plan& p) {
  p = Plan{};
  if (z.N > kMaxNodes) return "too many nodes: the CUDA kernels run one thread per node, at most 1024 per block";
  const int N = static_cast<int>(z.N);
  p.N = N;
  p.B = z.B;
  p.backward = backward;
  p.shared_W = !W_batched;
  p.need_G = backward && need_G;
  p.ldw = N | 1;
  const int64_t per_sim = backward ? 21 * int64_t(N) : 15 * int64_t(N);
  const int max_spb = kMaxNodes / N;
  int spb;
  if (ov.spb > 0) {
    spb = ov.spb < max_spb ? ov.spb : max_spb;
  } else {
    const int fill = kSmallBlock / N > 1 ? kSmallBlock / N : 1;
    // no more packing than keeps ~2 blocks per SM busy for this B
    const int64_t spread = ceil_div(z.B, 2 * int64_t(lim.num_sms > 0 ? lim.num_sms : 1));
    spb = spread < fill ? static_cast<int>(spread) : fill;
  }
  if (spb > z.B) spb = static_cast<int>(z.B);
  if (spb < 1) spb = 1;
  const int64_t W_elems = int64_t(N) * p.ldw;
  auto smem_of = [&](int s, bool ws) { return ((ws ? W_elems : 0) + s * per_sim) * elem; };
  bool w_smem = false;
  if (p.shared_W && ov.w_smem != 0) {
    const bool wanted = ov.w_smem == 1 || W_elems * elem <= kWSmemMaxBytes;
    w_smem = wanted && smem_of(1, true) <= lim.smem_per_block;
  }
  while (spb > 1 && smem_of(spb, w_smem) > lim.smem_per_block) --spb;
  if (smem_of(spb, w_smem) > lim.smem_per_block)
    return "not enough shared memory per block for one simulation (21 N x sizeof(dtype) bytes backward, "
           "15 N x sizeof(dtype) forward)";
  p.spb = spb;
  p.w_smem = w_smem;
  p.threads = static_cast<int>(ceil_div(int64_t(spb) * N, 32) * 32);
  p.groups = ceil_div(z.B, spb);

  // shared memory layout
  int64_t o = 0;
  p.sm_W = o;
  if (w_smem) o += W_elems;
  p.sm_rowsum = o;  o += int64_t(spb) * N;
  p.sm_S = o;       o += 2 * int64_t(spb) * kNumVars * N;
  if (backward) {
    p.sm_L = o;     o += int64_t(spb) * kNumVars * N;
    p.sm_gc = o;    o += 2 * int64_t(spb) * N;
  } else {
    p.sm_xi = o;    o += 2 * int64_t(spb) * N;
  }
  p.sm_elems = o;
  p.smem_bytes = o * elem;

  // grid: every group at once forward; backward at most what the device holds at once
  p.grid = p.groups;
  if (backward) {
    int64_t per_sm = lim.max_threads_per_sm / p.threads;
    if (p.smem_bytes > 0 && lim.smem_per_sm / p.smem_bytes < per_sm) per_sm = lim.smem_per_sm / p.smem_bytes;
    if (lim.max_blocks_per_sm < per_sm) per_sm = lim.max_blocks_per_sm;
    if (per_sm < 1) per_sm = 1;
    const int64_t cap = per_sm * (lim.num_sms > 0 ? lim.num_sms : 1);
    if (cap < p.grid) p.grid = cap;
  }

  // segment buffer of one simulation
  if (backward) {
    const int64_t K = z.checkpoint_every;
    p.K = K;
    p.seg_states = 0;
    p.seg_c = (K + 1) * kNumVars * N;
    p.seg_xi = p.seg_c + K * N;
    p.seg_gc = p.seg_xi + 2 * K * N;
    p.seg_elems = p.seg_gc + K * N;
    if (p.need_G) p.G_elems = (p.shared_W ? 1 : spb) * int64_t(N) * N;
  }

  // workspace: doubles first (alignment), then T
  int64_t b = 0;
  p.ws_G = b;    b += p.grid * p.G_elems * int64_t(sizeof(double));
  p.ws_seg = b;  if (backward) b += p.grid * spb * p.seg_elems * elem;
  b = ceil_div(b, 256) * 256;
  p.ws_Wt = b;   if (!w_smem) b += (W_batched ? z.B : 1) * int64_t(N) * N * elem;
  p.ws_bytes = b;
  return nullptr;
}

}  // namespace gpu
}  // namespace nmmfit
