// The fully-connected NNGP/NTK layer recursion, written once for every backend.
//
// Convention (neural-tangents' NTK parameterization, DESIGN.md section 2): the
// network is Dense -> [phi -> Dense] x L with weight std w and bias std b,
//   Sigma^0 = w^2 x.x'/d + b^2,                 Theta^0 = Sigma^0,
//   Sigma^l = w^2 E[phi(u) phi(v)] + b^2,       Theta^l = w^2 E[phi'(u) phi'(v)] Theta^{l-1} + Sigma^l.
//
// Stable normalized form. Write Q_l(x) = Sigma^l(x, x) and carry, per pair,
//   rho_l = Sigma^l / sqrt(Q_l Q_l'),  delta_l = 1 - rho_l,  eps_l = 1 + rho_l,
//   tau_l = Theta^l / sqrt(Q_l Q_l'),
// each computed from nonnegative pieces so that delta (eps) keeps full relative
// accuracy when the pair is (anti)colinear; the angle theta = arccos(rho) is then
// recovered from the small one without cancellation. Per point and layer, with
// V(Q) = E[phi(u)^2], u ~ N(0, Q):
//   u_l = sqrt(w^2 V(Q_{l-1}) / Q_l),  v_l = b / sqrt(Q_l)   (u^2 + v^2 = 1),
// and a layer is
//   rho_l   = u u' r + v v'                                   r = E[phi phi] / sqrt(V V')
//   delta_l = ((u-u')^2 + (v-v')^2)/2 + u u' (1 - r)          (both terms >= 0)
//   eps_l   = ((u-u')^2 + (v-v')^2)/2 + u u' (1 + r) + 2 v v'
//   tau_l   = u u' D tau_{l-1} + rho_l,     D = E[phi' phi'] sqrt(Q Q') / sqrt(V V').
// w never appears in the pair recursion, and the scale lives in log Q per point:
// depth 10^6 neither underflows nor overflows (NNGP = sqrt(Q_L Q_L') rho_L).
// The normalized duals r, 1 - r, 1 + r and D of each activation are below; see
// Cho & Saul 2009 (arc-cosine kernels, J_n) and Lee et al. 2019 (arXiv:1902.06720)
// for the closed forms, Jacot et al. 2018 (arXiv:1806.07572) for the NTK recursion.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "ntkx/math/common.h"

namespace ntkx {

struct FcProgram;  // math/fc_program.h

/// Activation families with closed-form duals.
enum class Act : int {
  kABRelu = 0,   ///< phi(x) = a min(x, 0) + b max(x, 0): ReLU (0, 1), leaky (alpha, 1), abs (-1, 1), arc-cosine order 1
  kArcCos0 = 1,  ///< phi(x) = 1[x > 0] (arc-cosine order 0, step); phi' = 0 almost everywhere
  kArcCos2 = 2,  ///< phi(x) = max(x, 0)^2 (arc-cosine order 2, ReQU)
  kErf = 3,      ///< phi(x) = a erf(b x) + c (neural-tangents' stax.Erf)
};

/// One fully-connected architecture: Dense(w_std, b_std) -> [act -> Dense] x depth
/// (every Dense sharing w_std / b_std, or layer l having w_layers[l] / b_layers[l]).
struct FcParams {
  /// Number L of (activation -> Dense) blocks after the first Dense; L = 0 is linear.
  int64_t depth = 1;
  /// Weight standard deviation w (weights have variance w^2 / fan_in).
  double w_std = 1.0;
  /// Bias standard deviation b (0: no bias).
  double b_std = 0.0;
  /// Activation family.
  Act act = Act::kABRelu;
  /// ABRelu: slope a for x < 0. Erf: amplitude a.
  double a = 0.0;
  /// ABRelu: slope b for x > 0. Erf: input scale b.
  double b = 1.0;
  /// Erf only: additive constant c.
  double c = 0.0;
  /// Optional per-layer stds, depth + 1 entries each (layer 0 is the first Dense),
  /// owned by the caller for the duration of a call; null: w_std / b_std for every
  /// layer. Only the per-point layer arrays read them (the pair recursion is w-free).
  const double* w_layers = nullptr;
  const double* b_layers = nullptr;
  /// Optional general composition (math/fc_program.h), owned by the caller for a
  /// call: when set it replaces depth / stds / act (OpenMP backend only).
  const FcProgram* program = nullptr;

