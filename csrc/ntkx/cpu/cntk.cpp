// OpenMP backend of the CNTK (math/cntk.h): work items are (row image i, batch of
// kLanes column images), or for GAP kLanes packed pairs that would otherwise leave
// lanes idle; one item runs every displacement slice its readout needs through all
// layers, the kLanes pairs side by side in the innermost (SIMD) loop, in a few slice
// buffers of P x Q x kLanes doubles per thread (L1/L2 resident).
// Nothing of size (PQ)^2 is ever stored. Images and diagonal maps are kept
// lane-interleaved ([batch][...][kLanes]) so that a batch's reads are contiguous.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ntkx/backends.h"
#include "ntkx/host/dispatch.h"
#include "ntkx/host/mirror.h"
#include "ntkx/host/poll.h"
#include "ntkx/cpu/simd8.h"
#include "ntkx/math/cntk.h"

namespace ntkx {
namespace {

constexpr int kLanes = 8;  // pairs per SIMD row: one AVX-512 vector of doubles or two AVX2 (simd8::v8)

/// A set of images in lane-interleaved form with their diagonal maps:
/// img[b][pos][c][lane] and maps[b][stage][field][pos][lane] for batch b.
struct LaneSet {
  int64_t n = 0, batches = 0, img_stride = 0, map_stride = 0;
  std::vector<double> img, maps;

