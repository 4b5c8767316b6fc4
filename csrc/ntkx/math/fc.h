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
#include <stdexcept>
#include <string>

#include "ntkx/math/common.h"

namespace ntkx {

struct FcProgram;  // math/fc_program.h

/// Activation families with closed-form duals. Parameters live in FcParams' a, b, c
/// (a degree n as the double a).
enum class Act : int {
  kABRelu = 0,   ///< phi(x) = a min(x, 0) + b max(x, 0): ReLU (0, 1), leaky (alpha, 1), abs (-1, 1), arc-cosine order 1
  kArcCos0 = 1,  ///< phi(x) = 1[x > 0] (arc-cosine order 0, step); phi' = 0 almost everywhere
  kArcCos2 = 2,  ///< phi(x) = max(x, 0)^2 (arc-cosine order 2, ReQU)
  kErf = 3,      ///< phi(x) = a erf(b x) + c (neural-tangents' stax.Erf)
  kSign = 4,     ///< phi(x) = sign(x); phi' = 0 almost everywhere (as neural-tangents)
  kArcCosN = 5,  ///< phi(x) = max(x, 0)^n, n = a >= 3 (Cho & Saul's J_n recursion)
  kMonomial = 6, ///< phi(x) = x^n, n = a
  kHermite = 7,  ///< neural-tangents' Hermite(n), n = a: K' = K^n (exact for unit-variance inputs)
  kExpNormalized = 8,  ///< neural-tangents' ExpNormalized(gamma = a, shift = b): K' = sqrt(q q') e^{gamma (rho + shift)}
  kGelu = 9,     ///< phi(x) = x Phi(x) (exact Gelu)
  kSin = 10,     ///< phi(x) = a sin(b x + c) (Cos: c + pi/2)
  kRbf = 11,     ///< phi(x) = sqrt(2) sin(sqrt(2 gamma) x + pi/4), gamma = a: K' = exp(-gamma |x - x'|^2)
  kExp = 12,     ///< phi(x) = a exp(b x)
  kGaussian = 13,  ///< phi(x) = a exp(b x^2)
  kPolynomial = 14,  ///< phi(x) = sum_k coef_k x^k (register program only: its dual needs a slot per degree)
};
/// Number of Act kinds (the bindings check codes against it).
constexpr int kNumActs = 15;

/// Highest degree of Monomial / Hermite / Polynomial (their duals are polynomials in rho)
/// and of the rectified monomials (J_n's recursion).
constexpr int kMaxDegree = 15;

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
  double a2, c2;  ///< Erf, Sin, Exp, Gaussian: a^2 (Erf: and c^2)
  double p0, p1;  ///< Sin: b^2, cos 2c. Exp: b^2. Gaussian: b. Rbf, ExpNormalized: gamma
  int n;          ///< ArcCosN, Monomial, Hermite: the degree
  double j0;      ///< ArcCosN: J_n(0) = pi (2n - 1)!!, formed as the pair code forms J_n at theta = 0
  /// Monomial, Hermite: r = sum_k coef[k] rho^k (coef >= 0, sum 1), D = sum_k dcoef[k] rho^k.
  double coef[kMaxDegree + 1], dcoef[kMaxDegree + 1];
};

/// Cho & Saul's J_n(theta) of the rectified monomial max(x, 0)^n, and J_{n-1} in
/// *jm1, from cos theta = c and sin theta = s by the recursion
///   J_0 = pi - t,  J_1 = s + (pi - t) c,  J_m = (2m - 1) c J_{m-1} + (m - 1)^2 s^2 J_{m-2}.
template <typename V>
NTKX_HD V arccos_j(int n, V t, V s, V c, V* jm1) {
  V j0 = kPi - t, j1 = s + (kPi - t) * c;
  if (n == 0) {
    *jm1 = V(0.0) * t;
    return j0;
  }
  const V s2 = s * s;
  for (int m = 2; m <= n; ++m) {
    const V jm = double(2 * m - 1) * c * j1 + double((m - 1) * (m - 1)) * s2 * j0;
    j0 = j1, j1 = jm;
  }
  *jm1 = j0;
  return j1;
}

