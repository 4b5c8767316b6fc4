// Per-point, per-layer quantities of the FC recursion (host side, shared by the
// OpenMP backend, the CUDA launcher and the Python binding): O(n L) work, done
// once per point and layer, never per pair.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "ntkx/math/fc.h"

namespace ntkx {

/// Fields of a per-point layer entry, in the order of the [layer, 4, n] layout.
enum PointField : int { kU = 0, kV = 1, kG = 2, kS = 3 };

/// PointLayer values of n points for a block of layers, laid out [layer, 4, n]
/// (entry (l, f, i) at data[(4 l + f) n + i]) so that a loop over points at one
/// layer and field is contiguous.
struct PointArrays {
  int64_t n = 0;
  std::vector<double> data;   ///< [layers computed, 4, n]
  std::vector<double> logq;   ///< [n] log Q of the last layer computed so far

  explicit PointArrays(int64_t n_points) : n(n_points), logq(n_points, 0.0) {}

  /// Computes layers [l0, l0 + count) (layer 0 from the squared norms `sq` of
  /// d-dimensional inputs and the optional log-scales `lsc` of math::point_layer0,
  /// null for none), continuing from `logq`.
  void compute(const FcParams& p, const double* sq, const double* lsc, int64_t d, int64_t l0, int64_t count) {
    data.resize(4 * count * n);
    fill_layers(p, sq, lsc, d, l0, count, n, data.data(), n, logq.data());
  }

  /// The same into caller memory: out[(4 t + f) ld + i], logq in/out.
  static void fill_layers(const FcParams& p, const double* sq, const double* lsc, int64_t d, int64_t l0,
                          int64_t count, int64_t n, double* out, int64_t ld, double* logq) {
    for (int64_t i = 0; i < n; ++i) {
      double lq = logq[i];
      for (int64_t t = 0; t < count; ++t) {
        math::PointLayer pl;
        lq = (l0 + t == 0) ? math::point_layer0(p, sq[i], lsc ? lsc[i] : 0.0, d, &pl)
                             : math::point_layer(p, l0 + t, lq, &pl);
        double* at = out + 4 * t * ld + i;
        at[kU * ld] = pl.u, at[kV * ld] = pl.v, at[kG * ld] = pl.g, at[kS * ld] = pl.s;
      }
      logq[i] = lq;
    }
  }
};

/// Output scale sqrt(Q_L) of each point, or -1 where sqrt(Q_L Q_L') must be
/// formed from the logs (a product of two such scales could overflow or lose
/// precision to underflow).
inline void point_scales(const double* logq, int64_t n, double* scale) {
  for (int64_t i = 0; i < n; ++i) {
    const double s = std::exp(0.5 * logq[i]);
    scale[i] = (s == 0.0 || (s > 1e-150 && s < 1e150)) ? s : -1.0;
  }
}

}  // namespace ntkx
