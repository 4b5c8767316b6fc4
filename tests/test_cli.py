"""The command line: ``ntkx demo`` and ``ntkx digits`` run and report what they claim."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ntkx import cli

pytest.importorskip("sklearn")


def test_demo_small(capsys):
    """A reduced demo (300 training digits, one conv layer): both kernels, accuracies, a dynamics table."""
    assert cli.main(["demo", "--train", "300", "--fc-depth", "2", "--cnn-depth", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    accs = [float(a) for a in re.findall(r"(\d+\.\d+)%\n", out.split("test accuracy")[0])]
    assert len(accs) == 2 and all(a > 85 for a in accs), out
    rows = re.findall(r"^\s+(\S+) +(\d+\.\d+)% +(\d+\.\d+)%$", out, flags=re.M)
    assert [r[0] for r in rows] == ["1", "10", "100", "1000", "10000", "100000", "inf"], out
    # t = inf in the table is the accuracy of the summary line.
    assert [float(x) for x in rows[-1][1:]] == accs


def test_demo_fc_only_and_bad_arguments(capsys):
    assert cli.main(["demo", "--train", "200", "--cnn-depth", "0", "--no-progress"]) == 0
    assert "CNN-GAP" not in capsys.readouterr().out
    assert cli.main(["demo", "--train", "5000"]) == 2
    assert "--train" in capsys.readouterr().err


def test_digits_command(capsys):
    assert cli.main(["digits", "--depth", "1", "--kernel", "ntk", "--train", "500"]) == 0
    assert re.search(r"\s1\s+ntk\s+9\d\.\d+%", capsys.readouterr().out)


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "ntkx", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "demo" in res.stdout
