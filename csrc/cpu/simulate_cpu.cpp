// CPU executor of the step program (include/nmmfit/program.h): OpenMP over simulations; each phase
// is a loop over nodes written for the auto-vectoriser (omp simd, libmvec math, the named presets'
// switches fixed at compile time).
#include "simulate_cpu.h"

#include "vector_math.h"  // before any use of libm, so the simd declarations are seen

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "interrupt.h"
#include "nmmfit/program.h"
#include "philox_lanes.h"

namespace nmmfit {
namespace {

// Calls f(cfg) with the configuration's switches fixed at compile time when they are those of a
// named preset, with the runtime Config otherwise.
template <class F>
void with_config(const Config& c, F&& f) {
  if (Griffiths2022Config::matches(c)) f(Griffiths2022Config(c));
  else if (Deco2014Config::matches(c)) f(Deco2014Config(c));
  else f(c);
}

// Nodes are padded to a multiple of the widest vector (16 floats), so every loop over nodes runs
// whole vectors: no scalar remainder iterations, which would call the scalar libm. Padded nodes have
// zero parameters and coupling and a resting state; they are computed and never read out.
constexpr int64_t kLanes = 16;
int64_t padded(int64_t N) { return (N + kLanes - 1) / kLanes * kLanes; }

// One simulation's inputs in the padded layout, and the scratch of one step.
//   Wt [N, ld]: Wt[j, i] = W_ij (forward: c += W[:, j] E_j, axpys without horizontal sums)
//   Wr [N, ld]: Wr[i, j] = W_ij (adjoint: lambda_E += W[i, :] gc_i)
//   P  [6, ld], rowsum [ld], c [ld], xi [2, ld], w0/w1 [ld] (Philox words)
//   u  [ld]: the external input row in use (zeros without input; padded nodes 0)
template <class T>
struct SimLocal {
  int64_t N, ld;
  std::vector<T> Wt, Wr, P, rowsum, c, xi, u;
  std::vector<uint32_t> w0, w1;
  const T* u_b = nullptr;  // [n_u, N] this simulation's external input, or nullptr
  int64_t u_loaded = -1;   // the row of u_b held in u
  explicit SimLocal(int64_t N_)
      : N(N_), ld(padded(N_)), Wt(N * ld), Wr(N * ld), P(kNumParams * ld), rowsum(ld), c(ld), xi(2 * ld), u(ld),
        w0(ld), w1(ld) {}

  // The external input of step t [ld]; rows are copied in when t enters them (the forward walks
  // rows up, the adjoint down; both stay in a row for u_every steps).
  const T* input_at(const Sizes& z, int64_t t) {
    if (u_b && input_row(z, t) != u_loaded) {
      u_loaded = input_row(z, t);
      std::copy_n(u_b + u_loaded * N, N, u.data());
    }
    return u.data();
  }

  // W [N, N], params [6, N], u [n_u, N] (or nullptr) of simulation b.
  void load(const T* W, const T* params, const T* u_rows, bool rows) {
    u_b = u_rows;
    u_loaded = -1;
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t j = 0; j < N; ++j) Wt[j * ld + i] = W[i * N + j];
      rowsum[i] = row_sum(W + i * N, 1, N);
      if (rows) std::copy_n(W + i * N, N, Wr.data() + i * ld);
    }
    for (int64_t p = 0; p < kNumParams; ++p) std::copy_n(params + p * N, N, P.data() + p * ld);
  }
};

// state [6, N] -> S [6, ld] with resting padded nodes, and back.
template <class T>
void unpack_state(const T* state, int64_t N, int64_t ld, T* S) {
  constexpr double rest[kNumVars] = {0, 0, 0, 1, 1, 1};
  for (int64_t v = 0; v < kNumVars; ++v) {
    std::copy_n(state + v * N, N, S + v * ld);
    std::fill(S + v * ld + N, S + (v + 1) * ld, T(rest[v]));
  }
}

template <class T>
void pack_state(const T* S, int64_t N, int64_t ld, T* state) {
  for (int64_t v = 0; v < kNumVars; ++v) std::copy_n(S + v * ld, N, state + v * N);
}

// out[i0 : i0 + Width] (+)= sum_r M[r, i0 : i0 + Width] x_r, M [rows, ld], with the partial sums
// held in registers across the whole r loop (an axpy through memory would store and reload out once
// per row). Two accumulator sets (even and odd r) give the FMA pipeline independent chains.
template <int Width, class T>
void matvec_block(const T* M, int64_t rows, int64_t ld, const T* x, int64_t i0, bool accumulate, T* out) {
  T even[Width] = {}, odd[Width] = {};
  const T* m = M + i0;
  int64_t r = 0;
  for (; r + 1 < rows; r += 2) {
    const T x0 = x[r], x1 = x[r + 1];
#pragma omp simd
    for (int ii = 0; ii < Width; ++ii) {
      even[ii] += m[r * ld + ii] * x0;
      odd[ii] += m[(r + 1) * ld + ii] * x1;
    }
  }
  if (r < rows) {
#pragma omp simd
    for (int ii = 0; ii < Width; ++ii) even[ii] += m[r * ld + ii] * x[r];
  }
#pragma omp simd
  for (int ii = 0; ii < Width; ++ii) out[i0 + ii] = (accumulate ? out[i0 + ii] : T(0)) + (even[ii] + odd[ii]);
}

