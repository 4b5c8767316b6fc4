"""``ntkx check``: the numerical checks of the NTK theorems, written into a report folder."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ntkx._src.cli import common


def check(args: argparse.Namespace) -> int:
    """``ntkx check``: runs the checks (`run_checks`), rewriting the report after each, and prints the verdicts.

    Args:
      args: the parsed command line (``--quick``, ``--only``, ``--seed``, ``--out``, ``--progress``).

    Returns:
      The exit status: 0 when every check ran (whatever the verdicts), 1 when one raised, 2 when ``--out``
      cannot be created, 130 on Ctrl-C.
    """
    from ntkx._src.theory.report import CheckRunError, run_checks, verdict_table

    if not common.make_out_dir("ntkx check", args.out):
        return 2
    # The canonical form of this command line, for the report's header.
    command = " ".join(["ntkx check"] + (["--quick"] if args.quick else [])
                       + (["--only", *args.only] if args.only else [])
                       + ["--seed", str(args.seed), "--out", shlex.quote(args.out)])
    common.print_build()
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
