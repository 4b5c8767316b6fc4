"""The command line: ``ntkx demo`` and ``ntkx digits`` run and report what they claim."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from ntkx import cli
from ntkx._src.cli import common, demos
from ntkx._src.cntk import _MAX_CONV
from ntkx._src.validate import MAX_DEPTH

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


# --- Bad option values: argparse rejects them (exit 2, one "argument --x: ..." line
# echoing the typed value) before any data load or kernel work.

_BAD = [
    (["digits", "--depth", "-1"], "argument --depth: must be an integer in 0..", "'-1'"),
    (["digits", "--depth", "1", "-1"], "argument --depth: must be an integer in 0..", "'-1'"),
    (["digits", "--depth", "two"], "argument --depth: expected an integer", "'two'"),
    (["digits", "--depth", "1.5"], "argument --depth: expected an integer", "'1.5'"),
    (["digits", "--depth", str(MAX_DEPTH + 1)], f"argument --depth: must be an integer in 0..{MAX_DEPTH}",
     f"'{MAX_DEPTH + 1}'"),
    (["demo", "--fc-depth", "-1"], "argument --fc-depth: must be an integer in 0..", "'-1'"),
    (["demo", "--fc-depth", "x"], "argument --fc-depth: expected an integer", "'x'"),
    (["demo", "--cnn-depth", "-1"], f"argument --cnn-depth: must be an integer in 0..{_MAX_CONV}", "'-1'"),
    (["demo", "--cnn-depth", str(_MAX_CONV + 1)], f"argument --cnn-depth: must be an integer in 0..{_MAX_CONV}",
     f"'{_MAX_CONV + 1}'"),
    (["demo", "--cnn-depth", "2.0"], "argument --cnn-depth: expected an integer", "'2.0'"),
    (["demo", "--ridge", "-1"], "argument --ridge: must be a finite number >= 0", "'-1'"),
    (["demo", "--ridge", "nan"], "argument --ridge: must be a finite number >= 0", "'nan'"),
    (["demo", "--ridge", "inf"], "argument --ridge: must be a finite number >= 0", "'inf'"),
    (["demo", "--ridge", "-1e-3"], "argument --ridge: must be a finite number >= 0", "'-1e-3'"),
    (["demo", "--ridge", "small"], "argument --ridge: expected a finite number >= 0", "'small'"),
    (["digits", "--ridge", "-1"], "argument --ridge: must be a finite number >= 0", "'-1'"),
    (["digits", "--ridge", "nan"], "argument --ridge: must be a finite number >= 0", "'nan'"),
    (["digits", "--ridge=-inf"], "argument --ridge: must be a finite number >= 0", "'-inf'"),
    (["digits", "--w-std", "-1"], "argument --w-std: must be a finite number > 0", "'-1'"),
    (["digits", "--w-std", "0"], "argument --w-std: must be a finite number > 0", "'0'"),
    (["digits", "--w-std", "inf"], "argument --w-std: must be a finite number > 0", "'inf'"),
    (["digits", "--b-std", "-0.5"], "argument --b-std: must be a finite number >= 0", "'-0.5'"),
    (["digits", "--b-std", "-inf"], "argument --b-std: must be a finite number >= 0", "'-inf'"),
    (["digits", "--b-std", "nan"], "argument --b-std: must be a finite number >= 0", "'nan'"),
    (["digits", "--train", "0"], "argument --train: must be an integer >= 1", "'0'"),
    (["demo", "--train", "-5"], "argument --train: must be an integer >= 1", "'-5'"),
    (["demo", "--train", "1e3"], "argument --train: expected an integer", "'1e3'"),
    (["demo", "--device", "gpu"], "argument --device: invalid choice", "'gpu'"),
    (["digits", "--kernel", "ntk", "cntk"], "argument --kernel: invalid choice", "'cntk'"),
]


@pytest.fixture
def no_work(monkeypatch):
    """Any data load, build banner or kernel call fails the test: validation must come first."""
    import ntkx

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the options were validated")

    monkeypatch.setattr(demos, "digits_data", forbidden)
    monkeypatch.setattr(common, "print_build", forbidden)
    for name in ("fc_kernels", "cntk_kernels"):
        monkeypatch.setattr(ntkx, name, forbidden)


def _exit_2(argv, capsys):
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    elapsed = time.perf_counter() - t0
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1, captured.err
    assert elapsed < 1.0, elapsed
    return errors[0]


@pytest.mark.parametrize("argv,message,typed", _BAD, ids=[" ".join(a) for a, _, _ in _BAD])
def test_bad_values_exit_2_before_any_work(argv, message, typed, capsys, no_work):
    line = _exit_2(argv, capsys)
    assert line.startswith(f"ntkx {argv[0]}: error: "), line
    assert message in line and typed in line, line


def test_device_cuda_without_gpu_exits_2_before_any_work(capsys, no_work):
    import ntkx

    if ntkx.build_info()["cuda_devices"] > 0:
        pytest.skip("a CUDA device is available")
    for command in ("demo", "digits"):
        line = _exit_2([command, "--device", "cuda"], capsys)
        assert line.startswith(f"ntkx {command}: error: argument --device: 'cuda' was given but "), line
        assert "use --device cpu or auto" in line


def test_good_values_reach_the_command(monkeypatch):
    """Boundary values still parse to what they were before (the command itself is not run)."""
    seen = {}

    def record(args):
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(cli, "demo", record)
    monkeypatch.setattr(cli, "digits", record)
    assert cli.main(["demo", "--cnn-depth", "0", "--fc-depth", "0", "--ridge", "0", "--train", "1"]) == 0
    assert (seen["cnn_depth"], seen["fc_depth"], seen["ridge"], seen["train"]) == (0, 0, 0.0, 1)
    assert cli.main(["demo", "--cnn-depth", str(_MAX_CONV), "--fc-depth", str(MAX_DEPTH), "--ridge", "1e-3",
                     "--device", "cpu", "--no-progress"]) == 0
    assert (seen["cnn_depth"], seen["fc_depth"], seen["ridge"], seen["device"], seen["progress"]) == (
        _MAX_CONV, MAX_DEPTH, 1e-3, "cpu", "never")
    assert cli.main(["demo"]) == 0
    assert (seen["train"], seen["fc_depth"], seen["cnn_depth"], seen["ridge"], seen["device"],
            seen["progress"]) == (1000, 3, 2, 1e-6, "auto", "tty")
    assert cli.main(["digits", "--depth", "0", "2", "--w-std", "1e-3", "--b-std", "0", "--ridge", "0.5",
                     "--kernel", "ntk", "--progress"]) == 0
    assert (seen["depth"], seen["w_std"], seen["b_std"], seen["ridge"], seen["kernel"], seen["progress"]) == (
        [0, 2], 1e-3, 0.0, 0.5, ["ntk"], True)
    assert cli.main(["digits"]) == 0
    assert (seen["depth"], seen["w_std"], seen["b_std"], seen["ridge"], seen["kernel"], seen["train"]) == (
        [1, 3, 5], 2**0.5, 0.0, 1e-6, ["nngp", "ntk"], 1000)