  /// W_std of Dense layer l (0 .. depth).
  double w_of(int64_t l) const { return w_layers ? w_layers[l] : w_std; }
  /// b_std of Dense layer l (0 .. depth).
  double b_of(int64_t l) const { return b_layers ? b_layers[l] : b_std; }
  /// Whether any Dense layer has a bias (the bias-free recursion needs none).
  bool biased() const {
    if (b_layers == nullptr) return b_std != 0.0;
    for (int64_t l = 0; l <= depth; ++l)
      if (b_layers[l] != 0.0) return true;
    return false;
  }
};

namespace math {

/// Per point and layer: mixing weights of the layer's Dense and, for erf, the
/// activation-input quantities gamma = sqrt(2 b^2 Q / (1 + 2 b^2 Q)) (field g)
/// and V = a^2 (2/pi) asin(gamma * gamma) + c^2 (field s), the latter formed from
/// the stored gamma exactly as the pair code forms it, so that an identical pair
/// has 1 - r = 0 exactly.
struct PointLayer {
  double u, v, g, s;
};

/// Activation constants derived once from FcParams.
struct ActConst {
  double kappa;   ///< ABRelu: (a - b)^2 / (a^2 + b^2)
  bool fold;      ///< ABRelu with a == -b (abs-like): r(theta) = r(pi - theta)
  double a2, c2;  ///< Erf: a^2 and c^2
};

inline ActConst act_const(const FcParams& p) {
  ActConst k{0.0, false, p.a * p.a, p.c * p.c};
  if (p.act == Act::kABRelu) {
    const double n2 = p.a * p.a + p.b * p.b;
    k.kappa = (p.a - p.b) * (p.a - p.b) / n2;
    k.fold = (p.a == -p.b);
  }
  return k;
}

/// gamma^2 = 2 b^2 Q / (1 + 2 b^2 Q) of erf(b u), u ~ N(0, Q), without overflow:
/// b^2 Q beyond the float64 range (b = 1e300, or Q = e^800 from a deep net) gives
/// gamma^2 = 1 (erf(b u) -> sign(u)), never inf / inf. Shared by fc.h's per-point
/// layers and cntk.h's diagonal maps, so both form gamma bit for bit alike.
NTKX_HD double erf_gamma2(double b, double q) {
  const double t = 2.0 * b * b * q;
  return t < 1e300 ? t / (1.0 + t) : 1.0 / (1.0 + 0.5 / b / b / q);
}

/// T = E[phi(u) phi(v)] = a^2 (2/pi) asin(x) + c^2 of phi = a erf(b u) + c, given
/// a^2, c^2 and x = gamma gamma' cos(theta) of the pair (u, v).
NTKX_HD double erf_moment(double a2, double c2, double x) { return a2 * (2.0 * kInvPi) * std::asin(x) + c2; }

/// V = E[phi(u)^2] = erf_moment at x = gamma^2 from the stored gamma (squared here,
/// as the pair code squares it, so an identical pair has 1 - r = 0 exactly).
NTKX_HD double erf_variance(double a, double c, double gamma) { return erf_moment(a * a, c * c, gamma * gamma); }

/// log V(Q) = log E[phi(u)^2], u ~ N(0, Q), from log Q (host only).
/// A zero-variance input gives phi(0)^2 (zero except for erf with c != 0).
inline double log_second_moment(const FcParams& p, double logq) {
  const double ninf = -std::numeric_limits<double>::infinity();
  switch (p.act) {
    case Act::kABRelu:
      return logq == ninf ? ninf : std::log(0.5 * (p.a * p.a + p.b * p.b)) + logq;
    case Act::kArcCos0:
      return logq == ninf ? ninf : std::log(0.5);
    case Act::kArcCos2:
      return logq == ninf ? ninf : std::log(1.5) + 2.0 * logq;
    case Act::kErf: {
      const double v = erf_variance(p.a, p.c, std::sqrt(erf_gamma2(p.b, std::exp(logq))));
      return v > 0.0 ? std::log(v) : ninf;
    }
  }
  return ninf;
}

/// Mixes the Dense layer's weight part (log A) with its bias (log b^2):
/// returns log Q = log(A + b^2) and sets u, v. Zero variance gives u = v = 0.
inline double mix_point(double log_a, double log_b2, PointLayer* out) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const double hi = log_a > log_b2 ? log_a : log_b2;
  if (hi == ninf) {
    out->u = out->v = 0.0;
    return ninf;
  }
  const double lo = log_a > log_b2 ? log_b2 : log_a;
  const double logq = hi + std::log1p(std::exp(lo - hi));
  out->u = std::exp(0.5 * (log_a - logq));
  out->v = std::exp(0.5 * (log_b2 - logq));
  return logq;
}

/// Layer 0 of one point from its squared norm: returns log Q_0. The input row may
/// have been divided by a power of two to keep its products in range (the Python
/// layer does so for extreme magnitudes): `lsc` is the log of the squared factor,
/// so the true squared norm is sqnorm e^lsc. The weight part is formed in logs
/// when w^2 |x|^2 / d leaves the normal range (W_std = 1e200, |x| = 1e300), so
/// log Q_0 is right wherever it is a finite number.
inline double point_layer0(const FcParams& p, double sqnorm, double lsc, int64_t d, PointLayer* out) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const double w = p.w_of(0), b = p.b_of(0);
  const double w2 = w * w;
  const double direct = w2 * sqnorm / double(d);
  double log_a = ninf;
  if (sqnorm > 0.0 && w != 0.0)
    log_a = (direct > std::numeric_limits<double>::min() && direct < std::numeric_limits<double>::infinity())
                ? std::log(direct) + lsc
                : 2.0 * std::log(std::fabs(w)) + std::log(sqnorm) - std::log(double(d)) + lsc;
  const double log_b2 = b != 0.0 ? 2.0 * std::log(std::fabs(b)) : ninf;
  out->g = out->s = 0.0;
  return mix_point(log_a, log_b2, out);
}

