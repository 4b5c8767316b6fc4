// Host-side driver shared by the CNTK CUDA launcher and its CPU emulator: the
// diagonal maps (computed by the OpenMP backend's code, so an identical pair sees
// the same maps bit for bit), and the walk over tiles of pairs whose partial sums
// fit a bounded buffer. Compiles with g++ alone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "ntkx/backends.h"
#include "ntkx/cuda/cntk_tile.h"
#include "ntkx/host/mirror.h"

namespace ntkx {
namespace cuda {

/// Pairs per tile side: the partial sums of a tile take kPairTile^2 * groups * 16 bytes.
constexpr int64_t kPairTile = 512;

struct CntkHostData {
  std::vector<double> mx, my;  // maps [n, n_act, n_fields, P Q]
  int64_t groups = 1;
};

template <typename T, Act K>
CntkHostData cntk_prepare(const CntkArgs<T>& a) {
  check_cntk_params(a.params);
  if (int64_t(a.params.P) * a.params.Q > CntkTile<K>::kMaxPQ)
    throw std::invalid_argument("ntkx: the CUDA CNTK kernel holds images of at most 1024 pixels (P * Q); "
                                "use device='cpu'");
  CntkHostData h;
  const CntkParams& p = a.params;
  const int64_t per = int64_t(p.n_act()) * p.n_fields() * p.P * p.Q;
  h.my.resize(a.n2 * per);
  cntk_maps(p, a.x2, a.n2, h.my.data(), 0);
  if (!a.symmetric) {
    h.mx.resize(a.n1 * per);
    cntk_maps(p, a.x1, a.n1, h.mx.data(), 0);
  }
  const int64_t ns = math::slice_count(p);
  h.groups = std::min<int64_t>(ns, CntkTile<K>::kGroups);
  return h;
}

/// Calls run(row0, col0, rows, cols, upper) for every tile of pairs a launch must
/// compute (upper-triangle tiles only when symmetric), then mirrors.
template <typename T, class Run>
void cntk_tiles(const CntkArgs<T>& a, Run run) {
  for (int64_t r0 = 0; r0 < a.n1; r0 += kPairTile)
    for (int64_t c0 = a.symmetric ? r0 : 0; c0 < a.n2; c0 += kPairTile)
      run(r0, c0, std::min(kPairTile, a.n1 - r0), std::min(kPairTile, a.n2 - c0), a.symmetric);
  if (!a.symmetric) return;
  host::mirror_upper(a.nngp, a.n1, a.n2, a.ldo);
  host::mirror_upper(a.ntk, a.n1, a.n2, a.ldo);
}

}  // namespace cuda
}  // namespace ntkx
