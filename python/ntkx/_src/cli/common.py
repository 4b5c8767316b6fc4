"""What every ``ntkx`` command shares: the build banner."""

from __future__ import annotations


def print_build() -> None:
    """The version and what this build runs on: the first line of every command."""
    import ntkx

    info = ntkx.build_info()
    print(f"ntkx {ntkx.__version__}: OpenMP threads {info['openmp_threads']}, CUDA built {info['cuda_built']}, "
          f"CUDA devices {info['cuda_devices']}")
