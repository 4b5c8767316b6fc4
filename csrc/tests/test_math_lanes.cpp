// The formulas of math/ that run both on scalars (the CUDA phase bodies, the
// emulator) and on simd8::v8 (the OpenMP CNTK's hot loop) must round alike in every
// lane: this checks, bit for bit, math::asin_small and the ABRelu correlation and
// dual (math::abrelu_rho, math::abrelu_dual, through the scalar entry points
// math::cntk_rho / math::cntk_dual too) in both instantiations, on a sweep of
// correlations (+-1 and their neighbours, the +-1/2 branch edges, 0, random),
// variances (0, subnormal, tiny, 1, huge) and activations (ReLU, leaky, linear,
// abs-like with and without the fold). Built with NTKX_BUILD_TESTS=ON (the module's
// compile flags); exits 1 and prints the first differences on any mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ntkx/cpu/simd8.h"
#include "ntkx/math/cntk.h"

namespace {

using ntkx::Act;
using ntkx::simd8::v8;
constexpr int kLanes = 8;

/// One position pair's inputs to the ReLU dual, maps formed as the backends form them.
struct PairIn {
  double c, qa, a1, a2, qb, b1, b2;
};

uint64_t bits(double x) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

int g_fail = 0;
int64_t g_checked = 0;

void expect_same(const char* what, const char* setting, int64_t index, double scalar, double lane) {
  ++g_checked;
  if (bits(scalar) == bits(lane)) return;
  if (g_fail < 20)
    std::printf("MISMATCH %s [%s] input %lld: scalar %.17g (0x%016llx), simd8 %.17g (0x%016llx)\n", what, setting,
                static_cast<long long>(index), scalar, static_cast<unsigned long long>(bits(scalar)), lane,
                static_cast<unsigned long long>(bits(lane)));
  ++g_fail;
}

PairIn make_pair(double qa, double qb, double c) {
  PairIn p{c, qa, 0.0, 0.0, qb, 0.0, 0.0};
  double f3;
  ntkx::math::position_fields(Act::kABRelu, 0.0, 1.0, 0.0, qa, &p.a1, &p.a2, &f3);
  ntkx::math::position_fields(Act::kABRelu, 0.0, 1.0, 0.0, qb, &p.b1, &p.b2, &f3);
  return p;
}

/// Correlations to aim at: +-1 and their ulp neighbours, 1 - 2^-k, the +-1/2 edges
/// (where h <= 1/2 switches the asin branch) with ulp neighbours, +-0, tiny, random.
std::vector<double> target_correlations() {
  std::vector<double> r;
  auto around = [&r](double x, int ulps) {
    double lo = x, hi = x;
    r.push_back(x);
    for (int u = 0; u < ulps; ++u) {
      lo = std::nextafter(lo, -2.0), hi = std::nextafter(hi, 2.0);
      r.push_back(lo), r.push_back(hi);
    }
  };
  for (double s : {1.0, -1.0}) {
    around(s, 6);
    around(0.5 * s, 6);
    for (int k = 1; k <= 53; ++k) r.push_back(s * (1.0 - std::ldexp(1.0, -k)));
    for (double t : {1e-300, 1e-30, 1e-8, 1e-4, 0.25, 0.75, 0.9, 0.99}) r.push_back(s * t);
  }
  r.push_back(0.0), r.push_back(-0.0);
  std::mt19937_64 gen(15);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int i = 0; i < 200; ++i) r.push_back(u(gen));
  return r;
}

std::vector<PairIn> sweep() {
  const double variances[] = {0.0, 4.9e-324, 1e-300, 1e-12, 0.3, 1.0, 3.0, 1e12, 1e300};
  std::vector<PairIn> in;
  const std::vector<double> rhos = target_correlations();
  for (double qa : variances)
    for (double qb : variances) {
      const double sa = std::sqrt(qa), sb = std::sqrt(qb);
      for (double r : rhos) in.push_back(make_pair(qa, qb, r * sa * sb));
      // c^2 = q q' exactly (identical or power-of-two related positions), and c off the scale.
      in.push_back(make_pair(qa, qb, qa == qb ? qa : sa * sb));
      in.push_back(make_pair(qa, qb, qa == qb ? -qa : -sa * sb));
      for (double c : {1e-300, -1e-300, 1e300, -1e300, 2.0, -2.0}) in.push_back(make_pair(qa, qb, c));
    }
  // Pad to whole lane vectors.
  while (in.size() % kLanes) in.push_back(in.front());
  return in;
}

/// An ABRelu phi(x) = a min(x, 0) + b max(x, 0) as the backends see it.
struct Setting {
  const char* name;
  double a, b;
};

