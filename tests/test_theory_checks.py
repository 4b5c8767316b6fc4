"""The whole quick theorem-check run (the work of ``ntkx check --quick``): every registered
check finishes with a result, a figure and a row in the written report."""

import json

from ntkx import cli
from ntkx.theory.checks import CHECKS

EXPECTED_CHECKS = {
    # kernels at initialization
    "jacot_thm1", "positive_definiteness", "parameterization", "generalization",
    # training
    "ntk_constancy", "lee_linearization", "infinite_width_agreement", "exponential_convergence", "lazy_regime",
}


def test_every_issue_check_is_registered():
    assert EXPECTED_CHECKS <= set(CHECKS)
    assert any(n.startswith("depth_") for n in CHECKS)


def test_quick_run_writes_every_check(quick_report):
    results, errors, out, seconds = quick_report
    assert not errors, errors
    assert set(results) == set(CHECKS)
    report = (out / "report.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in data["results"]] == list(CHECKS)
    for name, res in results.items():
        assert f"`{name}`" in report and (out / f"{name}.png").stat().st_size > 5000
        assert res.verdict in ("holds", "does not hold", "inconclusive")
    # the issue's bar is < 180 s on this 2-core machine; a loaded box gets twice that
    assert seconds < 360, f"quick checks took {seconds:.0f} s"


def test_cli_check_runs_a_real_check(quick_report, tmp_path, capsys):
    """After the session's quick run the training sweeps are memoized, so this is fast."""
    assert cli.main(["check", "--quick", "--only", "lazy_regime", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lazy_regime" in out and "holds" in out
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["name"] == "lazy_regime"
