// What the pybind11 bindings (bindings.cpp) share: the translation between Python
// objects and the C++ API of ntkx/api.h (output arrays, Ctrl-C and progress, the
// GIL, BLAS capsules, dtype dispatch). Included by bindings.cpp only.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "ntkx/api.h"
#include "ntkx/host/cntk_params.h"

namespace ntkx {
namespace py_convert {

namespace py = pybind11;

/// Ctrl-C and progress: the OpenMP master thread briefly takes the GIL and asks
/// Python, and tells `callback` (None, or f(done)) how much work is done. An
/// exception from the callback stops the computation and is raised afterwards.
struct PyInterrupt : ntkx::Interrupt {
  py::object callback;
  bool failed = false;
  explicit PyInterrupt(py::object cb = py::none()) : callback(std::move(cb)) {}
  bool requested() override {
    py::gil_scoped_acquire gil;
    return failed || PyErr_CheckSignals() != 0;
  }
  void progress(int64_t done) override {
    if (failed || callback.is_none()) return;
    py::gil_scoped_acquire gil;
    try {
      callback(done);
    } catch (py::error_already_set& e) {
      e.restore();
      failed = true;
    }
  }
};

constexpr auto need = ntkx::host::need_arg;

/// Leading dimension (in elements) of a 2-D array with unit inner stride.
inline int64_t lead(const py::array& a, const char* name) {
  need(a.ndim() == 2, std::string(name) + " must be 2-D");
  need(a.strides(1) == a.itemsize() || a.shape(1) <= 1, std::string(name) + " needs unit column stride");
  return a.strides(0) / a.itemsize();
}

/// The nngp / ntk outputs (each None or a writable 2-D array of T with unit column
/// stride, both with one row stride, at least rows x cols): their data pointers
/// and row stride. `what` names the caller in errors.
template <typename T>
void out_pair(py::object nngp, py::object ntk, int64_t rows, int64_t cols, const char* what, T** pn, T** pt,
              int64_t* ldo) {
  const std::string w(what);
  *ldo = -1;
  for (py::object* o : {&nngp, &ntk}) {
    if (o->is_none()) continue;
    py::array out = o->cast<py::array>();
    need(out.writeable(), w + ": output is read-only");
    need(py::dtype::of<T>().is(out.dtype()), w + ": nngp and ntk outputs need the same dtype");
    const int64_t ld = lead(out, "out");
    need(*ldo < 0 || ld == *ldo, w + ": nngp and ntk outputs need the same row stride");
    *ldo = ld;
    need(out.shape(0) >= rows && out.shape(1) >= cols, w + ": output too small");
    *(o == &nngp ? pn : pt) = static_cast<T*>(out.mutable_data());
  }
  need(*ldo >= 0, w + ": no output requested");
}

/// Runs f() with the GIL released; a stop by `interrupt` (Interrupted) is raised as
/// the Python exception it left (a progress callback's) or else KeyboardInterrupt.
template <class F>
void run_released(F f) {
  bool stopped = false;
  {
    py::gil_scoped_release release;
    try {
      f();
    } catch (const ntkx::Interrupted&) {
      stopped = true;
    }
  }
  if (stopped) {
    if (PyErr_Occurred()) throw py::error_already_set();
    throw py::value_error("ntkx: interrupted");
  }
}

/// An optional float64 [depth + 1] array of per-layer stds (FcParams::w_layers), or null.
inline const double* layer_stds(py::object o, int64_t depth, const char* name) {
  if (o.is_none()) return nullptr;
  py::array a = o.cast<py::array>();
  need(py::dtype::of<double>().is(a.dtype()) && a.ndim() == 1 && a.shape(0) == depth + 1 &&
           (a.flags() & py::array::c_style),
       std::string("fc: ") + name + " must be a contiguous float64 array of depth + 1 entries");
  return static_cast<const double*>(a.data());
}

/// An optional [n] float64 array of per-row log-scales (math::point_layer0), or null.
inline const double* log_scales(py::object o, int64_t n, const char* what) {
  if (o.is_none()) return nullptr;
  py::array a = o.cast<py::array>();
  need(a.ndim() == 1 && a.shape(0) >= n && a.strides(0) == 8 && py::dtype::of<double>().is(a.dtype()),
       std::string(what) + ": log-scales must be float64 [n]");
  return static_cast<const double*>(a.data());
}

/// The BLAS of the fused FC path: scipy's (scipy.linalg.cython_blas), read once from
/// its capsules; none (fused path off) when scipy is missing.
inline ntkx::Blas scipy_blas() {
  static const ntkx::Blas blas = [] {
    ntkx::Blas b;
    try {
      py::dict capi = py::module_::import("scipy.linalg.cython_blas").attr("__pyx_capi__");
      auto fn = [&](const char* name) {
        PyObject* cap = py::object(capi[name]).ptr();
        return PyCapsule_GetPointer(cap, PyCapsule_GetName(cap));
      };
      b.dgemm = reinterpret_cast<ntkx::Dgemm>(fn("dgemm"));
      b.dsyrk = reinterpret_cast<ntkx::Dsyrk>(fn("dsyrk"));
    } catch (py::error_already_set&) {
      b = ntkx::Blas{};
    }
    return b;
  }();
  return blas;
}

/// Panel Grams from a Python callable gram(r0, r1, c0, out) that fills the float64
/// view `out` ([r1 - r0, n2 - c0]); an exception it raises stops the call and is raised.
struct PyGram : ntkx::GramHook {
  py::object fn;
  explicit PyGram(py::object f) : fn(std::move(f)) {}
  void panel(int64_t r0, int64_t r1, int64_t c0, double* out, int64_t ldg) override {
    py::gil_scoped_acquire gil;
    try {
      fn(r0, r1, c0, py::array_t<double>({r1 - r0, ldg}, out, py::none()));
    } catch (py::error_already_set& e) {
      e.restore();
      throw ntkx::Interrupted();
    }
  }
};

inline bool is_f32(const py::array& a) { return py::dtype::of<float>().is(a.dtype()); }

/// f(float{}) when `a` is float32, else f(double{}): the entry points' dtype dispatch.
template <class F>
void by_dtype(const py::array& a, F f) {
  if (is_f32(a))
    f(float{});
  else
    f(double{});
}

/// The dtype of the first requested output (None, None: an error naming `what`).
inline py::array first_out(py::object nngp, py::object ntk, py::object progress, const char* what) {
  py::object first = nngp.is_none() ? ntk : nngp;
  need(!first.is_none(), std::string(what) + ": no output requested");
  need(progress.is_none() || PyCallable_Check(progress.ptr()),
       std::string(what) + ": progress must be None or callable");
  return first.cast<py::array>();
}

}  // namespace py_convert
}  // namespace ntkx
