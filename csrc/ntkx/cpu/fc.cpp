// OpenMP backend of the FC kernels: one call fills one row panel whose Gram
// products BLAS has already computed (DESIGN.md section 3: no hand-written GEMM).
// Work items are (row, chunk of kChunk columns); each runs all layers of its
// chunk with the state in four small arrays that stay in L1, the layer loop over
// the chunk written so that the compiler vectorizes it (no branches, no calls).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "ntkx/backends.h"
#include "ntkx/cpu/angle_table.h"
#include "ntkx/host/dispatch.h"
#include "ntkx/host/mirror.h"
#include "ntkx/host/points.h"
#include "ntkx/host/poll.h"
#include "ntkx/math/fc_program.h"

namespace ntkx {
namespace {

/// One row panel of an FC kernel matrix (fc_cpu cuts the matrix into these), given
/// its Gram products or the BLAS to compute them. T is the output type; inputs, Gram
/// and recursion are float64.
template <typename T>
struct FcPanelArgs {
  FcParams params;
  int64_t rows = 0;            ///< panel rows (points of x1)
  int64_t cols = 0;            ///< panel columns (points of x2)
  int64_t d = 0;               ///< feature dimension
  const double* x1 = nullptr;  ///< [rows, ld1] inputs of the rows
  int64_t ld1 = 0;
  const double* x2 = nullptr;  ///< [cols, ld2] inputs of the columns
  int64_t ld2 = 0;
  const double* sq1 = nullptr; ///< [rows] squared norms |x1_i|^2
  const double* sq2 = nullptr; ///< [cols] squared norms |x2_j|^2
  /// Optional [rows] / [cols] log-scales (math::point_layer0): the true squared norm
  /// of a row is sq e^lsc when the caller divided it by a power of two; null: 0.
  /// Only read where the panel computes its own point arrays.
  const double* lsc1 = nullptr;
  const double* lsc2 = nullptr;
  const double* gram = nullptr;  ///< [rows, ldg] Gram products x1_i . x2_j
  int64_t ldg = 0;
  T* nngp = nullptr;           ///< [rows, ldo] NNGP output, or null
  T* ntk = nullptr;            ///< [rows, ldo] NTK output, or null
  int64_t ldo = 0;
  /// Optional per-point layer arrays for all depth + 1 layers (see PointArrays):
  /// entry (l, f, i) at pts1[(4 l + f) ldp1 + i]; with them, log Q_L of each point.
  /// When null, the panel computes them itself, in layer blocks of bounded memory.
  const double* pts1 = nullptr;
  int64_t ldp1 = 0;
  const double* logq1 = nullptr;  ///< [rows]
  const double* pts2 = nullptr;
  int64_t ldp2 = 0;
  const double* logq2 = nullptr;  ///< [cols]
  /// Rows and columns start at the same point (a diagonal panel of a symmetric
  /// Gram): only j >= i is computed, and (j, i) is then copied from (i, j)
  /// (outputs then need `cols` rows).
  bool symmetric = false;
  /// OpenMP threads (<= 0: the OpenMP default).
  int threads = 0;
  /// When set, `gram` is ignored: each thread computes its Gram tiles with this
  /// BLAS dgemm (which must then run single-threaded) right before using them.
  /// Needs the per-point arrays (pts1, pts2).
  Dgemm dgemm = nullptr;
  /// Optional, with dgemm on a symmetric panel: tiles on the diagonal compute only
  /// their upper triangle, by this dsyrk.
  Dsyrk dsyrk = nullptr;
  /// With params.program: the first per-point slot of each op (math::program_slots).
  const int64_t* slot_off = nullptr;
  /// With params.program, optional: the program's response as a function of the
  /// input angle (a bias-free composition whose per-point weights are the same for
  /// every point; see program_table), used in place of interpreting the ops.
  const AngleTable* table = nullptr;
};


constexpr int64_t kChunk = 256;
/// Rows per fused Gram tile (kRowBlock x kChunk doubles = 512 KB per thread). Equal
/// to kChunk, so that the tiles on the diagonal of a symmetric panel are square
/// (dsyrk computes them).
constexpr int64_t kRowBlock = 256;
static_assert(kRowBlock == kChunk, "diagonal tiles must be square");
/// Per-point arrays of one layer block are bounded by this many doubles (128 MB),
/// so depth 10^6 runs in bounded memory.
constexpr int64_t kPointBudget = int64_t(1) << 24;
/// Rows the fused path finishes before writing them out, and the length of the
/// runs it writes transposed (8 doubles: one cache line).
constexpr int64_t kMirrorRows = 8;

/// Where a panel reads its per-point layer arrays: the caller's, or blocks it computes.
struct PointSource {
  const double* pts;  // [layers, 4, ld]
  int64_t ld;
  const double* logq;
};

/// Outputs at least this large (bytes, both kernels) are written with streaming stores.
constexpr double kStreamBytes = 64.0 * (1 << 20);

/// dst[0..n) = src[0..n). With `stream` (and AVX) the 32-byte-aligned middle goes
/// out by non-temporal stores: outputs far larger than the caches are not read again
/// by this call, and streaming saves reading each line in before writing it. (The
/// caller fences before another thread can read the tile's results.)
inline void put_run(double* dst, const double* src, int64_t n, bool stream) {
  int64_t j = 0;
#if defined(__AVX__)
  if (stream) {
    while (j < n && (reinterpret_cast<std::uintptr_t>(dst + j) & 31) != 0) dst[j] = src[j], ++j;
    for (; j + 4 <= n; j += 4) _mm256_stream_pd(dst + j, _mm256_loadu_pd(src + j));
  }
#endif
  for (; j < n; ++j) dst[j] = src[j];
}
inline void put_run(float* dst, const double* src, int64_t n, bool) {
  for (int64_t j = 0; j < n; ++j) dst[j] = float(src[j]);
}

/// Orders this thread's non-temporal stores before anything it does next.
inline void store_fence() {
#if defined(__AVX__)
  _mm_sfence();
#endif
}

/// Writes finished rows i0 .. i0 + nr - 1 (columns j0 .. j0 + w - 1) of the NNGP and
/// NTK from res_r / res_t ([kMirrorRows, kChunk] each). Symmetric calls write the
/// upper triangle (j >= i) along rows and its strict part again at (j, i).
template <typename T>
void write_rows(const FcPanelArgs<T>& a, int64_t i0, int64_t nr, int64_t j0, int64_t w, const double* res_r,
                const double* res_t, bool stream) {
  T* const outs[2] = {a.nngp, a.ntk};
  const double* const res[2] = {res_r, res_t};
  for (int k = 0; k < 2; ++k) {
    T* const o = outs[k];
    if (o == nullptr) continue;
    for (int64_t r = 0; r < nr; ++r) {
      const int64_t i = i0 + r;
      const int64_t jstart = a.symmetric ? std::min(w, std::max<int64_t>(0, i - j0)) : 0;
      const double* src = res[k] + r * kChunk;
      T* dst = o + i * a.ldo + j0;
      put_run(dst + jstart, src + jstart, w - jstart, stream);
    }
    if (!a.symmetric) continue;
    // (j, i0 + r) for the rows r with i0 + r < j: a run of up to kMirrorRows values.
    for (int64_t jj = std::max<int64_t>(0, i0 + 1 - j0); jj < w; ++jj) {
      const int64_t j = j0 + jj, run = std::min(nr, j - i0);
      T* dst = o + j * a.ldo + i0;
      double tmp[kMirrorRows];
      for (int64_t r = 0; r < run; ++r) tmp[r] = res[k][r * kChunk + jj];
      put_run(dst, tmp, run, stream);
    }
  }
}

// The homogeneous panel's row lambda is inlined into both call sites of run_tiles, as
// it was before the tile loop was shared (called, it cost ~7% on the bias-free table
// case, N = 4000, d = 32, L = 10, in interleaved A/Bs).
#if defined(__GNUC__)
#define NTKX_INLINE_LAMBDA __attribute__((always_inline))
#else
#define NTKX_INLINE_LAMBDA
#endif

/// The input cosines of row i against columns [j0, j0 + w) from their Gram products
/// grow[0..w): rho = cos, del = 1 - cos, eps = 1 + cos, each accurate (near-colinear
/// pairs recomputed from the rows).
template <typename T>
inline void input_row(const FcPanelArgs<T>& a, const double* inv1, const double* inv2, int64_t i, int64_t j0,
                      int64_t w, const double* grow, double* rho, double* del, double* eps) {
  const double* __restrict g = grow;
  const double* __restrict r2 = inv2 + j0;
  const double ri = inv1[i];
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) math::input_cosine_gram(g[jj], ri, r2[jj], &rho[jj], &del[jj], &eps[jj]);
  for (int64_t jj = 0; jj < w; ++jj)  // rare: near-colinear pairs, O(d) each
    if (math::input_cosine_colinear(del[jj], eps[jj]))
      math::input_cosine_exact(a.x1 + i * a.ld1, a.x2 + (j0 + jj) * a.ld2, a.d, a.sq1[i], a.sq2[j0 + jj], &rho[jj],
                               &del[jj], &eps[jj]);
}

/// Output of row i, columns [j0, j0 + w): sqrt(Q Q') * (rho, tau) (in place), with
/// products of the per-point scales sc (point_scales) where safe, else from the
/// logs; then copied to res_r / res_t when given (the fused path writes them out in
/// both orientations), else straight into the output rows.
template <typename T>
inline void finish_row(const FcPanelArgs<T>& a, int64_t i, int64_t j0, int64_t w, double* rho, double* tau,
                       const double* sc1, const double* sc2, const double* logq1, const double* logq2,
                       double* res_r, double* res_t) {
  const double si = sc1[i];
  const double* __restrict sj = sc2 + j0;
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    const double s = (si >= 0.0 && sj[jj] >= 0.0) ? si * sj[jj] : 1.0;
    rho[jj] *= s, tau[jj] *= s;
  }
  for (int64_t jj = 0; jj < w; ++jj)
    if (si < 0.0 || sj[jj] < 0.0) {
      const double s = math::pair_scale(logq1[i], logq2[j0 + jj]);
      rho[jj] = math::scaled(s, rho[jj]), tau[jj] = math::scaled(s, tau[jj]);
    }
  if (res_r != nullptr) {
    std::copy(rho, rho + w, res_r);
    std::copy(tau, tau + w, res_t);
    return;
  }
  // (Symmetric callers pass j0 >= i: every column here is on or above the diagonal.)
  if (a.nngp)
    for (int64_t jj = 0; jj < w; ++jj) a.nngp[i * a.ldo + j0 + jj] = T(rho[jj]);
  if (a.ntk)
    for (int64_t jj = 0; jj < w; ++jj) a.ntk[i * a.ldo + j0 + jj] = T(tau[jj]);
}

