// Per-point, per-layer quantities of the FC recursion (host side, shared by the
// OpenMP backend and the CUDA launcher): O(n L) work, done once per point and
// layer block, never per pair.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "ntkx/math/fc.h"

namespace ntkx {

/// Structure-of-arrays PointLayer values for n points and a block of layers,
/// laid out [layer][point] so that a loop over points at one layer is contiguous.
struct PointArrays {
  int64_t n = 0;
  int64_t nl = 0;                 ///< layers held
  std::vector<double> u, v, g, s; ///< [nl, n]
  std::vector<double> logq;       ///< [n] log Q of the last layer computed so far

  explicit PointArrays(int64_t n_points) : n(n_points), logq(n_points, 0.0) {}

  /// Computes layers [l0, l0 + count) (layer 0 from the squared norms `sq` of
  /// d-dimensional inputs), continuing from `logq`.
  void compute(const FcParams& p, const double* sq, int64_t d, int64_t l0, int64_t count) {
    nl = count;
    u.resize(count * n), v.resize(count * n), g.resize(count * n), s.resize(count * n);
    for (int64_t i = 0; i < n; ++i) {
      double lq = logq[i];
      for (int64_t t = 0; t < count; ++t) {
        math::PointLayer pl;
        lq = (l0 + t == 0) ? math::point_layer0(p, sq[i], d, &pl) : math::point_layer(p, lq, &pl);
        const int64_t at = t * n + i;
        u[at] = pl.u, v[at] = pl.v, g[at] = pl.g, s[at] = pl.s;
      }
      logq[i] = lq;
    }
  }
};

}  // namespace ntkx
