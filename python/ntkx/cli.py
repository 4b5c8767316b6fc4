"""Command line: ``ntkx digits`` (also ``python -m ntkx digits``).

Computes the infinite-width NTK of a fully-connected ReLU network on scikit-learn's
digits (shipped offline), solves kernel regression (the t = infinity limit of
gradient-descent training, Jacot et al. 2018) and prints accuracy and timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import numpy as np


def digits(args: argparse.Namespace) -> int:
    from scipy import linalg

    import ntkx
    from ntkx import stax

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("ntkx digits needs scikit-learn: pip install scikit-learn", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    n_train = args.train
    if not 0 < n_train < len(x):
        print(f"--train must be in 1..{len(x) - 1}", file=sys.stderr)
        return 2
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    t_load = time.perf_counter() - t0
    info = ntkx.build_info()
    print(f"ntkx {ntkx.__version__}: OpenMP threads {info['openmp_threads']}, CUDA built {info['cuda_built']}, "
          f"CUDA devices {info['cuda_devices']}")
    print(f"digits: {len(xtr)} train / {len(xte)} test, d = {x.shape[1]}, pixels / 16")
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ntkx", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("digits", help="NTK kernel regression on scikit-learn's digits")
    p.add_argument("--depth", type=int, nargs="+", default=[1, 3, 5], help="hidden ReLU layers L (default 1 3 5)")
    p.add_argument("--kernel", nargs="+", choices=["nngp", "ntk"], default=["nngp", "ntk"])
    p.add_argument("--train", type=int, default=1000, help="first N images train, the rest test (default 1000)")
    p.add_argument("--w-std", type=float, default=2**0.5)
    p.add_argument("--b-std", type=float, default=0.0)
    p.add_argument("--ridge", type=float, default=1e-6, help="ridge relative to the mean diagonal")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--progress", action="store_true", help="show a progress line per kernel")
    p.set_defaults(func=digits)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
