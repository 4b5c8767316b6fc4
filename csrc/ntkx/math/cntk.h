// The convolutional NTK (Arora et al. 2019, arXiv:1904.11955) in neural-tangents'
// NTK parameterization, written once for every backend (DESIGN.md section 2).
//
// Network: Conv_0 -> [phi -> Conv_l] for l = 1..n_conv-1 -> [phi] -> readout -> Dense,
// every Conv with q_l x q_l filters, stride 1, SAME zero padding, weight std w_l
// (variance w_l^2 / fan_in) and bias std b_l; the readout is Flatten ("vanilla") or
// global average pooling; the final Dense has (w_o, b_o). For images x, x' (P x Q x C)
// and positions p, p' the covariances are 4-D, Sigma[p, p'], and
//   Sigma^0 = w_0^2 box_0(x_c[p] x'_c[p'] averaged over c) + b_0^2,   Theta^0 = Sigma^0,
//   K^l = E[phi(u) phi(v)],  Kd^l = E[phi'(u) phi'(v)],  (u, v) ~ N(0, [[q, c], [c, q']]),
//         with c = Sigma^l[p, p'], q = Sigma^l(x, x)[p, p], q' = Sigma^l(x', x')[p', p'],
//   Sigma^{l+1} = w^2 box(K^l) + b^2,  Theta^{l+1} = w^2 box(Kd^l Theta^l) + Sigma^{l+1},
// where box is the "diagonal patch mean" box(K)[p, p'] = mean_{a in q x q} K[p + a, p' + a]
// with K = 0 outside the image (zero padding). Readout inputs (R, RT) are (K, Kd Theta)
// after a final phi, else (Sigma, Theta) of the last conv;
//   vanilla: NNGP = w_o^2 mean_p R[p, p] + b_o^2,
//   GAP:     NNGP = w_o^2 mean_{p, p'} R[p, p'] + b_o^2,
//   NTK = w_o^2 (same mean of RT) + NNGP.
//
// The patch mean never changes the displacement p' - p, so each of the (2P-1)(2Q-1)
// displacement slices S_delta[p] = Sigma[p, p + delta] runs the whole recursion on its
// own, in a buffer of at most P x Q entries; vanilla needs only delta = 0.
// Per image and activation stage the recursion needs the diagonal maps q[p]; they come
// from the same slice code run on (x, x), delta = 0, so an identical pair reproduces
// them bit for bit and its correlation is exactly 1 (no sqrt(eps) error in the angle).
#pragma once

#include <cmath>
#include <cstdint>

#include "ntkx/math/common.h"
#include "ntkx/math/fc.h"

namespace ntkx {

/// Most conv layers one network may have (keeps CntkParams a fixed-size kernel argument).
constexpr int kMaxConv = 128;

/// Readouts after the conv stack.
enum class Readout : int {
  kVanilla = 0,  ///< Flatten -> Dense: mean over positions of the zero-displacement slice
  kGap = 1,      ///< GlobalAvgPool -> Dense: mean over all position pairs
};

/// One convolutional architecture (see the file comment). Plain data: it is passed
/// by value to the CUDA kernel.
struct CntkParams {
  int P = 0, Q = 0, C = 0;      ///< image height, width, channels
  int n_conv = 1;               ///< conv layers, 1 <= n_conv <= kMaxConv
  double w2[kMaxConv];          ///< w_l^2 of each conv layer
  double b2[kMaxConv];          ///< b_l^2 of each conv layer
  int filt[kMaxConv];           ///< odd filter side q_l of each conv layer
  bool final_act = true;        ///< phi after the last conv, before the readout
  Act act = Act::kABRelu;       ///< activation family (one for all layers)
  double a = 0.0, b = 1.0, c = 0.0;  ///< activation constants (as in FcParams)
  Readout readout = Readout::kGap;
  double out_w2 = 1.0, out_b2 = 0.0;  ///< readout Dense w_o^2, b_o^2
  /// The first conv layer's parameters are trained (else Theta^0 = 0: Arora et al.'s
  /// "fix" option, first layer fixed).
  bool train_first = true;
  /// The readout Dense is trained (else its NNGP term is left out of the NTK).
  bool train_last = true;

