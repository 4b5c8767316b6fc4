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
  /// parameterization='standard' (neural-tangents' Sohl-Dickstein et al. 2020 form): conv
  /// layer l's NTK is Theta' = w^2 box(Kd Theta) + fan_in box_mean(K) + 1[bias] (fan_in =
  /// q^2 C_in), i.e. Theta' = w^2 box(Kd Theta) + std_a[l] A + std_c[l] with A the layer's
  /// unscaled patch sum (Sigma' = conv_scale A + b^2), std_a = fan_in / (q^2 C_sum) (C_sum:
  /// the channels A already sums, C at layer 0, else 1) and std_c = 1[bias]; an NTK layer of
  /// a mixed network has std_a = conv_scale, std_c = b^2 (Theta' = ... + Sigma'). See conv_theta.
  bool standard = false;
  double std_a[kMaxConv];
  double std_c[kMaxConv];
  /// Standard readout Dense: NTK = w_o^2 mean(RT) + out_nin mean(R) + out_beta (train_last).
  double out_nin = 0.0, out_beta = 0.0;

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
    *f2 = std::sqrt(erf_gamma2(b, q));
    *f3 = erf_variance(a, c, *f2);
    v = *f3;
  }
  *f1 = std::sqrt(v > 0.0 ? v : 0.0);
}

/// cntk_rho (below) of ABRelu in any lane type V (see Lane; the OpenMP backend's hot loop
/// runs it on simd8::v8): a2, b2 are the two positions' 1/sqrt q.
template <typename V>
NTKX_HD_HOT void abrelu_rho(V c, V qa, V a2, V qb, V b2, V* rho, V* h) {
  using L = Lane<V>;
  const V r = L::sel((c * c == qa * qb) & (c != 0.0), L::sel(c > 0.0, L::bcast(1.0), L::bcast(-1.0)), c * (a2 * b2));
  *rho = r;
  *h = L::pos(1.0 - L::abs(r));
}

/// The correlation of one position pair from its covariance c and the two
/// positions' maps: rho, and h = 1 - |rho| >= 0.
///
/// ABRelu (the hot path: no division or square root): rho = c / (sqrt q sqrt q')
/// from the stored sqrt q and 1/sqrt q (0 for q = 0, so a zero variance gives
/// rho = 0), set to exactly +-1 when c^2 = q q' in floating point: an identical
/// pair (whose maps come from the same code, so c = q = q' bit for bit) or a
/// power-of-two multiple of one has no sqrt(eps) error in its angle. (When the
/// rounded numbers say |rho| = 1, an angle of 0 is as consistent with them as the
/// ~1e-8 that arccos would make of the last ulp.)
/// Others: rho = c / sqrt(q q') (c = q = q' gives 1 exactly; a zero variance meets
/// c = 0 exactly, its patch being zero, and the 1e-300 keeps that 0 / 0 out),
/// clamped to [-1, 1].
/// No selects guard a division: GCC would sink it into a branch and then not
/// vectorize the loop.
template <Act K>
NTKX_HD void cntk_rho(double c, double qa, double a2, double qb, double b2, double* rho, double* h) {
  if (K == Act::kABRelu) return abrelu_rho(c, qa, a2, qb, b2, rho, h);
  double r = c / (std::sqrt(qa * qb) + 1e-300);
  r = r > 1.0 ? 1.0 : (r < -1.0 ? -1.0 : r);
  *rho = r;
  *h = Lane<double>::pos(1.0 - std::fabs(r));
}

/// 1 - |rho| below which a layer-0 correlation is recomputed from the patches.
/// Above it the arccos of the rounded correlation (error ~5e-16 in rho) is off by
/// ~5e-16 / sqrt(2 h) < 4e-14 in the angle; an exact +-1 (h = 0, identical or
/// power-of-two related patches, see cntk_rho) needs no recomputation.
constexpr double kCntkColinear = 1e-4;

