// CUDA runtime helpers of the launchers (fc.cu, cntk.cu): error checks and a
// device buffer. Needs nvcc (cuda_runtime.h).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace ntkx {
namespace cuda {

/// Throws std::runtime_error naming `what` unless e is cudaSuccess.
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("ntkx CUDA: ") + what + ": " + cudaGetErrorString(e));
}

/// Device buffer of n values (optionally copied from host), freed on scope exit.
template <typename V>
struct Buf {
  V* p = nullptr;
  explicit Buf(size_t n) { check(cudaMalloc(&p, (n ? n : 1) * sizeof(V)), "cudaMalloc"); }
  Buf(const V* host, size_t n) : Buf(n) {
    if (n) check(cudaMemcpy(p, host, n * sizeof(V), cudaMemcpyHostToDevice), "copy to device");
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { cudaFree(p); }
};

}  // namespace cuda
}  // namespace ntkx
