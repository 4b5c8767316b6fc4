"""Progress of long computations: a ``tqdm.auto`` bar (a terminal or a notebook) or a callback."""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Union

ProgressArg = Union[bool, None, Callable[[int, int], None]]


class Progress:
    """Reports `done` of `total` work units to a callback or a ``tqdm.auto`` bar on stderr.

    The bar closes itself once `done` reaches `total`; use the object as a context
    manager (or call `close`) so that a call stopped early (an error, Ctrl-C) closes it too.

    Args:
      what: the bar's label.
      total: total work units (at least 1 is reported).
      progress: ``True`` for a bar, a callable ``f(done, total)``, or ``False``/``None``
        for silence.
      unit: the bar's name of one work unit (``"pair"``, ``"tile"``, ``"step"``).
    """

    def __init__(self, what: str, total: int, progress: ProgressArg, unit: str = "it"):
        self.what, self.total, self.done = what, max(int(total), 1), 0
        self.callback: Optional[Callable[[int, int], None]] = progress if callable(progress) else None
        self.bar: Any = None
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=what, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def advance(self, units: int) -> None:
        """Adds `units` finished work units and reports the new count."""
        self.done += units
        if self.callback is not None:
            self.callback(self.done, self.total)
        if self.bar is not None:
            self.bar.update(units)
            if self.done >= self.total:
                self.close()

    def close(self) -> None:
        """Closes the bar (it stays on screen at its last count); idempotent, a no-op without one."""
        if self.bar is not None:
            bar, self.bar = self.bar, None
            bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
