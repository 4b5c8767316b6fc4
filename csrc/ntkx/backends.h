// The backends behind the drivers of ntkx/api.h (host/drivers.cpp): what each
// implementation of a kernel takes. Internal to the compiled core; callers use
// ntkx::fc and ntkx::cntk.
#pragma once

#include <cstdint>

#include "ntkx/api.h"

namespace ntkx {

/// OpenMP FC backend (cpu/fc.cpp): sizes row panels to run.budget, runs the fused
/// BLAS path where the per-point arrays of every layer fit, else panels whose Gram
/// comes from args.gram. Throws Interrupted.
template <typename T>
void fc_cpu(const FcArgs<T>& args, Interrupt* interrupt);

/// A whole FC kernel matrix for the fused CUDA kernel (or its CPU emulator): the
/// Gram products are computed inside the kernel, one row panel per launch, and
/// each panel is written straight into the outputs.
template <typename T>
struct FcFullArgs {
  FcParams params;
  int64_t n1 = 0, n2 = 0, d = 0;
  const T* x1 = nullptr;    ///< [n1, d] contiguous
  const T* x2 = nullptr;    ///< [n2, d] contiguous (== x1 when symmetric)
  T* nngp = nullptr;        ///< [n1, ldo] rows of n2 entries, or null
  T* ntk = nullptr;         ///< [n1, ldo] rows of n2 entries, or null
  int64_t ldo = 0;          ///< row stride of nngp / ntk (>= n2)
  /// Bytes of the outputs' row panel held per launch (on the device; the
  /// emulator writes in place but tiles alike); <= 0: one panel.
  int64_t budget = 0;
  bool symmetric = false;   ///< x2 is x1: compute the upper triangle, mirror it
  /// Optional [n1] / [n2] log-scales of the rows (math::point_layer0); null: 0.
  const double* lsc1 = nullptr;
  const double* lsc2 = nullptr;
};

/// Runs the fused FC CUDA kernel's phase bodies on the CPU with the kernel's grid
/// and block geometry (DESIGN.md section 3). `reverse` runs the threads of each
/// phase in reverse order, which exposes races on shared memory.
/// `interrupt` (may be null) is told the pairs done and asked to stop after each
/// panel (Interrupted is then thrown).
template <typename T>
void fc_emulate_cuda(const FcFullArgs<T>& args, bool reverse, Interrupt* interrupt);

/// The real CUDA launch (throws std::runtime_error when not built with CUDA or
/// when no device is usable); `interrupt` as for fc_emulate_cuda.
template <typename T>
void fc_cuda(const FcFullArgs<T>& args, int device, Interrupt* interrupt);

/// CPU (OpenMP) backend of the CNTK. Throws Interrupted.
template <typename T>
void cntk_cpu(const CntkArgs<T>& args, Interrupt* interrupt);

/// The OpenMP CNTK in tiles of rows x columns sized to `budget` bytes of lane sets
/// (<= 0: one cntk_cpu call, whose symmetric rows may be a prefix of x2); a
/// symmetric matrix computes its upper tiles and mirrors them.
/// `interrupt` is told the pairs done; throws Interrupted.
template <typename T>
void cntk_cpu_tiles(const CntkArgs<T>& args, int64_t budget, Interrupt* interrupt);

/// The CNTK CUDA kernel's phase bodies run on the CPU with the kernel's geometry
/// (DESIGN.md section 3); `reverse` runs threads in reverse order within phases.
template <typename T>
void cntk_emulate_cuda(const CntkArgs<T>& args, bool reverse);

/// The real CUDA launch of the CNTK kernel (throws when not built with CUDA or
/// no device is usable).
template <typename T>
void cntk_cuda(const CntkArgs<T>& args, int device);

}  // namespace ntkx
