"""A minimal progress line for long kernel computations (stderr, no dependency)."""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, Union

ProgressArg = Union[bool, None, Callable[[int, int], None]]


class Progress:
    """Reports `done` of `total` work units to a callback or a stderr line.

    Args:
      what: label printed before the bar.
      total: total work units.
      progress: ``True`` for a stderr line, a callable ``f(done, total)``, or
        ``False``/``None`` for silence.
    """

    def __init__(self, what: str, total: int, progress: ProgressArg):
        self.what, self.total, self.done = what, max(int(total), 1), 0
        self.callback: Optional[Callable[[int, int], None]] = progress if callable(progress) else None
        self.line = progress is True
        self.t0 = time.perf_counter()

    def advance(self, units: int) -> None:
        self.done += units
        if self.callback is not None:
            self.callback(self.done, self.total)
        if self.line:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(30 * frac)
            sys.stderr.write(f"\r{self.what} [{bar:<30}] {100 * frac:5.1f}% {time.perf_counter() - self.t0:7.1f}s")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
