// The mirror of a symmetric kernel matrix computed as its upper triangle, shared
// by the CUDA drivers and their CPU emulators. Compiles with g++ alone.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ntkx {
namespace host {

/// out[j, i] = out[i, j] for i < rows and i < j < cols (row stride ldo), in
/// cache-sized blocks; a null out is skipped. Copies bits: values are unchanged.
template <typename T>
void mirror_upper(T* out, int64_t rows, int64_t cols, int64_t ldo) {
  if (!out) return;
  constexpr int64_t kBlk = 64;
  for (int64_t i0 = 0; i0 < rows; i0 += kBlk)
    for (int64_t j0 = i0; j0 < cols; j0 += kBlk) {
      const int64_t i1 = std::min(rows, i0 + kBlk), j1 = std::min(cols, j0 + kBlk);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < std::min(i1, j); ++i) out[j * ldo + i] = out[i * ldo + j];
    }
}

}  // namespace host
}  // namespace ntkx