// The register file: 16 vectors of 32 bytes (AVX2), 32 of 64 bytes (AVX-512). A block of four
// vectors keeps its two accumulator sets (8 registers) and the loads in registers; a wider block
// spills the accumulators to the stack on every row.
#if defined(__AVX512F__)
constexpr int64_t kVectorBytes = 64;
#else
constexpr int64_t kVectorBytes = 32;
#endif
template <class T>
constexpr int kMatvecBlock = 4 * kVectorBytes / sizeof(T);

// out [ld] (+)= M^T x for M [rows, ld] (ld a multiple of kLanes), in blocks of four vectors and a
// remainder of whole kLanes.
template <class T>
void matvec_transposed(const T* M, int64_t rows, int64_t ld, const T* x, bool accumulate, T* out) {
  int64_t i0 = 0;
  for (; i0 + kMatvecBlock<T> <= ld; i0 += kMatvecBlock<T>)
    matvec_block<kMatvecBlock<T>>(M, rows, ld, x, i0, accumulate, out);
  switch ((ld - i0) / kLanes) {
    case 3: matvec_block<3 * kLanes>(M, rows, ld, x, i0, accumulate, out); break;
    case 2: matvec_block<2 * kLanes>(M, rows, ld, x, i0, accumulate, out); break;
    case 1: matvec_block<kLanes>(M, rows, ld, x, i0, accumulate, out); break;
    default: break;
  }
}

// The coupling of nb <= kGroup simulations that share W, in one pass over W: c_k = W E_k for each k
// (E [nb] rows of ld, c [nb] rows of ld). Each W row segment is loaded once for all nb simulations
// (the single matvec loads all of W, from L2 at N = 100, once per simulation, and those loads bound
// it). Every c_k[i] is the same sum in the same order as matvec_block's (the even rows, the odd
// rows, then their sum), so a simulation's result does not depend on which others share its pass;
// the even and the odd rows are two sweeps, so one sweep's NB x 2 vectors of accumulators, the two
// W vectors and a broadcast fit AVX2's 16 registers.
constexpr int kGroup = 4;

// One 32-byte vector of T (GCC vector extension), for the W values and accumulators of the group
// matvec, held in registers (as plain arrays GCC folds the W loads into every FMA: NB loads per W
// vector instead of one). Two of them span 16 floats or 8 doubles, so they tile ld.
typedef float Float8 __attribute__((vector_size(32)));
typedef double Double4 __attribute__((vector_size(32)));
template <class T>
using Vector = std::conditional_t<std::is_same_v<T, float>, Float8, Double4>;
template <class T>
constexpr int kVectorLanes = 32 / sizeof(T);

// v in every lane: v - (+0) is v exactly (-0 included), and the compiler folds it to one
// broadcast (a lane-by-lane fill of floats becomes a chain of inserts).
template <class T>
Vector<T> splat(T v) {
  return v - Vector<T>{};
}

// out[k] = sum over rows r0, r0 + 2, ... < rows of M[r, i0 : i0 + 2 lanes] x_k[r], in row order,
// each term a fused multiply-add as in matvec_block.
template <int NB, class T>
void matvec_rows_group(const T* M, int64_t r0, int64_t rows, int64_t ld, const T* const* x, int64_t i0,
                       Vector<T> (&out)[NB][2]) {
  Vector<T> acc[NB][2] = {};  // local, so that the stores through x's type cannot alias it
  for (int64_t r = r0; r < rows; r += 2) {
    Vector<T> m0, m1;
    std::memcpy(&m0, M + r * ld + i0, sizeof m0);
    std::memcpy(&m1, M + r * ld + i0 + kVectorLanes<T>, sizeof m1);
#if defined(__x86_64__)
    // Pins m0, m1 to registers: GCC would otherwise fold their loads into each of the NB FMAs,
    // and the loads, not the FMAs, would bound the loop.
    asm("" : "+x"(m0), "+x"(m1));
#endif
#pragma GCC unroll 4
    for (int k = 0; k < NB; ++k) {
      const Vector<T> xr = splat(x[k][r]);
      acc[k][0] += m0 * xr;
      acc[k][1] += m1 * xr;
    }
  }
  for (int k = 0; k < NB; ++k) out[k][0] = acc[k][0], out[k][1] = acc[k][1];
}

// out[k] (+)= M^T x[k] for k < NB, matvec_transposed's sums for each.
template <int NB, class T>
void matvec_group(const T* M, int64_t rows, int64_t ld, const T* const* x, bool accumulate, T* const* out) {
  Vector<T> even[NB][2], odd[NB][2];
  for (int64_t i0 = 0; i0 < ld; i0 += 2 * kVectorLanes<T>) {
    matvec_rows_group<NB>(M, 0, rows, ld, x, i0, even);
    matvec_rows_group<NB>(M, 1, rows, ld, x, i0, odd);
    for (int k = 0; k < NB; ++k)
      for (int h = 0; h < 2; ++h) {
        T* o = out[k] + i0 + h * kVectorLanes<T>;
        Vector<T> base{};                                       // matvec_block's (out or 0) + (even + odd)
        if (accumulate) std::memcpy(&base, o, sizeof base);
        const Vector<T> sum = base + (even[k][h] + odd[k][h]);
        std::memcpy(o, &sum, sizeof sum);
      }
  }
}

