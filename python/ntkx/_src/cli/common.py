"""What every ``ntkx`` command shares: the build banner and the ``--out`` folder."""

from __future__ import annotations

import os
import sys


def print_build() -> None:
    """The version and what this build runs on: the first line of every command."""
    import ntkx

    info = ntkx.build_info()
    print(f"ntkx {ntkx.__version__}: OpenMP threads {info['openmp_threads']}, CUDA built {info['cuda_built']}, "
          f"CUDA devices {info['cuda_devices']}")


def make_out_dir(command: str, path: str) -> bool:
    """Creates the ``--out`` folder `path` of `command` (e.g. ``'ntkx bench'``); on
    failure prints argparse's style of error to stderr and returns False (exit 2)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        print(f"{command}: error: argument --out: cannot create the folder {path!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return False
    return True
