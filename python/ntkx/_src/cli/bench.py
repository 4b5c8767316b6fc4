"""``ntkx bench`` and ``ntkx bench compare``: the benchmark harness on the command line."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ntkx._src.cli import common


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Registers ``bench`` (and its ``compare`` verb) on the ``ntkx`` command's subparsers."""
    from ntkx._src.bench.suites import SCALES, SUITES

    b = sub.add_parser(
        "bench", help="benchmarks against the machine's limits and peers: results.json, report.md, PNGs",
        description="Time ntkx and its peers (neural-tangents compiled, numpy) on the same inputs in the same run, "
                    "each output checked first, against a measured machine model (FMA peak, triad bandwidth, "
                    "GEMM). Exit status: 0 every case passed its check, 1 a case failed or raised, 2 bad argument, "
                    "130 interrupted. 'ntkx bench compare A.json B.json' compares two runs.")
    b.add_argument("--scale", choices=SCALES, default="small",
                   help="smoke (seconds), small (< 5 min on 2 cores), medium (~10 min), large (default small)")
    b.add_argument("--only", nargs="+", action="extend", choices=list(SUITES), metavar="SUITE",
                   help=f"run only these suites ({', '.join(SUITES)}; default all)")
    b.add_argument("--out", metavar="DIR", help="folder of results.json, report.md and the PNGs (created)")
    b.add_argument("--remeasure-machine", action="store_true", help="measure the machine model even if cached")
    b.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    b.set_defaults(func=bench)
    verbs = b.add_subparsers(dest="bench_command")
    c = verbs.add_parser("compare", help="per-case ratios of two results.json; regressions beyond the spread",
                         description="Ratios B / A of the median time per entry of each (case, peer); a change "
                                     "is called only beyond --factor and outside both runs' 95%% intervals. "
                                     "Exit 1 with --fail-on-regression when one is slower or broken.")
    c.add_argument("a", metavar="A.json", help="the reference run's results.json")
    c.add_argument("b", metavar="B.json", help="the run to judge")
    c.add_argument("--factor", type=float, default=1.1, help="smallest ratio called a change (default 1.1)")
    c.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a case got slower or broke")
    c.set_defaults(func=compare)
    r = verbs.add_parser("readme", help="README.md's performance section from a results.json",
                         description="Rewrites the text between README.md's performance markers from RESULTS "
                                     "(every number of that section comes from it). With --check, changes "
                                     "nothing and exits 1 when README.md does not say what RESULTS says.")
    r.add_argument("results", metavar="RESULTS.json", help="the committed run (e.g. docs/bench/results.json)")
    r.add_argument("--readme", default="README.md", help="the README to rewrite (default README.md)")
    r.add_argument("--check", action="store_true", help="exit 1 if the section differs; write nothing")
    r.set_defaults(func=readme)
    return b


def bench(args: argparse.Namespace) -> int:
    """``ntkx bench``: runs the suites and writes the report (exit 0 all passed, 1 a failure, 130 Ctrl-C)."""
    from ntkx._src.bench.run import OK, SKIPPED, run

    if args.out is None:
        print("ntkx bench: error: the following arguments are required: --out", file=sys.stderr)
        return 2
    if not common.make_out_dir("ntkx bench", args.out):
        return 2
    command = " ".join(["ntkx bench", "--scale", args.scale] + (["--only", *args.only] if args.only else [])
                       + (["--remeasure-machine"] if args.remeasure_machine else [])
                       + ["--out", shlex.quote(args.out)])
    common.print_build()
    try:
        doc = run(args.scale, args.only, args.out, progress=args.progress, remeasure=args.remeasure_machine,
                  command=command, echo=None if args.progress else print)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {os.path.join(args.out, 'results.json')} has the cases that finished",
              file=sys.stderr)
        return 130
    bad = [r for r in doc["results"] if r["status"] not in (OK, SKIPPED)]
    skipped = [r for r in doc["results"] if r["status"] == SKIPPED]
    print(f"{len(doc['results']) - len(bad) - len(skipped)} timed, {len(skipped)} skipped, {len(bad)} failed or "
          f"raised; report: {os.path.join(args.out, 'report.md')}")
    for r in bad:
        print(f"{r['status']}: {r['case']} {r['peer']}: {r.get('reason', '')}", file=sys.stderr)
    return 1 if bad else 0


def compare(args: argparse.Namespace) -> int:
    """``ntkx bench compare A B``: prints the table; 1 with --fail-on-regression when a case regressed."""
    from ntkx._src.bench import compare as C

    try:
        a, b = C.load(args.a), C.load(args.b)
        res = C.compare(a, b, factor=args.factor)
    except (OSError, ValueError) as exc:
        print(f"ntkx bench compare: error: {exc}", file=sys.stderr)
        return 2
    print(res.table(), end="")
    return 1 if args.fail_on_regression and res.regressions else 0


def readme(args: argparse.Namespace) -> int:
    """``ntkx bench readme RESULTS``: rewrites (or with --check, compares) README.md's performance section."""
    from ntkx._src.bench import compare as C
    from ntkx._src.bench import readme as RM

    try:
        doc = C.load(args.results)
        if args.check:
            text, new = RM.render(doc, args.readme, args.results)
            if text != new:
                print(f"{args.readme}'s performance section differs from {args.results}; run "
                      f"'ntkx bench readme {args.results} --readme {args.readme}'", file=sys.stderr)
                return 1
            print(f"{args.readme}'s performance section matches {args.results}")
            return 0
        changed = RM.update(doc, args.readme, args.results)
    except (OSError, ValueError) as exc:
        print(f"ntkx bench readme: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.readme}: performance section {'rewritten' if changed else 'unchanged'} from {args.results}")
    return 0
