"""A scale check of the CNTK that takes minutes, not benchmark rounds: its peak memory.

    python bench/cntk_scale.py memory [--n 2000] [--seconds 30]

(The speed-up over threads, formerly ``threads`` here, is the ``threads`` suite of
``ntkx bench``: ``ntkx bench --only threads --out DIR``.)

``memory``: the peak memory of an n x n CNN-GAP Gram (32x32x3 images,
[Conv 3x3 -> Relu] x 6 -> GAP -> Dense, NNGP + NTK, default memory budget) through
the real driver. A full 2,000 x 2,000 Gram takes about 10 hours here, but every
allocation of a tile happens when its backend call starts, so each call is stopped
by its own progress callback after ``--seconds`` and the driver goes on to the next
tile. Reports the peak RSS beyond the RSS before the call and the outputs.
"""

from __future__ import annotations

import argparse
import resource
import time


import ntkx
from ntkx import stax
from ntkx._src import cntk as engine
from ntkx._src.bench.cases import cnn_images, cnn_kernel_fn


def kernel_fn():
    """The bench's CNN-GAP network (``ntkx._src.bench.cases``: [Conv 3x3 -> Relu] x 6 -> GAP -> Dense)."""
    return cnn_kernel_fn(stax, "gap")


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class _StopTile(Exception):
    pass


def memory(n: int, seconds: float) -> None:
    x = cnn_images("synth32", n)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--n", type=int, default=2000)
    m.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    print(ntkx.build_info())
    memory(args.n, args.seconds)


if __name__ == "__main__":
    main()
