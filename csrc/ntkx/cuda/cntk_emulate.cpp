// CPU emulator of the CNTK CUDA kernel (DESIGN.md section 3): each block's phase
// bodies run with the real grid and block geometry, every thread's phase before
// any thread's next phase, exactly as __syncthreads() orders them; then the
// second-stage reduction, one pair at a time.
#include <memory>
#include <vector>

#include "ntkx/backends.h"
#include "ntkx/cuda/cntk_host.h"
#include "ntkx/cuda/cntk_tile.h"
#include "ntkx/host/dispatch.h"

namespace ntkx {
namespace {

template <typename T, Act K>
void emulate(const CntkArgs<T>& a, bool reverse) {
  using Tile = cuda::CntkTile<K>;
  constexpr int nt = Tile::kThreads;
  cuda::CntkHostData h = cuda::cntk_prepare<T, K>(a);
  const double* mx = a.symmetric ? h.my.data() : h.mx.data();
  const double* x = a.symmetric ? a.x2 : a.x1;
  std::vector<double> part;
  std::vector<typename Tile::Thread> th(nt);
  auto sh = std::make_unique<typename Tile::Shared>();
  cuda::cntk_tiles(a, [&](int64_t r0, int64_t c0, int64_t rows, int64_t cols, bool upper) {
    typename Tile::Args t;
    t.p = a.params, t.k = math::cntk_act_const(a.params);
    t.n1 = rows, t.n2 = cols, t.row0 = r0, t.col0 = c0;
    t.x = x, t.y = a.x2, t.mx = mx, t.my = h.my.data();
    part.assign(rows * cols * h.groups * 2, 0.0);
    t.part = part.data(), t.groups = h.groups, t.want_ntk = a.ntk != nullptr, t.upper = upper;
    const int np = Tile::phases(t);
    auto idx = [&](int64_t g, int64_t j, int64_t i, int u) {
      return cuda::CIdx{int(g), int(j), int(i), reverse ? nt - 1 - u : u};
    };
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t g = 0; g < h.groups; ++g) {
          for (int u = 0; u < nt; ++u) Tile::init(idx(g, j, i, u), th[u], t);
          for (int64_t s = Tile::slice_begin(t, g); s < Tile::slice_end(t, g); ++s)
            for (int k = 0; k < np; ++k)
              for (int u = 0; u < nt; ++u) Tile::phase(idx(g, j, i, u), s, k, *sh, th[u], t);
          for (int u = 0; u < nt; ++u) Tile::finish1(idx(g, j, i, u), *sh, th[u], t);
          for (int u = 0; u < nt; ++u) Tile::finish2(idx(g, j, i, u), *sh, th[u], t);
        }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        if (!(upper && c0 + j < r0 + i))
          cuda::reduce_pair<T>(a.params, part.data(), h.groups, i, j, cols, t.want_ntk,
                               a.nngp ? a.nngp + r0 * a.ldo + c0 : nullptr, a.ntk ? a.ntk + r0 * a.ldo + c0 : nullptr,
                               a.ldo);
  });
}

}  // namespace

template <typename T>
void cntk_emulate_cuda(const CntkArgs<T>& a, bool reverse) {
  if (a.n1 == 0 || a.n2 == 0) return;
  with_cntk_act(a.params.act, [&](auto k) { emulate<T, decltype(k)::value>(a, reverse); });
}

template void cntk_emulate_cuda<float>(const CntkArgs<float>&, bool);
template void cntk_emulate_cuda<double>(const CntkArgs<double>&, bool);

}  // namespace ntkx
