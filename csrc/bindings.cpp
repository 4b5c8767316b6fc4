// pybind11 bindings of ntkx._core: array checks, GIL release, dispatch on dtype.
// Validation of user input happens in Python (python/ntkx/_src/validate.py);
// these checks only guard the C++ API (ntkx/api.h) against a wrong internal call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "ntkx/api.h"
#include "ntkx/host/cntk_params.h"

namespace py = pybind11;
using ntkx::Act;
using ntkx::FcParams;

namespace {

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
int64_t lead(const py::array& a, const char* name) {
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

/// An optional [n] float64 array of per-row log-scales (math::point_layer0), or null.
const double* log_scales(py::object o, int64_t n, const char* what) {
  if (o.is_none()) return nullptr;
  py::array a = o.cast<py::array>();
  need(a.ndim() == 1 && a.shape(0) >= n && a.strides(0) == 8 && py::dtype::of<double>().is(a.dtype()),
       std::string(what) + ": log-scales must be float64 [n]");
  return static_cast<const double*>(a.data());
}

/// The BLAS of the fused FC path: scipy's (scipy.linalg.cython_blas), read once from
/// its capsules; none (fused path off) when scipy is missing.
ntkx::Blas scipy_blas() {
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

/// An FC kernel matrix (ntkx::fc) of float64 rows x1 against x2 (None: x1 itself).
template <typename T>
void fc_t(const FcParams& p, py::array x1, py::object x2o, py::array sq1, py::object sq2o, py::object nngp,
          py::object ntk, const ntkx::RunOptions& run, py::object lsc1, py::object lsc2, py::object gram,
          py::object progress) {
  const bool sym = x2o.is_none();
  py::array x2 = sym ? x1 : x2o.cast<py::array>(), sq2 = sym ? sq1 : sq2o.cast<py::array>();
  for (const py::array* x : {&x1, &x2, &sq1, &sq2})
    need(py::dtype::of<double>().is(x->dtype()), "fc: inputs and squared norms must be float64");
  need(x2.ndim() == 2 && x2.shape(1) == x1.shape(1), "fc: x2 needs x1's feature size");
  ntkx::FcArgs<T> a;
  a.params = p;
  a.n1 = x1.shape(0), a.n2 = x2.shape(0), a.d = x1.shape(1);
  a.x1 = static_cast<const double*>(x1.data()), a.ld1 = lead(x1, "x1");
  a.x2 = static_cast<const double*>(x2.data()), a.ld2 = lead(x2, "x2");
  need(sq1.ndim() == 1 && sq2.ndim() == 1 && sq1.shape(0) == a.n1 && sq2.shape(0) == a.n2 &&
           (sq1.flags() & sq2.flags() & py::array::c_style),
       "fc: squared norms must be contiguous, one per row");
  a.sq1 = static_cast<const double*>(sq1.data()), a.sq2 = static_cast<const double*>(sq2.data());
  a.lsc1 = log_scales(lsc1, a.n1, "fc");
  a.lsc2 = sym ? a.lsc1 : log_scales(lsc2, a.n2, "fc");
  out_pair<T>(nngp, ntk, a.n1, a.n2, "fc", &a.nngp, &a.ntk, &a.ldo);
  a.symmetric = sym;
  a.run = run;
  if (run.backend == ntkx::Backend::kCpu) a.blas = scipy_blas();
  PyGram hook(gram);
  if (!gram.is_none()) a.gram = &hook;
  PyInterrupt interrupt(progress);
  run_released([&] { ntkx::fc<T>(a, &interrupt); });
}

bool is_f32(const py::array& a) { return py::dtype::of<float>().is(a.dtype()); }

/// f(float{}) when `a` is float32, else f(double{}): the entry points' dtype dispatch.
template <class F>
void by_dtype(const py::array& a, F f) {
  if (is_f32(a))
    f(float{});
  else
    f(double{});
}

using DArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

/// One CNTK matrix (ntkx::cntk): nngp/ntk outputs (or None) of shape [rows, >= n2], written in place.
template <typename T>
void cntk_t(const ntkx::CntkParams& p, DArray x1, DArray x2, py::object nngp, py::object ntk, bool symmetric,
            const ntkx::RunOptions& run, py::object progress) {
  const int64_t img = int64_t(p.P) * p.Q * p.C;
  need(x2.ndim() == 4 && x2.shape(1) == p.P && x2.shape(2) == p.Q && x2.shape(3) == p.C,
       "cntk: x2 must be [n, P, Q, C]");
  need(x1.ndim() == 4 && x1.size() == x1.shape(0) * img, "cntk: x1 must be [n, P, Q, C]");
  ntkx::CntkArgs<T> a;
  a.params = p;
  a.n1 = x1.shape(0), a.n2 = x2.shape(0);
  need(!symmetric || a.n1 <= a.n2, "cntk: symmetric rows must be a prefix of x2");
  a.x1 = x1.data(), a.x2 = x2.data();
  a.symmetric = symmetric;
  out_pair<T>(nngp, ntk, symmetric ? a.n2 : a.n1, a.n2, "cntk", &a.nngp, &a.ntk, &a.ldo);
  PyInterrupt interrupt(progress);
  run_released([&] { ntkx::cntk<T>(a, run, &interrupt); });
}

/// The dtype of the first requested output (None, None: an error naming `what`).
py::array first_out(py::object nngp, py::object ntk, py::object progress, const char* what) {
  py::object first = nngp.is_none() ? ntk : nngp;
  need(!first.is_none(), std::string(what) + ": no output requested");
  need(progress.is_none() || PyCallable_Check(progress.ptr()),
       std::string(what) + ": progress must be None or callable");
  return first.cast<py::array>();
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ntkx compiled core: FC NNGP/NTK recursion (OpenMP) and the fused CUDA kernel with its CPU emulator.";

  py::enum_<Act>(m, "Act")
      .value("ABRelu", Act::kABRelu)
      .value("ArcCos0", Act::kArcCos0)
      .value("ArcCos2", Act::kArcCos2)
      .value("Erf", Act::kErf);

  py::class_<FcParams>(m, "FcParams", "Dense(w_std, b_std) -> [act -> Dense] x depth (mirrors ntkx::FcParams).")
      .def(py::init<>())
      .def_readwrite("depth", &FcParams::depth)
      .def_readwrite("w_std", &FcParams::w_std)
      .def_readwrite("b_std", &FcParams::b_std)
      .def_readwrite("act", &FcParams::act)
      .def_readwrite("a", &FcParams::a)
      .def_readwrite("b", &FcParams::b)
      .def_readwrite("c", &FcParams::c);

  py::enum_<ntkx::Backend>(m, "Backend")
      .value("cpu", ntkx::Backend::kCpu)
      .value("emulate", ntkx::Backend::kEmulate)
      .value("cuda", ntkx::Backend::kCuda);

  py::class_<ntkx::RunOptions>(m, "RunOptions", "How a kernel runs (mirrors ntkx::RunOptions).")
      .def(py::init([](ntkx::Backend backend, int device, int threads, int64_t budget, bool reverse) {
             return ntkx::RunOptions{backend, device, threads, budget, reverse};
           }),
           py::arg("backend") = ntkx::Backend::kCpu, py::arg("device") = 0, py::arg("threads") = 0,
           py::arg("budget") = 0, py::arg("reverse") = false)
      .def_readwrite("backend", &ntkx::RunOptions::backend)
      .def_readwrite("device", &ntkx::RunOptions::device)
      .def_readwrite("threads", &ntkx::RunOptions::threads)
      .def_readwrite("budget", &ntkx::RunOptions::budget)
      .def_readwrite("reverse", &ntkx::RunOptions::reverse);

  m.def(
      "fc",
      [](const FcParams& p, py::array x1, py::object x2, py::array sq1, py::object sq2, py::object nngp,
         py::object ntk, const ntkx::RunOptions& run, py::object lsc1, py::object lsc2, py::object gram,
         py::object progress) {
        by_dtype(first_out(nngp, ntk, progress, "fc"), [&](auto t) {
          fc_t<decltype(t)>(p, x1, x2, sq1, sq2, nngp, ntk, run, lsc1, lsc2, gram, progress);
        });
      },
      py::arg("params"), py::arg("x1"), py::arg("x2"), py::arg("sq1"), py::arg("sq2"), py::arg("nngp"),
      py::arg("ntk"), py::arg("run"), py::arg("lsc1") = py::none(), py::arg("lsc2") = py::none(),
      py::arg("gram") = py::none(), py::arg("progress") = py::none(),
      "Fill the FC outputs of float64 rows x1 against x2 (None: x1) on run.backend (ntkx::fc). On the CPU,\n"
      "gram(r0, r1, c0, out) fills the Gram panels where the fused BLAS path does not run; progress(pairs\n"
      "done so far), if given, after each row panel.");

  py::enum_<ntkx::Readout>(m, "Readout")
      .value("Vanilla", ntkx::Readout::kVanilla)
      .value("Gap", ntkx::Readout::kGap);

  py::class_<ntkx::CntkParams>(m, "CntkParams", "A conv stack, readout and Dense (mirrors ntkx::CntkParams).")
      .def(py::init(&ntkx::host::cntk_params), py::arg("P"), py::arg("Q"), py::arg("C"), py::arg("w_std"),
           py::arg("b_std"), py::arg("filt"), py::arg("final_act"), py::arg("act"), py::arg("a"), py::arg("b"),
           py::arg("c"), py::arg("readout"), py::arg("out_w_std"), py::arg("out_b_std"),
           py::arg("train_first") = true, py::arg("train_last") = true)
      .def_readonly("P", &ntkx::CntkParams::P)
      .def_readonly("Q", &ntkx::CntkParams::Q)
      .def_readonly("C", &ntkx::CntkParams::C)
      .def_readonly("n_conv", &ntkx::CntkParams::n_conv)
      .def_property_readonly("n_act", &ntkx::CntkParams::n_act)
      .def_property_readonly("n_fields", &ntkx::CntkParams::n_fields);

  m.def(
      "cntk",
      [](const ntkx::CntkParams& p, DArray x1, DArray x2, py::object nngp, py::object ntk, bool symmetric,
         const ntkx::RunOptions& run, py::object progress) {
        by_dtype(first_out(nngp, ntk, progress, "cntk"), [&](auto t) {
          cntk_t<decltype(t)>(p, x1, x2, nngp, ntk, symmetric, run, progress);
        });
      },
      py::arg("params"), py::arg("x1"), py::arg("x2"), py::arg("nngp"), py::arg("ntk"), py::arg("symmetric"),
      py::arg("run"), py::arg("progress") = py::none(),
      "Fill CNTK outputs of NHWC float64 images x1 against x2 on run.backend. 'cpu' calls progress(pairs\n"
      "done so far), if given, from its master thread at most every 50 ms; an exception it raises stops\n"
      "the computation and is raised.");

  m.def(
      "cntk_maps",
      [](const ntkx::CntkParams& p, DArray x) {
        need(x.ndim() == 4 && x.shape(1) == p.P && x.shape(2) == p.Q && x.shape(3) == p.C,
             "cntk_maps: x must be [n, P, Q, C]");
        const int64_t n = x.shape(0);
        py::array_t<double> out({n, int64_t(p.n_act()), int64_t(p.n_fields()), int64_t(p.P) * p.Q});
        {
          py::gil_scoped_release release;
          ntkx::cntk_maps(p, x.data(), n, out.mutable_data(), 0);
        }
        return out;
      },
      py::arg("params"), py::arg("x"), "Diagonal maps [n, n_act, n_fields, P Q] (q, sqrt V, erf gamma, erf V).");

  m.def("has_cuda", &ntkx::built_with_cuda, "Whether this build contains the CUDA backend.");
  m.def("cuda_device_count", &ntkx::cuda_device_count, "Usable CUDA devices (0 without driver or GPU).");
  m.def("openmp_threads", &ntkx::openmp_threads, "OpenMP threads (1 when built without OpenMP).");
#ifdef _OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
}
