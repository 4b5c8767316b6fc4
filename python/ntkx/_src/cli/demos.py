"""``ntkx demo`` and ``ntkx digits``: scikit-learn's digits classified with the NTKs of the engine."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Tuple

import numpy as np

from ntkx._src.cli import common


def digits(args: argparse.Namespace) -> int:
    """``ntkx digits``: kernel regression (t = infinity) of the digits with FC NNGP and NTK kernels.

    Prints, per depth and kernel, the test accuracy and the time of each Gram and of the solve.

    Args:
      args: the parsed command line (``--depth``, ``--kernel``, ``--train``, ``--w-std``, ``--b-std``,
        ``--ridge``, ``--device``, ``--progress``).

    Returns:
      The exit status: 0, or 2 when the data cannot be loaded.
    """
    from scipy import linalg

    from ntkx import stax

    t0 = time.perf_counter()
    data = digits_data(args.train)
    if data is None:
        return 2
    xtr, ytr, xte, yte = data
    t_load = time.perf_counter() - t0
    common.print_build()
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


def digits_data(n_train: int) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """scikit-learn's digits, pixels / 16: the first `n_train` images train, the rest test.

    Args:
      n_train: training images, 1 .. 1796.

    Returns:
      ``(x_train, y_train, x_test, y_test)`` (labels as integers), or None after printing
      why on stderr (no scikit-learn, or `n_train` out of range).
    """
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
    """``ntkx demo``: the digits with the NTKs of an FC and a CNN-GAP network, trained by gradient flow.

    The flow is solved in closed form (`MSEDynamics`); prints accuracies, timings and test
    accuracy against training time.

    Args:
      args: the parsed command line (``--train``, ``--fc-depth``, ``--cnn-depth``, ``--ridge``, ``--device``,
        ``--progress``).

    Returns:
      The exit status: 0, or 2 when the data cannot be loaded.
    """
    import ntkx
    from ntkx.dynamics import MSEDynamics

    t_start = time.perf_counter()
    data = digits_data(args.train)
    if data is None:
        return 2
    xtr, ytr, xte, yte = data
    common.print_build()
    print(f"digits: {len(xtr)} train / {len(xte)} test, 8x8 pixels / 16, targets one-hot")
    from ntkx._src.activations import relu as make_relu

    relu = make_relu()
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
