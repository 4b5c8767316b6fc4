"""The one home of every benchmark case and every peer: ``ntkx bench`` and ``pytest bench/`` both use these.

A case is a frozen dataclass that knows its inputs (seeded), its peers in running order
(ntkx first, neural-tangents last, so XLA's thread pool is idle while the others are
timed), how to build each peer's zero-argument callable on those inputs (or why it is
skipped: `PeerSkipped`), the work of the problem (`Work`: flops and bytes, hence its
roofline position) and how to check an output against an independent reference
(`check`, run on the warm-up output before any timed call: a fast wrong answer fails).

Peers:

* ``ntkx``: the library call (``fc_kernels``, the stax CNN ``kernel_fn``, ``MSEDynamics``,
  ``cg_solve``, ``mse_dynamics_iterative``, ``precompute``).
* ``numpy_gram``: ``X @ X.T`` only, the floor of any exact kernel method when d is large.
* ``numpy_recursion``: the FC recursion on whole ``(N, N)`` numpy matrices (`numpy_recursion`).
* ``neural_tangents``: neural-tangents' stax ``kernel_fn`` of the same network, float64,
  **compiled only**: ``jax.jit(kernel_fn, static_argnames='get')`` or ``nt.batch`` (which
  jits each block), built by `nt_compile` and timed through `nt_timed`, which refuses
  anything else; a path that turns out eager raises `EagerPeerError` at its first call.
* dynamics: ``numpy_eigh`` (the dense eigendecomposition alone), ``numpy_cholesky``
  (a dense solve); precompute: ``fc_kernels_memmap``, ``precompute_local``, ``precompute_dask``.

References: the FC kernels against `numpy_recursion` on the first points (a kernel
entry depends only on its two points, so the leading block of the Gram of N points is
the Gram of the first m); the CNN kernels against `numpy_cntk`, a literal 4-D numpy
CNTK on the first images; the dynamics against a dense eigendecomposition or a dense
solve's residual. Tolerances are `TOL`, each with its reason.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import os
import shutil
import tempfile
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

#: Relative tolerances of the correctness check, by what is compared; each with its reason.
TOL = {
    # ntkx, neural-tangents or numpy in float64 against the numpy recursion: the same closed
    # forms in other evaluation orders (measured <= 1e-13 at L = 10).
    "float64": 1e-10,
    # a float32 output (ntkx rounds only its outputs on the CPU; numpy's sgemm accumulates in float32).
    "float32": 1e-5,
    # depth 1,000 and 100,000: the numpy recursion recomputes each angle from rounded covariances
    # (arccos near rho = 1), so its error grows with depth (measured 1e-11 at L = 1,000 and
    # 7e-6 at L = 100,000 against ntkx, which carries the angle).
    "deep": 1e-4,
    # CNN kernels against the literal 4-D numpy reference: its layer-0 angle of (nearly)
    # colinear patches (zero-padded digits) comes from arccos, ~1e-8 off per layer.
    "cnn": 1e-6,
    # an iterative solver at tol 1e-10 judged by its relative residual, or against a dense
    # eigendecomposition (the dynamics' bar of tests/conftest.py's TOL['iterative']).
    "iterative": 1e-8,
    # a closed form of the dynamics against the dense formula (conditioning x eps).
    "solve": 1e-10,
}

#: Flops of one ReLU layer step of one pair (the dual and the Theta update), counted from
#: csrc/ntkx/math (FMA = 2, sqrt = 1; selects and compares not counted): correlation 5,
#: angle and duals 44, Theta update 1. The same count serves the FC pair recursion and the
#: CNTK's per-position dual, which share the closed forms.
RELU_STEP_FLOPS = 50

#: The CNTK's conv layers (3 x 3 SAME, W_std = sqrt 2, no bias) before the readout.
CNN_DEPTH = 6
CNN_W_STD = math.sqrt(2.0)

HAS_NT = importlib.util.find_spec("neural_tangents") is not None
NT_MISSING = "neural-tangents is not installed (pip install 'ntkx[nt]')"
#: Why the dynamics suite lists neural-tangents' predict and does not time it.
NT_PREDICT = ("neural-tangents' predict.gradient_descent_mse caches its eigendecomposition inside the returned "
              "predict_fn, and jax.jit of it with the kernel as an argument raises UnexpectedTracerError (0.6.5), "
              "so it has no compiled form that redoes the eigh per call; not timed")


class PeerSkipped(Exception):
    """This peer does not run for this case; the message is the reason (listed in the report)."""


@dataclasses.dataclass(frozen=True)
class Work:
    """The work of one call: `flops`, `bytes` moved to or from memory, in `dtype` arithmetic."""

    flops: float
    bytes: float
    dtype: str = "float64"

    @property
    def intensity(self) -> float:
        """Flops per byte: where the call sits on the roofline's x axis."""
        return self.flops / self.bytes if self.bytes else float("inf")


