// The fused FC kernel of the CUDA backend, cut at its barriers into phase bodies
// (DESIGN.md section 3) so that the same code runs under nvcc and in the CPU
// emulator of the test build. One block computes a kB x kB tile of the kernel
// matrix, one thread per entry: the Gram product accumulates over d in kKT-wide
// slices staged in shared memory (load / step), then each thread runs the layer
// recursion in registers and writes its entry once (finish). A launch covers one
// row panel (blocks by0.. of rows, bx0.. of columns) and writes it to a panel
// buffer; the host walks the panels and mirrors a symmetric matrix afterwards.
//
// Compiles with g++ alone; nothing here is CUDA-specific but NTKX_HD.
#pragma once

#include <cstdint>

#include "ntkx/math/fc.h"

namespace ntkx {
namespace cuda {

/// Block and thread coordinates of one emulated or real thread.
struct Idx {
  int bx, by, tx, ty;
};

template <typename T, Act K>
struct FcTile {
  static constexpr int kB = 16;   ///< threads per block side (kB x kB entries)
  static constexpr int kKT = 16;  ///< d-slice staged per load

  struct Args {
    FcParams p;
    math::ActConst k;
    int64_t n1, n2, d, layers;    ///< layers = depth + 1 per-point entries
    const T* x1;                  ///< [n1, d]
    const T* x2;                  ///< [n2, d]
    const double* sq1;            ///< [n1] squared norms
    const double* sq2;            ///< [n2]
    const double* pt1;            ///< [layers, 4, n1]: u, v, g, s per layer
    const double* pt2;            ///< [layers, 4, n2]
    const double* lq1;            ///< [n1] log Q_L
    const double* lq2;            ///< [n2]
    int64_t by0, bx0;             ///< first block row / column of this panel
    T* nngp;                      ///< panel output (row by0 kB, column bx0 kB first), or null
    T* ntk;                       ///< same layout as nngp, or null
    int64_t ldo;                  ///< row stride of nngp / ntk
    bool symmetric;               ///< upper-triangle entries only (the host mirrors)
  };

  struct Shared {
    double a[kB][kKT + 1];  // rows of x1 in this slice (+1: no bank conflicts)
    double b[kB][kKT + 1];  // rows of x2 in this slice
  };

  struct Thread {
    int64_t i, j;
    double acc;
    bool active;  // block takes part (false below the diagonal when symmetric)
  };

  NTKX_HD static int64_t slices(const Args& a) { return (a.d + kKT - 1) / kKT; }

  NTKX_HD static void init(Idx x, Thread& th, const Args& a) {
    th.i = (a.by0 + x.by) * kB + x.ty;
    th.j = (a.bx0 + x.bx) * kB + x.tx;
    th.acc = 0.0;
    th.active = !(a.symmetric && a.bx0 + x.bx < a.by0 + x.by);
  }

  NTKX_HD static void load(Idx x, int64_t s, Shared& sh, Thread& th, const Args& a) {
    if (!th.active) return;
    const int64_t col = s * kKT + x.tx;
    const int64_t r1 = (a.by0 + x.by) * kB + x.ty, r2 = (a.bx0 + x.bx) * kB + x.ty;
    sh.a[x.ty][x.tx] = (r1 < a.n1 && col < a.d) ? double(a.x1[r1 * a.d + col]) : 0.0;
    sh.b[x.ty][x.tx] = (r2 < a.n2 && col < a.d) ? double(a.x2[r2 * a.d + col]) : 0.0;
  }

  NTKX_HD static void step(Idx x, int64_t, Shared& sh, Thread& th, const Args&) {
    if (!th.active) return;
    double acc = th.acc;
    for (int t = 0; t < kKT; ++t) acc += sh.a[x.ty][t] * sh.b[x.tx][t];
    th.acc = acc;
  }

  NTKX_HD static void finish(Idx, Shared&, Thread& th, const Args& a) {
    if (!th.active || th.i >= a.n1 || th.j >= a.n2 || (a.symmetric && th.j < th.i)) return;
    const int64_t i = th.i, j = th.j;
    double c, omc, opc;
    math::input_cosine(th.acc, a.sq1[i], a.sq2[j], a.x1 + i * a.d, a.x2 + j * a.d, a.d, &c, &omc, &opc);
    math::PairState st;
    math::layer0(st, c, omc, opc, math::PointLayer{a.pt1[i], a.pt1[a.n1 + i], 0.0, 0.0},
                 math::PointLayer{a.pt2[j], a.pt2[a.n2 + j], 0.0, 0.0});
    for (int64_t l = 1; l < a.layers; ++l) {
      const double* p1 = a.pt1 + 4 * l * a.n1;
      const double* p2 = a.pt2 + 4 * l * a.n2;
      math::layer_step<K>(a.k, st, p1[i], p1[a.n1 + i], p1[2 * a.n1 + i], p1[3 * a.n1 + i], p2[j],
                          p2[a.n2 + j], p2[2 * a.n2 + j], p2[3 * a.n2 + j]);
    }
    const double s = math::pair_scale(a.lq1[i], a.lq2[j]);
    const T nngp = T(math::scaled(s, st.rho)), ntk = T(math::scaled(s, st.tau));
    const int64_t o = (i - a.by0 * kB) * a.ldo + (j - a.bx0 * kB);
    if (a.nngp) a.nngp[o] = nngp;
    if (a.ntk) a.ntk[o] = ntk;
  }
};

}  // namespace cuda
}  // namespace ntkx
