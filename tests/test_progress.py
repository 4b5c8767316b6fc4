"""`progress=` of the long calls: a ``tqdm.auto`` bar on stderr for True, the exact
``(done, total)`` sequence for a callable, nothing for False/None."""

from __future__ import annotations

import re

import numpy as np
import pytest

import ntkx
from ntkx import precompute as P
from ntkx import stax
from ntkx._src.progress import Progress
from ntkx._src.theory.train import train


def _last_frame(err: str) -> str:
    """The bar as last drawn: tqdm redraws in place with carriage returns."""
    return re.split(r"[\r\n]+", err.strip())[-1]


def test_true_draws_a_tqdm_bar_on_stderr_that_closes_at_total(capsys):
    bar = Progress("demo work", 10, True, unit="tile")
    for _ in range(4):
        bar.advance(2)
    assert bar.bar is not None and bar.done == 8
    bar.advance(2)
    assert bar.bar is None  # closed itself at total
    out, err = capsys.readouterr()
    assert out == ""
    last = _last_frame(err)
    assert last.startswith("demo work: 100%") and "10/10" in last and "tile/s" in last
    assert err.endswith("\n")  # a closed bar ends its line


def test_callable_gets_every_running_count_and_false_or_none_are_silent(capsys):
    seen = []
    bar = Progress("x", 7, lambda d, t: seen.append((d, t)))
    for u in (3, 1, 3):
        bar.advance(u)
    assert seen == [(3, 7), (4, 7), (7, 7)] and bar.bar is None
    for off in (False, None):
        quiet = Progress("x", 3, off)
        quiet.advance(3)
        assert quiet.bar is None and quiet.done == 3
    assert capsys.readouterr() == ("", "")


def test_an_empty_total_reports_one_unit_as_before():
    seen = []
    Progress("x", 0, lambda d, t: seen.append((d, t))).advance(1)
    assert seen == [(1, 1)]


def test_a_call_stopped_early_closes_its_bar_in_the_with_block(capsys):
    with pytest.raises(KeyboardInterrupt):
        with Progress("stopped", 100, True) as bar:
            bar.advance(30)
            raise KeyboardInterrupt
    assert bar.bar is None
    bar.close()  # idempotent
    err = capsys.readouterr().err
    assert _last_frame(err).startswith("stopped:  30%") and "30/100" in _last_frame(err) and err.endswith("\n")


def test_fc_kernels_progress_true_bar_counts_all_pairs(rng, capsys):
    x = rng.standard_normal((40, 3))
    ntkx.fc_kernels(x, None, ntkx.FcSpec(2), get="ntk", progress=True)
    last = _last_frame(capsys.readouterr().err)
    assert last.startswith("ntkx FC kernel: 100%") and "820/820" in last  # 40 * 41 / 2 pairs


def test_precompute_progress_true_bar_counts_tiles(tmp_path, rng, capsys):
    pytest.importorskip("zarr")
    x = rng.standard_normal((10, 3))
    P.precompute(ntkx.FcSpec(1), x, store=tmp_path / "K.zarr", tile=4, dtype=np.float64, progress=True)
    last = _last_frame(capsys.readouterr().err)
    assert last.startswith("precompute K.zarr: 100%") and "6/6" in last and "tile" in last  # 3x3 tiles, upper 6


def test_train_reports_each_step_to_a_callable_and_as_a_bar(capsys):
    net = stax.serial(stax.Dense(3, W_std=1.2, b_std=0.1), stax.Relu(), stax.Dense(1))
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 2)), rng.standard_normal((4, 1))
    _, params = net[0](4, x.shape)
    seen = []
    train(net, params, x, y, learning_rate=0.1, steps=5, linearized=False, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(s, 5) for s in range(1, 6)]
    train(net, params, x, y, learning_rate=0.1, steps=5, linearized=False, progress=True)
    last = _last_frame(capsys.readouterr().err)
    assert last.startswith("train: 100%") and "5/5" in last and "step" in last
