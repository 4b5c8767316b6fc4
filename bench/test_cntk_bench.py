"""CNTK timings: ntkx against neural-tangents on the same images, in the same run.

Every call computes the float64 NNGP and NTK of
``[Conv(3x3, SAME, W_std=sqrt 2) -> Relu] x L -> GlobalAvgPool | Flatten -> Dense``
(no bias) on a symmetric Gram. Rates are pairs per second (distinct entries
N(N+1)/2 over the median wall time), so a peer may run fewer images than ntkx when
it would take minutes; both sizes are in the table.

Work model (counted from csrc/ntkx/math/cntk.h (abrelu_dual) and cpu/cntk.cpp, FMA = 2 flops,
sqrt = 1; selects, compares and the zero rows added at slice edges not counted):
per position pair of every slice the readout needs, 2C - 1 (channel products) + 6
(conv 0's box filter) + 50 per ReLU dual (correlation 5, angle and duals 44, Theta
update 1) + 13 per later conv (box filters of Sigma and Theta) + 2 (readout sums).
GAP has (PQ)^2 position pairs per image pair, vanilla PQ. The work rate is taken
against a dgemm measured right after each ntkx case (bench/peak.py).

Run: ``python -m pytest bench/test_cntk_bench.py --benchmark-only -s`` (see bench/README.md).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np
import pytest

import ntkx
from ntkx import stax as nstax

from .conftest import HAS_NT, SHRINK, neural_tangents_stax, nt_compile, nt_peer, record_cntk
from .peak import dgemm_gflops

DEPTH = 6
W_STD = float(np.sqrt(2.0))


@dataclasses.dataclass(frozen=True)
class CnnCase:
    name: str
    readout: str   # 'gap' or 'vanilla'
    n_ntkx: int    # images in ntkx's Gram
    n_nt: int      # images in neural-tangents' Gram
    nt_batch: int  # neural-tangents' nt.batch block (memory: it stores (PQ)^2 per pair)

    def images(self, n: int) -> np.ndarray:
        if self.name.startswith("digits"):
            from sklearn.datasets import load_digits

            x = load_digits().data[:n].reshape(-1, 8, 8, 1) / 16.0
        else:
            x = np.random.default_rng(0).standard_normal((n, 32, 32, 3))
        return np.ascontiguousarray(x)


CASES = [
    CnnCase("digits-gap", "gap", 400, 400, 40),
    CnnCase("digits-vanilla", "vanilla", 400, 400, 100),
    CnnCase("synth32-gap", "gap", 48, 4, 4),
    CnnCase("synth32-vanilla", "vanilla", 400, 100, 25),
]


def flops_per_pair(P: int, Q: int, C: int, depth: int, readout: str) -> float:
    """The work model of the module docstring."""
    per_elem = (2 * C - 1) + 6 + 50 * depth + 13 * (depth - 1) + 2
    elems = (P * Q) ** 2 if readout == "gap" else P * Q
    return float(per_elem) * elems


def ntkx_fn(x: np.ndarray, readout: str) -> Callable[[], object]:
    layers = []
    for _ in range(DEPTH):
        layers += [nstax.Conv(1, (3, 3), padding="SAME", W_std=W_STD), nstax.Relu()]
    pool = nstax.GlobalAvgPool() if readout == "gap" else nstax.Flatten()
    _, _, kfn = nstax.serial(*layers, pool, nstax.Dense(1, W_std=W_STD))
    return lambda: kfn(x, None, ("nngp", "ntk"), device="cpu")


def nt_fn(x: np.ndarray, readout: str, batch: int) -> Optional[Callable[[], object]]:
    """neural-tangents' (NNGP, NTK) of `x`, compiled: ``nt.batch`` in blocks of `batch`
    when that is fewer than the images, else ``jax.jit(kernel_fn, static_argnames='get')``
    (conftest.nt_compile; it was the bare, eager kernel_fn there, 5x slower)."""
    stax = neural_tangents_stax()
    if stax is None:
        return None
    layers = []
    for _ in range(DEPTH):
        layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=W_STD), stax.Relu()]
    pool = stax.GlobalAvgPool() if readout == "gap" else stax.Flatten()
    _, _, kfn = stax.serial(*layers, pool, stax.Dense(1, W_std=W_STD))
    return nt_peer(nt_compile(kfn, len(x), batch, store_on_device=False), x, get=("nngp", "ntk"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("peer", ["ntkx", "neural_tangents"])
def test_cntk(benchmark, peer, case):
    if peer == "neural_tangents" and not HAS_NT:
        pytest.skip("neural-tangents is not installed (pip install .[nt])")
    n = max(2, (case.n_ntkx if peer == "ntkx" else case.n_nt) // SHRINK)
    x = case.images(n)
    fn = ntkx_fn(x, case.readout) if peer == "ntkx" else nt_fn(x, case.readout, case.nt_batch)
    t0 = time.perf_counter()
    fn()  # warm-up (jit compilation for neural-tangents)
    warm = time.perf_counter() - t0
    rounds = 1 if warm > 20 else (3 if warm > 2 else 5)
    benchmark.group = case.name
    benchmark.extra_info.update(peer=peer, N=n, warm_call_s=warm)
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=0, iterations=1)
    P, Q, C = x.shape[1:]
    # The yardstick next to the timing: a dgemm measured now, not minutes later.
    peak = dgemm_gflops() if peer == "ntkx" else None
    record_cntk(benchmark, case.name, peer, n, flops_per_pair(P, Q, C, DEPTH, case.readout), peak)


@pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")
def test_peers_agree():
    """What the benchmark times is the same kernel (float64, off-diagonal entries)."""
    for case in (CASES[0], CASES[1]):
        x = case.images(12)
        a = ntkx_fn(x, case.readout)()
        b = np.asarray(nt_fn(x, case.readout, 100)().ntk)
        off = ~np.eye(len(x), dtype=bool)
        assert np.max(np.abs(a.ntk - b)[off] / np.abs(b)[off]) < 1e-11