/// Calls f(x, y) for the pixels of the layer-0 patches of image a at (ia, ja) and of
/// image b at (ib, jb), in one fixed order (offset, then channel); pixels outside
/// an image are 0 (SAME padding). Pixel (pos, c) of an image is at x[(pos C + c) stride].
template <class F>
NTKX_HD void patch_pixels(const CntkParams& p, const double* xa, const double* xb, int64_t stride, int ia, int ja,
                          int ib, int jb, F f) {
  const int rad = p.filt[0] / 2, C = p.C;
  for (int u = -rad; u <= rad; ++u)
    for (int v = -rad; v <= rad; ++v) {
      const bool ina = ia + u >= 0 && ia + u < p.P && ja + v >= 0 && ja + v < p.Q;
      const bool inb = ib + u >= 0 && ib + u < p.P && jb + v >= 0 && jb + v < p.Q;
      for (int c = 0; c < C; ++c)
        f(ina ? xa[((int64_t(ia + u) * p.Q + ja + v) * C + c) * stride] : 0.0,
          inb ? xb[((int64_t(ib + u) * p.Q + jb + v) * C + c) * stride] : 0.0);
    }
}

/// Layer-0 correlations near +-1 recomputed from the patches (the cancellation in
/// c / sqrt(q q') would leave ~1e-8 in the angle): with v = (patch of x at A,
/// b / s) and v' likewise at B, s = w_0 / (q_0 sqrt C) (so that Sigma^0 = s^2 v.v'),
///   1 - |rho| = | v |v'| -+ v' |v| |^2 / (2 |v|^2 |v'|^2),
/// each component a difference of products taken exactly (fc.h's
/// input_cosine_exact): exactly colinear patches (e.g. one nonzero pixel at the
/// same offset, or a power-of-two scaled image) get rho = +-1 exactly. Pixel
/// (pos, c) of an image is at x[(pos C + c) stride]. Sets rho and h.
NTKX_HD void cntk_patch_colinear(const CntkParams& p, const double* xa, const double* xb, int64_t stride, int ia,
                                 int ja, int ib, int jb, double* rho, double* h) {
  const int C = p.C;
  const double sw = std::sqrt(p.w2[0]) / (double(p.filt[0]) * std::sqrt(double(C)));
  if (!(sw > 0.0)) return;  // no weights: rho = 1 already exact (b^2 / b^2)
  const double beta = std::sqrt(p.b2[0]) / sw;
  double na2 = beta * beta, nb2 = beta * beta;
  patch_pixels(p, xa, xb, stride, ia, ja, ib, jb, [&](double x, double y) { na2 += x * x, nb2 += y * y; });
  if (!(na2 > 0.0 && nb2 > 0.0)) return;
  const bool anti = *rho < 0.0;
  const double na = std::sqrt(na2), nb = std::sqrt(nb2), nbs = anti ? -nb : nb;
  double e = 0.0;
  patch_pixels(p, xa, xb, stride, ia, ja, ib, jb, [&](double x, double y) {
    const double d = diff_of_products(x, nbs, y, na);
    e += d * d;
  });
  const double d = diff_of_products(beta, nbs, beta, na);
  e += d * d;
  const double nn = na * nb;
  double small = 0.5 * (e / nn) / nn;
  small = small > 1.0 ? 1.0 : small;
  *h = small;
  *rho = anti ? small - 1.0 : 1.0 - small;
}

/// ABRelu's dual (see cntk_dual) in any lane type V (see Lane; the OpenMP
/// backend's hot loop runs it on simd8::v8), given kappa and s2 = (a^2 + b^2) / 2:
/// with theta = arccos rho and g = sin theta - theta rho >= 0,
///   K = s2 (c + sqrt(q q') kappa g / pi),   Kd = s2 (1 - kappa theta / pi),
/// a1, b1 the two positions' sqrt q. g is formed directly (one FMA, so theta rho is
/// not rounded first): its cancellation near theta = 0 costs absolute, not
/// relative, accuracy, and K ~ s2 c there. kFold (the activation's ActConst::fold,
/// abs-like a = -b: K is even in rho) forms g of a negative rho at pi - theta,
/// -rho and K from -c, accurate near rho = -1; without it the selects are left out.
template <bool kFold, typename V>
NTKX_HD_HOT void abrelu_dual(double kappa, double s2, V c, V rho, V h, V a1, V b1, V* kk, V* kd) {
  using L = Lane<V>;
  using M = typename L::Mask;
  const M hi = h <= 0.5;  // |rho| >= 1/2
  // z = x^2 without the square root when |rho| >= 1/2 (x = sin(theta/2) of |rho|,
  // <= 1/2 there): the polynomial starts while sqrt(h / 2) is in flight.
  const V hh = 0.5 * h;
  const V p = asin_small(L::sel(hi, L::sqrt(hh), L::abs(rho)), L::sel(hi, hh, rho * rho));
  const V acos_abs = L::sel(hi, 2.0 * p, kHalfPi - p);  // arccos |rho| (as math::angle)
  const M neg = rho < 0.0;
  const V theta = L::sel(neg, kPi - acos_abs, acos_abs);
  const V sin_t = L::sqrt(h * (2.0 - h));  // (1 - |rho|)(1 + |rho|)
  const double kp = kappa * kInvPi;
  if (kFold) {  // flipped where rho < 0: pi - theta = arccos |rho|, -rho, -c
    const V g = L::fma(-L::sel(neg, acos_abs, theta), L::sel(neg, -rho, rho), sin_t);
    *kk = s2 * L::fma((a1 * b1) * kp, g, L::sel(neg, -c, c));
  } else {
    const V g = L::fma(-theta, rho, sin_t);
    *kk = s2 * L::fma((a1 * b1) * kp, g, c);
  }
  *kd = s2 * L::fma(L::bcast(-kp), theta, L::bcast(1.0));
}

