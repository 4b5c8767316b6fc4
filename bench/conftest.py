"""Benchmark infrastructure: size switches, the optional neural-tangents peer, result
recording, and the ratio table printed at the end of the session.

Environment switches (read once, at import; nothing is computed at import):
  NTKX_BENCH_FULL=1   also run the heaviest (peer, case) pairs (~30 s per call each).
  NTKX_BENCH_SMALL=1  shrink every case's N by 10x (smoke test of the suite itself).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Dict, Optional, Tuple

import numpy as np
import pytest

from .peak import describe_threadpools, measured_peak_gflops


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


FULL = _flag("NTKX_BENCH_FULL")
SMALL = _flag("NTKX_BENCH_SMALL")
SHRINK = 10 if SMALL else 1

HAS_NT = importlib.util.find_spec("neural_tangents") is not None

PEERS = ("ntkx", "ntkx_ntk", "numpy_gram", "numpy_recursion", "neural_tangents")

#: (peer, nominal N, nominal d): about 30 s per call at full size; run only with NTKX_BENCH_FULL=1.
HEAVY = {("numpy_recursion", 8000, 32), ("neural_tangents", 8000, 32)}


@dataclasses.dataclass(frozen=True)
class Case:
    """A symmetric Gram problem: N points in R^d through L ReLU layers (N already shrunk)."""

    n: int
    d: int
    depth: int
    nominal_n: int

    @property
    def id(self) -> str:
        return f"N{self.n}-d{self.d}-L{self.depth}"

    @property
    def pairs(self) -> int:
        """Distinct kernel entries of a symmetric Gram: N(N+1)/2."""
        return self.n * (self.n + 1) // 2

    @property
    def gram_flops(self) -> float:
        """Flops of one triangle of X X^T (what a symmetric Gram needs): N(N+1) d."""
        return 2.0 * self.pairs * self.d


def make_case(n: int, d: int, depth: int) -> Case:
    return Case(max(2, n // SHRINK), d, depth, n)


def skip_reason(peer: str, case: Case) -> Optional[str]:
    """Why (peer, case) does not run in this session, or None when it runs."""
    if peer == "ntkx_ntk" and case.d < 784:
        return "ntkx_ntk (the NTK alone) runs only where the Gram bounds the time (d >= 784)"
    if peer == "neural_tangents" and not HAS_NT:
        return "neural-tangents is not installed (pip install .[nt])"
    if (peer, case.nominal_n, case.d) in HEAVY and not FULL and not SMALL:
        return (f"{peer} at N={case.n}, d={case.d} takes ~30 s per call; "
                "set NTKX_BENCH_FULL=1 to include it")
    return None


def neural_tangents_stax():
    """neural-tangents' stax with float64 enabled in jax, or None when it is not installed."""
    if not HAS_NT:
        return None
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax

    return stax


# --------------------------------------------------------------------------------------
# Recording and the end-of-session table.
# --------------------------------------------------------------------------------------

_RESULTS = pytest.StashKey[Dict[Tuple[str, str], dict]]()
_CNTK: Dict[Tuple[str, str], dict] = {}


def record_cntk(benchmark, case: str, peer: str, n: int, flops_per_pair: float,
                peak: Optional[float] = None) -> None:
    """Keeps a CNTK benchmark's median for the CNTK table (pairs/s, ratio, GFLOP/s).

    `peak`: the dgemm GFLOP/s measured right after this case (this machine's speed
    drifts by 10-20% within minutes, so a peak from the end of the session can be
    off for a case timed minutes earlier)."""
    stats = getattr(benchmark, "stats", None)
    if not stats:
        return
    _CNTK[(case, peer)] = dict(n=n, median=stats.stats.median, rounds=stats.stats.rounds, fpp=flops_per_pair,
                               peak=peak)


def cntk_table(peak: Optional[float]) -> str:
    lines = [f"{'case':<16} {'peer':<16} {'images':>6} {'median [s]':>10} {'pairs/s':>11} {'ntkx x':>8}  work rate"]
    for case in dict.fromkeys(c for c, _ in _CNTK):
        base = _CNTK.get((case, "ntkx"))
        base_rate = base and (base["n"] * (base["n"] + 1) / 2) / base["median"]
        for peer in ("ntkx", "neural_tangents"):
            r = _CNTK.get((case, peer))
            if r is None:
                continue
            rate = (r["n"] * (r["n"] + 1) / 2) / r["median"]
            speed = f"{base_rate / rate:8.1f}" if base_rate and peer != "ntkx" else f"{'':>8}"
            work = ""
            if peer == "ntkx":
                gf = rate * r["fpp"] / 1e9
                pk = r.get("peak") or peak
                work = f"{gf:.1f} GFLOP/s" + (f" = {gf / pk:.0%} of {pk:.1f}" if pk else "")
            lines.append(f"{case:<16} {peer:<16} {r['n']:>6} {_fmt_time(r['median'])} {rate:11.4g} {speed}  {work}")
    return "\n".join(lines)
