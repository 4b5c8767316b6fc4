"""The registry of theorem checks: ``@register(name, title)`` on ``fn(*, quick, seed) -> CheckResult``."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict

from ntkx._src.theory.result import CheckResult

CheckFn = Callable[..., CheckResult]


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    name: str
    title: str
    fn: CheckFn

    def run(self, *, quick: bool = False, seed: int = 0) -> CheckResult:
        """Runs the check and stamps its wall time."""
        t0 = time.perf_counter()
        res = self.fn(quick=quick, seed=seed)
        if res.name != self.name:
            raise RuntimeError(f"check {self.name!r} returned a result named {res.name!r}")
        return dataclasses.replace(res, seconds=time.perf_counter() - t0)


CHECKS: Dict[str, CheckSpec] = {}


def register(name: str, title: str) -> Callable[[CheckFn], CheckFn]:
    """Adds a check to `CHECKS` under `name` (unique; the order of registration is the report's)."""

    def deco(fn: CheckFn) -> CheckFn:
        if name in CHECKS:
            raise RuntimeError(f"check {name!r} registered twice")
        CHECKS[name] = CheckSpec(name, title, fn)
        return fn

    return deco


def order_by_module(modules: "list[str]") -> None:
    """Reorders `CHECKS` in place: by the position of each check's module in `modules`,
    then by registration, so the report's order does not depend on import order."""
    rank = {m: i for i, m in enumerate(modules)}
    items = sorted(enumerate(CHECKS.items()), key=lambda e: (rank.get(e[1][1].fn.__module__, len(rank)), e[0]))
    CHECKS.clear()
    CHECKS.update(kv for _, kv in items)
