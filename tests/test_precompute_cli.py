"""``ntkx precompute``: a run, a resume after Ctrl-C, --status, --verify, bad arguments (exit 2 before any work).

Small inputs (tens of points, tiles of a few rows) and in-process calls of
`ntkx.cli.main`, so the file runs in seconds.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("zarr")

import ntkx  # noqa: E402
from ntkx import cli  # noqa: E402
from ntkx._src.cli.precompute import CLI_RECORD  # noqa: E402
from ntkx import precompute as P  # noqa: E402
from ntkx._src.precompute import schedule  # noqa: E402

ARCH = "fc depth=2 w_std=1.3 b_std=0.2"
SPEC = ntkx.FcSpec(2, 1.3, 0.2)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((14, 4)), rng.standard_normal((9, 4))
    np.save(tmp_path / "x1.npy", x1)
    np.save(tmp_path / "x2.npy", x2)
    return tmp_path, x1, x2


def run_argv(tmp_path, *extra):
    return ["precompute", "--arch", ARCH, "--x1", str(tmp_path / "x1.npy"), "--out", str(tmp_path / "K.zarr"),
            "--tile", "4", "--dtype", "float64", "--no-progress", *extra]


def test_run_matches_fc_kernels_and_status(data, capsys):
    tmp_path, x1, x2 = data
    assert cli.main(run_argv(tmp_path, "--x2", str(tmp_path / "x2.npy"), "--get", "ntk")) == 0
    assert "created" in capsys.readouterr().out
    ref = ntkx.fc_kernels(x1, x2, SPEC, "ntk")
    np.testing.assert_allclose(P.open(tmp_path / "K.zarr")[:, :], ref, rtol=1e-12, atol=0)
    assert cli.main(["precompute", "--status", str(tmp_path / "K.zarr")]) == 0
    out = capsys.readouterr().out
    assert "tiles: 12 of 12 done, 0 remaining (100.0%); complete" in out, out
    assert f"arch: {ARCH}" in out and "FcSpec(depth=2, w_std=1.3, b_std=0.2" in out
    assert "get: ntk  dtype: float64  tile: 4  shape: 14 x 9" in out
    assert str(tmp_path / "x2.npy") in out


def test_progress_line_shows_tiles_rate_and_eta(data, capsys):
    tmp_path, _, _ = data
    argv = [a for a in run_argv(tmp_path) if a != "--no-progress"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "10/10 tiles" in err and "entries/s" in err and "ETA" in err, err


def test_ctrl_c_keeps_finished_tiles_and_prints_the_resume_command(data, capsys, monkeypatch):
    tmp_path, x1, _ = data
    real, calls = schedule.run_tile, [0]

    def run_tile(job, i, j, cancel=None):  # Ctrl-C (a real SIGINT) while the 4th tile is in flight
        calls[0] += 1
        if calls[0] == 4:
            signal.raise_signal(signal.SIGINT)
        return real(job, i, j, cancel)

    monkeypatch.setattr(schedule, "run_tile", run_tile)
    assert cli.main(run_argv(tmp_path, "--workers", "1")) == 130
    err = capsys.readouterr().err
    assert "stopping" in err and "resume with:" in err, err
    st = P.status(tmp_path / "K.zarr")
    assert 3 <= st.done < st.total == 10  # finished tiles recorded; the one in flight finished or cancelled
    command = err.split("resume with:\n")[1].strip().splitlines()[0]
    words = shlex.split(command)
    assert words[:2] == ["ntkx", "precompute"] and "--no-progress" not in words
    monkeypatch.setattr(schedule, "run_tile", real)
    assert cli.main(words[1:] + ["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"resumed {tmp_path / 'K.zarr'}: 10 tiles, {10 - st.done} computed, {st.done} already done" in out
    np.testing.assert_allclose(P.open(tmp_path / "K.zarr", "nngp")[:, :], ntkx.fc_kernels(x1, None, SPEC, "nngp"),
                               rtol=1e-12, atol=0)
    assert cli.main(["precompute", "--status", str(tmp_path / "K.zarr")]) == 0
    assert "10 of 10 done" in capsys.readouterr().out


def test_status_of_an_incomplete_store_prints_the_resume_command(data, capsys):
    tmp_path, _, _ = data
    assert cli.main(run_argv(tmp_path)) == 0
    os.remove(tmp_path / "K.zarr" / "manifest" / "0_1.json")
    capsys.readouterr()
    assert cli.main(["precompute", "--status", str(tmp_path / "K.zarr")]) == 0
    out = capsys.readouterr().out
    assert "tiles: 9 of 10 done, 1 remaining" in out and "resume: ntkx precompute --arch" in out, out


def test_verify_ok_then_a_corrupted_entry_exits_1(data, capsys):
    import zarr

    tmp_path, _, _ = data
    assert cli.main(run_argv(tmp_path, "--x2", str(tmp_path / "x2.npy"))) == 0
    store = str(tmp_path / "K.zarr")
    assert cli.main(["precompute", "--verify", store]) == 0  # 126 entries <= 200: every one checked
    assert "126 entries of nngp,ntk" in capsys.readouterr().out
    arr = zarr.open_array(os.path.join(store, "ntk"), mode="r+")
    arr[5, 3] = float(arr[5, 3]) * 1.001
    assert cli.main(["precompute", "--verify", store]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH in 1 of 252 values" in out and "ntk[5, 3]" in out, out


def test_verify_without_a_record_needs_the_inputs_and_checks_their_fingerprint(data, capsys):
    tmp_path, x1, _ = data
    assert cli.main(run_argv(tmp_path)) == 0
    store = str(tmp_path / "K.zarr")
    os.remove(os.path.join(store, CLI_RECORD))
    assert cli.main(["precompute", "--verify", store]) == 2
    assert "give --x1" in capsys.readouterr().err
    assert cli.main(["precompute", "--verify", store, "--x1", str(tmp_path / "x1.npy"), "--samples", "20"]) == 0
    assert "OK" in capsys.readouterr().out
    np.save(tmp_path / "other.npy", x1 + 1.0)
    assert cli.main(["precompute", "--verify", store, "--x1", str(tmp_path / "other.npy")]) == 2
    assert "not the input this store was made from" in capsys.readouterr().err


@pytest.fixture
def no_work(monkeypatch):
    """Any kernel computation or store creation fails the test."""
    def boom(*a, **k):
        raise AssertionError("work was started")

    monkeypatch.setattr(P, "precompute", boom)
    monkeypatch.setattr(schedule, "run_tile", boom)


@pytest.mark.parametrize("extra, typed", [
    (["--arch", "mlp depth=3"], "'mlp'"),
    (["--arch", "fc depht=3"], "'depht'"),
    (["--arch", "fc act=tanh"], "'tanh'"),
    (["--tile", "0"], "'0'"),
    (["--tile", "ten"], "'ten'"),
    (["--get", "ntk,gp"], "'ntk,gp'"),
    (["--dtype", "float16"], "'float16'"),
    (["--layout", "NHWC"], "'NHWC'"),
    (["--workers", "0"], "'0'"),
    (["--scheduler", "nowhere"], "'nowhere'"),
    (["--x2", "missing.npy"], "'missing.npy'"),
    (["--x2", "IMAGES"], "IMAGES"),
    (["--local-cluster", "2", "--scheduler", "tcp://h:1"], "not allowed"),
])
def test_bad_arguments_exit_2_before_any_work(data, capsys, no_work, extra, typed):
    tmp_path, _, _ = data
    np.save(tmp_path / "img.npy", np.zeros((3, 4, 4, 1)))
    extra = [str(tmp_path / "img.npy") if e == "IMAGES" else e for e in extra]
    typed = str(tmp_path / "img.npy") if typed == "IMAGES" else typed
    argv = run_argv(tmp_path)
    for i in range(0, len(extra), 2):  # replace the option when given, else append it
        if extra[i] in argv:
            argv[argv.index(extra[i]) + 1] = extra[i + 1]
        else:
            argv += extra[i:i + 2]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert typed in err[-1], err
    assert not (tmp_path / "K.zarr").exists()


@pytest.mark.parametrize("argv, message", [
    (["precompute", "--status", "nowhere.zarr"], "'nowhere.zarr'"),
    (["precompute", "--verify", "nowhere.zarr"], "'nowhere.zarr'"),
    (["precompute", "--x1", "X1"], "--arch"),
])
def test_bad_modes_exit_2(data, capsys, no_work, argv, message):
    tmp_path, _, _ = data
    argv = [str(tmp_path / "x1.npy") if a == "X1" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_store_of_another_computation_exits_2(data, capsys):
    tmp_path, _, _ = data
    assert cli.main(run_argv(tmp_path)) == 0
    argv = run_argv(tmp_path)
    argv[argv.index("--arch") + 1] = "fc depth=3"
    assert cli.main(argv) == 2
    assert "made for another computation" in capsys.readouterr().err


def test_entry_point_status(data):
    tmp_path, _, _ = data
    assert cli.main(run_argv(tmp_path)) == 0
    r = subprocess.run([sys.executable, "-m", "ntkx", "precompute", "--status", str(tmp_path / "K.zarr")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "10 of 10 done" in r.stdout, r.stderr


def test_a_full_disk_fails_clearly_and_keeps_finished_tiles(data, capsys, monkeypatch):
    """ENOSPC in the 5th tile's write: exit 1 with the resume command, the 4 tiles before
    it stay recorded, the failed one is not, and the resume (disk freed) completes."""
    import errno

    from ntkx._src.precompute import store as store_mod

    tmp_path, x1, _ = data
    real, calls = store_mod.write_tile, [0]

    def write_tile(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(store_mod, "write_tile", write_tile)
    assert cli.main(run_argv(tmp_path, "--workers", "1")) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "resume with:" in err
    assert P.status(tmp_path / "K.zarr").done == 4
    monkeypatch.setattr(store_mod, "write_tile", real)
    assert cli.main(run_argv(tmp_path)) == 0
    np.testing.assert_allclose(P.open(tmp_path / "K.zarr", "nngp")[:, :], ntkx.fc_kernels(x1, None, SPEC, "nngp"),
                               rtol=1e-12, atol=0)


def test_local_cluster_from_the_command_line(data, capsys):
    """--local-cluster 2: a two-process Dask cluster computes the same store."""
    pytest.importorskip("distributed")
    tmp_path, x1, _ = data
    assert cli.main(run_argv(tmp_path, "--local-cluster", "2")) == 0
    np.testing.assert_allclose(P.open(tmp_path / "K.zarr", "ntk")[:, :], ntkx.fc_kernels(x1, None, SPEC, "ntk"),
                               rtol=1e-12, atol=0)