// out[k] (+)= M^T x[k] for the nb <= kGroup simulations of a group, in one pass over M (one
// simulation: matvec_transposed, whose wider blocks suit a single vector; the same sums).
template <class T>
void matvec_transposed_group(const T* M, int64_t rows, int64_t ld, int nb, const T* const* x, bool accumulate,
                             T* const* out) {
  static_assert(kGroup == 4, "one case per group size");
  switch (nb) {
    case 4: matvec_group<4>(M, rows, ld, x, accumulate, out); break;
    case 3: matvec_group<3>(M, rows, ld, x, accumulate, out); break;
    case 2: matvec_group<2>(M, rows, ld, x, accumulate, out); break;
    default: matvec_transposed(M, rows, ld, x[0], accumulate, out[0]); break;
  }
}

// Forward phase 1 of nb <= kGroup simulations sharing W (one pass over W; sims[0] holds it):
// c_k = W E_k (- rowsum * E_k for the Laplacian), c_k,i = sum_j Wt[j, i] E_k,j.
template <class T, class Cfg>
void coupling_group(const Cfg& cfg, const SimLocal<T>& shared, int nb, const T* const* E, T* const* c) {
  const int64_t ld = shared.ld;
  matvec_transposed_group(shared.Wt.data(), shared.N, ld, nb, E, false, c);
  for (int k = 0; k < nb; ++k) {
    T* ck = c[k];
    const T* Ek = E[k];
#pragma omp simd
    for (int64_t i = 0; i < ld; ++i) ck[i] = coupling_finish(cfg, ck[i], shared.rowsum[i], Ek[i]);
  }
}

// G [N, N] += sum over n steps of the outer product gc_k E_k^T: G_ij += sum_k gc[k, i] E[k, j].
// gc rows have stride gc_stride, E rows E_stride, both >= ld (padded nodes have gc = 0 and are not
// written). A register tile of 4 rows x 16 columns accumulates one segment's n <= K terms in T (a
// full vector of floats per row: half the instructions of double) and adds them to G in double, so
// float rounding grows with K ~ sqrt(T), not with T.
template <class T>
void accumulate_outer(double* G, int64_t N, int64_t ld, const T* gc, int64_t gc_stride, const T* E, int64_t E_stride,
                      int64_t n) {
  constexpr int RI = 4, CJ = 16;
  for (int64_t i0 = 0; i0 < N; i0 += RI) {
    for (int64_t j0 = 0; j0 < N; j0 += CJ) {
      T acc[RI][CJ] = {};
      for (int64_t k = 0; k < n; ++k) {
        const T* e = E + k * E_stride + j0;
        const T* g = gc + k * gc_stride + i0;
        for (int r = 0; r < RI; ++r) {
          const T gr = i0 + r < ld ? g[r] : T(0);
#pragma omp simd
          for (int jj = 0; jj < CJ; ++jj) acc[r][jj] += gr * e[jj];
        }
      }
      for (int r = 0; r < RI && i0 + r < N; ++r)
        for (int jj = 0; jj < CJ && j0 + jj < N; ++jj) G[(i0 + r) * N + j0 + jj] += double(acc[r][jj]);
    }
  }
}

// Words 0 and 1 of every node's Philox block at global step tg: w0, w1 [ld], ld a multiple of 8.
void philox_words(uint64_t seed, uint32_t stream, uint64_t tg, int64_t ld, uint32_t* w0, uint32_t* w1) {
#ifdef NMMFIT_PHILOX_LANES8
  for (int64_t i = 0; i < ld; i += 8) {
    const Philox4T<Lanes8> w = philox_node_step(seed, stream, tg, Lanes8::iota(static_cast<uint32_t>(i)));
    w.v[0].store(w0 + i);
    w.v[1].store(w1 + i);
  }
#else
#pragma omp simd
  for (int64_t i = 0; i < ld; ++i) {
    const Philox4 w = philox_node_step(seed, stream, tg, static_cast<uint32_t>(i));
    w0[i] = w.v[0];
    w1[i] = w.v[1];
  }
#endif
}

// The step's noise for all nodes, xi [2, ld]: the same values as node_noise() node by node,
// computed as four loops (Philox words, radius, cos, sin) that each vectorise; in one loop GCC would
// fuse sin and cos into sincos, which has no vector variant it can call.
template <class T>
void noise_all(const Sizes& z, uint32_t stream, int64_t t, int64_t ld, uint32_t* w0, uint32_t* w1, T* xi) {
  if (!z.noise) {
    std::fill(xi, xi + 2 * ld, T(0));
    return;
  }
  philox_words(z.seed, stream, z.step_offset + static_cast<uint64_t>(t), ld, w0, w1);
  T* rad = xi + ld;  // the radius is parked in the xi_I row until the sin loop overwrites it
#pragma omp simd
  for (int64_t i = 0; i < ld; ++i) rad[i] = box_muller_radius<T>(w0[i]);
#pragma omp simd
  for (int64_t i = 0; i < ld; ++i) xi[i] = rad[i] * std::cos(box_muller_angle<T>(w1[i]));
#pragma omp simd
  for (int64_t i = 0; i < ld; ++i) xi[ld + i] = rad[i] * std::sin(box_muller_angle<T>(w1[i]));
}