template <bool kFold>
void check_dual(const Setting& st, const std::vector<PairIn>& in) {
  ntkx::CntkParams p;
  p.act = Act::kABRelu, p.a = st.a, p.b = st.b;
  const ntkx::math::ActConst k = ntkx::math::cntk_act_const(p);
  const double s2 = ntkx::math::abrelu_s2(p);
  char name[96];
  std::snprintf(name, sizeof name, "%s, kFold=%d", st.name, int(kFold));
  for (size_t base = 0; base < in.size(); base += kLanes) {
    alignas(64) double c[kLanes], qa[kLanes], a1[kLanes], a2[kLanes], qb[kLanes], b1[kLanes], b2[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const PairIn& x = in[base + l];
      c[l] = x.c, qa[l] = x.qa, a1[l] = x.a1, a2[l] = x.a2, qb[l] = x.qb, b1[l] = x.b1, b2[l] = x.b2;
    }
    using ntkx::simd8::load;
    v8 vrho, vh, vkk, vkd;
    ntkx::math::abrelu_rho(load(c), load(qa), load(a2), load(qb), load(b2), &vrho, &vh);
    ntkx::math::abrelu_dual<kFold>(k.kappa, s2, load(c), vrho, vh, load(a1), load(b1), &vkk, &vkd);
    alignas(64) double rho[kLanes], h[kLanes], kk[kLanes], kd[kLanes];
    ntkx::simd8::store(rho, vrho), ntkx::simd8::store(h, vh);
    ntkx::simd8::store(kk, vkk), ntkx::simd8::store(kd, vkd);
    for (int l = 0; l < kLanes; ++l) {
      const int64_t i = int64_t(base) + l;
      double sr, sh, skk, skd;
      ntkx::math::abrelu_rho(c[l], qa[l], a2[l], qb[l], b2[l], &sr, &sh);
      expect_same("abrelu_rho rho", name, i, sr, rho[l]);
      expect_same("abrelu_rho h", name, i, sh, h[l]);
      ntkx::math::abrelu_dual<kFold>(k.kappa, s2, c[l], sr, sh, a1[l], b1[l], &skk, &skd);
      expect_same("abrelu_dual K", name, i, skk, kk[l]);
      expect_same("abrelu_dual Kd", name, i, skd, kd[l]);
      if (kFold != k.fold) continue;  // the hot loop runs kFold = ActConst::fold only
      // The scalar entry points (CUDA phase bodies, emulator) on the same inputs.
      double er, eh, ekk, ekd;
      ntkx::math::cntk_rho<Act::kABRelu>(c[l], qa[l], a2[l], qb[l], b2[l], &er, &eh);
      expect_same("cntk_rho rho", name, i, er, rho[l]);
      expect_same("cntk_rho h", name, i, eh, h[l]);
      ntkx::math::cntk_dual<Act::kABRelu>(k, s2, c[l], er, eh, qa[l], a1[l], a2[l], 0.0, qb[l], b1[l], b2[l], 0.0,
                                          &ekk, &ekd);
      expect_same("cntk_dual K", name, i, ekk, kk[l]);
      expect_same("cntk_dual Kd", name, i, ekd, kd[l]);
    }
  }
}

void check_asin_small() {
  std::vector<double> xs;
  for (int i = -4096; i <= 4096; ++i) xs.push_back(0.5 * i / 4096.0);
  for (double e : {0.5, -0.5, 0.0}) {
    double lo = e, hi = e;
    for (int u = 0; u < 8; ++u) lo = std::nextafter(lo, -1.0), hi = std::nextafter(hi, 1.0), xs.push_back(lo), xs.push_back(hi);
  }
  for (double t : {1e-300, -1e-300, 4.9e-324, -0.0}) xs.push_back(t);
  while (xs.size() % kLanes) xs.push_back(0.0);
  for (size_t base = 0; base < xs.size(); base += kLanes) {
    const v8 x = ntkx::simd8::load(xs.data() + base);
    alignas(64) double out[kLanes];
    ntkx::simd8::store(out, ntkx::math::asin_small(x, x * x));
    for (int l = 0; l < kLanes; ++l) {
      const double s = xs[base + l];
      expect_same("asin_small", "x in [-1/2, 1/2]", int64_t(base) + l, ntkx::math::asin_small(s, s * s), out[l]);
    }
  }
}

}  // namespace

int main() {
  std::vector<PairIn> in = sweep();
  // A second order in which every lane vector mixes branches (a stride coprime to the size).
  std::vector<PairIn> mixed(in.size());
  const size_t stride = 7919 % in.size() ? 7919 : 7907;
  for (size_t i = 0; i < in.size(); ++i) mixed[i] = in[(i * stride) % in.size()];
  const Setting settings[] = {
      {"ReLU (0, 1)", 0.0, 1.0},   {"leaky (0.1, 1)", 0.1, 1.0}, {"linear (1, 1)", 1.0, 1.0},
      {"abs (-1, 1)", -1.0, 1.0},  {"abs-like (-0.5, 0.5)", -0.5, 0.5}, {"(2, -1)", 2.0, -1.0},
  };
  for (const Setting& s : settings)
    for (const std::vector<PairIn>* v : {&in, &mixed}) {
      check_dual<false>(s, *v);
      check_dual<true>(s, *v);
    }
  check_asin_small();
  std::printf("test_math_lanes: %lld comparisons over %zu inputs x %zu activations, %d mismatches\n",
              static_cast<long long>(g_checked), in.size(), sizeof settings / sizeof settings[0], g_fail);
  return g_fail == 0 ? 0 : 1;
}