/// E[u^n v^n] / (2n - 1)!! for unit-variance u, v of correlation rho, as Hermite
/// coefficients: x^n = sum_k h_k He_k(x), h_k = n! / (k! 2^j j!) with n - k = 2j, so
/// E[u^n v^n] = sum_k h_k^2 k! rho^k. Writes coef[0..n] (the normalized weights) and
/// returns (2n - 1)!! (their sum before normalizing).
inline double monomial_coefs(int n, double* coef) {
  double total = 0.0;
  for (int k = 0; k <= n; ++k) {
    coef[k] = 0.0;
    if ((n - k) % 2) continue;
    const int j = (n - k) / 2;
    double h = 1.0;  // n! / (k! 2^j j!)
    for (int m = k + 1; m <= n; ++m) h *= m;
    for (int m = 1; m <= j; ++m) h /= 2.0 * m;
    double kf = 1.0;
    for (int m = 2; m <= k; ++m) kf *= m;
    coef[k] = h * h * kf;
    total += coef[k];
  }
  for (int k = 0; k <= n; ++k) coef[k] /= total;
  return total;
}

inline ActConst act_const(const FcParams& p) {
  ActConst k{};
  k.a2 = p.a * p.a, k.c2 = p.c * p.c;
  if (p.act == Act::kABRelu) {
    const double n2 = p.a * p.a + p.b * p.b;
    k.kappa = (p.a - p.b) * (p.a - p.b) / n2;
    k.fold = (p.a == -p.b);
  } else if (p.act == Act::kSin) {
    k.p0 = p.b * p.b, k.p1 = std::cos(2.0 * p.c);
  } else if (p.act == Act::kExp) {
    k.p0 = p.b * p.b;
  } else if (p.act == Act::kGaussian) {
    k.p0 = p.b;
  } else if (p.act == Act::kRbf || p.act == Act::kExpNormalized) {
    k.p0 = p.a;
  } else if (p.act == Act::kArcCosN || p.act == Act::kMonomial || p.act == Act::kHermite) {
    const int n = int(p.a);
    k.n = n < 0 ? 0 : (n > kMaxDegree ? kMaxDegree : n);
    if (p.act == Act::kArcCosN) {
      double jm1;
      k.j0 = arccos_j(k.n, 0.0, 0.0, 1.0, &jm1);
    } else if (p.act == Act::kHermite) {
      k.coef[k.n] = 1.0;
      if (k.n > 0) k.dcoef[k.n - 1] = double(k.n);
    } else {
      const double mn = monomial_coefs(k.n, k.coef);
      if (k.n > 0) {
        double lower[kMaxDegree + 1];
        const double mn1 = monomial_coefs(k.n - 1, lower);  // D = n^2 E[u^{n-1} v^{n-1}] / (2n - 1)!!
        for (int j = 0; j < k.n; ++j) k.dcoef[j] = double(k.n) * double(k.n) * lower[j] * mn1 / mn;
      }
    }
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

/// Raw moments of the activations whose kernel depends on the variances (Gelu, Sin,
/// Gaussian): T = E[phi(u) phi(v)] and Tdot = E[phi'(u) phi'(v)] for (u, v) of
/// variances gi^2, gj^2 and correlation rho (delta = 1 - rho, eps = 1 + rho, each
/// accurate). Every difference the closed forms take is formed from nonnegative
/// pieces of delta / eps, and an identical pair (delta = 0, eps = 2, gi = gj) runs the
/// same operations as the per-point variance V = T(g, g) of act_point, so its
/// correlation is exactly 1.
///   Gelu (Tsuchida et al. 2020, as neural-tangents): with S = rho gi gj,
///     D2 = (q + 1)(q' + 1) - S^2 = q + q' + 1 + q q' delta eps,  A = atan2(S, sqrt D2),
///     T = [(S^2 + q q' D2) / ((q + 1)(q' + 1) sqrt D2) + S A] / (2 pi) + S / 4,
///     Tdot = 1/4 + A / (2 pi) + S / (2 pi sqrt D2) (1 / D2 + (1 - q q') / ((q + 1)(q' + 1)) + 1).
///   Sin(a, b, c): with A = (gi - gj)^2 / 2 + gi gj delta = (q + q') / 2 - S and
///     B = (gi - gj)^2 / 2 + gi gj eps = (q + q') / 2 + S,
///     T = a^2 / 2 (e^{-b^2 A} - cos(2c) e^{-b^2 B}),  Tdot = a^2 b^2 / 2 (e^{-b^2 A} + cos(2c) e^{-b^2 B}),
///     the difference as -e^{-b^2 A} expm1(-2 b^2 S) + (1 - cos 2c) e^{-b^2 B} where 2 b^2 |S| < 1.
///   Gaussian(a, b): D2 = (1 - 2bq)(1 - 2bq') - 4 b^2 S^2 = 1 - 2b (q + q') + 4 b^2 q q' delta eps,
///     T = a^2 / sqrt D2,  Tdot = 4 a^2 b^2 S / D2^{3/2}.
template <Act K>
NTKX_HD void act_moments(const ActConst& k, double gi, double gj, double rho, double delta, double eps, double* t,
                         double* tdot) {
  const double gg = gi * gj, s = rho * gg;
  if (K == Act::kGelu) {
    const double qi = gi * gi, qj = gj * gj, qq = qi * qj, pp1 = (qi + 1.0) * (qj + 1.0);
    const double d2 = qi + qj + 1.0 + qq * (delta * eps);
    const double dl = std::sqrt(d2);
    const double ang = std::atan2(s, dl);
    *t = ((s * s + qq * d2) / (pp1 * dl) + s * ang) * (0.5 * kInvPi) + 0.25 * s;
    *tdot = 0.25 + ang * (0.5 * kInvPi) + s / dl * (0.5 * kInvPi) * (1.0 / d2 + (1.0 - qq) / pp1 + 1.0);
  } else if (K == Act::kSin) {
    const double dd = 0.5 * (gi - gj) * (gi - gj);
    const double ea = std::exp(-k.p0 * (dd + gg * delta)), eb = std::exp(-k.p0 * (dd + gg * eps));
    const double x = 2.0 * k.p0 * s;
    const double diff = std::fabs(x) < 1.0 ? -ea * std::expm1(-x) + (1.0 - k.p1) * eb : ea - k.p1 * eb;
    *t = 0.5 * k.a2 * diff;
    *tdot = 0.5 * k.a2 * k.p0 * (ea + k.p1 * eb);
  } else {  // kGaussian
    const double b = k.p0, qi = gi * gi, qj = gj * gj;
    const double d2 = 1.0 - 2.0 * b * (qi + qj) + 4.0 * b * b * (qi * qj) * (delta * eps);
    const double det = std::sqrt(d2);
    *t = k.a2 / det;
    *tdot = 4.0 * k.a2 * b * b * s / (d2 * det);
  }
}

/// Names for error messages.
inline const char* act_name(Act a) {
  switch (a) {
    case Act::kABRelu: return "ABRelu";
    case Act::kArcCos0: return "RectifiedMonomial(0)";
    case Act::kArcCos2: return "RectifiedMonomial(2)";
    case Act::kErf: return "Erf";
    case Act::kSign: return "Sign";
    case Act::kArcCosN: return "RectifiedMonomial";
    case Act::kMonomial: return "Monomial";
    case Act::kHermite: return "Hermite";
    case Act::kExpNormalized: return "ExpNormalized";
    case Act::kGelu: return "Gelu";
    case Act::kSin: return "Sin";
    case Act::kRbf: return "Rbf";
    case Act::kExp: return "Exp";
    case Act::kGaussian: return "Gaussian";
    case Act::kPolynomial: return "Polynomial";
  }
  return "activation";
}

/// The per-point quantities of an activation on an input of log-variance `logq`
/// (host only): returns log V = log E[phi(u)^2], u ~ N(0, Q), and sets the fields
/// the pair code reads, g and s (PointLayer): erf's gamma and V; sqrt(Q) and V for the
/// kinds whose kernel depends on q itself (Gelu, Sin, Rbf, Exp, Gaussian: V = T(g, g) of
/// act_moments, or 1 for Rbf; Exp's lives in logs only). A zero-variance input gives phi(0)^2. Throws std::invalid_argument where
/// the activation's moments leave float64 (a q-dependent kind on an overflowing
/// variance; Gaussian with b q >= 1/4, whose E[phi^2] is infinite).
inline double act_point(const FcParams& p, double logq, double* g, double* s) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const bool zero = logq == ninf;
  *g = *s = 0.0;
  switch (p.act) {
    case Act::kABRelu:
      return zero ? ninf : std::log(0.5 * (p.a * p.a + p.b * p.b)) + logq;
    case Act::kArcCos0:
      return zero ? ninf : std::log(0.5);
    case Act::kArcCos2:
      return zero ? ninf : std::log(1.5) + 2.0 * logq;
    case Act::kErf: {
      *g = std::sqrt(erf_gamma2(p.b, std::exp(logq)));
      *s = erf_variance(p.a, p.c, *g);
      return *s > 0.0 ? std::log(*s) : ninf;
    }
    case Act::kSign:
      return zero ? ninf : 0.0;
    case Act::kExpNormalized:
      return zero ? ninf : logq + p.a * (1.0 + p.b);
    case Act::kArcCosN:
    case Act::kMonomial:
    case Act::kHermite: {
      const int n = int(p.a);
      if (n == 0 && p.act != Act::kArcCosN) return 0.0;  // phi = 1 (x^0 = 1 at 0, as neural-tangents)
      if (zero) return ninf;
      // V = (2n - 1)!! q^n (Monomial), (2n - 1)!! / 2 q^n (rectified: J_n(0) / (2 pi)), q^n (Hermite).
      double c = p.act == Act::kArcCosN ? 0.5 : 1.0;
      if (p.act != Act::kHermite)
        for (int m = 2 * n - 1; m > 1; m -= 2) c *= m;
      return std::log(c) + double(n) * logq;
    }
    case Act::kPolynomial:
      throw std::invalid_argument("ntkx: Polynomial has one slot per degree: it runs as a program op (poly_point)");
    default:
      break;
  }
  // The kinds whose kernel depends on q itself.
  const double q = std::exp(logq);
  if (!(q < std::numeric_limits<double>::infinity()))
    throw std::invalid_argument(std::string(act_name(p.act)) +
                                ": an activation input's variance overflows float64 (log q = " +
                                std::to_string(logq) + "); its kernel depends on q itself, not only on angles");
  // Where the closed forms' products would leave float64 (Gelu's q^2 q'^2, Gaussian's b^2 q q',
  // Sin / Rbf / Exp's b^2 q), refuse rather than return inf / NaN or a false correlation.
  const double scale_q = p.act == Act::kGelu       ? q
                         : p.act == Act::kGaussian ? std::fabs(p.b) * q
                         : p.act == Act::kRbf      ? p.a * q
                                                   : p.b * p.b * q;
  const double limit = p.act == Act::kGelu ? 1e60 : (p.act == Act::kGaussian ? 1e100 : 1e300);
  if (!(scale_q <= limit) || (p.act == Act::kGaussian && !(q <= 1e100)))
    throw std::invalid_argument(std::string(act_name(p.act)) + ": an activation input's variance q = " +
                                std::to_string(q) + " is beyond the range where its closed form is evaluated in "
                                "float64 (" + (p.act == Act::kGelu ? "q" : p.act == Act::kGaussian ? "|b| q" :
                                p.act == Act::kRbf ? "gamma q" : "b^2 q") + " <= " + std::to_string(limit) +
                                "); rescale the inputs or W_std");
  *g = std::sqrt(q);
  if (p.act == Act::kRbf) {
    *s = 1.0;
    return 0.0;
  }
  if (p.act == Act::kExp) return (p.a != 0.0 ? 2.0 * std::log(std::fabs(p.a)) : ninf) + 2.0 * p.b * p.b * q;
  if (p.act == Act::kGaussian && !(2.0 * p.b * (2.0 * q) < 1.0))
    throw std::invalid_argument("Gaussian(a, b): an activation input has b q >= 1/4 (b = " + std::to_string(p.b) +
                                ", q = " + std::to_string(q) + "), where E[phi^2] of a exp(b u^2) is infinite");
  const ActConst k = act_const(p);
  double t = 0.0, tdot = 0.0;
  if (p.act == Act::kGelu) act_moments<Act::kGelu>(k, *g, *g, 1.0, 0.0, 2.0, &t, &tdot);
  if (p.act == Act::kSin) act_moments<Act::kSin>(k, *g, *g, 1.0, 0.0, 2.0, &t, &tdot);
  if (p.act == Act::kGaussian) act_moments<Act::kGaussian>(k, *g, *g, 1.0, 0.0, 2.0, &t, &tdot);
  *s = t;
  return t > 0.0 ? std::log(t) : ninf;
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
  const double logv = act_point(p, logq_prev, &out->g, &out->s);
  const double log_a = (w != 0.0 && logv != ninf) ? 2.0 * std::log(std::fabs(w)) + logv : ninf;
  const double log_b2 = b != 0.0 ? 2.0 * std::log(std::fabs(b)) : ninf;
  return mix_point(log_a, log_b2, out);
}

/// rho^e and its complements 1 - rho^e, 1 + rho^e for e = 0, 1, 2, ... in turn, each
/// accurate near rho = +-1: 1 - |rho|^e = (1 - |rho|) sum_{j<e} |rho|^j with 1 - |rho| =
/// delta (rho >= 0) or eps (rho < 0), and 1 -+ rho^e = 1 -+ |rho|^e or its sign flip.
struct PowWalk {
  bool neg;
  double ar, small, pw = 1.0, geo = 0.0;
  NTKX_HD PowWalk(double rho, double delta, double eps)
      : neg(rho < 0.0), ar(std::fabs(rho)), small(sel(rho < 0.0, eps, delta)) {}
  /// The current power e (starting at 0): sets x = rho^e, om = 1 - rho^e, op = 1 + rho^e.
  NTKX_HD void get(int e, double* x, double* om, double* op) const {
    const bool flip = neg && (e & 1) != 0;
    const double low = small * geo;  // 1 - |rho|^e
    *x = sel(flip, -pw, pw);
    *om = sel(flip, 1.0 + pw, low);
    *op = sel(flip, low, 1.0 + pw);
  }
  NTKX_HD void next() { geo += pw, pw *= ar; }
};

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
  } else if (K == Act::kErf) {
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
  } else if (K == Act::kSign) {
    // E[sign u sign v] = 1 - 2 t / pi; phi' = 0 a.e. (neural-tangents zeroes the NTK too).
    o.r = 1.0 - 2.0 * kInvPi * theta;
    o.omr = 2.0 * kInvPi * theta;
    o.opr = 2.0 - 2.0 * kInvPi * theta;
    o.d = 0.0;
  } else if (K == Act::kArcCosN) {
    // r = J_n(t) / J_n(0), D = n^2 J_{n-1}(t) / J_n(0) (Price: d/dSigma E[phi phi] = E[phi' phi'],
    // phi_n' = n phi_{n-1}). An identical pair forms J_n(0) as act_const did: 1 - r = 0 exactly.
    double jm1;
    const double j = arccos_j(k.n, theta, sin_t, st.rho, &jm1);
    o.r = j / k.j0;
    o.omr = (k.j0 - j) / k.j0;
    o.opr = 1.0 + o.r;
    o.d = double(k.n) * double(k.n) * jm1 / k.j0;
  } else if (K == Act::kMonomial || K == Act::kHermite) {
    // r = sum_k c_k rho^k with c_k >= 0, sum c_k = 1: 1 -+ r = sum_k c_k (1 -+ rho^k), each
    // term from the accurate complement, 1 - |rho|^k = (1 - |rho|) sum_{j<k} |rho|^j with
    // 1 - |rho| = delta (rho >= 0) or eps (rho < 0).
    PowWalk pw(st.rho, st.delta, st.eps);
    double r = 0.0, omr = 0.0, opr = 0.0, d = 0.0;
    for (int e = 0; e <= k.n; ++e, pw.next()) {
      double xe, om, op;
      pw.get(e, &xe, &om, &op);
      r += k.coef[e] * xe, omr += k.coef[e] * om, opr += k.coef[e] * op;
      d += k.dcoef[e] * xe;
    }
    o.r = r, o.omr = omr, o.opr = opr, o.d = d;
  } else if (K == Act::kExpNormalized) {
    // r = e^{gamma (rho - 1)} = e^{-gamma delta}, D = gamma r.
    o.r = std::exp(-k.p0 * st.delta);
    o.omr = -std::expm1(-k.p0 * st.delta);
    o.opr = 1.0 + o.r;
    o.d = k.p0 * o.r;
  } else if (K == Act::kRbf || K == Act::kExp) {
    // r = e^{-c A}, A = (g - g')^2 / 2 + g g' delta = (q + q') / 2 - S >= 0 (g = sqrt q), c = 2 gamma
    // (Rbf, whose V = 1) or b^2 (Exp, V = a^2 e^{2 b^2 q}); D = c g g' r.
    const double c = K == Act::kRbf ? 2.0 * k.p0 : k.p0;
    const double arg = c * (0.5 * (gi - gj) * (gi - gj) + gi * gj * st.delta);
    o.r = std::exp(-arg);
    o.omr = -std::expm1(-arg);
    o.opr = 1.0 + o.r;
    o.d = c * gi * gj * o.r;
  } else {
    // Gelu, Sin, Gaussian: the raw moments over sqrt(V V') (g = sqrt q, s = V per point).
    double t, tdot;
    act_moments<K>(k, gi, gj, st.rho, st.delta, st.eps, &t, &tdot);
    const double den = std::sqrt(si * sj);
    const bool ok = den > 0.0;
    double r = t / den;
    r = r > 1.0 ? 1.0 : (r < -1.0 ? -1.0 : r);
    o.r = ok ? r : 0.0;
    o.omr = ok ? 1.0 - r : 1.0;
    o.opr = ok ? 1.0 + r : 1.0;
    o.d = ok ? tdot * (gi * gj) / den : 0.0;
  }
  return o;
}

