"""The checks' report (`ntkx._src.theory.report`) and ``ntkx check``, with tiny fake checks.

The real checks are exercised elsewhere; here every check is a `CheckSpec` built in the
test and handed over as the registry (or patched in for the CLI), so the global
`CHECKS` is never touched.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from ntkx import cli
from ntkx._src import durable
from ntkx._src.theory import report
from ntkx._src.theory.registry import CheckSpec
from ntkx._src.theory.result import FAILS, HOLDS, CheckResult, fit_power_law

matplotlib.use("Agg")


def _plot(res, fig):
    # Small and without axes: tick layout is what costs time in a figure (a real one takes ~0.5 s).
    fig.set_size_inches(1.5, 1.0)
    ax = fig.add_subplot()
    ax.plot(res.measured["x"], res.measured["y"].T, "o")
    ax.set_axis_off()


def _fake(name, verdict=HOLDS, calls=None, exc=None, plotter=_plot):
    """A check returning a tiny result (or raising `exc`); `calls` records (name, quick, seed)."""

    def fn(*, quick, seed):
        if calls is not None:
            calls.append((name, quick, seed))
        if exc is not None:
            raise exc
        x = np.array([10.0, 100.0, 1000.0])
        y = np.array([[1.0, 0.1, 0.011], [1.1, 0.09, 0.01]])
        fit = fit_power_law(x, y)
        return CheckResult(
            name=name, title=f"Title {name}", claim=f"claim of {name}", source="Paper (2018), Thm 1 | extra",
            params={"widths": [10, 100, 1000], "quick": quick, "seed": seed, "tol": np.float64(0.1)},
            measured={"x": x, "y": y}, fits={"error vs width": fit}, expected="rate -1",
            summary=f"rate {fit.summary()}", verdict=verdict, rule="holds if |p + 1| <= 0.1",
            notes="Some *Markdown*\n\n- a | pipe in notes", plotter=plotter)

    return CheckSpec(name, f"Title {name}", fn)


def _registry(*specs):
    return {s.name: s for s in specs}


def _files(out: Path):
    return sorted(p.name for p in out.iterdir())


def test_files_written_and_parseable(tmp_path):
    calls = []
    reg = _registry(_fake("alpha", calls=calls), _fake("beta", FAILS, calls=calls))
    results = report.run_checks(quick=True, seed=3, out=tmp_path, progress=False, registry=reg)
    assert [r.name for r in results] == ["alpha", "beta"]
    assert calls == [("alpha", True, 3), ("beta", True, 3)]
    # Everything there, nothing else: no temporary file left behind by the atomic writes.
    assert _files(tmp_path) == ["alpha.png", "beta.png", "report.md", "results.json"]
    for name in ("alpha", "beta"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["api_version"] == 1
    prov = data["provenance"]
    assert prov["mode"] == "quick" and prov["seed"] == 3 and prov["status"] == "complete"
    assert prov["pending"] == [] and prov["ntkx_version"] and prov["machine"]["cpu_count"] >= 1
    assert "openmp_threads" in prov["machine"]["build_info"]
    assert prov["git"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"])
    assert [r["name"] for r in data["results"]] == ["alpha", "beta"]
    assert data["results"][1]["verdict"] == FAILS and data["errors"] == []
    assert data["results"][0]["fits"]["error vs width"]["ci95"][0] < -0.9

    md = (tmp_path / "report.md").read_text()
    # The verdict table comes before the sections, which follow the registry's order.
    assert md.index("## Verdicts") < md.index("## Title alpha") < md.index("## Title beta")
    assert "![alpha](alpha.png)" in md and "![beta](beta.png)" in md
    assert "Some *Markdown*\n\n- a | pipe in notes" in md  # notes verbatim
    assert "mode: quick, seed 3" in md and "status: complete" in md
    assert "holds if |p + 1| <= 0.1" in md
    # No path of this machine: the folder was passed only through out=, which goes in the command.
    assert md.replace(repr(str(tmp_path)), "").count(str(tmp_path)) == 0
    assert str(Path.home()) not in md.replace(str(tmp_path), "") or str(Path.home()) == "/"


def test_verdict_table_rows(tmp_path):
    reg = _registry(_fake("alpha"), _fake("beta", FAILS), _fake("gamma", exc=ValueError("bad | thing")))
    with pytest.raises(report.CheckRunError) as info:
        report.run_checks(out=tmp_path, progress=False, registry=reg)
    table = report.verdict_table(info.value.results, info.value.errors)
    rows = [r for r in table.splitlines() if r.startswith("| Title")]
    cells = [re.split(r"(?<!\\)\|", r)[1:-1] for r in rows]
    assert [c[0].strip() for c in cells] == ["Title alpha (`alpha`)", "Title beta (`beta`)", "Title gamma (`gamma`)"]
    assert [c[4].strip() for c in cells] == ["**holds**", "**does not hold**", "**error**"]
    assert cells[0][1].strip() == r"Paper (2018), Thm 1 \| extra"  # pipes escaped, the row keeps 6 cells
    assert cells[0][2].strip() == "rate -1" and cells[0][3].strip().startswith("rate -1.0")
    assert r"ValueError: bad \| thing" in cells[2][3]
    assert table in (tmp_path / "report.md").read_text()


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        durable.atomic_write(target, fail)
    assert target.read_text() == "old" and _files(tmp_path) == ["results.json"]
    durable.atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_text() == "new" and _files(tmp_path) == ["results.json"]


def test_report_rewritten_after_each_check(tmp_path):
    """While check 2 runs, the files on disk already hold check 1 and say what is left."""
    seen = {}

    def second(*, quick, seed):
        seen["json"] = json.loads((tmp_path / "results.json").read_text())
        seen["files"] = _files(tmp_path)
        return _fake("two").fn(quick=quick, seed=seed)

    reg = _registry(_fake("one"), CheckSpec("two", "Title two", second))
    report.run_checks(out=tmp_path, progress=False, registry=reg)
    assert [r["name"] for r in seen["json"]["results"]] == ["one"]
    assert seen["json"]["provenance"]["pending"] == ["two"]
    assert seen["json"]["provenance"]["status"].startswith("in progress")
    assert seen["files"] == ["one.png", "report.md", "results.json"]


def test_exception_in_one_check_others_run_exit_1(tmp_path, monkeypatch, capsys):
    calls = []
    reg = _registry(_fake("alpha", calls=calls), _fake("boom", calls=calls, exc=ZeroDivisionError("no luck")),
                    _fake("gamma", calls=calls, plotter=lambda res, fig: 1 / 0))
    monkeypatch.setattr(report, "_default_registry", lambda: reg)
    assert cli.main(["check", "--out", str(tmp_path), "--no-progress"]) == 1
    assert [c[0] for c in calls] == ["alpha", "boom", "gamma"]
    captured = capsys.readouterr()
    assert "| **error** |" in captured.out and "error in boom (run): ZeroDivisionError: no luck" in captured.err
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in data["results"]] == ["alpha", "gamma"]
    errs = {(e["name"], e["stage"]): e for e in data["errors"]}
    assert set(errs) == {("boom", "run"), ("gamma", "figure")}
    assert errs["boom", "run"]["error"] == "ZeroDivisionError: no luck"
    assert errs["boom", "run"]["where"].startswith("test_theory_report.py:")  # a file name, not a path
    md = (tmp_path / "report.md").read_text()
    assert "## Errors" in md and "Figure failed: `ZeroDivisionError: division by zero`" in md
    assert _files(tmp_path) == ["alpha.png", "report.md", "results.json"]  # no figure for gamma, no temp files


def test_keyboard_interrupt_keeps_finished_checks(tmp_path, monkeypatch, capsys):
    calls = []
    reg = _registry(_fake("alpha", calls=calls), _fake("beta", calls=calls, exc=KeyboardInterrupt()),
                    _fake("gamma", calls=calls))
    with pytest.raises(KeyboardInterrupt):
        report.run_checks(out=tmp_path, progress=False, registry=reg)
    assert [c[0] for c in calls] == ["alpha", "beta"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in data["results"]] == ["alpha"] and data["errors"] == []
    assert data["provenance"]["pending"] == ["beta", "gamma"]
    assert data["provenance"]["status"].startswith("interrupted")
    md = (tmp_path / "report.md").read_text()
    assert "## Title alpha" in md and "status: interrupted" in md
    assert _files(tmp_path) == ["alpha.png", "report.md", "results.json"]
    # The command line reports it and exits 130.
    monkeypatch.setattr(report, "_default_registry", lambda: reg)
    assert cli.main(["check", "--out", str(tmp_path / "cli"), "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("argv, echoed", [
    (["--only", "alpha", "nope"], "'nope'"),
    (["--seed", "-1"], "'-1'"),
    (["--seed", "1.5"], "'1.5'"),
])
def test_bad_arguments_exit_2_before_running(tmp_path, monkeypatch, capsys, argv, echoed):
    calls = []
    monkeypatch.setattr(report, "_default_registry", lambda: _registry(_fake("alpha", calls=calls)))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        cli.main(["check", "--out", str(out), *argv])
    assert info.value.code == 2 and calls == [] and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert echoed in err
    if "nope" in echoed:
        assert "valid names: alpha" in err


def test_out_required_and_unusable(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["check"])
    assert info.value.code == 2 and "--out" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert cli.main(["check", "--out", str(tmp_path / "file"), "--no-progress"]) == 2
    assert "argument --out" in capsys.readouterr().err


def test_cli_passes_quick_seed_only(tmp_path, monkeypatch, capsys):
    calls = []
    reg = _registry(_fake("alpha", calls=calls), _fake("beta", calls=calls), _fake("gamma", calls=calls))
    monkeypatch.setattr(report, "_default_registry", lambda: reg)
    # --only in any order and repeated: registry order, each once.
    argv = ["check", "--quick", "--only", "gamma", "alpha", "--only", "alpha", "--seed", "7",
            "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    assert calls == [("alpha", True, 7), ("gamma", True, 7)]
    out = capsys.readouterr().out
    assert "| Claim | Source |" in out and out.count("| **holds** |") == 2
    prov = json.loads((tmp_path / "results.json").read_text())["provenance"]
    assert prov["mode"] == "quick" and prov["seed"] == 7
    assert prov["command"] == f"ntkx check --quick --only gamma alpha alpha --seed 7 --out {tmp_path}"
    calls.clear()
    assert cli.main(["check", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls == [("alpha", False, 0), ("beta", False, 0), ("gamma", False, 0)]


def test_unknown_name_and_bad_seed_in_python(tmp_path):
    calls = []
    reg = _registry(_fake("alpha", calls=calls))
    with pytest.raises(ValueError, match=r"'nope'.*valid names: alpha"):
        report.run_checks(["alpha", "nope"], out=tmp_path / "x", registry=reg)
    for seed in (-1, 1.0, True):
        with pytest.raises(ValueError, match="seed"):
            report.run_checks(seed=seed, out=tmp_path / "x", registry=reg)
    assert calls == [] and not (tmp_path / "x").exists()


def test_progress_with_and_without_tqdm(tmp_path, monkeypatch, capsys):
    reg = _registry(_fake("alpha"), _fake("beta"))
    report.run_checks(registry=reg, progress=True)
    assert "beta: holds" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # import tqdm -> ImportError
    report.run_checks(registry=reg, progress=True)
    err = capsys.readouterr().err
    assert "[1/2] alpha ..." in err and "[2/2] beta: holds" in err
    report.run_checks(registry=reg, progress=False)
    assert capsys.readouterr().err == ""


def test_write_report_directly(tmp_path):
    reg = _registry(_fake("alpha"))
    res = [s.run(quick=False, seed=0) for s in reg.values()]
    errors = [{"name": "beta", "title": "Title beta", "stage": "run", "error": "RuntimeError: x",
               "where": "f.py:1 in g"}]
    assert report.write_report(res, tmp_path / "r", quick=False, seed=0, command="by hand", errors=errors) == []
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["provenance"]["mode"] == "full" and data["provenance"]["command"] == "by hand"
    assert data["errors"] == errors
    assert _files(tmp_path / "r") == ["alpha.png", "report.md", "results.json"]
    assert os.path.getsize(tmp_path / "r" / "alpha.png") > 100