/// Runs row_chunk(i, j0, w, grow[, res_r, res_t]) over every (row, column chunk) of a
/// panel (upper triangle when symmetric): on the panel's stored Gram, or, with
/// a.dgemm, on kRowBlock x kChunk Gram tiles each thread computes and consumes from
/// cache. `cost` (work per pair, in layers) decides whether threads pay.
template <typename T, typename RowChunk>
void run_tiles(const FcPanelArgs<T>& a, Poll& poll, int threads, int64_t cost, RowChunk& row_chunk) {
  const int64_t nchunk = (a.cols + kChunk - 1) / kChunk;
  const int64_t items = a.rows * nchunk;
  if (a.dgemm == nullptr) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (items * cost > 4096)
    for (int64_t item = 0; item < items; ++item) {
      poll.check();
      if (poll.stop()) continue;
      const int64_t i = item / nchunk, j0 = (item % nchunk) * kChunk;
      const int64_t w = std::min(kChunk, a.cols - j0);
      if (a.symmetric && j0 + w <= i) continue;  // entirely below the diagonal
      const int64_t js = a.symmetric ? std::max<int64_t>(0, i - j0) : 0;  // on or above it
      row_chunk(i, j0 + js, w - js, a.gram + i * a.ldg + j0 + js, nullptr, nullptr);
    }
    return;
  }
  // Fused: each work item is a kRowBlock x kChunk tile whose Gram products a
  // single-threaded BLAS dgemm writes into a thread-local buffer that the
  // recursion then reads from L2. No N x N Gram exists; BLAS threads do not
  // spin against ours (the caller limits BLAS to one thread). A symmetric
  // call writes each group of kMirrorRows finished rows twice: along the rows,
  // and transposed as kMirrorRows-long runs of the rows below the diagonal,
  // so no separate mirror pass re-reads the output.
  const int64_t nrb = (a.rows + kRowBlock - 1) / kRowBlock;
  const int64_t tiles = nrb * nchunk;
  const int nout = (a.nngp != nullptr) + (a.ntk != nullptr);
  const bool stream =
      double(nout) * sizeof(T) * double(a.symmetric ? a.cols : a.rows) * double(a.cols) >= kStreamBytes;
