// The one map from a runtime activation kind to a compile-time instantiation,
// used by every backend's entry point (OpenMP, CUDA and the CUDA emulators).
// Compiles with g++ and nvcc.
#pragma once

#include <stdexcept>
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
  }
  throw std::invalid_argument("ntkx: unknown activation kind");
}

}  // namespace ntkx
