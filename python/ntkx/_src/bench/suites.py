"""Which cases each suite runs at each scale, and how long each (case, peer) is timed.

Scales: ``smoke`` (seconds: the default test suite runs it to keep the harness working;
its numbers are not measurements), ``small`` (under 5 minutes on a 2-core machine),
``medium`` (about 10 minutes there: the README's performance table), ``large`` (the
sizes of the issues' targets; an hour or more on 2 cores).

Suites (`SUITES`, in running order): ``fc`` (Gram-bound d = 784, L = 1; recursion-bound
d = 32, L = 10; deep L = 1,000 and 100,000 at small N), ``cntk`` (vanilla and GAP on
digits 8x8 and 32x32x3 images), ``dynamics`` (eigh, CG and Lanczos paths), ``dtype``
(float32 against float64), ``threads`` (1 .. all cores) and ``precompute`` (a local
store and a Dask LocalCluster of 2 workers against ``fc_kernels(..., out=memmap)``).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence

from ntkx._src.bench.cases import CnnCase, DynamicsCase, FcCase, PrecomputeCase
from ntkx._src.bench.machine import cores
from ntkx._src.bench.timing import Policy

SCALES = ("smoke", "small", "medium", "large")

#: Timing policy per scale: about target seconds of timed calls per (case, peer).
POLICY = {
    "smoke": Policy(0.0, 1, 1),
    "small": Policy(0.5, 3, 10),
    "medium": Policy(1.5, 3, 15),
    "large": Policy(5.0, 5, 20),
}

#: Machine-model probes per scale: (seconds per probe, GEMM side).
MACHINE_PROBES = {"smoke": (0.05, 400), "small": (0.3, 1500), "medium": (0.6, 2000), "large": (1.5, 3000)}

#: Why the deep cases do not run some peers.
NT_DEEP = ("neural-tangents builds one XLA program with every layer unrolled: compiling 1,000 or more layers "
           "takes minutes, and its diagonal angle (arctan2 of a rounding residue) drifts with depth")
NUMPY_DEEP = ("numpy_recursion at L = 100,000 is bound by 1.2 million numpy calls (seconds per call at any N); "
              "it is this case's reference (on all its points) and is timed at L = 1,000")


#: What the smoke scale leaves out, and why: it must take seconds (the default test suite runs it).
SMOKE_NT = ("smoke scale: neural-tangents' compilation (seconds per case) runs on one FC case only; "
            "--scale small runs it on every case")
SMOKE_DASK = "smoke scale: a LocalCluster's start (seconds) is left to --scale small"


def _pick(scale: str, table: Dict[str, object]):
    return table[scale]


def fc(scale: str) -> List[FcCase]:
    ns = _pick(scale, {"smoke": [64, 128], "small": [500, 1000, 2000], "medium": [1000, 2000, 4000],
                       "large": [2000, 4000, 8000]})
    deep = _pick(scale, {"smoke": [(1000, 8), (10000, 8)], "small": [(1000, 64), (100000, 16)],
                         "medium": [(1000, 256), (100000, 32)], "large": [(1000, 1024), (100000, 128)]})
    smoke = (("neural_tangents", SMOKE_NT),) if scale == "smoke" else ()
    out = [FcCase("fc", n, 784, 1, skip=smoke) for n in ns] + [FcCase("fc", n, 32, 10, skip=smoke if n != ns[0] else ()) for n in ns]
    for depth, n in deep:
        skip = [("neural_tangents", NT_DEEP)] + ([("numpy_recursion", NUMPY_DEEP)] if depth >= 100000 else [])
        out.append(FcCase("fc", n, 32, depth, w_std=math.sqrt(2.0), check_points=n, skip=tuple(skip)))
    return out


def cntk(scale: str) -> List[CnnCase]:
    # (dataset, readout, ntkx images, neural-tangents images, its nt.batch block or None for jax.jit)
    table = {
        "smoke": [("digits", "gap", 8, 8, 4), ("digits", "vanilla", 8, 8, None),
                  ("synth16", "gap", 3, 2, None), ("synth16", "vanilla", 4, 4, 2)],
        "small": [("digits", "gap", 100, 40, 20), ("digits", "vanilla", 400, 400, 100),
                  ("synth32", "gap", 8, 2, None), ("synth32", "vanilla", 100, 50, 25)],
        "medium": [("digits", "gap", 200, 80, 40), ("digits", "vanilla", 1000, 400, 100),
                   ("synth32", "gap", 16, 4, None), ("synth32", "vanilla", 400, 100, 25)],
        "large": [("digits", "gap", 400, 400, 40), ("digits", "vanilla", 1797, 400, 100),
                  ("synth32", "gap", 48, 4, None), ("synth32", "vanilla", 1000, 100, 25)],
    }[scale]
    smoke = (("neural_tangents", SMOKE_NT),) if scale == "smoke" else ()
    return [CnnCase("cntk", ds, ro, n, n_nt, batch, check_images=4 if ds == "digits" else 2, skip=smoke)
            for ds, ro, n, n_nt, batch in table]


def dynamics(scale: str) -> List[DynamicsCase]:
    ns = _pick(scale, {"smoke": [100], "small": [500, 1000], "medium": [1000, 2000], "large": [2000, 4000]})
    return [DynamicsCase("dynamics", path, n) for path in ("eigh", "cg", "lanczos") for n in ns]


def dtype(scale: str) -> List[FcCase]:
    n = _pick(scale, {"smoke": 128, "small": 2000, "medium": 4000, "large": 8000})
    return [FcCase("dtype", n, d, 10, dtype=dt, peers=("ntkx", "numpy_gram"))
            for d in (784, 32) for dt in ("float64", "float32")]


def thread_counts(n_cores: int) -> List[int]:
    """1, 2, 4, ... below the core count, then the core count."""
    out, t = [], 1
    while t < n_cores:
        out.append(t)
        t *= 2
    return out + [n_cores]


def threads(scale: str) -> List[object]:
    n = _pick(scale, {"smoke": 128, "small": 2000, "medium": 4000, "large": 8000})
    imgs = _pick(scale, {"smoke": 8, "small": 100, "medium": 200, "large": 400})
    out: List[object] = []
    for t in thread_counts(cores()):
        out.append(FcCase("threads", n, 32, 10, threads=t, peers=("ntkx", "numpy_gram")))
    for t in thread_counts(cores()):
        out.append(CnnCase("threads", "digits", "gap", imgs, threads=t, peers=("ntkx",)))
    return out


def precompute(scale: str) -> List[PrecomputeCase]:
    n, tile = _pick(scale, {"smoke": (300, 100), "small": (2000, 500), "medium": (4000, 1000),
                            "large": (8000, 2000)})
    return [PrecomputeCase("precompute", n, tile, skip=(("precompute_dask", SMOKE_DASK),) if scale == "smoke" else ())]


#: Suite name -> its cases at a scale, in running order.
SUITES: Dict[str, Callable[[str], Sequence[object]]] = {
    "fc": fc, "cntk": cntk, "dynamics": dynamics, "dtype": dtype, "threads": threads, "precompute": precompute,
}


def select(only: Sequence[str] = None) -> List[str]:
    """The suites named (all when `only` is empty), in `SUITES` order.

    Raises:
      ValueError: an unknown name (the message lists the valid ones).
    """
    if not only:
        return list(SUITES)
    unknown = [s for s in only if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(map(repr, unknown))}; valid: {', '.join(SUITES)}")
    return [s for s in SUITES if s in set(only)]