_LOAD_AT_START = pytest.StashKey[Optional[float]]()


def _load1() -> Optional[float]:
    """1-minute load average (None where the OS has none): other work skews every timing."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def pytest_sessionstart(session):
    session.config.stash[_LOAD_AT_START] = _load1()


@pytest.fixture
def record(request):
    """``record(case, peer, benchmark)``: keep the benchmark's median for the ratio table."""
    store = request.config.stash.setdefault(_RESULTS, {})

    def _record(case: Case, peer: str, benchmark) -> None:
        stats = getattr(benchmark, "stats", None)
        if not stats:  # --benchmark-disable: the function ran once, untimed
            return
        store[(case.id, peer)] = dict(case=case, median=stats.stats.median, rounds=stats.stats.rounds)

    return _record


def _fmt_time(t: float) -> str:
    return f"{t:10.4f}" if t >= 1e-3 else f"{t:10.2e}"


def ratio_table(results: Dict[Tuple[str, str], dict], peak: Optional[float]) -> str:
    """The per-case table: median per peer, peer/ntkx, and ntkx's achieved rates."""
    cases = {}
    for (cid, peer), r in results.items():
        cases.setdefault(cid, (r["case"], {}))[1][peer] = r
    lines = [f"{'case':<18} {'peer':<16} {'median [s]':>10} {'rounds':>6} {'/ ntkx':>8}  rate"]
    for cid, (case, by_peer) in cases.items():
        base = by_peer.get("ntkx")
        first = True
        for peer in PEERS:
            r = by_peer.get(peer)
            if r is None:
                continue
            t = r["median"]
            ratio = f"{t / base['median']:8.2f}" if base else f"{'-':>8}"
            rate = ""
            if peer == "ntkx":
                rate = f"{case.pairs * case.depth / t:.3e} layer-steps/s"
                if peak:
                    rate += f"; Gram at peak would take {case.gram_flops / (peak * 1e9) / t:.0%} of this"
            elif peer == "numpy_gram":
                gf = case.gram_flops / t / 1e9
                rate = f"{gf:.1f} GFLOP/s (triangle)" + (f" = {gf / peak:.0%} of peak" if peak else "")
            lines.append(f"{cid if first else '':<18} {peer:<16} {_fmt_time(t)} {r['rounds']:>6} {ratio}  {rate}")
            first = False
        gram = by_peer.get("numpy_gram")
        if base and gram and case.d >= 784:
            lines.append(f"{'':<18} ntkx / numpy_gram = {base['median'] / gram['median']:.2f}"
                         " (NNGP + NTK; 1 = ntkx as fast as the Gram alone)")
        ntk_only = by_peer.get("ntkx_ntk")
        if ntk_only and gram:
            lines.append(f"{'':<18} ntkx_ntk / numpy_gram = {ntk_only['median'] / gram['median']:.2f}"
                         " (the NTK alone: one N x N output, as x @ x.T)")
    return "\n".join(lines)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(_RESULTS, {})
    if not results and not _CNTK:
        return
    tr = terminalreporter
    tr.section("ntkx benchmark: ratios against peers (float64)")
    if SMALL:
        tr.write_line("NTKX_BENCH_SMALL=1: every N shrunk 10x -- a smoke test, not a measurement")
    import ntkx

    peak = measured_peak_gflops()
    tr.write_line(f"machine: float64 dgemm peak {peak:.1f} GFLOP/s (2000^3 matmul, median of 5); "
                  f"ntkx OpenMP threads {ntkx.build_info()['openmp_threads']}; numpy {np.__version__}")
    for line in describe_threadpools().splitlines():
        tr.write_line("  " + line)
    start, end = config.stash.get(_LOAD_AT_START, None), _load1()
    if start is not None and end is not None:
        tr.write_line(f"load average (1 min) at start {start:.2f}, at end {end:.2f}, on {os.cpu_count()} CPUs: "
                      "anything well above 0 before the run means other work shared these cores")
    tr.write_line("")
    if results:
        for line in ratio_table(results, peak).splitlines():
            tr.write_line(line)
    if _CNTK:
        tr.write_line("")
        tr.write_line("CNTK (float64, symmetric Gram, [Conv 3x3 -> Relu] x 6 -> GAP|Flatten -> Dense; "
                      "'ntkx x' = ntkx's pairs/s over the peer's;")
        tr.write_line("work rate: the work model's GFLOP/s against the dgemm GFLOP/s measured right after that case)")
        for line in cntk_table(peak).splitlines():
            tr.write_line(line)
