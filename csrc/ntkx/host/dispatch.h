// The one map from a runtime activation kind to a compile-time instantiation,
// used by every backend's entry point (OpenMP, CUDA and the CUDA emulators).
// Compiles with g++ and nvcc.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "ntkx/math/fc.h"

namespace ntkx {

/// An activation kind as a type: `decltype(k)::value` is the Act.
template <Act K>
using ActTag = std::integral_constant<Act, K>;

/// Calls f(ActTag<kind>{}) (f's template instantiation for that kind) and returns
/// what it returns; an unknown kind throws std::invalid_argument.
template <class F>
decltype(auto) with_act(Act kind, F&& f) {
  switch (kind) {
    case Act::kABRelu: return f(ActTag<Act::kABRelu>{});
    case Act::kArcCos0: return f(ActTag<Act::kArcCos0>{});
    case Act::kArcCos2: return f(ActTag<Act::kArcCos2>{});
    case Act::kErf: return f(ActTag<Act::kErf>{});
    case Act::kSign: return f(ActTag<Act::kSign>{});
    case Act::kArcCosN: return f(ActTag<Act::kArcCosN>{});
    case Act::kMonomial: return f(ActTag<Act::kMonomial>{});
    case Act::kHermite: return f(ActTag<Act::kHermite>{});
    case Act::kExpNormalized: return f(ActTag<Act::kExpNormalized>{});
    case Act::kGelu: return f(ActTag<Act::kGelu>{});
    case Act::kSin: return f(ActTag<Act::kSin>{});
    case Act::kRbf: return f(ActTag<Act::kRbf>{});
    case Act::kExp: return f(ActTag<Act::kExp>{});
    case Act::kGaussian: return f(ActTag<Act::kGaussian>{});
    case Act::kPolynomial: break;  // one slot per degree: its own program op (math::poly_pair)
  }
  throw std::invalid_argument(kind == Act::kPolynomial ? "ntkx: Polynomial runs in the register program only"
                                                       : "ntkx: unknown activation kind");
}

/// with_act for the CNTK, whose diagonal maps and duals (math/cntk.h) cover ABRelu, the
/// step, ReQU and Erf; any other kind throws std::invalid_argument.
template <class F>
decltype(auto) with_cntk_act(Act kind, F&& f) {
  switch (kind) {
    case Act::kABRelu: return f(ActTag<Act::kABRelu>{});
    case Act::kArcCos0: return f(ActTag<Act::kArcCos0>{});
    case Act::kArcCos2: return f(ActTag<Act::kArcCos2>{});
    case Act::kErf: return f(ActTag<Act::kErf>{});
    default: break;
  }
  throw std::invalid_argument(std::string("ntkx: the CNTK has no ") + math::act_name(kind) +
                              " (it computes ABRelu, RectifiedMonomial(0), RectifiedMonomial(2) and Erf)");
}

}  // namespace ntkx