  LaneSet(const CntkParams& p, const double* x, int64_t n_) : n(n_) {
    const int64_t PQ = int64_t(p.P) * p.Q;
    batches = (n + kLanes - 1) / kLanes;
    img_stride = PQ * p.C * kLanes;
    map_stride = int64_t(p.n_act()) * p.n_fields() * PQ * kLanes;
    img.assign(batches * img_stride, 0.0);
    maps.assign(batches * map_stride, 0.0);
    const int64_t pc = PQ * p.C;
    // Lanes past n repeat the last image, so every lane holds a valid image.
    for (int64_t b = 0; b < batches; ++b)
      for (int l = 0; l < kLanes; ++l) {
        const int64_t src = std::min(n - 1, b * kLanes + l);
        double* dst = img.data() + b * img_stride + l;
        for (int64_t e = 0; e < pc; ++e) dst[e * kLanes] = x[src * pc + e];
      }
  }
  const double* image(int64_t i) const { return img.data() + (i / kLanes) * img_stride + i % kLanes; }
  const double* map(int64_t i) const { return maps.data() + (i / kLanes) * map_stride + i % kLanes; }
};

/// Whether run_slice3 applies: ReLU-like duals and 3 x 3 filters throughout.
inline bool fused3(const CntkParams& p) {
  if (p.act != Act::kABRelu) return false;
  for (int l = 0; l < p.n_conv; ++l)
    if (p.filt[l] != 3) return false;
  return true;
}

/// Per-thread buffers: the slice (S, T), one row before filtering (kr, tr) and a
/// ring of the last q horizontally filtered rows (hk, ht), q the widest filter.
/// run_slice3 uses s, t and s2, t2 as two layers' horizontal sums H, kr, tr as the
/// current row of duals, and `zero` as the missing rows at a slice's edges.
struct Scratch {
  int ring;
  std::vector<double> s, t, s2, t2, zero, kr, tr, hk, ht;
  std::vector<const double*> kp, tp;  // ring rows in window order
  explicit Scratch(const CntkParams& p)
      : ring(*std::max_element(p.filt, p.filt + p.n_conv)),
        s(int64_t(p.P) * p.Q * kLanes),
        t(int64_t(p.P) * p.Q * kLanes),
        s2(fused3(p) ? int64_t(p.P) * p.Q * kLanes : 0),
        t2(fused3(p) ? int64_t(p.P) * p.Q * kLanes : 0),
        zero(int64_t(p.Q) * kLanes, 0.0),
        kr(int64_t(p.Q) * kLanes),
        tr(int64_t(p.Q) * kLanes),
        hk(int64_t(ring) * p.Q * kLanes),
        ht(int64_t(ring) * p.Q * kLanes),
        kp(ring),
        tp(ring) {}
};

/// Horizontal window sums of one row of w entries: dst[s] = sum src[lo..hi] in
/// ascending order (the CUDA tile's h-pass order).
inline void hsum(const double* __restrict src, double* __restrict dst, int w, int rad) {
  if (rad == 1 && w >= 3) {  // 3 x 3 filters: straight-line interior, same order
    using namespace simd8;
    v8 prev = load(src), cur = load(src + kLanes);
    store(dst, prev + cur);
    for (int s = 1; s + 1 < w; ++s) {
      const v8 next = load(src + int64_t(s + 1) * kLanes);
      store(dst + int64_t(s) * kLanes, prev + cur + next);
      prev = cur, cur = next;
    }
    store(dst + int64_t(w - 1) * kLanes, prev + cur);
    return;
  }
  for (int s = 0; s < w; ++s) {
    const int lo = std::max(0, s - rad), hi = std::min(w - 1, s + rad);
    // A register accumulator (simd8::v8): summing into memory costs a
    // store-forwarding stall per term.
    simd8::v8 acc = simd8::load(src + int64_t(lo) * kLanes);
    for (int u = lo + 1; u <= hi; ++u) acc += simd8::load(src + int64_t(u) * kLanes);
    simd8::store(dst + int64_t(s) * kLanes, acc);
  }
}

/// One conv layer over an h x w slice, streamed by rows: row(r, kr, tr) produces
/// the layer's unfiltered row r (dual activation or channel products; it reads S
/// and T of row r only), whose horizontal sums enter a ring of q rows; once rows
/// r - rad .. r + rad are in, row r of S (and T) is overwritten:
///   S = scale * (vertical sum) + bias,   T = scale * (vertical sum of T's) + S
/// (t_mode 0), or T = S (t_mode 1) / T = 0 (t_mode 2) for the first layer.
/// Everything but S and T stays in L1, and the sums run in the same order as the
/// CUDA tile's box passes.
template <bool kNtk, class Row>
void conv_rows(const CntkParams& p, int layer, Scratch& sc, int h, int w, int rad, double scale, double bias,
               int t_mode, Row row) {
  const int q = 2 * rad + 1;
  const int64_t rw = int64_t(w) * kLanes;
  double* __restrict S = sc.s.data();
  double* __restrict T = sc.t.data();
  int next = 0;
  for (int r = 0; r < h; ++r) {
    for (const int need = std::min(h - 1, r + rad); next <= need; ++next) {
      row(next, sc.kr.data(), sc.tr.data());
      hsum(sc.kr.data(), sc.hk.data() + (next % q) * rw, w, rad);
      if (kNtk && t_mode == 0) hsum(sc.tr.data(), sc.ht.data() + (next % q) * rw, w, rad);
    }
    const int lo = std::max(0, r - rad), hi = std::min(h - 1, r + rad);
    // The ring rows of r - rad .. r + rad, in order (no modulo in the loop below).
    const double** kp = sc.kp.data();
    const double** tp = sc.tp.data();
    for (int u = lo; u <= hi; ++u) {
      kp[u - lo] = sc.hk.data() + (u % q) * rw;
      tp[u - lo] = sc.ht.data() + (u % q) * rw;
    }
    const int nu = hi - lo + 1;
    for (int s = 0; s < w; ++s) {
      using namespace simd8;
      const int64_t off = int64_t(s) * kLanes;
      v8 ak = load(kp[0] + off), at = load(tp[0] + off);
      if (nu == 3) {  // interior rows of a 3 x 3 filter: no inner loop
        ak += load(kp[1] + off);
        ak += load(kp[2] + off);
        if (kNtk) at += load(tp[1] + off), at += load(tp[2] + off);
      } else {
        for (int u = 1; u < nu; ++u) {
          ak += load(kp[u] + off);
          if (kNtk) at += load(tp[u] + off);
        }
      }
      const v8 so = scale * ak + bias;
      store(S + int64_t(r) * rw + off, so);
      if (kNtk) {
        double* __restrict to = T + int64_t(r) * rw + off;
        if (t_mode == 0) {
          store(to, math::conv_theta(p, layer, scale * at, so, ak));
        } else if (t_mode == 1 && p.standard) {
          store(to, math::conv_theta(p, layer, bcast(0.0), so, ak));
        } else {
          store(to, (t_mode == 1 ? 1.0 : 0.0) * so);
        }
      }
    }
  }
}

/// Layer-0 channel products of one position pair for kLanes pairs: A's pixel
/// broadcast (la = 0) or A a lane batch (la = 1); `a`, `b` point at channel 0.
template <int la>
NTKX_SIMD8 inline simd8::v8 channel_products(const double* __restrict a, const double* __restrict b, int C) {
  using namespace simd8;
  v8 acc = (la ? load(a) : bcast(a[0])) * load(b);
  for (int c = 1; c < C; ++c) acc += (la ? load(a + c * kLanes) : bcast(a[c * kLanes])) * load(b + c * kLanes);
  return acc;
}

/// Layer-0 correlations near +-1 of position (row r, column s) of a slice, for the
/// lanes whose h is in (0, kCntkColinear), recomputed from the patches (rare,
/// scalar). `rho`, `h`: kLanes values, updated in place.
template <int la>
inline void colinear_lanes(const CntkParams& p, const math::Slice& sl, const double* xa, const double* xb, int r,
                           int s, double* rho, double* h) {
  const int ia = sl.i0 + r, ib = ia + sl.di;
  for (int l = 0; l < kLanes; ++l)
    if (h[l] > 0.0 && h[l] < math::kCntkColinear)
      math::cntk_patch_colinear(p, xa + l * la, xb + l, kLanes, ia, sl.j0 + s, ib, sl.j0 + s + sl.dj, &rho[l], &h[l]);
}

/// The ReLU dual (math::cntk_dual<Act::kABRelu>) along one row r of a slice: the
/// six map rows of this stage it reads (A's broadcast unless kLanesA) in locals,
/// and per position the correlation, the layer-0 recomputation near +-1 (`first`),
/// then K and Kd.
template <bool kLanesA>
struct ReluRow {
  const double *xq, *x1, *x2, *yq, *y1, *y2;  // the maps of A and B along the row
  /// `ma`, `mb`: this stage's maps (field q first) of A and B.
  ReluRow(const CntkParams& p, const math::Slice& sl, int r, const double* ma, const double* mb) {
    const int64_t PQ = int64_t(p.P) * p.Q;
    const int64_t a0 = (int64_t(sl.i0 + r) * p.Q + sl.j0) * kLanes;
    const int64_t b0 = a0 + (int64_t(sl.di) * p.Q + sl.dj) * kLanes;
    xq = ma + a0, x1 = xq + PQ * kLanes, x2 = xq + 2 * PQ * kLanes;
    yq = mb + b0, y1 = yq + PQ * kLanes, y2 = yq + 2 * PQ * kLanes;
  }
  template <bool kFold>
  NTKX_SIMD8 void dual(const CntkParams& p, const math::Slice& sl, const double* xa, const double* xb, int r, int s,
                       bool first, double kappa, double s2, simd8::v8 c, simd8::v8* kk, simd8::v8* kd) const {
    using namespace simd8;
    const int64_t e = int64_t(s) * kLanes;
    const v8 aq = kLanesA ? load(xq + e) : bcast(xq[e]);
    const v8 a1 = kLanesA ? load(x1 + e) : bcast(x1[e]);
    const v8 a2 = kLanesA ? load(x2 + e) : bcast(x2[e]);
    v8 rho, h;
    math::abrelu_rho(c, aq, a2, load(yq + e), load(y2 + e), &rho, &h);
    if (first && any((h > 0.0) & (h < math::kCntkColinear))) {
      alignas(64) double rr[kLanes], hh[kLanes];
      store(hh, h);
      store(rr, rho);
      colinear_lanes<kLanesA ? 1 : 0>(p, sl, xa, xb, r, s, rr, hh);
      rho = load(rr), h = load(hh);
    }
    math::abrelu_dual<kFold>(kappa, s2, c, rho, h, a1, load(y1 + e), kk, kd);
  }
};

/// Runs one slice of one (A, lane batch B) item through all layers and adds its
/// readout sums to accK, accT. A is one image read by broadcast (its lane pointer,
/// stride kLanes), or with kLanesA a lane batch of its own (lane l pairs A's image l
/// with B's), or with kDiag the batch B itself (A = B, slice delta = 0), in which
/// case the diagonal maps are written into `maps_out` row by row as they are met.
template <Act K, bool kNtk, bool kDiag, bool kLanesA = kDiag>
void run_slice(const CntkParams& p, const math::ActConst& kref, const math::Slice& sl, const double* xa,
               const double* xb, const double* ma, const double* mb, double* maps_out, Scratch& sc,
               double* accK, double* accT) {
  static_assert(kLanesA || !kDiag, "the diagonal maps pair a batch with itself");
  constexpr int la = kLanesA ? 1 : 0;  // A's lane stride: broadcast unless A is a batch
  constexpr bool k3 = K == Act::kABRelu || K == Act::kErf;  // maps have a field 2
  constexpr bool k4 = K == Act::kErf;                         // and a field 3
  // A local built from scalars: with a reference, GCC keeps the activation
  // constants in memory and does not if-convert (vectorize) the dual below.
  const math::ActConst k{kref.kappa, kref.fold, kref.a2, kref.c2};
  const double s2 = math::abrelu_s2(p);
  const int Q = p.Q, C = p.C, h = sl.h, w = sl.w;
  const int64_t PQ = int64_t(p.P) * Q;
  const int64_t boff = int64_t(sl.di) * Q + sl.dj;  // B position = A position + boff
  const int64_t rw = int64_t(w) * kLanes;
  double* __restrict S = sc.s.data();
  double* __restrict T = sc.t.data();
  if (kDiag) ma = mb = maps_out;

  // Layer 0: channel products, then conv 0.
  auto products = [&](int r, double* __restrict kr, double*) {
    for (int s = 0; s < w; ++s) {
      const int64_t pa = int64_t(sl.i0 + r) * Q + sl.j0 + s, pb = pa + boff;
      simd8::store(kr + int64_t(s) * kLanes, channel_products<la>(xa + pa * C * kLanes, xb + pb * C * kLanes, C));
    }
  };
  const int q0 = p.filt[0];
  conv_rows<kNtk>(p, 0, sc, h, w, q0 / 2, math::conv_scale(p, 0), p.b2[0], p.train_first ? 1 : 2, products);

  const int nf = p.n_fields();
  const int nact = p.n_act();
  for (int st = 0; st < nact; ++st) {
    const int64_t base = int64_t(st) * nf * PQ * kLanes;
    // Field f of this stage's maps (fields past n_fields are never read).
    const double* qa = ma + base;
    const double* a1 = qa + PQ * kLanes;
    const double* a2 = qa + 2 * PQ * kLanes;
    const double* a3 = qa + 3 * PQ * kLanes;
    const double* qb = mb + base;
    const double* b1 = qb + PQ * kLanes;
    const double* b2 = qb + 2 * PQ * kLanes;
    const double* b3 = qb + 3 * PQ * kLanes;
    // The dual activation of row r into kr, tr (which may be S's and T's row r).
    auto dual_row = [&](int r, double* kr, double* tr) {
      const double* srow = S + int64_t(r) * rw;
      const double* trow = T + int64_t(r) * rw;
      if (kDiag) {  // this stage's maps: q = the slice itself (delta = 0)
        for (int s = 0; s < w; ++s)
          for (int l = 0; l < kLanes; ++l) {
            const double q = srow[int64_t(s) * kLanes + l];
            double f[3];
            math::position_fields(p.act, p.a, p.b, p.c, q, &f[0], &f[1], &f[2]);
            double* m = maps_out + base + (int64_t(sl.i0 + r) * Q + sl.j0 + s) * kLanes + l;
            m[0] = q;
            for (int u = 1; u < nf; ++u) m[u * PQ * kLanes] = f[u - 1];
          }
      }
      if (K == Act::kABRelu) {
        // Everything the loop reads, in locals: its stores (memcpy-based v8 stores,
        // the colinear scratch) may alias the closure, so captured values would be
        // reloaded on every element.
        const ReluRow<kLanesA> row(p, sl, r, qa, qb);
        const double* sr = srow;  // kr, tr may be these rows (the last stage runs in place)
        const double* tv = trow;
        const double kappa = k.kappa, s2_ = s2;
        const bool fold = k.fold, first = st == 0;
        // One loop per fold flag (fold_c: std::true_type or std::false_type).
        auto positions = [&](auto fold_c) {
          for (int s = 0; s < w; ++s) {
            const int64_t e = int64_t(s) * kLanes;
            using namespace simd8;
            v8 kk, kd;
            row.template dual<decltype(fold_c)::value>(p, sl, xa, xb, r, s, first, kappa, s2_, load(sr + e), &kk, &kd);
            if (kNtk) store(tr + e, load(tv + e) * kd);
            store(kr + e, kk);
          }
        };
        if (fold) {
          positions(std::true_type{});
        } else {
          positions(std::false_type{});
        }
        return;
      }
      for (int s = 0; s < w; ++s) {
        const int64_t pa = (int64_t(sl.i0 + r) * Q + sl.j0 + s) * kLanes, pb = pa + boff * kLanes;
        const int64_t e = int64_t(s) * kLanes;
        alignas(64) double rho[kLanes], h[kLanes];
        for (int l = 0; l < kLanes; ++l)
          math::cntk_rho<K>(srow[e + l], qa[pa + l * la], k3 ? a2[pa + l * la] : 0.0, qb[pb + l], k3 ? b2[pb + l] : 0.0,
                            &rho[l], &h[l]);
        if (st == 0) colinear_lanes<la>(p, sl, xa, xb, r, s, rho, h);
        for (int l = 0; l < kLanes; ++l) {
          const int xi = int(l * la);
          const double x2 = k3 ? a2[pa + xi] : 0.0, x3 = k4 ? a3[pa + xi] : 0.0;
          const double y2 = k3 ? b2[pb + l] : 0.0, y3 = k4 ? b3[pb + l] : 0.0;
          double kk, kd;
          math::cntk_dual<K>(k, s2, srow[e + l], rho[l], h[l], qa[pa + xi], a1[pa + xi], x2, x3, qb[pb + l],
                             b1[pb + l], y2, y3, &kk, &kd);
          const double tv = trow[e + l];
          kr[e + l] = kk;
          if (kNtk) tr[e + l] = tv * kd;
        }
      }
    };
    if (st + 1 < p.n_conv) {
      const int q = p.filt[st + 1];
      conv_rows<kNtk>(p, st + 1, sc, h, w, q / 2, math::conv_scale(p, st + 1), p.b2[st + 1], 0, dual_row);
    } else {
      for (int r = 0; r < h; ++r) dual_row(r, S + int64_t(r) * rw, T + int64_t(r) * rw);
    }
  }
  if (kDiag) return;

  // Readout sums over this slice (vanilla: delta = 0 is the only slice).
  const int64_t n = int64_t(h) * rw;
  alignas(64) double sk[kLanes] = {0}, stt[kLanes] = {0};
  for (int64_t e = 0; e < n; e += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) sk[l] += S[e + l];
    if (kNtk) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) stt[l] += T[e + l];
    }
  }
  for (int l = 0; l < kLanes; ++l) accK[l] += sk[l], accT[l] += stt[l];
}