#pragma omp parallel num_threads(threads) if (tiles * cost > 64)
  {
    std::vector<double> buf(kRowBlock * kChunk), res(2 * kMirrorRows * kChunk);
    double* const res_r = res.data();
    double* const res_t = res_r + kMirrorRows * kChunk;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < tiles; ++item) {
      poll.check();
      if (poll.stop()) continue;
      const int64_t i0 = (item / nchunk) * kRowBlock, j0 = (item % nchunk) * kChunk;
      const int64_t h = std::min(kRowBlock, a.rows - i0), w = std::min(kChunk, a.cols - j0);
      if (a.symmetric && j0 + w <= i0) continue;
      // Column-major: G^T (w x h) = X2b (d x w)^T X1b (d x h), i.e. row-major G (h x w).
      char tr = 'T', nt = 'N', lo = 'L';
      int m = int(w), n = int(h), kk = int(a.d), lda = int(a.ld2), ldb = int(a.ld1), ldc = int(kChunk);
      double one = 1.0, zero = 0.0;
      if (a.dsyrk != nullptr && a.symmetric && i0 == j0 && h == w) {
        // A tile on the diagonal: its upper triangle (row-major) is the lower one of
        // the column-major G^T = X1b^T X1b, half the flops of the dgemm.
        a.dsyrk(&lo, &tr, &n, &kk, &one, const_cast<double*>(a.x1 + i0 * a.ld1), &ldb, &zero, buf.data(), &ldc);
      } else {
        a.dgemm(&tr, &nt, &m, &n, &kk, &one, const_cast<double*>(a.x2 + j0 * a.ld2), &lda,
                const_cast<double*>(a.x1 + i0 * a.ld1), &ldb, &zero, buf.data(), &ldc);
      }
      for (int64_t r0 = 0; r0 < h; r0 += kMirrorRows) {
        const int64_t nr = std::min(kMirrorRows, h - r0);
        for (int64_t r = r0; r < r0 + nr; ++r) {
          if (a.symmetric && j0 + w <= i0 + r) continue;
          // Symmetric: only the columns on or above the diagonal (the rest of the
          // tile's Gram may not even be computed).
          const int64_t js = a.symmetric ? std::max<int64_t>(0, i0 + r - j0) : 0;
          row_chunk(i0 + r, j0 + js, w - js, buf.data() + r * kChunk + js, res_r + (r - r0) * kChunk + js,
                    res_t + (r - r0) * kChunk + js);
        }
        write_rows(a, i0 + r0, nr, j0, w, res_r, res_t, stream);
      }
      store_fence();
    }
  }
}

