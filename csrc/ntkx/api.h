// The Python-free C++ API of ntkx: plain pointers, sizes and one params struct.
// bindings.cpp converts arrays, releases the GIL and calls these; nothing here
// knows about Python.
#pragma once

#include <cstdint>
#include <exception>

#include "ntkx/math/cntk.h"
#include "ntkx/math/fc.h"

namespace ntkx {

/// Asked between work items whether the caller wants the computation stopped
/// (the Python binding answers from PyErr_CheckSignals, i.e. Ctrl-C).
struct Interrupt {
  virtual ~Interrupt() = default;
  virtual bool requested() = 0;
  /// Work finished so far in this call (the CNTK: output pairs), told from the
  /// OpenMP master thread just before requested() is asked. Default: ignored.
  virtual void progress(int64_t /*done*/) {}
};

/// Thrown by a backend that stopped because Interrupt::requested() said so.
/// Outputs are then partially written.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "ntkx: computation interrupted"; }
};

/// Fortran BLAS dgemm (LP64), e.g. scipy.linalg.cython_blas's, called single-threaded.
using Dgemm = void (*)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*, double*, double*,
                       int*);
/// Fortran BLAS dsyrk (LP64), from the same BLAS as the Dgemm.
using Dsyrk = void (*)(char*, char*, int*, int*, double*, double*, int*, double*, double*, int*);

/// One row panel of an FC kernel matrix, given its Gram products (float64).
/// T is the output type (float or double); inputs, Gram and recursion are float64,
/// so float32 mode costs no accuracy beyond the final rounding.
template <typename T>
struct FcPanelArgs {
  FcParams params;
  int64_t rows = 0;            ///< panel rows (points of x1)
  int64_t cols = 0;            ///< panel columns (points of x2)
  int64_t d = 0;               ///< feature dimension
  const double* x1 = nullptr;  ///< [rows, ld1] inputs of the rows
  int64_t ld1 = 0;
  const double* x2 = nullptr;  ///< [cols, ld2] inputs of the columns
  int64_t ld2 = 0;
  const double* sq1 = nullptr; ///< [rows] squared norms |x1_i|^2
  const double* sq2 = nullptr; ///< [cols] squared norms |x2_j|^2
  /// Optional [rows] / [cols] log-scales (math::point_layer0): the true squared norm
  /// of a row is sq e^lsc when the caller divided it by a power of two; null: 0.
  /// Only read where the panel computes its own point arrays.
  const double* lsc1 = nullptr;
  const double* lsc2 = nullptr;
  const double* gram = nullptr;  ///< [rows, ldg] Gram products x1_i . x2_j
  int64_t ldg = 0;
  T* nngp = nullptr;           ///< [rows, ldo] NNGP output, or null
  T* ntk = nullptr;            ///< [rows, ldo] NTK output, or null
  int64_t ldo = 0;
  /// Optional per-point layer arrays for all depth + 1 layers (see PointArrays):
  /// entry (l, f, i) at pts1[(4 l + f) ldp1 + i]; with them, log Q_L of each point.
  /// When null, the panel computes them itself, in layer blocks of bounded memory.
  const double* pts1 = nullptr;
  int64_t ldp1 = 0;
  const double* logq1 = nullptr;  ///< [rows]
  const double* pts2 = nullptr;
  int64_t ldp2 = 0;
  const double* logq2 = nullptr;  ///< [cols]
  /// Rows and columns start at the same point (a diagonal panel of a symmetric
  /// Gram): only j >= i is computed, and (j, i) is then copied from (i, j)
  /// (outputs then need `cols` rows).
  bool symmetric = false;
  /// OpenMP threads (<= 0: the OpenMP default).
  int threads = 0;
  /// When set, `gram` is ignored: each thread computes its Gram tiles with this
  /// BLAS dgemm (which must then run single-threaded) right before using them.
  /// Needs the per-point arrays (pts1, pts2).
  Dgemm dgemm = nullptr;
  /// Optional, with dgemm on a symmetric panel: tiles on the diagonal compute only
  /// their upper triangle, by this dsyrk.
  Dsyrk dsyrk = nullptr;
};

/// CPU (OpenMP) backend: fills the panel's outputs. Throws Interrupted.
template <typename T>
void fc_panel_cpu(const FcPanelArgs<T>& args, Interrupt* interrupt);

/// Per-point layer arrays of all depth + 1 layers for n points with squared
/// norms sq of d-dimensional inputs and optional log-scales lsc (null: 0; see
/// math::point_layer0): out [depth + 1, 4, n], logq [n].
void fc_points(const FcParams& p, const double* sq, const double* lsc, int64_t n, int64_t d, double* out,
               double* logq);

/// A whole FC kernel matrix on a CUDA device (or its CPU emulator): the Gram
/// products are computed inside the fused kernel, one row panel per launch, and
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

/// A CNTK kernel matrix (math/cntk.h) of images x1 against images x2, both
/// [n, P, Q, C] C-contiguous float64 (NHWC). T is the output type; everything
/// before the final rounding is float64.
template <typename T>
struct CntkArgs {
  CntkParams params;
  int64_t n1 = 0, n2 = 0;
  const double* x1 = nullptr;  ///< [n1, P, Q, C] (ignored when symmetric)
  const double* x2 = nullptr;  ///< [n2, P, Q, C]
  T* nngp = nullptr;           ///< [rows, ldo] output, or null
  T* ntk = nullptr;            ///< [rows, ldo] output, or null
  int64_t ldo = 0;
  /// The rows are the first n1 images of x2: only j >= i is computed and (j, i) is
  /// written from (i, j), so the outputs need n2 rows.
  bool symmetric = false;
  int threads = 0;  ///< OpenMP threads (<= 0: the OpenMP default)
};

/// Throws std::invalid_argument unless p describes a network the backends run.
void check_cntk_params(const CntkParams& p);

/// Diagonal maps of n images x [n, P, Q, C] for every activation stage:
/// out [n, n_act, n_fields, P Q] (math/cntk.h MapField order).
void cntk_maps(const CntkParams& p, const double* x, int64_t n, double* out, int threads);

/// CPU (OpenMP) backend of the CNTK. Throws Interrupted.
template <typename T>
void cntk_cpu(const CntkArgs<T>& args, Interrupt* interrupt);

/// The CNTK CUDA kernel's phase bodies run on the CPU with the kernel's geometry
/// (DESIGN.md section 3); `reverse` runs threads in reverse order within phases.
template <typename T>
void cntk_emulate_cuda(const CntkArgs<T>& args, bool reverse);

/// The real CUDA launch of the CNTK kernel (throws when not built with CUDA or
/// no device is usable).
template <typename T>
void cntk_cuda(const CntkArgs<T>& args, int device);

/// Whether this build contains the CUDA backend.
bool built_with_cuda();
/// Number of usable CUDA devices (0 without a driver or device).
int cuda_device_count();
/// OpenMP threads available (1 without OpenMP).
int openmp_threads();

}  // namespace ntkx