/// Polynomial(coef) on an input of log-variance `logq` (host only; neural-tangents'
/// closed form): with the Hermite expansion x^k = sum_l h_{k,l} He_l(x), E[phi(u) phi(v)]
/// = sum_l R_l(q) R_l(q') rho^l, where
///   R_l(q) = sum_{k = l + 2i} coef_k k! / (2^i i! sqrt(l!)) q^{k/2}.
/// Writes the per-point unit vector e_l = R_l / sqrt(V) at e[l ld], l < m, and returns
/// log V, V = sum_l R_l^2 (-inf, with e = 0, for a zero function of this input).
inline double poly_point(const double* coef, int m, double logq, double* e, int64_t ld) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const double sq = logq == ninf ? 0.0 : std::exp(0.5 * logq);  // sqrt q
  if (!(sq < std::numeric_limits<double>::infinity()))
    throw std::invalid_argument("Polynomial: an activation input's variance overflows float64 (log q = " +
                                std::to_string(logq) + ")");
  double r[kMaxDegree + 1], v = 0.0;
  for (int l = 0; l < m; ++l) {
    double lf = 1.0;
    for (int j = 2; j <= l; ++j) lf *= j;
    double acc = 0.0;
    for (int k = l, i = 0; k < m; k += 2, ++i) {
      if (coef[k] == 0.0) continue;  // (0 times an overflowing power is not a NaN)
      double c = coef[k];  // coef_k k! / (2^i i! sqrt(l!)) sqrt(q)^k
      for (int j = l + 1; j <= k; ++j) c *= j;  // k! / l!
      for (int j = 1; j <= i; ++j) c /= 2.0 * j;
      acc += c * std::sqrt(lf) * std::pow(sq, double(k));
    }
    r[l] = acc;
    v += acc * acc;
  }
  if (!(v < std::numeric_limits<double>::infinity()))
    throw std::invalid_argument("Polynomial: E[phi(u)^2] overflows float64 (log q = " + std::to_string(logq) + ")");
  const double inv = v > 0.0 ? 1.0 / std::sqrt(v) : 0.0;
  for (int l = 0; l < m; ++l) e[l * ld] = r[l] * inv;
  return v > 0.0 ? std::log(v) : ninf;
}

