// General fully-connected compositions as a small register program: per-layer
// activations and stds, residual branches (FanOut / parallel / FanInSum) and
// channel concatenation (FanInConcat), any nesting. Python (ntkx._src.fc_program)
// compiles a stax network into these ops; the OpenMP backend interprets them per
// 256-column chunk inside its fused Gram tiles (cpu/fc_program.h).
//
// Every register holds, per pair, the normalized state of math/fc.h, (rho, delta,
// eps, tau) = (K, 1 - K/sqrt(QQ'), ..., Theta) / sqrt(Q Q'), with Q the register's
// own per-point variance, carried as log Q per point. Register 0 is the input:
// K = x.x'/d, Theta = 0. The ops, with u^2 + v^2 = 1 mixing weights per point:
//   DENSE(w, b):  K' = w^2 K + b^2,  Theta' = w^2 Theta + K'        (mix_pair, D = 1)
//   ACT(phi):     K' = E[phi phi'],  Theta' = E[phi' phi''] Theta    (dual<K>)
//   LAYER:        ACT then DENSE on its result (layer_step, one pass)
//   DENSE_STD / LAYER_STD: the same in the standard parameterization (neural-tangents'
//                 parameterization='standard'): K' as DENSE, Theta' = w^2 Theta + n_in K + beta
//                 (n_in the input width, beta = 1 with a bias), two more slots z, y per point
//   SUM(c_k):     K' = sum_k c_k K_k,  Theta' = sum_k c_k Theta_k   (c_k = 1: FanInSum;
//                 c_k = width_k / sum width: FanInConcat along channels, neural-tangents'
//                 weighted mean)
// With u_k = sqrt(c_k Q_k / Q'), Q' = sum_k c_k Q_k (so sum_k u_k^2 = 1), SUM is
//   rho'   = sum_k u_k u_k' rho_k
//   delta' = sum_k [ (u_k - u_k')^2 / 2 + u_k u_k' delta_k ]   (every term >= 0)
//   eps'   = sum_k [ (u_k - u_k')^2 / 2 + u_k u_k' eps_k ]
//   tau'   = sum_k u_k u_k' tau_k,
// the same nonnegative-pieces form as mix_pair (a Dense is the SUM of its weight
// branch and a bias branch of rho = 1), so delta keeps full relative accuracy for
// (anti)colinear pairs through any composition. Scale lives in log Q per point.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "ntkx/math/fc.h"