/// Layer l >= 1 of one point from log Q_{l-1}: returns log Q_l.
inline double point_layer(const FcParams& p, int64_t l, double logq_prev, PointLayer* out) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const double w = p.w_of(l), b = p.b_of(l);
  const double logv = log_second_moment(p, logq_prev);
  const double log_a = (w != 0.0 && logv != ninf) ? 2.0 * std::log(std::fabs(w)) + logv : ninf;
  const double log_b2 = b != 0.0 ? 2.0 * std::log(std::fabs(b)) : ninf;
  out->g = out->s = 0.0;
  if (p.act == Act::kErf) {
    out->g = std::sqrt(erf_gamma2(p.b, std::exp(logq_prev)));
    out->s = erf_variance(p.a, p.c, out->g);
  }
  return mix_point(log_a, log_b2, out);
}

/// Normalized dual of an activation at the previous layer's angle.
struct Dual {
  double r, omr, opr, d;  ///< r, 1 - r, 1 + r, D (see the file comment)
};

/// Per-pair recursion state (all normalized by sqrt(Q Q')).
struct PairState {
  double rho, delta, eps, tau;
};

template <Act K>
NTKX_HD Dual dual(ActConst k, const PairState& st, double gi, double si, double gj, double sj) {
  const double theta = angle(st.rho, st.delta, st.eps);
  const double sin_t = std::sqrt(st.delta * st.eps > 0.0 ? st.delta * st.eps : 0.0);
  Dual o;
  if (K == Act::kABRelu) {
    // r = cos t + kappa g(t)/pi, 1 - r = (1 - cos t) - kappa g/pi, D = 1 - kappa t/pi.
    // abs-like (kappa = 2) is symmetric under t -> pi - t; folding keeps 1 - r exact there.
    const bool flip = k.fold & (st.eps < st.delta);
    const double tf = sel(flip, kPi - theta, theta);
    const double cf = sel(flip, -st.rho, st.rho);
    const double omc = sel(flip, st.eps, st.delta);
    const double opc = sel(flip, st.delta, st.eps);
    const double kg = k.kappa * kInvPi * sin_minus_tcos(tf, sin_t, cf);
    o.r = cf + kg;
    o.omr = omc - kg;
    o.opr = opc + kg;
    o.d = 1.0 - k.kappa * kInvPi * theta;
  } else if (K == Act::kArcCos0) {
    // J_0 = pi - t: r = 1 - t/pi; phi' = 0 a.e.
    o.r = 1.0 - kInvPi * theta;
    o.omr = kInvPi * theta;
    o.opr = 2.0 - kInvPi * theta;
    o.d = 0.0;
  } else if (K == Act::kArcCos2) {
    // J_2 = 3 sin t cos t + (pi - t)(1 + 2 cos^2 t), r = J_2 / (3 pi),
    // 3 pi - J_2 = 1.5 (2t - sin 2t) + 2 (pi - t) sin^2 t, D = 4 J_1 / (3 pi).
    const double c = st.rho, pt = kPi - theta;
    const double s2t = 2.0 * sin_t * c;
    const double j2 = 1.5 * s2t + pt * (1.0 + 2.0 * c * c);
    o.r = j2 * (kInvPi / 3.0);
    o.omr = (1.5 * x_minus_sin(2.0 * theta, s2t) + 2.0 * pt * sin_t * sin_t) * (kInvPi / 3.0);
    o.opr = 1.0 + o.r;
    o.d = 4.0 * (sin_t + pt * c) * (kInvPi / 3.0);
  } else {
    // Erf, with g = gamma, s = V per point (see PointLayer):
    //   E[phi phi] = T(t) = a^2 (2/pi) asin(g g' cos t) + c^2,   r = T / sqrt(V V'),
    //   E[phi' phi'] sqrt(Q Q') = a^2 (2/pi) g g' / sqrt(1 - (g g' cos t)^2).
    // 1 - r = [(V V' - T(0)^2) / (sqrt(V V') + T(0)) + T(0) - T(t)] / sqrt(V V'), both
    // terms >= 0 (Cauchy-Schwarz; asin increasing), and
    //   asin(p) - asin(q) = asin((p - q)(p + q) / (p sqrt(1 - q^2) + q sqrt(1 - p^2)))  (q >= 0)
    // with p - q = g g' (1 - cos t) = g g' delta: no cancellation near t = 0, so the
    // chaotic phase (where 1e-16 grows like chi^L) keeps identical pairs exact.
    const double vv = si * sj;
    const double den = std::sqrt(vv);
    const double gg = gi * gj;
    // qq = gg rho, formed from delta = 1 - rho near rho = 1 so that an identical pair
    // (delta = 0 exactly) has qq = pp bit for bit at every layer: rho itself carries
    // ulp-level rounding, which the chaotic phase (chi > 1) would amplify like chi^L.
    const double pp = gg, qq = st.rho > 0.5 ? gg - gg * st.delta : gg * st.rho;
    const double amp = k.a2 * (2.0 * kInvPi);
    const double t0 = erf_moment(k.a2, k.c2, pp);
    const double t = erf_moment(k.a2, k.c2, qq);
    const double sp = std::sqrt((1.0 - pp) * (1.0 + pp)), sq = std::sqrt((1.0 - qq) * (1.0 + qq));
    const double dsum = pp * sq + qq * sp;
    // The identity holds only while asin(p) - asin(q) <= pi/2, i.e. for q >= 0; for q < 0
    // p - q >= p has no cancellation and the direct difference is accurate.
    const double dasin =
        (qq >= 0.0 && dsum > 0.0) ? std::asin(gg * st.delta * (pp + qq) / dsum) : std::asin(pp) - std::asin(qq);
    const double gap = (vv - t0 * t0) / (den + t0);
    const bool ok = den > 0.0;
    o.r = ok ? t / den : 0.0;
    o.omr = ok ? (gap + amp * dasin) / den : 1.0;
    o.opr = ok ? 1.0 + o.r : 1.0;
    o.d = ok ? amp * gg / (sq * den) : 0.0;
  }
  return o;
}