/// Polynomial's ACT on one pair from the two points' unit vectors e, e' (stride li, lj):
///   r = sum_l e_l e_l' rho^l,  1 -+ r = sum_l [(e_l - e_l')^2 / 2 + e_l e_l' (1 -+ rho^l)]
/// (sum_l e_l^2 = 1 per point), D = sum_{l >= 1} l e_l e_l' rho^{l-1}; tau' = D tau.
NTKX_HD void poly_pair(PairState& st, const double* ei, int64_t li, const double* ej, int64_t lj, int m) {
  PowWalk pw(st.rho, st.delta, st.eps);
  double r = 0.0, omr = 0.0, opr = 0.0, d = 0.0, prev = 0.0, na = 0.0, nb = 0.0;  // prev = rho^{l-1}
  for (int l = 0; l < m; ++l, pw.next()) {
    double xl, om, op;
    pw.get(l, &xl, &om, &op);
    const double a = ei[l * li], b = ej[l * lj], ab = a * b, h = 0.5 * (a - b) * (a - b);
    r += ab * xl, omr += h + ab * om, opr += h + ab * op;
    d += double(l) * ab * prev;
    na += a * a, nb += b * b;
    prev = xl;
  }
  const bool ok = na > 0.0 && nb > 0.0;  // a zero point (e = 0): r = 0, delta = eps = 1, tau' = 0
  st.rho = r;
  st.delta = ok ? omr : 1.0;
  st.eps = ok ? opr : 1.0;
  st.tau = d * st.tau;
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