namespace ntkx {

/// Kinds of program op.
enum class OpKind : int {
  kDense = 0,  ///< dst = Dense(w, bias)(src); per-point slots u, v
  kAct = 1,    ///< dst = act(src); per-point slots g, s (erf's gamma and V)
  kLayer = 2,  ///< dst = Dense(w, bias)(act(src)); slots u, v, g, s
  kSum = 3,    ///< dst = sum_k c_k src_k; one slot u_k per source
  kDenseStd = 4,  ///< DENSE in the standard parameterization; slots u, v, z, y
  kLayerStd = 5,  ///< LAYER in the standard parameterization; slots u, v, g, s, z, y
};

/// One op of an FC program.
struct ProgOp {
  OpKind kind = OpKind::kDense;
  int32_t dst = 0;
  /// DENSE / ACT / LAYER: the source register. SUM: the first of its `nsrc`
  /// entries in FcProgram::srcs (and src_logc).
  int32_t src = 0;
  int32_t nsrc = 1;
  Act act = Act::kABRelu;   ///< ACT / LAYER: activation and its parameters (FcParams' a, b, c)
  double a = 0.0, b = 1.0, c = 0.0;
  double w = 1.0, bias = 0.0;  ///< DENSE / LAYER: W_std, b_std
  /// kDenseStd / kLayerStd: the input width n_in, and beta = 1 when the layer has a bias
  /// (b_std given, even 0: its gradient adds 1 to the NTK, as in neural-tangents), else 0.
  double n_in = 0.0, beta = 0.0;
};

/// Number of per-point slots an op reads.
inline int64_t op_slots(const ProgOp& op) {
  switch (op.kind) {
    case OpKind::kDense: return 2;
    case OpKind::kAct: return op.act == Act::kPolynomial ? int64_t(op.a) : 2;  // Polynomial: e_0 .. e_{m-1}
    case OpKind::kLayer: return 4;
    case OpKind::kSum: return op.nsrc;
    case OpKind::kDenseStd: return 4;
    case OpKind::kLayerStd: return 6;
  }
  return 0;
}

/// A compiled FC network. Borrowed pointers, owned by the caller for a call.
struct FcProgram {
  const ProgOp* ops = nullptr;
  int64_t nops = 0;
  const int32_t* srcs = nullptr;    ///< SUM sources
  const double* src_logc = nullptr; ///< log c_k of each SUM source (0: FanInSum)
  int64_t nsrcs = 0;
  int32_t nreg = 1;                 ///< registers (0 is the input)
  int32_t out = 0;                  ///< the register read out
  /// Erf NTKs whose 2 b^2 Q passes this are refused (fc.py's MAX_ERF_T; see there).
  double max_erf_t = 1e6;
  bool want_ntk = true;             ///< whether the NTK is asked (the erf bound applies)
  /// Polynomial ACT ops' coefficients: op a = their count m (1 .. kMaxDegree + 1), b = the
  /// offset of coef_0 here.
  const double* poly = nullptr;
  int64_t npoly = 0;
};

/// The activation parameters of an op as FcParams (what fc.h's per-point helpers read).
inline FcParams op_act_params(const ProgOp& op) {
  FcParams p;
  p.act = op.act, p.a = op.a, p.b = op.b, p.c = op.c;
  return p;
}

namespace math {

/// Throws std::invalid_argument unless every register index, source range and
/// op kind of `pr` is in range and every source is written before it is read.
inline void check_program(const FcProgram& pr) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("ntkx: FC program: " + what); };
  if (pr.nreg < 1 || pr.out < 0 || pr.out >= pr.nreg) bad("register count or output out of range");
  if (pr.nops > 0 && pr.ops == nullptr) bad("no ops");
  std::string written(size_t(pr.nreg), '\0');
  written[0] = 1;
  auto reg = [&](int32_t r) {
    if (r < 0 || r >= pr.nreg) bad("register out of range");
    if (!written[size_t(r)]) bad("register read before it is written");
  };
  for (int64_t t = 0; t < pr.nops; ++t) {
    const ProgOp& op = pr.ops[t];
    if (op.kind == OpKind::kSum) {
      if (op.nsrc < 1 || op.src < 0 || int64_t(op.src) + op.nsrc > pr.nsrcs) bad("sum sources out of range");
      for (int32_t k = 0; k < op.nsrc; ++k) reg(pr.srcs[op.src + k]);
    } else if (op.kind == OpKind::kDense || op.kind == OpKind::kAct || op.kind == OpKind::kLayer ||
               op.kind == OpKind::kDenseStd || op.kind == OpKind::kLayerStd) {
      reg(op.src);
      if (op.act == Act::kPolynomial && op.kind != OpKind::kDense && op.kind != OpKind::kDenseStd) {
        if (op.kind != OpKind::kAct) bad("a Polynomial activation runs as an ACT op");
        if (!(op.a >= 1.0 && op.a <= kMaxDegree + 1 && op.a == double(int64_t(op.a))) || !(op.b >= 0.0) ||
            op.b != double(int64_t(op.b)) || int64_t(op.b) + int64_t(op.a) > pr.npoly)
          bad("Polynomial coefficients out of range");
      }
      if ((op.act == Act::kArcCosN || op.act == Act::kMonomial || op.act == Act::kHermite) &&
          op.kind != OpKind::kDense && op.kind != OpKind::kDenseStd &&
          !(op.a == double(int64_t(op.a)) && op.a >= (op.act == Act::kArcCosN ? 3 : 0) && op.a <= kMaxDegree))
        bad("activation degree out of range");
      if ((op.kind == OpKind::kDenseStd || op.kind == OpKind::kLayerStd) && !(op.n_in >= 1.0))
        bad("a standard-parameterization Dense needs its input width");
    } else {
      bad("unknown op kind");
    }
    if (op.dst < 0 || op.dst >= pr.nreg) bad("register out of range");
    written[size_t(op.dst)] = 1;
  }
  reg(pr.out);
}

