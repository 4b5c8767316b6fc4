// Ctrl-C polling and progress reports of the OpenMP backends (fc.cpp, cntk.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ntkx/api.h"

namespace ntkx {

/// Asks the Interrupt from the OpenMP master thread, at most every 50 ms, whether
/// to stop, first telling it the work finished so far: any thread counts its
/// finished work with done().
class Poll {
 public:
  explicit Poll(Interrupt* it) : it_(it), last_(std::chrono::steady_clock::now()) {}
  bool stop() const { return stop_.load(std::memory_order_relaxed); }
  void done(int64_t units) { done_.fetch_add(units, std::memory_order_relaxed); }
  void check() {
    if (!it_ || stop()) return;
#ifdef _OPENMP
    if (omp_get_thread_num() != 0) return;
#endif
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(50)) return;
    last_ = now;
    it_->progress(done_.load(std::memory_order_relaxed));
    if (it_->requested()) stop_.store(true, std::memory_order_relaxed);
  }

 private:
  Interrupt* it_;
  std::chrono::steady_clock::time_point last_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> done_{0};
};

/// The caller's Interrupt as one piece of a driver's work (a row panel, a tile)
/// sees it: its progress reports are offset by the work of the pieces before it.
struct OffsetInterrupt : Interrupt {
  Interrupt* outer;
  int64_t before = 0;
  explicit OffsetInterrupt(Interrupt* o) : outer(o) {}
  bool requested() override { return outer->requested(); }
  void progress(int64_t done) override { outer->progress(before + done); }
  /// Ends a piece of `units` work: reports the total so far and throws Interrupted
  /// when the caller asks to stop.
  void finished(int64_t units) {
    before += units;
    outer->progress(before);
    if (outer->requested()) throw Interrupted();
  }
};

}  // namespace ntkx