// Phase 2 of a forward step, after the coupling c [ld] and the step's noise xi [2, ld]: every node's
// update of S [6, ld] in place. The hemodynamic switch is hoisted out of the node loop.
template <class T, class Cfg>
void step_nodes(const Sizes& z, const Cfg& cfg, SimLocal<T>& sim, int64_t t, const T* c, const T* xi, T* S) {
  const int64_t ld = sim.ld;
  const T* P = sim.P.data();
  const T* u = sim.input_at(z, t);
  if (is_hemo_step(cfg, t)) {
#pragma omp simd
    for (int64_t i = 0; i < ld; ++i) forward_node(cfg, P, ld, i, c[i], u[i], xi, true, S);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < ld; ++i) forward_node(cfg, P, ld, i, c[i], u[i], xi, false, S);
  }
}

// One forward step of the nb <= kGroup simulations of a group (nb > 1 only when they share W: one
// coupling pass for all; sims[0] holds W): S[k] [6, ld] in place; c[k] [ld] and xi[k] [2, ld]
// receive the step's coupling and noise (the backward pass keeps them for its segment). On its
// predecessor's stream a simulation draws the same noise (seed and step are shared): common random
// numbers are drawn once per group and copied, as cuBNM draws one noise for all.
template <class T, class Cfg>
void step_group(const Sizes& z, const Cfg& cfg, SimLocal<T>* sims, int nb, const int64_t* stream, int64_t t,
                T* const* c, T* const* xi, T* const* S) {
  const int64_t ld = sims[0].ld;
  coupling_group(cfg, sims[0], nb, S, c);
  for (int k = 0; k < nb; ++k) {
    if (k == 0 || stream[k] != stream[k - 1])
      noise_all(z, static_cast<uint32_t>(stream[k]), t, ld, sims[k].w0.data(), sims[k].w1.data(), xi[k]);
    else
      std::copy_n(xi[k - 1], 2 * ld, xi[k]);
    step_nodes(z, cfg, sims[k], t, c[k], xi[k], S[k]);
  }
}

// The forward walk of nb <= kGroup simulations b0, ..., b0 + nb - 1 in step (nb > 1 only when they
// share W: one coupling pass for all), segment by segment, a checkpoint at each start; stops early
// on SIGINT (interrupt.h), checked between segments, and the op then raises. sims, S: kGroup
// per-thread buffers (S[k] [6, ld]).
template <class T, class Cfg>
void forward_group(const ForwardArgs<T>& a, const Cfg& cfg, int64_t b0, int nb, std::vector<SimLocal<T>>& sims,
                   std::vector<std::vector<T>>& S) {
  const Sizes& z = a.z;
  const int64_t N = z.N, ld = sims[0].ld;
  T *state[kGroup], *c[kGroup], *xi[kGroup];
  for (int k = 0; k < nb; ++k) {
    const int64_t b = b0 + k;
    sims[k].load(a.W + b * a.W_bstride, a.params + state_offset(z, b), a.u ? a.u + input_offset(z, b, 0) : nullptr,
                 false);
    unpack_state(a.state0 + state_offset(z, b), N, ld, S[k].data());
    state[k] = S[k].data();
    c[k] = sims[k].c.data();
    xi[k] = sims[k].xi.data();
  }
  for (int64_t s = 0; s < z.n_segments() && !interrupt_requested(); ++s) {
    const Segment seg = segment(z, s);
    for (int k = 0; k < nb; ++k) pack_state(state[k], N, ld, a.ckpt + checkpoint_offset(z, b0 + k, s));
    for (int64_t t = seg.t0; t < seg.t0 + seg.n; ++t) {
      step_group(z, cfg, sims.data(), nb, a.stream + b0, t, c, xi, state);
      if (is_sample_step(z, t) || is_record_step(z, t))
        for (int k = 0; k < nb; ++k)
          for (int64_t i = 0; i < N; ++i)
            emit_node(z, cfg, t, i, state[k], ld, a.bold + samples_offset(z, b0 + k),
                      a.E_rec + records_offset(z, b0 + k), a.I_rec + records_offset(z, b0 + k));
    }
  }
  for (int k = 0; k < nb; ++k) pack_state(state[k], N, ld, a.state + state_offset(z, b0 + k));
}

// Adjoint phase 1 over all nodes; Hemo a template argument so the switch leaves the loop.
template <bool Hemo, class T, class Cfg>
void adjoint_all(const Cfg& cfg, const T* P, int64_t ld, const T* S_k, const T* c_k, const T* u_k, const T* xi_k,
                 const T* rowsum, T* L, T* gc_k, T* gu_k, T* gp) {
#pragma omp simd
  for (int64_t i = 0; i < ld; ++i) {
    NodeParams<T> gpi = load_params(gp, ld, i);
    gu_k[i] = adjoint_node(cfg, P, ld, i, S_k, c_k[i], u_k[i], xi_k, Hemo, rowsum[i], L, gc_k, gpi);
    store_params(gp, ld, i, gpi);
  }
}

// One recomputed segment, padded layout: S: K + 1 states [6, ld]; c: K x [ld] couplings; xi:
// K x [2, ld] noise; gc: K x [ld] the adjoint's coupling cotangents (with S, the segment's dL/dW
// terms). O(K N); two per simulation when its recompute and adjoint run on two threads.
template <class T>
struct SegmentStates {
  std::vector<T> S, c, xi, gc;
  SegmentStates(int64_t K, int64_t ld) : S((K + 1) * kNumVars * ld), c(K * ld), xi(K * 2 * ld), gc(K * ld) {}
};

