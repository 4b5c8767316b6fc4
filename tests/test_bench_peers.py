"""The neural-tangents peers the benchmarks time are compiled (issue 12, defect 7).

bench/test_cntk_bench.py used to time the bare, eager stax ``kernel_fn`` whenever its
``nt.batch`` block covered all the images (synth32-gap: 19.4 s per call eager against
3.7 s jitted). Every neural-tangents peer is now built by ``bench.conftest.nt_compile``
(``jax.jit(kernel_fn, static_argnames='get')``, or ``nt.batch``, which jits internally)
and wrapped by ``bench.conftest.nt_peer``, which refuses anything else. These tests
build each peer the benchmarks build (FC and CNTK, every case) on a handful of tiny
inputs and check that it is compiled, and that the helpers refuse or catch an eager
kernel_fn. (That the peers compute ntkx's kernel is checked by the benches' own
test_peers_agree and test_neural_tangents_peer_matches_ntkx and by tests/test_*_nt.py.)
Nothing here is timed.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import HAS_NT

pytestmark = [pytest.mark.nt, pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")]

# bench/ is a package at the repository root; `python -m pytest` puts the working
# directory on sys.path, plain `pytest` only tests/ (rootdir-relative "prepend" import).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import bench.conftest as bconf  # noqa: E402
import bench.test_cntk_bench as cntk_bench  # noqa: E402  (modules, so pytest collects none of their tests here)
import bench.test_fc_bench as fc_bench  # noqa: E402

def _fc_kernel_fn(depth: int = 2):
    nt = bconf.neural_tangents_stax()
    return nt.serial(nt.Dense(1, W_std=1.0), *[nt.Relu(), nt.Dense(1, W_std=1.0)] * depth)[2]


# --------------------------------------------------------------------------------------
# Every peer the benchmarks build.
# --------------------------------------------------------------------------------------


#: test_fc_bench's cases by (d, L): its peer depends on N only through the points.
_FC_DL = {}
for _n, _d, _L in fc_bench.CASES:
    _FC_DL.setdefault((_d, _L), []).append(f"N{_n}")


@pytest.mark.parametrize("d,depth", list(_FC_DL), ids=[f"d{d}-L{L}-{'-'.join(ns)}" for (d, L), ns in _FC_DL.items()])
def test_fc_peer_is_compiled(d, depth):
    """test_fc_bench's neural_tangents peer, for every case's (d, L), on 4 points."""
    import jax

    assert "neural_tangents" in bconf.PEERS
    x = fc_bench.points(4, d, seed=3)
    run = fc_bench.make_peer("neural_tangents", x, depth)  # compiles (its warm call) here
    assert run.compiled_kind == "jax.jit"
    assert isinstance(run.compiled, jax.stages.Wrapped)
    out = run()
    assert out.ntk.dtype == np.float64 and out.ntk.shape == (4, 4)
    assert np.all(np.isfinite(out.nngp)) and np.all(np.isfinite(out.ntk))


def _cntk_tiny(case):
    """(images, block, batched): 2 or 4 Gaussian 4 x 4 images with the case's channels
    (digits 1, synth32 3), and the bench's choice between nt.batch and jax.jit (block <
    images at the bench's size) kept."""
    n_bench = max(2, case.n_nt // bconf.SHRINK)  # what test_cntk gives nt_fn
    batched = case.nt_batch < n_bench
    n, block = (4, 2) if batched else (2, case.nt_batch)
    channels = 1 if case.name.startswith("digits") else 3
    x = np.random.default_rng(5).standard_normal((n, 4, 4, channels))
    return x, block, batched


@pytest.mark.parametrize("case", cntk_bench.CASES, ids=[c.name for c in cntk_bench.CASES])
def test_cntk_peer_is_compiled(case):
    """test_cntk_bench's nt_fn for every case's readout, nt.batch or jax.jit as the bench
    chooses at its size (synth32-gap: 4 images in blocks of 4, so jax.jit), tiny images."""
    x, block, batched = _cntk_tiny(case)
    run = cntk_bench.nt_fn(x, case.readout, block)
    assert run.compiled_kind == ("nt.batch" if batched else "jax.jit")
    assert bconf.compiled_kind(run.compiled) == run.compiled_kind
    out = run()
    ntk = np.asarray(out.ntk)
    assert ntk.dtype == np.float64 and ntk.shape == (len(x), len(x))
    assert np.all(np.isfinite(out.nngp)) and np.all(np.isfinite(ntk))


def test_bench_cases_cover_both_compiled_forms():
    """The synth32-gap case (the one that ran eagerly) takes the jax.jit path, the others nt.batch."""
    kinds = {c.name: _cntk_tiny(c)[2] for c in cntk_bench.CASES}
    assert kinds["synth32-gap"] is False
    assert any(kinds.values())


# --------------------------------------------------------------------------------------
# The helpers refuse an eager kernel_fn.
# --------------------------------------------------------------------------------------


def test_nt_peer_refuses_an_eager_kernel_fn():
    kfn = _fc_kernel_fn()
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert bconf.compiled_kind(kfn) is None
    with pytest.raises(TypeError, match="not compiled"):
        bconf.nt_peer(kfn, x)
    # A closure that only calls a compiled function is not accepted either: nt_peer has to
    # see the compiled object itself.
    jitted = bconf.nt_compile(kfn, len(x))
    with pytest.raises(TypeError, match="not compiled"):
        bconf.nt_peer(lambda *a, **k: jitted(*a, **k), x)
    # nt.batch's output is recognised by identity, not by an attribute that wrappers copy.
    batched = bconf.nt_compile(kfn, len(x), batch_size=2)
    assert bconf.compiled_kind(batched) == "nt.batch"
    assert bconf.compiled_kind(functools.wraps(batched)(lambda *a, **k: None)) is None
    with pytest.raises(ValueError):
        bconf.nt_compile(kfn, len(x), batch_size=0)


@pytest.mark.parametrize("block", [None, 4, 2], ids=["jit", "jit-block-covers-all", "nt.batch"])
def test_compiled_peer_runs_kernel_fn_only_while_tracing(block):
    """A warm call runs no Python of kernel_fn (it was traced once); eagerly it would run
    on every call (and on every block), and nt_compile's guard raises instead."""
    import jax

    kfn = _fc_kernel_fn()
    calls = []

    @functools.wraps(kfn)
    def counted(*args, **kwargs):
        calls.append(1)
        return kfn(*args, **kwargs)

    x = np.random.default_rng(1).standard_normal((4, 3))
    run = bconf.nt_peer(bconf.nt_compile(counted, len(x), block), x)
    assert run.compiled_kind == ("nt.batch" if block == 2 else "jax.jit")
    run()
    traced = len(calls)
    assert traced >= 1
    run()
    run()
    assert len(calls) == traced

    eager = bconf.nt_peer(bconf.nt_compile(counted, len(x), block), x)
    with jax.disable_jit():
        with pytest.raises(bconf.EagerPeerError):
            eager()