template <typename T, Act K, bool kNoBias>
void panel(const FcPanelArgs<T>& a, Interrupt* interrupt) {
  const FcParams& p = a.params;
  const math::ActConst k = math::act_const(p);
  const int64_t L = p.depth;
  const bool given = a.pts1 != nullptr && a.pts2 != nullptr;
  const int64_t block = given ? L + 1 : std::max<int64_t>(1, kPointBudget / (4 * (a.rows + a.cols) + 1));
  const bool multi = L + 1 > block;
  if (a.dgemm != nullptr && (multi || a.d > (int64_t(1) << 30) || a.ld1 > (int64_t(1) << 30)))
    throw std::invalid_argument("ntkx: the fused BLAS path needs all layers' point arrays and 32-bit sizes");
  // Recursion state of every pair survives between layer blocks only for very deep nets.
  std::vector<double> saved(multi ? 4 * a.rows * a.cols : 0);
  PointArrays pr(given ? 0 : a.rows), pc(given ? 0 : a.cols);
  std::vector<double> inv1(a.rows), inv2(a.cols), sc1(a.rows), sc2(a.cols);
  for (int64_t i = 0; i < a.rows; ++i) inv1[i] = math::inv_norm(a.sq1[i]);
  for (int64_t j = 0; j < a.cols; ++j) inv2[j] = math::inv_norm(a.sq2[j]);
  Poll poll(interrupt);
  const int threads = a.threads > 0 ? a.threads : openmp_threads();
  // Bias-free ReLU-family / ReQU nets with many pairs: tabulate the depth-L response
  // of the input angle once (checked against the exact recursion; see angle_table.h).
  AngleTable table;
  const bool use_table = kNoBias && (K == Act::kABRelu || K == Act::kArcCos2) && !multi &&
                         AngleTable::pays(a.rows * a.cols, L) && table.build<K>(k, L, &poll);

  for (int64_t l0 = 0; l0 <= L; l0 += block) {
    const int64_t nl = std::min(block, L + 1 - l0);
    PointSource s1{a.pts1, a.ldp1, a.logq1}, s2{a.pts2, a.ldp2, a.logq2};
    if (!given) {
      pr.compute(p, a.sq1, a.lsc1, a.d, l0, nl);
      pc.compute(p, a.sq2, a.lsc2, a.d, l0, nl);
      s1 = {pr.data.data(), a.rows, pr.logq.data()};
      s2 = {pc.data.data(), a.cols, pc.logq.data()};
    }
    const bool last = l0 + nl > L;
    if (last) {
      point_scales(s1.logq, a.rows, sc1.data());
      point_scales(s2.logq, a.cols, sc2.data());
    }

    // One row i against columns [j0, j0 + w), its Gram products at grow[0..w).
    // After the last layer the scaled NNGP and NTK go to res_r[0..w), res_t[0..w)
    // when given (the fused path writes them out in both orientations), else
    // straight into the output rows.
    auto row_chunk = [&](int64_t i, int64_t j0, int64_t w, const double* grow, double* res_r, double* res_t) NTKX_INLINE_LAMBDA {
      alignas(64) double rho[kChunk], del[kChunk], eps[kChunk], tau[kChunk];
      // A local copy: read through the closure, the constants would be reloaded per pair
      // and the layer loop below would not vectorize (it is this lambda's body, not inlined
      // into run_tiles, which calls it from two places).
      const math::ActConst kl = k;
      int64_t t0 = 0;
      if (l0 == 0) {
        input_row(a, inv1.data(), inv2.data(), i, j0, w, grow, rho, del, eps);
        const double ui = s1.pts[kU * s1.ld + i], vi = s1.pts[kV * s1.ld + i];
        const double* __restrict uj = s2.pts + kU * s2.ld + j0;
        const double* __restrict vj = s2.pts + kV * s2.ld + j0;
#pragma omp simd
        for (int64_t jj = 0; jj < w; ++jj) {
          math::PairState st;
          math::layer0(st, rho[jj], del[jj], eps[jj], math::PointLayer{ui, vi, 0.0, 0.0},
                       math::PointLayer{uj[jj], vj[jj], 0.0, 0.0});
          rho[jj] = st.rho, del[jj] = st.delta, eps[jj] = st.eps, tau[jj] = st.tau;
        }
        t0 = 1;
        if (use_table) {
#pragma omp simd
          for (int64_t jj = 0; jj < w; ++jj) tau[jj] = math::angle(rho[jj], del[jj], eps[jj]);
          table.eval_row(tau, w, rho, tau);  // in place: eval reads theta[j] before writing t[j]
          t0 = nl;  // every layer is in the table
        }
      } else {
        const double* sv = saved.data() + 4 * (i * a.cols + j0);
        for (int64_t jj = 0; jj < w; ++jj)
          rho[jj] = sv[4 * jj], del[jj] = sv[4 * jj + 1], eps[jj] = sv[4 * jj + 2], tau[jj] = sv[4 * jj + 3];
      }
      for (int64_t t = t0; t < nl; ++t) {
        // Deep nets: a row of a tile can take seconds, so Ctrl-C is polled inside it
        // too (the master thread's check costs a clock read; the others' nothing). An
        // interrupted row's outputs are garbage, as any partial output of Interrupted.
        if ((t & 1023) == 1023) {
          poll.check();
          if (poll.stop()) return;
        }
        const double* p1 = s1.pts + 4 * t * s1.ld + i;
        const double ui = p1[kU * s1.ld], vi = p1[kV * s1.ld], gi = p1[kG * s1.ld], si = p1[kS * s1.ld];
        const double* p2 = s2.pts + 4 * t * s2.ld + j0;
        const double* __restrict uj = p2 + kU * s2.ld;
        const double* __restrict vj = p2 + kV * s2.ld;
        const double* __restrict gj = p2 + kG * s2.ld;
        const double* __restrict sj = p2 + kS * s2.ld;
#pragma omp simd
        for (int64_t jj = 0; jj < w; ++jj) {
          math::PairState st{rho[jj], del[jj], eps[jj], tau[jj]};
          math::layer_step<K, kNoBias>(kl, st, ui, vi, gi, si, uj[jj], vj[jj], gj[jj], sj[jj]);
          rho[jj] = st.rho, del[jj] = st.delta, eps[jj] = st.eps, tau[jj] = st.tau;
        }
      }
      if (!last) {
        double* sv = saved.data() + 4 * (i * a.cols + j0);
        for (int64_t jj = 0; jj < w; ++jj)
          sv[4 * jj] = rho[jj], sv[4 * jj + 1] = del[jj], sv[4 * jj + 2] = eps[jj], sv[4 * jj + 3] = tau[jj];
        return;
      }
      finish_row(a, i, j0, w, rho, tau, sc1.data(), sc2.data(), s1.logq, s2.logq, res_r, res_t);
    };

    run_tiles(a, poll, threads, L + 1, row_chunk);
    if (poll.stop()) throw Interrupted();
  }
  if (a.symmetric && a.dgemm == nullptr) {
    host::mirror_upper(a.nngp, a.rows, a.cols, a.ldo, threads);
    host::mirror_upper(a.ntk, a.rows, a.cols, a.ldo, threads);
  }
}

// The loops of the program's ops over a register's w pairs (field f of a register
// at r + f kChunk). Standalone functions with their constants as values, as the
// homogeneous panel's layer loop: read through a closure, they would not vectorize.
// dst may be src: each pair's fields are read before they are written. `flatten`
// inlines the duals into these loops only (GCC outlines dual<K>, which has many
// callers, and a loop with a call stays scalar); the homogeneous panel's code, and
// with it its bits, are left as they were.
#if defined(__GNUC__)
#define NTKX_FLATTEN __attribute__((flatten))
#else
#define NTKX_FLATTEN
#endif

NTKX_FLATTEN inline void ops_dense(const double* sr, double* ds, int64_t w, double ui, double vi, const double* __restrict uj,
                      const double* __restrict vj) {
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    math::PairState st{sr[jj], sr[kChunk + jj], sr[2 * kChunk + jj], sr[3 * kChunk + jj]};
    math::dense_pair(st, ui, vi, uj[jj], vj[jj]);
    ds[jj] = st.rho, ds[kChunk + jj] = st.delta, ds[2 * kChunk + jj] = st.eps, ds[3 * kChunk + jj] = st.tau;
  }
}

