"""The fully-connected NNGP/NTK engine: tiling, dispatch and output handling.

The math lives in ``csrc/ntkx/math/fc.h``; this module decides panel sizes (so
memory is bounded by ``memory_budget`` plus the outputs), runs the Gram products
through numpy's BLAS, hands each panel to the compiled OpenMP recursion with the
GIL released, and honours Ctrl-C between and inside panels.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ntkx import _core
from ntkx._src import validate
from ntkx._src.progress import Progress, ProgressArg

_FUSED_ROWS = 2048  # rows per call on the fused path (progress and Ctrl-C granularity)


def _blas_capsule(name: str):
    """scipy's Fortran BLAS routine `name` (a PyCapsule) for the fused path, or None."""
    try:
        from scipy.linalg import cython_blas

        return cython_blas.__pyx_capi__[name]
    except (ImportError, AttributeError, KeyError):  # pragma: no cover - scipy always has them
        return None


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """One threadpoolctl controller for the process (building one scans every loaded
    library, ~1.5 ms); made after scipy's BLAS is loaded, which is the one the fused
    path calls and has to hold to one thread."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


Get = Union[None, str, Sequence[str]]
_KINDS = ("nngp", "ntk")

#: Default bound on the working memory of one call besides inputs and outputs.
DEFAULT_MEMORY_BUDGET = 128 * 2**20
#: Gram panels are sized to stay in the last-level cache between the BLAS product
#: and the recursion that consumes them (and to avoid page-faulting a large
#: buffer per call); the memory budget only lowers this.
PANEL_BYTES = 8 * 2**20


class Kernels(NamedTuple):
    """NNGP and NTK matrices, each `(N1, N2)` (``None`` when not requested)."""

    nngp: Optional[np.ndarray]
    ntk: Optional[np.ndarray]


@dataclasses.dataclass(frozen=True)
class Activation:
    """A closed-form activation of the FC engine (mirrors ``ntkx::Act``).

    Attributes:
      kind: ``'abrelu'`` (a min(x,0) + b max(x,0)), ``'arccos0'`` (step),
        ``'arccos2'`` (ReQU) or ``'erf'`` (a erf(b x) + c).
      a, b, c: the family's parameters (see `kind`).
      name: how error messages and reprs call it.
    """

    kind: str
    a: float = 0.0
    b: float = 1.0
    c: float = 0.0
    name: str = ""


@dataclasses.dataclass(frozen=True)
class FcSpec:
    """Dense(w_std, b_std) -> [activation -> Dense(w_std, b_std)] x depth."""

    depth: int
    w_std: float = 1.0
    b_std: float = 0.0
    activation: Activation = Activation("abrelu", 0.0, 1.0, 0.0, "Relu")

    def to_core(self) -> "_core.FcParams":
        p = _core.FcParams()
        p.depth = validate.check_depth(self.depth)
        p.w_std = validate.check_std(self.w_std, "W_std")
        p.b_std = validate.check_std(self.b_std, "b_std")
        act = self.activation
        p.act = {
            "abrelu": _core.Act.ABRelu,
            "arccos0": _core.Act.ArcCos0,
            "arccos2": _core.Act.ArcCos2,
            "erf": _core.Act.Erf,
        }[act.kind]
        p.a, p.b, p.c = float(act.a), float(act.b), float(act.c)
        if act.kind == "abrelu" and p.a == 0.0 and p.b == 0.0:
            raise ValueError("ABRelu(a=0, b=0) is the zero function; its kernels are identically 0")
        return p


def _parse_get(get: Get) -> Tuple[Tuple[str, ...], bool]:
    if get is None:
        return _KINDS, False
    single = isinstance(get, str)
    names = (get,) if single else tuple(get)
    for g in names:
        if g not in _KINDS:
            raise ValueError(f"get must be None, 'nngp', 'ntk' or a tuple of them; got {get!r}")
    if not names:
        raise ValueError("get must name at least one of 'nngp', 'ntk'")
    return names, single


def _device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda", "emulate"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return "cuda" if _core.cuda_device_count() > 0 else "cpu"
    if device == "cuda":
        if not _core.has_cuda():
            raise RuntimeError("device='cuda': this ntkx build has no CUDA backend (no nvcc at build time)")
        if _core.cuda_device_count() == 0:
            raise RuntimeError("device='cuda': no CUDA device is available; use device='cpu' or 'auto'")
    return device


#: Alignment of the outputs ntkx allocates: one cache line, so that the CPU
#: backend's streaming stores cover whole lines (numpy's own large arrays start
#: 16 bytes into a line).
_OUT_ALIGN = 64


def _empty_aligned(shape: Tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a cache line."""
    nbytes = shape[0] * shape[1] * dtype.itemsize
    raw = np.empty(nbytes + _OUT_ALIGN, dtype=np.uint8)
    skip = -raw.ctypes.data % _OUT_ALIGN
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