/// Applies one Dense layer's mixing to a normalized dual (or, at layer 0, to the
/// input cosine). `first` starts the NTK: tau_0 = rho_0.
NTKX_HD void mix_pair(PairState& st, const Dual& du, double ui, double vi, double uj, double vj, bool first) {
  const double uu = ui * uj, vv = vi * vj;
  const double m = 0.5 * ((ui - uj) * (ui - uj) + (vi - vj) * (vi - vj));
  st.rho = uu * du.r + vv;
  st.delta = m + uu * du.omr;
  st.eps = m + uu * du.opr + 2.0 * vv;
  st.tau = first ? st.rho : uu * du.d * st.tau + st.rho;
}

/// One layer l >= 1 of the pair recursion; (u, v, g, s) are the two points'
/// PointLayer fields at layer l, passed as scalars so loops over j vectorize.
/// kNoBias (no layer has a bias) uses u = 1, v = 0 without reading them: exact for every
/// nonzero point, and a zero point's outputs are 0 whatever its finite state.
template <Act K, bool kNoBias = false>
NTKX_HD void layer_step(ActConst k, PairState& st, double ui, double vi, double gi, double si,
                        double uj, double vj, double gj, double sj) {
  const Dual du = dual<K>(k, st, gi, si, gj, sj);
  if (kNoBias) {
    st.rho = du.r, st.delta = du.omr, st.eps = du.opr;
    st.tau = du.d * st.tau + st.rho;
  } else {
    mix_pair(st, du, ui, vi, uj, vj, false);
  }
}