/// run_slice for ABRelu networks with 3 x 3 filters only (fused3), with each
/// layer's passes in one loop per row. Per layer the slice keeps H, the
/// horizontal window sums of the previous dual (or of layer 0's channel products),
/// for every row; the loop over row r forms the vertical sums of H's rows r - 1 ..
/// r + 1 (S and T of the conv), the dual of the next activation, and its
/// horizontal sums into the next H, one position behind. The separate passes and
/// the S, T round trip through memory are gone, and their additions fill issue
/// slots of the dual's long dependency chain. Every sum runs in run_slice's order,
/// and a row missing at an edge adds a row of zeros, which can only change the sign
/// of a zero sum, turned into +0 either way by the add after it (S's bias, T's
/// + 0.0): the results are run_slice's bit for bit (checked on the benchmark's
/// 32x32x3 GAP Gram). This matters: the diagonal maps still come from run_slice,
/// and an identical pair's correlation is exactly 1 only if c^2 = q q' bit for bit
/// (else its angle is ~1e-8, not 0, and test_identical_colinear_and_zero_images,
/// held to 1e-13, fails).
template <bool kNtk, bool kLanesA, bool kFold>
void run_slice3(const CntkParams& p, const math::ActConst& kref, const math::Slice& sl, const double* xa,
                const double* xb, const double* ma, const double* mb, Scratch& sc, double* accK, double* accT) {
  using namespace simd8;
  constexpr int la = kLanesA ? 1 : 0;
  const int Q = p.Q, C = p.C, h = sl.h, w = sl.w;
  const int64_t PQ = int64_t(p.P) * Q;
  const int64_t boff = int64_t(sl.di) * Q + sl.dj;
  const int64_t rw = int64_t(w) * kLanes;
  double* hk = sc.s.data();  // H of the layer being read (K and T parts)
  double* ht = sc.t.data();
  double* nk = sc.s2.data();  // H of the layer being written
  double* nt = sc.t2.data();
  const double* zero = sc.zero.data();
  double* __restrict dk = sc.kr.data();  // the current row of D (dual outputs)
  double* __restrict dt = sc.tr.data();

  // Horizontal window sums of D, one position behind: H[0] = D0 + D1,
  // H[s] = (D[s-1] + D[s]) + D[s+1], H[w-1] = D[w-2] + D[w-1] (hsum's order).
  auto push = [](double* __restrict hrow, double* __restrict drow, int s, v8 d) NTKX_SIMD8 {
    const int64_t e = int64_t(s) * kLanes;
    store(drow + e, d);
    if (s >= 2) {
      store(hrow + e - kLanes, load(drow + e - 2 * kLanes) + load(drow + e - kLanes) + d);
    } else if (s == 1) {
      store(hrow, load(drow) + d);
    }
  };
  auto finish = [](double* __restrict hrow, const double* drow, int w) NTKX_SIMD8 {
    const int64_t e = int64_t(w - 1) * kLanes;
    store(hrow + e, w >= 2 ? load(drow + e - kLanes) + load(drow + e) : load(drow + e));
  };

  // Layer 0: channel products and their horizontal sums (T needs none: it is S or 0).
  for (int r = 0; r < h; ++r) {
    double* row = hk + int64_t(r) * rw;
    for (int s = 0; s < w; ++s) {
      const int64_t pa = int64_t(sl.i0 + r) * Q + sl.j0 + s, pb = pa + boff;
      push(row, dk, s, channel_products<la>(xa + pa * C * kLanes, xb + pb * C * kLanes, C));
    }
    finish(row, dk, w);
  }

  const int nf = p.n_fields();
  const int nact = p.n_act();
  const double kappa = kref.kappa, s2 = math::abrelu_s2(p);
  v8 sumk = bcast(0.0), sumt = bcast(0.0);
  // One row of stage st: conv st's vertical sums (S, T), then with kAct the dual
  // into the next H (or with kLast into the readout sums), else S, T into them.
  // kT0: T's vertical sums (every conv after the first); kFirst: layer-0
  // correlations near +-1 are recomputed from the patches.
  auto row = [&](auto act_c, auto last_c, auto t0_c, auto first_c, int st, int r) NTKX_SIMD8 {
    constexpr bool kAct = decltype(act_c)::value, kLast = decltype(last_c)::value;
    constexpr bool kT0 = decltype(t0_c)::value, kFirst = decltype(first_c)::value;
    // conv_scale(p, st) with fused3's q = 3 as a constant (else the row's code changes).
    const double scale = st == 0 ? math::conv_scale(p.w2[0], 3, C) : math::conv_scale(p.w2[st], 3, 1);
    const double bias = p.b2[st];
    const double tscale = p.train_first ? 1.0 : 0.0;  // layer 0: T = S or 0
    const int64_t base = int64_t(kAct ? st : 0) * nf * PQ * kLanes;
    const double* __restrict k0 = r > 0 ? hk + int64_t(r - 1) * rw : zero;
    const double* __restrict k1 = hk + int64_t(r) * rw;
    const double* __restrict k2 = r + 1 < h ? hk + int64_t(r + 1) * rw : zero;
    const double* __restrict t0 = r > 0 ? ht + int64_t(r - 1) * rw : zero;
    const double* __restrict t1 = ht + int64_t(r) * rw;
    const double* __restrict t2 = r + 1 < h ? ht + int64_t(r + 1) * rw : zero;
    const ReluRow<kLanesA> maps(p, sl, r, ma + base, mb + base);
    double* ok = nk + int64_t(r) * rw;
    double* ot = nt + int64_t(r) * rw;
    v8 sk = sumk, stv = sumt;
    for (int s = 0; s < w; ++s) {
      const int64_t e = int64_t(s) * kLanes;
      const v8 ak = load(k0 + e) + load(k1 + e) + load(k2 + e);
      const v8 c = scale * ak + bias;
      const v8 tv = kNtk && kT0 ? math::conv_theta(p, st, scale * (load(t0 + e) + load(t1 + e) + load(t2 + e)), c, ak)
                    : p.standard ? tscale * math::conv_theta(p, st, bcast(0.0), c, ak)
                                 : tscale * c;
      if (!kAct) {  // no activation before the readout
        sk += c;
        if (kNtk) stv += tv;
        continue;
      }
      v8 kk, kd;
      maps.template dual<kFold>(p, sl, xa, xb, r, s, kFirst, kappa, s2, c, &kk, &kd);
      if (kLast) {
        sk += kk;
        if (kNtk) stv += tv * kd;
      } else {
        push(ok, dk, s, kk);
        if (kNtk) push(ot, dt, s, tv * kd);
      }
    }
    if (kAct && !kLast) {
      finish(ok, dk, w);
      if (kNtk) finish(ot, dt, w);
    }
    sumk = sk, sumt = stv;
  };
  using Y = std::true_type;
  using N = std::false_type;
  // Stage st reads conv st's H; st == nact (no final activation) reads the last
  // conv's S and T into the readout.
  for (int st = 0; st <= nact && st < p.n_conv; ++st) {
    const bool act = st < nact, last = st + 1 == p.n_conv;
    for (int r = 0; r < h; ++r) {
      if (!act) {
        if (st == 0) {
          row(N{}, Y{}, N{}, N{}, st, r);
        } else {
          row(N{}, Y{}, Y{}, N{}, st, r);
        }
      } else if (st == 0) {
        if (last) {
          row(Y{}, Y{}, N{}, Y{}, st, r);
        } else {
          row(Y{}, N{}, N{}, Y{}, st, r);
        }
      } else if (last) {
        row(Y{}, Y{}, Y{}, N{}, st, r);
      } else {
        row(Y{}, N{}, Y{}, N{}, st, r);
      }
    }
    std::swap(hk, nk);
    std::swap(ht, nt);
  }
  alignas(64) double sk[kLanes], stt[kLanes];
  store(sk, sumk);
  store(stt, sumt);
  for (int l = 0; l < kLanes; ++l) accK[l] += sk[l], accT[l] += kNtk ? stt[l] : 0.0;
}

