"""pytest-benchmark front end of ``ntkx bench``: the same cases and peers (``ntkx._src.bench``), timed by pytest-benchmark.

``test_suites.py`` parametrizes over every (case, peer) of the selected suites at one scale;
each test builds the peer exactly as ``ntkx bench`` does (`run.run_peer`'s steps: skip with
the reason, one untimed warm-up, the correctness check, then timed rounds), so
``--benchmark-json``, ``--benchmark-compare`` and histories keep working.

Environment switches (read once, at import; nothing is computed at import):
  NTKX_BENCH_SCALE=smoke|small|medium|large   the scale (default small, as ``ntkx bench``)
  NTKX_BENCH_ONLY="fc cntk"                   only these suites (default all)
"""

from __future__ import annotations

import os
from typing import Dict, List

import pytest

from ntkx._src.bench import suites

SCALE = os.environ.get("NTKX_BENCH_SCALE", "small").strip() or "small"
ONLY = os.environ.get("NTKX_BENCH_ONLY", "").split()

if SCALE not in suites.SCALES:
    raise pytest.UsageError(f"NTKX_BENCH_SCALE must be one of {', '.join(suites.SCALES)}, got {SCALE!r}")

_RECORDS = pytest.StashKey[List[Dict]]()


@pytest.fixture(scope="session")
def machine():
    """The cached (or newly measured) machine model at this scale's probe sizes."""
    from ntkx._src.bench.machine import load_or_measure

    return load_or_measure(*suites.MACHINE_PROBES[SCALE])


@pytest.fixture
def record(request):
    """``record(rec)``: keeps a result record (roofline, entries/s) for the summary table."""
    store = request.config.stash.setdefault(_RECORDS, [])
    return store.append


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    records = config.stash.get(_RECORDS, [])
    if not records:
        return
    from ntkx._src.bench.run import _line, speedups

    tr = terminalreporter
    tr.section(f"ntkx bench (scale {SCALE}): roofline and speed-ups (the same cases as `ntkx bench`)")
    for r in records:
        tr.write_line(_line(r))
    for case, peers in speedups(records).items():
        tr.write_line(f"{case}: " + ", ".join(f"{x:.3g}x over {p}" for p, x in peers.items()))
