// Every per-node formula of the model (MODEL.md) once, with its vector-Jacobian product.
// Torch-free and __host__ __device__: the CPU executor and the CUDA kernels inline the same code.
//
// Subgradients at kinks are those autograd takes through python/nmmfit/reference.py, so the
// adjoint is the exact gradient of the discrete forward map: relu'(0) = 0, |.|'(0) = 0,
// clamp passes the gradient on the closed interval [0, 1].
#pragma once
#include <cmath>
#include <cstdint>

#include "nmmfit/hd.h"

namespace nmmfit {

using std::abs;
using std::exp;
using std::expm1;
using std::log;
using std::pow;
using std::tanh;

// Constants shared by both presets (MODEL.md).
struct C {
  static constexpr double a_E = 310, b_E = 125, d_E = 0.16;
  static constexpr double a_I = 615, b_I = 177, d_I = 0.087;
  static constexpr double tau_E = 100, tau_I = 10;
  static constexpr double gamma_E = 0.641 / 1000, gamma_I = 1.0 / 1000;
  static constexpr double W_E = 1.0, W_I = 0.7;
  static constexpr double tau_s = 0.65, tau_f = 0.41, tau_0 = 0.98, alpha = 0.32, rho = 0.34;
  static constexpr double k1 = 7 * rho, k2 = 2.0, k3 = 2 * rho - 0.2;
};

enum Coupling : int { kAdjacency = 0, kLaplacian = 1 };
enum Squash : int { kIdentity = 0, kTanhRelu = 1 };
enum Rate : int { kStandard = 0, kGriffiths = 1 };
enum StateBound : int { kClamp01 = 0, kTanhReluBound = 1 };

// The preset's switches and step sizes (python/nmmfit/presets.py: switches(), scalars()).
struct Config {
  int coupling, squash, rate, state_bound, hemo_bound, hemo_every;
  double dt, hemo_dt, bold_scale;
};

// The same configuration with the switches fixed at compile time. Every formula below is a template
// over the configuration type, so an executor can instantiate the named presets with their switches
// folded away (branch-free loops that vectorise) and keep the runtime Config for any other mix.
template <int Coupling_, int Squash_, int Rate_, int StateBound_, int HemoBound_>
struct FixedConfig : Config {
  static constexpr int coupling = Coupling_, squash = Squash_, rate = Rate_, state_bound = StateBound_,
                       hemo_bound = HemoBound_;
  explicit FixedConfig(const Config& c) : Config(c) {}
  static bool matches(const Config& c) {
    return c.coupling == coupling && c.squash == squash && c.rate == rate && c.state_bound == state_bound &&
           c.hemo_bound == hemo_bound;
  }
};
using Griffiths2022Config = FixedConfig<1, 1, 1, 1, 1>;
using Deco2014Config = FixedConfig<0, 0, 0, 0, 0>;

enum Param : int { kG = 0, kGEE, kGIE, kGEI, kI0, kSigma, kNumParams };
enum Var : int { kE = 0, kI, kX, kF, kV, kQ, kNumVars };

template <class T>
struct NodeState {
  T E, I, x, f, v, q;
};

template <class T>
struct NodeParams {
  T g, g_EE, g_IE, g_EI, I_0, sigma;
};

// sgn with sgn(0) = 0 (the subgradient torch's abs takes), as selects that vectorise.
template <class T>
NMM_HD T sign(T x) {
  return (x > T(0) ? T(1) : T(0)) - (x < T(0) ? T(1) : T(0));
}

// ---- transfer function H(a, b, d, z) and dH/dz ---------------------------------------------------
// "standard": h(x) = x / (1 - exp(-d x)), x = a z - b. At d x -> 0 it is 0/0 with limit 1/d; below
// a dtype-dependent |d x| threshold its Taylor series (error < 1e-16 in double, < 1e-10 in float)
// replaces it, and the derivative is the series' own derivative, as autograd of the reference sees.
template <class T>
NMM_HD T series_threshold();
template <>
NMM_HD float series_threshold<float>() { return 0.1f; }
template <>
NMM_HD double series_threshold<double>() { return 1e-2; }

template <class T>
NMM_HD T rate(int form, T a, T b, T d, T z, T& dh_dz) {
  const T x = a * z - b;
  if (form == kGriffiths) {
    // Griffiths et al. 2022, exactly: (1e-5 + |x|) / (1e-5 d + |1 - exp(-d x)|).
    const T e = exp(-d * x);
    const T u = T(1) - e;
    const T num = T(1e-5) + abs(x);
    const T den = T(1e-5) * d + abs(u);
    const T sx = sign(x), su = sign(u);
    dh_dz = a * (sx / den - num * (su * d * e) / (den * den));
    return num / den;
  }
  // Both branches are evaluated and one selected (branch-free, so loops over nodes vectorise); the
  // direct branch sees a harmless y = 1 where the series is taken, so it never divides 0 by 0.
  const T y = d * x;
  const bool small = abs(y) < series_threshold<T>();
  const T y2 = y * y;
  const T h_series = (T(1) + y / T(2) + y2 / T(12) - y2 * y2 / T(720)) / d;
  const T dh_series = T(0.5) + y / T(6) - y2 * y / T(180);
  const T ys = small ? T(1) : y;
  // D = 1 - exp(-y), accurate near 0. dh/dx = (1 - y (1 - D) / D) / D, written with 1/D so that it
  // tends to 0, not inf/inf, where exp(-y) overflows (y < -88 in float).
  const T D = -expm1(-ys), iD = T(1) / D;
  const T dh_direct = (T(1) - ys * (iD - T(1))) * iD;
  dh_dz = a * (small ? dh_series : dh_direct);
  return small ? h_series : x / D;
}

// ---- current squash phi and state bound ------------------------------------------------------------
template <class T>
NMM_HD T squash(int form, T J, T& dphi) {
  if (form == kTanhRelu) {
    const T p = tanh(J > 0 ? J : T(0));
    dphi = J > 0 ? T(1) - p * p : T(0);
    return p;
  }
  dphi = T(1);
  return J;
}

template <class T>
NMM_HD T bound_state(int form, T s, T& ds) {
  if (form == kTanhReluBound) {
    const T b = tanh(T(1e-5) + (s > 0 ? s : T(0)));
    ds = s > 0 ? T(1) - b * b : T(0);
    return b;
  }
  ds = (s >= 0 && s <= 1) ? T(1) : T(0);
  return s < 0 ? T(0) : (s > 1 ? T(1) : s);
}

// ---- BOLD -----------------------------------------------------------------------------------------
template <class T, class Cfg>
NMM_HD T bold(const Cfg& cfg, T v, T q) {
  return T(cfg.bold_scale) *
         (T(C::k1) * (T(1) - q) + T(C::k2) * (T(1) - q / v) + T(C::k3) * (T(1) - v));
}

template <class T, class Cfg>
NMM_HD void bold_vjp(const Cfg& cfg, T v, T q, T gb, T& gv, T& gq) {
  const T s = T(cfg.bold_scale) * gb;
  gq += s * (-T(C::k1) - T(C::k2) / v);
  gv += s * (T(C::k2) * q / (v * v) - T(C::k3));
}

// ---- one Euler(-Maruyama) step of one node --------------------------------------------------------
// c: coupling input (c_i of MODEL.md, Laplacian form already applied); u: external input to the
// excitatory current (0 when none); xi_E, xi_I: standard normals (0 when noise is off); hemo:
// whether this step also advances the Balloon-Windkessel states.
template <class T, class Cfg>
NMM_HD NodeState<T> step(const Cfg& cfg, const NodeState<T>& s, const NodeParams<T>& p, T c, T u,
                         T xi_E, T xi_I, bool hemo) {
  const T dt = T(cfg.dt), sqdt = T(std::sqrt(cfg.dt));
  T d;
  const T J_E = T(C::W_E) * p.I_0 + p.g_EE * s.E + p.g * c - p.g_IE * s.I + u;
  const T J_I = T(C::W_I) * p.I_0 + p.g_EI * s.E - s.I;
  const T r_E = rate(cfg.rate, T(C::a_E), T(C::b_E), T(C::d_E), squash(cfg.squash, J_E, d), d);
  const T r_I = rate(cfg.rate, T(C::a_I), T(C::b_I), T(C::d_I), squash(cfg.squash, J_I, d), d);
  const T Et = s.E + dt * (-s.E / T(C::tau_E) + T(C::gamma_E) * (T(1) - s.E) * r_E) + sqdt * p.sigma * xi_E;
  const T It = s.I + dt * (-s.I / T(C::tau_I) + T(C::gamma_I) * r_I) + sqdt * p.sigma * xi_I;
  NodeState<T> o{bound_state(cfg.state_bound, Et, d), bound_state(cfg.state_bound, It, d), s.x, s.f, s.v, s.q};
  if (hemo) {
    const T h = T(cfg.hemo_dt), ia = T(1.0 / C::alpha);
    const T va = pow(s.v, ia);
    const T xt = s.x + h * (s.E - s.x / T(C::tau_s) - (s.f - T(1)) / T(C::tau_f));
    const T ft = s.f + h * s.x;
    const T vt = s.v + h * (s.f - va) / T(C::tau_0);
    const T qt = s.q + h * (s.f * (T(1) - pow(T(1 - C::rho), T(1) / s.f)) / T(C::rho) - s.q * va / s.v) / T(C::tau_0);
    if (cfg.hemo_bound) {
      o.x = tanh(xt);
      o.f = T(1) + tanh(ft - T(1));
      o.v = T(1) + tanh(vt - T(1));
      o.q = T(1) + tanh(qt - T(1));
    } else {
      o.x = xt; o.f = ft; o.v = vt; o.q = qt;
    }
  }
  return o;
}

// Vector-Jacobian product of step(): given the cotangent lo of the output state, returns the
// cotangent of the input state (without the coupling term W^T gc, which needs every node and is
// added by the executor), writes gc = dL/dc_i and gu = dL/du_i (= dL/dJ_E: u enters J_E with
// weight 1), and accumulates the parameter cotangents into gp.
// self_coupling = dc_i/dE_i beyond W_ii: -rowsum_i for the Laplacian, 0 for adjacency.
template <class T, class Acc, class Cfg>
NMM_HD NodeState<T> step_vjp(const Cfg& cfg, const NodeState<T>& s, const NodeParams<T>& p, T c, T u,
                             T xi_E, T xi_I, bool hemo, T self_coupling, const NodeState<T>& lo,
                             T& gc, T& gu, NodeParams<Acc>& gp) {
  const T dt = T(cfg.dt), sqdt = T(std::sqrt(cfg.dt));
  const T J_E = T(C::W_E) * p.I_0 + p.g_EE * s.E + p.g * c - p.g_IE * s.I + u;
  const T J_I = T(C::W_I) * p.I_0 + p.g_EI * s.E - s.I;
  T dphi_E, dphi_I, dr_E, dr_I, dE, dI;
  const T r_E = rate(cfg.rate, T(C::a_E), T(C::b_E), T(C::d_E), squash(cfg.squash, J_E, dphi_E), dr_E);
  const T r_I = rate(cfg.rate, T(C::a_I), T(C::b_I), T(C::d_I), squash(cfg.squash, J_I, dphi_I), dr_I);
  const T Et = s.E + dt * (-s.E / T(C::tau_E) + T(C::gamma_E) * (T(1) - s.E) * r_E) + sqdt * p.sigma * xi_E;
  const T It = s.I + dt * (-s.I / T(C::tau_I) + T(C::gamma_I) * r_I) + sqdt * p.sigma * xi_I;
  bound_state(cfg.state_bound, Et, dE);
  bound_state(cfg.state_bound, It, dI);
  const T gEt = lo.E * dE, gIt = lo.I * dI;
  const T gJ_E = gEt * dt * T(C::gamma_E) * (T(1) - s.E) * dr_E * dphi_E;
  const T gJ_I = gIt * dt * T(C::gamma_I) * dr_I * dphi_I;
  gc = gJ_E * p.g;
  gu = gJ_E;
  NodeState<T> li{};
  li.E = gEt * (T(1) + dt * (-T(1) / T(C::tau_E) - T(C::gamma_E) * r_E)) + gJ_E * p.g_EE + gJ_I * p.g_EI + self_coupling * gc;
  li.I = gIt * (T(1) - dt / T(C::tau_I)) - gJ_E * p.g_IE - gJ_I;
  gp.g += Acc(gJ_E * c);
  gp.g_EE += Acc(gJ_E * s.E);
  gp.g_IE -= Acc(gJ_E * s.I);
  gp.g_EI += Acc(gJ_I * s.E);
  gp.I_0 += Acc(gJ_E * T(C::W_E) + gJ_I * T(C::W_I));
  gp.sigma += Acc(sqdt * (gEt * xi_E + gIt * xi_I));
  if (!hemo) {
    li.x = lo.x; li.f = lo.f; li.v = lo.v; li.q = lo.q;
    return li;
  }
  const T h = T(cfg.hemo_dt), ia = T(1.0 / C::alpha), it0 = T(1) / T(C::tau_0);
  const T va = pow(s.v, ia);
  T gx = lo.x, gf = lo.f, gv = lo.v, gq = lo.q;
  if (cfg.hemo_bound) {
    const T xt = s.x + h * (s.E - s.x / T(C::tau_s) - (s.f - T(1)) / T(C::tau_f));
    const T ft = s.f + h * s.x;
    const T vt = s.v + h * (s.f - va) / T(C::tau_0);
    const T qt = s.q + h * (s.f * (T(1) - pow(T(1 - C::rho), T(1) / s.f)) / T(C::rho) - s.q * va / s.v) / T(C::tau_0);
    const T bx = tanh(xt), bf = tanh(ft - T(1)), bv = tanh(vt - T(1)), bq = tanh(qt - T(1));
    gx *= T(1) - bx * bx;
    gf *= T(1) - bf * bf;
    gv *= T(1) - bv * bv;
    gq *= T(1) - bq * bq;
  }
  const T rf = pow(T(1 - C::rho), T(1) / s.f);
  const T dF = (T(1) - rf + rf * T(log(1 - C::rho)) / s.f) / T(C::rho);
  li.E += gx * h;
  li.x = gx * (T(1) - h / T(C::tau_s)) + gf * h;
  li.f = -gx * h / T(C::tau_f) + gf + (gv + gq * dF) * h * it0;
  li.v = gv * (T(1) - h * it0 * ia * va / s.v) - gq * h * it0 * s.q * (ia - T(1)) * va / (s.v * s.v);
  li.q = gq * (T(1) - h * it0 * va / s.v);
  return li;
}

}  // namespace nmmfit
