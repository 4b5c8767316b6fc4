"""Command line: ``ntkx demo``, ``digits``, ``check`` and ``precompute`` (also ``python -m ntkx ...``).

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
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from typing import Callable, List, Optional, Tuple

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


# ---------------------------------------------------------------------------------------------- precompute

#: The file in a store where ``ntkx precompute`` records the architecture string, where
#: the inputs are and the command that resumes (zarr ignores it; written atomically).
_CLI_RECORD = "ntkx-cli.json"


def _arch(text: str):
    """An argparse ``type=``: an architecture string (`parse_architecture`); the error echoes it."""
    from ntkx._src.precompute.kernel import parse_architecture

    try:
        parse_architecture(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _input_path(text: str) -> str:
    """An argparse ``type=``: an existing ``.npy`` / ``.npz`` file or Zarr array directory."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file or directory {text!r}")
    if not (text.endswith((".npy", ".npz")) or os.path.isdir(text)):
        raise argparse.ArgumentTypeError(f"expected a .npy or .npz file or a Zarr array directory, got {text!r}")
    return text


def _get_names(text: str) -> Tuple[str, ...]:
    """An argparse ``type=``: ``ntk``, ``nngp`` or a comma-separated list of them, each once."""
    names = tuple(w.strip() for w in text.split(","))
    if not names or any(n not in ("nngp", "ntk") for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected ntk, nngp or nngp,ntk, got {text!r}")
    return names


def _scheduler_address(text: str) -> str:
    """An argparse ``type=``: a Dask scheduler address ``[tcp://]host:port``."""
    rest = text.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected a scheduler address such as tcp://host:8786, got {text!r}")
    return text


def _store_dir(text: str) -> str:
    """An argparse ``type=``: an existing kernel store (a directory with zarr.json)."""
    if not os.path.isfile(os.path.join(text, "zarr.json")):
        raise argparse.ArgumentTypeError(f"not a kernel store (no zarr.json): {text!r}")
    return text


def _resume_command(args: argparse.Namespace) -> str:
    """The ``ntkx precompute`` command line that reruns (resumes) this computation, paths absolute."""
    words = ["ntkx", "precompute", "--arch", args.arch, "--x1", os.path.abspath(args.x1)]
    if args.x2 is not None:
        words += ["--x2", os.path.abspath(args.x2)]
    words += ["--out", os.path.abspath(args.out), "--get", ",".join(args.get), "--tile", str(args.tile),
              "--dtype", args.dtype]
    if args.layout is not None:
        words += ["--layout", args.layout]
    if args.scheduler is not None:
        words += ["--scheduler", args.scheduler]
    elif args.local_cluster is not None:
        words += ["--local-cluster", str(args.local_cluster)]
    else:
        words += ["--workers", str(args.workers)]
    if args.device != "auto":
        words += ["--device", args.device]
    return " ".join(shlex.quote(w) for w in words)


def _read_cli_record(store: str) -> dict:
    import json

    try:
        with open(os.path.join(store, _CLI_RECORD), "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def _write_cli_record(args: argparse.Namespace) -> None:
    import json

    from ntkx._src import durable

    record = {"arch": args.arch, "x1": os.path.abspath(args.x1),
              "x2": None if args.x2 is None else os.path.abspath(args.x2), "layout": args.layout,
              "command": _resume_command(args)}
    try:
        durable.atomic_write(os.path.join(os.path.abspath(args.out), _CLI_RECORD),
                             json.dumps(record, indent=1).encode())
    except OSError:  # a convenience only: --verify then needs --x1/--x2
        pass


class _TileBar:
    """The progress line of ``ntkx precompute``: tiles done/total, entries/s and ETA of this run.

    Entries per second count the tiles finished by this run at the store's mean
    entries per tile (the last tiles may be partial).
    """

    def __init__(self, label: str, done_before: int, entries: int, enabled: bool):
        self.label, self.done_before, self.entries, self.enabled = label, done_before, entries, enabled
        self.t0 = time.perf_counter()
        self.first = None  # (done, total) of the first report
        self.ended = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        run = max(done - self.done_before, 0)
        dt = max(time.perf_counter() - self.t0, 1e-9)
        rate = run / dt  # tiles/s of this run
        eps = rate * self.entries / max(total, 1)
        if run and done < total:
            eta = _hms((total - done) / rate)
        else:
            eta = "--:--:--" if done < total else _hms(0)
        frac = done / max(total, 1)
        sys.stderr.write(f"\r{self.label} [{'#' * int(30 * frac):<30}] {done}/{total} tiles "
                         f"{eps:9.3g} entries/s  ETA {eta}  {_hms(dt)}")
        if done >= total and not self.ended:
            sys.stderr.write("\n")
            self.ended = True
        sys.stderr.flush()


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _precompute_error(message: str) -> int:
    print(f"ntkx precompute: error: {message}", file=sys.stderr)
    return 2


def _check_precompute_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every check of ``ntkx precompute`` that needs no kernel work: parser.error (exit 2) on the first bad one."""
    modes = [m for m in ("status", "verify") if getattr(args, m) is not None]
    if len(modes) > 1:
        parser.error("argument --status: not allowed with argument --verify")
    if modes:
        extra = [f"--{k.replace('_', '-')}" for k in ("arch", "out", "scheduler", "local_cluster")
                 if getattr(args, k) is not None]
        if modes == ["status"]:
            extra += [f"--{k}" for k in ("x1", "x2") if getattr(args, k) is not None]
        if extra:
            parser.error(f"argument --{modes[0]}: not allowed with {', '.join(extra)}")
        if modes == ["verify"] and args.x2 is not None and args.x1 is None:
            parser.error("argument --x2: --verify with --x2 needs --x1 too")
        return
    for need in ("arch", "x1", "out"):
        if getattr(args, need) is None:
            parser.error(f"the following arguments are required: --{need} (or give --status / --verify STORE)")
    from ntkx._src.precompute.inputs import as_source
    from ntkx._src.precompute.kernel import parse_architecture

    spec = parse_architecture(args.arch)
    cnn = args.arch.split()[0].lower() != "fc"
    if args.layout is not None and not cnn:
        parser.error(f"argument --layout: {args.layout!r} applies to the cnn-* architectures, not {args.arch!r}")
    shapes = {}
    for name in ("x1", "x2"):
        path = getattr(args, name)
        if path is None:
            continue
        try:
            shapes[name] = as_source(path, f"--{name}").shape
        except Exception as exc:  # an unreadable file, a bad dtype, an empty array
            parser.error(f"argument --{name}: {path!r}: {exc}")
        want = 4 if cnn else 2
        if len(shapes[name]) != want:
            parser.error(f"argument --{name}: {path!r} has shape {shapes[name]}; {type(spec).__name__} "
                         f"({args.arch!r}) needs {'(N, H, W, C) images' if cnn else '(N, d) points'}")
    if "x2" in shapes and shapes["x2"][1:] != shapes["x1"][1:]:
        parser.error(f"argument --x2: {args.x2!r} has shape {shapes['x2']}, x1 has {shapes['x1']}: "
                     f"they must agree past the first axis")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"argument --out: {args.out!r} exists and is not a directory")
    if not os.path.isdir(os.path.dirname(out)):
        parser.error(f"argument --out: the parent folder of {args.out!r} does not exist")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, "zarr.json")):
        parser.error(f"argument --out: {args.out!r} is a non-empty folder that is not a kernel store")
    if args.local_cluster is not None or args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            parser.error("argument --scheduler/--local-cluster: needs dask.distributed: "
                         "pip install 'ntkx[distributed]'")
    args.shapes = shapes


def precompute_cmd(args: argparse.Namespace) -> int:
    if args.status is not None:
        return _precompute_status(args)
    if args.verify is not None:
        return _precompute_verify(args)
    return _precompute_run(args)


def _precompute_run(args: argparse.Namespace) -> int:
    import signal

    from ntkx import precompute as P

    n1 = args.shapes["x1"][0]
    n2 = args.shapes["x2"][0] if args.x2 is not None else n1
    entries = n1 * n2 if args.x2 is not None else n1 * (n1 + 1) // 2
    out = os.path.abspath(args.out)
    done_before = P.status(out).done if os.path.isfile(os.path.join(out, "zarr.json")) else 0
    bar = _TileBar(f"precompute {os.path.basename(out)}", done_before, entries, args.progress)
    command = _resume_command(args)
    recorded = [False]

    def progress(done: int, total: int) -> None:
        if not recorded[0]:  # the store exists once precompute reports: say where its inputs are
            _write_cli_record(args)
            recorded[0] = True
        bar(done, total)

    interrupts = [0]

    def on_sigint(signum, frame):  # the first Ctrl-C stops the tiles in flight (local: cancelled), a second exits
        interrupts[0] += 1
        if interrupts[0] == 1:
            sys.stderr.write("\nstopping: finished tiles are recorded, tiles in flight cancelled (Ctrl-C again to exit now)\n")
            sys.stderr.flush()
            raise KeyboardInterrupt
        sys.stderr.write(f"\ninterrupted: tiles in flight abandoned, finished tiles kept; resume with:\n"
                         f"  {command}\n")
        sys.stderr.flush()
        os._exit(130)

    kernel_options = {}
    if args.layout is not None:
        kernel_options["layout"] = args.layout
    if args.device != "auto":
        kernel_options["device"] = args.device
    cluster = client = None
    previous = signal.getsignal(signal.SIGINT)
    in_main = threading_is_main()
    if in_main:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        scheduler = args.scheduler
        if args.local_cluster is not None:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=args.local_cluster, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = scheduler = Client(cluster)
        res = P.precompute(args.arch, args.x1, args.x2, store=out, get=args.get, tile=args.tile,
                           dtype=args.dtype, scheduler=scheduler, progress=progress, workers=args.workers,
                           **kernel_options)
    except KeyboardInterrupt:
        st = P.status(out) if os.path.isfile(os.path.join(out, "zarr.json")) else None
        kept = f"{st.done} of {st.total} tiles done, kept" if st is not None else "nothing was computed"
        print(f"\ninterrupted: {kept}; resume with:\n  {command}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, PermissionError, FileNotFoundError) as exc:  # refused before any tile
        return _precompute_error(str(exc))
    except Exception as exc:
        print(f"ntkx precompute: failed: {type(exc).__name__}: {exc}\nfinished tiles are kept; resume with:\n"
              f"  {command}", file=sys.stderr)
        return 1
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    _write_cli_record(args)
    what = "resumed" if res.resumed else "created"
    print(f"{what} {res.path}: {res.total} tiles, {res.computed} computed, {res.skipped} already done"
          + (f", {res.recomputed} failed verification and were recomputed" if res.recomputed else "")
          + f"; {res.seconds:.2f} s")
    return 0


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _precompute_status(args: argparse.Namespace) -> int:
    from ntkx import precompute as P

    try:
        st = P.status(args.status)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        return _precompute_error(f"argument --status: {exc}")
    m, rec = st.meta, _read_cli_record(st.path)
    pct = 100.0 * st.done / max(st.total, 1)
    print(f"store: {st.path}")
    print(f"tiles: {st.done} of {st.total} done, {st.total - st.done} remaining ({pct:.1f}%)"
          + ("; complete" if st.complete else ""))
    if rec.get("arch"):
        print(f"arch: {rec['arch']}")
    print(f"kernel: {m.kernel.get('repr', m.kernel.get('function', m.kernel.get('kind')))}"
          + (f" (layout {m.kernel['layout']})" if m.kernel.get("layout") else ""))
    print(f"get: {','.join(m.get)}  dtype: {m.dtype}  tile: {m.tile}  shape: {m.shape[0]} x {m.shape[1]}"
          + ("  (x1 against itself: tiles on and above the diagonal)" if m.symmetric else ""))
    for name in ("x1", "x2"):
        fp = m.fingerprint.get(name)
        if fp is not None:
            where = rec.get(name)
            print(f"{name}: sha256 {fp[:16]}" + (f"  {where}" if where else ""))
    print(f"made by: ntkx {m.version}, store format {m.format}")
    if not st.complete and rec.get("command"):
        print(f"resume: {rec['command']}")
    return 0


def _precompute_verify(args: argparse.Namespace) -> int:
    from ntkx import precompute as P
    from ntkx._src.cntk import cntk_kernels
    from ntkx._src.fc import FcSpec, fc_kernels
    from ntkx._src.precompute import manifest
    from ntkx._src.precompute.inputs import as_source, fingerprint
    from ntkx._src.precompute.kernel import spec_from_description

    try:
        st = P.status(args.verify)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        return _precompute_error(f"argument --verify: {exc}")
    m, rec = st.meta, _read_cli_record(st.path)
    try:
        spec = spec_from_description(m.kernel)
    except ValueError as exc:
        return _precompute_error(f"argument --verify: cannot recompute entries: {exc}")
    given = args.x1 is not None
    if m.symmetric and args.x2 is not None:
        return _precompute_error(f"argument --x2: {args.x2!r} given, but the store holds x1 against itself")
    paths = {"x1": args.x1, "x2": args.x2} if given else {"x1": rec.get("x1"), "x2": rec.get("x2")}
    if paths["x1"] is None:
        return _precompute_error("argument --verify: the store does not record where its inputs are; "
                                 "give --x1 (and --x2) with --verify")
    if not m.symmetric and paths["x2"] is None:
        return _precompute_error("argument --verify: the store holds x1 against x2; give --x2 too")
    sources = {}
    for name in ("x1", "x2"):
        if paths[name] is None:
            continue
        try:
            src = as_source(paths[name], name)
            fp = fingerprint(src, name)
        except Exception as exc:
            return _precompute_error(f"argument --{name}: {paths[name]!r}: {exc}")
        if fp != m.fingerprint.get(name):
            msg = (f"{name} {paths[name]!r} is not the input this store was made from "
                   f"(sha256 {fp[:16]}, the store records {str(m.fingerprint.get(name))[:16]})")
            if given:
                return _precompute_error(f"argument --{name}: {msg}")
            print(f"verify {st.path}: MISMATCH: {msg}", file=sys.stderr)
            return 1
        sources[name] = src
    x1, x2 = sources["x1"], sources.get("x2", sources["x1"])
    done = sorted(t for t in manifest.read(st.path) if t in set(m.tiles()))
    if not done:
        print(f"verify {st.path}: no tile is done yet, nothing to check")
        return 0
    # Stored entries of the done tiles, sampled uniformly (all of them when there are few).
    rng = np.random.default_rng(args.seed)
    sizes = np.array([(b[1] - b[0]) * (b[3] - b[2]) for b in (m.bounds(*t) for t in done)], dtype=np.int64)
    total = int(sizes.sum())
    picks = np.arange(total) if total <= args.samples else rng.choice(total, size=args.samples, replace=False)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    entries = []
    for p in np.sort(picks):
        k = int(np.searchsorted(starts, p, side="right") - 1)
        r0, r1, c0, c1 = m.bounds(*done[k])
        off = int(p - starts[k])
        entries.append((r0 + off // (c1 - c0), c0 + off % (c1 - c0)))
    opts = {"layout": m.kernel["layout"]} if m.kernel.get("layout") else {}
    if args.device != "auto":
        opts["device"] = args.device
    fn = fc_kernels if isinstance(spec, FcSpec) else cntk_kernels
    by_row: dict = {}
    for r, c in entries:
        by_row.setdefault(r, []).append(c)
    eps = float(np.finfo(np.dtype(m.dtype)).eps)
    rtol = 64 * eps
    readers = {g: P.open(st.path, g, allow_incomplete=True) for g in m.get}
    bad = []
    worst = 0.0
    for r, cols in by_row.items():
        ref = fn(x1.rows(r, r + 1), np.concatenate([x2.rows(c, c + 1) for c in cols]), spec, m.get,
                 dtype=np.float64, **opts)
        for g in m.get:
            want = np.asarray(getattr(ref, g), dtype=np.float64)[0]
            got = np.array([readers[g].block(r, r + 1, c, c + 1)[0, 0] for c in cols], dtype=np.float64)
            # Relative to the entry, or to the row's typical size for entries near 0.
            scale = np.maximum(np.abs(want), max(float(np.median(np.abs(want))), 1e-300))
            err = np.abs(got - want) / scale
            err[~np.isfinite(got)] = np.inf
            worst = max(worst, float(np.max(err)))
            for c, e, a, b in zip(cols, err, got, want):
                if not e <= rtol:
                    bad.append((g, r, c, a, b, e))
    n = len(entries)
    head = (f"verify {st.path}: {n} entries of {','.join(m.get)} (sample of {total} stored in "
            f"{len(done)} of {st.total} done tiles, seed {args.seed}) recomputed from the stored spec")
    if bad:
        print(f"{head}: MISMATCH in {len(bad)} of {n * len(m.get)} values (tolerance {rtol:.1e} relative)")
        for g, r, c, a, b, e in bad[:10]:
            print(f"  {g}[{r}, {c}]: stored {a!r}, recomputed {b!r} (relative error {e:.2e})")
        return 1
    print(f"{head}: OK, max relative error {worst:.2e} (tolerance {rtol:.1e})")
    return 0


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
    from ntkx.precompute import DEFAULT_TILE

    q = sub.add_parser(
        "precompute", help="compute a kernel tile by tile into a resumable Zarr store; --status, --verify",
        description="Compute the NNGP/NTK of an architecture between --x1 and --x2 (default: x1 itself) into a "
                    "Zarr store, tile by tile; rerun the same command to resume. Ctrl-C keeps finished tiles "
                    "and prints the command that resumes. Exit status: 0 done, 1 failed (or --verify found a "
                    "mismatch), 2 bad argument (before any work), 130 interrupted.")
    q.add_argument("--arch", type=_arch, metavar="ARCH",
                   help="architecture string: 'fc depth=3 w_std=1.4 b_std=0.1 act=relu', 'cnn-gap depth=6', "
                        "'cnn-vanilla depth=2 filter=3'")
    q.add_argument("--x1", type=_input_path, metavar="PATH", help="inputs: .npy (memory-mapped), .npz or Zarr array")
    q.add_argument("--x2", type=_input_path, metavar="PATH", help="second inputs (default: x1 against itself)")
    q.add_argument("--out", metavar="STORE", help="the store's directory (created, or resumed)")
    q.add_argument("--get", type=_get_names, default=("nngp", "ntk"), metavar="KERNELS",
                   help="ntk, nngp or nngp,ntk (default nngp,ntk)")
    q.add_argument("--tile", type=_integer(1), default=DEFAULT_TILE, help=f"tile side (default {DEFAULT_TILE})")
    q.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="stored dtype (default float32)")
    q.add_argument("--layout", choices=["NHWC", "NCHW"], help="image layout of cnn-* inputs (default NHWC)")
    q.add_argument("--workers", type=_integer(1), default=2, help="local threads, one tile each (default 2)")
    where = q.add_mutually_exclusive_group()
    where.add_argument("--scheduler", type=_scheduler_address, metavar="ADDRESS",
                       help="a Dask scheduler (tcp://host:8786); workers must see the store and inputs")
    where.add_argument("--local-cluster", type=_integer(1), metavar="N",
                       help="start a dask.distributed LocalCluster of N worker processes")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--no-progress", dest="progress", action="store_false", help="no progress line on stderr")
    q.add_argument("--status", type=_store_dir, metavar="STORE", help="print a store's progress and spec")
    q.add_argument("--verify", type=_store_dir, metavar="STORE",
                   help="recompute a random sample of stored entries; exit 1 on a mismatch")
    q.add_argument("--samples", type=_integer(1), default=200, help="entries --verify recomputes (default 200)")
    q.add_argument("--seed", type=_integer(0), default=0, help="seed of --verify's sample (default 0)")
    q.set_defaults(func=precompute_cmd)
    args = parser.parse_args(_attach_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if args.command in ("demo", "digits", "precompute"):
        _check_device({"demo": d, "digits": p, "precompute": q}[args.command], args.device)
    if args.command == "precompute":
        _check_precompute_args(q, args)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