template <Act K>
NTKX_FLATTEN void ops_act(const math::ActConst k, const double* sr, double* ds, int64_t w, double gi, double si,
             const double* __restrict gj, const double* __restrict sj) {
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    math::PairState st{sr[jj], sr[kChunk + jj], sr[2 * kChunk + jj], sr[3 * kChunk + jj]};
    math::act_pair<K>(k, st, gi, si, gj[jj], sj[jj]);
    ds[jj] = st.rho, ds[kChunk + jj] = st.delta, ds[2 * kChunk + jj] = st.eps, ds[3 * kChunk + jj] = st.tau;
  }
}

template <Act K>
NTKX_FLATTEN void ops_layer(const math::ActConst k, const double* sr, double* ds, int64_t w, double ui, double vi, double gi,
               double si, const double* __restrict uj, const double* __restrict vj, const double* __restrict gj,
               const double* __restrict sj) {
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    math::PairState st{sr[jj], sr[kChunk + jj], sr[2 * kChunk + jj], sr[3 * kChunk + jj]};
    math::layer_step<K, false>(k, st, ui, vi, gi, si, uj[jj], vj[jj], gj[jj], sj[jj]);
    ds[jj] = st.rho, ds[kChunk + jj] = st.delta, ds[2 * kChunk + jj] = st.eps, ds[3 * kChunk + jj] = st.tau;
  }
}

NTKX_FLATTEN inline void ops_dense_std(const double* sr, double* ds, int64_t w, double ui, double vi, double zi,
                                       double yi, const double* __restrict uj, const double* __restrict vj,
                                       const double* __restrict zj, const double* __restrict yj) {
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    math::PairState st{sr[jj], sr[kChunk + jj], sr[2 * kChunk + jj], sr[3 * kChunk + jj]};
    const math::Dual du{st.rho, st.delta, st.eps, 1.0};
    math::mix_pair_std(st, du, ui, vi, zi, yi, uj[jj], vj[jj], zj[jj], yj[jj]);
    ds[jj] = st.rho, ds[kChunk + jj] = st.delta, ds[2 * kChunk + jj] = st.eps, ds[3 * kChunk + jj] = st.tau;
  }
}

template <Act K>
NTKX_FLATTEN void ops_layer_std(const math::ActConst k, const double* sr, double* ds, int64_t w, const double* p1,
                                int64_t l1, const double* p2, int64_t l2) {
  const double ui = p1[0], vi = p1[l1], gi = p1[2 * l1], si = p1[3 * l1], zi = p1[4 * l1], yi = p1[5 * l1];
  const double* __restrict uj = p2;
  const double* __restrict vj = p2 + l2;
  const double* __restrict gj = p2 + 2 * l2;
  const double* __restrict sj = p2 + 3 * l2;
  const double* __restrict zj = p2 + 4 * l2;
  const double* __restrict yj = p2 + 5 * l2;
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    math::PairState st{sr[jj], sr[kChunk + jj], sr[2 * kChunk + jj], sr[3 * kChunk + jj]};
    const math::Dual du = math::dual<K>(k, st, gi, si, gj[jj], sj[jj]);
    math::mix_pair_std(st, du, ui, vi, zi, yi, uj[jj], vj[jj], zj[jj], yj[jj]);
    ds[jj] = st.rho, ds[kChunk + jj] = st.delta, ds[2 * kChunk + jj] = st.eps, ds[3 * kChunk + jj] = st.tau;
  }
}

NTKX_FLATTEN inline void ops_act_poly(const double* sr, double* ds, int64_t w, const double* p1, int64_t l1,
                                      const double* p2, int64_t l2, int m) {
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    math::PairState st{sr[jj], sr[kChunk + jj], sr[2 * kChunk + jj], sr[3 * kChunk + jj]};
    math::poly_pair(st, p1, l1, p2 + jj, l2, m);
    ds[jj] = st.rho, ds[kChunk + jj] = st.delta, ds[2 * kChunk + jj] = st.eps, ds[3 * kChunk + jj] = st.tau;
  }
}

NTKX_FLATTEN inline void ops_sum_add(double* __restrict acc, const double* __restrict sr, int64_t w, double ui,
                        const double* __restrict uj) {
#pragma omp simd
  for (int64_t jj = 0; jj < w; ++jj) {
    math::PairState st{acc[jj], acc[kChunk + jj], acc[2 * kChunk + jj], acc[3 * kChunk + jj]};
    math::sum_pair_add(st, ui, uj[jj], sr[jj], sr[kChunk + jj], sr[2 * kChunk + jj], sr[3 * kChunk + jj]);
    acc[jj] = st.rho, acc[kChunk + jj] = st.delta, acc[2 * kChunk + jj] = st.eps, acc[3 * kChunk + jj] = st.tau;
  }
}

/// Each op's activation constants (math::act_const), as program_ops reads them.
std::vector<math::ActConst> program_consts(const FcProgram& pr) {
  std::vector<math::ActConst> kc(size_t(pr.nops));
  for (int64_t t = 0; t < pr.nops; ++t) kc[size_t(t)] = math::act_const(op_act_params(pr.ops[t]));
  return kc;
}