// The adjoint's buffers: one step's dL/du gu [ld], the running cotangent L [6, ld] and the parameter
// cotangents: gp_seg [6, ld] sums one segment's n <= K steps in T (the adjoint loop stays one vector
// width), gp [6, ld] the segments in double, so rounding grows with K ~ sqrt(T), not T.
template <class T>
struct AdjointBuffers {
  std::vector<T> gu, L, gp_seg;
  std::vector<double> gp;
  explicit AdjointBuffers(int64_t ld) : gu(ld), L(kNumVars * ld), gp_seg(kNumParams * ld), gp(kNumParams * ld) {}
};

// Segment s of simulations b0, ..., b0 + nb - 1 (a group, or one) recomputed forward from their
// checkpoints into w[k] (noise re-drawn from Philox, never stored across segments). sims: loaded
// with their W, parameters and input.
template <class T, class Cfg>
void recompute_segment(const BackwardArgs<T>& a, const Cfg& cfg, int64_t b0, int nb, int64_t s, SimLocal<T>* sims,
                       SegmentStates<T>* w) {
  const Sizes& z = a.z;
  const int64_t ld = sims[0].ld, l6 = kNumVars * ld;
  const auto [t0, n] = segment(z, s);
  for (int k = 0; k < nb; ++k) unpack_state(a.ckpt + checkpoint_offset(z, b0 + k, s), z.N, ld, w[k].S.data());
  T *state[kGroup], *c[kGroup], *xi[kGroup];
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < nb; ++k) {
      T* S_i = w[k].S.data() + i * l6;
      std::copy_n(S_i, l6, S_i + l6);
      state[k] = S_i + l6;
      c[k] = w[k].c.data() + i * ld;
      xi[k] = w[k].xi.data() + i * 2 * ld;
    }
    step_group(z, cfg, sims, nb, a.stream + b0, t0 + i, c, xi, state);
  }
}

// One adjoint step t of simulation b, phase 1 (output cotangents, the node loop: fills gc_k and
// adj's parameter cotangents of the segment); phase 2 (lambda_E += W^T gc) is the caller's.
template <class T, class Cfg>
void adjoint_step_nodes(const BackwardArgs<T>& a, const Cfg& cfg, int64_t b, int64_t t, SimLocal<T>& sim,
                        const T* S_k, const T* c_k, const T* xi_k, T* gc_k, AdjointBuffers<T>& adj) {
  const Sizes& z = a.z;
  const int64_t N = z.N, ld = sim.ld;
  const T* gbold_b = a.grad_bold ? a.grad_bold + samples_offset(z, b) : nullptr;
  const T* gE_b = a.grad_E_rec ? a.grad_E_rec + records_offset(z, b) : nullptr;
  const T* gI_b = a.grad_I_rec ? a.grad_I_rec + records_offset(z, b) : nullptr;
  T* L = adj.L.data();
  if (is_sample_step(z, t) || is_record_step(z, t))
    for (int64_t i = 0; i < N; ++i)
      output_cotangents_node(z, cfg, t, i, S_k + kNumVars * ld, ld, gbold_b, gE_b, gI_b, L);
  const T* u_k = sim.input_at(z, t);
  if (is_hemo_step(cfg, t))
    adjoint_all<true>(cfg, sim.P.data(), ld, S_k, c_k, u_k, xi_k, sim.rowsum.data(), L, gc_k, adj.gu.data(),
                      adj.gp_seg.data());
  else
    adjoint_all<false>(cfg, sim.P.data(), ld, S_k, c_k, u_k, xi_k, sim.rowsum.data(), L, gc_k, adj.gu.data(),
                       adj.gp_seg.data());
  if (a.grad_u)
    for (int64_t i = 0; i < N; ++i) add_grad_input(a.grad_u, z, b, t, i, adj.gu[i]);
}

// The adjoint steps of segment s of simulations b0, ..., b0 + nb - 1, in reverse through their
// recomputed states w[k]: updates adj[k]'s running cotangent L and parameter cotangents, and fills
// w[k].gc. sims: loaded with their W rows (Wr; a group's in sims[0]), parameters and input.
template <class T, class Cfg>
void adjoint_segment(const BackwardArgs<T>& a, const Cfg& cfg, int64_t b0, int nb, int64_t s, SimLocal<T>* sims,
                     SegmentStates<T>* w, AdjointBuffers<T>* adj) {
  const int64_t N = a.z.N, ld = sims[0].ld, l6 = kNumVars * ld;
  const auto [t0, n] = segment(a.z, s);
  for (int k = 0; k < nb; ++k) std::fill(adj[k].gp_seg.begin(), adj[k].gp_seg.end(), T(0));
  T *gc[kGroup], *L[kGroup];
  for (int k = 0; k < nb; ++k) L[k] = adj[k].L.data();
  for (int64_t i = n - 1; i >= 0; --i) {
    for (int k = 0; k < nb; ++k) {
      gc[k] = w[k].gc.data() + i * ld;
      adjoint_step_nodes(a, cfg, b0 + k, t0 + i, sims[k], w[k].S.data() + i * l6, w[k].c.data() + i * ld,
                         w[k].xi.data() + i * 2 * ld, gc[k], adj[k]);
    }
    // Phase 2: lambda_E += W^T gc: lambda_E_j += sum_i Wr[i, j] gc_i (the group's in one pass).
    matvec_transposed_group(sims[0].Wr.data(), N, ld, nb, gc, true, L);
  }
  for (int k = 0; k < nb; ++k) {
#pragma omp simd
    for (int64_t e = 0; e < kNumParams * ld; ++e) adj[k].gp[e] += double(adj[k].gp_seg[e]);
  }
}