/// Slot offsets: first slot of op t at offsets[t]; returns the total.
inline int64_t program_slots(const FcProgram& pr, int64_t* offsets) {
  int64_t s = 0;
  for (int64_t t = 0; t < pr.nops; ++t) offsets[t] = s, s += op_slots(pr.ops[t]);
  return s;
}

/// math::act_point of an activation on a register with log-variance `lq` (log E[phi(u)^2]
/// and its slots g, s), after checking erf's float64 limits (see FcProgram::max_erf_t).
inline double program_act_point(const FcProgram& pr, const ProgOp& op, double lq, double* g, double* s) {
  const FcParams ap = op_act_params(op);
  if (op.act == Act::kErf) {
    const double ninf = -std::numeric_limits<double>::infinity();
    const double g2 = erf_gamma2(op.b, std::exp(lq));
    if (lq != ninf && g2 == 0.0 && op.a != 0.0 && op.b != 0.0 && op.c == 0.0)
      throw std::invalid_argument(
          "Erf: an activation input's 2 b^2 q underflows float64, where erf's variance would read 0 as for a "
          "zero input; rescale the inputs, W_std or b");
    if (pr.want_ntk && lq != ninf && op.b != 0.0 &&
        std::log(2.0) + 2.0 * std::log(std::fabs(op.b)) + lq > std::log(pr.max_erf_t))
      throw std::invalid_argument(
          "Erf: 2 b^2 q of an activation input passes " + std::to_string(pr.max_erf_t) +
          ", where the NTK's derivative term 1/sqrt(1 - gamma^4) loses float64 accuracy; ntkx refuses it rather "
          "than return an inaccurate value (get='nngp' is exact); rescale b or the inputs");
  }
  return act_point(ap, lq, g, s);
}

/// Dense(w, bias) of a register with log-variance `lq`: returns the new log Q, sets u, v.
inline double program_dense_point(const ProgOp& op, double lq, double* u, double* v) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const double log_a = (op.w != 0.0 && lq != ninf) ? 2.0 * std::log(std::fabs(op.w)) + lq : ninf;
  const double log_b2 = op.bias != 0.0 ? 2.0 * std::log(std::fabs(op.bias)) : ninf;
  PointLayer pl;
  const double out = mix_point(log_a, log_b2, &pl);
  *u = pl.u, *v = pl.v;
  return out;
}

/// The standard parameterization's extra slots of a Dense from log Q of its input (lq)
/// and of its output (lq_out): z = sqrt(n_in Q / Q_out), y = sqrt(beta / Q_out), so that
/// the NTK's Theta' = w^2 Theta + n_in K + beta (neural-tangents' standard Dense) is, per
/// pair, tau' = u u' tau + z z' rho + y y'. A point whose output variance is 0 while the
/// layer has a bias gradient (b_std = 0 given) has Theta' = 1 over K' = 0, which the
/// normalized recursion cannot carry: refused.
inline void program_dense_std_point(const ProgOp& op, double lq, double lq_out, double* z, double* y) {
  const double ninf = -std::numeric_limits<double>::infinity();
  if (lq_out == ninf) {
    if (op.beta != 0.0)
      throw std::invalid_argument(
          "parameterization='standard': a point's variance is 0 after a Dense with b_std = 0, whose bias still "
          "adds 1 to the NTK; ntkx's normalized recursion cannot carry that: use b_std=None (no bias) or b_std > 0");
    *z = *y = 0.0;
    return;
  }
  *z = lq == ninf ? 0.0 : std::exp(0.5 * (std::log(op.n_in) + lq - lq_out));
  *y = op.beta != 0.0 ? std::exp(0.5 * (std::log(op.beta) - lq_out)) : 0.0;
}

