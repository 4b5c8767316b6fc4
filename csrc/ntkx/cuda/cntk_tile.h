// The CNTK kernel of the CUDA backend, cut at its barriers into phase bodies
// (DESIGN.md section 3) so that the same code runs under nvcc and in the CPU
// emulator of the test build.
//
// One block of kThreads threads handles one pair (i, j) and one group of
// displacement slices. Per slice, the slice lives in shared memory (S, T and a
// box-filter scratch, at most kMaxPQ entries each) and runs all layers there; each
// thread owns the flat entries e = tid + m * kThreads. The phases of a slice are
//   prod (channel products) | h-pass | v-pass (conv 0)
//   then per activation stage: dual | h S | v S | h T | v T   (conv after it)
//   then readout (each thread adds its entries into registers),
// with a barrier after each. The block's partial sums are reduced in a fixed order
// (threads -> shared -> thread 0), written per (pair, group), and a second kernel
// (reduce_pair) adds the groups in order: a deterministic two-stage reduction.
// The box filter sums in the same order as the OpenMP backend's, so the two agree
// to rounding of the readout sums only.
//
// Compiles with g++ alone; nothing here is CUDA-specific but NTKX_HD.
#pragma once

#include <cstdint>

#include "ntkx/math/cntk.h"

namespace ntkx {
namespace cuda {

/// Block and thread index of one emulated or real thread (1-D blocks, 3-D grid).
struct CIdx {
  int bx, by, bz, tid;
};

template <Act K>
struct CntkTile {
  static constexpr int kThreads = 256;
  static constexpr int kMaxPQ = 1024;  ///< largest image (P * Q) the shared buffers hold
  static constexpr int kGroups = 8;    ///< slice groups per pair (GAP)

  struct Args {
    CntkParams p;
    math::ActConst k;
    int64_t n1, n2;         ///< pairs of this launch: rows x cols
    int64_t row0, col0;     ///< first row / column image of the launch
    const double* x;        ///< row images [*, P, Q, C] (indexed from 0 by row0 + i)
    const double* y;        ///< column images
    const double* mx;       ///< row maps [*, n_act, n_fields, P Q]
    const double* my;       ///< column maps
    double* part;           ///< [n1, n2, groups, 2] partial readout sums
    int64_t groups;         ///< slice groups per pair
    bool want_ntk;
    bool upper;             ///< only pairs with global column >= global row
  };

  struct Shared {
    double s[kMaxPQ], t[kMaxPQ], tmp[kMaxPQ];
    double red[2][kThreads];
  };

  struct Thread {
    int64_t i, j;
    double acc_k, acc_t;
    bool active;
  };

  NTKX_HD static int64_t slice_begin(const Args& a, int64_t g) {
    const int64_t n = math::slice_count(a.p);
    return g * ((n + a.groups - 1) / a.groups);
  }
  NTKX_HD static int64_t slice_end(const Args& a, int64_t g) {
    const int64_t n = math::slice_count(a.p), e = slice_begin(a, g + 1);
    return e < n ? e : n;
  }

  /// Phases per slice (see the file comment).
  NTKX_HD static int phases(const Args& a) {
    const int cp = a.want_ntk ? 4 : 2;
    return 3 + (a.p.n_conv - 1) * (1 + cp) + (a.p.final_act ? 1 : 0) + 1;
  }

  NTKX_HD static void init(CIdx x, Thread& th, const Args& a) {
    th.i = x.bz, th.j = x.by;
    th.acc_k = th.acc_t = 0.0;
    th.active = th.i < a.n1 && th.j < a.n2 && !(a.upper && a.col0 + th.j < a.row0 + th.i);
  }

  /// h-pass: tmp[e] = sum of src over the row window of entry e.
  NTKX_HD static void hpass(int tid, const double* src, double* tmp, int h, int w, int rad) {
    for (int e = tid; e < h * w; e += kThreads) {
      const int r = e / w, s = e % w;
      const int lo = s - rad < 0 ? 0 : s - rad, hi = s + rad > w - 1 ? w - 1 : s + rad;
      double acc = src[r * w + lo];
      for (int u = lo + 1; u <= hi; ++u) acc += src[r * w + u];
      tmp[e] = acc;
    }
  }

