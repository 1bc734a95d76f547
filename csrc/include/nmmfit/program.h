// The simulation step as a program of phases over nodes, shared by the CPU and CUDA executors.
//
// Forward step t of one simulation:
//   phase 1 (all nodes):  c_i = sum_j W_ij E_j  [- rowsum_i E_i]          reads every E
//   --- barrier ---
//   phase 2 (node i):     (E, I, x, f, v, q)_i <- step(...)               writes node i only
//   --- barrier ---       samples/records of node i are written in phase 2
// Adjoint of step t (lambda = cotangent of the state after the step):
//   phase 1 (node i):     output cotangents (BOLD, records) into lambda_i; lambda_i, gc_i <- step_vjp
//   --- barrier ---
//   phase 2 (node j):     lambda_E_j += sum_i W_ij gc_i                   reads every gc
// The CPU executor runs each phase as a loop over nodes; the CUDA executor maps nodes to threads
// and barriers to __syncthreads. Everything per node lives in the functions below.
#pragma once
#include <cstdint>

#include "nmmfit/model.h"
#include "nmmfit/params.h"
#include "nmmfit/philox.h"

namespace nmmfit {

// State arrays of one simulation are [6, N]: variable-major so that each variable is a vector over
// nodes (unit stride for the vectoriser and for coalesced GPU access).
template <class T>
NMM_HD NodeState<T> load_state(const T* S, int64_t N, int64_t i) {
  return NodeState<T>{S[i], S[N + i], S[2 * N + i], S[3 * N + i], S[4 * N + i], S[5 * N + i]};
}

template <class T>
NMM_HD void store_state(T* S, int64_t N, int64_t i, const NodeState<T>& s) {
  S[i] = s.E; S[N + i] = s.I; S[2 * N + i] = s.x; S[3 * N + i] = s.f; S[4 * N + i] = s.v; S[5 * N + i] = s.q;
}

template <class T>
NMM_HD NodeParams<T> load_params(const T* P, int64_t N, int64_t i) {
  return NodeParams<T>{P[i], P[N + i], P[2 * N + i], P[3 * N + i], P[4 * N + i], P[5 * N + i]};
}

template <class T>
NMM_HD void store_params(T* P, int64_t N, int64_t i, const NodeParams<T>& p) {
  P[i] = p.g; P[N + i] = p.g_EE; P[2 * N + i] = p.g_IE; P[3 * N + i] = p.g_EI; P[4 * N + i] = p.I_0; P[5 * N + i] = p.sigma;
}

// Hemodynamics advance on local steps t with (t + 1) % hemo_every == 0 (every step for griffiths2022,
// every 10th for deco2014), driven by E at the start of that step.
NMM_HD bool is_hemo_step(const Config& cfg, int64_t t) { return (t + 1) % cfg.hemo_every == 0; }

template <class T>
NMM_HD void node_noise(const Sizes& z, uint32_t stream, int64_t t, int64_t i, T& xi_E, T& xi_I) {
  if (z.noise) {
    normal_pair<T>(z.seed, stream, z.step_offset + static_cast<uint64_t>(t), static_cast<uint32_t>(i), xi_E, xi_I);
  } else {
    xi_E = T(0);
    xi_I = T(0);
  }
}

// Laplacian coupling: dc_i/dE_i gets -rowsum_i on top of W_ii.
template <class T>
NMM_HD T self_coupling(const Config& cfg, T rowsum_i) {
  return cfg.coupling == kLaplacian ? -rowsum_i : T(0);
}

// Forward phase 2 for node i at local step t: noise, step, and the outputs due after the step.
// S [6, N] is updated in place (phase 1 has read every E already); xi [2, N] optionally receives
// the noise (the backward executor keeps it per segment instead of drawing it twice).
template <class T>
NMM_HD void forward_node(const Sizes& z, const T* P, uint32_t stream, int64_t t, int64_t i, T c,
                         T* S, T* xi_out) {
  const int64_t N = z.N;
  T xi_E, xi_I;
  node_noise(z, stream, t, i, xi_E, xi_I);
  if (xi_out) {
    xi_out[i] = xi_E;
    xi_out[N + i] = xi_I;
  }
  store_state(S, N, i, step(z.cfg, load_state(S, N, i), load_params(P, N, i), c, xi_E, xi_I, is_hemo_step(z.cfg, t)));
}

// Outputs of node i after local step t (t + 1 steps done): BOLD sample and recorded E, I.
// bold, E_rec, I_rec point at this simulation's [S, N] / [R, N] blocks.
template <class T>
NMM_HD void emit_node(const Sizes& z, int64_t t, int64_t i, const T* S, T* bold_b, T* E_rec_b, T* I_rec_b) {
  const int64_t N = z.N;
  if ((t + 1) % z.steps_per_sample == 0) {
    bold_b[((t + 1) / z.steps_per_sample - 1) * N + i] = bold(z.cfg, S[4 * N + i], S[5 * N + i]);
  }
  if (z.record_every > 0 && (t + 1) % z.record_every == 0) {
    const int64_t k = (t + 1) / z.record_every - 1;
    E_rec_b[k * N + i] = S[i];
    I_rec_b[k * N + i] = S[N + i];
  }
}

// Adjoint phase 1 for node i at local step t. L [6, N]: cotangent of the state after the step on
// entry, of the state before it on return (minus the W^T gc term of phase 2). S_t, S_next [6, N]:
// the states before and after the step (the recomputed segment keeps both); c_t: node i's
// coupling; xi_t [2, N]: the step's noise; gc_t [N] receives dL/dc.
template <class T, class Acc>
NMM_HD void adjoint_node(const Sizes& z, const T* P, const T* S_t, const T* S_next, T c_t, const T* xi_t,
                         T rowsum_i, int64_t t, int64_t i, const T* g_bold_b, const T* g_E_b,
                         const T* g_I_b, T* L, T* gc_t, NodeParams<Acc>& gp) {
  const int64_t N = z.N;
  NodeState<T> lo = load_state(L, N, i);
  if (g_bold_b && (t + 1) % z.steps_per_sample == 0) {
    bold_vjp(z.cfg, S_next[4 * N + i], S_next[5 * N + i], g_bold_b[((t + 1) / z.steps_per_sample - 1) * N + i], lo.v, lo.q);
  }
  if (z.record_every > 0 && (t + 1) % z.record_every == 0) {
    const int64_t k = (t + 1) / z.record_every - 1;
    if (g_E_b) lo.E += g_E_b[k * N + i];
    if (g_I_b) lo.I += g_I_b[k * N + i];
  }
  T gc;
  const NodeState<T> li = step_vjp(z.cfg, load_state(S_t, N, i), load_params(P, N, i), c_t, xi_t[i], xi_t[N + i],
                                   is_hemo_step(z.cfg, t), self_coupling(z.cfg, rowsum_i), lo, gc, gp);
  gc_t[i] = gc;
  store_state(L, N, i, li);
}

}  // namespace nmmfit
