// CUDA launcher of the fused FC kernel. The kernel body is FcTile's phase bodies
// (fc_tile.h), exercised on the CPU by the emulator in tests; only this file's
// __global__ wrapper and memory transfers are not run without a GPU.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "ntkx/backends.h"
#include "ntkx/cuda/device.h"
#include "ntkx/cuda/fc_host.h"
#include "ntkx/cuda/fc_tile.h"
#include "ntkx/host/dispatch.h"

namespace ntkx {
namespace {

using cuda::Buf;
using cuda::check;

template <class Tile>
__global__ void fc_kernel(typename Tile::Args args) {
  __shared__ typename Tile::Shared sh;
  typename Tile::Thread th;
  const cuda::Idx x{int(blockIdx.x), int(blockIdx.y), int(threadIdx.x), int(threadIdx.y)};
  Tile::init(x, th, args);
  const int64_t ns = Tile::slices(args);
  for (int64_t s = 0; s < ns; ++s) {
    Tile::load(x, s, sh, th, args);
    __syncthreads();
    Tile::step(x, s, sh, th, args);
    __syncthreads();
  }
  Tile::finish(x, sh, th, args);
}

template <typename T, Act K>
void launch(const FcFullArgs<T>& a, int device, Interrupt* interrupt) {
  check(cudaSetDevice(device), "cudaSetDevice");
  cuda::FcHostData h = cuda::prepare(a);
  const size_t n1 = a.n1, n2 = a.n2, d = a.d;
  Buf<T> x1(a.x1, n1 * d), x2(a.x2, n2 * d);
  Buf<double> sq1(h.sq1.data(), n1), sq2(h.sq2.data(), n2), pt1(h.pt1.data(), h.pt1.size()),
      pt2(h.pt2.data(), h.pt2.size()), lq1(h.lq1.data(), n1), lq2(h.lq2.data(), n2);
  // One panel's outputs on the device (a.budget bounds them), copied into the
  // caller's rows (any row stride) after each launch.
  const size_t panel = size_t(cuda::panel_rows<T, K>(a)) * n2;
  Buf<T> nngp(a.nngp ? panel : 0), ntk(a.ntk ? panel : 0);
  using Tile = cuda::FcTile<T, K>;
  cuda::fc_panels<T, K>(a, interrupt, [&](const cuda::FcPanel& pn) {
    const int64_t cols = a.n2 - pn.c0;
    auto args = cuda::tile_args<T, K>(a, pn, x1.p, x2.p, sq1.p, sq2.p, pt1.p, pt2.p, lq1.p, lq2.p,
                                      a.nngp ? nngp.p : nullptr, a.ntk ? ntk.p : nullptr, cols);
    int64_t gx, gy;
    cuda::grid_of<T, K>(a, pn, &gx, &gy);
    fc_kernel<Tile><<<dim3(unsigned(gx), unsigned(gy)), dim3(Tile::kB, Tile::kB)>>>(args);
    check(cudaGetLastError(), "kernel launch");
    check(cudaDeviceSynchronize(), "kernel run");
    // Entries below the diagonal of a symmetric panel are not computed; the
    // mirror after the last panel overwrites what this copies there.
    const size_t pitch = a.ldo * sizeof(T), width = cols * sizeof(T);
    const int64_t at = pn.r0 * a.ldo + pn.c0;
    if (a.nngp)
      check(cudaMemcpy2D(a.nngp + at, pitch, nngp.p, width, width, pn.rows, cudaMemcpyDeviceToHost), "copy nngp");
    if (a.ntk)
      check(cudaMemcpy2D(a.ntk + at, pitch, ntk.p, width, width, pn.rows, cudaMemcpyDeviceToHost), "copy ntk");
  });
}

}  // namespace

template <typename T>
void fc_cuda(const FcFullArgs<T>& a, int device, Interrupt* interrupt) {
  if (a.n1 == 0 || a.n2 == 0) return;
  with_act(a.params.act, [&](auto k) { launch<T, decltype(k)::value>(a, device, interrupt); });
}

template void fc_cuda<float>(const FcFullArgs<float>&, int, Interrupt*);
template void fc_cuda<double>(const FcFullArgs<double>&, int, Interrupt*);

bool built_with_cuda() { return true; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace ntkx
