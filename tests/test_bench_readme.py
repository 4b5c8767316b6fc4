"""README.md's performance section is what ``ntkx bench readme`` makes of the committed run.

Every number of that section comes from ``docs/bench/results.json`` (one ``ntkx bench
--scale medium`` run); these tests fail when the two disagree, so a number cannot be
edited by hand or left behind by a new run.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil

from ntkx import cli
from ntkx._src.bench import compare as C
from ntkx._src.bench import readme as RM

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench" / "results.json"
README = ROOT / "README.md"


def _section(text: str) -> str:
    return text[text.index(RM.BEGIN) + len(RM.BEGIN):text.index(RM.END)]


def test_readme_performance_section_is_the_committed_run():
    doc = C.load(RESULTS)
    text, new = RM.render(doc, README, RESULTS)
    assert text == new, "README.md's performance section differs from docs/bench/results.json: run " \
                        "'ntkx bench readme docs/bench/results.json --readme README.md'"
    assert doc["provenance"]["command"].startswith("ntkx bench --scale medium")
    assert doc["provenance"]["status"] == "complete"


def test_every_timed_case_and_its_numbers_are_in_the_section():
    doc = C.load(RESULTS)
    body = _section(README.read_text())
    for r in doc["results"]:
        base = r.get("baseline") or "ntkx"
        if r["peer"] == base and r["status"] == "ok":
            row = next(line for line in body.splitlines() if line.startswith(f"| {r['case']} |"))
            assert f"{r['timing']['median']:.4g}" in row
    for cid, peers in doc["speedups"].items():
        row = next(line for line in body.splitlines() if line.startswith(f"| {cid} |"))
        for peer, x in peers.items():
            assert re.search(re.escape(peer) + r"[^;|]*: " + re.escape(f"{x:.3g}") + "x", row), (cid, peer)
    cpu = doc["machine"]["cpu"]
    assert cpu["model"] in body and f"{cpu['nominal_peak_gflops']['float64']:.1f}" in body


def test_readme_command_checks_and_rewrites(tmp_path, capsys):
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    results = tmp_path / "docs" / "bench" / "results.json"
    shutil.copy(RESULTS, results)
    readme = tmp_path / "README.md"
    shutil.copy(README, readme)
    args = ["bench", "readme", str(results), "--readme", str(readme)]
    assert cli.main(args + ["--check"]) == 0
    text = readme.read_text()
    readme.write_text(text.replace(_section(text), "\n| a number typed by hand | 1.0 |\n"))
    assert cli.main(args + ["--check"]) == 1
    assert "differs" in capsys.readouterr().err
    assert cli.main(args) == 0
    assert readme.read_text() == text
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"api_version": 9}))
    assert cli.main(["bench", "readme", str(bad), "--readme", str(readme)]) == 2
    (tmp_path / "plain.md").write_text("# no markers\n")
    assert cli.main(["bench", "readme", str(results), "--readme", str(tmp_path / "plain.md")]) == 2
