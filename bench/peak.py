"""This machine's float64 peak, the yardstick of the benchmark table.

(a) A BLAS dgemm of two 2000 x 2000 float64 matrices through numpy: 2 n^3 flops over
    the median time of 5 calls (after one warm-up call).
(b) threadpoolctl's view of the loaded thread pools (which BLAS, how many threads).

Nothing is measured at import; ``python bench/peak.py`` prints both.
"""

from __future__ import annotations

import functools
import importlib
import statistics
import time

import numpy as np

DGEMM_N = 2000
DGEMM_REPEATS = 5


def dgemm_seconds(n: int = DGEMM_N, repeats: int = DGEMM_REPEATS) -> float:
    """Median wall time of ``a @ b`` for two `(n, n)` float64 matrices (one warm-up call)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    out = np.empty((n, n))
    np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def dgemm_gflops(n: int = DGEMM_N, repeats: int = DGEMM_REPEATS) -> float:
    """float64 GFLOP/s of a BLAS dgemm (2 n^3 flops / median time), measured now."""
    return 2.0 * n**3 / dgemm_seconds(n, repeats) / 1e9


@functools.lru_cache(maxsize=None)
def measured_peak_gflops(n: int = DGEMM_N, repeats: int = DGEMM_REPEATS) -> float:
    """dgemm_gflops, measured once per process."""
    return dgemm_gflops(n, repeats)


def threadpool_info() -> list:
    """threadpoolctl's description of the loaded BLAS/OpenMP pools ([] without threadpoolctl)."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    return threadpoolctl.threadpool_info()


def describe_threadpools(info: list = None) -> str:
    """One line per pool, e.g. ``blas: openblas 0.3.31 (SkylakeX, pthreads), 2 threads``."""
    info = threadpool_info() if info is None else info
    if not info:
        return "threadpoolctl is not installed: BLAS and thread counts unknown"
    lines = []
    for p in info:
        detail = ", ".join(str(p[k]) for k in ("architecture", "threading_layer") if p.get(k))
        lines.append(f"{p.get('user_api')}: {p.get('internal_api')} {p.get('version') or ''}"
                     f"{f' ({detail})' if detail else ''}, {p.get('num_threads')} threads  [{p.get('filepath')}]")
    return "\n".join(lines)


def main() -> None:
    try:  # load ntkx's OpenMP runtime too, so its pool is listed
        importlib.import_module("ntkx")
    except ImportError:
        pass
    t = dgemm_seconds()
    print(f"dgemm {DGEMM_N}x{DGEMM_N} float64: median of {DGEMM_REPEATS} = {t * 1e3:.1f} ms "
          f"-> {2.0 * DGEMM_N**3 / t / 1e9:.1f} GFLOP/s")
    print(describe_threadpools())


if __name__ == "__main__":
    main()
