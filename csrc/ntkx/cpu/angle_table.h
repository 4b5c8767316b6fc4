// Depth-L response of a bias-free network as a function of the input angle.
//
// Without biases every per-point weight of the normalized recursion is u = 1,
// v = 0 (math/fc.h), so a pair's normalized outputs rho_L and tau_L depend on its
// input angle theta_0 alone: two fixed univariate functions on [0, pi], analytic
// for the ReLU family and ReQU (not for the step activation, whose angle map is
// ~sqrt(theta); erf is not homogeneous). A call with many pairs tabulates them
// once, piecewise: Chebyshev series of degree kDeg on kPieces equal intervals,
// from the exact recursion at the Chebyshev nodes. Each pair then costs one
// angle and two short Clenshaw sums instead of L layer steps. Before use, the
// table is compared with the exact recursion at kProbes points per piece between
// the nodes; if any misses kCheckTol (deep nets steepen near theta = 0), the
// caller runs the exact recursion instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ntkx/math/fc.h"

namespace ntkx {

struct AngleTable {
  static constexpr int kPieces = 256;
  static constexpr int kDeg = 8;
  static constexpr int kNodes = kDeg + 1;
  static constexpr int kProbes = 3;
  /// Absolute tolerance of the check, relative to max |tau_L| (|rho_L| <= 1).
  static constexpr double kCheckTol = 4e-15;

  double inv_h = 0.0;
  std::vector<double> coef;  ///< [kPieces, 2, kNodes]: Chebyshev coefficients of rho_L, tau_L per piece

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

  /// Builds and checks the table; returns whether it may be used.
  template <Act K>
  bool build(const math::ActConst& k, int64_t depth) {
    const double h = math::kPi / kPieces;
    inv_h = 1.0 / h;
    coef.assign(kPieces * 2 * kNodes, 0.0);
    double cosines[kNodes][kNodes];
    for (int m = 0; m < kNodes; ++m)
      for (int j = 0; j < kNodes; ++j) cosines[m][j] = std::cos(math::kPi * m * (j + 0.5) / kNodes);
    double scale = 1.0;
    for (int p = 0; p < kPieces; ++p) {
      double f[2][kNodes];
      for (int j = 0; j < kNodes; ++j) {
        exact<K>(k, depth, h * (p + 0.5 * (cosines[1][j] + 1.0)), &f[0][j], &f[1][j]);
        scale = std::max(scale, std::fabs(f[1][j]));
      }
      for (int w = 0; w < 2; ++w)
        for (int m = 0; m < kNodes; ++m) {
          double acc = 0.0;
          for (int j = 0; j < kNodes; ++j) acc += f[w][j] * cosines[m][j];
          coef[(p * 2 + w) * kNodes + m] = (m == 0 ? 1.0 : 2.0) * acc / kNodes;
        }
    }
    const double probes[kProbes] = {-0.77, 0.13, 0.91};
    for (int p = 0; p < kPieces; ++p)
      for (double x : probes) {
        double r, t, er, et;
        exact<K>(k, depth, h * (p + 0.5 * (x + 1.0)), &r, &t);
        eval_local(p, x, &er, &et);
        if (!(std::fabs(er - r) <= kCheckTol && std::fabs(et - t) <= kCheckTol * scale)) return false;
      }
    return true;
  }

  /// rho_L and tau_L at piece p, local coordinate x in [-1, 1].
  void eval_local(int p, double x, double* r, double* t) const {
    const double* cr = coef.data() + p * 2 * kNodes;
    const double* ct = cr + kNodes;
    double a1 = 0.0, a2 = 0.0, b1 = 0.0, b2 = 0.0;
    const double x2 = 2.0 * x;
    for (int m = kDeg; m >= 1; --m) {
      const double a0 = std::fma(x2, a1, cr[m] - a2);
      const double b0 = std::fma(x2, b1, ct[m] - b2);
      a2 = a1, a1 = a0, b2 = b1, b1 = b0;
    }
    *r = std::fma(x, a1, cr[0] - a2);
    *t = std::fma(x, b1, ct[0] - b2);
  }

  /// Fills r[j], t[j] from theta[j] (j < w). Kept scalar on purpose: vectorized,
  /// the per-piece coefficient loads become gathers, which cost more than they save.
#if defined(__GNUC__) && !defined(__clang__)
  __attribute__((noinline, optimize("no-tree-vectorize")))
#endif
  void eval_row(const double* theta, int64_t w, double* r, double* t) const {
    for (int64_t j = 0; j < w; ++j) eval(theta[j], &r[j], &t[j]);
  }

  /// rho_L and tau_L at input angle theta in [0, pi].
  void eval(double theta, double* r, double* t) const {
    const double u = theta * inv_h;
    const int p = std::min(std::max(int(u), 0), kPieces - 1);
    eval_local(p, 2.0 * (u - p) - 1.0, r, t);
  }
};

}  // namespace ntkx