/// The ops of a program on w pairs (one row point against w column points):
/// registers reg[r] (field f at reg[r] + f kChunk; reg[nreg] the spare a SUM
/// writes, swapped in), the row point's slots at s1[k l1], the columns' at
/// s2[k l2 + jj]. Returns false when `poll` (may be null) asks to stop.
bool program_ops(const FcProgram& pr, const int64_t* off, const math::ActConst* kc, const double* s1, int64_t l1,
                 const double* s2, int64_t l2, int64_t w, double** reg, Poll* poll) {
  const int64_t nreg = pr.nreg;
  for (int64_t t = 0; t < pr.nops; ++t) {
    if (poll != nullptr && (t & 1023) == 1023) {  // long programs: Ctrl-C inside a row too (see panel)
      poll->check();
      if (poll->stop()) return false;
    }
    const ProgOp& op = pr.ops[t];
    const double* p1 = s1 + off[t] * l1;
    const double* p2 = s2 + off[t] * l2;
    if (op.kind == OpKind::kSum) {
      double* acc = reg[size_t(nreg)];
      std::fill(acc, acc + 4 * kChunk, 0.0);
      for (int32_t k = 0; k < op.nsrc; ++k) ops_sum_add(acc, reg[size_t(pr.srcs[op.src + k])], w, p1[k * l1], p2 + k * l2);
      std::swap(reg[size_t(nreg)], reg[size_t(op.dst)]);
      continue;
    }
    const double* sr = reg[size_t(op.src)];
    double* ds = reg[size_t(op.dst)];
    const math::ActConst k = kc[t];
    if (op.kind == OpKind::kDense) {
      ops_dense(sr, ds, w, p1[0], p1[l1], p2, p2 + l2);
    } else if (op.kind == OpKind::kDenseStd) {
      ops_dense_std(sr, ds, w, p1[0], p1[l1], p1[2 * l1], p1[3 * l1], p2, p2 + l2, p2 + 2 * l2, p2 + 3 * l2);
    } else if (op.kind == OpKind::kLayerStd) {
      with_act(op.act, [&](auto tag) { ops_layer_std<decltype(tag)::value>(k, sr, ds, w, p1, l1, p2, l2); });
    } else if (op.kind == OpKind::kAct && op.act == Act::kPolynomial) {
      ops_act_poly(sr, ds, w, p1, l1, p2, l2, int(op.a));
    } else if (op.kind == OpKind::kAct) {
      with_act(op.act, [&](auto tag) { ops_act<decltype(tag)::value>(k, sr, ds, w, p1[0], p1[l1], p2, p2 + l2); });
    } else {
      with_act(op.act, [&](auto tag) {
        ops_layer<decltype(tag)::value>(k, sr, ds, w, p1[0], p1[l1], p1[2 * l1], p1[3 * l1], p2, p2 + l2,
                                        p2 + 2 * l2, p2 + 3 * l2);
      });
    }
  }
  return true;
}

/// One panel of a general composition (math/fc_program.h): the per-point slots of
/// every op are given (pts1 / pts2: slot k of point i at pts[k ld + i]; logq the
/// output register's log Q), and each (row, column chunk) interprets the ops on
/// registers of kChunk pairs that stay in cache, inside the same Gram tiles.
template <typename T>
void panel_program(const FcPanelArgs<T>& a, const int64_t* off, Interrupt* interrupt) {
  const FcProgram& pr = *a.params.program;
  if (a.dgemm != nullptr && (a.d > (int64_t(1) << 30) || a.ld1 > (int64_t(1) << 30)))
    throw std::invalid_argument("ntkx: the fused BLAS path needs 32-bit sizes");
  const std::vector<math::ActConst> kc = program_consts(pr);
  std::vector<double> inv1(a.rows), inv2(a.cols), sc1(a.rows), sc2(a.cols);
  for (int64_t i = 0; i < a.rows; ++i) inv1[i] = math::inv_norm(a.sq1[i]);
  for (int64_t j = 0; j < a.cols; ++j) inv2[j] = math::inv_norm(a.sq2[j]);
  point_scales(a.logq1, a.rows, sc1.data());
  point_scales(a.logq2, a.cols, sc2.data());
  Poll poll(interrupt);
  const int threads = a.threads > 0 ? a.threads : openmp_threads();
  const int64_t nreg = pr.nreg;

  auto row_chunk = [&](int64_t i, int64_t j0, int64_t w, const double* grow, double* res_r, double* res_t) {
    // Registers: field f of register r at reg[r] + f kChunk; one spare for SUM's result
    // (swapped in, so a SUM may overwrite one of its sources).
    thread_local std::vector<double> scratch;
    thread_local std::vector<double*> reg;
    if (scratch.size() < size_t(4 * kChunk * (nreg + 1))) scratch.resize(size_t(4 * kChunk * (nreg + 1)));
    reg.resize(size_t(nreg + 1));
    for (int64_t r = 0; r <= nreg; ++r) reg[size_t(r)] = scratch.data() + 4 * kChunk * r;
    double* in = reg[0];
    input_row(a, inv1.data(), inv2.data(), i, j0, w, grow, in, in + kChunk, in + 2 * kChunk);
    std::fill(in + 3 * kChunk, in + 3 * kChunk + w, 0.0);  // Theta of the input: 0
    if (a.table != nullptr) {  // the whole program as a function of the input angle
      double* th = in + 3 * kChunk;
#pragma omp simd
      for (int64_t jj = 0; jj < w; ++jj) th[jj] = math::angle(in[jj], in[kChunk + jj], in[2 * kChunk + jj]);
      a.table->eval_row(th, w, in, th);
      finish_row(a, i, j0, w, in, th, sc1.data(), sc2.data(), a.logq1, a.logq2, res_r, res_t);
      return;
    }
    if (!program_ops(pr, off, kc.data(), a.pts1 + i, a.ldp1, a.pts2 + j0, a.ldp2, w, reg.data(), &poll)) return;
    double* o = reg[size_t(pr.out)];
    finish_row(a, i, j0, w, o, o + 3 * kChunk, sc1.data(), sc2.data(), a.logq1, a.logq2, res_r, res_t);
  };

  run_tiles(a, poll, threads, pr.nops + 1, row_chunk);
  if (poll.stop()) throw Interrupted();
  if (a.symmetric && a.dgemm == nullptr) {
    host::mirror_upper(a.nngp, a.rows, a.cols, a.ldo, threads);
    host::mirror_upper(a.ntk, a.rows, a.cols, a.ldo, threads);
  }
}

template <typename T, bool kNoBias>
void dispatch(const FcPanelArgs<T>& a, Interrupt* interrupt) {
  with_act(a.params.act, [&](auto k) { panel<T, decltype(k)::value, kNoBias>(a, interrupt); });
}

template <typename T>
void fc_panel_cpu(const FcPanelArgs<T>& a, Interrupt* interrupt) {
  if (a.rows == 0 || a.cols == 0) return;
  if (a.params.program != nullptr) return panel_program<T>(a, a.slot_off, interrupt);
  if (!a.params.biased()) return dispatch<T, true>(a, interrupt);
  return dispatch<T, false>(a, interrupt);
}

