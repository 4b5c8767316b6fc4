// CUDA launcher of the CNTK kernel. The kernel body is CntkTile's phase bodies
// (cntk_tile.h), exercised on the CPU by the emulator in tests; only this file's
// two __global__ wrappers and the memory transfers are not run without a GPU.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "ntkx/backends.h"
#include "ntkx/cuda/cntk_host.h"
#include "ntkx/cuda/cntk_tile.h"
#include "ntkx/cuda/device.h"
#include "ntkx/host/dispatch.h"

namespace ntkx {
namespace {

using cuda::Buf;
using cuda::check;

template <class Tile>
__global__ void __launch_bounds__(Tile::kThreads) cntk_kernel(typename Tile::Args args) {
  __shared__ typename Tile::Shared sh;
  typename Tile::Thread th;
  const cuda::CIdx x{int(blockIdx.x), int(blockIdx.y), int(blockIdx.z), int(threadIdx.x)};
  Tile::init(x, th, args);
  const int np = Tile::phases(args);
  const int64_t s1 = Tile::slice_end(args, x.bx);
  for (int64_t s = Tile::slice_begin(args, x.bx); s < s1; ++s)
    for (int k = 0; k < np; ++k) {
      Tile::phase(x, s, k, sh, th, args);
      __syncthreads();
    }
  Tile::finish1(x, sh, th, args);
  __syncthreads();
  Tile::finish2(x, sh, th, args);
}

template <typename T>
__global__ void cntk_reduce(CntkParams p, const double* part, int64_t groups, int64_t rows, int64_t cols,
                            int64_t row0, int64_t col0, bool upper, bool want_ntk, T* nngp, T* ntk) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= rows * cols) return;
  const int64_t i = e / cols, j = e % cols;
  if (upper && col0 + j < row0 + i) return;
  cuda::reduce_pair<T>(p, part, groups, i, j, cols, want_ntk, nngp, ntk, cols);
}

template <typename T, Act K>
void launch(const CntkArgs<T>& a, int device) {
  using Tile = cuda::CntkTile<K>;
  check(cudaSetDevice(device), "cudaSetDevice");
  cuda::CntkHostData h = cuda::cntk_prepare<T, K>(a);
  const CntkParams& p = a.params;
  const size_t img = size_t(p.P) * p.Q * p.C;
  Buf<double> y(a.x2, a.n2 * img), my(h.my.data(), h.my.size());
  Buf<double> x(a.symmetric ? nullptr : a.x1, a.symmetric ? 0 : a.n1 * img);
  Buf<double> mx(a.symmetric ? nullptr : h.mx.data(), a.symmetric ? 0 : h.mx.size());
  const size_t tile = size_t(cuda::kPairTile) * cuda::kPairTile;
  Buf<double> part(tile * h.groups * 2);
  Buf<T> on(a.nngp ? tile : 0), ot(a.ntk ? tile : 0);
  cuda::cntk_tiles(a, [&](int64_t r0, int64_t c0, int64_t rows, int64_t cols, bool upper) {
    typename Tile::Args t;
    t.p = p, t.k = math::cntk_act_const(p);
    t.n1 = rows, t.n2 = cols, t.row0 = r0, t.col0 = c0;
    t.x = a.symmetric ? y.p : x.p, t.y = y.p, t.mx = a.symmetric ? my.p : mx.p, t.my = my.p;
    t.part = part.p, t.groups = h.groups, t.want_ntk = a.ntk != nullptr, t.upper = upper;
    cntk_kernel<Tile><<<dim3(unsigned(h.groups), unsigned(cols), unsigned(rows)), Tile::kThreads>>>(t);
    check(cudaGetLastError(), "kernel launch");
    const int64_t n = rows * cols;
    cntk_reduce<T><<<unsigned((n + 255) / 256), 256>>>(p, part.p, h.groups, rows, cols, r0, c0, upper,
                                                        t.want_ntk, a.nngp ? on.p : nullptr,
                                                        a.ntk ? ot.p : nullptr);
    check(cudaGetLastError(), "reduce launch");
    check(cudaDeviceSynchronize(), "kernel run");
    // Pairs below the diagonal of a diagonal tile are skipped here and mirrored later.
    if (a.nngp)
      check(cudaMemcpy2D(a.nngp + r0 * a.ldo + c0, a.ldo * sizeof(T), on.p, cols * sizeof(T), cols * sizeof(T),
                         rows, cudaMemcpyDeviceToHost),
            "copy nngp");
    if (a.ntk)
      check(cudaMemcpy2D(a.ntk + r0 * a.ldo + c0, a.ldo * sizeof(T), ot.p, cols * sizeof(T), cols * sizeof(T),
                         rows, cudaMemcpyDeviceToHost),
            "copy ntk");
  });
}

}  // namespace

template <typename T>
void cntk_cuda(const CntkArgs<T>& a, int device) {
  if (a.n1 == 0 || a.n2 == 0) return;
  with_cntk_act(a.params.act, [&](auto k) { launch<T, decltype(k)::value>(a, device); });
}

template void cntk_cuda<float>(const CntkArgs<float>&, int);
template void cntk_cuda<double>(const CntkArgs<double>&, int);

}  // namespace ntkx
