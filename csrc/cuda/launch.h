// The launch sequence of the block program, written once for the CUDA device (simulate_cuda.cu) and
// its CPU emulation (emulate_cpu.cpp): W transposed into the workspace when it is read from global
// memory, the block program over the plan's grid, then (backward, shared W) the fixed-order
// reduction of the blocks' coupling-gradient partials. Torch-free and CUDA-free (host code only).
//
// A launch policy D says how each piece runs on its device:
//   using Status; static constexpr Status success; static bool ok(Status)
//   Status transpose(const T* W, T* Wt, int64_t nb, int N)                      Wt[b] = W[b]^T
//   Status forward(const ForwardArgs<T>&, const Plan&, const T* Wt)             forward_block, every block
//   Status backward(const BackwardArgs<T>&, const Plan&, const T* Wt, double* G, T* seg)
//   Status reduce_grad_W(const double* G, int64_t slots, int N, int coupling, T* grad_W)
// Workspace layout: plan.h.
#pragma once
#include <cstdint>

#include "nmmfit/params.h"
#include "plan.h"

namespace nmmfit {
namespace gpu {

// Block blk's coupling-gradient partial (G_elems doubles) and segment buffers (spb x seg_elems).
NMM_HD double* block_G(const Plan& p, double* G, int64_t blk) { return G + blk * p.G_elems; }
template <class T>
NMM_HD T* block_segments(const Plan& p, T* seg, int64_t blk) {
  return seg + blk * p.spb * p.seg_elems;
}

// W^T ([N, N] or [B, N, N]) in the workspace for blocks that read W from global memory (coalesced
// columns); Wt stays null when W lives in shared memory.
template <class D, class T>
typename D::Status prepare_Wt(D& dev, const T* W, int64_t W_bstride, int64_t B, const Plan& p, char* ws,
                              const T*& Wt) {
  Wt = nullptr;
  if (p.w_smem) return D::success;
  T* wt = reinterpret_cast<T*>(ws + p.ws_Wt);
  const typename D::Status e = dev.transpose(W, wt, W_bstride ? B : 1, p.N);
  if (D::ok(e)) Wt = wt;
  return e;
}

// Forward: fills a's outputs. workspace: p.ws_bytes bytes (p from make_plan(..., backward=false)).
template <class D, class T>
typename D::Status run_forward(D& dev, const ForwardArgs<T>& a, const Plan& p, void* workspace) {
  const T* Wt = nullptr;
  const typename D::Status e = prepare_Wt(dev, a.W, a.W_bstride, a.z.B, p, static_cast<char*>(workspace), Wt);
  return D::ok(e) ? dev.forward(a, p, Wt) : e;
}

// Backward: fills grad_params, grad_state0, grad_u, and grad_W when a.grad_W is not null (p.need_G).
template <class D, class T>
typename D::Status run_backward(D& dev, const BackwardArgs<T>& a, const Plan& p, void* workspace) {
  char* ws = static_cast<char*>(workspace);
  const T* Wt = nullptr;
  typename D::Status e = prepare_Wt(dev, a.W, a.W_bstride, a.z.B, p, ws, Wt);
  if (!D::ok(e)) return e;
  double* G = reinterpret_cast<double*>(ws + p.ws_G);
  e = dev.backward(a, p, Wt, G, reinterpret_cast<T*>(ws + p.ws_seg));
  if (!D::ok(e) || !(p.need_G && p.shared_W)) return e;
  return dev.reduce_grad_W(G, p.grid, p.N, a.z.cfg.coupling, a.grad_W);
}

}  // namespace gpu
}  // namespace nmmfit