// G [N, N] (double, or nullptr: dL/dW not asked) += segment s's sum_t gc_t E_t^T, from w after its
// adjoint. Segments are added last first, whichever thread adds them.
template <class T>
void outer_segment(const Sizes& z, int64_t s, int64_t ld, const SegmentStates<T>& w, double* G) {
  if (G) accumulate_outer(G, z.N, ld, w.gc.data(), ld, w.S.data(), kNumVars * ld, segment(z, s).n);
}

// Simulation b's cotangents before its first segment: L from grad_state (or 0), gp = 0.
template <class T>
void adjoint_begin(const BackwardArgs<T>& a, int64_t b, int64_t ld, AdjointBuffers<T>& adj) {
  std::fill(adj.L.begin(), adj.L.end(), T(0));
  if (a.grad_state)
    for (int64_t v = 0; v < kNumVars; ++v)
      std::copy_n(a.grad_state + state_offset(a.z, b) + v * a.z.N, a.z.N, adj.L.data() + v * ld);
  std::fill(adj.gp.begin(), adj.gp.end(), 0.0);
}

// Simulation b's cotangents after its last segment: dL/dstate0 and dL/dparams.
template <class T>
void adjoint_end(const BackwardArgs<T>& a, int64_t b, int64_t ld, const AdjointBuffers<T>& adj) {
  const int64_t N = a.z.N;
  pack_state(adj.L.data(), N, ld, a.grad_state0 + state_offset(a.z, b));
  for (int64_t p = 0; p < kNumParams; ++p)
    for (int64_t i = 0; i < N; ++i) a.grad_params[state_offset(a.z, b) + p * N + i] = T(adj.gp[p * ld + i]);
}

// The adjoint of simulations b0, ..., b0 + nb - 1 on one thread (nb > 1: a group sharing W, in
// lockstep, one pass over W per coupling): walks the checkpoint segments in reverse, recomputes
// each, runs the adjoint steps through it and adds its dL/dW terms to G[k] (or none: nullptr).
// Every simulation's arithmetic is its own run's, in the same order, whatever the group. Stops early
// on SIGINT as forward_group does.
template <class T, class Cfg>
void backward_group(const BackwardArgs<T>& a, const Cfg& cfg, int64_t b0, int nb, SimLocal<T>* sims,
                    SegmentStates<T>* w, AdjointBuffers<T>* adj, double* const* G) {
  for (int k = 0; k < nb; ++k) {
    const int64_t b = b0 + k;
    sims[k].load(a.W + b * a.W_bstride, a.params + state_offset(a.z, b), a.u ? a.u + input_offset(a.z, b, 0) : nullptr,
                 k == 0);
    adjoint_begin(a, b, sims[k].ld, adj[k]);
  }
  for (int64_t s = a.z.n_segments() - 1; s >= 0 && !interrupt_requested(); --s) {
    recompute_segment(a, cfg, b0, nb, s, sims, w);
    adjoint_segment(a, cfg, b0, nb, s, sims, w, adj);
    for (int k = 0; k < nb; ++k) outer_segment(a.z, s, sims[k].ld, w[k], G[k]);
  }
  for (int k = 0; k < nb; ++k) adjoint_end(a, b0 + k, sims[k].ld, adj[k]);
}

// The handoff between the two threads of a pipelined adjoint: segment j (counted from the last)
// is recomputed into buffer j % 2 while the adjoint runs through segment j - 1 in the other.
struct SegmentPipe {
  std::atomic<int64_t> recomputed{0}, consumed{0};
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> changes{0};  // bumped at every publication, to wake a sleeping waiter
  std::atomic<int> sleepers{0};      // so that a publication makes no system call when none sleeps

  // Waits until ready(): spins a few microseconds (a handoff on an idle machine is that quick), then
  // sleeps on `changes` (a futex), so that on a loaded machine a waiting thread gives its core to
  // the thread it waits for instead of spinning it away. false when the other thread stopped.
  template <class F>
  bool wait(F ready) {
    constexpr int kSpins = 2000;
    for (int spins = 0; !stop.load() && !ready(); ++spins) {
      if (spins < kSpins) continue;
      sleepers.fetch_add(1);
      const uint32_t seen = changes.load();
      if (!stop.load() && !ready()) changes.wait(seen);
      sleepers.fetch_sub(1);
    }
    return !stop.load();
  }
  void publish(std::atomic<int64_t>& counter, int64_t value) {
    counter.store(value, std::memory_order_release);
    wake();
  }
  void halt() {
    stop.store(true);
    wake();
  }

 private:
  // Sequentially consistent: a waiter counted in `sleepers` after this bump sees the bump, and
  // so the publication, before it sleeps.
  void wake() {
    changes.fetch_add(1);
    if (sleepers.load() > 0) changes.notify_all();
  }
};

