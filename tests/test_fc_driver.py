"""The C++ drivers of ntkx._core (ntkx::fc, ntkx::cntk): one call per kernel matrix,
which sizes its own panels or tiles to the memory budget, picks the BLAS path,
reports progress and stops on request."""

import numpy as np
import pytest

import ntkx
from ntkx import _core
from conftest import TOL, rel_err

SPEC = ntkx.FcSpec(3, 1.2, 0.1)


def _args(x1, x2=None):
    sq = [None if x is None else np.einsum("ij,ij->i", x, x) for x in (x1, x2)]
    return x1, x2, sq[0], sq[1]


def test_stored_gram_panels_equal_the_fused_tiles(rng):
    """A budget too small for the per-point arrays of every layer sends the driver to
    the path that stores one Gram panel at a time (from the `gram` callable) and
    computes the point arrays per layer block: the values agree with the fused path,
    and the panels cover every row once, in order, each within the budget."""
    x = rng.standard_normal((300, 7))
    ref = ntkx.fc_kernels(x, None, SPEC, device="cpu")
    calls = []

    def gram(r0, r1, c0, out):
        calls.append((r0, r1, c0, out.shape))
        np.matmul(x[r0:r1], x[c0:].T, out=out)

    nngp, ntk = np.empty((300, 300)), np.empty((300, 300))
    budget = 20 * 300 * 8  # point arrays need 4 * 8 * 4 * 300 > budget / 2: the stored path
    _core.fc(SPEC.to_core(), *_args(x), nngp, ntk, _core.RunOptions(budget=budget), gram=gram)
    assert rel_err(nngp, ref.nngp) <= TOL["route"] and rel_err(ntk, ref.ntk) <= TOL["route"]
    assert np.array_equal(ntk, ntk.T)
    assert [c[0] for c in calls] == list(range(0, 300, 20)) and calls[-1][1] == 300
    assert all(c[2] == c[0] and c[3] == (c[1] - c[0], 300 - c[0]) for c in calls)  # symmetric: from the diagonal


def test_progress_counts_the_pairs_of_each_panel_and_an_error_in_gram_is_raised(rng):
    x = rng.standard_normal((50, 4))
    seen = []
    nngp = np.empty((50, 50))
    _core.fc(SPEC.to_core(), *_args(x), nngp, None, _core.RunOptions(budget=20 * 50 * 8),
             gram=lambda r0, r1, c0, out: np.matmul(x[r0:r1], x[c0:].T, out=out), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 50 * 51 // 2
    assert set(seen) >= {20 * 50 - 20 * 19 // 2, 50 * 51 // 2}  # after the first and the last panel

    def fail(r0, r1, c0, out):
        raise RuntimeError("no Gram here")

    with pytest.raises(RuntimeError, match="no Gram here"):
        _core.fc(SPEC.to_core(), *_args(x), nngp, None, _core.RunOptions(budget=1000), gram=fail)
    with pytest.raises(ValueError, match="GramHook"):
        _core.fc(SPEC.to_core(), *_args(x), nngp, None, _core.RunOptions(budget=1000))


def test_cross_and_float32_calls_of_the_driver(rng):
    x1, x2 = rng.standard_normal((40, 6)), rng.standard_normal((23, 6))
    ref = ntkx.fc_kernels(x1, x2, SPEC, device="cpu")
    out = np.empty((40, 30), np.float32)[:, :23]  # a row stride beyond the row
    _core.fc(SPEC.to_core(), *_args(x1, x2), None, out, _core.RunOptions(budget=1 << 26))
    assert rel_err(out, ref.ntk) <= TOL["float32_outputs"]
    with pytest.raises(ValueError, match="squared norms"):
        _core.fc(SPEC.to_core(), x1, x2, np.ones(3), np.ones(23), None, out, _core.RunOptions(budget=1 << 26))


def test_cntk_tiles_to_the_budget(rng):
    """The CNTK driver splits a symmetric Gram into tiles of the budget (diagonal tiles
    mirrored by the backend, the others copied below the diagonal): the same values
    as one tile, exactly symmetric."""
    x = rng.standard_normal((37, 5, 4, 2))
    spec = ntkx.CntkSpec((ntkx.ConvLayer(), ntkx.ConvLayer(b_std=0.1)), readout="gap")
    one = ntkx.cntk_kernels(x, None, spec, device="cpu")
    small = ntkx.cntk_kernels(x, None, spec, device="cpu", memory_budget=2 * 8 * 20 * 16 * 8)
    assert rel_err(small.ntk, one.ntk) <= TOL["route"] and rel_err(small.nngp, one.nngp) <= TOL["route"]
    assert np.array_equal(small.ntk, small.ntk.T)
    seen = []
    ntkx.cntk_kernels(x, None, spec, "ntk", device="cpu", memory_budget=2 * 8 * 20 * 16 * 8,
                      progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (37 * 38 // 2, 37 * 38 // 2) and [d for d, _ in seen] == sorted(d for d, _ in seen)
