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

struct Philox4 {
  uint32_t v[4];
};

NMM_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

NMM_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, ctr.v[0], hi0, lo0);
    philox_mulhilo(M1, ctr.v[2], hi1, lo1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// The two standard normals (xi_E, xi_I) of node i of a simulation with the given stream at global
// step t.
template <class T>
NMM_HD void normal_pair(uint64_t seed, uint32_t stream, uint64_t t, uint32_t i, T& xi_E, T& xi_I) {
  const Philox4 w = philox4x32_10(
      Philox4{{static_cast<uint32_t>(t), static_cast<uint32_t>(t >> 32), i, stream}},
      static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  constexpr T two_m32 = T(2.3283064365386963e-10);  // 2^-32, exact in float and double
  constexpr T two_pi = T(6.283185307179586);
  const T u0 = (static_cast<T>(w.v[0]) + T(0.5)) * two_m32;
  const T u1 = (static_cast<T>(w.v[1]) + T(0.5)) * two_m32;
  using std::cos;
  using std::log;
  using std::sin;
  using std::sqrt;
  const T r = sqrt(T(-2) * log(u0));
  xi_E = r * cos(two_pi * u1);
  xi_I = r * sin(two_pi * u1);
}

}  // namespace nmmfit
