// The CUDA kernels' bodies, written once over a "block runner" X so that the same code runs on the
// GPU and, phase by phase, on the CPU (emulate_cpu.cpp), where tests compare it with the CPU executor.
//
// A block runner provides
//   int nthreads(), block(), grid()      blockDim.x, blockIdx.x, gridDim.x
//   void phase(f)                        run f(tid) for every thread of the block, then a barrier
//                                        (CUDA: f(threadIdx.x); __syncthreads(). CPU: a loop over tid)
//   Local<V> v(x); v[tid]                a per-thread variable living across barriers (CUDA: one
//                                        register value per thread; CPU: an array indexed by tid)
// The code between phases is block-uniform (the same for every thread of a block: loops over time,
// segments and groups depend only on sizes and blockIdx), so every thread reaches every barrier.
// Inside a phase a thread writes only its own node's entries of shared arrays; anything it reads
// from another node was written before the previous barrier. The CPU emulation can run the threads
// of a phase in any order (tests run them forwards and backwards), which checks this.
//
// Per-node math is program.h's (forward_node, emit_node, node_noise, coupling_finish,
// output_cotangents_node, adjoint_node) and the time walk schedule.h's (segments, offsets, input
// rows, row sums, the dL/dW finish rule), exactly as the CPU executor calls them. The layouts and
// the thread mapping are described in plan.h.
#pragma once
#include <cstdint>

#include "nmmfit/program.h"
#include "plan.h"

#if defined(__CUDACC__)
#define NMM_BLOCK __device__ __forceinline__
#else
#define NMM_BLOCK inline
#endif