/// Rows per call on the fused path: the granularity of progress reports and of
/// Ctrl-C between panels (a multiple of kRowBlock, so tiles start on one grid).
constexpr int64_t kFusedRows = 2048;
static_assert(kFusedRows % kRowBlock == 0, "fused panels must hold whole tiles");
/// Gram panels of the stored-Gram path are sized to stay in the last-level cache
/// between the BLAS product and the recursion that reads them (and to avoid
/// page-faulting a large buffer per call); the memory budget only lowers this.
constexpr int64_t kPanelBytes = int64_t(8) << 20;

/// Pairs of rows [p0, p1) of an n1 x n2 matrix (upper triangle when symmetric).
int64_t panel_pairs(int64_t p0, int64_t p1, int64_t n1, int64_t n2, bool symmetric) {
  const int64_t r = p1 - p0;
  return symmetric ? r * (n1 - p0) - r * (r - 1) / 2 : r * n2;
}

/// The per-point slots of a program (math::program_point) for x1 and, unless
/// symmetric, x2: slot k of point i at pts[k n + i], and each point's output log Q.
/// Refuses (std::invalid_argument) arrays beyond the memory budget and erf inputs
/// beyond float64's limits (program_act_point).
template <typename T>
void program_points(const FcArgs<T>& a, std::vector<int64_t>* off, std::vector<double>* pts1,
                    std::vector<double>* lq1, std::vector<double>* pts2, std::vector<double>* lq2) {
  const FcProgram& pr = *a.params.program;
  math::check_program(pr);
  off->assign(size_t(pr.nops), 0);
  const int64_t nslots = math::program_slots(pr, off->data());
  const int64_t n_all = a.n1 + (a.symmetric ? 0 : a.n2);
  const double bytes = 8.0 * double(nslots) * double(n_all);
  if (bytes > double(std::max<int64_t>(a.run.budget, int64_t(1) << 24)))
    throw std::invalid_argument("ntkx: this network's per-point arrays need " + std::to_string(int64_t(bytes)) +
                                " bytes (" + std::to_string(nslots) + " per point), beyond memory_budget; raise it");
  const int threads = a.run.threads > 0 ? a.run.threads : openmp_threads();
  auto fill = [&](const double* sq, const double* lsc, int64_t n, std::vector<double>* pts, std::vector<double>* lq) {
    pts->assign(size_t(nslots * n), 0.0);
    lq->assign(size_t(n), 0.0);
    std::string error;
#pragma omp parallel num_threads(threads) if (n * pr.nops > 4096)
    {
      std::vector<double> regs(size_t(pr.nreg));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        try {
          regs[0] = sq[i] > 0.0 ? std::log(sq[i]) - std::log(double(a.d)) + (lsc ? lsc[i] : 0.0)
                                : -std::numeric_limits<double>::infinity();
          (*lq)[size_t(i)] = math::program_point(pr, off->data(), regs.data(), pts->data() + i, n);
        } catch (const std::exception& e) {
#pragma omp critical(ntkx_program_points)
          if (error.empty()) error = e.what();
        }
      }
    }
    if (!error.empty()) throw std::invalid_argument(error);
  };
  fill(a.sq1, a.lsc1, a.n1, pts1, lq1);
  if (!a.symmetric) fill(a.sq2, a.lsc2, a.n2, pts2, lq2);
}

/// The table of a program whose response depends on the input angle alone, when
/// that holds and pays: bias-free DENSE / LAYER ops, ReLU-family or ReQU
/// activations, and per-point slots equal (to kSlotTol relative) at every nonzero
/// point (a SUM of branches of one homogeneity degree), so each pair's normalized
/// state evolves from its input angle as a reference point's does with itself at
/// that angle. Zero points' outputs are 0 through their scales. Returns false (the
/// ops are interpreted) otherwise, or when the table misses its check.
bool program_table(const FcProgram& pr, const int64_t* off, int64_t nslots, const double* sq1, const double* pts1,
                   int64_t n1, const double* sq2, const double* pts2, int64_t n2, int64_t pairs, AngleTable* table,
                   Poll* poll) {
  constexpr double kSlotTol = 4e-15;
  if (!AngleTable::pays(pairs, pr.nops)) return false;
  for (int64_t t = 0; t < pr.nops; ++t) {
    const ProgOp& op = pr.ops[t];
    if (op.kind == OpKind::kSum) continue;
    if (op.kind != OpKind::kAct && op.bias != 0.0) return false;
    if (op.kind != OpKind::kDense && op.act != Act::kABRelu && op.act != Act::kArcCos2) return false;
  }
  std::vector<double> ref;
  auto same = [&](const double* sq, const double* pts, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      if (!(sq[i] > 0.0)) continue;
      if (ref.empty()) {
        for (int64_t k = 0; k < nslots; ++k) ref.push_back(pts[k * n + i]);
        continue;
      }
      for (int64_t k = 0; k < nslots; ++k)
        if (!(std::fabs(pts[k * n + i] - ref[size_t(k)]) <= kSlotTol * std::max(1.0, std::fabs(ref[size_t(k)]))))
          return false;
    }
    return true;
  };
  if (!same(sq1, pts1, n1) || (pts2 != nullptr && !same(sq2, pts2, n2)) || ref.empty()) return false;
  const std::vector<math::ActConst> kc = program_consts(pr);
  std::vector<double> scratch(size_t(4 * kChunk * (pr.nreg + 1)), 0.0);
  std::vector<double*> reg(size_t(pr.nreg + 1));
  auto exact = [&](double t, double* r, double* u) {
    for (int64_t k = 0; k <= pr.nreg; ++k) reg[size_t(k)] = scratch.data() + 4 * kChunk * k;
    const double sh = std::sin(0.5 * t), ch = std::cos(0.5 * t);
    reg[0][0] = std::cos(t), reg[0][kChunk] = 2.0 * sh * sh, reg[0][2 * kChunk] = 2.0 * ch * ch;
    reg[0][3 * kChunk] = 0.0;
    program_ops(pr, off, kc.data(), ref.data(), 1, ref.data(), 1, 1, reg.data(), nullptr);
    *r = reg[size_t(pr.out)][0], *u = reg[size_t(pr.out)][3 * kChunk];
  };
  return table->build_with(exact, poll);
}

}  // namespace