/// Every slice of one work item (see run_slice; run_slice3 where it applies).
template <Act K, bool kNtk, bool kLanesA>
void run_item(const CntkParams& p, const math::ActConst& k, const double* xa, const double* xb, const double* ma,
              const double* mb, Scratch& sc, double* accK, double* accT, Poll& poll) {
  const int64_t nsl = math::slice_count(p);
  // An item of a large GAP kernel is kLanes pairs x (2P-1)(2Q-1) slices, ~0.1 s for
  // 32 x 32 images: Ctrl-C is polled every 64 slices inside it too (an interrupted
  // item's sums are incomplete; the caller throws Interrupted and writes nothing of it).
  auto stopped = [&](int64_t t) {
    if ((t & 63) != 63) return false;
    poll.check();
    return poll.stop();
  };
  if (K == Act::kABRelu && fused3(p)) {
    for (int64_t t = 0; t < nsl; ++t) {
      if (stopped(t)) return;
      const math::Slice sl = math::slice_at(p, t);
      if (k.fold) {
        run_slice3<kNtk, kLanesA, true>(p, k, sl, xa, xb, ma, mb, sc, accK, accT);
      } else {
        run_slice3<kNtk, kLanesA, false>(p, k, sl, xa, xb, ma, mb, sc, accK, accT);
      }
    }
    return;
  }
  for (int64_t t = 0; t < nsl; ++t) {
    if (stopped(t)) return;
    run_slice<K, kNtk, false, kLanesA>(p, k, math::slice_at(p, t), xa, xb, ma, mb, nullptr, sc, accK, accT);
  }
}

