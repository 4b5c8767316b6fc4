"""The register program's cost: a residual FC net against a plain one of the same depth.

    python bench/residual.py [--n 8000] [--d 32] [--blocks 10] [--rounds 5] [--b-std 0.1]

Both run through ``stax.kernel_fn`` (NNGP + NTK, symmetric, float64, CPU, default
memory budget), interleaved in one process after one untimed warm-up each:

* ``plain``: ``Dense, [Relu, Dense] x 2 blocks`` -- one activation kind, so the fused
  homogeneous recursion (the angle table when bias-free);
* ``residual``: ``Dense, [FanOut(2), parallel(serial(Relu, Dense, Relu, Dense),
  Identity), FanInSum] x blocks, Relu, Dense`` -- the same 2 * blocks activations,
  plus the skips, compiled to the register program of ``csrc/ntkx/math/fc_program.h``;
* ``plain_program``: the plain net compiled to the program (``compile_program``), which
  separates the interpreter's cost from the skips' (one SUM per block).

Prints each route's median seconds over the rounds and the ratios to ``plain``
(issue 17's bar: residual <= 2x plain at N = 8000, d = 32, 10 blocks).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ntkx
from ntkx import stax
from ntkx._src.fc_program import compile_program


def nets(blocks: int, b: float, w: float = 1.4):
    dense = lambda n: stax.Dense(n, W_std=w, b_std=b)  # noqa: E731
    width = 64
    plain = stax.serial(dense(width), stax.repeat(stax.serial(stax.Relu(), dense(width)), 2 * blocks - 1),
                        stax.Relu(), dense(1))
    body = stax.serial(stax.Relu(), dense(width), stax.Relu(), dense(width))
    residual = stax.serial(dense(width), stax.repeat(stax.serial(stax.FanOut(2), stax.parallel(body, stax.Identity()),
                                                                 stax.FanInSum()), blocks),
                           stax.Relu(), dense(1))
    return plain, residual


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--b-std", type=float, default=0.1)
    a = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((a.n, a.d))
    plain, residual = nets(a.blocks, a.b_std)
    prog = compile_program(list(plain.ops), a.d)
    routes = {
        "plain": lambda: plain[2](x, None, ("nngp", "ntk"), device="cpu"),
        "residual": lambda: residual[2](x, None, ("nngp", "ntk"), device="cpu"),
        "plain_program": lambda: ntkx.fc_kernels(x, None, prog, device="cpu"),
    }
    want = routes["plain"]()
    got = routes["plain_program"]()
    err = max(float(np.max(np.abs(got.ntk - want.ntk)) / np.max(np.abs(want.ntk))),
              float(np.max(np.abs(got.nngp - want.nngp)) / np.max(np.abs(want.nngp))))
    for f in routes.values():  # warm-up
        f()
    times = {k: [] for k in routes}
    for _ in range(a.rounds):
        for k, f in routes.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"N={a.n} d={a.d} blocks={a.blocks} (2 x {a.blocks} ReLU layers) b_std={a.b_std} rounds={a.rounds} "
          f"threads={ntkx.build_info()['openmp_threads']}; plain_program vs plain max rel err {err:.1e}")
    for k, v in med.items():
        print(f"  {k:14s} median {v:8.3f} s  ratio to plain {v / med['plain']:.2f}  "
              f"(all: {', '.join(f'{t:.3f}' for t in times[k])})")


if __name__ == "__main__":
    main()