/// Layer 0 from the input cosine: omc = 1 - cos, opc = 1 + cos, each accurate.
NTKX_HD void layer0(PairState& st, double cos_in, double omc, double opc, const PointLayer& pi,
                    const PointLayer& pj) {
  Dual du{cos_in, omc, opc, 0.0};
  mix_pair(st, du, pi.u, pi.v, pj.u, pj.v, true);
}

/// 1 - |cos| below which the input cosine from a Gram product is recomputed from
/// the normalized vectors (the Gram's absolute error ~1e-16 would move a small
/// angle by ~1e-16 / sin(theta)).
constexpr double kColinear = 0.05;

/// 1 / |x| from |x|^2, 0 for a zero vector (whose kernel rows are then exact zeros
/// or pure bias terms, never NaN).
NTKX_HD double inv_norm(double sq) { return sq > 0.0 ? 1.0 / std::sqrt(sq) : 0.0; }

/// The input cosine of a pair and its complements 1 - cos, 1 + cos from the Gram
/// entry `dot` = x.x' and inverse norms (branch-free; vectorizes).
NTKX_HD void input_cosine_gram(double dot, double ri, double rj, double* c, double* omc, double* opc) {
  double x = dot * ri * rj;
  x = x > 1.0 ? 1.0 : (x < -1.0 ? -1.0 : x);
  *c = x, *omc = 1.0 - x, *opc = 1.0 + x;
}

/// Whether a Gram-derived cosine is too close to +-1 to trust (see kColinear).
NTKX_HD bool input_cosine_colinear(double omc, double opc) { return (omc < opc ? omc : opc) < kColinear; }

/// x*y - z*w to nearly full relative accuracy (Kahan's difference of products).
NTKX_HD double diff_of_products(double x, double y, double z, double w) {
  const double zw = z * w;
  const double err = std::fma(-z, w, zw);  // zw - z*w exactly
  return std::fma(x, y, -zw) + err;
}

/// Recomputes a near-(anti)colinear pair's 1 -+ cos from the rows (length d) as
/// |x |x'| -+ x' |x||^2 / (2 |x|^2 |x'|^2). Each component is a difference of
/// products taken exactly, and the norms' rounding moves the vector along x, i.e.
/// orthogonally to the (small) difference, so it enters only in quadrature:
/// angles down to ~1e-16 keep full relative accuracy, and identical or
/// power-of-two-scaled points give exactly cos = 1.
template <typename T>
NTKX_HD void input_cosine_exact(const T* xi, const T* xj, int64_t d, double sqi, double sqj, double* c,
                                double* omc, double* opc) {
  const bool anti = *c < 0.0;
  const double ni = std::sqrt(sqi), nj = std::sqrt(sqj);
  const double njs = anti ? -nj : nj;
  double e = 0.0;
  for (int64_t t = 0; t < d; ++t) {
    const double diff = diff_of_products(double(xi[t]), njs, double(xj[t]), ni);
    e += diff * diff;
  }
  const double nn = ni * nj;
  double small = 0.5 * (e / nn) / nn;  // 1 - |cos|
  small = small > 1.0 ? 1.0 : small;
  *omc = anti ? 2.0 - small : small;
  *opc = anti ? small : 2.0 - small;
  *c = anti ? small - 1.0 : 1.0 - small;
}

/// Both steps for one pair (the CUDA kernel's path).
template <typename T>
NTKX_HD void input_cosine(double dot, double sqi, double sqj, const T* xi, const T* xj, int64_t d, double* c,
                          double* omc, double* opc) {
  input_cosine_gram(dot, inv_norm(sqi), inv_norm(sqj), c, omc, opc);
  if (input_cosine_colinear(*omc, *opc)) input_cosine_exact(xi, xj, d, sqi, sqj, c, omc, opc);
}

/// sqrt(Q_L Q_L') from the two log-variances, without overflow in between.
NTKX_HD double pair_scale(double lqi, double lqj) {
  const double s = 0.5 * (lqi + lqj);
  return s == -HUGE_VAL ? 0.0 : std::exp(s);
}

/// scale * x, with 0 for x = 0 even when the scale overflowed to inf: an exact zero
/// of the normalized kernel (orthogonal or antiparallel ReLU pairs, zero rows) stays
/// 0 however large the variances, instead of becoming inf * 0 = NaN.
NTKX_HD double scaled(double scale, double x) { return x == 0.0 ? 0.0 : scale * x; }

}  // namespace math
}  // namespace ntkx
