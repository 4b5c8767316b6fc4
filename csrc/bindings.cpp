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

/// A [layers, 4, n] per-point array slice from ntkx._core.fc_points (n may be a view).
void points_arg(py::object pts, py::object logq, int64_t layers, int64_t n, const double** p, int64_t* ld,
                const double** lq) {
  if (pts.is_none()) return;
  py::array a = pts.cast<py::array>(), l = logq.cast<py::array>();
  need(a.ndim() == 3 && a.shape(0) == layers && a.shape(1) == 4 && a.shape(2) == n &&
           py::dtype::of<double>().is(a.dtype()) && a.strides(2) == 8 && a.strides(0) == 4 * a.strides(1),
       "fc_panel: point arrays must be float64 [depth + 1, 4, n] slices of fc_points output");
  need(l.ndim() == 1 && l.shape(0) == n && l.strides(0) == 8 && py::dtype::of<double>().is(l.dtype()),
       "fc_panel: logq must be float64 [n]");
  *p = static_cast<const double*>(a.data());
  *ld = a.strides(1) / 8;
  *lq = static_cast<const double*>(l.data());
}

/// An optional [n] float64 array of per-row log-scales (math::point_layer0), or null.
const double* log_scales(py::object o, int64_t n, const char* what) {
  if (o.is_none()) return nullptr;
  py::array a = o.cast<py::array>();
  need(a.ndim() == 1 && a.shape(0) >= n && a.strides(0) == 8 && py::dtype::of<double>().is(a.dtype()),
       std::string(what) + ": log-scales must be float64 [n]");
  return static_cast<const double*>(a.data());
}

template <typename T>
void fc_panel_t(const FcParams& p, py::array x1, py::array x2, py::array sq1, py::array sq2, py::array gram,
                py::object nngp, py::object ntk, int64_t rows, bool symmetric, int threads, py::object pts1,
                py::object logq1, py::object pts2, py::object logq2, py::object dgemm,
                py::object dsyrk, py::object lsc1, py::object lsc2) {
  ntkx::FcPanelArgs<T> a;
  a.params = p;
  a.rows = rows;
  a.cols = x2.shape(0);
  a.d = x1.shape(1);
  if (!dgemm.is_none()) {
    // A PyCapsule holding a Fortran dgemm (scipy.linalg.cython_blas.__pyx_capi__['dgemm']).
    PyObject* cap = dgemm.ptr();
    need(PyCapsule_CheckExact(cap), "fc_panel: dgemm must be a PyCapsule");
    a.dgemm = reinterpret_cast<ntkx::Dgemm>(PyCapsule_GetPointer(cap, PyCapsule_GetName(cap)));
    need(a.dgemm != nullptr, "fc_panel: empty dgemm capsule");
    need(!pts1.is_none(), "fc_panel: the fused dgemm path needs point arrays");
    if (!dsyrk.is_none()) {
      // scipy.linalg.cython_blas.__pyx_capi__['dsyrk'], used for the diagonal tiles.
      PyObject* sc = dsyrk.ptr();
      need(PyCapsule_CheckExact(sc), "fc_panel: dsyrk must be a PyCapsule");
      a.dsyrk = reinterpret_cast<ntkx::Dsyrk>(PyCapsule_GetPointer(sc, PyCapsule_GetName(sc)));
      need(a.dsyrk != nullptr, "fc_panel: empty dsyrk capsule");
    }
  }
  need(x1.shape(0) >= rows && x2.shape(1) == a.d &&
           (a.dgemm != nullptr || (gram.shape(0) >= rows && gram.shape(1) == a.cols)),
       "fc_panel: inconsistent shapes");
  need(sq1.ndim() == 1 && sq2.ndim() == 1 && sq1.shape(0) >= rows && sq2.shape(0) == a.cols &&
           py::dtype::of<double>().is(sq1.dtype()) && py::dtype::of<double>().is(sq2.dtype()) &&
           (sq1.flags() & py::array::c_style) && (sq2.flags() & py::array::c_style),
       "fc_panel: squared norms must be contiguous float64 of matching length");
  need(py::dtype::of<double>().is(x1.dtype()) && py::dtype::of<double>().is(x2.dtype()) &&
           py::dtype::of<double>().is(gram.dtype()),
       "fc_panel: x1, x2 and gram must be float64");
  a.x1 = static_cast<const double*>(x1.data()), a.ld1 = lead(x1, "x1");
  a.x2 = static_cast<const double*>(x2.data()), a.ld2 = lead(x2, "x2");
  a.sq1 = static_cast<const double*>(sq1.data()), a.sq2 = static_cast<const double*>(sq2.data());
  a.lsc1 = log_scales(lsc1, rows, "fc_panel"), a.lsc2 = log_scales(lsc2, a.cols, "fc_panel");
  a.gram = static_cast<const double*>(gram.data()), a.ldg = a.dgemm ? 0 : lead(gram, "gram");
  out_pair<T>(nngp, ntk, symmetric ? a.cols : rows, a.cols, "fc_panel", &a.nngp, &a.ntk, &a.ldo);
  points_arg(pts1, logq1, p.depth + 1, rows, &a.pts1, &a.ldp1, &a.logq1);
  points_arg(pts2, logq2, p.depth + 1, a.cols, &a.pts2, &a.ldp2, &a.logq2);
  need((a.pts1 == nullptr) == (a.pts2 == nullptr), "fc_panel: give point arrays for both sides or neither");
  a.symmetric = symmetric;
  a.threads = threads;
  PyInterrupt interrupt;
  run_released([&] { ntkx::fc_panel_cpu<T>(a, &interrupt); });
}