// The adjoint of simulation b on two threads. Role 1 runs the adjoint of segment j (counted from
// the last) once role 0 has recomputed it into w[j % 2]; role 0, before recomputing segment j into
// that buffer, adds segment j - 2's dL/dW terms from it (the outer products cost as much as a
// coupling pass: this balances the two). The same arithmetic in the same order as backward_group, so
// the result is bitwise the same. Each role has its own sim (the input row cache is per thread).
template <class T, class Cfg>
void backward_pipelined(const BackwardArgs<T>& a, const Cfg& cfg, int64_t b, int role, SimLocal<T>& sim,
                        SegmentStates<T>* w, AdjointBuffers<T>& adj, double* G, SegmentPipe& pipe) {
  const int64_t n_seg = a.z.n_segments();
  const auto segment_of = [&](int64_t j) { return n_seg - 1 - j; };
  sim.load(a.W + b * a.W_bstride, a.params + state_offset(a.z, b), a.u ? a.u + input_offset(a.z, b, 0) : nullptr,
           role == 1);
  if (role == 1) adjoint_begin(a, b, sim.ld, adj);
  for (int64_t j = 0; j < n_seg; ++j) {
    if (interrupt_requested()) {
      pipe.halt();
      return;
    }
    if (role == 0) {
      if (!pipe.wait([&] { return j - pipe.consumed.load(std::memory_order_acquire) < 2; })) return;
      if (j >= 2) outer_segment(a.z, segment_of(j - 2), sim.ld, w[j % 2], G);
      recompute_segment(a, cfg, b, 1, segment_of(j), &sim, &w[j % 2]);
      pipe.publish(pipe.recomputed, j + 1);
    } else {
      if (!pipe.wait([&] { return pipe.recomputed.load(std::memory_order_acquire) > j; })) return;
      adjoint_segment(a, cfg, b, 1, segment_of(j), &sim, &w[j % 2], &adj);
      pipe.publish(pipe.consumed, j + 1);
    }
  }
  if (role == 1) {
    adjoint_end(a, b, sim.ld, adj);
    return;
  }
  if (!pipe.wait([&] { return pipe.consumed.load(std::memory_order_acquire) == n_seg; })) return;
  for (int64_t j = std::max<int64_t>(n_seg - 2, 0); j < n_seg; ++j)
    outer_segment(a.z, segment_of(j), sim.ld, w[j % 2], G);
}

// out [N, N] = dL/dW from G_ij = sum_t gc_i E_j (schedule.h's finish rule).
template <class T>
void write_grad_W(const Config& cfg, const double* G, int64_t N, T* out) {
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) out[i * N + j] = grad_W_value<T>(cfg.coupling, G[i * N + j], G[i * N + i]);
}

}  // namespace

template <class T>
void simulate_forward_cpu(const ForwardArgs<T>& a) {
  const int64_t N = a.z.N;
  const int64_t B = a.z.B;
  with_config(a.z.cfg, [&](const auto& cfg) {
#pragma omp parallel
    {
      // Simulations sharing W go in groups of up to kGroup, as many as leave every thread a group.
      const int64_t per_thread = (B + omp_get_num_threads() - 1) / omp_get_num_threads();
      const int64_t group = a.W_bstride == 0 ? std::clamp<int64_t>(per_thread, 1, kGroup) : 1;
      std::vector<SimLocal<T>> sims(group, SimLocal<T>(N));
      std::vector<std::vector<T>> S(group, std::vector<T>(kNumVars * padded(N)));
#pragma omp for schedule(dynamic, 1)
      for (int64_t b0 = 0; b0 < B; b0 += group)
        forward_group(a, cfg, b0, static_cast<int>(std::min(group, B - b0)), sims, S);
    }
  });
}

// Simulations [b_begin, b_end) on this thread in groups of up to `group` (group > 1 only when
// they share W and each has its own chunk buffer in G_shared, so that no sum depends on the
// grouping); G_shared: the shared W's gradient buffer of their chunk (one per simulation when
// grouped), or nullptr: each writes its own dL/dW, or none is asked.
template <class T, class Cfg>
void backward_serial(const BackwardArgs<T>& a, const Cfg& cfg, int64_t b_begin, int64_t b_end, int group,
                     double* G_shared) {
  const int64_t N = a.z.N, K = std::min(a.z.checkpoint_every, a.z.n_steps), ld = padded(N);
  const bool own_W = a.grad_W && a.W_bstride != 0;
  std::vector<SimLocal<T>> sims(group, SimLocal<T>(N));
  std::vector<SegmentStates<T>> w(group, SegmentStates<T>(K, ld));
  std::vector<AdjointBuffers<T>> adj(group, AdjointBuffers<T>(ld));
  std::vector<double> G_own(own_W ? N * N : 0);
  for (int64_t b0 = b_begin; b0 < b_end; b0 += group) {
    const int nb = static_cast<int>(std::min<int64_t>(group, b_end - b0));
    double* G[kGroup];
    for (int k = 0; k < nb; ++k) {
      if (own_W) G[k] = G_own.data();
      else G[k] = G_shared ? G_shared + (group > 1 ? k * N * N : 0) : nullptr;
    }
    std::fill(G_own.begin(), G_own.end(), 0.0);
    backward_group(a, cfg, b0, nb, sims.data(), w.data(), adj.data(), G);
    if (own_W) write_grad_W(a.z.cfg, G_own.data(), N, a.grad_W + b0 * N * N);
    if (G_shared && group > 1) G_shared += nb * N * N;
  }
}

