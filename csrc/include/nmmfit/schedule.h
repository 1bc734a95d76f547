// The time walk of one simulation, written once for the CPU executor (csrc/cpu) and the CUDA block
// program (csrc/cuda/block_program.h): which local steps start a checkpoint segment, where each
// output row and checkpoint lives, which input row a step reads and where its dL/du goes, the row
// sums of W, and how the accumulated outer products finish into dL/dW. Layouts as in params.h.
#pragma once
#include <cstdint>

#include "nmmfit/model.h"
#include "nmmfit/params.h"

namespace nmmfit {

// ---- steps ---------------------------------------------------------------------------------------
// Hemodynamics advance on local steps t with (t + 1) % hemo_every == 0 (every step for griffiths2022,
// every 10th for deco2014), driven by E at the start of that step.
NMM_HD bool is_hemo_step(const Config& cfg, int64_t t) { return (t + 1) % cfg.hemo_every == 0; }

// BOLD sample k is taken after step (k + 1) * steps_per_sample - 1, record k after (k + 1) * record_every - 1.
NMM_HD bool is_sample_step(const Sizes& z, int64_t t) { return (t + 1) % z.steps_per_sample == 0; }
NMM_HD bool is_record_step(const Sizes& z, int64_t t) { return z.record_every > 0 && (t + 1) % z.record_every == 0; }
NMM_HD int64_t sample_index(const Sizes& z, int64_t t) { return (t + 1) / z.steps_per_sample - 1; }
NMM_HD int64_t record_index(const Sizes& z, int64_t t) { return (t + 1) / z.record_every - 1; }

// ---- checkpoint segments -------------------------------------------------------------------------
// Segment s covers local steps [t0, t0 + n); the last one may be short (n_steps % K != 0).
struct Segment {
  int64_t t0, n;
};

NMM_HD Segment segment(const Sizes& z, int64_t s) {
  const int64_t t0 = s * z.checkpoint_every, left = z.n_steps - t0;
  return Segment{t0, left < z.checkpoint_every ? left : z.checkpoint_every};
}

// The forward stores the state before step t as a checkpoint when t starts a segment.
NMM_HD bool is_checkpoint_step(const Sizes& z, int64_t t) { return t % z.checkpoint_every == 0; }

// ---- element offsets of one simulation's blocks --------------------------------------------------
NMM_HD int64_t checkpoint_offset(const Sizes& z, int64_t b, int64_t s) {  // ckpt [B, n_seg, 6, N]
  return (b * z.n_segments() + s) * kNumVars * z.N;
}
NMM_HD int64_t samples_offset(const Sizes& z, int64_t b) { return b * z.n_samples() * z.N; }  // bold [B, S, N]
NMM_HD int64_t records_offset(const Sizes& z, int64_t b) { return b * z.n_records() * z.N; }  // E_rec [B, R, N]
NMM_HD int64_t state_offset(const Sizes& z, int64_t b) { return b * kNumVars * z.N; }         // [B, 6, N]

// ---- external input ------------------------------------------------------------------------------
// Local step t reads row t / u_every of u [B, n_u, N]; the adjoint sums dL/du of that row's steps.
NMM_HD int64_t input_row(const Sizes& z, int64_t t) { return t / z.u_every; }
NMM_HD int64_t input_offset(const Sizes& z, int64_t b, int64_t t) { return (b * z.n_u + input_row(z, t)) * z.N; }

// The external input of node i of simulation b at local step t: u [B, n_u, N] or nullptr (none).
template <class T>
NMM_HD T input_at(const T* u, const Sizes& z, int64_t b, int64_t t, int64_t i) {
  return u ? u[input_offset(z, b, t) + i] : T(0);
}

// grad_u [B, n_u, N] (or nullptr: no input) += dL/du_i of step t. Only the caller owning (b, i)
// writes this element, and a simulation's steps run in turn, so no atomics are needed.
template <class T>
NMM_HD void add_grad_input(T* grad_u, const Sizes& z, int64_t b, int64_t t, int64_t i, T gu) {
  if (grad_u) grad_u[input_offset(z, b, t) + i] += gu;
}

// ---- coupling ------------------------------------------------------------------------------------
// rowsum_i = sum_j W_ij in j order (both executors, so the Laplacian coupling is bit-equal): w points
// at W_i0, stride is the distance between W_ij and W_i(j+1) (1 row-major, N for a transposed W).
template <class T>
NMM_HD T row_sum(const T* w, int64_t stride, int64_t N) {
  T acc = T(0);
  for (int64_t j = 0; j < N; ++j) acc += w[j * stride];
  return acc;
}

// dL/dW_ij from the accumulated G_ij = sum_t gc_t[i] E_t[j] (double): the Laplacian's
// -rowsum_i E_i term of c_i makes every W_ij of row i also receive -G_ii.
template <class T>
NMM_HD T grad_W_value(int coupling, double G_ij, double G_ii) {
  return T(coupling == kLaplacian ? G_ij - G_ii : G_ij);
}

}  // namespace nmmfit