  /// v-pass: dst[e] = scale * (column-window sum of tmp) + bias (+ add[e]).
  /// The vertical box sum of tmp at entry e of an h x w slice (rows e / w - rad .. + rad, clipped).
  NTKX_HD static double vsum(const double* tmp, int e, int h, int w, int rad) {
    const int r = e / w, s = e % w;
    const int lo = r - rad < 0 ? 0 : r - rad, hi = r + rad > h - 1 ? h - 1 : r + rad;
    double acc = tmp[lo * w + s];
    for (int u = lo + 1; u <= hi; ++u) acc += tmp[u * w + s];
    return acc;
  }

  /// Vertical box pass: dst = scale (vertical sum of tmp) + bias.
  NTKX_HD static void vpass(int tid, const double* tmp, double* dst, int h, int w, int rad, double scale,
                            double bias) {
    for (int e = tid; e < h * w; e += kThreads) dst[e] = scale * vsum(tmp, e, h, w, rad) + bias;
  }

  /// Sigma's vertical pass of conv layer `layer` that also finishes Theta: s = scale A + bias
  /// with A the vertical sum of tmp, and t = math::conv_theta(bt = t, s, A) (t_mode 0, t holding
  /// the scaled box of Kd Theta), conv_theta(0, s, A) (t_mode 1: the first layer, trained) or 0
  /// (t_mode 2). The patch sum A is at hand only here, before s overwrites it.
  NTKX_HD static void vpass_st(int tid, const double* tmp, double* s_out, double* t, int h, int w, int rad,
                               double scale, double bias, const CntkParams& p, int layer, int t_mode) {
    for (int e = tid; e < h * w; e += kThreads) {
      const double acc = vsum(tmp, e, h, w, rad);
      const double sn = scale * acc + bias;
      s_out[e] = sn;
      t[e] = t_mode == 0 ? math::conv_theta(p, layer, t[e], sn, acc)
                         : (t_mode == 1 ? (p.standard ? math::conv_theta(p, layer, 0.0, sn, acc) : sn) : 0.0);
    }
  }

