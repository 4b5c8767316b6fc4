// CPU emulator of the CUDA kernels (DESIGN.md section 3): runs each block's
// phase bodies with the real grid and block geometry, every thread's phase
// before any thread's next phase, exactly as __syncthreads() orders them.
#include <vector>

#include "ntkx/backends.h"
#include "ntkx/cuda/fc_host.h"
#include "ntkx/cuda/fc_tile.h"
#include "ntkx/host/dispatch.h"

namespace ntkx {
namespace {

/// Runs Tile (load/step per slice, then finish) over a gx x gy grid of
/// kB x kB blocks; `reverse` visits threads in reverse order within each phase.
template <class Tile>
void run_grid(int64_t gx, int64_t gy, const typename Tile::Args& args, bool reverse) {
  constexpr int nt = Tile::kB * Tile::kB;
  const int64_t ns = Tile::slices(args);
  std::vector<typename Tile::Thread> th(nt);
  auto idx = [&](int64_t bx, int64_t by, int t) {
    const int u = reverse ? nt - 1 - t : t;
    return cuda::Idx{int(bx), int(by), u % Tile::kB, u / Tile::kB};
  };
  auto slot = [&](int t) { return reverse ? nt - 1 - t : t; };
  for (int64_t by = 0; by < gy; ++by)
    for (int64_t bx = 0; bx < gx; ++bx) {
      typename Tile::Shared sh{};
      for (int t = 0; t < nt; ++t) Tile::init(idx(bx, by, t), th[slot(t)], args);
      for (int64_t s = 0; s < ns; ++s) {
        for (int t = 0; t < nt; ++t) Tile::load(idx(bx, by, t), s, sh, th[slot(t)], args);
        for (int t = 0; t < nt; ++t) Tile::step(idx(bx, by, t), s, sh, th[slot(t)], args);
      }
      for (int t = 0; t < nt; ++t) Tile::finish(idx(bx, by, t), sh, th[slot(t)], args);
    }
}

template <typename T, Act K>
void emulate(const FcFullArgs<T>& a, bool reverse, Interrupt* interrupt) {
  cuda::FcHostData h = cuda::prepare(a);
  cuda::fc_panels<T, K>(a, interrupt, [&](const cuda::FcPanel& pn) {
    const int64_t at = pn.r0 * a.ldo + pn.c0;
    auto args = cuda::tile_args<T, K>(a, pn, a.x1, a.x2, h.sq1.data(), h.sq2.data(), h.pt1.data(), h.pt2.data(),
                                      h.lq1.data(), h.lq2.data(), a.nngp ? a.nngp + at : nullptr,
                                      a.ntk ? a.ntk + at : nullptr, a.ldo);
    int64_t gx, gy;
    cuda::grid_of<T, K>(a, pn, &gx, &gy);
    run_grid<cuda::FcTile<T, K>>(gx, gy, args, reverse);
  });
}

}  // namespace

template <typename T>
void fc_emulate_cuda(const FcFullArgs<T>& a, bool reverse, Interrupt* interrupt) {
  if (a.n1 == 0 || a.n2 == 0) return;
  with_act(a.params.act, [&](auto k) { emulate<T, decltype(k)::value>(a, reverse, interrupt); });
}

template void fc_emulate_cuda<float>(const FcFullArgs<float>&, bool, Interrupt*);
template void fc_emulate_cuda<double>(const FcFullArgs<double>&, bool, Interrupt*);

}  // namespace ntkx
