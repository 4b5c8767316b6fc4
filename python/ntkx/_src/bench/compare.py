"""``ntkx bench compare A.json B.json``: per-case ratios of two runs, regressions called on the measured spread.

A (case, peer) timed in both runs gets the ratio ``median_B / median_A`` (above 1: B is
slower). As asv does (``asv compare``), a change is called only when it is both beyond a
factor (default 1.1) and statistically significant: the two runs' distribution-free 95%
intervals of the median (`Timing.confidence_interval`) do not overlap. So the noise a run
measured sets the bar, and two runs of the same build pass. Cases that passed in A and
failed their correctness check (or raised) in B are ``broken``, which also counts as a
regression; cases in only one run, not timed in one, or timed fewer than `MIN_REPEATS`
times in one (a smoke run) are ``incomparable`` and listed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Tuple

from ntkx._src.bench.timing import Timing

SLOWER, FASTER, SAME, BROKEN, FIXED, INCOMPARABLE = "slower", "faster", "same", "broken", "fixed", "incomparable"

#: Repetitions a run needs on both sides for a verdict: fewer give no interval (a smoke run's one call).
MIN_REPEATS = 3

#: The statuses `Comparison.regressions` counts.
REGRESSIONS = (SLOWER, BROKEN)


@dataclasses.dataclass(frozen=True)
class Row:
    """One (case, peer) of the comparison: `verdict` and, when both were timed, the `ratio` B / A and intervals."""

    case: str
    peer: str
    verdict: str
    ratio: float = float("nan")
    a_ci: Tuple[float, float] = (float("nan"), float("nan"))
    b_ci: Tuple[float, float] = (float("nan"), float("nan"))
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """All rows of a comparison, with the factor used."""

    rows: Tuple[Row, ...]
    factor: float

    @property
    def regressions(self) -> List[Row]:
        return [r for r in self.rows if r.verdict in REGRESSIONS]

    def table(self) -> str:
        """The printed table: one line per (case, peer), regressions marked with ``!!``."""
        lines = [f"{'case':<42} {'peer':<18} {'B / A':>8}  {'A 95% CI [s]':>23} {'B 95% CI [s]':>23}  verdict"]
        for r in self.rows:
            mark = "!!" if r.verdict in REGRESSIONS else "  "
            ratio = f"{r.ratio:8.3f}" if r.ratio == r.ratio else f"{'-':>8}"
            ci = [f"{c[0]:10.4g} .. {c[1]:<10.4g}" if c[0] == c[0] else f"{'-':>23}" for c in (r.a_ci, r.b_ci)]
            lines.append(f"{r.case:<42} {r.peer:<18} {ratio}  {ci[0]} {ci[1]}  {mark}{r.verdict}"
                         + (f" ({r.note})" if r.note else ""))
        n = len(self.regressions)
        lines.append(f"{n} regression(s) beyond x{self.factor:g} and the measured spread" if n else
                     f"no regression beyond x{self.factor:g} and the measured spread")
        return "\n".join(lines) + "\n"


def load(path: os.PathLike) -> Dict[str, Any]:
    """A results document (``results.json`` of ``ntkx bench``).

    Raises:
      ValueError: not a results document of a known api_version.
    """
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("api_version") != 1 or "results" not in doc:
        raise ValueError(f"{os.fspath(path)!r} is not an ntkx bench results.json (api_version 1)")
    return doc


def compare(a: Mapping[str, Any], b: Mapping[str, Any], factor: float = 1.1) -> Comparison:
    """Compares results document `b` against `a` (see the module docstring).

    Args:
      a, b: results documents (`load`); `a` is the reference (the older run).
      factor: the smallest ratio called a change (> 1).
    """
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    ra = {(r["case"], r["peer"]): r for r in a["results"]}
    rb = {(r["case"], r["peer"]): r for r in b["results"]}
    rows = []
    for key in list(ra) + [k for k in rb if k not in ra]:
        x, y = ra.get(key), rb.get(key)
        if x is None or y is None:
            rows.append(Row(*key, INCOMPARABLE, note=f"only in {'A' if y is None else 'B'}"))
            continue
        xs, ys = x["status"], y["status"]
        if xs == "ok" and ys in ("failed", "error"):
            rows.append(Row(*key, BROKEN, note=y.get("reason", "")[:120]))
            continue
        if xs in ("failed", "error") and ys == "ok":
            rows.append(Row(*key, FIXED))
            continue
        if xs != "ok" or ys != "ok":
            rows.append(Row(*key, INCOMPARABLE, note=f"A {xs}, B {ys}"))
            continue
        ta, tb = Timing.from_dict(x["timing"]), Timing.from_dict(y["timing"])
        # Work per entry can differ when a peer ran another N: compare time per entry.
        ratio = (tb.median / y["entries"]) / (ta.median / x["entries"])
        if min(len(ta.repeats), len(tb.repeats)) < MIN_REPEATS:
            rows.append(Row(*key, INCOMPARABLE, ratio,
                            note=f"fewer than {MIN_REPEATS} repetitions: no measured spread"))
            continue
        ca, cb = ta.confidence_interval(), tb.confidence_interval()
        ca_n = (ca.low / x["entries"], ca.high / x["entries"])
        cb_n = (cb.low / y["entries"], cb.high / y["entries"])
        if ratio > factor and cb_n[0] > ca_n[1]:
            verdict = SLOWER
        elif ratio < 1 / factor and cb_n[1] < ca_n[0]:
            verdict = FASTER
        else:
            verdict = SAME
        rows.append(Row(*key, verdict, ratio, (ca.low, ca.high), (cb.low, cb.high)))
    return Comparison(tuple(rows), factor)
