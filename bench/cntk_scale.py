"""Scale checks of the CNTK that take minutes, not benchmark rounds.

    python bench/cntk_scale.py memory [--n 2000] [--seconds 30]
    python bench/cntk_scale.py threads [--n 24]

``memory``: the peak memory of an n x n CNN-GAP Gram (32x32x3 images,
[Conv 3x3 -> Relu] x 6 -> GAP -> Dense, NNGP + NTK, default memory budget) through
the real driver. A full 2,000 x 2,000 Gram takes about 10 hours here, but every
allocation of a tile happens when its backend call starts, so each call is stopped
by its own progress callback after ``--seconds`` and the driver goes on to the next
tile. Reports the peak RSS beyond the RSS before the call and the outputs.

``threads``: the speed-up of 2 OpenMP threads over 1 on an n-image GAP Gram (times
of 1, 2, 1, 2 threads; min over min).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import ntkx
from ntkx import stax
from ntkx._src import cntk as engine


def kernel_fn():
    layers = []
    for _ in range(6):
        layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=np.sqrt(2.0)), stax.Relu()]
    return stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(1, W_std=np.sqrt(2.0)))[2]


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class _StopTile(Exception):
    pass


def memory(n: int, seconds: float) -> None:
    x = np.random.default_rng(0).standard_normal((n, 32, 32, 3))
    kfn = kernel_fn()
    base = rss_mib()
    tiles = []
    backend = engine._core.cntk

    def stopped_after(params, x1, x2, nngp, ntk, symmetric, threads, dev, progress=None):
        t0 = time.perf_counter()

        def tick(done):
            progress(done)
            if time.perf_counter() - t0 > seconds:
                raise _StopTile

        try:
            backend(params, x1, x2, nngp, ntk, symmetric, threads, dev, progress=tick)
        except _StopTile:
            pass
        tiles.append((len(x1), len(x2), symmetric, rss_mib() - base))

    engine._core.cntk = stopped_after
    try:
        k = kfn(x, None, ("nngp", "ntk"), device="cpu")
    finally:
        engine._core.cntk = backend
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outs = (k.nngp.nbytes + k.ntk.nbytes) / 2**20
    print(f"{n} x {n} CNN-GAP Gram of 32x32x3 images, each tile stopped after {seconds:g} s")
    print(f"inputs {x.nbytes / 2**20:.1f} MiB, outputs {outs:.1f} MiB, RSS before the call {base:.1f} MiB")
    for rows, cols, sym, grown in tiles:
        print(f"  tile {rows} x {cols}{' (diagonal)' if sym else ''}: RSS {grown:+.1f} MiB after it")
    print(f"peak RSS {peak:.1f} MiB: {peak - base - outs:.1f} MiB beyond the RSS before the call and the outputs")


def threads(n: int) -> None:
    x = np.random.default_rng(0).standard_normal((n, 32, 32, 3))
    kfn = kernel_fn()
    times = {1: [], 2: []}
    for th in (1, 2, 1, 2):
        t0 = time.perf_counter()
        kfn(x, None, ("nngp", "ntk"), threads=th)
        times[th].append(time.perf_counter() - t0)
    t1, t2 = ([round(t, 2) for t in times[k]] for k in (1, 2))
    print(f"{n}-image CNN-GAP Gram, 32x32x3: 1 thread {t1} s, 2 threads {t2} s")
    print(f"2 threads over 1 (min over min): {min(times[1]) / min(times[2]):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--n", type=int, default=2000)
    m.add_argument("--seconds", type=float, default=30.0)
    t = sub.add_parser("threads")
    t.add_argument("--n", type=int, default=24)
    args = ap.parse_args()
    print(ntkx.build_info())
    if args.what == "memory":
        memory(args.n, args.seconds)
    else:
        threads(args.n)


if __name__ == "__main__":
    main()
