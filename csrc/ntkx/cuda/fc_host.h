// Host-side driver shared by the CUDA launcher and its CPU emulator: squared
// norms and per-point layer arrays in the [layer, 4, n] layout that FcTile
// reads, and the walk over row panels sized to the memory budget. Compiles with
// g++ alone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "ntkx/backends.h"
#include "ntkx/host/points.h"
#include "ntkx/cuda/fc_tile.h"
#include "ntkx/host/mirror.h"

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

/// One row panel of a launch: rows [r0, r0 + rows) against columns [c0, n2).
struct FcPanel {
  int64_t r0, rows, c0;
};

/// Rows per panel: the largest multiple of the kernel's block side whose output
/// rows (every requested output, n2 entries of T each) fit a.budget, at least one
/// block side; all rows when a.budget <= 0.
template <typename T, Act K>
int64_t panel_rows(const FcFullArgs<T>& a) {
  const int64_t b = FcTile<T, K>::kB;
  const int64_t all = (a.n1 + b - 1) / b * b;
  if (a.budget <= 0) return all;
  const int64_t per_row = a.n2 * int64_t(sizeof(T)) * ((a.nngp ? 1 : 0) + (a.ntk ? 1 : 0));
  return std::min(all, std::max(b, a.budget / std::max<int64_t>(per_row, 1) / b * b));
}

/// Calls run(FcPanel) for each row panel of a launch (symmetric: the columns from
/// the panel's first row on), tells `interrupt` (may be null) the pairs done after
/// each and stops (Interrupted) when it asks to; then mirrors a symmetric matrix.
template <typename T, Act K, class Run>
void fc_panels(const FcFullArgs<T>& a, Interrupt* interrupt, Run run) {
  const int64_t step = panel_rows<T, K>(a);
  int64_t done = 0;
  for (int64_t r0 = 0; r0 < a.n1; r0 += step) {
    const int64_t r = std::min(step, a.n1 - r0);
    run(FcPanel{r0, r, a.symmetric ? r0 : 0});
    done += a.symmetric ? r * (a.n1 - r0) - r * (r - 1) / 2 : r * a.n2;
    if (interrupt) {
      interrupt->progress(done);
      if (interrupt->requested()) throw Interrupted();
    }
  }
  if (!a.symmetric) return;
  host::mirror_upper(a.nngp, a.n1, a.n2, a.ldo);
  host::mirror_upper(a.ntk, a.n1, a.n2, a.ldo);
}

/// Tile arguments of panel `pn` pointing at the given (host or device) buffers;
/// nngp / ntk (row stride ldo) receive the panel's entry (r0, c0) first.
template <typename T, Act K>
typename FcTile<T, K>::Args tile_args(const FcFullArgs<T>& a, const FcPanel& pn, const T* x1, const T* x2,
                                      const double* sq1, const double* sq2, const double* pt1, const double* pt2,
                                      const double* lq1, const double* lq2, T* nngp, T* ntk, int64_t ldo) {
  constexpr int64_t b = FcTile<T, K>::kB;
  typename FcTile<T, K>::Args t;
  t.p = a.params;
  t.k = math::act_const(a.params);
  t.n1 = a.n1, t.n2 = a.n2, t.d = a.d, t.layers = a.params.depth + 1;
  t.x1 = x1, t.x2 = x2, t.sq1 = sq1, t.sq2 = sq2, t.pt1 = pt1, t.pt2 = pt2, t.lq1 = lq1, t.lq2 = lq2;
  t.by0 = pn.r0 / b, t.bx0 = pn.c0 / b;
  t.nngp = nngp, t.ntk = ntk, t.ldo = ldo, t.symmetric = a.symmetric;
  return t;
}

/// Grid of panel `pn`: (ceil((n2 - c0) / kB), ceil(rows / kB)) blocks of kB x kB threads.
template <typename T, Act K>
void grid_of(const FcFullArgs<T>& a, const FcPanel& pn, int64_t* gx, int64_t* gy) {
  const int64_t b = FcTile<T, K>::kB;
  *gx = (a.n2 - pn.c0 + b - 1) / b, *gy = (pn.rows + b - 1) / b;
}

}  // namespace cuda
}  // namespace ntkx
