"""Running the suites: every (case, peer) built, warmed up, checked, then timed; results written as they come.

For each case of each selected suite, its inputs are made once and each peer in turn is
built (`PeerSkipped`: listed with the reason), called once untimed (compilation, thread
pools, page faults), its output checked against the case's reference (a wrong answer
fails the case: no timing, status ``failed``), then timed by the scale's `Policy`. A peer
that raises is an ``error`` entry and the run goes on. With `out`, ``results.json`` is
rewritten atomically after every case, so an interrupted run keeps what finished;
``report.md`` and the figures are written at the end (`report.write_report`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ntkx._src import durable
from ntkx._src.bench import suites as S
from ntkx._src.bench.peers import Check, PeerSkipped, Work
from ntkx._src.bench.machine import MachineModel, blas_info, load_or_measure
from ntkx._src.bench.timing import Policy, Timing, time_rounds, warm_up
from ntkx._src.theory.result import _jsonable

API_VERSION = 1

OK, FAILED, SKIPPED, ERROR = "ok", "failed", "skipped", "error"


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def _load() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _versions() -> Dict[str, Optional[str]]:
    """Versions of what the peers and the harness run on (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("ntkx", "numpy", "scipy", "jax", "jaxlib", "neural-tangents", "dask", "distributed", "zarr",
                 "threadpoolctl", "matplotlib", "tqdm", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def provenance(command: Optional[str], scale: str, suites: Sequence[str], started: float,
               load_start: Optional[List[float]], status: str) -> Dict[str, Any]:
    """Where these numbers come from: command, versions, commit, build, BLAS and threads, load average, dates."""
    import ntkx
    from ntkx._src.theory.report import git_commit

    now = time.time()
    return {
        "command": command, "scale": scale, "suites": list(suites), "ntkx_version": ntkx.__version__,
        "git": git_commit(), "build_info": ntkx.build_info(), "versions": _versions(),
        "python": platform.python_version(), "platform": platform.platform(),
        "threadpools": blas_info(), "load_average_start": load_start, "load_average_end": _load(),
        "started": _iso(started), "updated": _iso(now), "total_seconds": round(now - started, 2), "status": status,
    }


def _error_text(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return last + where


def base_record(case: Any, peer: str) -> Dict[str, Any]:
    """The fields every result record has, whatever its status."""
    rec = {"suite": case.suite, "case": case.id, "family": case.family, "size": case.size, "peer": peer,
           "params": case.params(), "entries": case.entries(peer)}
    if getattr(case, "baseline", None):
        rec["baseline"] = case.baseline
    return rec


def timed_record(case: Any, peer: str, machine: MachineModel, timing: Timing, check: Check,
                 work: Optional[Work], compiled: Optional[str] = None) -> Dict[str, Any]:
    """The record of a (case, peer) that passed its check and was timed: rates and roofline position."""
    rec = base_record(case, peer)
    if compiled:
        rec["compiled"] = compiled
    t = timing.median
    threads = getattr(case, "threads", None)
    rec.update(status=OK, check=check.to_dict(), timing=timing.to_dict(), entries_per_second=rec["entries"] / t)
    tiles = getattr(case, "tiles", None)
    if tiles is not None and peer != getattr(case, "baseline", None):
        rec.update(tiles=tiles, tiles_per_second=tiles / t)
    if work is not None:
        rate = work.flops / t / 1e9
        roof = machine.roofline_gflops(work.intensity, work.dtype, threads)
        rec["work"] = {"flops": work.flops, "bytes": work.bytes, "intensity": work.intensity, "dtype": work.dtype}
        rec.update(gflops=rate, roofline_gflops=roof, roofline_fraction=rate / roof,
                   bound="compute" if roof >= machine.peak_gflops(work.dtype, threads) else "memory")
    return rec


def run_peer(case: Any, peer: str, data: Any, machine: MachineModel, policy: Policy) -> Dict[str, Any]:
    """One (case, peer): skipped with the reason, or built, warmed up, checked and timed; its result record."""
    rec = base_record(case, peer)
    try:
        reason = dict(case.skip).get(peer)
        if reason:
            raise PeerSkipped(reason)
        fn = case.build(peer, data)
    except PeerSkipped as exc:
        return {**rec, "status": SKIPPED, "reason": str(exc)}
    except Exception as exc:
        return {**rec, "status": ERROR, "reason": _error_text(exc)}
    try:
        warm, out = warm_up(fn)
        check = case.check(peer, out)
        if not check.passed:
            return {**rec, "status": FAILED, "warm_seconds": warm, "check": check.to_dict(),
                    "reason": f"wrong answer: error {check.error:.3g} > tol {check.tol:g} against {check.reference}"}
        work = case.work(peer, out)
        del out
        timing = time_rounds(fn, policy, warm)
    except Exception as exc:
        return {**rec, "status": ERROR, "reason": _error_text(exc)}
    finally:
        close = getattr(fn, "close", None)
        if close is not None:
            close()
    return timed_record(case, peer, machine, timing, check, work, getattr(fn, "compiled_kind", None))


def speedups(results: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """Per case: the baseline's entries/s over each other peer's (ntkx's speed-up over that peer)."""
    by_case: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for r in results:
        if r["status"] == OK:
            by_case.setdefault(r["case"], {})[r["peer"]] = r
    out = {}
    for cid, peers in by_case.items():
        base_name = next((r.get("baseline") for r in peers.values() if r.get("baseline")), "ntkx")
        base = peers.get(base_name)
        if base is None:
            continue
        out[cid] = {p: base["entries_per_second"] / r["entries_per_second"] for p, r in peers.items() if p != base_name}
    return out


def _line(r: Dict[str, Any]) -> str:
    """One row of the live table."""
    head = f"{r['case']:<40} {r['peer']:<18}"
    if r["status"] != OK:
        return f"{head} {r['status'].upper()}: {r.get('reason', '')}"
    tm = r["timing"]
    roof = f"{r['roofline_fraction']:6.1%} of roofline" if "roofline_fraction" in r else "   no work model"
    return (f"{head} {tm['median']:10.4g} s  +-{tm['spread']:5.1%} x{tm['rounds']:<3d} "
            f"{r['entries_per_second']:10.4g} entries/s  {roof}")


def run(scale: str = "small", only: Optional[Sequence[str]] = None, out: Optional[os.PathLike] = None, *,
        progress: bool = True, remeasure: bool = False, command: Optional[str] = None,
        echo: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Runs the selected suites at `scale` and returns the results document (what ``results.json`` holds).

    Args:
      scale: 'smoke', 'small', 'medium' or 'large' (`suites.SCALES`).
      only: suite names (all when None or empty).
      out: folder of ``results.json``, ``report.md`` and the PNGs (created); None writes nothing.
      progress: a tqdm.auto bar over the (case, peer) pairs, and one table row per result.
      remeasure: measure the machine model even when a cached one fits.
      command: the command line for the provenance (default: this call).
      echo: where table rows go (default: through tqdm.write, or print without a bar).

    Returns:
      ``{"api_version", "provenance", "machine", "results": [record...], "speedups": {case: {peer: x}}}``;
      a record has suite, case, family, size, peer, params, entries, status ('ok' | 'failed' |
      'skipped' | 'error'), reason, check, timing (repeats, median, spread, ci95, rounds),
      entries_per_second, work, gflops, roofline_gflops, roofline_fraction, bound.
    """
    if scale not in S.SCALES:
        raise ValueError(f"scale must be one of {', '.join(S.SCALES)}, got {scale!r}")
    names = S.select(only)
    started, load_start = time.time(), _load()
    command = command or f"run(scale={scale!r}, only={list(only) if only else None!r})"
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    probe, gemm = S.MACHINE_PROBES[scale]
    machine = load_or_measure(probe, gemm, remeasure=remeasure)
    cases = [c for name in names for c in S.SUITES[name](scale)]
    total = sum(len(c.peers) for c in cases)
    bar = _bar(total, progress)
    say = echo or (bar.write if bar is not None else (lambda s: print(s, flush=True)))
    results: List[Dict[str, Any]] = []

    def document(status: str) -> Dict[str, Any]:
        return {"api_version": API_VERSION,
                "provenance": provenance(command, scale, names, started, load_start, status),
                "machine": machine.to_dict(), "results": results, "speedups": speedups(results)}

    def save(status: str) -> None:
        if out is not None:
            text = json.dumps(_jsonable(document(status)), indent=1, allow_nan=False) + "\n"
            durable.atomic_write(out / "results.json", text.encode())

    if progress or echo:
        say(f"machine: {machine.cpu['model']}, {machine.cpu['cores']} cores, {machine.cpu['simd_bits']}-bit SIMD; "
            + _machine_line(machine) + (" (cached)" if machine.cached else ""))
    policy = S.POLICY[scale]
    try:
        for case in cases:
            data = case.inputs()
            for peer in case.peers:
                if bar is not None:
                    bar.set_postfix_str(f"{case.id} {peer}", refresh=True)
                rec = run_peer(case, peer, data, machine, policy)
                results.append(rec)
                if progress or echo:
                    say(_line(rec))
                if bar is not None:
                    bar.update(1)
            if progress or echo:
                line = _speedup_line(case.id, results)
                if line:
                    say(line)
            del data
            save(f"in progress: {len(results)} of {total}")
    except BaseException:
        save(f"interrupted after {len(results)} of {total}")
        raise
    finally:
        if bar is not None:
            bar.close()
    doc = document("complete")
    save("complete")
    if out is not None:
        from ntkx._src.bench.report import write_report

        write_report(doc, out)
    return doc


def _speedup_line(case_id: str, results: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The live table's summary of one case: its baseline's speed-up over each peer that ran."""
    mine = [r for r in results if r["case"] == case_id]
    ratios = speedups(mine).get(case_id)
    if not ratios:
        return None
    base = next((r.get("baseline") for r in mine if r.get("baseline")), "ntkx")
    return f"{case_id:<40} {base} speed-up: " + ", ".join(f"{p} {x:.3g}x" for p, x in ratios.items())


def _machine_line(m: MachineModel) -> str:
    fma = (f"FMA peak float64 {m.fma['float64']['one_core_gflops']:.1f} / {m.fma['float64']['all_cores_gflops']:.1f}"
           " GFLOP/s (1 core / all)" if "float64" in m.fma else f"FMA probe: {m.fma.get('error')}")
    return (f"{fma}, triad {m.triad['all_cores_gbs']:.1f} GB/s, dgemm {m.gemm['float64']['all_cores_gflops']:.1f} "
            f"GFLOP/s, load {m.load_average}")


def _bar(total: int, progress: bool):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="ntkx bench", unit="run", file=sys.stderr, dynamic_ncols=True)
