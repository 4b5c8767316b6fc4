"""``ntkx bench --scale smoke`` end to end (issue 16): the harness runs, checks, times and reports.

One in-process run of the command (about 20 s on 2 cores) into a temporary folder, with
the machine-model cache in a temporary folder too; the assertions read its results.json,
report.md and PNGs. The numbers of a smoke run are not measurements; what is asserted is
their presence, consistency and the harness's rules (every timed output checked first, a
wrong answer fails the case, an uncompiled neural-tangents peer is refused, a missing
peer is listed with its reason).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from conftest import HAS_NT
from ntkx import cli
from ntkx._src.bench import cases as C
from ntkx._src.bench import peers as P
from ntkx._src.bench import run as R
from ntkx._src.bench import suites
from ntkx._src.bench.machine import load_or_measure
from ntkx._src.bench.timing import Policy, Timing

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    saved = os.environ.get("NTKX_CACHE_DIR")
    os.environ["NTKX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        rc = cli.main(["bench", "--scale", "smoke", "--out", str(out), "--no-progress"])
        doc = json.loads((out / "results.json").read_text())
        cached = load_or_measure(*suites.MACHINE_PROBES["smoke"])
    finally:
        if saved is None:
            os.environ.pop("NTKX_CACHE_DIR")
        else:
            os.environ["NTKX_CACHE_DIR"] = saved
    return rc, out, doc, cached


def test_exit_status_and_files(smoke):
    rc, out, doc, _ = smoke
    assert rc == 0
    for name in ("report.md", "results.json", "time_vs_n.png", "roofline.png", "speedup.png"):
        assert (out / name).stat().st_size > 0
    for name in ("time_vs_n.png", "roofline.png", "speedup.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_provenance(smoke):
    prov = smoke[2]["provenance"]
    assert smoke[2]["api_version"] == R.API_VERSION == 1
    assert prov["scale"] == "smoke" and prov["suites"] == list(suites.SUITES) and prov["status"] == "complete"
    assert prov["command"].startswith("ntkx bench --scale smoke --out ")
    import ntkx

    assert prov["ntkx_version"] == ntkx.__version__ and prov["build_info"] == ntkx.build_info()
    assert prov["versions"]["numpy"] == np.__version__
    blas = [p for p in prov["threadpools"] if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] >= 1 for p in blas)
    if hasattr(os, "getloadavg"):
        assert len(prov["load_average_start"]) == 3 and len(prov["load_average_end"]) == 3
    assert prov["total_seconds"] > 0


def test_machine_model(smoke):
    m, cached = smoke[2]["machine"], smoke[3]
    cpu = m["cpu"]
    assert cpu["cores"] >= 1 and cpu["simd_bits"] in (64, 128, 256, 512) and isinstance(cpu["model"], str)
    if "error" not in m["fma"]:
        for dt in ("float64", "float32"):
            one, allc = m["fma"][dt]["one_core_gflops"], m["fma"][dt]["all_cores_gflops"]
            assert 0.1 < one and 0.1 < allc
            assert len(m["fma"][dt]["one_core_seconds"]) >= 2
        if cpu["nominal_peak_gflops"]:  # measured can exceed the nominal clock's figure only through turbo
            assert m["fma"]["float64"]["one_core_gflops"] < 2 * cpu["nominal_peak_gflops"]["float64"] / cpu["cores"]
    assert m["triad"]["one_core_gbs"] > 0.1 and m["triad"]["all_cores_gbs"] > 0.1
    assert m["gemm"]["float64"]["all_cores_gflops"] > 0.1 and m["gemm"]["float32"]["one_core_gflops"] > 0.1
    assert isinstance(m["cuda"]["present"], bool) and (m["cuda"]["present"] or m["cuda"]["reason"])
    # the second call found the run's model in the cache instead of measuring again
    assert cached.cached and cached.key == m["key"] and cached.measured == m["measured"]


def test_every_result_was_checked_then_timed(smoke):
    results = smoke[2]["results"]
    assert {r["suite"] for r in results} == set(suites.SUITES)
    statuses = {r["status"] for r in results}
    assert statuses <= {"ok", "skipped"}, [r for r in results if r["status"] not in ("ok", "skipped")]
    for r in results:
        if r["status"] == "skipped":
            assert len(r["reason"]) > 20
            continue
        assert r["check"]["passed"] and r["check"]["error"] <= r["check"]["tol"]
        tm = r["timing"]
        assert tm["rounds"] == len(tm["repeats"]) >= 1 and tm["median"] > 0 and tm["warm_seconds"] > 0
        assert r["entries_per_second"] == pytest.approx(r["entries"] / tm["median"])
        if "work" in r:
            w = r["work"]
            assert w["intensity"] == pytest.approx(w["flops"] / w["bytes"])
            assert r["gflops"] == pytest.approx(w["flops"] / tm["median"] / 1e9)
            assert 0 < r["roofline_fraction"] == pytest.approx(r["gflops"] / r["roofline_gflops"])
    for suite in suites.SUITES:
        assert any(r["status"] == "ok" for r in results if r["suite"] == suite), suite


def test_peers_and_ratios(smoke):
    doc = smoke[2]
    fc = [r for r in doc["results"] if r["suite"] == "fc"]
    assert {r["peer"] for r in fc if r["status"] == "ok"} >= {"ntkx", "numpy_gram", "numpy_recursion"}
    nt = [r for r in fc if r["peer"] == "neural_tangents"]
    if HAS_NT:
        timed = [r for r in nt if r["status"] == "ok"]
        assert len(timed) == 1 and timed[0]["compiled"] == "jax.jit"
    else:
        assert all(r["status"] == "skipped" and "not installed" in r["reason"] for r in nt)
    deep = [r for r in nt if r["params"]["L"] >= 1000]
    assert deep and all(r["reason"] == suites.NT_DEEP for r in deep)
    for r in fc:
        if r["status"] == "ok" and r["peer"] != "ntkx":
            ntkx_rec = next(x for x in fc if x["case"] == r["case"] and x["peer"] == "ntkx")
            assert doc["speedups"][r["case"]][r["peer"]] == pytest.approx(
                ntkx_rec["entries_per_second"] / r["entries_per_second"])
    pre = [r for r in doc["results"] if r["suite"] == "precompute" and r["status"] == "ok"]
    assert {r["peer"] for r in pre} == {"fc_kernels_memmap", "precompute_local"}
    assert next(r for r in pre if r["peer"] == "precompute_local")["tiles"] == 6


def test_report_markdown(smoke):
    md = (smoke[1] / "report.md").read_text()
    assert "## Machine" in md and "FMA peak float64" in md and "triad bandwidth" in md
    for suite in suites.SUITES:
        assert f"## {suite}" in md
    assert "float32 against float64" in md and "speed-up over 1 thread" in md and "tiles/s" in md


# ---------------------------------------------------------------------------------------------
# The harness's rules, on stand-in cases


@dataclasses.dataclass(frozen=True)
class _Wrong(C.FcCase):
    """A case whose ntkx peer returns a wrong kernel (every entry 1% off), counting its calls."""

    calls: list = dataclasses.field(default_factory=list, compare=False, hash=False)

    def build(self, peer, x):
        good = super().build(peer, x)

        def run():
            self.calls.append(1)
            k = good()
            return k.nngp * 1.01, k.ntk

        return run


def test_a_wrong_answer_fails_the_case_before_any_timing(smoke):
    machine = smoke[3]
    case = _Wrong("fc", 32, 8, 2, peers=("ntkx",))
    rec = R.run_peer(case, "ntkx", case.inputs(), machine, Policy(1.0, 5, 5))
    assert rec["status"] == "failed" and "wrong answer" in rec["reason"] and "timing" not in rec
    assert rec["check"]["error"] == pytest.approx(0.01, rel=0.05)
    assert len(case.calls) == 1  # the warm-up only: nothing was timed


@pytest.mark.nt
@pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")
def test_an_uncompiled_neural_tangents_peer_is_refused(smoke):
    @dataclasses.dataclass(frozen=True)
    class Eager(C.FcCase):
        def build(self, peer, x):
            kfn = C.fc_kernel_fn(P.neural_tangents_stax(), self.depth)
            return P.nt_peer(kfn, x)  # the bare kernel_fn, not nt_compile's

    machine = smoke[3]
    case = Eager("fc", 8, 4, 2, peers=("neural_tangents",))
    rec = R.run_peer(case, "neural_tangents", case.inputs(), machine, Policy(0.0, 1, 1))
    assert rec["status"] == "error" and "not compiled" in rec["reason"]


def test_missing_peer_is_skipped_with_its_reason(smoke, monkeypatch):
    monkeypatch.setattr(P, "HAS_NT", False)
    machine = smoke[3]
    case = C.FcCase("fc", 8, 4, 2)
    rec = R.run_peer(case, "neural_tangents", case.inputs(), machine, Policy(0.0, 1, 1))
    assert rec["status"] == "skipped" and rec["reason"] == P.NT_MISSING


def test_median_confidence_interval():
    t = Timing(tuple(float(v) for v in (5, 1, 9, 3, 7, 2, 8, 4, 6)), 0.1)
    assert t.median == 5.0
    # n = 9: P(B <= 1) = 0.0195 <= 0.025 < P(B <= 2) = 0.0898, so x_(2) .. x_(6) (0-based)
    assert t.confidence_interval() == (3.0, 7.0)
    assert Timing((1.0, 2.0, 3.0), 0.1).confidence_interval() == (1.0, 3.0)  # too few: the range
    assert Timing((2.0,), 0.1).spread == 0.0
    assert Timing((1.0, 2.0, 3.0), 0.1).spread == pytest.approx(0.25)  # quartiles 1.5, 2.5; median 2


def test_fma_pipe_width_of_the_nominal_peak():
    """AMD Zen/Zen+ (family 23, models < 0x30) issue a 256-bit FMA on two 128-bit pipes; the rest full width."""
    from ntkx._src.bench.machine import fma_pipe_bits

    assert fma_pipe_bits("AuthenticAMD", "23", "1", 256)[0] == 128  # EPYC 7001 (Zen)
    assert fma_pipe_bits("AuthenticAMD", "23", "49", 256)[0] == 256  # EPYC 7002 (Zen 2)
    assert fma_pipe_bits("GenuineIntel", "6", "85", 512)[0] == 512
    assert fma_pipe_bits(None, None, None, 256) == (256, "two full-width FMA pipes, assumed")


def test_live_table_prints_speedups():
    """Each case's live rows end with its baseline's speed-up over every peer that ran (as in the report)."""
    rows = [{"case": "c", "peer": "ntkx", "status": "ok", "entries_per_second": 6.0},
            {"case": "c", "peer": "numpy_gram", "status": "ok", "entries_per_second": 2.0},
            {"case": "c", "peer": "neural_tangents", "status": "skipped"}]
    assert R._speedup_line("c", rows).split()[1:] == ["ntkx", "speed-up:", "numpy_gram", "3x"]
    assert R._speedup_line("c", rows[:1]) is None
