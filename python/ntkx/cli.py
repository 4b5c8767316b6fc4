"""Command line: ``ntkx demo``, ``ntkx digits`` and ``ntkx check`` (also ``python -m ntkx ...``).

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
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from typing import Callable, List, Optional

import numpy as np


def digits(args: argparse.Namespace) -> int:
    from scipy import linalg

    import ntkx
    from ntkx import stax

    t0 = time.perf_counter()
    data = _load_digits(args.train)
    if data is None:
        return 2
    xtr, ytr, xte, yte = data
    t_load = time.perf_counter() - t0
    _print_build()
    print(f"digits: {len(xtr)} train / {len(xte)} test, d = {xtr.shape[1]}, pixels / 16")
    print(f"{'depth':>5} {'kernel':>6} {'accuracy':>9} {'train Gram s':>13} {'test Gram s':>12} {'solve s':>8}")
    for depth in args.depth:
        layers = [stax.Dense(512, W_std=args.w_std, b_std=args.b_std)]
        layers += [stax.Relu(), stax.Dense(512, W_std=args.w_std, b_std=args.b_std)] * depth
        kernel_fn = stax.serial(*layers)[2]
        for get in args.kernel:
            t1 = time.perf_counter()
            ktr = kernel_fn(xtr, None, get, device=args.device, progress=args.progress)
            t2 = time.perf_counter()
            kte = kernel_fn(xte, xtr, get, device=args.device, progress=args.progress)
            t3 = time.perf_counter()
            targets = np.eye(10)[ytr]
            reg = args.ridge * np.trace(ktr) / len(ktr)
            coef = linalg.cho_solve(linalg.cho_factor(ktr + reg * np.eye(len(ktr))), targets)
            acc = float(np.mean(np.argmax(kte @ coef, axis=1) == yte))
            t4 = time.perf_counter()
            print(f"{depth:>5} {get:>6} {100 * acc:8.2f}% {t2 - t1:13.3f} {t3 - t2:12.3f} {t4 - t3:8.3f}")
    print(f"total {time.perf_counter() - t0:.2f} s (data {t_load:.2f} s)")
    return 0


def _print_build() -> None:
    """The version and what this build runs on: the first line of every command."""
    import ntkx

    info = ntkx.build_info()
    print(f"ntkx {ntkx.__version__}: OpenMP threads {info['openmp_threads']}, CUDA built {info['cuda_built']}, "
          f"CUDA devices {info['cuda_devices']}")


def _load_digits(n_train: int):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("this command needs scikit-learn: pip install scikit-learn", file=sys.stderr)
        return None
    x, y = load_digits(return_X_y=True)
    if not 0 < n_train < len(x):
        print(f"--train must be in 1..{len(x) - 1}, got {n_train}", file=sys.stderr)
        return None
    x = x / 16.0
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def demo(args: argparse.Namespace) -> int:
    import ntkx
    from ntkx.dynamics import MSEDynamics

    t_start = time.perf_counter()
    data = _load_digits(args.train)
    if data is None:
        return 2
    xtr, ytr, xte, yte = data
    _print_build()
    print(f"digits: {len(xtr)} train / {len(xte)} test, 8x8 pixels / 16, targets one-hot")
    relu = ntkx.Activation("abrelu", 0.0, 1.0, 0.0, "Relu")
    models = [(f"FC NTK, {args.fc_depth} hidden ReLU layers", "fc",
               ntkx.FcSpec(args.fc_depth, 2**0.5, 0.0, relu))]
    if args.cnn_depth > 0:
        conv = ntkx.ConvLayer(2**0.5, 0.0, 3)
        models.append((f"CNN-GAP NTK, {args.cnn_depth} x [Conv 3x3, ReLU]", "cnn",
                       ntkx.CntkSpec((conv,) * args.cnn_depth, relu, True, "gap", 2**0.5, 0.0)))
    targets = np.eye(10)[ytr]
    # Training times in units of 1/lambda_max (learning rate 1, gradient flow on
    # 1/2 sum (f - y)^2): tau = t * lambda_max.
    taus = np.array([1.0, 10.0, 1e2, 1e3, 1e4, 1e5, np.inf])
    curves = []
    print(f"\n{'kernel':<40} {'train K s':>9} {'test K s':>8} {'dynamics s':>10} {'accuracy':>9}")
    for name, kind, spec in models:
        progress = args.progress == "always" or (args.progress == "tty" and sys.stderr.isatty())
        t0 = time.perf_counter()
        if kind == "fc":
            ktr = ntkx.fc_kernels(xtr, None, spec, "ntk", device=args.device, progress=progress)
            t1 = time.perf_counter()
            kte = ntkx.fc_kernels(xte, xtr, spec, "ntk", device=args.device, progress=progress)
        else:
            itr, ite = xtr.reshape(-1, 8, 8, 1), xte.reshape(-1, 8, 8, 1)
            ktr = ntkx.cntk_kernels(itr, None, spec, "ntk", device=args.device, progress=progress)
            t1 = time.perf_counter()
            kte = ntkx.cntk_kernels(ite, itr, spec, "ntk", device=args.device, progress=progress)
        t2 = time.perf_counter()
        ridge = args.ridge * float(np.mean(np.diag(ktr)))
        dyn = MSEDynamics(ktr, targets, learning_rate=1.0, ridge=ridge)
        lmax = float(dyn.eigenvalues[0])
        f = dyn.test_mean(taus / lmax, kte)  # (times, n_test, 10): one eigendecomposition for all t
        acc = np.mean(np.argmax(f, axis=-1) == yte, axis=-1)
        t3 = time.perf_counter()
        curves.append(acc)
        print(f"{name:<40} {t1 - t0:9.2f} {t2 - t1:8.2f} {t3 - t2:10.2f} {100 * acc[-1]:8.2f}%", flush=True)
    print("\ntest accuracy of the infinitely wide network after gradient flow for time t "
          "(learning rate 1, t in units of 1/lambda_max of each kernel)")
    print(f"{'t * lambda_max':>14} " + " ".join(f"{n.split(',')[0]:>9}" for n, _, _ in models))
    for i, tau in enumerate(taus):
        label = "inf" if np.isinf(tau) else f"{tau:g}"
        print(f"{label:>14} " + " ".join(f"{100 * c[i]:8.2f}%" for c in curves))
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s")
    return 0


def check(args: argparse.Namespace) -> int:
    from ntkx._src.theory.report import CheckRunError, run_checks, verdict_table

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        print(f"ntkx check: error: argument --out: cannot create the folder {args.out!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    # The canonical form of this command line, for the report's header.
    command = " ".join(["ntkx check"] + (["--quick"] if args.quick else [])
                       + (["--only", *args.only] if args.only else [])
                       + ["--seed", str(args.seed), "--out", shlex.quote(args.out)])
    _print_build()
    status = 0
    try:
        results = run_checks(args.only, quick=args.quick, seed=args.seed, out=args.out, progress=args.progress,
                             command=command)
        errors: list = []
    except CheckRunError as exc:
        results, errors, status = exc.results, exc.errors, 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: {os.path.join(args.out, 'report.md')} has the checks that finished",
              file=sys.stderr)
        return 130
    print(verdict_table(results, errors), end="")
    for e in errors:
        print(f"error in {e['name']} ({e['stage']}): {e['error']} at {e['where']}", file=sys.stderr)
    print(f"report: {os.path.join(args.out, 'report.md')}")
    return status


def _check_name(text: str) -> str:
    """An argparse ``type=``: a registered check's name; the error echoes it and lists the valid ones."""
    from ntkx._src.theory import report

    names = list(report._default_registry())
    if text not in names:
        raise argparse.ArgumentTypeError(f"unknown check {text!r}; valid names: {', '.join(names)}")
    return text