@dataclasses.dataclass(frozen=True)
class Check:
    """The correctness check of one output: `error` against `reference` with tolerance `tol`."""

    reference: str
    error: float
    tol: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tol)

    def to_dict(self) -> Dict[str, Any]:
        return {"reference": self.reference, "error": float(self.error), "tol": self.tol, "passed": self.passed}


def max_rel(actual: Any, desired: Any, off_diagonal: bool = False) -> float:
    """Max of ``|actual - desired| / sqrt(K_ii K_jj)`` over a symmetric kernel block ``K = desired``.

    ``sqrt(K_ii K_jj)`` bounds ``|K_ij|`` (Cauchy-Schwarz): the kernel's size at that pair,
    also where an entry passes through zero. `off_diagonal` leaves the diagonal out
    (neural-tangents' diagonal angle is ill-conditioned there, by its design).
    """
    a, d = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    if a.shape != d.shape or not np.all(np.isfinite(a)):
        return float("inf")
    diag = np.abs(np.diag(d))
    err = np.abs(a - d) / np.sqrt(np.multiply.outer(diag, diag))
    if off_diagonal:
        err = err[~np.eye(len(err), dtype=bool)]
    return float(err.max()) if err.size else 0.0


def _pair(out: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(nngp, ntk) of any peer's output: ntkx's Kernels, neural-tangents' Kernel, a tuple."""
    if hasattr(out, "nngp") and hasattr(out, "ntk"):
        return np.asarray(out.nngp), np.asarray(out.ntk)
    return np.asarray(out[0]), np.asarray(out[1])


# ---------------------------------------------------------------------------------------------
# neural-tangents peers: compiled, always.
#
# A peer timed eagerly is not neural-tangents at its best (the synth32-gap CNTK ran 19.4 s
# per call eager against 3.7 s jitted), so every neural-tangents callable the bench times
# is built by `nt_compile` and wrapped by `nt_timed`, which refuses anything else.
# neural-tangents' docs name two compiled forms, and these are the only two:
#
#   jax.jit(kernel_fn, static_argnames='get')      the whole Gram in one XLA program
#   nt.batch(kernel_fn, batch_size=b, ...)         blocks of b x b; nt.batch compiles
#       internally (neural_tangents/_src/batching.py, 0.6.5: one device ->
#       `_jit_or_pmap_broadcast(kernel_fn, 0)`, i.e. `jax.jit` of kernel_fn closed over
#       its non-array arguments such as `get`; several devices -> `_parallel`, which
#       `pmap`s it; `_serial` then loops over the blocks in Python, each block one call
#       of that compiled function).
# ---------------------------------------------------------------------------------------------


class EagerPeerError(RuntimeError):
    """A neural-tangents kernel_fn ran on concrete arrays, i.e. outside jit/pmap."""


#: Every function `nt_compile` got from nt.batch. A registry rather than an attribute:
#: functools.wraps (and neural-tangents' own utils.wraps) copy a function's __dict__ into
#: wrappers, so an attribute mark could spread to a wrapper that is not nt.batch's output.
_NT_BATCHED: "weakref.WeakSet" = weakref.WeakSet()


def neural_tangents_stax():
    """neural-tangents' stax with float64 enabled in jax, or None when it is not installed."""
    if not HAS_NT:
        return None
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax

    return stax


def _traced_only(kernel_fn: Callable) -> Callable:
    """kernel_fn, made to raise EagerPeerError when its body runs on concrete arrays.

    Under jax.jit or pmap the body of kernel_fn runs only while it is traced, and then its
    array arguments are jax Tracers; eagerly (no jit, or inside jax.disable_jit()) they are
    numpy or concrete jax arrays. The check costs nothing on compiled calls: a warm
    compiled call does not run the Python body at all.
    """
    import jax

    @functools.wraps(kernel_fn)  # keeps __signature__ (jit's static 'get') and input_req
    def traced_kernel_fn(x1, x2=None, *args, **kwargs):
        leaves = jax.tree_util.tree_leaves((x1, x2))
        if not any(isinstance(v, jax.core.Tracer) for v in leaves):
            raise EagerPeerError(
                "the neural-tangents peer ran eagerly (its kernel_fn got concrete arrays): "
                "time it through jax.jit or nt.batch (ntkx._src.bench.cases.nt_compile)")
        return kernel_fn(x1, x2, *args, **kwargs)

    return traced_kernel_fn


def nt_compile(kernel_fn: Callable, n: int, batch_size: Optional[int] = None,
               store_on_device: bool = False) -> Callable:
    """The compiled form of a neural-tangents stax `kernel_fn` for a Gram of `n` inputs.

    `batch_size` None or >= n: ``jax.jit(kernel_fn, static_argnames='get')`` (nt.batch needs
    a block smaller than the data to batch anything). 0 < batch_size < n: ``nt.batch(kernel_fn,
    batch_size, store_on_device=store_on_device)`` (n must be a multiple of it). Either way
    kernel_fn is first wrapped by `_traced_only`, so a path that ends up eager raises
    EagerPeerError at the first call instead of being timed.
    """
    import jax

    guarded = _traced_only(kernel_fn)
    if batch_size is None or batch_size >= n:
        return jax.jit(guarded, static_argnames="get")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive or None, got {batch_size}")
    import neural_tangents as nt

    fn = nt.batch(guarded, batch_size=batch_size, store_on_device=store_on_device)
    _NT_BATCHED.add(fn)
    return fn


def compiled_kind(fn: Any) -> Optional[str]:
    """'jax.jit' or 'nt.batch' when `fn` is a compiled neural-tangents callable, else None.

    The rule: `fn` is a jax-staged function (an instance of ``jax.stages.Wrapped``: what
    jax.jit and jax.pmap return, the objects with ``.lower``; a plain Python function, such
    as a stax kernel_fn or a closure calling one, is not), or it is a function that
    `nt_compile` itself obtained from nt.batch (kept in a registry, since nt.batch's output
    is a plain Python function that only calls a jitted one).
    """
    import jax

    if isinstance(fn, jax.stages.Wrapped):
        return "jax.jit"
    try:
        if fn in _NT_BATCHED:
            return "nt.batch"
    except TypeError:  # not weak-referenceable: not ours
        pass
    return None


def nt_timed(fn: Callable, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """The zero-argument callable the bench times for neural-tangents: ``fn(*args, **kwargs)``.

    Raises TypeError unless `fn` is compiled (`compiled_kind`; build it with `nt_compile` or
    ``jax.jit``): the harness refuses an eager peer. The array arguments are put on the
    device once, outside the timed calls; each call blocks until the result is ready (jax
    dispatches asynchronously). The warm-up (the compilation) is the caller's first,
    untimed call. The callable carries `.compiled` (fn) and `.compiled_kind`.
    """
    kind = compiled_kind(fn)
    if kind is None:
        raise TypeError(
            f"neural-tangents peer {fn!r} is not compiled: build it with nt_compile "
            "(jax.jit(kernel_fn, static_argnames='get') or nt.batch); an eager "
            "kernel_fn is not neural-tangents at its best")
    import jax

    placed = [jax.device_put(a) if isinstance(a, np.ndarray) else a for a in args]

    def run():
        return jax.block_until_ready(fn(*placed, **kwargs))

    run.compiled = fn
    run.compiled_kind = kind
    return run


def nt_peer(fn: Callable, x: Any, get: Any = ("nngp", "ntk")) -> Callable[[], Any]:
    """`nt_timed` of a compiled kernel_fn on the symmetric Gram of `x`: ``fn(x, None, get=get)``."""
    return nt_timed(fn, np.asarray(x), None, get=get)


# ---------------------------------------------------------------------------------------------
# numpy peers and references


def points(n: int, d: int, seed: int = 0) -> np.ndarray:
    """`(n, d)` standard Gaussian points; the first m rows do not depend on n."""
    return np.random.default_rng(seed).standard_normal((n, d))


def numpy_recursion(x: np.ndarray, depth: int, w_std: float = 1.0, b_std: float = 0.0):
    """ReLU NNGP and NTK of the symmetric Gram, vectorized over whole (N, N) matrices.

    Sigma^0 = w^2 X X^T / d + b^2 and Theta^0 = Sigma^0; then per layer, with
    q = diag(Sigma), n = sqrt(q q'), theta = arccos(clip(Sigma / n, -1, 1)):
      Sigma    <- w^2 n (sin theta + (pi - theta) cos theta) / (2 pi) + b^2
      SigmaDot  = w^2 (pi - theta) / (2 pi)
      Theta    <- SigmaDot * Theta + Sigma
    In-place on five (N, N) buffers (2.5 GB at N = 8000).
    """
    d = x.shape[1]
    w2, b2 = w_std**2, b_std**2
    sigma = x @ x.T
    sigma *= w2 / d
    sigma += b2
    theta_ntk = sigma.copy()
    norm = np.empty_like(sigma)
    ang = np.empty_like(sigma)
    tmp = np.empty_like(sigma)
    for _ in range(depth):
        q = np.diag(sigma).copy()
        np.multiply.outer(q, q, out=norm)
        np.sqrt(norm, out=norm)  # sqrt(q q) == q exactly: the diagonal cosine is exactly 1
        np.divide(sigma, norm, out=sigma)  # sigma now holds cos(theta)
        np.clip(sigma, -1.0, 1.0, out=sigma)
        np.arccos(sigma, out=ang)
        np.sin(ang, out=tmp)
        np.subtract(math.pi, ang, out=ang)  # ang now holds pi - theta
        np.multiply(ang, sigma, out=sigma)
        tmp += sigma  # J1 = sin + (pi - theta) cos
        np.multiply(norm, tmp, out=sigma)
        sigma *= w2 / (2 * math.pi)
        sigma += b2
        ang *= w2 / (2 * math.pi)  # SigmaDot
        theta_ntk *= ang
        theta_ntk += sigma
    return sigma, theta_ntk


def _patch_mean(k: np.ndarray) -> np.ndarray:
    """``mean_{a,b} K[..., i+a, j+b, i'+a, j'+b]`` over the 3 x 3 offsets, zero outside the image."""
    P, Q = k.shape[-4], k.shape[-3]
    pad = [(0, 0)] * (k.ndim - 4) + [(1, 1)] * 4
    kp = np.pad(k, pad)
    out = np.zeros_like(k)
    for a in range(3):
        for b in range(3):
            out += kp[..., a:a + P, b:b + Q, a:a + P, b:b + Q]
    return out / 9.0


def numpy_cntk(x: np.ndarray, readout: str, depth: int = CNN_DEPTH, w_std: float = CNN_W_STD):
    """NNGP and NTK of ``[Conv(3x3, SAME, W_std) -> Relu] x depth -> GAP|Flatten -> Dense(W_std)``, literally.

    neural-tangents' convention (DESIGN.md section 2): every covariance of every image pair
    is a full ``[P, Q, P, Q]`` array (all m^2 pairs at once, so use a few small images);
    a conv maps K to ``w^2 patch_mean(K)``; the input covariance is ``x_c . x'_c / C``;
    ``Flatten`` averages the positions' diagonal, ``GlobalAvgPool`` all position pairs.
    """
    m, P, Q, C = x.shape
    w2 = w_std**2
    s = w2 * _patch_mean(np.einsum("aijc,bklc->abijkl", x, x) / C)
    t = s.copy()
    for layer in range(depth):
        q = np.einsum("aaijij->aij", s)
        norm = np.sqrt(q[:, None, :, :, None, None] * q[None, :, None, None, :, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.clip(np.where(norm > 0, s / np.where(norm > 0, norm, 1.0), 0.0), -1.0, 1.0)
        theta = np.arccos(cos)
        s = norm * (np.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
        t = (math.pi - theta) / (2 * math.pi) * t
        if layer + 1 < depth:
            s = w2 * _patch_mean(s)
            t = w2 * _patch_mean(t) + s
    if readout == "gap":
        rs, rt = s.mean(axis=(2, 3, 4, 5)), t.mean(axis=(2, 3, 4, 5))
    else:
        rs, rt = np.einsum("abijij->ab", s) / (P * Q), np.einsum("abijij->ab", t) / (P * Q)
    nngp = w2 * rs
    return nngp, w2 * rt + nngp


def cnn_flops_per_pair(P: int, Q: int, C: int, depth: int, readout: str) -> float:
    """The CNTK's work per image pair (counted from csrc/ntkx/math/cntk.h and cpu/cntk.cpp, FMA = 2,
    sqrt = 1): per position pair of every slice the readout needs, 2C - 1 (channel products) + 6
    (conv 0's box filter) + `RELU_STEP_FLOPS` per ReLU dual + 13 per later conv (box filters of
    Sigma and Theta) + 2 (readout sums). GAP has (PQ)^2 position pairs per image pair, vanilla PQ."""
    per_elem = (2 * C - 1) + 6 + RELU_STEP_FLOPS * depth + 13 * (depth - 1) + 2
    return float(per_elem) * ((P * Q) ** 2 if readout == "gap" else P * Q)


def _symmetric_entries(n: int) -> int:
    return n * (n + 1) // 2


# ---------------------------------------------------------------------------------------------
# Cases


def fc_kernel_fn(stax: Any, depth: int, w_std: float = 1.0) -> Callable:
    """``Dense -> [Relu -> Dense] x depth`` (no bias) as a stax ``kernel_fn`` (neural-tangents' stax)."""
    return stax.serial(stax.Dense(1, W_std=w_std), *[stax.Relu(), stax.Dense(1, W_std=w_std)] * depth)[2]


@functools.lru_cache(maxsize=8)
def _fc_reference(m: int, d: int, depth: int, w_std: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    return numpy_recursion(points(m, d, seed), depth, w_std)


@dataclasses.dataclass(frozen=True)
class FcCase:
    """NNGP + NTK of ``Dense -> [Relu -> Dense] x depth`` (no bias) on the symmetric Gram of n Gaussian points in R^d.

    Attributes:
      suite: the suite that runs it ('fc', 'dtype', 'threads').
      n, d, depth: the problem; w_std: weight std (sqrt 2 keeps deep nets' scale).
      dtype: the outputs' dtype; threads: ntkx's OpenMP and numpy's BLAS threads (None: all).
      peers: which peers run, in order. check_points: points of the reference block.
      skip: (peer, reason) pairs: peers this case lists but does not run (every case has this field).
    """

    suite: str
    n: int
    d: int
    depth: int
    w_std: float = 1.0
    dtype: str = "float64"
    threads: Optional[int] = None
    peers: Tuple[str, ...] = ("ntkx", "numpy_gram", "numpy_recursion", "neural_tangents")
    check_points: int = 128
    skip: Tuple[Tuple[str, str], ...] = ()
    seed: int = 0

    @property
    def id(self) -> str:
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/N{self.n}-d{self.d}-L{self.depth}-{self.dtype}{th}"

    @property
    def family(self) -> str:
        """The case without its size: the curves of the time-vs-N plot."""
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/d{self.d}-L{self.depth}-{self.dtype}{th}"

    @property
    def size(self) -> int:
        return self.n

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "d": self.d, "L": self.depth, "w_std": self.w_std, "b_std": 0.0, "act": "relu",
                "dtype": self.dtype, "threads": self.threads, "symmetric": True, "get": ["nngp", "ntk"]}

    def inputs(self) -> np.ndarray:
        return points(self.n, self.d, self.seed)

    def entries(self, peer: str) -> int:
        return _symmetric_entries(self.n)

    def work(self, peer: str, out: Any = None) -> Work:
        item = np.dtype(self.dtype).itemsize
        gram = 2.0 * _symmetric_entries(self.n) * self.d  # one triangle of X X^T
        if peer == "numpy_gram":
            return Work(gram, 8.0 * self.n * self.d + item * self.n**2, self.dtype)
        flops = gram + _symmetric_entries(self.n) * self.depth * RELU_STEP_FLOPS
        # ntkx's CPU backend computes in float64 whatever the output dtype.
        return Work(flops, 8.0 * self.n * self.d + 2 * item * self.n**2, "float64")

    def build(self, peer: str, x: np.ndarray) -> Callable[[], Any]:
        import ntkx
        from threadpoolctl import threadpool_limits

        spec = ntkx.FcSpec(self.depth, self.w_std, 0.0, ntkx.Activation("abrelu", 0.0, 1.0))
        dt = np.dtype(self.dtype)
        if peer == "ntkx":
            return lambda: ntkx.fc_kernels(x, None, spec, get=("nngp", "ntk"), device="cpu", dtype=dt,
                                           threads=self.threads)
        if peer == "numpy_gram":
            xd = x.astype(dt)

            def gram():
                with threadpool_limits(self.threads, user_api="blas"):
                    return xd @ xd.T
            return gram
        if peer == "numpy_recursion":
            if self.dtype != "float64":
                raise PeerSkipped("numpy_recursion runs in float64 only")
            return lambda: numpy_recursion(x, self.depth, self.w_std)
        if peer == "neural_tangents":
            nt = neural_tangents_stax()
            if nt is None:
                raise PeerSkipped(NT_MISSING)
            if self.dtype != "float64":
                raise PeerSkipped("neural-tangents is timed in float64 only (jax_enable_x64)")
            return nt_peer(nt_compile(fc_kernel_fn(nt, self.depth, self.w_std), len(x)), x, get=("nngp", "ntk"))
        raise ValueError(f"unknown FC peer {peer!r}")

    def check(self, peer: str, out: Any) -> Check:
        m = min(self.n, self.check_points)
        nngp_ref, ntk_ref = _fc_reference(m, self.d, self.depth, self.w_std, self.seed)
        if peer == "numpy_gram":
            x = points(m, self.d, self.seed)
            g = x @ x.T
            tol = TOL["float64" if self.dtype == "float64" else "float32"]
            return Check("float64 X @ X.T", max_rel(np.asarray(out)[:m, :m], g), tol)
        nngp, ntk = _pair(out)
        tol = TOL["deep"] if self.depth >= 1000 else TOL["float64" if self.dtype == "float64" else "float32"]
        off = peer == "neural_tangents"  # its diagonal angle is ill-conditioned by design
        err = max(max_rel(nngp[:m, :m], nngp_ref, off), max_rel(ntk[:m, :m], ntk_ref, off))
        return Check(f"numpy_recursion on the first {m} points{' (off-diagonal)' if off else ''}", err, tol)


@functools.lru_cache(maxsize=8)
def _cnn_reference(dataset: str, m: int, readout: str) -> Tuple[np.ndarray, np.ndarray]:
    return numpy_cntk(cnn_images(dataset, m), readout)


def cnn_kernel_fn(stax: Any, readout: str) -> Callable:
    """The CNN's ``kernel_fn`` from a stax module (``ntkx.stax`` or neural-tangents'; the same names)."""
    layers = []
    for _ in range(CNN_DEPTH):
        layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=CNN_W_STD), stax.Relu()]
    pool = stax.GlobalAvgPool() if readout == "gap" else stax.Flatten()
    return stax.serial(*layers, pool, stax.Dense(1, W_std=CNN_W_STD))[2]


def cnn_images(dataset: str, n: int) -> np.ndarray:
    """`n` images NHWC: scikit-learn's digits (8 x 8 x 1, pixels / 16) or Gaussian S x S x 3 ('synthS': 'synth32')."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        x = load_digits().data[:n].reshape(-1, 8, 8, 1) / 16.0
    elif dataset.startswith("synth") and dataset[5:].isdigit():
        side = int(dataset[5:])
        x = np.random.default_rng(0).standard_normal((n, side, side, 3))
    else:
        raise ValueError(f"unknown image set {dataset!r}")
    return np.ascontiguousarray(x)


@dataclasses.dataclass(frozen=True)
class CnnCase:
    """NNGP + NTK of ``[Conv(3x3, SAME, W_std=sqrt 2) -> Relu] x 6 -> GAP|Flatten -> Dense`` on a symmetric Gram.

    Attributes:
      dataset: 'digits' or 'synth32'; readout: 'gap' or 'vanilla'.
      n: images in ntkx's Gram; n_nt: in neural-tangents' (fewer where it would take minutes:
        compare rates, pairs per second); nt_batch: its nt.batch block (None: jax.jit of the whole Gram).
      threads: ntkx's OpenMP threads (None: all).
    """

    suite: str
    dataset: str
    readout: str
    n: int
    n_nt: int = 0
    nt_batch: Optional[int] = None
    threads: Optional[int] = None
    peers: Tuple[str, ...] = ("ntkx", "numpy_gram", "neural_tangents")
    check_images: int = 4
    skip: Tuple[Tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/{self.dataset}-{self.readout}-N{self.n}{th}"

    @property
    def family(self) -> str:
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/{self.dataset}-{self.readout}{th}"

    @property
    def size(self) -> int:
        return self.n

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "N_neural_tangents": self.n_nt, "nt_batch": self.nt_batch, "images": self.dataset,
                "readout": self.readout, "depth": CNN_DEPTH, "filter": [3, 3], "W_std": CNN_W_STD,
                "threads": self.threads, "dtype": "float64", "get": ["nngp", "ntk"]}

    def _n(self, peer: str) -> int:
        return self.n_nt if peer == "neural_tangents" else self.n

    def inputs(self) -> np.ndarray:
        return cnn_images(self.dataset, max(self.n, self.n_nt))

    def entries(self, peer: str) -> int:
        return _symmetric_entries(self._n(peer))

    def work(self, peer: str, out: Any = None) -> Work:
        n = self._n(peer)
        P, Q, C = (8, 8, 1) if self.dataset == "digits" else (int(self.dataset[5:]),) * 2 + (3,)
        if peer == "numpy_gram":
            f = 2.0 * _symmetric_entries(n) * P * Q * C
            return Work(f, 8.0 * n * P * Q * C + 8.0 * n * n)
        f = _symmetric_entries(n) * cnn_flops_per_pair(P, Q, C, CNN_DEPTH, self.readout)
        return Work(f, 8.0 * n * P * Q * C + 16.0 * n * n)

    def build(self, peer: str, x: np.ndarray) -> Callable[[], Any]:
        from threadpoolctl import threadpool_limits

        n = self._n(peer)
        x = x[:n]
        if peer == "ntkx":
            from ntkx import stax

            kfn = cnn_kernel_fn(stax, self.readout)
            return lambda: kfn(x, None, ("nngp", "ntk"), device="cpu", threads=self.threads)
        if peer == "numpy_gram":
            flat = x.reshape(len(x), -1)

            def gram():
                with threadpool_limits(self.threads, user_api="blas"):
                    return flat @ flat.T
            return gram
        if peer == "neural_tangents":
            nt = neural_tangents_stax()
            if nt is None:
                raise PeerSkipped(NT_MISSING)
            if n < 2:
                raise PeerSkipped("not run at this scale (its Gram would take minutes)")
            kfn = cnn_kernel_fn(nt, self.readout)
            return nt_peer(nt_compile(kfn, n, self.nt_batch, store_on_device=False), x, get=("nngp", "ntk"))
        raise ValueError(f"unknown CNN peer {peer!r}")

    def check(self, peer: str, out: Any) -> Check:
        m = min(self._n(peer), self.check_images)
        if peer == "numpy_gram":
            flat = cnn_images(self.dataset, m).reshape(m, -1)
            return Check("float64 X @ X.T", max_rel(np.asarray(out)[:m, :m], flat @ flat.T), TOL["float64"])
        nngp_ref, ntk_ref = _cnn_reference(self.dataset, m, self.readout)
        nngp, ntk = _pair(out)
        err = max(max_rel(nngp[:m, :m], nngp_ref), max_rel(ntk[:m, :m], ntk_ref))
        return Check(f"numpy_cntk (literal 4-D) on the first {m} images", err, TOL["cnn"])


@functools.lru_cache(maxsize=4)
def _dynamics_problem(n: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """The NTK of ``Dense -> [Relu -> Dense] x 3`` on n Gaussian points in R^16, and (n, 4) targets."""
    import ntkx

    x = points(n, 16, seed)
    k = ntkx.fc_kernels(x, None, ntkx.FcSpec(3), get="ntk", device="cpu")
    y = np.random.default_rng(seed + 1).standard_normal((n, 4))
    return k, y


@functools.lru_cache(maxsize=4)
def _dense_dynamics(n: int, seed: int, times: Tuple[float, ...]) -> np.ndarray:
    """``f_t = y - V exp(-t lam / y.size) V^T y`` (neural-tangents' time scale) by numpy's eigh."""
    k, y = _dynamics_problem(n, seed)
    lam, v = np.linalg.eigh(k)
    vy = v.T @ y
    return np.stack([y - v @ (np.exp(-t * lam / y.size)[:, None] * vy) for t in times])


@dataclasses.dataclass(frozen=True)
class DynamicsCase:
    """Gradient-flow dynamics under MSE on an n x n NTK (float64, 4 targets).

    Attributes:
      path: 'eigh' (`MSEDynamics`: one eigendecomposition, outputs at several times), 'cg'
        (`cg_solve` of ``(K + ridge I) X = Y``) or 'lanczos' (`mse_dynamics_iterative`).
    """

    suite: str
    path: str
    n: int
    times: Tuple[float, ...] = (1.0, 10.0, 100.0)
    seed: int = 0
    skip: Tuple[Tuple[str, str], ...] = ()

    @property
    def peers(self) -> Tuple[str, ...]:
        return {"eigh": ("ntkx", "numpy_eigh", "neural_tangents"), "cg": ("ntkx", "numpy_cholesky"),
                "lanczos": ("ntkx", "numpy_eigh")}[self.path]

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.path}-N{self.n}"

    @property
    def family(self) -> str:
        return f"{self.suite}/{self.path}"

    @property
    def size(self) -> int:
        return self.n

    @property
    def ridge(self) -> float:
        return 1e-3

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "path": self.path, "targets": 4, "times": list(self.times), "ridge": self.ridge,
                "kernel": "ntk of fc depth=3 on N(0, I_16) points", "convention": "neural_tangents"}

    def inputs(self) -> Tuple[np.ndarray, np.ndarray]:
        return _dynamics_problem(self.n, self.seed)

    def entries(self, peer: str) -> int:
        return self.n

    def work(self, peer: str, out: Any = None) -> Optional[Work]:
        n = float(self.n)
        if self.path == "cg":
            if peer == "ntkx":
                products = getattr(out, "operator_products", None)
                return None if products is None else Work(products * 2 * n * n * 4, products * 8 * n * n)
            return Work(n**3 / 3 + 4 * n * n * 4, 8 * n * n)
        if self.path == "lanczos" and peer == "ntkx":
            return None  # the basis size is not reported: no flop count
        # LAPACK's tridiagonal reduction 4/3 n^3 and the eigenvectors' back-transformation 2 n^3
        # (the tridiagonal eigensolver itself not counted): a lower bound.
        return Work((4.0 / 3.0 + 2.0) * n**3, 8 * n * n * 3)

    def build(self, peer: str, data: Tuple[np.ndarray, np.ndarray]) -> Callable[[], Any]:
        k, y = data
        times = np.asarray(self.times)
        if peer == "ntkx":
            from ntkx import dynamics

            if self.path == "eigh":
                return lambda: dynamics.MSEDynamics(k, y, convention="neural_tangents").train_outputs(times)
            if self.path == "cg":
                return lambda: dynamics.cg_solve(k, y, ridge=self.ridge, tol=1e-10)
            # mse_dynamics_iterative is in ntkx's time convention: t / y.size is neural-tangents' t.
            return lambda: dynamics.mse_dynamics_iterative(k, y, times / y.size, tol=1e-10).train
        if peer == "numpy_eigh":
            return lambda: np.linalg.eigh(k)
        if peer == "numpy_cholesky":
            import scipy.linalg

            a = k + self.ridge * np.eye(self.n)
            return lambda: scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), y)
        if peer == "neural_tangents":
            raise PeerSkipped(NT_PREDICT)
        raise ValueError(f"unknown dynamics peer {peer!r}")

    def check(self, peer: str, out: Any) -> Check:
        k, y = self.inputs()
        if self.path == "cg" or peer == "numpy_cholesky":
            x = np.asarray(getattr(out, "x", out))
            res = np.linalg.norm(y - (k @ x + self.ridge * x)) / np.linalg.norm(y)
            return Check("relative residual of (K + ridge I) x = y", res, TOL["iterative"])
        if peer == "numpy_eigh":
            lam, v = out
            err = np.linalg.norm(k @ v - v * lam) / np.linalg.norm(k)
            return Check("||K V - V diag(lam)|| / ||K||", err, TOL["solve"])
        ref = _dense_dynamics(self.n, self.seed, tuple(self.times))
        err = np.linalg.norm(np.asarray(out) - ref) / np.linalg.norm(ref)
        tol = TOL["iterative"] if self.path == "lanczos" else TOL["solve"]
        return Check("dense formula by numpy's eigh (relative Frobenius)", err, tol)


@dataclasses.dataclass(frozen=True)
class PrecomputeCase:
    """Throughput of a float32 NNGP + NTK store of ``fc depth=3`` on n points in R^64, tile by tile.

    Peers: ``fc_kernels_memmap`` (``fc_kernels(..., out=`` two float32 ``.npy`` memmaps ``)``, the
    baseline), ``precompute_local`` (``ntkx.precompute`` to a local Zarr store, 2 worker threads)
    and ``precompute_dask`` (the same on a Dask LocalCluster of 2 single-threaded worker
    processes, started before the timed calls, each worker's backend on cores / 2 threads).
    Every call starts from an empty folder (a store left in place would be resumed, not computed).
    """

    suite: str
    n: int
    tile: int
    d: int = 64
    depth: int = 3
    peers: Tuple[str, ...] = ("fc_kernels_memmap", "precompute_local", "precompute_dask")
    baseline: str = "fc_kernels_memmap"
    check_points: int = 128
    skip: Tuple[Tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.suite}/N{self.n}-tile{self.tile}"

    @property
    def family(self) -> str:
        return f"{self.suite}/tile{self.tile}"

    @property
    def size(self) -> int:
        return self.n

    @property
    def tiles(self) -> int:
        t = -(-self.n // self.tile)
        return t * (t + 1) // 2

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "d": self.d, "L": self.depth, "tile": self.tile, "tiles": self.tiles,
                "dtype": "float32", "get": ["nngp", "ntk"]}

    def inputs(self) -> np.ndarray:
        return points(self.n, self.d)

    def entries(self, peer: str) -> int:
        return _symmetric_entries(self.n)

    def work(self, peer: str, out: Any = None) -> Work:
        flops = 2.0 * _symmetric_entries(self.n) * self.d + _symmetric_entries(self.n) * self.depth * RELU_STEP_FLOPS
        return Work(flops, 8.0 * self.n * self.d + 8.0 * self.n**2)

    def build(self, peer: str, x: np.ndarray) -> Callable[[], Any]:
        import ntkx

        spec = ntkx.FcSpec(self.depth)
        folder = tempfile.mkdtemp(prefix="ntkx-bench-")

        def fresh(name: str) -> str:
            path = os.path.join(folder, name)
            shutil.rmtree(path, ignore_errors=True)
            return path

        close: Callable[[], None] = lambda: shutil.rmtree(folder, ignore_errors=True)  # noqa: E731
        if peer == "fc_kernels_memmap":
            def run():
                path = fresh("mm")
                os.makedirs(path)
                outs = {g: np.lib.format.open_memmap(os.path.join(path, f"{g}.npy"), mode="w+", dtype=np.float32,
                                                     shape=(self.n, self.n)) for g in ("nngp", "ntk")}
                ntkx.fc_kernels(x, None, spec, device="cpu", dtype=np.float32, out=outs)
                for a in outs.values():
                    a.flush()
                return outs
        elif peer in ("precompute_local", "precompute_dask"):
            from ntkx import precompute as P

            client = None
            options: Dict[str, Any] = {"device": "cpu"}
            if peer == "precompute_dask":
                try:
                    from distributed import Client, LocalCluster
                except ImportError:
                    close()
                    raise PeerSkipped("dask.distributed is not installed (pip install 'ntkx[distributed]')") from None
                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
                client = Client(cluster)
                options["threads"] = max(1, (os.cpu_count() or 2) // 2)

                def close():  # noqa: F811
                    client.close()
                    cluster.close()
                    shutil.rmtree(folder, ignore_errors=True)

            def run():
                res = P.precompute(spec, x, store=fresh("K.zarr"), tile=self.tile, dtype=np.float32,
                                   scheduler=client, progress=False, **options)
                return res
        else:
            close()
            raise ValueError(f"unknown precompute peer {peer!r}")
        run.close = close
        return run

    def check(self, peer: str, out: Any) -> Check:
        m = min(self.n, self.check_points)
        nngp_ref, ntk_ref = _fc_reference(m, self.d, self.depth, 1.0, 0)
        if peer == "fc_kernels_memmap":
            nngp, ntk = out["nngp"][:m, :m], out["ntk"][:m, :m]
        else:
            nngp, ntk = out.open("nngp")[:m, :m], out.open("ntk")[:m, :m]
        err = max(max_rel(nngp, nngp_ref), max_rel(ntk, ntk_ref))
        return Check(f"numpy_recursion on the first {m} points (float32 store)", err, TOL["float32"])
