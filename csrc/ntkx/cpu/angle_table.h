// Depth-L response of a bias-free network as a function of the input angle.
//
// Without biases every per-point weight of the normalized recursion is u = 1,
// v = 0 (math/fc.h), so a pair's normalized outputs rho_L and tau_L depend on its
// input angle theta_0 alone: two fixed univariate functions on [0, pi], analytic
// for the ReLU family and ReQU (not for the step activation, whose angle map is
// ~sqrt(theta); erf is not homogeneous). A call with many pairs tabulates them
// once, piecewise: Chebyshev series of degree kDeg on kPieces equal intervals,
// from the exact recursion at the Chebyshev nodes. Each pair then costs one
// angle and two degree-8 Chebyshev sums instead of L layer steps. Before use, the
// table is compared with the exact recursion at kProbes points per piece between
// the nodes; if any misses kCheckTol (deep nets steepen near theta = 0), the
// caller runs the exact recursion instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ntkx/host/poll.h"
#include "ntkx/math/fc.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define NTKX_TABLE_AVX2 1
#endif

namespace ntkx {

struct AngleTable {
  static constexpr int kPieces = 256;
  static constexpr int kDeg = 8;
  static constexpr int kNodes = kDeg + 1;
  static constexpr int kProbes = 3;
  /// Absolute tolerance of the check, relative to max |tau_L| (|rho_L| <= 1).
  static constexpr double kCheckTol = 4e-15;

  /// Doubles per piece: rho_L's c_0..c_7, tau_L's c_0..c_7, rho_L's c_8, tau_L's
  /// c_8 and 2 of padding (see slot()), so 4 pieces' coefficients load as 4 x 4 blocks.
  static constexpr int kStride = 20;

  double inv_h = 0.0;
  std::vector<double> coef;  ///< [kPieces, kStride]: Chebyshev coefficients of rho_L and tau_L per piece

  /// Layer steps a call must save for the table to pay for itself (build + check).
  static bool pays(int64_t pairs, int64_t depth) {
    return depth >= 3 && pairs >= int64_t(16) * kPieces * (kNodes + kProbes);
  }

  /// The exact recursion from input angle t (bias-free: u = 1, v = 0).
  template <Act K>
  static void exact(const math::ActConst& k, int64_t depth, double t, double* rho, double* tau) {
    const double s = std::sin(0.5 * t), c = std::cos(0.5 * t);
    math::PairState st{std::cos(t), 2.0 * s * s, 2.0 * c * c, std::cos(t)};
    for (int64_t l = 1; l <= depth; ++l) math::layer_step<K, true>(k, st, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0);
    *rho = st.rho, *tau = st.tau;
  }

  /// Builds and checks the table; returns whether it may be used. `poll` (may be
  /// null) is checked per piece, so Ctrl-C stops a deep table's build too (which
  /// then returns false; the caller sees poll->stop()).
  template <Act K>
  bool build(const math::ActConst& k, int64_t depth, Poll* poll = nullptr) {
    return build_with([&](double t, double* r, double* u) { exact<K>(k, depth, t, r, u); }, poll);
  }

