"""The fully-connected NNGP/NTK engine: validation, input scaling and output handling.

The math lives in ``csrc/ntkx/math/fc.h`` and the driver in C++ (``ntkx::fc``,
``csrc/ntkx/cpu/fc.cpp``): it sizes row panels to ``memory_budget``, computes the
per-point layer arrays, runs the Gram tiles through BLAS and the recursion with the
GIL released, and honours Ctrl-C and progress between and inside panels. This module
checks the inputs, divides out extreme scales, holds the BLAS to the threads each
path needs and multiplies the scales back.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ntkx._src.activations import Activation, ActivationKind, relu
from ntkx._src.backend import core as _core
from ntkx._src import backend, validate
from ntkx._src.backend import finish_work, float64_work
from ntkx._src.progress import Progress, ProgressArg

if TYPE_CHECKING:
    from ntkx._src.fc_program import FcProgram

@functools.lru_cache(maxsize=1)
def _blas_controller():
    """One threadpoolctl controller for the process (building one scans every loaded
    library, ~1.5 ms); made after scipy's BLAS is loaded, which is the one the fused
    path calls and has to hold to one thread."""
    from scipy.linalg import cython_blas  # noqa: F401  (loads scipy's BLAS first)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


Get = Union[None, str, Sequence[str]]

#: Default bound on the working memory of one call besides inputs and outputs.
DEFAULT_MEMORY_BUDGET = 128 * 2**20


class Kernels(NamedTuple):
    """NNGP and NTK matrices, each `(N1, N2)` (``None`` when not requested)."""

    nngp: Optional[np.ndarray]
    ntk: Optional[np.ndarray]


@dataclasses.dataclass(frozen=True)
class Kernel:
    """What a stax ``kernel_fn(x1, x2)`` returns for ``get=None`` (neural-tangents'
    ``Kernel``, the fields its users read).

    Attributes:
      nngp, ntk: `(N1, N2)` kernels.
      cov1: `(N1,)` the NNGP of each x1 with itself (the diagonal of ``nngp(x1, x1)``).
      cov2: `(N2,)` likewise for x2; ``None`` when x2 is None (as neural-tangents).
      x1_is_x2: whether x2 was None.
      shape1, shape2: the finite network's output shapes on x1 and x2.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    cov1: np.ndarray
    cov2: Optional[np.ndarray]
    x1_is_x2: bool
    shape1: Tuple[int, ...]
    shape2: Tuple[int, ...]


# The kernels of a tuple `get` come back in the order asked, as neural-tangents
# returns them (``ntk, nngp = kernel_fn(x, None, ('ntk', 'nngp'))``); one class per
# order, at module level so that results pickle.
class KernelsNtkNngp(NamedTuple):
    """NTK and NNGP, in this order (``get=('ntk', 'nngp')``)."""

    ntk: np.ndarray
    nngp: np.ndarray


class KernelsNngp(NamedTuple):
    """The NNGP alone (``get=('nngp',)``)."""

    nngp: np.ndarray


class KernelsNtk(NamedTuple):
    """The NTK alone (``get=('ntk',)``)."""

    ntk: np.ndarray


_RESULT = {("nngp", "ntk"): Kernels, ("ntk", "nngp"): KernelsNtkNngp, ("nngp",): KernelsNngp,
           ("ntk",): KernelsNtk}


def result(outs: Mapping[str, np.ndarray], names: Tuple[str, ...], single: bool) -> Any:
    """What fc_kernels / cntk_kernels return: one array for a string `get`, else the
    kernels as a named tuple in the order `names` asked for them."""
    if single:
        return outs[names[0]]
    return _RESULT[names](*(outs[g] for g in names))


#: Largest |entry| exponent (per row or image) used as given; beyond 2^+-64 the inputs
#: are divided by a power of two first (exactly), so that squared norms, Gram products
#: and the exact colinear recomputation (which squares products of entries and norms)
#: neither overflow nor underflow.
_SAFE_EXP = 64


