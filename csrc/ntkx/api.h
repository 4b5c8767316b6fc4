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

/// The BLAS routines the fused OpenMP path calls from its threads (each call
/// single-threaded: the caller holds the library to one thread for the call).
struct Blas {
  Dgemm dgemm = nullptr;  ///< null: the fused path is off (panels get their Gram from GramHook)
  Dsyrk dsyrk = nullptr;  ///< optional: the diagonal tiles of a symmetric matrix
};

/// Which implementation runs a kernel.
enum class Backend : int { kCpu = 0, kEmulate = 1, kCuda = 2 };

/// How a kernel runs: the same options for every kernel and backend.
struct RunOptions {
  Backend backend = Backend::kCpu;
  int device = 0;       ///< CUDA device ordinal
  int threads = 0;      ///< OpenMP threads (<= 0: the OpenMP default)
  /// Bytes of working memory besides inputs and outputs: on the CPU the Gram
  /// panel and per-point arrays, on CUDA the row panel of outputs on the device
  /// (<= 0 there: one panel).
  int64_t budget = 0;
  bool reverse = false; ///< emulator only: run each phase's threads in reverse order (exposes races)
};

/// Gram products X1[r0:r1] . X2[c0:]^T of the OpenMP path that stores a panel's
/// Gram (nets too deep for whole-depth per-point arrays in the budget): written
/// row-major into out (row stride ldg) by the host's BLAS (the Python binding:
/// numpy's matmul, multi-threaded, as before the driver moved to C++).
struct GramHook {
  virtual ~GramHook() = default;
  /// out holds r1 - r0 rows of ldg = n2 - c0 entries (contiguous).
  virtual void panel(int64_t r0, int64_t r1, int64_t c0, double* out, int64_t ldg) = 0;
};

/// A whole FC kernel matrix, NNGP and/or NTK, of x1 against x2 (DESIGN.md
/// section 3). T is the output type. On the CPU the inputs, Gram and recursion
/// are float64 (float32 costs only the final rounding); CUDA reads the inputs
/// as T and accumulates the Gram in float64.
template <typename T>
struct FcArgs {
  FcParams params;
  int64_t n1 = 0, n2 = 0, d = 0;
  const double* x1 = nullptr;  ///< [n1, ld1] (rows with unit stride)
  int64_t ld1 = 0;
  const double* x2 = nullptr;  ///< [n2, ld2]; the same rows as x1 when symmetric
  int64_t ld2 = 0;
  /// [n1] / [n2] squared norms |x_i|^2 (CPU; the caller's summation order is kept).
  const double* sq1 = nullptr;
  const double* sq2 = nullptr;
  /// Optional [n1] / [n2] log-scales (math::point_layer0): the true squared norm
  /// of a row is sq e^lsc when the caller divided it by a power of two; null: 0.
  const double* lsc1 = nullptr;
  const double* lsc2 = nullptr;
  T* nngp = nullptr;  ///< [n1, ldo] rows of n2 entries, or null
  T* ntk = nullptr;   ///< [n1, ldo] rows of n2 entries, or null
  int64_t ldo = 0;
  /// x2 is x1: the upper triangle is computed and mirrored (exactly symmetric).
  bool symmetric = false;
  RunOptions run;
  Blas blas;                   ///< CPU: the fused path's BLAS
  GramHook* gram = nullptr;    ///< CPU: panel Grams where the fused path does not fit
};

/// Fills args' outputs on args.run.backend. `interrupt` (may be null) is told the
/// pairs done (upper triangle for symmetric calls) after each row panel and asked
/// whether to stop; Interrupted is then thrown and the outputs are partial.
template <typename T>
void fc(const FcArgs<T>& args, Interrupt* interrupt);

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

/// Fills args' outputs on run.backend (run.threads overrides args.threads; the
/// CPU backend tells `interrupt` the pairs done and may throw Interrupted).
template <typename T>
void cntk(const CntkArgs<T>& args, const RunOptions& run, Interrupt* interrupt);

/// Whether this build contains the CUDA backend.
bool built_with_cuda();
/// Number of usable CUDA devices (0 without a driver or device).
int cuda_device_count();
/// OpenMP threads available (1 without OpenMP).
int openmp_threads();

}  // namespace ntkx