/// Whole FC matrix by the fused CUDA kernel or its emulator into nngp / ntk (None
/// or [n1, >= n2] arrays of T), in row panels of `budget` bytes of outputs.
template <typename T>
void fc_full_t(const FcParams& p, py::array x1, py::object x2o, py::object nngp, py::object ntk,
               const std::string& backend, int device, bool reverse, py::object lsc1, py::object lsc2,
               int64_t budget, py::object progress) {
  need(x1.ndim() == 2 && (x1.flags() & py::array::c_style) && py::dtype::of<T>().is(x1.dtype()),
       "fc_full: x1 must be C-contiguous 2-D of the outputs' dtype");
  const bool sym = x2o.is_none();
  py::array x2 = sym ? x1 : x2o.cast<py::array>();
  need(x2.ndim() == 2 && (x2.flags() & py::array::c_style) && x2.shape(1) == x1.shape(1) &&
           py::dtype::of<T>().is(x2.dtype()),
       "fc_full: x2 must be C-contiguous 2-D with x1's feature size and dtype");
  ntkx::FcFullArgs<T> a;
  a.params = p;
  a.n1 = x1.shape(0), a.n2 = x2.shape(0), a.d = x1.shape(1);
  a.x1 = static_cast<const T*>(x1.data()), a.x2 = static_cast<const T*>(x2.data());
  a.symmetric = sym;
  a.budget = budget;
  a.lsc1 = log_scales(lsc1, a.n1, "fc_full");
  a.lsc2 = sym ? a.lsc1 : log_scales(lsc2, a.n2, "fc_full");
  out_pair<T>(nngp, ntk, a.n1, a.n2, "fc_full", &a.nngp, &a.ntk, &a.ldo);
  need(backend == "emulate" || backend == "cuda", "fc_full: backend must be 'emulate' or 'cuda'");
  PyInterrupt interrupt(progress);
  run_released([&] {
    if (backend == "emulate")
      ntkx::fc_emulate_cuda<T>(a, reverse, &interrupt);
    else
      ntkx::fc_cuda<T>(a, device, &interrupt);
  });
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

/// One CNTK matrix: nngp/ntk outputs (or None) of shape [rows, >= n2], written in place.
template <typename T>
void cntk_t(const ntkx::CntkParams& p, DArray x1, DArray x2, py::object nngp, py::object ntk, bool symmetric,
            int threads, const std::string& backend, int device, bool reverse, py::object progress) {
  const int64_t img = int64_t(p.P) * p.Q * p.C;
  need(x2.ndim() == 4 && x2.shape(1) == p.P && x2.shape(2) == p.Q && x2.shape(3) == p.C,
       "cntk: x2 must be [n, P, Q, C]");
  need(x1.ndim() == 4 && x1.size() == x1.shape(0) * img, "cntk: x1 must be [n, P, Q, C]");
  ntkx::CntkArgs<T> a;
  a.params = p;
  a.n1 = x1.shape(0), a.n2 = x2.shape(0);
  need(!symmetric || a.n1 <= a.n2, "cntk: symmetric rows must be a prefix of x2");
  a.x1 = x1.data(), a.x2 = x2.data();
  a.symmetric = symmetric, a.threads = threads;
  out_pair<T>(nngp, ntk, symmetric ? a.n2 : a.n1, a.n2, "cntk", &a.nngp, &a.ntk, &a.ldo);
  PyInterrupt interrupt(progress);
  run_released([&] {
    if (backend == "cpu")
      ntkx::cntk_cpu<T>(a, &interrupt);
    else if (backend == "emulate")
      ntkx::cntk_emulate_cuda<T>(a, reverse);
    else if (backend == "cuda")
      ntkx::cntk_cuda<T>(a, device);
    else
      throw std::invalid_argument("cntk: backend must be 'cpu', 'emulate' or 'cuda'");
  });
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

  m.def(
      "fc_panel",
      [](const FcParams& p, py::array x1, py::array x2, py::array sq1, py::array sq2, py::array gram,
         py::object nngp, py::object ntk, int64_t rows, bool symmetric, int threads, py::object pts1,
         py::object logq1, py::object pts2, py::object logq2, py::object dgemm, py::object dsyrk,
         py::object lsc1, py::object lsc2) {
        py::object first = nngp.is_none() ? ntk : nngp;
        need(!first.is_none(), "fc_panel: no output requested");
        by_dtype(first.cast<py::array>(), [&](auto t) {
          fc_panel_t<decltype(t)>(p, x1, x2, sq1, sq2, gram, nngp, ntk, rows, symmetric, threads, pts1, logq1,
                                  pts2, logq2, dgemm, dsyrk, lsc1, lsc2);
        });
      },
      py::arg("params"), py::arg("x1"), py::arg("x2"), py::arg("sq1"), py::arg("sq2"), py::arg("gram"),
      py::arg("nngp"), py::arg("ntk"), py::arg("rows"), py::arg("symmetric"), py::arg("threads") = 0,
      py::arg("pts1") = py::none(), py::arg("logq1") = py::none(), py::arg("pts2") = py::none(),
      py::arg("logq2") = py::none(), py::arg("dgemm") = py::none(), py::arg("dsyrk") = py::none(),
      py::arg("lsc1") = py::none(), py::arg("lsc2") = py::none(),
      "Fill one row panel of an FC kernel from its Gram products (OpenMP; GIL released; Ctrl-C aware).");

  m.def(
      "fc_full",
      [](const FcParams& p, py::array x1, py::object x2, py::object nngp, py::object ntk,
         const std::string& backend, int device, bool reverse, py::object lsc1, py::object lsc2, int64_t budget,
         py::object progress) {
        need(progress.is_none() || PyCallable_Check(progress.ptr()), "fc_full: progress must be None or callable");
        by_dtype(x1, [&](auto t) {
          fc_full_t<decltype(t)>(p, x1, x2, nngp, ntk, backend, device, reverse, lsc1, lsc2, budget, progress);
        });
      },
      py::arg("params"), py::arg("x1"), py::arg("x2"), py::arg("nngp"), py::arg("ntk"), py::arg("backend"),
      py::arg("device") = 0, py::arg("reverse") = false, py::arg("lsc1") = py::none(),
      py::arg("lsc2") = py::none(), py::arg("budget") = 0, py::arg("progress") = py::none(),
      "Fill FC outputs by the fused CUDA kernel ('cuda') or its CPU emulator ('emulate'), in row panels of\n"
      "`budget` bytes of outputs (<= 0: one); progress(pairs done so far), if given, after each panel.");

  m.def(
      "fc_points",
      [](const FcParams& p, py::array_t<double, py::array::c_style | py::array::forcecast> sq, int64_t d,
         py::object lsc) {
        need(sq.ndim() == 1, "fc_points: sq must be 1-D");
        const int64_t n = sq.shape(0);
        const double* ls = log_scales(lsc, n, "fc_points");
        py::array_t<double> out({p.depth + 1, int64_t(4), n});
        py::array_t<double> logq(n);
        {
          py::gil_scoped_release release;
          ntkx::fc_points(p, sq.data(), ls, n, d, out.mutable_data(), logq.mutable_data());
        }
        return py::make_tuple(out, logq);
      },
      py::arg("params"), py::arg("sq"), py::arg("d"), py::arg("lsc") = py::none(),
      "Per-point layer arrays [depth + 1, 4, n] (u, v, erf gamma, erf sqrt V) and log Q_L [n].");

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
         int threads, const std::string& backend, int device, bool reverse, py::object progress) {
        py::object first = nngp.is_none() ? ntk : nngp;
        need(!first.is_none(), "cntk: no output requested");
        need(progress.is_none() || PyCallable_Check(progress.ptr()), "cntk: progress must be None or callable");
        by_dtype(first.cast<py::array>(), [&](auto t) {
          cntk_t<decltype(t)>(p, x1, x2, nngp, ntk, symmetric, threads, backend, device, reverse, progress);
        });
      },
      py::arg("params"), py::arg("x1"), py::arg("x2"), py::arg("nngp"), py::arg("ntk"), py::arg("symmetric"),
      py::arg("threads") = 0, py::arg("backend") = "cpu", py::arg("device") = 0, py::arg("reverse") = false,
      py::arg("progress") = py::none(),
      "Fill CNTK outputs of NHWC float64 images x1 against x2 ('cpu' OpenMP, 'emulate' or 'cuda'). 'cpu' calls\n"
      "progress(pairs done so far), if given, from its master thread at most every 50 ms; an exception\n"
      "it raises stops the computation and is raised.");

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