/// Diagonal maps of every batch of a LaneSet.
template <Act K>
void fill_maps(const CntkParams& p, const math::ActConst& k, LaneSet& set, int threads, Poll& poll) {
  const int64_t PQ = int64_t(p.P) * p.Q;
  const math::Slice sl = math::slice_of(p.P, p.Q, 0, 0);
#pragma omp parallel num_threads(threads) if (set.batches > 1)
  {
    Scratch sc(p);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < set.batches; ++b) {
      poll.check();
      if (poll.stop()) continue;
      const double* x = set.img.data() + b * set.img_stride;
      double* m = set.maps.data() + b * set.map_stride;
      run_slice<K, false, true>(p, k, sl, x, x, m, m, m, sc, nullptr, nullptr);
    }
  }
  if (poll.stop()) throw Interrupted();
}

/// The pairs that do not fill a whole lane batch of columns: with `symmetric`, the
/// pairs j >= i of each diagonal kLanes x kLanes block (the rows are the first n1
/// columns), and the pairs of every row with a last, partial batch; row by row.
std::vector<std::pair<int32_t, int32_t>> partial_pairs(int64_t n1, int64_t n2, bool symmetric) {
  std::vector<std::pair<int32_t, int32_t>> out;
  const int64_t tail = n2 % kLanes ? n2 - n2 % kLanes : n2;  // first column of a partial batch
  for (int64_t i = 0; i < n1; ++i) {
    const int64_t d0 = i - i % kLanes;  // the diagonal block's first column
    if (symmetric)
      for (int64_t j = i; j < std::min(n2, d0 + kLanes); ++j) out.emplace_back(int32_t(i), int32_t(j));
    if (!symmetric || tail > d0)
      for (int64_t j = tail; j < n2; ++j) out.emplace_back(int32_t(i), int32_t(j));
  }
  return out;
}

