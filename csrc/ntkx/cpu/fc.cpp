// OpenMP backend of the FC kernels: one call fills one row panel whose Gram
// products BLAS has already computed (DESIGN.md section 3: no hand-written GEMM).
// Work items are (row, chunk of kChunk columns); each runs all layers of its
// chunk with the state in four small arrays that stay in L1, the layer loop over
// the chunk written so that the compiler vectorizes it (no branches, no calls).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ntkx/api.h"
#include "ntkx/cpu/points.h"

namespace ntkx {
namespace {

constexpr int64_t kChunk = 256;
/// Per-point arrays per layer block are bounded by this many doubles (128 MB),
/// so depth 10^6 runs in bounded memory.
constexpr int64_t kPointBudget = int64_t(1) << 24;

/// Ctrl-C polling from the OpenMP master thread, at most every 50 ms.
class Poll {
 public:
  explicit Poll(Interrupt* it) : it_(it), last_(std::chrono::steady_clock::now()) {}
  bool stop() const { return stop_.load(std::memory_order_relaxed); }
  void check() {
    if (!it_ || stop()) return;
#ifdef _OPENMP
    if (omp_get_thread_num() != 0) return;
#endif
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(50)) return;
    last_ = now;
    if (it_->requested()) stop_.store(true, std::memory_order_relaxed);
  }

 private:
  Interrupt* it_;
  std::chrono::steady_clock::time_point last_;
  std::atomic<bool> stop_{false};
};

template <typename T, Act K>
void panel(const FcPanelArgs<T>& a, Interrupt* interrupt) {
  const FcParams& p = a.params;
  const math::ActConst k = math::act_const(p);
  const int64_t L = p.depth;
  const int64_t nchunk = (a.cols + kChunk - 1) / kChunk;
  const int64_t items = a.rows * nchunk;
  const int64_t block = std::max<int64_t>(1, kPointBudget / (4 * (a.rows + a.cols) + 1));
  const bool multi = L + 1 > block;
  // Recursion state of every pair survives between layer blocks only for very deep nets.
  std::vector<double> saved(multi ? 4 * a.rows * a.cols : 0);
  PointArrays pr(a.rows), pc(a.cols);
  Poll poll(interrupt);
  int threads = a.threads > 0 ? a.threads : openmp_threads();
  (void)threads;

  for (int64_t l0 = 0; l0 <= L; l0 += block) {
    const int64_t nl = std::min(block, L + 1 - l0);
    pr.compute(p, a.sq1, a.d, l0, nl);
    pc.compute(p, a.sq2, a.d, l0, nl);
    const bool last = l0 + nl > L;

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (items * (L + 1) > 4096)
    for (int64_t item = 0; item < items; ++item) {
      poll.check();
      if (poll.stop()) continue;
      const int64_t i = item / nchunk, j0 = (item % nchunk) * kChunk;
      const int64_t w = std::min(kChunk, a.cols - j0);
      if (a.symmetric && j0 + w <= i) continue;  // entirely below the diagonal
      double rho[kChunk], del[kChunk], eps[kChunk], tau[kChunk];
      int64_t t0 = 0;
      if (l0 == 0) {
        const math::PointLayer pi{pr.u[i], pr.v[i], 0.0, 0.0};
        for (int64_t jj = 0; jj < w; ++jj) {
          const int64_t j = j0 + jj;
          double c, omc, opc;
          math::input_cosine(double(a.gram[i * a.ldg + j]), a.sq1[i], a.sq2[j], a.x1 + i * a.ld1,
                             a.x2 + j * a.ld2, a.d, &c, &omc, &opc);
          math::PairState st;
          math::layer0(st, c, omc, opc, pi, math::PointLayer{pc.u[j], pc.v[j], 0.0, 0.0});
          rho[jj] = st.rho, del[jj] = st.delta, eps[jj] = st.eps, tau[jj] = st.tau;
        }
        t0 = 1;
      } else {
        const double* sv = saved.data() + 4 * (i * a.cols + j0);
        for (int64_t jj = 0; jj < w; ++jj)
          rho[jj] = sv[4 * jj], del[jj] = sv[4 * jj + 1], eps[jj] = sv[4 * jj + 2], tau[jj] = sv[4 * jj + 3];
      }
      for (int64_t t = t0; t < nl; ++t) {
        const double ui = pr.u[t * a.rows + i], vi = pr.v[t * a.rows + i];
        const double gi = pr.g[t * a.rows + i], si = pr.s[t * a.rows + i];
        const double* __restrict uj = pc.u.data() + t * a.cols + j0;
        const double* __restrict vj = pc.v.data() + t * a.cols + j0;
        const double* __restrict gj = pc.g.data() + t * a.cols + j0;
        const double* __restrict sj = pc.s.data() + t * a.cols + j0;
#pragma omp simd
        for (int64_t jj = 0; jj < w; ++jj) {
          math::PairState st{rho[jj], del[jj], eps[jj], tau[jj]};
          math::layer_step<K>(k, st, ui, vi, gi, si, uj[jj], vj[jj], gj[jj], sj[jj]);
          rho[jj] = st.rho, del[jj] = st.delta, eps[jj] = st.eps, tau[jj] = st.tau;
        }
      }
      if (!last) {
        double* sv = saved.data() + 4 * (i * a.cols + j0);
        for (int64_t jj = 0; jj < w; ++jj)
          sv[4 * jj] = rho[jj], sv[4 * jj + 1] = del[jj], sv[4 * jj + 2] = eps[jj], sv[4 * jj + 3] = tau[jj];
        continue;
      }
      for (int64_t jj = 0; jj < w; ++jj) {
        const int64_t j = j0 + jj;
        if (a.symmetric && j < i) continue;
        const double s = math::pair_scale(pr.logq[i], pc.logq[j]);
        if (a.nngp) {
          const T val = T(s * rho[jj]);
          a.nngp[i * a.ldo + j] = val;
          if (a.symmetric) a.nngp[j * a.ldo + i] = val;
        }
        if (a.ntk) {
          const T val = T(s * tau[jj]);
          a.ntk[i * a.ldo + j] = val;
          if (a.symmetric) a.ntk[j * a.ldo + i] = val;
        }
      }
    }
    if (poll.stop()) throw Interrupted();
  }
}

}  // namespace

template <typename T>
void fc_panel_cpu(const FcPanelArgs<T>& a, Interrupt* interrupt) {
  if (a.rows == 0 || a.cols == 0) return;
  switch (a.params.act) {
    case Act::kABRelu: return panel<T, Act::kABRelu>(a, interrupt);
    case Act::kArcCos0: return panel<T, Act::kArcCos0>(a, interrupt);
    case Act::kArcCos2: return panel<T, Act::kArcCos2>(a, interrupt);
    case Act::kErf: return panel<T, Act::kErf>(a, interrupt);
  }
}

template void fc_panel_cpu<float>(const FcPanelArgs<float>&, Interrupt*);
template void fc_panel_cpu<double>(const FcPanelArgs<double>&, Interrupt*);

int openmp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace ntkx