  /// Phase `k` of slice `t`.
  NTKX_HD static void phase(CIdx x, int64_t t, int k, Shared& sh, Thread& th, const Args& a) {
    if (!th.active) return;
    const CntkParams& p = a.p;
    const math::Slice sl = math::slice_at(p, t);
    const int h = sl.h, w = sl.w, n = h * w, Q = p.Q, C = p.C;
    const int64_t PQ = int64_t(p.P) * Q;
    const int64_t boff = int64_t(sl.di) * Q + sl.dj;
    const int tid = x.tid;
    if (k == 0) {  // channel products
      const double* xi = a.x + (a.row0 + th.i) * PQ * C;
      const double* yj = a.y + (a.col0 + th.j) * PQ * C;
      for (int e = tid; e < n; e += kThreads) {
        const int64_t pa = int64_t(sl.i0 + e / w) * Q + sl.j0 + e % w, pb = pa + boff;
        double acc = xi[pa * C] * yj[pb * C];
        for (int c = 1; c < C; ++c) acc += xi[pa * C + c] * yj[pb * C + c];
        sh.s[e] = acc;
      }
      return;
    }
    const int q0 = p.filt[0];
    if (k == 1) return hpass(tid, sh.s, sh.tmp, h, w, q0 / 2);
    if (k == 2) {
      if (a.want_ntk)
        vpass_st(tid, sh.tmp, sh.s, sh.t, h, w, q0 / 2, math::conv_scale(p, 0), p.b2[0], p, 0,
                 p.train_first ? 1 : 2);
      else
        vpass(tid, sh.tmp, sh.s, h, w, q0 / 2, math::conv_scale(p, 0), p.b2[0]);
      return;
    }
    const int cp = a.want_ntk ? 4 : 2;
    const int r = k - 3, inner = (p.n_conv - 1) * (1 + cp);
    int stage, sub;
    if (r < inner) {
      stage = r / (1 + cp), sub = r % (1 + cp);
    } else if (p.final_act && r == inner) {
      stage = p.n_conv - 1, sub = 0;
    } else {  // readout
      for (int e = tid; e < n; e += kThreads) {
        th.acc_k += sh.s[e];
        if (a.want_ntk) th.acc_t += sh.t[e];
      }
      return;
    }
    if (sub == 0) {  // dual activation of stage `stage`
      const int nf = p.n_fields();
      const double* mi = a.mx + ((a.row0 + th.i) * p.n_act() + stage) * nf * PQ;
      const double* mj = a.my + ((a.col0 + th.j) * p.n_act() + stage) * nf * PQ;
      const bool f2 = K == Act::kABRelu || K == Act::kErf, f3 = K == Act::kErf;
      const double s2 = math::abrelu_s2(p);
      for (int e = tid; e < n; e += kThreads) {
        const int64_t pa = int64_t(sl.i0 + e / w) * Q + sl.j0 + e % w, pb = pa + boff;
        const int ia = sl.i0 + e / w, ja = sl.j0 + e % w;
        const double x2 = f2 ? mi[2 * PQ + pa] : 0.0, y2 = f2 ? mj[2 * PQ + pb] : 0.0;
        double rho, h, kk, kd;
        math::cntk_rho<K>(sh.s[e], mi[pa], x2, mj[pb], y2, &rho, &h);
        if (stage == 0 && h > 0.0 && h < math::kCntkColinear)  // rare: layer-0 patches near colinear
          math::cntk_patch_colinear(p, a.x + (a.row0 + th.i) * PQ * p.C, a.y + (a.col0 + th.j) * PQ * p.C, 1, ia,
                                    ja, ia + sl.di, ja + sl.dj, &rho, &h);
        math::cntk_dual<K>(a.k, s2, sh.s[e], rho, h, mi[pa], mi[PQ + pa], x2, f3 ? mi[3 * PQ + pa] : 0.0, mj[pb],
                           mj[PQ + pb], y2, f3 ? mj[3 * PQ + pb] : 0.0, &kk, &kd);
        sh.s[e] = kk;
        if (a.want_ntk) sh.t[e] *= kd;
      }
      return;
    }
    const int q = p.filt[stage + 1];
    const double scale = math::conv_scale(p, stage + 1);
    if (!a.want_ntk) {
      if (sub == 1) return hpass(tid, sh.s, sh.tmp, h, w, q / 2);
      return vpass(tid, sh.tmp, sh.s, h, w, q / 2, scale, p.b2[stage + 1]);
    }
    // Theta's box first (t = scale box(Kd Theta) + 0), then Sigma's, which finishes Theta
    // from the patch sum (vpass_st): the same sums and roundings as Sigma-then-Theta.
    if (sub == 1) return hpass(tid, sh.t, sh.tmp, h, w, q / 2);
    if (sub == 2) return vpass(tid, sh.tmp, sh.t, h, w, q / 2, scale, 0.0);
    if (sub == 3) return hpass(tid, sh.s, sh.tmp, h, w, q / 2);
    vpass_st(tid, sh.tmp, sh.s, sh.t, h, w, q / 2, scale, p.b2[stage + 1], p, stage + 1, 0);
  }

  /// Block reduction, first half: every thread's partial sums into shared memory.
  NTKX_HD static void finish1(CIdx x, Shared& sh, Thread& th, const Args&) {
    sh.red[0][x.tid] = th.active ? th.acc_k : 0.0;
    sh.red[1][x.tid] = th.active ? th.acc_t : 0.0;
  }

  /// Second half: thread 0 adds them in thread order and writes the group's partials.
  NTKX_HD static void finish2(CIdx x, Shared& sh, Thread& th, const Args& a) {
    if (x.tid != 0 || !th.active) return;
    double sk = 0.0, st = 0.0;
    for (int u = 0; u < kThreads; ++u) sk += sh.red[0][u], st += sh.red[1][u];
    double* out = a.part + ((th.i * a.n2 + th.j) * a.groups + x.bx) * 2;
    out[0] = sk, out[1] = st;
  }
};

/// Stage two: the groups of pair (i, j) in order, scaled into the outputs
/// (tile-local, row stride ldo).
template <typename T>
NTKX_HD void reduce_pair(const CntkParams& p, const double* part, int64_t groups, int64_t i, int64_t j,
                         int64_t n2, bool want_ntk, T* nngp, T* ntk, int64_t ldo) {
  const double* g = part + (i * n2 + j) * groups * 2;
  double sk = 0.0, st = 0.0;
  for (int64_t u = 0; u < groups; ++u) sk += g[2 * u], st += g[2 * u + 1];
  double vk, vt;
  math::cntk_readout(p, sk, st, &vk, &vt);
  if (nngp) nngp[i * ldo + j] = T(vk);
  if (ntk && want_ntk) ntk[i * ldo + j] = T(vt);
}

}  // namespace cuda
}  // namespace ntkx
