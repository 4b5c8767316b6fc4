"""The machine model of ``ntkx bench``: what this computer can reach, measured, and what it is.

Measured (`measure`):

* **FMA peak**, float64 and float32, one core and all cores: a loop of independent
  vector FMAs (``a = a * x + y`` on 12 accumulators of the CPU's SIMD width, so the
  FMA latency is hidden), compiled once per machine with the system C compiler into the
  cache folder and called through ctypes (which releases the GIL, so one Python thread
  per core runs it in parallel). Without a C compiler it is listed as not measured, with
  the reason, and the roofline falls back to the GEMM rate.
* **Memory bandwidth**: a STREAM triad ``a = b + s c`` on three arrays of 32 MiB (four
  times a large L3) per thread, counted as STREAM counts it (24 bytes per element, the
  write-allocate read not counted), one core and all cores.
* **BLAS GEMM rate**: ``a @ b`` of two square float64 (and float32) matrices through
  numpy, one BLAS thread and all (threadpoolctl), ``2 n^3`` flops over the median time.
* **CUDA**: when ntkx sees a device, its name (``nvidia-smi``), and a measured FP64/FP32
  GEMM rate when cupy or torch can run one; else listed as absent with the reason.

Described (`describe_cpu`): the CPU model and flags (``/proc/cpuinfo``, ``lscpu``), its
SIMD width and cores, and a *nominal* peak, ``cores x GHz x 2 FMA pipes x lanes x 2``,
from the base clock that ``/proc/cpuinfo`` reports, with the FMA pipes' documented width:
the full SIMD width, except AMD Zen and Zen+ (family 23, models below 0x30), whose two
FMA pipes are 128 bits wide (AMD's Software Optimization Guide for family 17h), so a
256-bit FMA issues at half rate. Boost clocks can lift the measured peak above it.

The model is cached per machine (`load_or_measure`) in ``<cache>/machine-<key>.json``:
the key hashes the host name, CPU model, flags, core count and numpy version, so a change
of any of them measures anew. ``<cache>`` is ``$NTKX_CACHE_DIR``, else ``$XDG_CACHE_HOME/ntkx/bench``,
else ``~/.cache/ntkx/bench``. A cached model measured with shorter probes than asked for
(a smoke run's) is measured again.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ntkx._src import durable

#: Bumped when what is measured or how changes: older cache entries are then ignored.
MODEL_VERSION = 1

#: Accumulators of the FMA loop (the EACH macro of _C_SOURCE): FMA latency (4-5 cycles) x 2
#: pipes, plus margin, and still within 16 vector registers with the two constants (AVX2).
FMA_ACCUMULATORS = 12

#: Elements per thread of the triad's arrays (32 MiB each in float64).
TRIAD_ELEMENTS = 4 * 2**20

_C_SOURCE = r"""
typedef double vd __attribute__((vector_size(VB)));
typedef float vf __attribute__((vector_size(VB)));
/* 12 named accumulators, not an array: GCC keeps an array of vectors in memory. */
#define EACH(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(k) T a##k = (T){} + (S)(1e-3 * k);
#define STEP(k) a##k = a##k * x + y;
#define SUM(k) for (unsigned l = 0; l < sizeof(T) / sizeof(S); l++) s += a##k[l];
#define FMA_LOOP                                                                \
  T x = (T){} + (S)0.999999, y = (T){} + (S)1e-7;                               \
  EACH(DECL)                                                                    \
  for (long i = 0; i < iters; i++) { EACH(STEP) }                               \
  double s = 0;                                                                 \
  EACH(SUM)                                                                     \
  return s;
