// Host-side preparation shared by the CUDA launcher and its CPU emulator:
// squared norms and per-point layer arrays in the [layer, 4, n] layout that
// FcTile reads. Compiles with g++ alone.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "ntkx/api.h"
#include "ntkx/cpu/points.h"
#include "ntkx/cuda/fc_tile.h"

namespace ntkx {
namespace cuda {

/// Per-point arrays of the whole depth are bounded by this many doubles (1 GB).
constexpr int64_t kFullPointBudget = int64_t(1) << 27;

struct FcHostData {
  std::vector<double> sq1, sq2, pt1, pt2, lq1, lq2;
};

template <typename T>
std::vector<double> squared_norms(const T* x, int64_t n, int64_t d) {
  std::vector<double> sq(n);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t t = 0; t < d; ++t) s += double(x[i * d + t]) * double(x[i * d + t]);
    sq[i] = s;
  }
  return sq;
}

inline void layer_arrays(const FcParams& p, const std::vector<double>& sq, const double* lsc, int64_t d,
                         std::vector<double>* pt, std::vector<double>* lq) {
  PointArrays pa(int64_t(sq.size()));
  pa.compute(p, sq.data(), lsc, d, 0, p.depth + 1);
  *pt = std::move(pa.data);
  *lq = std::move(pa.logq);
}

template <typename T>
FcHostData prepare(const FcFullArgs<T>& a) {
  const int64_t layers = a.params.depth + 1;
  if (layers * 4 * (a.n1 + a.n2) > kFullPointBudget)
    throw std::length_error("ntkx: depth x points too large for the fused CUDA kernel; use device='cpu'");
  FcHostData h;
  h.sq1 = squared_norms(a.x1, a.n1, a.d);
  h.sq2 = a.symmetric ? h.sq1 : squared_norms(a.x2, a.n2, a.d);
  layer_arrays(a.params, h.sq1, a.lsc1, a.d, &h.pt1, &h.lq1);
  if (a.symmetric) {
    h.pt2 = h.pt1, h.lq2 = h.lq1;
  } else {
    layer_arrays(a.params, h.sq2, a.lsc2, a.d, &h.pt2, &h.lq2);
  }
  return h;
}

/// Tile arguments pointing at the given (host or device) buffers.
template <typename T, Act K>
typename FcTile<T, K>::Args tile_args(const FcFullArgs<T>& a, const T* x1, const T* x2, const double* sq1,
                                      const double* sq2, const double* pt1, const double* pt2,
                                      const double* lq1, const double* lq2, T* nngp, T* ntk) {
  typename FcTile<T, K>::Args t;
  t.p = a.params;
  t.k = math::act_const(a.params);
  t.n1 = a.n1, t.n2 = a.n2, t.d = a.d, t.layers = a.params.depth + 1;
  t.x1 = x1, t.x2 = x2, t.sq1 = sq1, t.sq2 = sq2, t.pt1 = pt1, t.pt2 = pt2, t.lq1 = lq1, t.lq2 = lq2;
  t.nngp = nngp, t.ntk = ntk, t.symmetric = a.symmetric;
  return t;
}

/// Grid of the fused kernel: (ceil(n2 / kB), ceil(n1 / kB)) blocks of kB x kB threads.
template <typename T, Act K>
void grid_of(const FcFullArgs<T>& a, int64_t* gx, int64_t* gy) {
  const int64_t b = FcTile<T, K>::kB;
  *gx = (a.n2 + b - 1) / b, *gy = (a.n1 + b - 1) / b;
}

}  // namespace cuda
}  // namespace ntkx