  /// build() from any exact response: exact(theta, &rho_L, &tau_L) (the register
  /// program's, for bias-free compositions of the same activations; cpu/fc.cpp).
  template <class Exact>
  bool build_with(Exact&& exact, Poll* poll = nullptr) {
    const double h = math::kPi / kPieces;
    inv_h = 1.0 / h;
    coef.assign(kPieces * kStride, 0.0);
    double cosines[kNodes][kNodes];
    for (int m = 0; m < kNodes; ++m)
      for (int j = 0; j < kNodes; ++j) cosines[m][j] = std::cos(math::kPi * m * (j + 0.5) / kNodes);
    double scale = 1.0;
    for (int p = 0; p < kPieces; ++p) {
      if (poll != nullptr) {
        poll->check();
        if (poll->stop()) return false;
      }
      double f[2][kNodes];
      for (int j = 0; j < kNodes; ++j) {
        exact(h * (p + 0.5 * (cosines[1][j] + 1.0)), &f[0][j], &f[1][j]);
        scale = std::max(scale, std::fabs(f[1][j]));
      }
      for (int w = 0; w < 2; ++w)
        for (int m = 0; m < kNodes; ++m) {
          double acc = 0.0;
          for (int j = 0; j < kNodes; ++j) acc += f[w][j] * cosines[m][j];
          coef[p * kStride + slot(w, m)] = (m == 0 ? 1.0 : 2.0) * acc / kNodes;
        }
    }
    // Check both evaluators against the exact recursion, kProbes points per piece
    // between the nodes: eval_row (vectorized where it can be) and eval (scalar).
    const double probes[kProbes] = {-0.77, 0.13, 0.91};
    std::vector<double> theta(kPieces * kProbes), r(theta.size()), t(theta.size());
    for (int p = 0; p < kPieces; ++p)
      for (int q = 0; q < kProbes; ++q) theta[p * kProbes + q] = h * (p + 0.5 * (probes[q] + 1.0));
    eval_row(theta.data(), int64_t(theta.size()), r.data(), t.data());
    for (size_t n = 0; n < theta.size(); ++n) {
      if (poll != nullptr && n % kProbes == 0) {
        poll->check();
        if (poll->stop()) return false;
      }
      double er, et, sr, st;
      exact(theta[n], &er, &et);
      eval(theta[n], &sr, &st);
      const bool ok = std::fabs(r[n] - er) <= kCheckTol && std::fabs(t[n] - et) <= kCheckTol * scale &&
                      std::fabs(sr - er) <= kCheckTol && std::fabs(st - et) <= kCheckTol * scale;
      if (!ok) return false;
    }
    return true;
  }

  /// Where coefficient m of function w (0: rho_L, 1: tau_L) sits in a piece.
  static constexpr int slot(int w, int m) { return m < kDeg ? w * kDeg + m : 2 * kDeg + w; }

  /// rho_L and tau_L at piece p, local coordinate x in [-1, 1]: the Chebyshev
  /// polynomials T_2..T_8 once (doubling and addition formulas, depth 3), then
  /// two sums of independent products. (Clenshaw's recurrence would be a chain of
  /// kDeg dependent FMAs per pair.) eval4 does the same operations lane by lane,
  /// so both give the same bits.
  void eval_local(int p, double x, double* r, double* t) const {
    static_assert(kDeg == 8, "eval_local and eval4 are written out for degree 8");
    const double* cr = coef.data() + p * kStride;
    const double* ct = cr + kDeg;
    const double x2 = 2.0 * x;
    const double t2 = std::fma(x2, x, -1.0);
    const double t3 = std::fma(x2, t2, -x);
    const double t4 = std::fma(2.0 * t2, t2, -1.0);
    const double t5 = std::fma(2.0 * t2, t3, -x);
    const double t6 = std::fma(2.0 * t3, t3, -1.0);
    const double t7 = std::fma(2.0 * t3, t4, -x);
    const double t8 = std::fma(2.0 * t4, t4, -1.0);
    auto sum = [&](const double* c, double c8) {
      const double e = std::fma(c8, t8, std::fma(c[6], t6, std::fma(c[4], t4, std::fma(c[2], t2, c[0]))));
      const double o = std::fma(c[7], t7, std::fma(c[5], t5, std::fma(c[3], t3, c[1] * x)));
      return e + o;
    };
    *r = sum(cr, cr[slot(0, kDeg)]);
    *t = sum(ct, cr[slot(1, kDeg)]);
  }

  /// rho_L and tau_L at input angle theta in [0, pi].
  void eval(double theta, double* r, double* t) const {
    const double u = theta * inv_h;
    const int p = std::min(std::max(int(u), 0), kPieces - 1);
    eval_local(p, 2.0 * (u - double(p)) - 1.0, r, t);
  }

  /// Fills r[j], t[j] from theta[j] (j < w); theta may be t (each group is read
  /// before it is written). With AVX2, 4 pairs at a time: the 4 pieces'
  /// coefficients load as rows and are transposed in registers, which is cheaper
  /// than gathers on current x86, then eval_local's operations run lane-wise.
  void eval_row(const double* theta, int64_t w, double* r, double* t) const {
    int64_t j = 0;
#ifdef NTKX_TABLE_AVX2
    for (; j + 4 <= w; j += 4) eval4(theta + j, r + j, t + j);
#endif
    for (; j < w; ++j) eval(theta[j], &r[j], &t[j]);
  }

#ifdef NTKX_TABLE_AVX2
 private:
  /// c[k] = (a0[k], a1[k], a2[k], a3[k]).
  static void transpose4(__m256d a0, __m256d a1, __m256d a2, __m256d a3, __m256d* c) {
    const __m256d l01 = _mm256_unpacklo_pd(a0, a1), h01 = _mm256_unpackhi_pd(a0, a1);
    const __m256d l23 = _mm256_unpacklo_pd(a2, a3), h23 = _mm256_unpackhi_pd(a2, a3);
    c[0] = _mm256_permute2f128_pd(l01, l23, 0x20);
    c[1] = _mm256_permute2f128_pd(h01, h23, 0x20);
    c[2] = _mm256_permute2f128_pd(l01, l23, 0x31);
    c[3] = _mm256_permute2f128_pd(h01, h23, 0x31);
  }