namespace nmmfit {
namespace gpu {

// The simulation slot s and node i of thread tid in group g, and the simulation b it runs.
struct Slot {
  int s, i;
  int64_t b;
  bool active;
};

NMM_HD Slot slot_of(const Plan& p, int64_t g, int tid) {
  const int s = tid / p.N, i = tid - s * p.N;
  const int64_t b = g * p.spb + s;
  return Slot{s, i, b, s < p.spb && b < p.B};
}

// c_i before the Laplacian correction: sum_j W_ij E_j, in j order. W row i from shared memory
// (Ws [N, ldw]) or column i of the transposed W in global memory (Wt [N, N] of this simulation).
template <class T>
NMM_HD T coupling_dot(const Plan& p, const T* Ws, const T* Wt_b, int i, const T* E) {
  const int N = p.N;
  T acc = T(0);
  if (p.w_smem) {
    const T* r = Ws + int64_t(i) * p.ldw;
    for (int j = 0; j < N; ++j) acc += r[j] * E[j];
  } else {
    const T* col = Wt_b + i;
    for (int j = 0; j < N; ++j) acc += col[int64_t(j) * N] * E[j];
  }
  return acc;
}

// rowsum_i (schedule.h) of W row i in shared memory (Ws [N, ldw]) or column i of Wt_b [N, N].
template <class T>
NMM_HD T W_row_sum(const Plan& p, const T* Ws, const T* Wt_b, int i) {
  return p.w_smem ? row_sum(Ws + int64_t(i) * p.ldw, 1, p.N) : row_sum(Wt_b + i, p.N, p.N);
}

// Adjoint phase 2 for node j: L_E_j += sum_i W_ij gc_i, in i order (as the CPU executor). W from
// shared memory or row-major from global memory (W_b [N, N]: thread j reads W_b[i, j], coalesced).
template <class T>
NMM_HD void add_WT_gc(const Plan& p, const T* Ws, const T* W_b, int j, const T* gc, T* L_E) {
  const int N = p.N;
  T acc = L_E[j];
  if (p.w_smem) {
    for (int i = 0; i < N; ++i) acc += Ws[int64_t(i) * p.ldw + j] * gc[i];
  } else {
    for (int i = 0; i < N; ++i) acc += W_b[int64_t(i) * N + j] * gc[i];
  }
  L_E[j] = acc;
}

// The reduction of the shared-W partials of `slots` blocks, for element e = i * N + j, in slot order.
template <class T>
NMM_HD void reduce_grad_W_element(const double* G, int64_t slots, int N, int coupling, int64_t e, T* out) {
  const int64_t NN = int64_t(N) * N, i = e / N;
  double gij = 0.0, gii = 0.0;
  for (int64_t s = 0; s < slots; ++s) {
    gij += G[s * NN + e];
    gii += G[s * NN + i * N + i];
  }
  out[e] = grad_W_value<T>(coupling, gij, gii);
}

// One element of the noise op's output [B, n_steps, 2, N], e = (b * n_steps + t) * N + i.
template <class T>
NMM_HD void noise_element(uint64_t seed, const int64_t* stream, int64_t N, int64_t n_steps, uint64_t step_offset,
                          int64_t e, T* out) {
  const int64_t i = e % N, bt = e / N, t = bt % n_steps, b = bt / n_steps;
  T* o = out + bt * 2 * N;
  normal_pair<T>(seed, static_cast<uint32_t>(stream[b]), step_offset + static_cast<uint64_t>(t),
                 static_cast<uint32_t>(i), o[i], o[N + i]);
}

// One Euler-Maruyama step of node i from Sc [6, N] into Sn [6, N] (all nodes' E of Sc are final:
// the caller is past the barrier that wrote them); its noise pair is drawn into xi [2, N]. The
// forward walk and the backward's segment recompute both step through here, so the recomputed
// trajectory is the forward's bit for bit. u_i: the node's external input at step t. Returns the
// coupling c_i the step used.
template <class T, class Cfg>
NMM_HD T step_node(const Sizes& z, const Cfg& cfg, const Plan& p, const T* Ws, const T* Wt_b, T rowsum_i,
                   const T* params_b, uint32_t stream, int64_t t, int i, T u_i, const T* Sc, T* Sn, T* xi) {
  const int N = p.N;
  const T c = coupling_finish(cfg, coupling_dot(p, Ws, Wt_b, i, Sc), rowsum_i, Sc[i]);
  for (int v = 0; v < kNumVars; ++v) Sn[v * N + i] = Sc[v * N + i];
  node_noise(z, stream, t, int64_t(i), xi, int64_t(N));
  forward_node(cfg, params_b, int64_t(N), int64_t(i), c, u_i, xi, is_hemo_step(cfg, t), Sn);
  return c;
}

template <class X, class T>
NMM_BLOCK void load_W_smem(X& x, const Plan& p, const T* W, T* Ws) {
  const int64_t NN = int64_t(p.N) * p.N;
  x.phase([&](int tid) {
    for (int64_t e = tid; e < NN; e += x.nthreads()) Ws[(e / p.N) * p.ldw + e % p.N] = W[e];
  });
}

// ---- forward ------------------------------------------------------------------------------------
// Wt: transposed W in global memory (unused when p.w_smem). One barrier per step: the step reads
// S[t & 1] (every E for the coupling, its own node for the update) and writes S[~t & 1].
template <class X, class T, class Cfg>
NMM_BLOCK void forward_block(X& x, const ForwardArgs<T>& a, const Cfg& cfg, const Plan& p, const T* Wt, T* sm) {
  const Sizes& z = a.z;
  const int N = p.N, spb = p.spb;
  const int64_t n6 = int64_t(kNumVars) * N;
  T* Ws = sm + p.sm_W;
  T* rowsum = sm + p.sm_rowsum;
  T* Sbuf = sm + p.sm_S;  // [2, spb, 6, N]
  T* xis = sm + p.sm_xi;  // [spb, 2, N]
  if (p.w_smem) load_W_smem(x, p, a.W, Ws);
  for (int64_t g = x.block(); g < p.groups; g += x.grid()) {
    x.phase([&](int tid) {
      const Slot w = slot_of(p, g, tid);
      if (!w.active) return;
      const T* Wt_b = p.w_smem ? nullptr : Wt + w.b * a.W_bstride;
      rowsum[w.s * N + w.i] = W_row_sum(p, Ws, Wt_b, w.i);
      T* S = Sbuf + w.s * n6;
      for (int v = 0; v < kNumVars; ++v) S[v * N + w.i] = a.state0[state_offset(z, w.b) + v * N + w.i];
    });
    for (int64_t sg = 0; sg < z.n_segments(); ++sg) {
      const Segment seg = segment(z, sg);
      for (int64_t t = seg.t0; t < seg.t0 + seg.n; ++t) {
        const int64_t cur = t & 1;
        x.phase([&](int tid) {
          const Slot w = slot_of(p, g, tid);
          if (!w.active) return;
          const int i = w.i;
          const T* Sc = Sbuf + (cur * spb + w.s) * n6;
          T* Sn = Sbuf + ((cur ^ 1) * spb + w.s) * n6;
          if (t == seg.t0) {
            T* ck = a.ckpt + checkpoint_offset(z, w.b, sg);
            for (int v = 0; v < kNumVars; ++v) ck[v * N + i] = Sc[v * N + i];
          }
          const T* Wt_b = p.w_smem ? nullptr : Wt + w.b * a.W_bstride;
          step_node(z, cfg, p, Ws, Wt_b, rowsum[w.s * N + i], a.params + state_offset(z, w.b),
                    static_cast<uint32_t>(a.stream[w.b]), t, i, input_at(a.u, z, w.b, t, i), Sc, Sn,
                    xis + int64_t(w.s) * 2 * N);
          emit_node(z, cfg, t, int64_t(i), Sn, int64_t(N), a.bold + samples_offset(z, w.b),
                    a.E_rec + records_offset(z, w.b), a.I_rec + records_offset(z, w.b));
        });
      }
    }
    x.phase([&](int tid) {
      const Slot w = slot_of(p, g, tid);
      if (!w.active) return;
      const T* S = Sbuf + ((z.n_steps & 1) * spb + w.s) * n6;
      for (int v = 0; v < kNumVars; ++v) a.state[state_offset(z, w.b) + v * N + w.i] = S[v * N + w.i];
    });
  }
}

// ---- backward -----------------------------------------------------------------------------------
// Reverse walk over the checkpoint segments: recompute the segment from its checkpoint into this
// block's segment buffers (seg: [spb, seg_elems], global), then the adjoint steps through it; after
// each segment, the coupling-matrix gradient G += sum_k gc_k E_k^T (double) as one small product.
// G: this block's partial ([N, N] shared W, summed over its simulations; [spb, N, N] per-simulation
// W, written to grad_W at the end of each group). One barrier per adjoint step: phase 2 of step k
// (L_E += W^T gc_k, every gc) runs at the start of the phase of step k - 1, gc double-buffered.
template <class X, class T, class Cfg>
NMM_BLOCK void backward_block(X& x, const BackwardArgs<T>& a, const Cfg& cfg, const Plan& p, const T* Wt,
                              double* G, T* seg, T* sm) {
  const Sizes& z = a.z;
  const int N = p.N, spb = p.spb;
  const int64_t n6 = int64_t(kNumVars) * N, NN = int64_t(N) * N;
  T* Ws = sm + p.sm_W;
  T* rowsum = sm + p.sm_rowsum;
  T* Sbuf = sm + p.sm_S;  // [2, spb, 6, N]
  T* Ls = sm + p.sm_L;    // [spb, 6, N]
  T* gcs = sm + p.sm_gc;  // [2, spb, N]
  typename X::template Local<NodeParams<double>> gp(x);
  if (p.w_smem) load_W_smem(x, p, a.W, Ws);
  if (p.need_G && p.shared_W) {
    x.phase([&](int tid) {
      for (int64_t e = tid; e < NN; e += x.nthreads()) G[e] = 0.0;
    });
  }
  for (int64_t g = x.block(); g < p.groups; g += x.grid()) {
    x.phase([&](int tid) {
      if (p.need_G && !p.shared_W)
        for (int64_t e = tid; e < spb * NN; e += x.nthreads()) G[e] = 0.0;
      const Slot w = slot_of(p, g, tid);
      if (!w.active) return;
      const T* Wt_b = p.w_smem ? nullptr : Wt + w.b * a.W_bstride;
      rowsum[w.s * N + w.i] = W_row_sum(p, Ws, Wt_b, w.i);
      T* L = Ls + w.s * n6;
      for (int v = 0; v < kNumVars; ++v)
        L[v * N + w.i] = a.grad_state ? a.grad_state[state_offset(z, w.b) + v * N + w.i] : T(0);
      gp[tid] = NodeParams<double>{0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    });
    int64_t u = 0;  // adjoint steps done in this group: gc of step u goes to gcs[u & 1]
    for (int64_t sg = z.n_segments() - 1; sg >= 0; --sg) {
      const Segment range = segment(z, sg);
      const int64_t t0 = range.t0, n = range.n;
      // recompute the segment: states 0..n, couplings and noise of steps 0..n-1
      x.phase([&](int tid) {
        const Slot w = slot_of(p, g, tid);
        if (!w.active) return;
        const T* ck = a.ckpt + checkpoint_offset(z, w.b, sg);
        T* S = Sbuf + w.s * n6;
        T* st = seg + w.s * p.seg_elems + p.seg_states;
        for (int v = 0; v < kNumVars; ++v) S[v * N + w.i] = st[v * N + w.i] = ck[v * N + w.i];
      });
      for (int64_t k = 0; k < n; ++k) {
        const int64_t cur = k & 1;
        x.phase([&](int tid) {
          const Slot w = slot_of(p, g, tid);
          if (!w.active) return;
          const int i = w.i;
          const T* Sc = Sbuf + (cur * spb + w.s) * n6;
          T* Sn = Sbuf + ((cur ^ 1) * spb + w.s) * n6;
          T* sb = seg + w.s * p.seg_elems;
          const T* Wt_b = p.w_smem ? nullptr : Wt + w.b * a.W_bstride;
          sb[p.seg_c + k * N + i] = step_node(z, cfg, p, Ws, Wt_b, rowsum[w.s * N + i], a.params + state_offset(z, w.b),
                                              static_cast<uint32_t>(a.stream[w.b]), t0 + k, i,
                                              input_at(a.u, z, w.b, t0 + k, i), Sc, Sn, sb + p.seg_xi + k * 2 * N);
          T* st = sb + p.seg_states + (k + 1) * n6;
          for (int v = 0; v < kNumVars; ++v) st[v * N + i] = Sn[v * N + i];
        });
      }
      // adjoint steps n-1 .. 0
      for (int64_t k = n - 1; k >= 0; --k, ++u) {
        x.phase([&](int tid) {
          const Slot w = slot_of(p, g, tid);
          if (!w.active) return;
          const int i = w.i;
          T* L = Ls + w.s * n6;
          if (u > 0) add_WT_gc(p, Ws, a.W + w.b * a.W_bstride, i, gcs + (((u - 1) & 1) * spb + w.s) * N, L);
          T* sb = seg + w.s * p.seg_elems;
          const T* S_k = sb + p.seg_states + k * n6;
          const int64_t t = t0 + k;
          output_cotangents_node(z, cfg, t, int64_t(i), S_k + n6, int64_t(N),
                                 a.grad_bold ? a.grad_bold + samples_offset(z, w.b) : nullptr,
                                 a.grad_E_rec ? a.grad_E_rec + records_offset(z, w.b) : nullptr,
                                 a.grad_I_rec ? a.grad_I_rec + records_offset(z, w.b) : nullptr, L);
          T* gc = gcs + ((u & 1) * spb + w.s) * N;
          const T gu = adjoint_node(cfg, a.params + state_offset(z, w.b), int64_t(N), int64_t(i), S_k, sb[p.seg_c + k * N + i],
                                    input_at(a.u, z, w.b, t, i), sb + p.seg_xi + k * 2 * N, is_hemo_step(cfg, t),
                                    rowsum[w.s * N + i], L, gc, gp[tid]);
          add_grad_input(a.grad_u, z, w.b, t, int64_t(i), gu);  // this thread alone owns (b, i)
          sb[p.seg_gc + k * N + i] = gc[i];
        });
      }
      // G += sum_k gc_k E_k^T over the segment, element by element in k order (double)
      if (p.need_G) {
        x.phase([&](int tid) {
          const int64_t total = p.shared_W ? NN : spb * NN;
          for (int64_t e = tid; e < total; e += x.nthreads()) {
            const int64_t s_first = p.shared_W ? 0 : e / NN, s_end = p.shared_W ? spb : s_first + 1;
            const int64_t r = e % NN, i = r / N, j = r % N;
            double acc = G[e];
            for (int64_t s = s_first; s < s_end; ++s) {
              if (g * spb + s >= p.B) break;
              const T* sb = seg + s * p.seg_elems;
              for (int64_t k = 0; k < n; ++k)
                acc += double(sb[p.seg_gc + k * N + i]) * double(sb[p.seg_states + k * n6 + j]);
            }
            G[e] = acc;
          }
        });
      }
    }
    x.phase([&](int tid) {
      const Slot w = slot_of(p, g, tid);
      if (!w.active) return;
      T* L = Ls + w.s * n6;
      if (u > 0) add_WT_gc(p, Ws, a.W + w.b * a.W_bstride, w.i, gcs + (((u - 1) & 1) * spb + w.s) * N, L);
      for (int v = 0; v < kNumVars; ++v) a.grad_state0[state_offset(z, w.b) + v * N + w.i] = L[v * N + w.i];
      const NodeParams<double> q = gp[tid];
      const double vals[kNumParams] = {q.g, q.g_EE, q.g_IE, q.g_EI, q.I_0, q.sigma};
      for (int v = 0; v < kNumParams; ++v) a.grad_params[state_offset(z, w.b) + v * N + w.i] = T(vals[v]);
    });
    if (p.need_G && !p.shared_W) {
      x.phase([&](int tid) {
        for (int64_t e = tid; e < spb * NN; e += x.nthreads()) {
          const int64_t s = e / NN, r = e % NN, i = r / N;
          if (g * spb + s >= p.B) continue;
          a.grad_W[(g * spb + s) * NN + r] = grad_W_value<T>(cfg.coupling, G[e], G[s * NN + i * N + i]);
        }
      });
    }
  }
}

}  // namespace gpu
}  // namespace nmmfit
