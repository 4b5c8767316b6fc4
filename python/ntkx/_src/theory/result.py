"""Result objects of the theorem checks, fitted rates with confidence intervals, verdict rules.

A check measures numbers, fits rates to them and decides a verdict from the numbers by
a rule it states (`CheckResult.rule`); nothing in the verdict comes from the claim's
text. Fits are power laws ``y ~ C x^p`` in log-log coordinates: every (seed, x) point
enters one least-squares line, and the exponent's confidence interval is Student's t
on its standard error (``n_points - 2`` degrees of freedom). The figure is drawn on
demand (`CheckResult.figure`), with matplotlib imported only then.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)

CONFIDENCE = 0.95


class ConfidenceInterval(NamedTuple):
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """``y ~ C x^exponent`` fitted by least squares on ``(log x, log y)`` over all seeds.

    Attributes:
      exponent: the fitted slope p.
      stderr: its standard error (nan with exactly two points: no residual to estimate it).
      prefactor: C.
      n_points: (seed, x) points in the fit; n_seeds: seeds.
      x_range: the smallest and largest x fitted.
    """

    exponent: float
    stderr: float
    prefactor: float
    n_points: int
    n_seeds: int
    x_range: Tuple[float, float]

    def confidence_interval(self, confidence_level: float = CONFIDENCE) -> ConfidenceInterval:
        """Student-t interval ``exponent +- t_{n-2} stderr`` (unbounded with only two points)."""
        dof = self.n_points - 2
        if dof <= 0 or not np.isfinite(self.stderr):  # two points fix a line but say nothing of its error
            return ConfidenceInterval(-math.inf, math.inf)
        h = float(stats.t.ppf(0.5 + confidence_level / 2, dof)) * self.stderr
        return ConfidenceInterval(self.exponent - h, self.exponent + h)

    def predict(self, x: Any) -> np.ndarray:
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent

    def summary(self, digits: int = 3) -> str:
        lo, hi = self.confidence_interval()
        return f"{self.exponent:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    def to_dict(self) -> Dict[str, Any]:
        lo, hi = self.confidence_interval()
        return {"exponent": self.exponent, "stderr": self.stderr, "ci95": [lo, hi], "prefactor": self.prefactor,
                "n_points": self.n_points, "n_seeds": self.n_seeds, "x_range": list(self.x_range)}


def fit_power_law(x: Any, y: Any) -> PowerLawFit:
    """Fits ``y ~ C x^p`` to positive data.

    Args:
      x: `(n,)` positive abscissae (widths, depths, ...).
      y: `(n,)` or `(seeds, n)` positive measurements at each x.

    Raises:
      ValueError: shapes disagree, fewer than two distinct x, or a non-positive or
        non-finite value (a rate cannot be read off it).
    """
    x = np.asarray(x, dtype=float)
    y = np.atleast_2d(np.asarray(y, dtype=float))
    if x.ndim != 1 or y.shape[-1] != x.shape[0]:
        raise ValueError(f"fit_power_law: x is {x.shape}, y is {y.shape}; y must be (n,) or (seeds, n)")
    if np.unique(x).size < 2:
        raise ValueError("fit_power_law: needs at least two distinct x")
    if not (np.all(np.isfinite(x)) and np.all(x > 0) and np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError(f"fit_power_law: x and y must be finite and > 0, got x={x}, y={y}")
    lx = np.broadcast_to(np.log(x), y.shape).ravel()
    ly = np.log(y).ravel()
    n = lx.size
    if n == 2:
        p = (ly[1] - ly[0]) / (lx[1] - lx[0])
        return PowerLawFit(float(p), math.nan, float(math.exp(ly[0] - p * lx[0])), 2, y.shape[0],
                           (float(x.min()), float(x.max())))
    r = stats.linregress(lx, ly)
    return PowerLawFit(float(r.slope), float(r.stderr), float(math.exp(r.intercept)), n, y.shape[0],
                       (float(x.min()), float(x.max())))


def exponent_verdict(fit: PowerLawFit, expected: float, tol: float) -> Tuple[str, str]:
    """Verdict on a fitted exponent against ``expected +- tol``, and the rule in words.

    holds: the estimate is within tol of the expected value and the 95% interval is
    no wider than +-tol (measured precisely enough to tell); does not hold: the whole
    95% interval lies outside ``[expected - tol, expected + tol]``; inconclusive otherwise.
    """
    lo, hi = fit.confidence_interval()
    rule = (f"holds if |p - ({expected:g})| <= {tol:g} and the 95% CI half-width <= {tol:g}; "
            f"does not hold if the 95% CI misses [{expected - tol:g}, {expected + tol:g}]; else inconclusive")
    if hi < expected - tol or lo > expected + tol:
        return FAILS, rule
    if abs(fit.exponent - expected) <= tol and (hi - lo) / 2 <= tol:
        return HOLDS, rule
    return INCONCLUSIVE, rule


def bound_verdict(fit: PowerLawFit, bound: float, tol: float) -> Tuple[str, str]:
    """Verdict on an ``O(x^bound)`` claim (a decay at least that fast), and the rule in words.

    holds: the 95% interval reaches ``bound`` or below (the data allow a decay at least
    that fast) and its upper end is below ``bound + tol`` (tol: room for pre-asymptotic
    curvature over the measured range); does not hold: the whole interval lies above
    ``bound + tol`` (clearly slower); inconclusive otherwise. A decay faster than the
    bound holds (the bound is then not sharp).
    """
    lo, hi = fit.confidence_interval()
    rule = (f"O(x^{bound:g}) holds if the fitted exponent's 95% CI reaches {bound:g} or below and its upper end "
            f"is <= {bound + tol:g}; does not hold if the whole CI is above {bound + tol:g}; else inconclusive")
    if lo > bound + tol:
        return FAILS, rule
    if lo <= bound and hi <= bound + tol:
        return HOLDS, rule
    return INCONCLUSIVE, rule


def sign_verdict(fit: PowerLawFit) -> Tuple[str, str]:
    """Verdict on "decreases with x": holds if the exponent's 95% CI is below 0, does not
    hold if above 0, inconclusive otherwise."""
    lo, hi = fit.confidence_interval()
    rule = "decreasing holds if the fitted exponent's 95% CI is below 0; does not hold if above 0; else inconclusive"
    return (HOLDS if hi < 0 else FAILS if lo > 0 else INCONCLUSIVE), rule


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """One verdict for a claim made of parts: any part failing fails it, all holding holds it."""
    for v in verdicts:
        if v not in VERDICTS:
            raise ValueError(f"unknown verdict {v!r}; expected one of {VERDICTS}")
    if any(v == FAILS for v in verdicts):
        return FAILS
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return INCONCLUSIVE


Plotter = Callable[["CheckResult", Any], None]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What one theorem check measured and what it concludes.

    Attributes:
      name: the check's registry name (``jacot_thm1``, ...).
      title: a short heading.
      claim: the claim in words.
      source: paper and theorem / table it comes from.
      params: the parameters the check ran with (JSON-able).
      measured: named arrays of measured numbers.
      fits: named power-law fits of them.
      expected: the expected value or rate, in words.
      summary: the measured value or rate, in words (one line, for the verdict table).
      verdict: ``'holds'``, ``'does not hold'`` or ``'inconclusive'``.
      rule: how the verdict follows from the numbers.
      notes: Markdown: what the numbers say, derivations, caveats.
      seconds: wall time of the check.
    """

    name: str
    title: str
    claim: str
    source: str
    params: Mapping[str, Any]
    measured: Mapping[str, Any]
    fits: Mapping[str, PowerLawFit]
    expected: str
    summary: str
    verdict: str
    rule: str
    notes: str = ""
    seconds: float = 0.0
    plotter: Optional[Plotter] = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def figure(self, figsize: Tuple[float, float] = (9.0, 3.6)):
        """A new matplotlib ``Figure`` of the measured numbers (no pyplot, no global state)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        if self.plotter is None:
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, "no figure", ha="center", va="center")
            ax.set_axis_off()
        else:
            self.plotter(self, fig)
        fig.suptitle(f"{self.title}: {self.verdict}", fontsize=10)
        return fig

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able: arrays as lists, fits with their 95% intervals."""
        return {
            "name": self.name, "title": self.title, "claim": self.claim, "source": self.source,
            "params": _jsonable(self.params), "measured": _jsonable(self.measured),
            "fits": {k: f.to_dict() for k, f in self.fits.items()},
            "expected": self.expected, "summary": self.summary, "verdict": self.verdict, "rule": self.rule,
            "notes": self.notes, "seconds": self.seconds,
        }


def fit_table(fits: Mapping[str, PowerLawFit], verdicts: Mapping[str, str], label: str) -> str:
    """Markdown table of fitted exponents for a check's notes.

    Args:
      fits: the fits by name (one row each, in order).
      verdicts: a verdict by name (blank where missing).
      label: the header of the name column.

    Returns:
      The rows ``| name | exponent [95% CI] | range | verdict |`` with their header, joined by newlines.
    """
    rows = [f"| {label} | fitted exponent [95% CI] | range fitted | verdict |", "|---|---|---|---|"]
    for k, f in fits.items():
        rows.append(f"| {k} | {f.summary()} | {f.x_range[0]:g} .. {f.x_range[1]:g} "
                    f"({f.n_points} points, {f.n_seeds} seeds) | {verdicts.get(k, '')} |")
    return "\n".join(rows)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else str(f)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v
