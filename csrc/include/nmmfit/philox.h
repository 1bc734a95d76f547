// Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"; the Random123
// constants) and the Box-Muller map to the two normals one node draws per step.
// Torch-free, host and device. python/nmmfit/philox.py implements the identical function.
//
// Counter layout, shared by every executor and the reference:
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (t & 0xffffffff, t >> 32, node i, stream of simulation b)     t = global step
// Words x0, x1 give u = (x + 0.5) 2^-32 in the simulation's dtype; xi_E = r cos(2 pi u1),
// xi_I = r sin(2 pi u1) with r = sqrt(-2 ln u0). Noise is a pure function of (seed, stream, t, i),
// so the adjoint regenerates or re-derives it instead of storing the whole run.
#pragma once
#include <cmath>
#include <cstdint>

#include "nmmfit/hd.h"

namespace nmmfit {

// The four words of a Philox block. U is uint32_t, or on the CPU a vector of lanes (csrc/cpu/
// philox_lanes.h: one block per lane, so a loop over nodes draws a vector of blocks at once); a lane
// type provides philox_mulhilo, ^ and construction from a uint32_t (broadcast).
template <class U>
struct Philox4T {
  U v[4];
};
using Philox4 = Philox4T<uint32_t>;

NMM_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

template <class U>
NMM_HD Philox4T<U> philox4x32_10(Philox4T<U> ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  // Fully unrolled, so a loop over nodes around it vectorises on the CPU.
#ifdef __CUDA_ARCH__
#pragma unroll
#else
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) {
    U hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, ctr.v[0], hi0, lo0);
    philox_mulhilo(M1, ctr.v[2], hi1, lo1);
    ctr = Philox4T<U>{{hi1 ^ ctr.v[1] ^ U(k0), lo1, hi0 ^ ctr.v[3] ^ U(k1), lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// Box-Muller in two halves, so that an executor can run each as its own vectorisable loop:
// r = sqrt(-2 ln u0) from word 0, angle 2 pi u1 from word 1; u = (x + 0.5) 2^-32 in the dtype T.
template <class T>
NMM_HD T philox_uniform(uint32_t w) {
  constexpr T two_m32 = T(2.3283064365386963e-10);  // 2^-32, exact in float and double
  return (static_cast<T>(w) + T(0.5)) * two_m32;
}

template <class T>
NMM_HD T box_muller_radius(uint32_t w0) {
  using std::log;
  using std::sqrt;
  return sqrt(T(-2) * log(philox_uniform<T>(w0)));
}

template <class T>
NMM_HD T box_muller_angle(uint32_t w1) {
  return T(6.283185307179586) * philox_uniform<T>(w1);
}

// The block of node i (or of the nodes in the lanes of i) at global step t.
template <class U>
NMM_HD Philox4T<U> philox_node_step(uint64_t seed, uint32_t stream, uint64_t t, U i) {
  return philox4x32_10(Philox4T<U>{{U(static_cast<uint32_t>(t)), U(static_cast<uint32_t>(t >> 32)), i, U(stream)}},
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The two standard normals (xi_E, xi_I) of node i of a simulation with the given stream at global
// step t.
template <class T>
NMM_HD void normal_pair(uint64_t seed, uint32_t stream, uint64_t t, uint32_t i, T& xi_E, T& xi_I) {
  using std::cos;
  using std::sin;
  const Philox4 w = philox_node_step(seed, stream, t, i);
  const T r = box_muller_radius<T>(w.v[0]), a = box_muller_angle<T>(w.v[1]);
  xi_E = r * cos(a);
  xi_I = r * sin(a);
}

}  // namespace nmmfit
