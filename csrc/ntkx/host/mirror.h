// The mirror of a symmetric kernel matrix computed as its upper triangle, shared
// by the CUDA drivers and their CPU emulators. Compiles with g++ alone.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ntkx {
namespace host {

/// out[j, i] = out[i, j] for i < rows and i < j < cols (row stride ldo), in
/// 64 x 64 tiles, column-tile-parallel over `threads` OpenMP threads when the matrix
/// is large (serial without OpenMP); a null out is skipped. Copies bits: values are
/// unchanged.
template <typename T>
void mirror_upper(T* out, int64_t rows, int64_t cols, int64_t ldo, int threads = 1) {
  if (!out) return;
  constexpr int64_t kTile = 64;
  const int64_t nb = (cols + kTile - 1) / kTile;
  (void)threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (rows * cols > 65536)
  for (int64_t jb = 0; jb < nb; ++jb) {
    const int64_t j0 = jb * kTile, j1 = std::min(cols, j0 + kTile);
    for (int64_t i0 = 0; i0 < std::min(rows, j1); i0 += kTile) {
      const int64_t i1 = std::min({rows, i0 + kTile, j1});
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < std::min(i1, j); ++i) out[j * ldo + i] = out[i * ldo + j];
    }
  }
}

/// out[j, i] = out[i, j] for rows i in [r0, r1) and columns j in [c0, c1), the
/// block below the diagonal that mirrors an upper one (row stride ldo); a null out
/// is skipped.
template <typename T>
void mirror_block(T* out, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t ldo) {
  if (!out) return;
  for (int64_t j = c0; j < c1; ++j)
    for (int64_t i = r0; i < r1; ++i) out[j * ldo + i] = out[i * ldo + j];
}

}  // namespace host
}  // namespace ntkx
