// Launch arguments of the simulate / simulate_backward executors: sizes, element strides and raw
// pointers, torch-free so that the CPU executor and the .cu files share them.
// Layouts (row-major, contiguous unless a stride says otherwise):
//   W       [B, N, N] with W_bstride = N*N, or shared [N, N] with W_bstride = 0
//   params  [B, 6, N]   (g, g_EE, g_IE, g_EI, I_0, sigma)
//   state   [B, 6, N]   (E, I, x, f, v, q)
//   bold    [B, S, N]   S = n_steps / steps_per_sample; sample k after step (k+1) * steps_per_sample
//   E_rec, I_rec [B, R, N]   R = n_steps / record_every (0 if record_every == 0)
//   ckpt    [B, n_seg, 6, N]  state at the start of segment s (step s * checkpoint_every)
//   u       [B, n_u, N]  external input, row t / u_every at local step t (n_u = 0: none)
#pragma once
#include <cstdint>

#include "nmmfit/model.h"

namespace nmmfit {

struct Sizes {
  int64_t B, N;
  int64_t n_steps, steps_per_sample, record_every, checkpoint_every;
  uint64_t seed, step_offset;
  bool noise;
  int64_t u_every, n_u;   // external input: one row per u_every steps, n_u rows (0: no input)
  Config cfg;

  NMM_HD int64_t n_samples() const { return n_steps / steps_per_sample; }
  NMM_HD int64_t n_records() const { return record_every > 0 ? n_steps / record_every : 0; }
  NMM_HD int64_t n_segments() const { return (n_steps + checkpoint_every - 1) / checkpoint_every; }
};

template <class T>
struct ForwardArgs {
  Sizes z;
  const T* W;             // [B, N, N] or [N, N]
  int64_t W_bstride;      // N*N or 0
  const T* params;        // [B, 6, N]
  const T* state0;        // [B, 6, N]
  const int64_t* stream;  // [B]
  const T* u;             // [B, n_u, N] or nullptr
  T* bold;                // [B, S, N]
  T* E_rec;               // [B, R, N]
  T* I_rec;               // [B, R, N]
  T* state;               // [B, 6, N]
  T* ckpt;                // [B, n_seg, 6, N]
};

template <class T>
struct BackwardArgs {
  Sizes z;
  const T* W;             // [B, N, N] or [N, N]
  int64_t W_bstride;      // N*N or 0
  const T* params;        // [B, 6, N]
  const int64_t* stream;  // [B]
  const T* u;             // [B, n_u, N] or nullptr
  const T* ckpt;          // [B, n_seg, 6, N]
  const T* grad_bold;     // [B, S, N] or nullptr
  const T* grad_E_rec;    // [B, R, N] or nullptr
  const T* grad_I_rec;    // [B, R, N] or nullptr
  const T* grad_state;    // [B, 6, N] or nullptr (cotangent of the final state)
  T* grad_W;              // [B, N, N] or [N, N] (same layout as W)
  T* grad_params;         // [B, 6, N]
  T* grad_state0;         // [B, 6, N]
  T* grad_u;              // [B, n_u, N] or nullptr
};

}  // namespace nmmfit