  /// eval() of theta[0..4) into r[0..4), t[0..4).
  void eval4(const double* theta, double* r, double* t) const {
    const __m256d one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0);
    const __m256d u = _mm256_mul_pd(_mm256_loadu_pd(theta), _mm256_set1_pd(inv_h));
    __m128i pi = _mm256_cvttpd_epi32(u);  // NaN -> INT_MIN -> piece 0, as int(u) in eval
    pi = _mm_min_epi32(_mm_max_epi32(pi, _mm_setzero_si128()), _mm_set1_epi32(kPieces - 1));
    const __m256d x = _mm256_sub_pd(_mm256_mul_pd(two, _mm256_sub_pd(u, _mm256_cvtepi32_pd(pi))), one);
    alignas(16) int idx[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(idx), pi);
    const double* c0 = coef.data() + idx[0] * kStride;
    const double* c1 = coef.data() + idx[1] * kStride;
    const double* c2 = coef.data() + idx[2] * kStride;
    const double* c3 = coef.data() + idx[3] * kStride;
    __m256d cr[kDeg], ct[kDeg];
    for (int b = 0; b < kDeg; b += 4) {
      transpose4(_mm256_loadu_pd(c0 + b), _mm256_loadu_pd(c1 + b), _mm256_loadu_pd(c2 + b), _mm256_loadu_pd(c3 + b),
                 cr + b);
      const int o = kDeg + b;
      transpose4(_mm256_loadu_pd(c0 + o), _mm256_loadu_pd(c1 + o), _mm256_loadu_pd(c2 + o), _mm256_loadu_pd(c3 + o),
                 ct + b);
    }
    // (rho c_8, tau c_8) of lanes 0 and 2 and of lanes 1 and 3, then split.
    const int e = slot(0, kDeg);
    const __m256d g02 = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(c0 + e)), _mm_loadu_pd(c2 + e), 1);
    const __m256d g13 = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(c1 + e)), _mm_loadu_pd(c3 + e), 1);
    const __m256d x2 = _mm256_mul_pd(two, x);
    const __m256d t2 = _mm256_fmsub_pd(x2, x, one);
    const __m256d t3 = _mm256_fmsub_pd(x2, t2, x);
    const __m256d t4 = _mm256_fmsub_pd(_mm256_mul_pd(two, t2), t2, one);
    const __m256d t5 = _mm256_fmsub_pd(_mm256_mul_pd(two, t2), t3, x);
    const __m256d t6 = _mm256_fmsub_pd(_mm256_mul_pd(two, t3), t3, one);
    const __m256d t7 = _mm256_fmsub_pd(_mm256_mul_pd(two, t3), t4, x);
    const __m256d t8 = _mm256_fmsub_pd(_mm256_mul_pd(two, t4), t4, one);
    auto sum = [&](const __m256d* k, __m256d k8) {
      const __m256d ev = _mm256_fmadd_pd(
          k8, t8, _mm256_fmadd_pd(k[6], t6, _mm256_fmadd_pd(k[4], t4, _mm256_fmadd_pd(k[2], t2, k[0]))));
      const __m256d od =
          _mm256_fmadd_pd(k[7], t7, _mm256_fmadd_pd(k[5], t5, _mm256_fmadd_pd(k[3], t3, _mm256_mul_pd(k[1], x))));
      return _mm256_add_pd(ev, od);
    };
    _mm256_storeu_pd(r, sum(cr, _mm256_unpacklo_pd(g02, g13)));
    _mm256_storeu_pd(t, sum(ct, _mm256_unpackhi_pd(g02, g13)));
  }
#endif
};

}  // namespace ntkx