template <typename T>
void fc_cpu(const FcArgs<T>& a, Interrupt* interrupt) {
  const FcParams& p = a.params;
  const int64_t n1 = a.n1, n2 = a.n2, layers = p.depth + 1, budget = a.run.budget;
  const bool sym = a.symmetric;
  if (n1 == 0 || n2 == 0) return;
  OffsetInterrupt pi_(interrupt);
  OffsetInterrupt* pi = interrupt ? &pi_ : nullptr;
  FcPanelArgs<T> pa;
  pa.params = p, pa.d = a.d, pa.ld1 = a.ld1, pa.ld2 = a.ld2, pa.ldo = a.ldo, pa.symmetric = sym;
  pa.threads = a.run.threads;
  // A panel: rows [p0, p1) against columns [c0, n2) (symmetric panels start on the diagonal).
  auto at = [&](int64_t p0, int64_t p1, int64_t c0) {
    pa.rows = p1 - p0, pa.cols = n2 - c0;
    pa.x1 = a.x1 + p0 * a.ld1, pa.x2 = a.x2 + c0 * a.ld2;
    pa.sq1 = a.sq1 + p0, pa.sq2 = a.sq2 + c0;
    pa.nngp = a.nngp ? a.nngp + p0 * a.ldo + c0 : nullptr;
    pa.ntk = a.ntk ? a.ntk + p0 * a.ldo + c0 : nullptr;
  };
  // Per-point layer arrays once per call when small against the budget; otherwise
  // (very deep nets) each panel computes them in layer blocks.
  const bool prog = p.program != nullptr;
  const bool whole = prog || 4 * 8 * layers * (n1 + (sym ? 0 : n2)) <= budget / 2;
  std::vector<double> pts1, lq1, pts2, lq2;
  std::vector<int64_t> off;
  AngleTable table;
  if (prog) {
    program_points(a, &off, &pts1, &lq1, &pts2, &lq2);
    pa.slot_off = off.data();
    Poll poll(pi);
    const int64_t pairs = sym ? n1 * (n1 + 1) / 2 : n1 * n2;
    const int64_t nslots = int64_t(pts1.size()) / n1;  // program_points' slots per point
    if (program_table(*p.program, off.data(), nslots, a.sq1, pts1.data(), n1, a.sq2, sym ? nullptr : pts2.data(), n2,
                      pairs, &table, &poll))
      pa.table = &table;
    if (poll.stop()) throw Interrupted();
  } else if (whole) {
    pts1.resize(4 * layers * n1), lq1.assign(n1, 0.0);
    PointArrays::fill_layers(p, a.sq1, a.lsc1, a.d, 0, layers, n1, pts1.data(), n1, lq1.data());
    if (!sym) {
      pts2.resize(4 * layers * n2), lq2.assign(n2, 0.0);
      PointArrays::fill_layers(p, a.sq2, a.lsc2, a.d, 0, layers, n2, pts2.data(), n2, lq2.data());
    }
  }
  const double* pt2 = sym ? pts1.data() : pts2.data();
  const double* q2 = sym ? lq1.data() : lq2.data();
  auto points = [&](int64_t p0, int64_t c0) {
    pa.pts1 = pts1.data() + p0, pa.ldp1 = n1, pa.logq1 = lq1.data() + p0;
    pa.pts2 = pt2 + c0, pa.ldp2 = sym ? n1 : n2, pa.logq2 = q2 + c0;
  };
  if (whole && a.blas.dgemm != nullptr) {
    // Fused path: each OpenMP thread computes its Gram tiles with single-threaded
    // BLAS and consumes them from cache; no Gram matrix is ever stored.
    pa.dgemm = a.blas.dgemm;
    pa.dsyrk = sym ? a.blas.dsyrk : nullptr;
    for (int64_t p0 = 0; p0 < n1; p0 += kFusedRows) {
      const int64_t p1 = std::min(n1, p0 + kFusedRows), c0 = sym ? p0 : 0;
      at(p0, p1, c0);
      points(p0, c0);
      fc_panel_cpu<T>(pa, pi);
      if (pi) pi->finished(panel_pairs(p0, p1, n1, n2, sym));
    }
    return;
  }
  if (a.gram == nullptr) throw std::invalid_argument("ntkx: fc_cpu needs a GramHook where the fused path does not run");
  const bool deep = !whole && layers > (int64_t(1) << 22) / (n1 + n2 + 1);
  // A panel holds its Gram block (reused between panels); very deep nets also keep
  // 4 float64 of recursion state per pair.
  const int64_t per_row = n2 * (8 + (deep ? 32 : 0));
  const int64_t rows =
      std::max<int64_t>(1, std::min(n1, std::min(budget, kPanelBytes) / std::max<int64_t>(per_row, 1)));
  std::vector<double> gram(rows * n2);
  for (int64_t p0 = 0; p0 < n1; p0 += rows) {
    const int64_t p1 = std::min(n1, p0 + rows), c0 = sym ? p0 : 0;
    at(p0, p1, c0);
    a.gram->panel(p0, p1, c0, gram.data(), pa.cols);
    pa.gram = gram.data(), pa.ldg = pa.cols;
    if (whole) {
      points(p0, c0);
    } else {
      pa.lsc1 = a.lsc1 ? a.lsc1 + p0 : nullptr;
      pa.lsc2 = a.lsc2 ? a.lsc2 + c0 : nullptr;
    }
    fc_panel_cpu<T>(pa, pi);
    if (pi) pi->finished(panel_pairs(p0, p1, n1, n2, sym));
  }
}

template void fc_cpu<float>(const FcArgs<float>&, Interrupt*);
template void fc_cpu<double>(const FcArgs<double>&, Interrupt*);

int openmp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace ntkx
