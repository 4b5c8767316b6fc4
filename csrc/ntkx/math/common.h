// Host/device helpers shared by every backend: the NTKX_HD macro and the few
// elementary functions the layer recursion needs, written as branch-free
// polynomials so that a loop over pairs vectorizes (CPU) and runs without
// divergence (CUDA). Everything here compiles with g++ alone.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define NTKX_HD __host__ __device__ __forceinline__
#define NTKX_HD_HOT NTKX_HD
#elif defined(__GNUC__)
#define NTKX_HD inline
/// For the few helpers that hot `omp simd` loops call: GCC may otherwise keep
/// them out of line in a large function, and a call blocks vectorization.
#define NTKX_HD_HOT inline __attribute__((always_inline))
#else
#define NTKX_HD inline
#define NTKX_HD_HOT inline
#endif

namespace ntkx {
namespace math {

constexpr double kPi = 3.14159265358979323846;
constexpr double kHalfPi = 1.57079632679489661923;
constexpr double kInvPi = 0.31830988618379067154;

// Builds use -ffp-contract=off (CUDA: --fmad=false) so that results do not depend
// on where a compiler chose to fuse; fused multiply-adds are written explicitly
// where they pay (the polynomials). Contraction would, e.g., turn x/|x| - x'/|x'|
// of identical points into a rounding residue instead of an exact 0.

NTKX_HD double sel(bool c, double a, double b) { return c ? a : b; }
NTKX_HD double clamp01(double x) { return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x); }

/// The elementary operations of a lane type V, for the formulas written once for
/// scalars and SIMD vectors (templates on V): Lane<double> here (the scalar and
/// CUDA paths), Lane<simd8::v8> in cpu/simd8.h (eight lanes). A traits class, not
/// overloads found by argument-dependent lookup, because a GCC vector type (simd8's
/// v8 on AVX-512) has no associated namespace. Mask is the type of V's comparisons.
/// Each operation is one IEEE operation (or none), the same in every lane type, so
/// every instantiation of a formula rounds alike, bit for bit.
template <typename V>
struct Lane;

template <>
struct Lane<double> {
  using Mask = bool;
  static NTKX_HD_HOT double bcast(double x) { return x; }
  static NTKX_HD_HOT double sel(bool c, double a, double b) { return math::sel(c, a, b); }
  static NTKX_HD_HOT double abs(double x) { return std::fabs(x); }
  /// x > 0 ? x : +0 (NaN gives +0).
  static NTKX_HD_HOT double pos(double x) { return x > 0.0 ? x : 0.0; }
  static NTKX_HD_HOT double sqrt(double x) { return std::sqrt(x); }
  static NTKX_HD_HOT double fma(double a, double b, double c) { return std::fma(a, b, c); }
};

/// c0 + z (c1 + z (c2 + ...)) by Horner with explicit FMAs, coefficients from the
/// constant term up (a variadic template rather than an array, so it needs no
/// constant memory on the device). Two spellings of the one rule, for the inliner
/// only: on double it is inlined at GCC's discretion (the FC loops are tuned with
/// that); on other lane types always (a call would pass eight lanes through memory).
NTKX_HD double horner(double, double c) { return c; }
template <typename... Rest>
NTKX_HD double horner(double z, double c, Rest... rest) {
  return std::fma(horner(z, rest...), z, c);
}
template <typename V>
NTKX_HD_HOT V horner(V, double c) {
  return Lane<V>::bcast(c);
}
template <typename V, typename... Rest>
NTKX_HD_HOT V horner(V z, double c, Rest... rest) {
  return Lane<V>::fma(horner(z, rest...), z, Lane<V>::bcast(c));
}

/// asin(x) for |x| <= 1/2 given z = x^2: x + x^3 P(z), P a degree-11 Chebyshev fit
/// of (asin(sqrt z) - sqrt z) / z^{3/2} on z in [0, 1/4] (fit error 2.3e-16 relative,
/// 1 ulp in float64 after rounding; fitted with mpmath.chebyfit at 50 digits), in
/// any lane type. Callers that know z without x (x = sqrt(h/2), z = h/2) pass it, so
/// the polynomial does not wait for the square root.
template <typename V>
NTKX_HD_HOT V asin_small(V x, V z) {
  const V p = horner(z, 0.1666666666666665, 0.07500000000020764, 0.044642857103423646, 0.03038194736709848,
                     0.02237204763174451, 0.017355259955786323, 0.013929652902326633, 0.011875494382636922,
                     0.0078029494773533175, 0.01603551434914882, -0.010749050339697808, 0.028169218060881414);
  return Lane<V>::fma(x * z, p, x);
}
NTKX_HD_HOT double asin_small(double x) { return asin_small(x, x * x); }

/// The angle theta = arccos(rho) in [0, pi], well conditioned at both ends.
/// `delta` = 1 - rho and `eps` = 1 + rho must be carried with full relative
/// accuracy by the caller: near rho = +-1 they, not rho, hold the information
/// (an error e in rho moves theta by ~sqrt(e); DESIGN.md section 3).
///   rho >=  1/2: theta = 2 asin(sqrt(delta / 2))
///   |rho| < 1/2: theta = pi/2 - asin(rho)
///   rho <= -1/2: theta = pi - 2 asin(sqrt(eps / 2))
/// One polynomial on |x| <= 1/2 serves the three branches (selects, no jumps).
NTKX_HD_HOT double angle(double rho, double delta, double eps) {
  const bool hi = rho >= 0.5;
  const bool lo = rho <= -0.5;
  const double h = sel(hi, delta, eps);
  const double r = std::sqrt(clamp01(0.5 * h));  // sqrt(h/2) <= 1/2 on its branches
  const double x = sel(hi || lo, r, rho);
  const double p = asin_small(x < 0.5 ? (x > -0.5 ? x : -0.5) : 0.5);
  return sel(hi, 2.0 * p, sel(lo, kPi - 2.0 * p, kHalfPi - p));
}

/// g(theta) = sin(theta) - theta cos(theta) >= 0, given s = sin, c = cos.
/// The direct difference cancels as theta^3/3 for small theta, so below 1/2 the
/// Taylor series sum_k (-1)^(k+1) 2k theta^(2k+1) / (2k+1)! is used (8 terms,
/// truncation < 3e-18 relative at 1/2); above, the difference loses < 12x, i.e.
/// < 1.5e-15 of g, which enters 1 - r as < 2e-17 absolute.
NTKX_HD double sin_minus_tcos(double t, double s, double c) {
  const double z = t * t;
  const double p = horner(z, 0.3333333333333333, -0.03333333333333333, 0.0011904761904761906,
                          -2.2045855379188714e-05, 2.505210838544172e-07, -1.9270852604185937e-09,
                          1.0706029224547743e-11);
  return sel(t < 0.5, z * t * p, s - t * c);
}

/// h(x) = x - sin(x) >= 0 given sin(x); Taylor series below 1 (same reason as above).
NTKX_HD double x_minus_sin(double x, double sin_x) {
  const double z = x * x;
  const double p = horner(z, 0.16666666666666666, -0.008333333333333333, 0.0001984126984126984,
                          -2.7557319223985893e-06, 2.505210838544172e-08, -1.6059043836821613e-10,
                          7.647163731819816e-13, -2.8114572543455206e-15, 8.22063524662433e-18,
                          -1.9572941063391263e-20, 3.868170170630684e-23);
  return sel(x < 1.0, z * x * p, x - sin_x);
}

}  // namespace math
}  // namespace ntkx
