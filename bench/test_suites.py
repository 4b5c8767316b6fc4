"""Every (case, peer) of ``ntkx bench`` as a pytest-benchmark test, grouped by suite.

Run: ``python -m pytest bench/ --benchmark-only`` (see bench/README.md). Each test skips
with the harness's reason, calls the peer once untimed, fails if that output is wrong
(the case's correctness check), then times ``policy.rounds(warm)`` calls of it.
"""

from __future__ import annotations

import pytest

from ntkx._src.bench import suites
from ntkx._src.bench.peers import PeerSkipped

from .conftest import ONLY, SCALE


def _params():
    out = []
    for name in suites.select(ONLY):
        for case in suites.SUITES[name](SCALE):
            for peer in case.peers:
                marks = [pytest.mark.nt] if peer == "neural_tangents" else []
                out.append(pytest.param(case, peer, id=f"{case.id}-{peer}", marks=marks))
    return out


@pytest.mark.parametrize("case,peer", _params())
def test_bench(benchmark, machine, record, case, peer):
    from ntkx._src.bench.run import timed_record
    from ntkx._src.bench.timing import Timing, warm_up

    reason = dict(case.skip).get(peer)
    try:
        if reason:
            raise PeerSkipped(reason)
        fn = case.build(peer, case.inputs())
    except PeerSkipped as exc:
        pytest.skip(str(exc))
    try:
        warm, out = warm_up(fn)
        check = case.check(peer, out)
        assert check.passed, f"wrong answer: error {check.error:.3g} > {check.tol:g} against {check.reference}"
        work = case.work(peer, out)
        del out
        benchmark.group = case.suite
        benchmark.extra_info.update(case=case.id, peer=peer, params=case.params(), warm_call_s=warm,
                                    check=check.to_dict())
        benchmark.pedantic(fn, rounds=suites.POLICY[SCALE].rounds(warm), warmup_rounds=0, iterations=1)
    finally:
        close = getattr(fn, "close", None)
        if close is not None:
            close()
    stats = getattr(benchmark, "stats", None)
    if stats:  # not under --benchmark-disable: the same record as `ntkx bench` from pytest-benchmark's rounds
        record(timed_record(case, peer, machine, Timing(tuple(stats.stats.data), warm), check, work,
                            getattr(fn, "compiled_kind", None)))