/// Up to kLanes arbitrary pairs (image i of `rows`, image j of `cols`) as one lane
/// batch per side, for run_slice with kLanesA: lane l holds pair l's images and
/// maps; lanes past the last pair repeat the first, so every lane is a valid pair.
struct LanePack {
  std::vector<double> xa, xb, ma, mb;
  void gather(const LaneSet& rows, const LaneSet& cols, const std::pair<int32_t, int32_t>* pairs, int m) {
    xa.resize(cols.img_stride), xb.resize(cols.img_stride);
    ma.resize(cols.map_stride), mb.resize(cols.map_stride);
    const int64_t ni = cols.img_stride / kLanes, nm = cols.map_stride / kLanes;
    for (int l = 0; l < kLanes; ++l) {
      const auto pr = pairs[l < m ? l : 0];
      copy_lane(rows.image(pr.first), xa.data() + l, ni);
      copy_lane(cols.image(pr.second), xb.data() + l, ni);
      copy_lane(rows.map(pr.first), ma.data() + l, nm);
      copy_lane(cols.map(pr.second), mb.data() + l, nm);
    }
  }
  static void copy_lane(const double* src, double* dst, int64_t n) {
    for (int64_t e = 0; e < n; ++e) dst[e * kLanes] = src[e * kLanes];
  }
};

