// CPU executor: OpenMP over simulations; each phase of the step program is a loop over nodes.
#include "simulate_cpu.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "nmmfit/program.h"

namespace nmmfit {
namespace {

// Forward phase 1: c = W E (- rowsum * E for the Laplacian). W [N, N] of this simulation, E [N].
template <class T>
void coupling(const Config& cfg, const T* W, const T* E, const T* rowsum, int64_t N, T* c) {
  for (int64_t i = 0; i < N; ++i) {
    const T* Wi = W + i * N;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < N; ++j) acc += Wi[j] * E[j];
    c[i] = cfg.coupling == kLaplacian ? acc - rowsum[i] * E[i] : acc;
  }
}

template <class T>
void row_sums(const T* W, int64_t N, T* rowsum) {
  for (int64_t i = 0; i < N; ++i) {
    T acc = 0;
    for (int64_t j = 0; j < N; ++j) acc += W[i * N + j];
    rowsum[i] = acc;
  }
}

template <class T>
void forward_one(const ForwardArgs<T>& a, int64_t b, std::vector<T>& S, std::vector<T>& c, std::vector<T>& rowsum) {
  const Sizes& z = a.z;
  const int64_t N = z.N, n6 = kNumVars * N;
  const T* W = a.W + b * a.W_bstride;
  const T* P = a.params + b * n6;
  const uint32_t stream = static_cast<uint32_t>(a.stream[b]);
  T* bold_b = a.bold + b * z.n_samples() * N;
  T* E_b = a.E_rec + b * z.n_records() * N;
  T* I_b = a.I_rec + b * z.n_records() * N;
  T* ckpt_b = a.ckpt + b * z.n_segments() * n6;
  std::copy_n(a.state0 + b * n6, n6, S.data());
  row_sums(W, N, rowsum.data());
  for (int64_t t = 0; t < z.n_steps; ++t) {
    if (t % z.checkpoint_every == 0) std::copy_n(S.data(), n6, ckpt_b + (t / z.checkpoint_every) * n6);
    coupling(z.cfg, W, S.data(), rowsum.data(), N, c.data());
    for (int64_t i = 0; i < N; ++i) forward_node<T>(z, P, stream, t, i, c[i], S.data(), nullptr);
    for (int64_t i = 0; i < N; ++i) emit_node<T>(z, t, i, S.data(), bold_b, E_b, I_b);
  }
  std::copy_n(S.data(), n6, a.state + b * n6);
}

// Per-thread buffers of the backward pass: one recomputed segment (K + 1 states, K couplings,
// noises and coupling cotangents) and the running cotangent. O(K N) per simulation in flight.
template <class T>
struct SegmentBuffers {
  std::vector<T> S, c, xi, gc, L, rowsum;
  std::vector<double> gp;
  SegmentBuffers(int64_t K, int64_t N)
      : S((K + 1) * kNumVars * N), c(K * N), xi(K * 2 * N), gc(K * N), L(kNumVars * N), rowsum(N), gp(kNumParams * N) {}
};

// The adjoint of one simulation: walks the checkpoint segments in reverse, recomputes each segment
// forward from its checkpoint (noise re-drawn from Philox, never stored across segments), then runs
// the adjoint steps through it. G [N, N] (double) accumulates sum_t gc_t E_t^T when grad_W is asked.
template <class T>
void backward_one(const BackwardArgs<T>& a, int64_t b, SegmentBuffers<T>& w, double* G) {
  const Sizes& z = a.z;
  const int64_t N = z.N, n6 = kNumVars * N, K = z.checkpoint_every;
  const T* W = a.W + b * a.W_bstride;
  const T* P = a.params + b * n6;
  const uint32_t stream = static_cast<uint32_t>(a.stream[b]);
  const T* gbold_b = a.grad_bold ? a.grad_bold + b * z.n_samples() * N : nullptr;
  const T* gE_b = a.grad_E_rec ? a.grad_E_rec + b * z.n_records() * N : nullptr;
  const T* gI_b = a.grad_I_rec ? a.grad_I_rec + b * z.n_records() * N : nullptr;
  row_sums(W, N, w.rowsum.data());
  if (a.grad_state) std::copy_n(a.grad_state + b * n6, n6, w.L.data());
  else std::fill(w.L.begin(), w.L.end(), T(0));
  std::fill(w.gp.begin(), w.gp.end(), 0.0);
  T* L = w.L.data();
  for (int64_t seg = z.n_segments() - 1; seg >= 0; --seg) {
    const int64_t t0 = seg * K, n = std::min(K, z.n_steps - t0);
    std::copy_n(a.ckpt + (b * z.n_segments() + seg) * n6, n6, w.S.data());
    for (int64_t k = 0; k < n; ++k) {
      T* S_k = w.S.data() + k * n6;
      std::copy_n(S_k, n6, S_k + n6);
      coupling(z.cfg, W, S_k, w.rowsum.data(), N, w.c.data() + k * N);
      for (int64_t i = 0; i < N; ++i)
        forward_node<T>(z, P, stream, t0 + k, i, w.c[k * N + i], S_k + n6, w.xi.data() + k * 2 * N);
    }
    for (int64_t k = n - 1; k >= 0; --k) {
      const T* S_k = w.S.data() + k * n6;
      T* gc_k = w.gc.data() + k * N;
      for (int64_t i = 0; i < N; ++i) {
        NodeParams<double> gp = load_params(w.gp.data(), N, i);
        adjoint_node<T, double>(z, P, S_k, S_k + n6, w.c[k * N + i], w.xi.data() + k * 2 * N, w.rowsum[i], t0 + k, i,
                                gbold_b, gE_b, gI_b, L, gc_k, gp);
        store_params(w.gp.data(), N, i, gp);
      }
      // Phase 2: lambda_E += W^T gc, as axpys over the rows of W.
      for (int64_t i = 0; i < N; ++i) {
        const T g = gc_k[i];
        const T* Wi = W + i * N;
#pragma omp simd
        for (int64_t j = 0; j < N; ++j) L[j] += Wi[j] * g;
      }
    }
    // dL/dW_ij = sum_t gc_t[i] E_t[j] over the segment: one [N, n] x [n, N] product, in double.
    if (G) {
      for (int64_t i = 0; i < N; ++i) {
        double* Gi = G + i * N;
        for (int64_t k = 0; k < n; ++k) {
          const double g = w.gc[k * N + i];
          const T* E_k = w.S.data() + k * n6;
#pragma omp simd
          for (int64_t j = 0; j < N; ++j) Gi[j] += g * double(E_k[j]);
        }
      }
    }
  }
  std::copy_n(L, n6, a.grad_state0 + b * n6);
  for (int64_t p = 0; p < n6; ++p) a.grad_params[b * n6 + p] = T(w.gp[p]);
}

// G_ij = sum_t gc_i E_j; the Laplacian's -rowsum_i E_i term adds -G_ii to every W_ij of row i.
template <class T>
void write_grad_W(const Config& cfg, const double* G, int64_t N, T* out) {
  for (int64_t i = 0; i < N; ++i) {
    const double diag = cfg.coupling == kLaplacian ? G[i * N + i] : 0.0;
    for (int64_t j = 0; j < N; ++j) out[i * N + j] = T(G[i * N + j] - diag);
  }
}

}  // namespace

