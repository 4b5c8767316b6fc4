// pybind11 bindings of ntkx._core: array checks, GIL release, dispatch on dtype.
// Validation of user input happens in Python (python/ntkx/_src/validate.py);
// these checks only guard the C++ API (ntkx/api.h) against a wrong internal call.
// The conversions they share (outputs, interrupts, BLAS, dtype) are in py_convert.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "ntkx/api.h"
#include "ntkx/host/cntk_params.h"
#include "ntkx/math/fc_program.h"
#include "py_convert.h"

namespace py = pybind11;
using ntkx::Act;
using ntkx::FcParams;
using namespace ntkx::py_convert;

namespace {

using IArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using FArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

/// An FC program (math/fc_program.h) from Python's arrays (ntkx._src.fc_program):
/// ops_i [nops, 5] int32 (kind, dst, src, nsrc, act), ops_f [nops, 7] float64 (a,
/// b, c, w, bias, n_in, beta), srcs int32 and src_logc float64 of the SUMs, and the
/// Polynomial coefficients. Holds the ops; the FcProgram borrows them.
struct PyProgram {
  std::vector<ntkx::ProgOp> ops;
  IArray srcs;
  FArray logc, poly;
  ntkx::FcProgram prog;

  PyProgram(const py::tuple& t) {
    need(t.size() == 9,
         "fc: program must be (ops_i, ops_f, srcs, src_logc, nreg, out, max_erf_t, want_ntk, poly)");
    IArray oi = t[0].cast<IArray>();
    FArray of = t[1].cast<FArray>();
    srcs = t[2].cast<IArray>(), logc = t[3].cast<FArray>();
    need(oi.ndim() == 2 && oi.shape(1) == 5 && of.ndim() == 2 && of.shape(1) == 7 && of.shape(0) == oi.shape(0),
         "fc: program ops must be [nops, 5] int32 and [nops, 7] float64");
    need(srcs.ndim() == 1 && logc.ndim() == 1 && logc.shape(0) == srcs.shape(0), "fc: program sources mismatch");
    const int64_t n = oi.shape(0);
    ops.resize(size_t(n));
    auto I = oi.unchecked<2>();
    auto F = of.unchecked<2>();
    for (int64_t t2 = 0; t2 < n; ++t2) {
      ntkx::ProgOp& o = ops[size_t(t2)];
      need(I(t2, 0) >= 0 && I(t2, 0) <= 5 && I(t2, 4) >= 0 && I(t2, 4) < ntkx::kNumActs,
           "fc: program op or activation kind");
      o.kind = ntkx::OpKind(I(t2, 0)), o.dst = I(t2, 1), o.src = I(t2, 2), o.nsrc = I(t2, 3), o.act = Act(I(t2, 4));
      o.a = F(t2, 0), o.b = F(t2, 1), o.c = F(t2, 2), o.w = F(t2, 3), o.bias = F(t2, 4);
      o.n_in = F(t2, 5), o.beta = F(t2, 6);
    }
    prog.ops = ops.data(), prog.nops = n;
    prog.srcs = srcs.data(), prog.src_logc = logc.data(), prog.nsrcs = srcs.shape(0);
    prog.nreg = t[4].cast<int32_t>(), prog.out = t[5].cast<int32_t>();
    prog.max_erf_t = t[6].cast<double>(), prog.want_ntk = t[7].cast<bool>();
    poly = t[8].cast<FArray>();
    need(poly.ndim() == 1, "fc: program polynomial coefficients must be 1-D");
    prog.poly = poly.data(), prog.npoly = poly.shape(0);
  }
};

/// An FC kernel matrix (ntkx::fc) of float64 rows x1 against x2 (None: x1 itself).
template <typename T>
void fc_t(const FcParams& p, py::array x1, py::object x2o, py::array sq1, py::object sq2o, py::object nngp,
          py::object ntk, const ntkx::RunOptions& run, py::object lsc1, py::object lsc2, py::object gram,
          py::object progress, py::object w_layers, py::object b_layers, py::object program) {
  const bool sym = x2o.is_none();
  py::array x2 = sym ? x1 : x2o.cast<py::array>(), sq2 = sym ? sq1 : sq2o.cast<py::array>();
  for (const py::array* x : {&x1, &x2, &sq1, &sq2})
    need(py::dtype::of<double>().is(x->dtype()), "fc: inputs and squared norms must be float64");
  need(x2.ndim() == 2 && x2.shape(1) == x1.shape(1), "fc: x2 needs x1's feature size");
  ntkx::FcArgs<T> a;
  a.params = p;
  a.params.w_layers = layer_stds(w_layers, p.depth, "w_layers");
  a.params.b_layers = layer_stds(b_layers, p.depth, "b_layers");
  std::unique_ptr<PyProgram> prog;
  if (!program.is_none()) {
    prog.reset(new PyProgram(program.cast<py::tuple>()));
    a.params.program = &prog->prog;
  }
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

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ntkx compiled core: FC NNGP/NTK recursion (OpenMP) and the fused CUDA kernel with its CPU emulator.";

  py::enum_<Act>(m, "Act")
      .value("ABRelu", Act::kABRelu)
      .value("ArcCos0", Act::kArcCos0)
      .value("ArcCos2", Act::kArcCos2)
      .value("Erf", Act::kErf)
      .value("Sign", Act::kSign)
      .value("ArcCosN", Act::kArcCosN)
      .value("Monomial", Act::kMonomial)
      .value("Hermite", Act::kHermite)
      .value("ExpNormalized", Act::kExpNormalized)
      .value("Gelu", Act::kGelu)
      .value("Sin", Act::kSin)
      .value("Rbf", Act::kRbf)
      .value("Exp", Act::kExp)
      .value("Gaussian", Act::kGaussian)
      .value("Polynomial", Act::kPolynomial);

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
         py::object progress, py::object w_layers, py::object b_layers, py::object program) {
        by_dtype(first_out(nngp, ntk, progress, "fc"), [&](auto t) {
          fc_t<decltype(t)>(p, x1, x2, sq1, sq2, nngp, ntk, run, lsc1, lsc2, gram, progress, w_layers, b_layers,
                            program);
        });
      },
      py::arg("params"), py::arg("x1"), py::arg("x2"), py::arg("sq1"), py::arg("sq2"), py::arg("nngp"),
      py::arg("ntk"), py::arg("run"), py::arg("lsc1") = py::none(), py::arg("lsc2") = py::none(),
      py::arg("gram") = py::none(), py::arg("progress") = py::none(), py::arg("w_layers") = py::none(),
      py::arg("b_layers") = py::none(), py::arg("program") = py::none(),
      "Fill the FC outputs of float64 rows x1 against x2 (None: x1) on run.backend (ntkx::fc). On the CPU,\n"
      "gram(r0, r1, c0, out) fills the Gram panels where the fused BLAS path does not run; progress(pairs\n"
      "done so far), if given, after each row panel. w_layers / b_layers: optional float64 [depth + 1] stds\n"
      "of each Dense layer (None: params.w_std / b_std for all). program: an FC program (ntkx._src.fc_program)\n"
      "that replaces the params' architecture (CPU only).");

  py::enum_<ntkx::Readout>(m, "Readout")
      .value("Vanilla", ntkx::Readout::kVanilla)
      .value("Gap", ntkx::Readout::kGap);

  py::class_<ntkx::CntkParams>(m, "CntkParams", "A conv stack, readout and Dense (mirrors ntkx::CntkParams).")
      .def(py::init(&ntkx::host::cntk_params), py::arg("P"), py::arg("Q"), py::arg("C"), py::arg("w_std"),
           py::arg("b_std"), py::arg("filt"), py::arg("final_act"), py::arg("act"), py::arg("a"), py::arg("b"),
           py::arg("c"), py::arg("readout"), py::arg("out_w_std"), py::arg("out_b_std"),
           py::arg("train_first") = true, py::arg("train_last") = true,
           py::arg("std_fan_in") = std::vector<double>{}, py::arg("std_beta") = std::vector<double>{},
           py::arg("out_nin") = 0.0, py::arg("out_beta") = 0.0)
      .def_readonly("P", &ntkx::CntkParams::P)
      .def_readonly("standard", &ntkx::CntkParams::standard)
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