template <typename T, Act K, bool kNtk>
void run(const CntkArgs<T>& a, Interrupt* interrupt) {
  const CntkParams& p = a.params;
  const math::ActConst k = math::cntk_act_const(p);
  const int threads = a.threads > 0 ? a.threads : openmp_threads();
  Poll poll(interrupt);
  LaneSet s2(p, a.x2, a.n2);
  fill_maps<K>(p, k, s2, threads, poll);
  // Symmetric: the rows are the first n1 columns, so their maps are s2's.
  LaneSet s1(p, a.symmetric ? a.x2 : a.x1, a.symmetric ? 0 : a.n1);
  if (!a.symmetric) fill_maps<K>(p, k, s1, threads, poll);
  const LaneSet& rows = a.symmetric ? s2 : s1;

  const int64_t nb = s2.batches;
  // Pairs that would leave lanes idle (the diagonal blocks of a symmetric Gram:
  // 36 pairs of 64 lanes; a last, partial batch of columns) are packed kLanes to a
  // work item, both sides' images and maps gathered lane by lane, when a pair's
  // work outweighs that copy (GAP: (PQ)^2 positions against 2 x PQ x fields).
  const bool pack = p.readout == Readout::kGap;
  const std::vector<std::pair<int32_t, int32_t>> part = pack ? partial_pairs(a.n1, a.n2, a.symmetric)
                                                             : std::vector<std::pair<int32_t, int32_t>>{};
  const int64_t cross = a.n1 * nb, packs = (int64_t(part.size()) + kLanes - 1) / kLanes;
  const int64_t items = cross + packs;
  auto write = [&](int64_t i, int64_t j, double sk, double st) {
    double nngp, ntk;
    math::cntk_readout(p, sk, st, &nngp, &ntk);
    if (a.nngp) a.nngp[i * a.ldo + j] = T(nngp);
    if (a.ntk) a.ntk[i * a.ldo + j] = T(ntk);
    if (a.symmetric && j != i) {
      if (a.nngp) a.nngp[j * a.ldo + i] = T(nngp);
      if (a.ntk) a.ntk[j * a.ldo + i] = T(ntk);
    }
  };
#pragma omp parallel num_threads(threads) if (items > 1)
  {
    Scratch sc(p);
    LanePack lanes;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      poll.check();
      if (poll.stop()) continue;
      alignas(64) double accK[kLanes] = {0}, accT[kLanes] = {0};
      if (item >= cross) {  // kLanes packed pairs
        const int64_t first = (item - cross) * kLanes;
        const int m = int(std::min<int64_t>(kLanes, int64_t(part.size()) - first));
        lanes.gather(rows, s2, part.data() + first, m);
        run_item<K, kNtk, true>(p, k, lanes.xa.data(), lanes.xb.data(), lanes.ma.data(), lanes.mb.data(), sc, accK,
                                accT, poll);
        if (poll.stop()) continue;
        for (int l = 0; l < m; ++l) write(part[first + l].first, part[first + l].second, accK[l], accT[l]);
        poll.done(m);
        continue;
      }
      const int64_t i = item / nb, b = item % nb;
      const int64_t j0 = b * kLanes;
      if (pack ? (j0 + kLanes > a.n2 || (a.symmetric && j0 <= i)) : (a.symmetric && j0 + kLanes <= i))
        continue;  // packed, or entirely below the diagonal
      const double* xa = rows.image(i);
      const double* ma = rows.map(i);
      const double* xb = s2.img.data() + b * s2.img_stride;
      const double* mb = s2.maps.data() + b * s2.map_stride;
      run_item<K, kNtk, false>(p, k, xa, xb, ma, mb, sc, accK, accT, poll);
      if (poll.stop()) continue;
      int written = 0;
      for (int l = 0; l < kLanes; ++l) {
        const int64_t j = j0 + l;
        if (j < a.n2 && (!a.symmetric || j >= i)) write(i, j, accK[l], accT[l]), ++written;
      }
      poll.done(written);
    }
  }
  if (poll.stop()) throw Interrupted();
}