template <class T>
void simulate_forward_cpu(const ForwardArgs<T>& a) {
  const int64_t N = a.z.N;
#pragma omp parallel
  {
    std::vector<T> S(kNumVars * N), c(N), rowsum(N);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < a.z.B; ++b) forward_one(a, b, S, c, rowsum);
  }
}

template <class T>
void simulate_backward_cpu(const BackwardArgs<T>& a) {
  const int64_t N = a.z.N, B = a.z.B;
  const bool shared_W = a.W_bstride == 0;
  // Simulations sharing W accumulate its gradient in fixed chunks summed in a fixed order, so the
  // result does not depend on the thread count.
  constexpr int64_t kChunk = 8;
  const int64_t n_acc = a.grad_W ? (shared_W ? (B + kChunk - 1) / kChunk : 1) : 0;
  std::vector<double> G_chunks(shared_W ? n_acc * N * N : 0);
#pragma omp parallel
  {
    SegmentBuffers<T> w(std::min(a.z.checkpoint_every, a.z.n_steps), N);
    std::vector<double> G_own(a.grad_W && !shared_W ? N * N : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t chunk = 0; chunk < (B + kChunk - 1) / kChunk; ++chunk) {
      for (int64_t b = chunk * kChunk; b < std::min(B, (chunk + 1) * kChunk); ++b) {
        double* G = nullptr;
        if (a.grad_W && shared_W) G = G_chunks.data() + chunk * N * N;
        if (a.grad_W && !shared_W) {
          std::fill(G_own.begin(), G_own.end(), 0.0);
          G = G_own.data();
        }
        backward_one(a, b, w, G);
        if (a.grad_W && !shared_W) write_grad_W(a.z.cfg, G, N, a.grad_W + b * N * N);
      }
    }
  }
  if (a.grad_W && shared_W) {
    for (int64_t chunk = 1; chunk < n_acc; ++chunk)
      for (int64_t e = 0; e < N * N; ++e) G_chunks[e] += G_chunks[chunk * N * N + e];
    write_grad_W(a.z.cfg, G_chunks.data(), N, a.grad_W);
  }
}

template <class T>
void noise_cpu(uint64_t seed, const int64_t* stream, int64_t B, int64_t N, int64_t n_steps, uint64_t step_offset,
               T* out) {
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < n_steps; ++t) {
      T* o = out + (b * n_steps + t) * 2 * N;
      for (int64_t i = 0; i < N; ++i)
        normal_pair<T>(seed, static_cast<uint32_t>(stream[b]), step_offset + t, static_cast<uint32_t>(i), o[i], o[N + i]);
    }
}

#define NMMFIT_INSTANTIATE(T)                                          \
  template void simulate_forward_cpu<T>(const ForwardArgs<T>&);        \
  template void simulate_backward_cpu<T>(const BackwardArgs<T>&);      \
  template void noise_cpu<T>(uint64_t, const int64_t*, int64_t, int64_t, int64_t, uint64_t, T*);
NMMFIT_INSTANTIATE(float)
NMMFIT_INSTANTIATE(double)

}  // namespace nmmfit
