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
import weakref
from typing import Callable, Dict, Optional, Tuple

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
# neural-tangents peers: compiled, always.
#
# A peer timed eagerly is not neural-tangents at its best (the synth32-gap CNTK ran
# 19.4 s per call eager against 3.7 s jitted), so every neural-tangents callable the
# bench times is built by `nt_compile` and wrapped by `nt_peer`, which refuses anything
# else. neural-tangents' docs name two compiled forms, and these are the only two:
#
#   jax.jit(kernel_fn, static_argnames='get')      the whole Gram in one XLA program
#   nt.batch(kernel_fn, batch_size=b, ...)         blocks of b x b; nt.batch compiles
#       internally (neural_tangents/_src/batching.py, 0.6.5: one device ->
#       `_jit_or_pmap_broadcast(kernel_fn, 0)`, i.e. `jax.jit` of kernel_fn closed over
#       its non-array arguments such as `get`; several devices -> `_parallel`, which
#       `pmap`s it; `_serial` then loops over the blocks in Python, each block one
#       call of that compiled function).
# --------------------------------------------------------------------------------------


class EagerPeerError(RuntimeError):
    """A neural-tangents kernel_fn ran on concrete arrays, i.e. outside jit/pmap."""


#: Every function `nt_compile` got from nt.batch. A registry rather than an attribute:
#: functools.wraps (and neural-tangents' own utils.wraps) copy a function's __dict__ into
#: wrappers, so an attribute mark could spread to a wrapper that is not nt.batch's output.
_NT_BATCHED: "weakref.WeakSet" = weakref.WeakSet()


def _traced_only(kernel_fn: Callable) -> Callable:
    """kernel_fn, made to raise EagerPeerError when its body runs on concrete arrays.

    Under jax.jit or pmap the body of kernel_fn runs only while it is traced, and then
    its array arguments are jax Tracers; eagerly (no jit, or inside jax.disable_jit())
    they are numpy or concrete jax arrays. The check costs nothing on compiled calls:
    a warm compiled call does not run the Python body at all.
    """
    import functools

    import jax

    @functools.wraps(kernel_fn)  # keeps __signature__ (jit's static 'get') and input_req
    def traced_kernel_fn(x1, x2=None, *args, **kwargs):
        leaves = jax.tree_util.tree_leaves((x1, x2))
        if not any(isinstance(v, jax.core.Tracer) for v in leaves):
            raise EagerPeerError(
                "the neural-tangents peer ran eagerly (its kernel_fn got concrete arrays): "
                "time it through jax.jit or nt.batch (bench/conftest.py: nt_compile)")
        return kernel_fn(x1, x2, *args, **kwargs)

    return traced_kernel_fn


def nt_compile(kernel_fn: Callable, n: int, batch_size: Optional[int] = None,
               store_on_device: bool = False) -> Callable:
    """The compiled form of a neural-tangents stax `kernel_fn` for a Gram of `n` inputs.

    `batch_size` None or >= n: ``jax.jit(kernel_fn, static_argnames='get')`` (nt.batch
    needs a block smaller than the data to batch anything, and the bench used to fall
    back to the bare, eager kernel_fn there). 0 < batch_size < n: ``nt.batch(kernel_fn,
    batch_size, store_on_device=store_on_device)`` (n must be a multiple of it). Either
    way kernel_fn is first wrapped by `_traced_only`, so a path that ends up eager
    raises EagerPeerError at the first call instead of being timed.
    """
    import jax

    guarded = _traced_only(kernel_fn)
    if batch_size is None or batch_size >= n:
        return jax.jit(guarded, static_argnames="get")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive or None, got {batch_size}")
    import neural_tangents as nt

    fn = nt.batch(guarded, batch_size=batch_size, store_on_device=store_on_device)
    _NT_BATCHED.add(fn)
    return fn


def compiled_kind(fn) -> Optional[str]:
    """'jax.jit' or 'nt.batch' when `fn` is a compiled neural-tangents callable, else None.

    The rule: `fn` is a jax-staged function (an instance of ``jax.stages.Wrapped``:
    what jax.jit and jax.pmap return, the objects with ``.lower``; a plain Python
    function, such as a stax kernel_fn or a closure calling one, is not), or it is a
    function that `nt_compile` itself obtained from nt.batch (kept in a registry,
    since nt.batch's output is a plain Python function that only calls a jitted one
    and cannot be told apart by its type or attributes).
    """
    import jax

    if isinstance(fn, jax.stages.Wrapped):
        return "jax.jit"
    try:
        if fn in _NT_BATCHED:
            return "nt.batch"
    except TypeError:  # not weak-referenceable: not ours
        pass
    return None


def nt_peer(fn: Callable, x, get=("nngp", "ntk")) -> Callable[[], object]:
    """The zero-argument callable the bench times for neural-tangents: ``fn(x, None, get)``.

    Raises TypeError unless `fn` is compiled (`compiled_kind`; build it with
    `nt_compile`). `x` is put on the device once, outside the timed calls; each call
    blocks until the result is ready (jax dispatches asynchronously). The warm-up (the
    compilation) is the caller's first, untimed call, as every bench test makes one.
    The callable carries `.compiled` (fn) and `.compiled_kind` for the tests.
    """
    kind = compiled_kind(fn)
    if kind is None:
        raise TypeError(
            f"neural-tangents peer {fn!r} is not compiled: build it with nt_compile "
            "(jax.jit(kernel_fn, static_argnames='get') or nt.batch); an eager "
            "kernel_fn is not neural-tangents at its best")
    import jax

    xj = jax.device_put(x)

    def run():
        return jax.block_until_ready(fn(xj, None, get=get))

    run.compiled = fn
    run.compiled_kind = kind
    return run


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
