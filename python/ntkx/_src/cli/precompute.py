"""``ntkx precompute``: a kernel computed tile by tile into a resumable Zarr store (`ntkx.precompute`),
``--status`` of a store and ``--verify`` of a sample of its entries."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import numpy as np

#: The file in a store where ``ntkx precompute`` records the architecture string, where
#: the inputs are and the command that resumes (zarr ignores it; written atomically).
CLI_RECORD = "ntkx-cli.json"


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
        with open(os.path.join(store, CLI_RECORD), "rb") as f:
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
        durable.atomic_write(os.path.join(os.path.abspath(args.out), CLI_RECORD),
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


def check_precompute_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every check of ``ntkx precompute`` that needs no kernel work: parser.error (exit 2) on the first bad one.

    Args:
      parser: the ``precompute`` subcommand's parser.
      args: its parsed options; gains ``shapes`` (the inputs' shapes by name) when they pass.
    """
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
    """``ntkx precompute``: ``--status`` or ``--verify`` of a store, or the (resumable) computation of one.

    Args:
      args: the parsed command line (checked by `check_precompute_args`).

    Returns:
      The exit status: 0 done, 1 failed or a ``--verify`` mismatch, 2 bad argument, 130 interrupted.
    """
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
    in_main = _threading_is_main()
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


def _threading_is_main() -> bool:
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