def _outputs(out: Any, names: Sequence[str], single: bool, n1: int, n2: int, dtype: np.dtype) -> dict:
    if out is None:
        validate.check_output_fits(n1, n2, len(names), dtype.itemsize)
        return {g: _empty_aligned((n1, n2), dtype) for g in names}
    if single and not isinstance(out, Mapping):
        out = {names[0]: out}
    if not isinstance(out, Mapping) or set(out) != set(names):
        raise ValueError(f"out must map each requested kernel {tuple(names)} to an array")
    res = {}
    for g in names:
        a = out[g]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"out[{g!r}] must be a numpy array (or memmap), got {type(a).__name__}")
        if a.shape != (n1, n2) or a.dtype != dtype:
            raise ValueError(f"out[{g!r}] must have shape {(n1, n2)} and dtype {dtype}, got {a.shape} {a.dtype}")
        if not a.flags.writeable:
            raise ValueError(f"out[{g!r}] is read-only")
        if a.strides[1] != a.itemsize:
            raise ValueError(f"out[{g!r}] needs contiguous rows (unit column stride)")
        res[g] = a
    strides = {res[g].strides[0] for g in names}
    if len(strides) > 1:
        raise ValueError("the out arrays must share their row stride")
    return res


def fc_kernels(
    x1: Any,
    x2: Any = None,
    spec: FcSpec = FcSpec(1),
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
      spec: the architecture.
      get: ``'nngp'``, ``'ntk'``, a tuple of both, or ``None`` (both).
      device: ``'auto'`` (CUDA when a device is present), ``'cpu'`` or ``'cuda'``.
      dtype: ``float64`` (default) or ``float32``. float32 halves the outputs'
        memory; on the CPU the Gram and the recursion stay float64 (only the
        outputs are rounded), on CUDA the inputs are float32 and the Gram is
        accumulated in float64.
      out: preallocated outputs (`(N1, N2)`, rows contiguous), e.g. numpy memmaps,
        as an array when `get` is one name or a dict ``{'nngp': .., 'ntk': ..}``.
        Lets a 50,000 x 50,000 Gram be written without a second copy.
      memory_budget: bytes of working memory (Gram panel and state) per call.
      threads: OpenMP threads (default: all).
      progress: ``True`` for a progress line on stderr, or ``f(done, total)``.

    Returns:
      One `(N1, N2)` array when `get` is a string, else a `Kernels` tuple.
    """
    names, single = _parse_get(get)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    params = spec.to_core()
    dev = _device(device)
    # The CPU backend always reads float64 (float32 mode rounds only the outputs);
    # the CUDA kernel takes float32 inputs and accumulates the Gram in float64.
    in_dtype = dtype if dev in ("cuda", "emulate") else np.dtype(np.float64)
    a1 = validate.as_points(x1, "x1", in_dtype)
    symmetric = x2 is None
    a2 = a1 if symmetric else validate.as_points(x2, "x2", in_dtype)
    if a2.shape[1] != a1.shape[1]:
        raise ValueError(f"x1 and x2 must have the same feature size, got {a1.shape[1]} and {a2.shape[1]}")
    if not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    n1, n2 = a1.shape[0], a2.shape[0]
    outs = _outputs(out, names, single, n1, n2, dtype)

    if dev in ("cuda", "emulate"):
        res = _core.fc_full(params, a1, None if symmetric else a2, "nngp" in names, "ntk" in names, dev)
        for g, r in zip(_KINDS, res):
            if r is not None:
                outs[g][...] = r
    else:
        _cpu(params, a1, a2, symmetric, outs, memory_budget, threads or 0, progress)
    if single:
        return outs[names[0]]
    return Kernels(outs.get("nngp"), outs.get("ntk"))


def _cpu(params, a1, a2, symmetric, outs, budget, threads, progress) -> None:
    n1, n2 = a1.shape[0], a2.shape[0]
    sq1 = np.einsum("ij,ij->i", a1, a1, dtype=np.float64)
    sq2 = sq1 if symmetric else np.einsum("ij,ij->i", a2, a2, dtype=np.float64)
    # Per-point layer arrays once per call when they are small against the budget;
    # otherwise (very deep nets) each panel computes them in layer blocks.
    layers = params.depth + 1
    pts1 = pts2 = lq1 = lq2 = None
    if 4 * 8 * layers * (n1 + (0 if symmetric else n2)) <= budget // 2:
        pts1, lq1 = _core.fc_points(params, sq1, a1.shape[1])
        pts2, lq2 = (pts1, lq1) if symmetric else _core.fc_points(params, sq2, a1.shape[1])
    nngp, ntk = outs.get("nngp"), outs.get("ntk")
    total = n1 * (n1 + 1) // 2 if symmetric else n1 * n2
    bar = Progress("ntkx FC kernel", total, progress)
    dgemm = _blas_capsule("dgemm") if pts1 is not None else None
    if dgemm is not None:
        # Fused path: each OpenMP thread computes its Gram tiles with single-threaded
        # BLAS and consumes them from cache; no Gram matrix is ever stored.
        dsyrk = _blas_capsule("dsyrk") if symmetric else None  # diagonal tiles
        empty = np.empty((0, 0))
        with _blas_controller().limit(limits=1, user_api="blas"):
            for p0 in range(0, n1, _FUSED_ROWS):
                p1 = min(n1, p0 + _FUSED_ROWS)
                c0 = p0 if symmetric else 0
                rsl = (slice(p0, None), slice(p0, None)) if symmetric else (slice(p0, p1), slice(None))
                _core.fc_panel(
                    params, a1[p0:p1], a2[c0:], sq1[p0:p1], sq2[c0:], empty,
                    None if nngp is None else nngp[rsl], None if ntk is None else ntk[rsl],
                    p1 - p0, symmetric, threads,
                    pts1=pts1[:, :, p0:p1], logq1=lq1[p0:p1], pts2=pts2[:, :, c0:], logq2=lq2[c0:],
                    dgemm=dgemm, dsyrk=dsyrk,
                )
                bar.advance(_panel_pairs(p0, p1, n1, n2, symmetric))
        return
    deep = pts1 is None and layers > (1 << 22) // (n1 + n2 + 1)
    # A panel holds its Gram block (reused between panels); very deep nets also keep
    # 4 float64 of recursion state per pair.
    per_row = n2 * (8 + (32 if deep else 0))
    rows = int(max(1, min(n1, min(budget, PANEL_BYTES) // max(per_row, 1))))
    buf = np.empty(rows * n2, dtype=a1.dtype)
    for p0 in range(0, n1, rows):
        p1 = min(n1, p0 + rows)
        c0 = p0 if symmetric else 0
        cols = a2[c0:]
        gram = buf[: (p1 - p0) * cols.shape[0]].reshape(p1 - p0, cols.shape[0])
        np.matmul(a1[p0:p1], cols.T, out=gram)
        rsl = (slice(p0, None), slice(p0, None)) if symmetric else (slice(p0, p1), slice(None))
        extra = {}
        if pts1 is not None:
            extra = dict(pts1=pts1[:, :, p0:p1], logq1=lq1[p0:p1], pts2=pts2[:, :, c0:], logq2=lq2[c0:])
        _core.fc_panel(
            params, a1[p0:p1], cols, sq1[p0:p1], sq2[c0:], gram,
            None if nngp is None else nngp[rsl], None if ntk is None else ntk[rsl],
            p1 - p0, symmetric, threads, **extra,
        )
        bar.advance(_panel_pairs(p0, p1, n1, n2, symmetric))


def _panel_pairs(p0: int, p1: int, n1: int, n2: int, symmetric: bool) -> int:
    r = p1 - p0
    return r * (n1 - p0) - r * (r - 1) // 2 if symmetric else r * n2
