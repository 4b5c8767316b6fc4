// Stands in for fc.cu when the build has no CUDA compiler (or NTKX_CUDA=OFF).
#include <stdexcept>

#include "ntkx/backends.h"

namespace ntkx {

template <typename T>
void fc_cuda(const FcFullArgs<T>&, int, Interrupt*) {
  throw std::runtime_error("ntkx was built without CUDA (no CUDA compiler found, or NTKX_CUDA=OFF)");
}

template void fc_cuda<float>(const FcFullArgs<float>&, int, Interrupt*);
template void fc_cuda<double>(const FcFullArgs<double>&, int, Interrupt*);

template <typename T>
void cntk_cuda(const CntkArgs<T>&, int) {
  throw std::runtime_error("ntkx was built without CUDA (no CUDA compiler found, or NTKX_CUDA=OFF)");
}

template void cntk_cuda<float>(const CntkArgs<float>&, int);
template void cntk_cuda<double>(const CntkArgs<double>&, int);

bool built_with_cuda() { return false; }
int cuda_device_count() { return 0; }

}  // namespace ntkx
