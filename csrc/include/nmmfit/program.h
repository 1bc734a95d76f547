// The simulation step as a program of phases over nodes, shared by the CPU and CUDA executors.
//
// Forward step t of one simulation:
//   phase 1 (all nodes):  c_i = sum_j W_ij E_j  [- rowsum_i E_i]          reads every E
//   --- barrier ---
//   phase 2 (node i):     noise; (E, I, x, f, v, q)_i <- step(...)        writes node i only
//                         BOLD sample / records of node i when due
//   --- barrier ---
// Adjoint of step t (lambda = cotangent of the state after the step):
//   phase 1 (node i):     output cotangents (BOLD, records) into lambda_i; lambda_i, gc_i <- step_vjp
//   --- barrier ---
//   phase 2 (node j):     lambda_E_j += sum_i W_ij gc_i                   reads every gc
// The CPU executor runs each phase as a loop over nodes; the CUDA executor maps nodes to threads
// and barriers to __syncthreads. Everything per node lives in the functions below; Cfg is Config
// or a FixedConfig (model.h).
#pragma once
#include <cstdint>

#include "nmmfit/model.h"
#include "nmmfit/params.h"
#include "nmmfit/philox.h"
#include "nmmfit/schedule.h"

namespace nmmfit {

// State arrays of one simulation are [6, ld] (parameters likewise): variable-major, so each variable
// is a vector over nodes (unit stride for the vectoriser, coalesced on the GPU). The row stride ld
// is N, or N rounded up to the vector width where an executor pads nodes.
template <class T>
NMM_HD NodeState<T> load_state(const T* S, int64_t ld, int64_t i) {
  return NodeState<T>{S[i], S[ld + i], S[2 * ld + i], S[3 * ld + i], S[4 * ld + i], S[5 * ld + i]};
}

template <class T>
NMM_HD void store_state(T* S, int64_t ld, int64_t i, const NodeState<T>& s) {
  S[i] = s.E; S[ld + i] = s.I; S[2 * ld + i] = s.x; S[3 * ld + i] = s.f; S[4 * ld + i] = s.v; S[5 * ld + i] = s.q;
}

template <class T>
NMM_HD NodeParams<T> load_params(const T* P, int64_t ld, int64_t i) {
  return NodeParams<T>{P[i], P[ld + i], P[2 * ld + i], P[3 * ld + i], P[4 * ld + i], P[5 * ld + i]};
}

template <class T>
NMM_HD void store_params(T* P, int64_t ld, int64_t i, const NodeParams<T>& p) {
  P[i] = p.g; P[ld + i] = p.g_EE; P[2 * ld + i] = p.g_IE; P[3 * ld + i] = p.g_EI; P[4 * ld + i] = p.I_0; P[5 * ld + i] = p.sigma;
}

// The normals of node i at local step t (zero when noise is off). xi [2, ld].
template <class T>
NMM_HD void node_noise(const Sizes& z, uint32_t stream, int64_t t, int64_t i, T* xi, int64_t ld) {
  if (z.noise) {
    normal_pair<T>(z.seed, stream, z.step_offset + static_cast<uint64_t>(t), static_cast<uint32_t>(i), xi[i], xi[ld + i]);
  } else {
    xi[i] = T(0);
    xi[ld + i] = T(0);
  }
}

// Forward phase 1 for node i: c_i from the E row of S [6, N] and W's row i (Laplacian: minus
// rowsum_i E_i, applied as in the reference, after the sum).
template <class T, class Cfg>
NMM_HD T coupling_finish(const Cfg& cfg, T WE_i, T rowsum_i, T E_i) {
  return cfg.coupling == kLaplacian ? WE_i - rowsum_i * E_i : WE_i;
}

// Laplacian coupling: dc_i/dE_i gets -rowsum_i on top of W_ii.
template <class T, class Cfg>
NMM_HD T self_coupling(const Cfg& cfg, T rowsum_i) {
  return cfg.coupling == kLaplacian ? -rowsum_i : T(0);
}

// Forward phase 2 for node i: S [6, ld] updated in place (phase 1 has read every E already);
// u_i the node's external input at this step; xi [2, ld] the step's noise.
template <class T, class Cfg>
NMM_HD void forward_node(const Cfg& cfg, const T* P, int64_t ld, int64_t i, T c, T u_i, const T* xi, bool hemo,
                         T* S) {
  store_state(S, ld, i, step(cfg, load_state(S, ld, i), load_params(P, ld, i), c, u_i, xi[i], xi[ld + i], hemo));
}

// Outputs of node i after local step t (t + 1 steps done): BOLD sample and recorded E, I.
// S [6, ld] (ld >= N: executors may pad nodes); bold_b [S, N], E_rec_b / I_rec_b [R, N]: this
// simulation's output blocks.
template <class T, class Cfg>
NMM_HD void emit_node(const Sizes& z, const Cfg& cfg, int64_t t, int64_t i, const T* S, int64_t ld, T* bold_b,
                      T* E_rec_b, T* I_rec_b) {
  const int64_t N = z.N;
  if (is_sample_step(z, t)) bold_b[sample_index(z, t) * N + i] = bold(cfg, S[4 * ld + i], S[5 * ld + i]);
  if (is_record_step(z, t)) {
    const int64_t k = record_index(z, t);
    E_rec_b[k * N + i] = S[i];
    I_rec_b[k * N + i] = S[ld + i];
  }
}

// Adjoint phase 1, part 1, node i: the cotangents of the outputs taken after local step t join
// L [6, ld] (the cotangent of the state after the step). S_next [6, ld]: that state.
template <class T, class Cfg>
NMM_HD void output_cotangents_node(const Sizes& z, const Cfg& cfg, int64_t t, int64_t i, const T* S_next, int64_t ld,
                                   const T* g_bold_b, const T* g_E_b, const T* g_I_b, T* L) {
  const int64_t N = z.N;
  if (g_bold_b && is_sample_step(z, t)) {
    T gv = L[4 * ld + i], gq = L[5 * ld + i];
    bold_vjp(cfg, S_next[4 * ld + i], S_next[5 * ld + i], g_bold_b[sample_index(z, t) * N + i], gv, gq);
    L[4 * ld + i] = gv;
    L[5 * ld + i] = gq;
  }
  if (is_record_step(z, t)) {
    const int64_t k = record_index(z, t);
    if (g_E_b) L[i] += g_E_b[k * N + i];
    if (g_I_b) L[ld + i] += g_I_b[k * N + i];
  }
}

// Adjoint phase 1, part 2, node i: L [6, ld] from the cotangent of the state after the step to that
// of the state S_t [6, ld] before it (minus the W^T gc term of phase 2); c_i, u_i, xi [2, ld] as in
// the forward step; gc [ld] receives dL/dc_i; returns dL/du_i; gp accumulates the parameter
// cotangents of node i.
template <class T, class Acc, class Cfg>
NMM_HD T adjoint_node(const Cfg& cfg, const T* P, int64_t ld, int64_t i, const T* S_t, T c_i, T u_i, const T* xi,
                      bool hemo, T rowsum_i, T* L, T* gc, NodeParams<Acc>& gp) {
  T g, gu;
  const NodeState<T> li = step_vjp(cfg, load_state(S_t, ld, i), load_params(P, ld, i), c_i, u_i, xi[i], xi[ld + i],
                                   hemo, self_coupling(cfg, rowsum_i), load_state(L, ld, i), g, gu, gp);
  gc[i] = g;
  store_state(L, ld, i, li);
  return gu;
}

}  // namespace nmmfit