/// The dual activation of one position pair at correlation rho (h = 1 - |rho|,
/// carried separately because near |rho| = 1 it, not rho, holds the information),
/// from the covariance c and the positions' map fields (q, f1, f2, f3):
/// K = E[phi phi] and Kd = E[phi' phi'].
/// ABRelu: abrelu_dual (s2 = (a^2 + b^2) / 2, abrelu_s2).
/// Others: the normalized duals of fc.h scaled by sqrt(V V').
template <Act K>
NTKX_HD void cntk_dual(ActConst k, double s2, double c, double rho, double h, double qa, double a1, double a2,
                       double a3, double qb, double b1, double b2, double b3, double* kk, double* kd) {
  if (K == Act::kABRelu) {
    if (k.fold) {
      abrelu_dual<true>(k.kappa, s2, c, rho, h, a1, b1, kk, kd);
    } else {
      abrelu_dual<false>(k.kappa, s2, c, rho, h, a1, b1, kk, kd);
    }
    return;
  }
  const double den = std::sqrt(qa * qb) + 1e-300;
  const bool neg = rho < 0.0;
  const PairState st{rho, neg ? 2.0 - h : h, neg ? h : 2.0 - h, 0.0};
  const Dual du = dual<K>(k, st, a2, a3, b2, b3);
  const double vv = a1 * b1;
  *kk = du.r * vv;
  *kd = du.d * vv / den;
}

/// s2 = (a^2 + b^2) / 2 of an ABRelu (the scale of its duals; unused otherwise).
NTKX_HD double abrelu_s2(const CntkParams& p) { return 0.5 * (p.a * p.a + p.b * p.b); }

/// The scale w^2 / (q^2 C) of a conv layer's patch mean over q x q positions and
/// C channels (Sigma^{l+1} = scale * (patch sum) + b^2).
NTKX_HD double conv_scale(double w2, int q, int channels) { return w2 / (double(q) * q * channels); }

/// conv_scale of conv layer l: layer 0 sums the image's C channel products, the
/// layers after it one channel (the dual of the activation).
NTKX_HD double conv_scale(const CntkParams& p, int l) { return conv_scale(p.w2[l], p.filt[l], l == 0 ? p.C : 1); }

/// Theta' of conv layer l from its scaled box of Kd Theta (`bt` = w^2 box(Kd Theta), or 0 for
/// the first layer), its new Sigma' (`sn`) and the unscaled patch sum `a` it came from:
/// bt + Sigma' (NTK parameterization) or bt + std_a[l] a + std_c[l] (standard; no 1/w^2, so
/// a small W_std beside a large b_std loses nothing); any lane type.
template <typename V>
NTKX_HD V conv_theta(const CntkParams& p, int l, V bt, V sn, V a) {
  return p.standard ? bt + p.std_a[l] * a + p.std_c[l] : bt + 0.0 + sn;
}

/// The readout of one pair from its sums over positions (vanilla) or position pairs
/// (GAP) of R and RT (see the file comment): NNGP and NTK.
NTKX_HD void cntk_readout(const CntkParams& p, double sum_k, double sum_t, double* nngp, double* ntk) {
  const double pq = double(p.P) * double(p.Q);
  const double norm = p.readout == Readout::kGap ? 1.0 / (pq * pq) : 1.0 / pq;
  *nngp = p.out_w2 * (sum_k * norm) + p.out_b2;
  const double last = p.standard ? p.out_nin * (sum_k * norm) + p.out_beta : *nngp;
  *ntk = p.out_w2 * (sum_t * norm) + (p.train_last ? last : 0.0);
}

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
