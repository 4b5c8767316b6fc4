"""The neural-tangents peers the benchmarks time are compiled (issue 12, defect 7; issue 16).

bench/test_cntk_bench.py used to time the bare, eager stax ``kernel_fn`` whenever its
``nt.batch`` block covered all the images (synth32-gap: 19.4 s per call eager against
3.7 s jitted). Every neural-tangents peer of ``ntkx bench`` and ``pytest bench/`` is now
built by ``ntkx._src.bench.peers.nt_compile`` (``jax.jit(kernel_fn, static_argnames='get')``,
or ``nt.batch``, which jits internally) and wrapped by ``nt_peer`` / ``nt_timed``, which
refuse anything else. These tests build each peer the harness builds (FC and CNTK, every
case of every scale) on a handful of tiny inputs and check that it is compiled, and that
the helpers refuse or catch an eager kernel_fn. (That the peers compute ntkx's kernel is
the harness's own check before every timing, and tests/test_*_nt.py.) Nothing here is timed.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from conftest import HAS_NT

pytestmark = [pytest.mark.nt, pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")]

from ntkx._src.bench import cases as bconf
from ntkx._src.bench import peers
from ntkx._src.bench import suites


def _all_cases(kind):
    return [c for scale in suites.SCALES for name in ("fc", "cntk")
            for c in suites.SUITES[name](scale) if isinstance(c, kind) and "neural_tangents" in c.peers
            and "neural_tangents" not in dict(c.skip)]


def _fc_kernel_fn(depth: int = 2):
    return bconf.fc_kernel_fn(peers.neural_tangents_stax(), depth)


# --------------------------------------------------------------------------------------
# Every peer the benchmarks build.
# --------------------------------------------------------------------------------------


#: The harness's FC cases by (d, L, w_std): its peer depends on N only through the points.
_FC_DL = {}
for _c in _all_cases(bconf.FcCase):
    _FC_DL.setdefault((_c.d, _c.depth, _c.w_std), set()).add(f"N{_c.n}")


@pytest.mark.parametrize("d,depth,w_std", list(_FC_DL),
                         ids=[f"d{d}-L{L}-{'-'.join(sorted(ns))}" for (d, L, _), ns in _FC_DL.items()])
def test_fc_peer_is_compiled(d, depth, w_std):
    """The harness's neural_tangents FC peer, for every case's (d, L), on 4 points."""
    import jax

    case = bconf.FcCase("fc", 4, d, depth, w_std=w_std)
    run = case.build("neural_tangents", case.inputs())
    assert run.compiled_kind == "jax.jit"
    assert isinstance(run.compiled, jax.stages.Wrapped)
    out = run()  # compiles here
    assert out.ntk.dtype == np.float64 and out.ntk.shape == (4, 4)
    assert np.all(np.isfinite(out.nngp)) and np.all(np.isfinite(out.ntk))


def _cntk_tiny(case):
    """(tiny case, batched): 2 or 4 Gaussian 4 x 4 images with the case's channels (digits 1,
    synth 3), and the harness's choice between nt.batch and jax.jit (block < images) kept."""
    batched = case.nt_batch is not None and case.nt_batch < case.n_nt
    n, block = (4, 2) if batched else (2, None)
    tiny = dataclasses.replace(case, dataset="synth4", n=n, n_nt=n, nt_batch=block)
    x = tiny.inputs()
    if case.dataset == "digits":
        x = x[..., :1]
    return tiny, x, batched


#: One harness CNTK case per (images, readout, compiled form): the peer depends on nothing else.
_CNTK = list({(c.dataset[:5], c.readout, c.nt_batch is not None and c.nt_batch < c.n_nt): c
              for c in _all_cases(bconf.CnnCase)}.values())


@pytest.mark.parametrize("case", _CNTK, ids=[c.id for c in _CNTK])
def test_cntk_peer_is_compiled(case):
    """The harness's neural_tangents CNTK peer for every case's readout, nt.batch or jax.jit as the
    case chooses (synth32-gap: jax.jit of the whole Gram), on tiny images."""
    tiny, x, batched = _cntk_tiny(case)
    run = tiny.build("neural_tangents", x)
    assert run.compiled_kind == ("nt.batch" if batched else "jax.jit")
    assert peers.compiled_kind(run.compiled) == run.compiled_kind
    out = run()
    ntk = np.asarray(out.ntk)
    assert ntk.dtype == np.float64 and ntk.shape == (len(x), len(x))
    assert np.all(np.isfinite(out.nngp)) and np.all(np.isfinite(ntk))


def test_bench_cases_cover_both_compiled_forms():
    """The synth32-gap cases (the one that ran eagerly) take the jax.jit path, others nt.batch."""
    kinds = {c.id: _cntk_tiny(c)[2] for c in _CNTK}
    assert not any(v for k, v in kinds.items() if "synth32-gap" in k)
    assert any(kinds.values())


# --------------------------------------------------------------------------------------
# The helpers refuse an eager kernel_fn.
# --------------------------------------------------------------------------------------


def test_nt_peer_refuses_an_eager_kernel_fn():
    kfn = _fc_kernel_fn()
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert peers.compiled_kind(kfn) is None
    with pytest.raises(TypeError, match="not compiled"):
        peers.nt_peer(kfn, x)
    # A closure that only calls a compiled function is not accepted either: nt_peer has to
    # see the compiled object itself.
    jitted = peers.nt_compile(kfn, len(x))
    with pytest.raises(TypeError, match="not compiled"):
        peers.nt_peer(lambda *a, **k: jitted(*a, **k), x)
    # nt.batch's output is recognised by identity, not by an attribute that wrappers copy.
    batched = peers.nt_compile(kfn, len(x), batch_size=2)
    assert peers.compiled_kind(batched) == "nt.batch"
    assert peers.compiled_kind(functools.wraps(batched)(lambda *a, **k: None)) is None
    with pytest.raises(ValueError):
        peers.nt_compile(kfn, len(x), batch_size=0)


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
    run = peers.nt_peer(peers.nt_compile(counted, len(x), block), x)
    assert run.compiled_kind == ("nt.batch" if block == 2 else "jax.jit")
    run()
    traced = len(calls)
    assert traced >= 1
    run()
    run()
    assert len(calls) == traced

    eager = peers.nt_peer(peers.nt_compile(counted, len(x), block), x)
    with jax.disable_jit():
        with pytest.raises(peers.EagerPeerError):
            eager()
