// Eight float64 lanes with GCC vector extensions, for the one hot loop GCC will not
// if-convert on its own (the CNTK ABRelu dual: its selects around square roots make
// the auto-vectorizer either give up or shuttle masks through general registers).
// Only the lane type and its elementary operations live here, each one IEEE
// operation per lane (or none); the formulas are math/'s templates instantiated on
// v8 through math::Lane<simd8::v8> (below), the same source as the scalar and CUDA
// paths, so results are bitwise equal (csrc/tests/test_math_lanes.cpp).
#pragma once

#include <cstring>

#include "ntkx/math/common.h"

// Always inlined: a call passes its eight-lane arguments through memory.
#define NTKX_SIMD8 __attribute__((always_inline))

namespace ntkx {
namespace simd8 {

#if defined(__AVX512F__)
// One native 512-bit vector per eight lanes.
typedef double v8 __attribute__((vector_size(64)));
typedef long long m8 __attribute__((vector_size(64)));

NTKX_SIMD8 inline v8 load(const double* p) {
  v8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
NTKX_SIMD8 inline void store(double* p, v8 v) { std::memcpy(p, &v, sizeof v); }
// An initializer list, not v8{} + x: the add is kept (0 + -0 is +0) and costs an
// FP operation per broadcast.
NTKX_SIMD8 inline v8 bcast(double x) { return v8{x, x, x, x, x, x, x, x}; }
NTKX_SIMD8 inline bool any(m8 m) {
  long long o = 0;
  for (int l = 0; l < 8; ++l) o |= m[l];
  return o != 0;
}
NTKX_SIMD8 inline v8 sel(m8 c, v8 a, v8 b) { return c ? a : b; }
/// |x|: the sign bit cleared (one AND; a select on x < 0 takes three operations).
NTKX_SIMD8 inline v8 abs(v8 x) { return (v8)((m8)x & 0x7fffffffffffffffLL); }
/// x > 0 ? x : +0 (NaN gives +0).
NTKX_SIMD8 inline v8 pos(v8 x) { return x > 0.0 ? x : v8{}; }
NTKX_SIMD8 inline v8 sqrt(v8 x) {
  v8 r;
  for (int l = 0; l < 8; ++l) r[l] = __builtin_sqrt(x[l]);
  return r;
}
NTKX_SIMD8 inline v8 fma(v8 a, v8 b, v8 c) {
  v8 r;
  for (int l = 0; l < 8; ++l) r[l] = __builtin_fma(a[l], b[l], c[l]);
  return r;
}
#else
// Eight lanes as two 256-bit halves. A 64-byte GCC vector on a target without
// AVX-512 is lowered through the stack (8x slower on AVX2, measured); two native
// halves keep every operation in registers.
typedef double v4 __attribute__((vector_size(32)));
typedef long long m4 __attribute__((vector_size(32)));
struct v8 {
  v4 lo, hi;
};
struct m8 {
  m4 lo, hi;
};

NTKX_SIMD8 inline v8 load(const double* p) {
  v8 v;
  std::memcpy(&v.lo, p, sizeof v.lo);
  std::memcpy(&v.hi, p + 4, sizeof v.hi);
  return v;
}
NTKX_SIMD8 inline void store(double* p, v8 v) {
  std::memcpy(p, &v.lo, sizeof v.lo);
  std::memcpy(p + 4, &v.hi, sizeof v.hi);
}
NTKX_SIMD8 inline v8 bcast(double x) { return {v4{x, x, x, x}, v4{x, x, x, x}}; }
NTKX_SIMD8 inline bool any(m8 m) {
  const m4 o = m.lo | m.hi;
  return (o[0] | o[1] | o[2] | o[3]) != 0;
}
NTKX_SIMD8 inline v8 sel(m8 c, v8 a, v8 b) { return {c.lo ? a.lo : b.lo, c.hi ? a.hi : b.hi}; }
NTKX_SIMD8 inline v4 abs4(v4 x) { return (v4)((m4)x & 0x7fffffffffffffffLL); }
/// |x|: the sign bit cleared (one AND; a select on x < 0 takes three operations).
NTKX_SIMD8 inline v8 abs(v8 x) { return {abs4(x.lo), abs4(x.hi)}; }
/// x > 0 ? x : +0 (NaN gives +0): one vmaxpd, whose result is its second operand
/// unless the first is greater (GCC does not turn the select into it).
NTKX_SIMD8 inline v8 pos(v8 x) {
#if defined(__AVX__)
  return {__builtin_ia32_maxpd256(x.lo, v4{}), __builtin_ia32_maxpd256(x.hi, v4{})};
#else
  return {x.lo > 0.0 ? x.lo : v4{}, x.hi > 0.0 ? x.hi : v4{}};
#endif
}
NTKX_SIMD8 inline v4 sqrt4(v4 x) {
  v4 r;
  for (int l = 0; l < 4; ++l) r[l] = __builtin_sqrt(x[l]);
  return r;
}
NTKX_SIMD8 inline v4 fma4(v4 a, v4 b, v4 c) {
  v4 r;
  for (int l = 0; l < 4; ++l) r[l] = __builtin_fma(a[l], b[l], c[l]);
  return r;
}
NTKX_SIMD8 inline v8 sqrt(v8 x) { return {sqrt4(x.lo), sqrt4(x.hi)}; }
NTKX_SIMD8 inline v8 fma(v8 a, v8 b, v8 c) { return {fma4(a.lo, b.lo, c.lo), fma4(a.hi, b.hi, c.hi)}; }

#define NTKX_V8_BINARY(OP)                                                                      \
  NTKX_SIMD8 inline v8 operator OP(v8 a, v8 b) { return {a.lo OP b.lo, a.hi OP b.hi}; }        \
  NTKX_SIMD8 inline v8 operator OP(v8 a, double b) { return {a.lo OP b, a.hi OP b}; }          \
  NTKX_SIMD8 inline v8 operator OP(double a, v8 b) { return {a OP b.lo, a OP b.hi}; }          \
  NTKX_SIMD8 inline v8& operator OP##=(v8& a, v8 b) { return a = a OP b; }
NTKX_V8_BINARY(+)
NTKX_V8_BINARY(-)
NTKX_V8_BINARY(*)
#undef NTKX_V8_BINARY
#define NTKX_V8_COMPARE(OP)                                                                     \
  NTKX_SIMD8 inline m8 operator OP(v8 a, v8 b) { return {a.lo OP b.lo, a.hi OP b.hi}; }        \
  NTKX_SIMD8 inline m8 operator OP(v8 a, double b) { return {a.lo OP b, a.hi OP b}; }
NTKX_V8_COMPARE(<)
NTKX_V8_COMPARE(<=)
NTKX_V8_COMPARE(>)
NTKX_V8_COMPARE(==)
NTKX_V8_COMPARE(!=)
#undef NTKX_V8_COMPARE
NTKX_SIMD8 inline v8 operator-(v8 a) { return {-a.lo, -a.hi}; }
NTKX_SIMD8 inline m8 operator&(m8 a, m8 b) { return {a.lo & b.lo, a.hi & b.hi}; }
#endif

}  // namespace simd8

namespace math {

/// simd8's operations as a lane type of the formulas of math/ (see math::Lane).
template <>
struct Lane<simd8::v8> {
  using Mask = simd8::m8;
  static NTKX_SIMD8 inline simd8::v8 bcast(double x) { return simd8::bcast(x); }
  static NTKX_SIMD8 inline simd8::v8 sel(simd8::m8 c, simd8::v8 a, simd8::v8 b) { return simd8::sel(c, a, b); }
  static NTKX_SIMD8 inline simd8::v8 abs(simd8::v8 x) { return simd8::abs(x); }
  static NTKX_SIMD8 inline simd8::v8 pos(simd8::v8 x) { return simd8::pos(x); }
  static NTKX_SIMD8 inline simd8::v8 sqrt(simd8::v8 x) { return simd8::sqrt(x); }
  static NTKX_SIMD8 inline simd8::v8 fma(simd8::v8 a, simd8::v8 b, simd8::v8 c) { return simd8::fma(a, b, c); }
};

}  // namespace math
}  // namespace ntkx
