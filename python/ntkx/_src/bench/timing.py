"""How ``ntkx bench`` times a call: a warm-up, then rounds sized from it, every repetition kept.

A `Timing` is the small frozen result (STYLE.md section 9): the repetitions, the warm-up,
and on demand the median, the quartile spread and a distribution-free confidence
interval of the median (order statistics of the binomial, as asv's ``quantile_ci``),
which ``ntkx bench compare`` uses to call a change significant.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Dict, NamedTuple, Sequence, Tuple


class Interval(NamedTuple):
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Policy:
    """How long to time one (case, peer): about `target_seconds` of timed calls, within [min_rounds, max_rounds].

    A call whose warm-up already took longer than `target_seconds` gets `min_rounds`.
    """

    target_seconds: float
    min_rounds: int
    max_rounds: int

    def rounds(self, warm_seconds: float) -> int:
        return int(min(self.max_rounds, max(self.min_rounds, self.target_seconds // max(warm_seconds, 1e-9))))


@dataclasses.dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of one (case, peer): every timed repetition, and the untimed warm-up call.

    Attributes:
      repeats: seconds of each timed call, in order.
      warm_seconds: the warm-up call (compilation, thread-pool start, page faults), not in `repeats`.
    """

    repeats: Tuple[float, ...]
    warm_seconds: float

    @property
    def median(self) -> float:
        return float(statistics.median(self.repeats))

    @property
    def spread(self) -> float:
        """Half the interquartile range over the median (0 for one repetition): the relative noise."""
        if len(self.repeats) < 2:
            return 0.0
        q = statistics.quantiles(self.repeats, n=4, method="inclusive")
        return float((q[2] - q[0]) / 2 / self.median)

    def confidence_interval(self, confidence_level: float = 0.95) -> Interval:
        """A distribution-free interval for the median: order statistics ``x_(l) .. x_(u)`` with
        ``P(l <= B < u) >= confidence_level``, ``B ~ Binomial(n, 1/2)``; widened to the whole
        range when `n` is too small for that level (3 repetitions cover 75%)."""
        xs = sorted(self.repeats)
        n = len(xs)
        cdf = _binom_half_cdf(n)
        alpha = (1 - confidence_level) / 2
        lo = max([k for k in range(n) if cdf[k] <= alpha] or [-1]) + 1  # P(B <= lo - 1) <= alpha
        hi = n - lo - 1
        if lo > hi:
            lo, hi = 0, n - 1
        return Interval(xs[lo], xs[hi])

    def to_dict(self) -> Dict[str, Any]:
        ci = self.confidence_interval()
        return {"repeats": list(self.repeats), "warm_seconds": self.warm_seconds, "median": self.median,
                "spread": self.spread, "ci95": [ci.low, ci.high], "rounds": len(self.repeats)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Timing":
        return cls(tuple(float(t) for t in d["repeats"]), float(d["warm_seconds"]))


def _binom_half_cdf(n: int) -> Sequence[float]:
    """``P(B <= k)`` for k = 0..n, B ~ Binomial(n, 1/2)."""
    out, acc = [], 0.0
    for k in range(n + 1):
        acc += math.comb(n, k) / 2.0**n
        out.append(acc)
    return out


def warm_up(fn: Callable[[], Any]) -> Tuple[float, Any]:
    """One untimed call of `fn` (compilation, thread-pool start, page faults): its seconds and output,
    which the correctness check inspects before any timed call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def time_rounds(fn: Callable[[], Any], policy: Policy, warm_seconds: float) -> Timing:
    """``policy.rounds(warm_seconds)`` timed calls of `fn` (after `warm_up`); outputs are dropped at once."""
    times = []
    for _ in range(policy.rounds(warm_seconds)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(tuple(times), warm_seconds)