def pow2_normalize(a: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Divides each item (row or image) of `a` by 2^k, k the binary exponent of its
    largest |entry|, when some item lies outside 2^+-_SAFE_EXP.

    Returns ``(a, None)`` when nothing needs it, else ``(scaled copy, k)`` with `k` an
    int array, one per item (0 for an all-zero item). Powers of two are exact, so
    cosines are unchanged bit for bit (entries that become subnormal lose bits, but
    they are below 2^-1000 of the item's norm).
    """
    flat = a.reshape(a.shape[0], -1)
    m = np.maximum(flat.max(axis=1), -flat.min(axis=1))  # no |a| temporary of a's size
    k = np.frexp(m)[1]
    if k.min() >= -_SAFE_EXP and k.max() <= _SAFE_EXP:
        return a, None
    return np.ldexp(a, -k.reshape((-1,) + (1,) * (a.ndim - 1))), k.astype(np.int64)


#: An erf NTK's derivative kernel E[phi' phi'] ~ 1 / sqrt(1 - gamma^4) is formed from
#: gamma^2 = t / (1 + t), t = 2 b^2 q, whose complement 1 / (1 + t) float64 cannot
#: carry once it is tiny: beyond t = 1e6 the relative error would pass 5e-11, and
#: near 1e16 it becomes inf. Such NTKs are refused (the NNGP stays exact).
MAX_ERF_T = 1e6


def check_erf_ntk(act: Activation, log2_vars: Sequence[float]) -> None:
    """Refuses the NTK of erf(b u) when 2 b^2 q, with q from `log2_vars` (log2 upper
    bounds of the activations' input variances), passes MAX_ERF_T."""
    if act.kind != ActivationKind.ERF or act.b == 0.0 or not log2_vars:
        return
    lt = 1.0 + 2.0 * math.log2(abs(act.b)) + max(log2_vars)
    if lt > math.log2(MAX_ERF_T):
        raise ValueError(
            f"{act.name or 'Erf'}: 2 b^2 q reaches 2^{lt:.0f} (b = {act.b:g}; q the activation's input variance), "
            f"beyond {MAX_ERF_T:g}, where the NTK's derivative term 1/sqrt(1 - gamma^4) loses float64 accuracy; "
            f"ntkx refuses it rather than return an inaccurate value (get='nngp' is exact); rescale b or the inputs")


def homogeneous_degree(act: Activation, n_act: int, biased: bool) -> Optional[int]:
    """e with K(s x, t x') = (s t)^e K(x, x') for all s, t > 0, or None.

    Bias-free networks of positively homogeneous activations are: ABRelu has degree
    1, the step 0, ReQU 2, so after `n_act` activations e = degree^n_act, for the
    NNGP and the NTK alike (every Dense/Conv, readout and Theta update is linear).
    ReQU's 2^n_act is capped at 2^16: any nonzero scale exponent then saturates
    the result to inf or 0, as the exact value does.
    """
    deg = act.kind.degree
    if biased or deg is None:
        return None
    return deg ** n_act if deg != 2 else 2 ** min(n_act, 16)


def rescale(outs: Sequence[Optional[np.ndarray]], k1: Optional[np.ndarray], k2: Optional[np.ndarray],
            degree: int) -> None:
    """Multiplies entry (i, j) of each output by 2^(degree (k1_i + k2_j)) in place:
    undoes pow2_normalize for a homogeneous network exactly (powers of two), row by
    row so a memmap output is never loaded whole. inf (or 0) where the exact value
    leaves float64."""
    if k1 is None and k2 is None:
        return
    n1, n2 = next(o.shape for o in outs if o is not None)
    e1 = degree * (np.zeros(n1, np.int64) if k1 is None else k1)
    e2 = degree * (np.zeros(n2, np.int64) if k2 is None else k2)
    with np.errstate(over="ignore", under="ignore"):  # inf / 0 is the answer there
        for o in outs:
            if o is None:
                continue
            for r in range(n1):
                o[r] = np.ldexp(o[r], np.clip(e1[r] + e2, -4000, 4000).astype(np.int32))


def _log_scales(k: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """log of the squared factors 2^(2k) that pow2_normalize divided out (math::point_layer0's lsc)."""
    return None if k is None else k * (2.0 * math.log(2.0))


@dataclasses.dataclass(frozen=True)
class FcSpec:
    """Dense(w_std, b_std) -> [activation -> Dense(w_std, b_std)] x depth.

    Attributes:
      depth: the number L of (activation -> Dense) blocks after the first Dense.
      w_std, b_std: every Dense layer's weight and bias std.
      activation: the activation of every block.
      w_layers, b_layers: optional per-layer stds, ``depth + 1`` each (layer 0 is the
        first Dense); they replace `w_std` / `b_std` for every layer.
    """

    depth: int
    w_std: float = 1.0
    b_std: float = 0.0
    activation: Activation = relu()
    w_layers: Optional[Tuple[float, ...]] = None
    b_layers: Optional[Tuple[float, ...]] = None

    def __post_init__(self) -> None:
        for name in ("w_layers", "b_layers"):  # any sequence, kept as a tuple of floats (hashable)
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(float(x) for x in np.asarray(v, dtype=np.float64).ravel()))

    def to_core(self) -> "_core.FcParams":
        act = self.activation
        if not isinstance(act, Activation):
            raise TypeError(f"FcSpec.activation must be an ntkx.Activation, got {type(act).__name__}")
        p = _core.FcParams()
        p.depth = validate.check_depth(self.depth)
        p.w_std = validate.check_std(self.w_std, "W_std")
        p.b_std = validate.check_std(self.b_std, "b_std")
        p.act = act.core_kind()
        p.a, p.b, p.c = act.a, act.b, act.c
        return p

    def layer_stds(self) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """``(w, b)``: float64 arrays of the per-layer stds (``None`` where not given), checked."""
        n = validate.check_depth(self.depth) + 1
        out = []
        for name, v in (("w_layers", self.w_layers), ("b_layers", self.b_layers)):
            if v is None:
                out.append(None)
                continue
            arr = np.asarray(v, dtype=np.float64)
            bad = ~(np.isfinite(arr) & (arr >= 0))
            if bad.any():  # check_std's message, naming the first bad layer
                i = int(np.argmax(bad))
                validate.check_std(arr[i], f"{name}[{i}]")
            if arr.shape != (n,):
                raise ValueError(f"FcSpec.{name} needs depth + 1 = {n} entries, got {arr.size}")
            out.append(arr)
        return out[0], out[1]


def fc_kernels(
    x1: Any,
    x2: Any = None,
    spec: Union[FcSpec, FcProgram] = FcSpec(1),
    get: Get = None,
    *,
    device: str = "auto",
    dtype: Any = np.float64,
    out: Any = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    threads: Optional[int] = None,
    progress: ProgressArg = False,
) -> Union[np.ndarray, Kernels]:
    """NNGP and/or NTK of the FC network `spec` between the rows of `x1` and `x2`.

    Args:
      x1: `(N1, d)` inputs, any array-like of real numbers.
      x2: `(N2, d)` inputs, or ``None`` for `x1` against itself (one triangle is
        computed and mirrored, so the result is exactly symmetric).
      spec: the architecture: an `FcSpec`, or a compiled general composition
        (``ntkx._src.fc_program.FcProgram``, what ``stax`` networks with residual
        branches or per-layer activations compile to; CPU only).
      get: ``'nngp'``, ``'ntk'``, a tuple of both, or ``None`` (both).
      device: ``'auto'`` (CUDA when a device is present), ``'cpu'`` or ``'cuda'``
        (``'emulate'``, the CPU emulator of the CUDA kernel, is reserved to ntkx's
        test suite and refused otherwise).
      dtype: ``float64`` (default) or ``float32``. float32 halves the outputs'
        memory; on the CPU the Gram and the recursion stay float64 (only the
        outputs are rounded), on CUDA the inputs are float32 and the Gram is
        accumulated in float64.
      out: preallocated outputs (`(N1, N2)`, rows contiguous), e.g. numpy memmaps,
        as an array when `get` is one name or a dict ``{'nngp': .., 'ntk': ..}``.
        Lets a 50,000 x 50,000 Gram be written without a second copy.
      memory_budget: bytes of working memory per call: on the CPU the Gram panel
        and state, on CUDA the row panel of outputs held on the device.
      threads: OpenMP threads (default: all).
      progress: ``True`` for a progress bar on stderr (tqdm), or ``f(done, total)``.

    Returns:
      One `(N1, N2)` array when `get` is a string, else the kernels as a named tuple
      in the order `get` names them (`Kernels(nngp, ntk)` for ``None``).

    Inputs of any magnitude are fine: rows beyond 2^+-64 are divided by a power of
    two first and the scale is carried in logs, so an entry is inf (or 0) only where
    the exact kernel overflows (or underflows) float64, never NaN.
    """
    from ntkx._src.fc_program import FcProgram

    names, single = validate.check_get(get)
    dtype = validate.check_dtype(dtype)
    program = spec if isinstance(spec, FcProgram) else None
    if program is None and not isinstance(spec, FcSpec):
        raise TypeError(f"spec must be an ntkx.FcSpec, got {type(spec).__name__}")
    params = spec.to_core() if program is None else _core.FcParams()
    if program is not None and device in ("cuda", "emulate"):
        raise NotImplementedError(f"device={device!r}: general FC compositions (per-layer activations, "
                                  f"residual branches) run on the CPU backend only so far; use device='cpu'")
    dev = backend.device(device)
    if program is not None:
        dev = "cpu"  # 'auto' on a CUDA machine
    memory_budget = validate.check_memory_budget(memory_budget)
    threads = validate.check_threads(threads)
    progress = validate.check_progress(progress)
    a1 = validate.as_points(x1, "x1", np.dtype(np.float64))
    symmetric = x2 is None
    a2 = a1 if symmetric else validate.as_points(x2, "x2", np.dtype(np.float64))
    if a2.shape[1] != a1.shape[1]:
        raise ValueError(f"x1 and x2 must have the same feature size, got {a1.shape[1]} and {a2.shape[1]}")
    n1, n2 = a1.shape[0], a2.shape[0]
    outs = backend.outputs(out, names, single, n1, n2, dtype, (a1, a2))
    a1, k1 = pow2_normalize(a1)
    a2, k2 = (a1, k1) if symmetric else pow2_normalize(a2)
    # Scale: a homogeneous network runs on the normalized rows and is multiplied back
    # exactly; any other carries the rows' scales in logs (math::point_layer0), whose
    # rounding costs ~(depth + 1) |ln K| eps relative at a kernel value K.
    if program is None:
        w_layers, b_layers = spec.layer_stds()
        biased = bool(b_layers.any()) if b_layers is not None else params.b_std != 0.0
        degree = homogeneous_degree(spec.activation, params.depth, biased)
    else:  # a program carries every scale in logs; its erf limits are checked per point (C++)
        w_layers = b_layers = degree = None
    lsc1 = lsc2 = None
    if degree is None:
        lsc1, lsc2 = _log_scales(k1), _log_scales(k2)
        if (lsc1 is None) != (lsc2 is None):  # one side normalized: give the other its zeros
            lsc1 = np.zeros(n1) if lsc1 is None else lsc1
            lsc2 = np.zeros(n2) if lsc2 is None else lsc2
    if program is None and spec.activation.kind == ActivationKind.ERF and params.depth > 0:
        _check_erf(spec, w_layers, b_layers, (a1, k1), (a2, k2), "ntk" in names)
    work = float64_work(outs, degree is not None and (k1 is not None or k2 is not None))

    sq1 = np.einsum("ij,ij->i", a1, a1, dtype=np.float64)
    sq2 = None if symmetric else np.einsum("ij,ij->i", a2, a2, dtype=np.float64)
    run = backend.run_options(dev, threads, memory_budget)
    with Progress("ntkx FC kernel", n1 * (n1 + 1) // 2 if symmetric else n1 * n2, progress, unit="pair") as bar:
        call = functools.partial(
            _core.fc, params, a1, None if symmetric else a2, sq1, sq2, work.get("nngp"), work.get("ntk"), run,
            lsc1=lsc1, lsc2=lsc2, progress=lambda done: bar.advance(done - bar.done), w_layers=w_layers,
            b_layers=b_layers, program=None if program is None else program.to_core(MAX_ERF_T, "ntk" in names))
        if dev == "cpu":
            # The fused tiles call scipy's BLAS from every OpenMP thread, held to one
            # thread; the Gram panels of very deep nets are numpy's, with its own threads.
            ctl = _blas_controller()
            own = ctl.select(user_api="blas").info()

            def gram(r0: int, r1: int, c0: int, out: np.ndarray) -> None:
                with ctl.limit(limits=own):
                    np.matmul(a1[r0:r1], a2[c0:].T, out=out)

            with ctl.limit(limits=1, user_api="blas"):
                call(gram=gram)
        else:
            # CUDA reads the inputs in the outputs' dtype (float32 or float64) and
            # accumulates the Gram in float64, in row panels of at most memory_budget
            # bytes of outputs written straight into `work` (the caller's `out` unless
            # float64_work).
            call()
    if degree is not None:
        rescale([work[g] for g in names], k1, k2, degree)
    finish_work(outs, work)
    return result(outs, names, single)


def _check_erf(spec: FcSpec, wl: Optional[np.ndarray], bl: Optional[np.ndarray], *sides) -> None:
    """Refuses what an erf net cannot compute in float64 (clear ValueErrors): a nonzero
    bias-free input whose 2 b^2 Q_0 underflows (its gamma and variance would read 0, as
    a zero row's), and (with `want_ntk`, the last of `sides`) an NTK past MAX_ERF_T.
    `wl`, `bl` are the spec's checked per-layer stds (`FcSpec.layer_stds`) or None.

    Q_0 = w^2 |x|^2 / d + b^2 is exact per row (in log2, from the normalized rows and
    their exponents k); deeper layers' inputs are bounded by w^2 (a^2 + c^2) + b^2
    (erf's second moment is at most a^2 + c^2), with the largest later w and b when
    the layers differ.
    """
    *sides, want_ntk = sides
    act, depth = spec.activation, spec.depth
    ws = wl if wl is not None else np.full(depth + 1, float(spec.w_std))
    bs = bl if bl is not None else np.full(depth + 1, float(spec.b_std))

    def log2sq(v: float) -> float:
        return 2.0 * math.log2(v) if v > 0 else -math.inf

    lw2, lb2 = log2sq(float(ws[0])), log2sq(float(bs[0]))
    l2b = 1.0 + 2.0 * math.log2(abs(act.b)) if act.b else -math.inf  # log2(2 b^2)
    hi, lo = -math.inf, math.inf
    for a, k in sides:
        sq = np.einsum("ij,ij->i", a, a)
        nz = sq > 0
        if not nz.any():
            continue
        l2 = np.log2(sq[nz]) + (0.0 if k is None else 2.0 * k[nz]) + lw2 - math.log2(a.shape[1])
        hi, lo = max(hi, float(l2.max())), min(lo, float(l2.min()))
    if bs[0] == 0.0 and act.c == 0.0 and lo + l2b < -1000:
        raise ValueError(
            f"{act.name or 'Erf'}: a nonzero input's 2 b^2 q is 2^{lo + l2b:.0f}, below float64's range, where erf's "
            f"variance would read 0 as for a zero input; rescale the inputs, W_std or b")
    if want_ntk:
        later = log2sq(float(ws[1:].max(initial=0.0))) + math.log2(act.a ** 2 + act.c ** 2)
        lb2_later = log2sq(float(bs[1:].max(initial=0.0)))
        bounds = [float(np.logaddexp2(hi, lb2))] + ([float(np.logaddexp2(later, lb2_later))] if depth > 1 else [])
        check_erf_ntk(act, bounds)