// Thread tid of 2B: simulation tid / 2, in the role tid % 2 of backward_pipelined.
template <class T, class Cfg>
void backward_pair(const BackwardArgs<T>& a, const Cfg& cfg, int tid, std::vector<SegmentStates<T>>& states,
                   SegmentPipe* pipes, double* G_shared) {
  const int64_t N = a.z.N, b = tid / 2;
  const int role = tid % 2;
  const bool own_W = a.grad_W && a.W_bstride != 0 && role == 0;     // role 0 adds the dL/dW terms
  SimLocal<T> sim(N);
  AdjointBuffers<T> adj(role == 1 ? sim.ld : 0);
  std::vector<double> G_own(own_W ? N * N : 0);
  backward_pipelined(a, cfg, b, role, sim, states.data() + 2 * b, adj, own_W ? G_own.data() : G_shared, pipes[b]);
  if (own_W && !pipes[b].stop.load()) write_grad_W(a.z.cfg, G_own.data(), N, a.grad_W + b * N * N);
}

template <class T>
void simulate_backward_cpu(const BackwardArgs<T>& a) {
  const int64_t N = a.z.N, B = a.z.B;
  const bool shared_W = a.W_bstride == 0;
  // Simulations sharing W accumulate its gradient in chunks summed in a fixed order, so the result
  // does not depend on the thread count. The chunks split B into min(B, kMaxChunks) near-equal runs
  // (not runs of a fixed length): each chunk is one task, so B = 8 still gives every thread work,
  // and the chunks' G [N, N] buffers stay bounded in B.
  constexpr int64_t kMaxChunks = 16;
  const int64_t n_chunks = std::min(B, kMaxChunks);
  const auto chunk_start = [&](int64_t chunk) { return chunk * B / n_chunks; };
  std::vector<double> G_chunks(a.grad_W && shared_W ? n_chunks * N * N : 0);
  const auto G_of_chunk = [&](int64_t chunk) { return G_chunks.empty() ? nullptr : G_chunks.data() + chunk * N * N; };
  // With two threads or more per simulation, each simulation's recompute and adjoint run as a
  // pipeline on two of them (then B <= kMaxChunks: every simulation is its own chunk).
  const int64_t pairs = a.z.n_segments() > 1 && B <= kMaxChunks && 2 * B <= omp_get_max_threads() ? B : 0;
  std::vector<SegmentStates<T>> states;
  for (int64_t k = 0; k < 2 * pairs; ++k) states.emplace_back(std::min(a.z.checkpoint_every, a.z.n_steps), padded(N));
  std::unique_ptr<SegmentPipe[]> pipes(new SegmentPipe[std::max<int64_t>(pairs, 1)]);
  with_config(a.z.cfg, [&](const auto& cfg) {
    if (pairs > 0) {
#pragma omp parallel num_threads(2 * pairs)
      {
        // Every thread sees the same team size; a smaller team than asked runs the simulations serially.
        if (omp_get_num_threads() == 2 * pairs) {
          backward_pair(a, cfg, omp_get_thread_num(), states, pipes.get(), G_of_chunk(omp_get_thread_num() / 2));
        } else {
#pragma omp for schedule(dynamic, 1)
          for (int64_t chunk = 0; chunk < n_chunks; ++chunk)
            backward_serial(a, cfg, chunk_start(chunk), chunk_start(chunk + 1), 1, G_of_chunk(chunk));
        }
      }
      return;
    }
    if (shared_W && B <= kMaxChunks) {
      // Simulations sharing W step together in groups, as in the forward (each is its own chunk).
#pragma omp parallel
      {
        const int64_t per_thread = (B + omp_get_num_threads() - 1) / omp_get_num_threads();
        const int group = static_cast<int>(std::clamp<int64_t>(per_thread, 1, kGroup));
#pragma omp for schedule(dynamic, 1)
        for (int64_t b0 = 0; b0 < B; b0 += group)
          backward_serial(a, cfg, b0, std::min<int64_t>(b0 + group, B), group, G_of_chunk(b0));
      }
      return;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t chunk = 0; chunk < n_chunks; ++chunk)
      backward_serial(a, cfg, chunk_start(chunk), chunk_start(chunk + 1), 1, G_of_chunk(chunk));
  });
  if (a.grad_W && shared_W) {
    for (int64_t chunk = 1; chunk < n_chunks; ++chunk)
      for (int64_t e = 0; e < N * N; ++e) G_chunks[e] += G_chunks[chunk * N * N + e];
    write_grad_W(a.z.cfg, G_chunks.data(), N, a.grad_W);
  }
}

template <class T>
void noise_cpu(uint64_t seed, const int64_t* stream, int64_t B, int64_t N, int64_t n_steps, uint64_t step_offset,
               T* out) {
  Sizes z{};
  z.N = N;
  z.seed = seed;
  z.step_offset = step_offset;
  z.noise = true;
  const int64_t ld = padded(N);
#pragma omp parallel
  {
    std::vector<uint32_t> w0(ld), w1(ld);
    std::vector<T> xi(2 * ld);
#pragma omp for collapse(2)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n_steps; ++t) {
        noise_all(z, static_cast<uint32_t>(stream[b]), t, ld, w0.data(), w1.data(), xi.data());
        T* o = out + (b * n_steps + t) * 2 * N;
        std::copy_n(xi.data(), N, o);
        std::copy_n(xi.data() + ld, N, o + N);
      }
  }
}

#define NMMFIT_INSTANTIATE(T)                                          \
  template void simulate_forward_cpu<T>(const ForwardArgs<T>&);        \
  template void simulate_backward_cpu<T>(const BackwardArgs<T>&);      \
  template void noise_cpu<T>(uint64_t, const int64_t*, int64_t, int64_t, int64_t, uint64_t, T*);
NMMFIT_INSTANTIATE(float)
NMMFIT_INSTANTIATE(double)

}  // namespace nmmfit
