"""The peers and references of ``ntkx bench``: the compiled-only neural-tangents peers, the numpy peers and
references, the work model (`Work`), the correctness check (`Check`, `max_rel`) and its tolerances (`TOL`).

`ntkx._src.bench.cases` builds every case from these; see its docstring for the list of peers.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
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


def pair(out: Any) -> Tuple[np.ndarray, np.ndarray]:
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


def symmetric_entries(n: int) -> int:
    return n * (n + 1) // 2