def _integer(lo: int, hi: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer in ``lo..hi`` (``>= lo`` without `hi`); the error echoes what was typed."""
    want = f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value

    parse.__name__ = want
    return parse


def _number(positive: bool = False) -> Callable[[str], float]:
    """An argparse ``type=``: a finite float >= 0 (> 0 with `positive`); the error echoes what was typed."""
    want = f"a finite number {'>' if positive else '>='} 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if not math.isfinite(value) or (value <= 0 if positive else value < 0):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value

    parse.__name__ = want
    return parse


def _check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """``--device cuda`` needs a CUDA build and a visible device: parser.error (exit 2) before any work."""
    if device != "cuda":
        return
    import ntkx

    info = ntkx.build_info()
    if not info["cuda_built"]:
        parser.error("argument --device: 'cuda' was given but this ntkx build has no CUDA backend; "
                     "use --device cpu or auto")
    if info["cuda_devices"] == 0:
        parser.error("argument --device: 'cuda' was given but no CUDA device is available; "
                     "use --device cpu or auto")


def _attach_negative_values(argv: List[str]) -> List[str]:
    """``--ridge -1e-3`` as ``--ridge=-1e-3``.

    argparse takes only ``-1`` / ``-.5``-shaped words for negative numbers and
    reads ``-1e-3`` or ``-inf`` as an unknown option ("expected one argument");
    attached to its option, the value reaches the option's type check, whose error
    echoes it.
    """
    out: List[str] = []
    for word in argv:
        if out and word.startswith("-") and out[-1].startswith("--") and "=" not in out[-1]:
            try:
                float(word)
            except ValueError:
                pass
            else:
                out[-1] += "=" + word
                continue
        out.append(word)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    from ntkx._src.cntk import _MAX_CONV
    from ntkx._src.validate import MAX_DEPTH

    # Every value is checked here, by argparse, before any data or kernel work:
    # a bad one exits with status 2 and one "argument --x: ..." line.
    depth = _integer(0, MAX_DEPTH)
    train = _integer(1)  # the upper bound, the dataset size minus one, is checked on loading
    parser = argparse.ArgumentParser(prog="ntkx", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="digits with FC and CNN-GAP NTKs: accuracy, timings, dynamics")
    d.add_argument("--train", type=train, default=1000, help="first N images train, the rest test (default 1000)")
    d.add_argument("--fc-depth", type=depth, default=3, help="hidden ReLU layers of the FC network (default 3)")
    d.add_argument("--cnn-depth", type=_integer(0, _MAX_CONV), default=2,
                   help=f"conv layers of the CNN-GAP network, 0..{_MAX_CONV} (default 2; 0 skips it)")
    d.add_argument("--ridge", type=_number(), default=1e-6,
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
    p.add_argument("--w-std", type=_number(positive=True), default=2**0.5, help="weight std, finite and > 0")
    p.add_argument("--b-std", type=_number(), default=0.0, help="bias std, finite and >= 0")
    p.add_argument("--ridge", type=_number(), default=1e-6, help="ridge relative to the mean diagonal, finite and >= 0")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--progress", action="store_true", help="show a progress line per kernel")
    p.set_defaults(func=digits)
    c = sub.add_parser("check", help="numerical checks of the NTK theorems: report.md, results.json, figures")
    c.add_argument("--quick", action="store_true", help="the checks' reduced sizes")
    c.add_argument("--only", type=_check_name, nargs="+", action="extend", metavar="NAME",
                   help="run only these checks (default: all, in the registry's order)")
    c.add_argument("--seed", type=_integer(0), default=0, help="base seed of every check (default 0)")
    c.add_argument("--out", required=True, metavar="DIR", help="folder of the report (created if missing)")
    c.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")
    c.set_defaults(func=check)
    args = parser.parse_args(_attach_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if args.command in ("demo", "digits"):
        _check_device({"demo": d, "digits": p}[args.command], args.device)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