  NTKX_HD int n_act() const { return n_conv - 1 + (final_act ? 1 : 0); }
  /// Per-position fields of the diagonal maps (see math::MapField).
  NTKX_HD int n_fields() const { return act == Act::kErf ? 4 : (act == Act::kABRelu ? 3 : 2); }
};

namespace math {

/// Map fields (see CntkParams::n_fields): q = Sigma(x, x)[p, p] first, then
///   ABRelu: sqrt(q), 1/sqrt(q) (0 for q = 0);
///   arc-cosine 0 and 2: sqrt(V), V = E[phi(u)^2], u ~ N(0, q);
///   erf: sqrt(V), gamma, V (gamma and V formed exactly as fc.h's point_layer forms them).
enum MapField : int { kMapQ = 0, kMap1 = 1, kMap2 = 2, kMap3 = 3 };

/// The map fields 1..3 of one position from its variance q.
NTKX_HD void position_fields(Act act, double a, double b, double c, double q, double* f1, double* f2,
                             double* f3) {
  *f1 = *f2 = *f3 = 0.0;
  if (act == Act::kABRelu) {
    *f1 = std::sqrt(q);
    *f2 = q > 0.0 ? 1.0 / *f1 : 0.0;
    return;
  }
  double v = 0.0;
  if (act == Act::kArcCos0) {
    v = q > 0.0 ? 0.5 : 0.0;
  } else if (act == Act::kArcCos2) {
    v = 1.5 * q * q;
  } else {
    const double q2 = 2.0 * b * b * q;
    *f2 = std::sqrt(q2 / (1.0 + q2));
    *f3 = a * a * (2.0 * kInvPi) * std::asin(*f2 * *f2) + c * c;
    v = *f3;
  }
  *f1 = std::sqrt(v > 0.0 ? v : 0.0);
}

/// The dual activation of one position pair: from the covariance c and the two
/// positions' map fields (q, f1, f2, f3), K = E[phi phi] and Kd = E[phi' phi'].
///
/// ABRelu (the hot path: no division, two square roots): rho = c / (sqrt q sqrt q'),
/// set to exactly 1 when c = q = q' (an identical pair, whose maps come from the
/// same code: no sqrt(eps) error in the angle); with theta = arccos rho and
/// g = sin theta - theta rho >= 0 (abs-like: theta -> pi - theta, rho -> -rho, c -> -c),
///   K = s2 (c + sqrt(q q') kappa g / pi),   Kd = s2 (1 - kappa theta / pi),
/// s2 = (a^2 + b^2) / 2. g is formed directly: its cancellation near theta = 0
/// costs absolute, not relative, accuracy, and K ~ s2 c there.
/// A zero variance gives rho = 0 (1/sqrt q = 0) and K = s2 c = 0.
///
/// Others: rho = c / sqrt(q q') (c = q = q' gives rho = 1 exactly; a zero variance
/// meets c = 0 exactly, its patch being zero, and the 1e-300 keeps that 0 / 0 out),
/// then the normalized duals of fc.h scaled by sqrt(V V'). |rho| may exceed 1 by an
/// ulp; the angle clamps it, and erf, whose arcsine cannot, clamps it here.
/// No selects guard a division: GCC would sink the division into a branch and then
/// not vectorize the loop.
template <Act K>
NTKX_HD void cntk_dual(ActConst k, double s2, double c, double qa, double a1, double a2, double a3, double qb,
                       double b1, double b2, double b3, double* kk, double* kd) {
  if (K == Act::kABRelu) {  // mirrored lane-wise in cpu/simd8.h: keep the two in step
    double rho = c * (a2 * b2);
    const double same = (c == qa) & (qa == qb) ? 1.0 : 0.0;
    rho += same * (1.0 - rho);
    const double ar = rho < 0.0 ? -rho : rho;
    const double h0 = 1.0 - ar;
    const double h = h0 > 0.0 ? h0 : 0.0;                // 1 - |rho|, exact near |rho| = 1
    const bool hi = ar >= 0.5;
    const double xs = std::sqrt(0.5 * h);               // sin(theta/2) of |rho| (<= 1/2 when hi)
    const double p = asin_small(hi ? xs : ar);
    const double acos_abs = hi ? 2.0 * p : kHalfPi - p; // arccos |rho| (as math::angle)
    const bool neg = rho < 0.0;
    const double theta = neg ? kPi - acos_abs : acos_abs;
    const double sin_t = std::sqrt(h * (2.0 - h));      // (1 - |rho|)(1 + |rho|)
    const bool flip = neg & k.fold;
    const double tf = flip ? acos_abs : theta;           // pi - theta when flipped
    const double cf = flip ? -rho : rho;
    const double g = sin_t - tf * cf;
    const double kp = k.kappa * kInvPi;
    *kk = s2 * ((flip ? -c : c) + (a1 * b1) * (kp * g));
    *kd = s2 * (1.0 - kp * theta);
    return;
  }
  const double den = std::sqrt(qa * qb) + 1e-300;
  double rho = c / den;
  if (K == Act::kErf) rho = rho > 1.0 ? 1.0 : (rho < -1.0 ? -1.0 : rho);
  const PairState st{rho, 1.0 - rho, 1.0 + rho, 0.0};
  const Dual du = dual<K>(k, st, a2, a3, b2, b3);
  const double vv = a1 * b1;
  *kk = du.r * vv;
  *kd = du.d * vv / den;
}

/// s2 = (a^2 + b^2) / 2 of an ABRelu (the scale of its duals; unused otherwise).
NTKX_HD double abrelu_s2(const CntkParams& p) { return 0.5 * (p.a * p.a + p.b * p.b); }

/// Geometry of one displacement slice (di, dj): positions (i, j) of x with
/// i in [i0, i0 + h), j in [j0, j0 + w); x' at (i + di, j + dj).
struct Slice {
  int di, dj, i0, j0, h, w;
};

NTKX_HD Slice slice_of(int P, int Q, int di, int dj) {
  Slice s;
  s.di = di, s.dj = dj;
  s.i0 = di < 0 ? -di : 0;
  s.j0 = dj < 0 ? -dj : 0;
  s.h = P - (di < 0 ? -di : di);
  s.w = Q - (dj < 0 ? -dj : dj);
  return s;
}

/// Number of displacement slices a readout needs: (2P-1)(2Q-1) for GAP, 1 for vanilla.
NTKX_HD int64_t slice_count(const CntkParams& p) {
  return p.readout == Readout::kGap ? int64_t(2 * p.P - 1) * (2 * p.Q - 1) : 1;
}

/// Slice number t of slice_count: row-major over (di, dj), di, dj in [-(P-1), P-1].
NTKX_HD Slice slice_at(const CntkParams& p, int64_t t) {
  if (p.readout != Readout::kGap) return slice_of(p.P, p.Q, 0, 0);
  const int nq = 2 * p.Q - 1;
  return slice_of(p.P, p.Q, int(t / nq) - (p.P - 1), int(t % nq) - (p.Q - 1));
}

/// ActConst of the activation of a CntkParams.
inline ActConst cntk_act_const(const CntkParams& p) {
  FcParams f;
  f.act = p.act, f.a = p.a, f.b = p.b, f.c = p.c;
  return act_const(f);
}

}  // namespace math
}  // namespace ntkx