/// Per-point pass of one point: log Q of every register in `lq` (nreg entries,
/// lq[0] the input's log(|x|^2 / d)), writing op t's slots at out[(off[t] + k) ld].
/// Returns log Q of the output register.
inline double program_point(const FcProgram& pr, const int64_t* off, double* lq, double* out, int64_t ld) {
  const double ninf = -std::numeric_limits<double>::infinity();
  for (int64_t t = 0; t < pr.nops; ++t) {
    const ProgOp& op = pr.ops[t];
    double* sl = out + off[t] * ld;
    switch (op.kind) {
      case OpKind::kDense:
      case OpKind::kDenseStd: {
        const double lin = lq[op.src];  // dst may be src
        lq[op.dst] = program_dense_point(op, lin, &sl[0], &sl[ld]);
        if (op.kind == OpKind::kDenseStd) program_dense_std_point(op, lin, lq[op.dst], &sl[2 * ld], &sl[3 * ld]);
        break;
      }
      case OpKind::kAct: {
        lq[op.dst] = op.act == Act::kPolynomial
                         ? poly_point(pr.poly + int64_t(op.b), int(op.a), lq[op.src], sl, ld)
                         : program_act_point(pr, op, lq[op.src], &sl[0], &sl[ld]);
        break;
      }
      case OpKind::kLayer:
      case OpKind::kLayerStd: {
        const double lv = program_act_point(pr, op, lq[op.src], &sl[2 * ld], &sl[3 * ld]);
        lq[op.dst] = program_dense_point(op, lv, &sl[0], &sl[ld]);
        if (op.kind == OpKind::kLayerStd) program_dense_std_point(op, lv, lq[op.dst], &sl[4 * ld], &sl[5 * ld]);
        break;
      }
      case OpKind::kSum: {
        // log Q' = log sum_k c_k Q_k without overflow; u_k = sqrt(c_k Q_k / Q').
        double hi = ninf;
        for (int32_t k = 0; k < op.nsrc; ++k) {
          const double l = lq[pr.srcs[op.src + k]] + pr.src_logc[op.src + k];
          hi = l > hi ? l : hi;
        }
        double acc = 0.0;
        if (hi != ninf)
          for (int32_t k = 0; k < op.nsrc; ++k)
            acc += std::exp(lq[pr.srcs[op.src + k]] + pr.src_logc[op.src + k] - hi);
        const double lnew = hi == ninf ? ninf : hi + std::log(acc);
        for (int32_t k = 0; k < op.nsrc; ++k) {
          const double l = lq[pr.srcs[op.src + k]] + pr.src_logc[op.src + k];
          sl[k * ld] = (lnew == ninf || l == ninf) ? 0.0 : std::exp(0.5 * (l - lnew));
        }
        lq[op.dst] = lnew;
        break;
      }
    }
  }
  return lq[pr.out];
}

/// SUM's accumulation of one source into (rho, delta, eps, tau): u_k, u_k' the
/// two points' weights of the source, (r, dl, ep, ta) its normalized state.
NTKX_HD_HOT void sum_pair_add(PairState& acc, double ui, double uj, double r, double dl, double ep, double ta) {
  const double uu = ui * uj, m = 0.5 * (ui - uj) * (ui - uj);
  acc.rho += uu * r;
  acc.delta += m + uu * dl;
  acc.eps += m + uu * ep;
  acc.tau += uu * ta;
}

/// ACT of one pair: the activation's normalized dual, tau' = D tau.
template <Act K>
NTKX_HD_HOT void act_pair(ActConst k, PairState& st, double gi, double si, double gj, double sj) {
  const Dual du = dual<K>(k, st, gi, si, gj, sj);
  st.rho = du.r, st.delta = du.omr, st.eps = du.opr, st.tau = du.d * st.tau;
}

/// DENSE of one pair (mix_pair with the identity dual: D = 1, Theta' = w^2 Theta + K').
NTKX_HD_HOT void dense_pair(PairState& st, double ui, double vi, double uj, double vj) {
  const Dual du{st.rho, st.delta, st.eps, 1.0};
  mix_pair(st, du, ui, vi, uj, vj, false);
}

/// A standard-parameterization Dense of one pair on the (activation's) normalized dual
/// `du` of its input: the NNGP part is mix_pair's, the NTK tau' = u u' D tau + z z' r + y y'
/// (see program_dense_std_point).
NTKX_HD_HOT void mix_pair_std(PairState& st, const Dual& du, double ui, double vi, double zi, double yi, double uj,
                              double vj, double zj, double yj) {
  const double tau = st.tau;
  mix_pair(st, du, ui, vi, uj, vj, false);
  st.tau = ui * uj * du.d * tau + zi * zj * du.r + yi * yj;
}

}  // namespace math
}  // namespace ntkx