template <typename T, bool kNtk>
void dispatch(const CntkArgs<T>& a, Interrupt* interrupt) {
  with_cntk_act(a.params.act, [&](auto k) { run<T, decltype(k)::value, kNtk>(a, interrupt); });
}

}  // namespace

void check_cntk_params(const CntkParams& p) {
  if (p.P < 1 || p.Q < 1 || p.C < 1) throw std::invalid_argument("ntkx: CNTK images need P, Q, C >= 1");
  if (p.n_conv < 1 || p.n_conv > kMaxConv)
    throw std::invalid_argument("ntkx: CNTK needs 1 to " + std::to_string(kMaxConv) + " conv layers");
  for (int l = 0; l < p.n_conv; ++l)
    if (p.filt[l] < 1 || p.filt[l] % 2 == 0) throw std::invalid_argument("ntkx: CNTK filter sides must be odd");
}

void cntk_maps(const CntkParams& p, const double* x, int64_t n, double* out, int threads) {
  check_cntk_params(p);
  if (n == 0) return;
  LaneSet set(p, x, n);
  Poll poll(nullptr);
  const math::ActConst k = math::cntk_act_const(p);
  threads = threads > 0 ? threads : openmp_threads();
  with_cntk_act(p.act, [&](auto kind) { fill_maps<decltype(kind)::value>(p, k, set, threads, poll); });
  const int64_t per = set.map_stride / kLanes;  // n_act * n_fields * P Q
  for (int64_t i = 0; i < n; ++i) {
    const double* src = set.map(i);
    for (int64_t e = 0; e < per; ++e) out[i * per + e] = src[e * kLanes];
  }
}

template <typename T>
void cntk_cpu(const CntkArgs<T>& a, Interrupt* interrupt) {
  check_cntk_params(a.params);
  if (a.n1 == 0 || a.n2 == 0) return;
  if (a.ntk) return dispatch<T, true>(a, interrupt);
  return dispatch<T, false>(a, interrupt);
}

template void cntk_cpu<float>(const CntkArgs<float>&, Interrupt*);
template void cntk_cpu<double>(const CntkArgs<double>&, Interrupt*);

template <typename T>
void cntk_cpu_tiles(const CntkArgs<T>& a, int64_t budget, Interrupt* interrupt) {
  const CntkParams& p = a.params;
  const int64_t img = int64_t(p.P) * p.Q * p.C;
  // Per image: its diagonal maps and a lane-interleaved copy (8 pairs per SIMD row).
  const int64_t per_image = 8 * int64_t(p.P) * p.Q * (int64_t(p.n_act()) * p.n_fields() + p.C);
  if (budget <= 0) return cntk_cpu<T>(a, interrupt);
  const int64_t tile = std::max<int64_t>(8, budget / (2 * per_image) / 8 * 8);
  const double* rows = a.symmetric ? a.x2 : a.x1;
  OffsetInterrupt oi(interrupt);
  Interrupt* it = interrupt ? &oi : nullptr;
  // One call per tile: the backend balances its work items over the threads and
  // reports the pairs it has finished. (Calls of a few rows each waited for their
  // slowest thread at every end: 8% of a 48-image 32x32x3 GAP Gram.)
  for (int64_t r0 = 0; r0 < a.n1; r0 += tile) {
    const int64_t r1 = std::min(a.n1, r0 + tile);
    for (int64_t c0 = a.symmetric ? r0 : 0; c0 < a.n2; c0 += tile) {
      const int64_t c1 = std::min(a.n2, c0 + tile);
      CntkArgs<T> t = a;
      t.x1 = rows + r0 * img;
      t.n1 = r1 - r0;
      t.nngp = a.nngp ? a.nngp + r0 * a.ldo + c0 : nullptr;
      t.ntk = a.ntk ? a.ntk + r0 * a.ldo + c0 : nullptr;
      // The diagonal tile of a symmetric matrix: pairs j >= i, mirrored by the backend.
      t.symmetric = a.symmetric && c0 == r0;
      t.x2 = (t.symmetric ? rows + r0 * img : a.x2 + c0 * img);
      t.n2 = t.symmetric ? r1 - r0 : c1 - c0;
      cntk_cpu<T>(t, it);
      if (a.symmetric && !t.symmetric) {  // the mirror tile
        host::mirror_block(a.nngp, r0, r1, c0, c1, a.ldo);
        host::mirror_block(a.ntk, r0, r1, c0, c1, a.ldo);
      }
      if (interrupt) oi.finished(t.symmetric ? t.n1 * (t.n1 + 1) / 2 : t.n1 * t.n2);
    }
  }
}

template void cntk_cpu_tiles<float>(const CntkArgs<float>&, int64_t, Interrupt*);
template void cntk_cpu_tiles<double>(const CntkArgs<double>&, int64_t, Interrupt*);

}  // namespace ntkx