#define T vd
#define S double
double fma_f64(long iters) { FMA_LOOP }
#undef T
#undef S
#define T vf
#define S float
float fma_f32_(long iters) { FMA_LOOP }
double fma_f32(long iters) { return fma_f32_(iters); }
int lanes_f64(void) { return (int)(sizeof(vd) / sizeof(double)); }
void triad(double* restrict a, const double* restrict b, const double* restrict c, double s, long n) {
  for (long i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}
"""


# ---------------------------------------------------------------------------------------------
# Where things are cached


def cache_dir() -> Path:
    """The folder of the cached machine models and the compiled FMA probe (not created here)."""
    if os.environ.get("NTKX_CACHE_DIR"):
        return Path(os.environ["NTKX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ntkx" / "bench"


# ---------------------------------------------------------------------------------------------
# What the CPU is


def _cpuinfo() -> Dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def _lscpu() -> Dict[str, str]:
    """``lscpu``'s fields ({} without lscpu)."""
    exe = shutil.which("lscpu")
    if exe is None:
        return {}
    try:
        text = subprocess.run([exe], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value:
            out[key.strip()] = value.strip()
    return out


def simd_bits(flags: List[str]) -> int:
    """The widest float SIMD register the flags offer: 512 (avx512f), 256 (avx), 128 (sse2 / neon / asimd), else 64."""
    f = set(flags)
    if "avx512f" in f:
        return 512
    if "avx" in f or "avx2" in f:
        return 256
    if f & {"sse2", "neon", "asimd"}:
        return 128
    return 64


def cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def fma_pipe_bits(vendor: Any, family: Any, model: Any, simd: int) -> "tuple[int, str]":
    """Width of each of the two FMA pipes, and where that width comes from.

    AMD family 23 (0x17) models below 0x30 are Zen and Zen+ (EPYC 7001, Ryzen 1000/2000):
    two 128-bit FMA pipes, a 256-bit FMA split in two halves. Anything else is taken to
    have two pipes of its full SIMD width (Zen 2 and later, Intel since Haswell; Intel's
    one-FMA-unit AVX-512 parts are the exception this cannot see).
    """
    try:
        fam, mod = int(family), int(model)
    except (TypeError, ValueError):
        fam = mod = -1
    if vendor == "AuthenticAMD" and fam == 23 and mod < 0x30 and simd > 128:
        return 128, f"AMD Zen/Zen+, family {fam} model {mod}: two 128-bit FMA pipes, documented"
    return simd, "two full-width FMA pipes, assumed"


def describe_cpu() -> Dict[str, Any]:
    """The CPU: model, vendor, flags of interest, SIMD width, cores, clock and the nominal peak it implies."""
    info, ls = _cpuinfo(), _lscpu()
    flags = (info.get("flags") or info.get("Features") or ls.get("Flags", "")).split()
    model = info.get("model name") or ls.get("Model name") or platform.processor() or "unknown"
    mhz = None
    for src in (ls.get("CPU max MHz"), info.get("cpu MHz")):
        try:
            mhz = float(src)
            break
        except (TypeError, ValueError):
            continue
    bits, n = simd_bits(flags), cores()
    fma_bits, rule = fma_pipe_bits(info.get("vendor_id") or ls.get("Vendor ID"), info.get("cpu family"),
                                   info.get("model"), bits)
    nominal = None
    if mhz is not None:
        # cores x GHz x 2 FMA pipes x lanes of one pipe x 2 flops (see the module docstring).
        nominal = {dt: n * mhz / 1e3 * 2 * (fma_bits // size) * 2 for dt, size in (("float64", 64), ("float32", 32))}
    return {
        "model": model,
        "vendor": info.get("vendor_id") or ls.get("Vendor ID"),
        "family_model_stepping": [info.get("cpu family"), info.get("model"), info.get("stepping")],
        "hypervisor": ls.get("Hypervisor vendor"),
        "cores": n,
        "cpu_count": os.cpu_count(),
        "mhz": mhz,
        "simd_bits": bits,
        "fma": "fma" in flags or "asimd" in flags,
        "flags": sorted(set(flags) & {"sse2", "avx", "avx2", "fma", "avx512f", "avx512vl", "neon", "asimd"}),
        "caches": {k: ls[k] for k in ("L1d cache", "L2 cache", "L3 cache") if k in ls},
        "nominal_peak_gflops": nominal,
        "nominal_rule": f"cores x base GHz (/proc/cpuinfo) x 2 FMA pipes x {fma_bits}-bit lanes x 2 flops ({rule})",
        "machine": platform.machine(),
    }


def blas_info() -> List[Dict[str, Any]]:
    """threadpoolctl's view of the loaded BLAS and OpenMP pools (library, version, threads)."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer", "architecture")
    return [{k: p.get(k) for k in keep} for p in threadpool_info()]


def machine_key(cpu: Dict[str, Any]) -> str:
    """What identifies a machine for the cache: host name, CPU model, flags, cores, and numpy (whose wheel
    brings its BLAS; the BLAS pools loaded at a given moment vary with what was imported, so they are
    recorded in the model, not keyed on)."""
    ident = json.dumps([MODEL_VERSION, platform.node(), cpu["model"], cpu["flags"], cpu["cores"], np.__version__],
                       sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The compiled probe


def _compile_probe(bits: int) -> "ctypes.CDLL":
    """The FMA/triad probe built for `bits`-wide vectors, compiled once into the cache folder.

    Raises:
      RuntimeError: no C compiler, or it failed (the message says which and why).
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) on PATH to build the FMA probe")
    src = "#define VB %d\n" % (bits // 8) + _C_SOURCE
    flags = ["-O2", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared"]
    tag = hashlib.sha256((src + cc + " ".join(flags) + platform.machine()).encode()).hexdigest()[:16]
    folder = cache_dir()
    lib = folder / f"fma_probe-{tag}.so"
    if not lib.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            c_file, so_tmp = Path(tmp) / "probe.c", Path(tmp) / "probe.so"
            c_file.write_text(src)
            try:
                subprocess.run([cc, *flags, str(c_file), "-o", str(so_tmp)], capture_output=True, text=True,
                               timeout=120, check=True)
            except subprocess.CalledProcessError as exc:
                raise RuntimeError(f"{cc} could not build the FMA probe: {exc.stderr.strip()[-300:]}") from None
            except (OSError, subprocess.SubprocessError) as exc:
                raise RuntimeError(f"{cc} could not build the FMA probe: {exc}") from None
            os.replace(so_tmp, lib)
    dll = ctypes.CDLL(str(lib))
    for name in ("fma_f64", "fma_f32"):
        getattr(dll, name).restype = ctypes.c_double
        getattr(dll, name).argtypes = [ctypes.c_long]
    dll.lanes_f64.restype = ctypes.c_int
    dll.triad.restype = None
    dll.triad.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double, ctypes.c_long]
    return dll


def _parallel_seconds(fn: Callable[[int], None], threads: int) -> float:
    """Wall time of `threads` Python threads each running ``fn(index)``, started together."""
    barrier = threading.Barrier(threads + 1)
    errors: List[BaseException] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            fn(i)
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return seconds


def _best_rate(run: Callable[[], float], work: float, seconds: float, repeats: int = 5) -> Dict[str, Any]:
    """The best of `repeats` runs of `run` (each returning its seconds) as a rate of `work` per second.

    The best, not the median: the limit is what the machine can reach; a loaded moment
    only slows a run down. Every repetition is kept.
    """
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < repeats and (len(times) < 2 or time.perf_counter() < deadline):
        times.append(run())
    return {"rate": work / min(times), "seconds": times, "median_rate": work / statistics.median(times)}


def _fma_peaks(dll, probe_seconds: float, n_cores: int) -> Dict[str, Any]:
    lanes64 = dll.lanes_f64()
    out: Dict[str, Any] = {"method": f"compiled FMA loop, {lanes64 * 64}-bit vectors, {FMA_ACCUMULATORS} accumulators"}
    for dt, fn, lanes in (("float64", dll.fma_f64, lanes64), ("float32", dll.fma_f32, 2 * lanes64)):
        # Calibrate iterations to ~probe_seconds / 5 per call on one core.
        iters = 1 << 16
        while True:
            t0 = time.perf_counter()
            fn(iters)
            dt_s = time.perf_counter() - t0
            if dt_s > 0.02 or iters > 1 << 34:
                break
            iters *= 4
        iters = max(1, int(iters * (probe_seconds / 5) / max(dt_s, 1e-9)))
        flops = 2.0 * FMA_ACCUMULATORS * lanes * iters
        one = _best_rate(lambda: _parallel_seconds(lambda i: fn(iters), 1), flops, probe_seconds)
        allc = _best_rate(lambda: _parallel_seconds(lambda i: fn(iters), n_cores), flops * n_cores, probe_seconds)
        out[dt] = {"one_core_gflops": one["rate"] / 1e9, "all_cores_gflops": allc["rate"] / 1e9,
                   "one_core_seconds": one["seconds"], "all_cores_seconds": allc["seconds"]}
    return out


def _triad(dll, probe_seconds: float, n_cores: int) -> Dict[str, Any]:
    n = TRIAD_ELEMENTS
    arrays = [[np.full(n, v) for v in (0.0, 1.0, 2.0)] for _ in range(n_cores)]

    def one(i: int) -> None:
        a, b, c = arrays[i]
        if dll is None:
            np.multiply(c, 3.0, out=a)
            np.add(a, b, out=a)
        else:
            dll.triad(a.ctypes.data, b.ctypes.data, c.ctypes.data, 3.0, n)

    one(0)  # page faults
    for i in range(1, n_cores):
        one(i)
    per_thread = 24.0 * n
    r1 = _best_rate(lambda: _parallel_seconds(one, 1), per_thread, probe_seconds)
    ra = _best_rate(lambda: _parallel_seconds(one, n_cores), per_thread * n_cores, probe_seconds)
    return {"method": ("compiled triad a = b + s c" if dll is not None else "numpy triad (two passes)")
                      + f", {n * 8 // 2**20} MiB per array per thread, 24 bytes per element",
            "one_core_gbs": r1["rate"] / 1e9, "all_cores_gbs": ra["rate"] / 1e9,
            "one_core_seconds": r1["seconds"], "all_cores_seconds": ra["seconds"]}


def _gemm(probe_seconds: float, n_cores: int, size: int) -> Dict[str, Any]:
    from threadpoolctl import threadpool_limits

    out: Dict[str, Any] = {"method": f"numpy matmul of two {size} x {size} matrices, 2 n^3 flops"}
    rng = np.random.default_rng(0)
    for dt in ("float64", "float32"):
        a = rng.standard_normal((size, size)).astype(dt)
        b = rng.standard_normal((size, size)).astype(dt)
        c = np.empty_like(a)

        def run() -> float:
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            return time.perf_counter() - t0

        res = {}
        for label, threads in (("one_core", 1), ("all_cores", n_cores)):
            with threadpool_limits(limits=threads, user_api="blas"):
                run()  # warm-up: thread pool start
                r = _best_rate(run, 2.0 * size**3, probe_seconds)
            res[f"{label}_gflops"] = r["rate"] / 1e9
            res[f"{label}_seconds"] = r["seconds"]
        out[dt] = res
    return out


def _cuda() -> Dict[str, Any]:
    """The CUDA device as ntkx sees it: absent (with why), or its name and, where cupy/torch can, a GEMM rate."""
    import ntkx

    info = ntkx.build_info()
    if not info["cuda_built"]:
        return {"present": False, "reason": "this ntkx build has no CUDA backend"}
    if info["cuda_devices"] == 0:
        return {"present": False, "reason": "ntkx was built with CUDA but sees no device"}
    out: Dict[str, Any] = {"present": True, "devices": info["cuda_devices"], "name": None, "gemm": None}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            text = subprocess.run([smi, "--query-gpu=name,clocks.max.sm,memory.total", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20, check=True).stdout
            out["name"] = text.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    out["gemm"] = _cuda_gemm()
    return out


def _cuda_gemm(size: int = 4096) -> Dict[str, Any]:
    """FP64 and FP32 GEMM rate on the first device through cupy or torch (whichever imports), or why not."""
    for lib in ("cupy", "torch"):
        try:
            mod = __import__(lib)
        except ImportError:
            continue
        try:
            res: Dict[str, Any] = {"method": f"{lib} matmul {size}^3"}
            for dt in ("float64", "float32"):
                if lib == "cupy":
                    a = mod.random.standard_normal((size, size)).astype(dt)
                    sync = mod.cuda.Device().synchronize
                else:
                    if not mod.cuda.is_available():
                        raise RuntimeError("torch sees no CUDA device")
                    a = mod.randn(size, size, dtype=getattr(mod, dt), device="cuda")
                    sync = mod.cuda.synchronize
                a @ a
                sync()
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    a @ a
                    sync()
                    times.append(time.perf_counter() - t0)
                res[f"{dt}_gflops"] = 2.0 * size**3 / min(times) / 1e9
            return res
        except Exception as exc:  # a broken GPU stack is a finding, not a crash of the bench
            return {"method": lib, "error": f"{type(exc).__name__}: {exc}"}
    return {"error": "neither cupy nor torch is installed: the device's GEMM rate is not measured"}


@dataclasses.dataclass(frozen=True)
class MachineModel:
    """This machine's measured limits and what it is (see the module docstring).

    Attributes:
      cpu: `describe_cpu`'s dictionary.
      blas: `blas_info`'s pools at measurement time.
      fma: ``{"float64"|"float32": {"one_core_gflops", "all_cores_gflops", ...}, "method"}``, or
        ``{"error": why}`` when the probe could not be built.
      triad: ``{"one_core_gbs", "all_cores_gbs", "method", ...}``.
      gemm: ``{"float64"|"float32": {"one_core_gflops", "all_cores_gflops", ...}, "method"}``.
      cuda: `_cuda`'s dictionary: ``present`` and either ``reason`` or the device.
      measured: ISO time of the measurement; probe_seconds: the budget of each probe; gemm_size: the GEMM's side.
      load_average: the 1-minute load when it was measured (others' work lowers every rate).
      key: the cache key (`machine_key`).
    """

    cpu: Dict[str, Any]
    blas: List[Dict[str, Any]]
    fma: Dict[str, Any]
    triad: Dict[str, Any]
    gemm: Dict[str, Any]
    cuda: Dict[str, Any]
    measured: str
    probe_seconds: float
    gemm_size: int
    load_average: Optional[float]
    key: str
    cached: bool = False

    def peak_gflops(self, dtype: str = "float64", threads: Optional[int] = None) -> float:
        """The compute ceiling of the roofline: the FMA peak (one core when `threads` is 1, else all cores),
        or the GEMM rate when the FMA probe did not run."""
        which = "one_core_gflops" if threads == 1 else "all_cores_gflops"
        src = self.fma if dtype in self.fma else self.gemm
        return float(src[dtype][which])

    def bandwidth_gbs(self, threads: Optional[int] = None) -> float:
        """The memory ceiling of the roofline: the triad bandwidth (one core or all)."""
        return float(self.triad["one_core_gbs" if threads == 1 else "all_cores_gbs"])

    def gemm_gflops(self, dtype: str = "float64", threads: Optional[int] = None) -> float:
        return float(self.gemm[dtype]["one_core_gflops" if threads == 1 else "all_cores_gflops"])

    def roofline_gflops(self, intensity: float, dtype: str = "float64", threads: Optional[int] = None) -> float:
        """``min(peak, intensity x bandwidth)``: the attainable GFLOP/s at `intensity` flops per byte."""
        return min(self.peak_gflops(dtype, threads), intensity * self.bandwidth_gbs(threads))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "MachineModel":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _load1() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def measure(probe_seconds: float = 1.0, gemm_size: int = 2000) -> MachineModel:
    """Measures the machine model now (about 8 x `probe_seconds` plus the GEMMs).

    Args:
      probe_seconds: time budget of each probe (FMA per dtype and width, triad, GEMM per dtype and width).
      gemm_size: side of the GEMM's square matrices.
    """
    import datetime

    cpu = describe_cpu()
    n = cpu["cores"]
    try:
        dll = _compile_probe(cpu["simd_bits"] if cpu["simd_bits"] >= 128 else 128)
        fma = _fma_peaks(dll, probe_seconds, n)
    except (RuntimeError, OSError) as exc:
        dll, fma = None, {"error": str(exc)}
    load = _load1()
    return MachineModel(
        cpu=cpu, blas=blas_info(), fma=fma, triad=_triad(dll, probe_seconds, n),
        gemm=_gemm(probe_seconds, n, gemm_size), cuda=_cuda(),
        measured=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        probe_seconds=probe_seconds, gemm_size=gemm_size, load_average=load, key=machine_key(cpu))


def load_or_measure(probe_seconds: float = 1.0, gemm_size: int = 2000, remeasure: bool = False) -> MachineModel:
    """The cached model of this machine, or a new measurement (then cached).

    A cached model is used when its key matches this machine and it was measured with
    probes at least `probe_seconds` long and a GEMM at least `gemm_size` wide.
    """
    cpu = describe_cpu()
    path = cache_dir() / f"machine-{machine_key(cpu)}.json"
    if not remeasure and path.exists():
        try:
            d = json.loads(path.read_text())
            if d.get("probe_seconds", 0) >= probe_seconds and d.get("gemm_size", 0) >= gemm_size:
                return dataclasses.replace(MachineModel.from_dict(d), cached=True)
        except (OSError, ValueError, TypeError):
            pass  # unreadable: measure again
    model = measure(probe_seconds, gemm_size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(model.to_dict(), indent=1) + "\n"
        durable.atomic_write(path, text.encode())
    except OSError as exc:
        print(f"ntkx bench: could not cache the machine model in {path}: {exc}", file=sys.stderr)
    return model
