// The drivers of ntkx/api.h: one entry per kernel, which picks the backend and
// hands it its arguments. Compiles with g++ alone (the CUDA entry points are in
// cuda/*.cu, or cuda/stub.cpp without a CUDA compiler).
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "ntkx/backends.h"

namespace ntkx {
namespace {

/// x (n rows of d doubles, row stride ld) as T, contiguous: the CUDA kernel's
/// input layout. No copy when it already is; `buf` holds the copy otherwise.
template <typename T>
const T* contiguous(const double* x, int64_t n, int64_t d, int64_t ld, std::vector<T>* buf) {
  if (std::is_same<T, double>::value && ld == d) return reinterpret_cast<const T*>(x);
  buf->resize(n * d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < d; ++t) (*buf)[i * d + t] = T(x[i * ld + t]);
  return buf->data();
}

}  // namespace

template <typename T>
void fc(const FcArgs<T>& a, Interrupt* interrupt) {
  if (a.run.backend == Backend::kCpu) return fc_cpu<T>(a, interrupt);
  if (a.params.program != nullptr)
    throw std::invalid_argument("ntkx: general FC compositions (FC programs) run on the CPU backend only");
  FcFullArgs<T> f;
  f.params = a.params;
  f.n1 = a.n1, f.n2 = a.n2, f.d = a.d;
  std::vector<T> b1, b2;
  f.x1 = contiguous<T>(a.x1, a.n1, a.d, a.ld1, &b1);
  f.x2 = a.symmetric ? f.x1 : contiguous<T>(a.x2, a.n2, a.d, a.ld2, &b2);
  f.nngp = a.nngp, f.ntk = a.ntk, f.ldo = a.ldo;
  f.budget = a.run.budget;
  f.symmetric = a.symmetric;
  f.lsc1 = a.lsc1;
  f.lsc2 = a.symmetric ? a.lsc1 : a.lsc2;
  if (a.run.backend == Backend::kEmulate) return fc_emulate_cuda<T>(f, a.run.reverse, interrupt);
  if (a.run.backend == Backend::kCuda) return fc_cuda<T>(f, a.run.device, interrupt);
  throw std::invalid_argument("ntkx: unknown backend");
}

template void fc<float>(const FcArgs<float>&, Interrupt*);
template void fc<double>(const FcArgs<double>&, Interrupt*);

template <typename T>
void cntk(const CntkArgs<T>& args, const RunOptions& run, Interrupt* interrupt) {
  CntkArgs<T> a = args;
  a.threads = run.threads;
  switch (run.backend) {
    case Backend::kCpu: return cntk_cpu_tiles<T>(a, run.budget, interrupt);
    case Backend::kEmulate: return cntk_emulate_cuda<T>(a, run.reverse);
    case Backend::kCuda: return cntk_cuda<T>(a, run.device);
  }
  throw std::invalid_argument("ntkx: unknown backend");
}

template void cntk<float>(const CntkArgs<float>&, const RunOptions&, Interrupt*);
template void cntk<double>(const CntkArgs<double>&, const RunOptions&, Interrupt*);

}  // namespace ntkx
