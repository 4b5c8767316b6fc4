// The CNTK's parameters from the per-layer lists the Python layer passes
// (standard deviations, stored as variances). Compiles with g++ alone.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "ntkx/api.h"

namespace ntkx {
namespace host {

/// Throws std::invalid_argument("ntkx._core: " + msg) unless ok.
inline void need_arg(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument("ntkx._core: " + msg);
}

/// CntkParams from per-conv-layer lists of standard deviations (stored as
/// variances), checked by check_cntk_params; throws std::invalid_argument.
inline CntkParams cntk_params(int P, int Q, int C, const std::vector<double>& w_std,
                              const std::vector<double>& b_std, const std::vector<int>& filt, bool final_act, Act act,
                              double a, double b, double c, Readout readout, double out_w_std, double out_b_std,
                              bool train_first, bool train_last, const std::vector<double>& std_fan_in = {},
                              const std::vector<double>& std_beta = {}, double out_nin = 0.0, double out_beta = 0.0) {
  CntkParams p;
  need_arg(w_std.size() == b_std.size() && w_std.size() == filt.size(),
           "CntkParams: w_std, b_std and filt need one entry per conv layer");
  need_arg(!w_std.empty() && w_std.size() <= size_t(kMaxConv),
           "CntkParams: 1 to " + std::to_string(kMaxConv) + " conv layers");
  p.P = P, p.Q = Q, p.C = C;
  p.n_conv = int(w_std.size());
  for (size_t l = 0; l < w_std.size(); ++l) {
    p.w2[l] = w_std[l] * w_std[l], p.b2[l] = b_std[l] * b_std[l], p.filt[l] = filt[l];
  }
  p.final_act = final_act, p.act = act, p.a = a, p.b = b, p.c = c, p.readout = readout;
  p.out_w2 = out_w_std * out_w_std, p.out_b2 = out_b_std * out_b_std;
  p.train_first = train_first, p.train_last = train_last;
  // parameterization='standard': std_fan_in / std_beta per conv layer (empty: NTK).
  need_arg(std_fan_in.size() == std_beta.size() && (std_fan_in.empty() || std_fan_in.size() == w_std.size()),
           "CntkParams: std_fan_in and std_beta need one entry per conv layer (or none)");
  p.standard = !std_fan_in.empty();
  for (size_t l = 0; l < std_fan_in.size(); ++l) {
    const double q2 = double(p.filt[l]) * p.filt[l], csum = l == 0 ? double(C) : 1.0;
    if (std_fan_in[l] < 0.0) {  // an NTK-parameterization layer of a mixed network: Theta' = ... + Sigma'
      p.std_a[l] = p.w2[l] / (q2 * csum), p.std_c[l] = p.b2[l];
      continue;
    }
    need_arg(std_fan_in[l] >= 1.0, "CntkParams: a standard-parameterization conv layer needs its fan-in");
    p.std_a[l] = std_fan_in[l] / (q2 * csum);
    p.std_c[l] = std_beta[l];
  }
  p.out_nin = out_nin, p.out_beta = out_beta;
  need_arg(!p.standard || out_nin >= 0.0, "CntkParams: a standard-parameterization readout needs its fan-in");
  check_cntk_params(p);
  return p;
}

}  // namespace host
}  // namespace ntkx
