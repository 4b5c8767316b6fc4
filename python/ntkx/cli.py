"""Command line: ``ntkx demo``, ``digits``, ``check``, ``precompute`` and ``bench`` (also ``python -m ntkx ...``).

``demo`` classifies scikit-learn's digits (shipped offline) with the NTK of a
fully-connected ReLU network and of a convolutional network with global average
pooling: it computes the kernels (with a progress bar), trains the infinitely wide
networks by gradient flow in closed form (`ntkx.dynamics`), and prints the accuracy,
the time of each step and test accuracy against training time t.

``digits`` is kernel regression (t = infinity) with FC NNGP and NTK kernels of
several depths.

``check`` runs the numerical checks of the NTK theorems (`ntkx.theory.checks`;
``--only NAME ...`` for some of them, ``--quick`` for their reduced sizes, ``--seed S``)
and writes ``report.md``, ``results.json`` and one figure per check into ``--out DIR``,
rewritten after every check so that an interrupted run keeps what finished. It prints
the verdict table at the end and exits 0 when every check ran, whatever the verdicts
(``does not hold`` is a finding), 1 when a check raised (the others still run, the
error is in the report), 2 on a bad argument (before any check runs), 130 on Ctrl-C.

``precompute`` computes a kernel into a tiled, resumable Zarr store (`ntkx.precompute`):
``ntkx precompute --arch "cnn-gap depth=6" --x1 train.npy --out K.zarr``; rerunning it
resumes. ``--status K.zarr`` prints how far a store is and what made it; ``--verify K.zarr``
recomputes a random sample of its entries (exit 1 on a mismatch).

``bench`` times ntkx and its peers (neural-tangents compiled, numpy) on the same inputs
against a measured machine model and writes ``results.json``, ``report.md`` and PNG plots:
``ntkx bench --scale small --out bench-out`` (``--only fc cntk`` for some suites);
``ntkx bench compare A.json B.json [--fail-on-regression]`` compares two runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ntkx._src.cli import bench as bench_cli
from ntkx._src.cli.demos import demo, digits
from ntkx._src.cli.precompute import check_precompute_args, precompute_cmd
from ntkx._src.cli.theory import check
from ntkx._src.cli.options import (
    architecture, attach_negative_values, check_device, check_name, input_path, integer, kernel_names, number,
    scheduler_address, store_dir)

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> int:
    """The ``ntkx`` command line: parses and checks every option, then runs the command.

    Args:
      argv: the words after the program name (default ``sys.argv[1:]``).

    Returns:
      The command's exit status (see each command's help); a bad option exits 2 from argparse
      (`SystemExit`) before any data or kernel work.
    """
    from ntkx._src.cntk import _MAX_CONV
    from ntkx._src.validate import MAX_DEPTH

    # Every value is checked here, by argparse, before any data or kernel work:
    # a bad one exits with status 2 and one "argument --x: ..." line.
    depth = integer(0, MAX_DEPTH)
    train = integer(1)  # the upper bound, the dataset size minus one, is checked on loading
    parser = argparse.ArgumentParser(prog="ntkx", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="digits with FC and CNN-GAP NTKs: accuracy, timings, dynamics")
    d.add_argument("--train", type=train, default=1000, help="first N images train, the rest test (default 1000)")
    d.add_argument("--fc-depth", type=depth, default=3, help="hidden ReLU layers of the FC network (default 3)")
    d.add_argument("--cnn-depth", type=integer(0, _MAX_CONV), default=2,
                   help=f"conv layers of the CNN-GAP network, 0..{_MAX_CONV} (default 2; 0 skips it)")
    d.add_argument("--ridge", type=number(), default=1e-6,
                   help="ridge relative to the mean diagonal, finite and >= 0 (default 1e-6)")
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    d.add_argument("--progress", action="store_const", const="always", default="tty",
                   help="progress bars on stderr (default: only when stderr is a terminal)")
    d.add_argument("--no-progress", dest="progress", action="store_const", const="never")
    d.set_defaults(func=demo)
    p = sub.add_parser("digits", help="NTK kernel regression on scikit-learn's digits")
    p.add_argument("--depth", type=depth, nargs="+", default=[1, 3, 5], help="hidden ReLU layers L (default 1 3 5)")
    p.add_argument("--kernel", nargs="+", choices=["nngp", "ntk"], default=["nngp", "ntk"])
    p.add_argument("--train", type=train, default=1000, help="first N images train, the rest test (default 1000)")
    p.add_argument("--w-std", type=number(positive=True), default=2**0.5, help="weight std, finite and > 0")
    p.add_argument("--b-std", type=number(), default=0.0, help="bias std, finite and >= 0")
    p.add_argument("--ridge", type=number(), default=1e-6, help="ridge relative to the mean diagonal, finite and >= 0")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--progress", action="store_true", help="show a progress line per kernel")
    p.set_defaults(func=digits)
    c = sub.add_parser("check", help="numerical checks of the NTK theorems: report.md, results.json, figures")
    c.add_argument("--quick", action="store_true", help="the checks' reduced sizes")
    c.add_argument("--only", type=check_name, nargs="+", action="extend", metavar="NAME",
                   help="run only these checks (default: all, in the registry's order)")
    c.add_argument("--seed", type=integer(0), default=0, help="base seed of every check (default 0)")
    c.add_argument("--out", required=True, metavar="DIR", help="folder of the report (created if missing)")
    c.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")
    c.set_defaults(func=check)
    from ntkx.precompute import DEFAULT_TILE

    q = sub.add_parser(
        "precompute", help="compute a kernel tile by tile into a resumable Zarr store; --status, --verify",
        description="Compute the NNGP/NTK of an architecture between --x1 and --x2 (default: x1 itself) into a "
                    "Zarr store, tile by tile; rerun the same command to resume. Ctrl-C keeps finished tiles "
                    "and prints the command that resumes. Exit status: 0 done, 1 failed (or --verify found a "
                    "mismatch), 2 bad argument (before any work), 130 interrupted.")
    q.add_argument("--arch", type=architecture, metavar="ARCH",
                   help="architecture string: 'fc depth=3 w_std=1.4 b_std=0.1 act=relu', 'cnn-gap depth=6', "
                        "'cnn-vanilla depth=2 filter=3'")
    q.add_argument("--x1", type=input_path, metavar="PATH", help="inputs: .npy (memory-mapped), .npz or Zarr array")
    q.add_argument("--x2", type=input_path, metavar="PATH", help="second inputs (default: x1 against itself)")
    q.add_argument("--out", metavar="STORE", help="the store's directory (created, or resumed)")
    q.add_argument("--get", type=kernel_names, default=("nngp", "ntk"), metavar="KERNELS",
                   help="ntk, nngp or nngp,ntk (default nngp,ntk)")
    q.add_argument("--tile", type=integer(1), default=DEFAULT_TILE, help=f"tile side (default {DEFAULT_TILE})")
    q.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="stored dtype (default float32)")
    q.add_argument("--layout", choices=["NHWC", "NCHW"], help="image layout of cnn-* inputs (default NHWC)")
    q.add_argument("--workers", type=integer(1), default=2, help="local threads, one tile each (default 2)")
    where = q.add_mutually_exclusive_group()
    where.add_argument("--scheduler", type=scheduler_address, metavar="ADDRESS",
                       help="a Dask scheduler (tcp://host:8786); workers must see the store and inputs")
    where.add_argument("--local-cluster", type=integer(1), metavar="N",
                       help="start a dask.distributed LocalCluster of N worker processes")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--no-progress", dest="progress", action="store_false", help="no progress line on stderr")
    q.add_argument("--status", type=store_dir, metavar="STORE", help="print a store's progress and spec")
    q.add_argument("--verify", type=store_dir, metavar="STORE",
                   help="recompute a random sample of stored entries; exit 1 on a mismatch")
    q.add_argument("--samples", type=integer(1), default=200, help="entries --verify recomputes (default 200)")
    q.add_argument("--seed", type=integer(0), default=0, help="seed of --verify's sample (default 0)")
    q.set_defaults(func=precompute_cmd)
    bench_cli.add_parser(sub)
    args = parser.parse_args(attach_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if args.command in ("demo", "digits", "precompute"):
        check_device({"demo": d, "digits": p, "precompute": q}[args.command], args.device)
    if args.command == "precompute":
        check_precompute_args(q, args)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
