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
    """RSS of a CNN-GAP Gram call stopped after `seconds` (the driver tiles it to the
    memory budget in C++; its progress callback stops it)."""
    x = cnn_images("synth32", n)
    kfn = kernel_fn()
    base = rss_mib()
    t0 = time.perf_counter()
    grown = []

    def stop(done, total):
        grown.append((done, rss_mib() - base))
        if time.perf_counter() - t0 > seconds:
            raise _StopTile

    try:
        kfn(x, None, ("nngp", "ntk"), device="cpu", progress=stop)
    except _StopTile:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outs = 2 * n * n * 8 / 2**20
    print(f"{n} x {n} CNN-GAP Gram of 32x32x3 images, stopped after {seconds:g} s ({grown[-1][0] if grown else 0} pairs)")
    print(f"inputs {x.nbytes / 2**20:.1f} MiB, outputs {outs:.1f} MiB, RSS before the call {base:.1f} MiB")
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
