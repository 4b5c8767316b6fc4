"""The convolutional NTK engine: validation, tiling and dispatch.

The math lives in ``csrc/ntkx/math/cntk.h`` (DESIGN.md section 2): every
displacement slice of a pair runs the whole layer recursion in a buffer of at most
P x Q entries, so nothing of size (PQ)^2 is stored. This module checks the images
and their scale and hands the whole matrix to the compiled driver (``ntkx::cntk``)
with the GIL released; the driver splits it into tiles whose per-image diagonal
maps fit ``memory_budget``, reports progress and honours Ctrl-C as it goes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Tuple, Union

import numpy as np

from ntkx._src.activations import CNTK_KINDS, ActivationKind, relu
from ntkx._src.backend import core as _core
from ntkx._src import backend, validate
from ntkx._src.backend import finish_work, float64_work
from ntkx._src.fc import (Activation, Get, Kernels, check_erf_ntk, homogeneous_degree, pow2_normalize, rescale,
                          result)
from ntkx._src.progress import Progress, ProgressArg

#: Default bound on the working memory of one call besides inputs and outputs
#: (per-image diagonal maps and lane-interleaved copies of the images of a tile).
DEFAULT_MEMORY_BUDGET = 512 * 2**20
_MAX_CONV = 128
_LAYOUTS = ("NHWC", "NCHW")


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One SAME-padded, stride-1 convolution with ``filt x filt`` filters."""

    w_std: float = 1.0
    b_std: float = 0.0
    filt: int = 3


@dataclasses.dataclass(frozen=True)
class CntkStandard:
    """What the standard parameterization (neural-tangents' ``parameterization='standard'``)
    adds to a `CntkSpec`: per conv layer whether it is standard, its output channels and
    whether it has a bias (b_std given, even 0); likewise for the readout Dense.

    A standard layer's NTK is ``Theta' = W_std^2 box(Kd Theta) + fan_in box_mean(K) + 1[bias]``
    with fan_in = q^2 C_in; the readout's ``NTK = w_o^2 mean(RT) + n_in mean(R) + 1[bias]``,
    n_in the channels (GAP) or positions x channels (Flatten).
    """

    layers: Tuple[bool, ...]
    chans: Tuple[int, ...]
    biased: Tuple[bool, ...]
    out_standard: bool = False
    out_biased: bool = False


@dataclasses.dataclass(frozen=True)
class CntkSpec:
    """``Conv -> [act -> Conv] ... -> [act] -> readout -> Dense`` (see math/cntk.h).

    Attributes:
      convs: the conv layers in order (at least one, at most 128).
      activation: the activation between conv layers (one for all).
      final_act: whether the activation also follows the last conv.
      readout: ``'gap'`` (GlobalAvgPool -> Dense) or ``'vanilla'`` (Flatten -> Dense).
      out_w_std, out_b_std: the readout Dense's weight and bias std.
      train_first: the first conv layer is trained (``False``: its contribution to
        the NTK is dropped, Arora et al.'s ``fix`` option).
      train_last: the readout Dense is trained (``False``: likewise).
      standard: None (NTK parameterization throughout), or which layers use the standard
        one (`CntkStandard`). Left out of a precompute store's identity when None.
    """

    convs: Tuple[ConvLayer, ...]
    activation: Activation = relu()
    final_act: bool = True
    readout: str = "gap"
    out_w_std: float = 1.0
    out_b_std: float = 0.0
    train_first: bool = True
    train_last: bool = True
    # repr=False: a precompute store records the spec's repr too, and the stores written before
    # this field existed must keep their identity (describe_spec drops it when None).
    standard: Optional[CntkStandard] = dataclasses.field(default=None, repr=False)

    #: Fields a precompute store's identity omits at their default (added after stores existed).
    IDENTITY_OPTIONAL = ("standard",)

    def to_core(self, P: int, Q: int, C: int) -> "_core.CntkParams":
        if not isinstance(self.activation, Activation):
            raise TypeError(f"CntkSpec.activation must be an ntkx.Activation, got {type(self.activation).__name__}")
        if self.activation.kind not in CNTK_KINDS:
            raise NotImplementedError(f"the CNTK has no {self.activation.name or self.activation.kind} (it computes "
                                      "ABRelu / Relu / LeakyRelu / Abs, RectifiedMonomial(0), RectifiedMonomial(2) "
                                      "and Erf; the FC engine has every closed-form activation)")
        if not isinstance(self.convs, (tuple, list)) or not all(isinstance(c, ConvLayer) for c in self.convs):
            raise TypeError("CntkSpec.convs must be a tuple of ntkx.ConvLayer")
        if not self.convs:
            raise ValueError("a CNTK needs at least one conv layer")
        if len(self.convs) > _MAX_CONV:
            raise ValueError(f"ntkx's CNTK supports at most {_MAX_CONV} conv layers, got {len(self.convs)}")
        if self.readout not in ("gap", "vanilla"):
            raise ValueError(f"readout must be 'gap' or 'vanilla', got {self.readout!r}")
        for i, c in enumerate(self.convs):
            if not isinstance(c.filt, (int, np.integer)) or c.filt < 1 or c.filt % 2 == 0:
                raise ValueError(f"conv layer {i}: the filter side must be a positive odd integer, got {c.filt!r}")
        act = self.activation
        kind = act.core_kind()
        return _core.CntkParams(
            P, Q, C,
            [validate.check_std(c.w_std, "W_std") for c in self.convs],
            [validate.check_std(c.b_std, "b_std") for c in self.convs],
            [int(c.filt) for c in self.convs],
            bool(self.final_act), kind, float(act.a), float(act.b), float(act.c),
            _core.Readout.Gap if self.readout == "gap" else _core.Readout.Vanilla,
            validate.check_std(self.out_w_std, "out W_std"), validate.check_std(self.out_b_std, "out b_std"),
            bool(self.train_first), bool(self.train_last), *self._standard_args(P, Q, C),
        )

    def _standard_args(self, P: int, Q: int, C: int) -> tuple:
        """(std_fan_in, std_beta, out_nin, out_beta) of `_core.CntkParams` (empty for NTK)."""
        st = self.standard
        if st is None:
            return ([], [], 0.0, 0.0)
        n = len(self.convs)
        if not (len(st.layers) == len(st.chans) == len(st.biased) == n):
            raise ValueError(f"CntkSpec.standard needs one entry per conv layer ({n})")
        fan_in, beta = [], []
        for i, c in enumerate(self.convs):
            if not st.layers[i]:
                fan_in.append(-1.0), beta.append(0.0)
                continue
            fan_in.append(float(c.filt * c.filt * (C if i == 0 else st.chans[i - 1])))
            beta.append(1.0 if st.biased[i] else 0.0)
        if st.out_standard:
            out_nin = float(st.chans[-1] * (1 if self.readout == "gap" else P * Q))
            out_beta = 1.0 if st.out_biased else 0.0
        else:  # an NTK readout: its term is the NNGP, w_o^2 mean(R) + b_o^2
            out_nin, out_beta = float(self.out_w_std) ** 2, float(self.out_b_std) ** 2
        return (fan_in, beta, out_nin, out_beta)

    def homogeneous_degree(self) -> Optional[int]:
        """e with K(s x, t x') = (s t)^e K(x, x'), or None (see fc.homogeneous_degree)."""
        biased = any(c.b_std for c in self.convs) or bool(self.out_b_std)
        if self.standard is not None:  # a standard layer's bias gradient adds 1 to the NTK, even at b_std = 0
            biased = biased or any(self.standard.biased) or self.standard.out_biased
        return homogeneous_degree(self.activation, len(self.convs) - 1 + (1 if self.final_act else 0), biased)

#: log2 range the CNTK backend's variances must stay in: it forms products of two
#: variances (c^2 against q q'), which must neither overflow nor underflow.
_LOG2_VAR_RANGE = 400.0


def as_images(x: Any, name: str, layout: str = "NHWC") -> np.ndarray:
    """`x` as C-contiguous float64 NHWC images ``(N, P, Q, C)``, or a clear error."""
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    arr = validate.numeric_array(x, name, "an array of images (N, H, W, C)")
    if arr.ndim != 4:
        raise ValueError(
            f"{name} must be 4-D images ({'N, H, W, C' if layout == 'NHWC' else 'N, C, H, W'}), got shape {arr.shape}"
            + ("; add a channel axis, e.g. x[..., None]" if arr.ndim == 3 else ""))
    if layout == "NCHW":
        arr = arr.transpose(0, 2, 3, 1)
    if min(arr.shape) == 0:
        raise ValueError(f"{name} must have at least one image, pixel and channel, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    validate.check_finite(out, name, "; the kernel is undefined there")
    return out


def cntk_kernels(
    x1: Any,
    x2: Any = None,
    spec: Optional[CntkSpec] = None,
    get: Get = None,
    *,
    layout: str = "NHWC",
    device: str = "auto",
    dtype: Any = np.float64,
    out: Any = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    threads: Optional[int] = None,
    progress: ProgressArg = False,
) -> Union[np.ndarray, Kernels]:
    """NNGP and/or NTK of the convolutional network `spec` between two sets of images.

    Args:
      x1: `(N1, H, W, C)` images (or `(N1, C, H, W)` with ``layout='NCHW'``).
      x2: `(N2, H, W, C)` images, or ``None`` for `x1` against itself (each
        unordered pair is computed once; the result is exactly symmetric).
      spec: the architecture (default: one 3 x 3 conv, ReLU, GAP, Dense).
      get: ``'nngp'``, ``'ntk'``, a tuple of both, or ``None`` (both).
      layout: ``'NHWC'`` (neural-tangents' default) or ``'NCHW'``.
      device: ``'auto'`` (CUDA when a device is present), ``'cpu'`` or ``'cuda'``.
      dtype: ``float64`` (default) or ``float32`` outputs; the computation is
        float64 either way.
      out: preallocated `(N1, N2)` outputs (rows contiguous), e.g. numpy memmaps: an
        array when `get` is one name, else a dict ``{'nngp': .., 'ntk': ..}``.
      memory_budget: bytes of working memory for the per-image maps of a tile.
      threads: OpenMP threads (default: all).
      progress: ``True`` for a progress bar on stderr (tqdm), or ``f(done, total)``.

    Returns:
      One `(N1, N2)` array when `get` is a string, else a `Kernels` tuple.
    """
    spec = CntkSpec((ConvLayer(),)) if spec is None else spec
    if not isinstance(spec, CntkSpec):
        raise TypeError(f"spec must be an ntkx.CntkSpec, got {type(spec).__name__}")
    names, single = validate.check_get(get)
    dtype = validate.check_dtype(dtype)
    threads = validate.check_threads(threads)
    progress = validate.check_progress(progress)
    a1 = as_images(x1, "x1", layout)
    symmetric = x2 is None
    a2 = a1 if symmetric else as_images(x2, "x2", layout)
    if a2.shape[1:] != a1.shape[1:]:
        raise ValueError(f"x1 and x2 must have the same image shape, got {a1.shape[1:]} and {a2.shape[1:]}")
    N1, P, Q, C = a1.shape
    N2 = a2.shape[0]
    params = spec.to_core(P, Q, C)
    dev = backend.device(device)
    memory_budget = validate.check_memory_budget(memory_budget)
    outs = backend.outputs(out, names, single, N1, N2, dtype, (a1, a2))
    # Scale: a homogeneous network is computed on images divided by powers of two and
    # the result multiplied back exactly; any other must keep its variances in range.
    degree = spec.homogeneous_degree()
    k1 = k2 = None
    if degree is not None:
        a1, k1 = pow2_normalize(a1)
        a2, k2 = (a1, k1) if symmetric else pow2_normalize(a2)
    a1 = _flush_tiny(a1)
    a2 = a1 if symmetric else _flush_tiny(a2)
    _check_range(spec, params, a1, a2, degree is not None, "ntk" in names)
    work = float64_work(outs, degree is not None and (k1 is not None or k2 is not None))
    nngp, ntk = work.get("nngp"), work.get("ntk")

    # The OpenMP backend works in tiles of rows x columns sized to memory_budget (its
    # per-image maps and lane-interleaved copies) and reports the pairs it finished.
    with Progress("ntkx CNTK", N1 * (N1 + 1) // 2 if symmetric else N1 * N2, progress, unit="pair") as bar:
        _core.cntk(params, a1, a2, nngp, ntk, symmetric, backend.run_options(dev, threads, memory_budget),
                   progress=lambda done: bar.advance(done - bar.done))
    if degree is not None:
        rescale([nngp, ntk], k1, k2, degree)
    finish_work(outs, work)
    return result(outs, names, single)


#: Pixels below 2^-_FLUSH_EXP of their image's largest |pixel| are set to 0: the
#: backend multiplies variances (squares of pixels) by each other, which must stay
#: normal numbers; what such pixels add to a kernel entry is below 2^-150 of it.
_FLUSH_EXP = 150


def _flush_tiny(a: np.ndarray) -> np.ndarray:
    """`a` with each image's pixels below 2^-_FLUSH_EXP of its largest |pixel| zeroed
    (a copy only when there are any)."""
    mag = np.abs(a)
    top = mag.reshape(a.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * (a.ndim - 1))
    tiny = (mag > 0) & (mag < np.ldexp(top, -_FLUSH_EXP))
    return np.where(tiny, 0.0, a) if tiny.any() else a


def _check_range(spec: CntkSpec, params: "_core.CntkParams", a1: np.ndarray, a2: np.ndarray, normalized: bool,
                 want_ntk: bool) -> None:
    """Refuses (ValueError) what the backend cannot compute in float64, rather than
    return overflowed or underflowed nonsense: images beyond 2^+-64 for a network that
    cannot be rescaled exactly (biases or erf), stds whose squares leave float64, and
    variances (the diagonal maps, computed here per chunk of images: O(N P Q L), small
    against the pairs) beyond 2^+-_LOG2_VAR_RANGE; and an erf NTK beyond float64's
    accuracy (check_erf_ntk)."""
    if not normalized:
        top = [np.abs(a).reshape(a.shape[0], -1).max(axis=1) for a in (a1, a2)]
        hi = max(float(t.max()) for t in top)
        lo = min((float(t[t > 0].min()) for t in top if (t > 0).any()), default=0.0)
        if hi > 0 and (math.log2(hi) > 64 or (lo > 0 and math.log2(lo) < -64)):
            raise ValueError(
                f"image magnitudes from {lo:.3g} to {hi:.3g} are outside 2^+-64: networks with biases or erf are "
                f"not scale-homogeneous, so ntkx cannot rescale them exactly; rescale the images")
    for i, c in enumerate(spec.convs):
        for what, v in (("W_std", c.w_std), ("b_std", c.b_std)):
            if v and abs(math.log2(v)) > _LOG2_VAR_RANGE / 2:
                raise ValueError(f"conv layer {i}: {what} = {v!r} is beyond 2^+-{_LOG2_VAR_RANGE / 2:.0f}; its square "
                                 f"times other variances leaves float64's range; rescale it")
    if params.n_act == 0:
        return
    hi, lo = -math.inf, math.inf
    for a in (a1,) if a2 is a1 else (a1, a2):
        for r in range(0, a.shape[0], 256):
            q = _core.cntk_maps(params, a[r:r + 256])[:, :, 0, :]  # (n, stages, P Q)
            if not np.isfinite(q).all():
                raise ValueError("the CNTK's variances overflow float64 (from W_std, b_std and the image scale); "
                                 "rescale W_std or the images")
            pos = q[q > 0]
            if pos.size:
                hi, lo = max(hi, math.log2(float(pos.max()))), min(lo, math.log2(float(pos.min())))
    if hi > _LOG2_VAR_RANGE or lo < -_LOG2_VAR_RANGE:
        raise ValueError(
            f"the CNTK's variances range over 2^{lo:.0f} .. 2^{hi:.0f} (from W_std, b_std and the images): beyond "
            f"2^+-{_LOG2_VAR_RANGE:.0f}, products of two variances leave float64's range; rescale W_std or the images")
    if want_ntk and spec.activation.kind == ActivationKind.ERF and hi > -math.inf:
        check_erf_ntk(spec.activation, [hi])


def arora_cntk(
    x1: Any,
    x2: Any = None,
    depth: int = 3,
    readout: str = "gap",
    *,
    fix: bool = False,
    filter_size: int = 3,
    layout: str = "NHWC",
    **kwargs: Any,
) -> np.ndarray:
    """The CNTK exactly as Arora et al. (2019) define it, for comparing with their paper and code.

    Arora et al. ("On exact computation with an infinitely wide neural net",
    arXiv:1904.11955) use bias-free ReLU with ``c_sigma = 2``, an unnormalised first
    layer (``Sigma^(0) = sum_c patch_sum(x_c x'_c)``), patch sums instead of means and
    the readouts ``trace`` (vanilla) and ``mean`` (GAP); "depth" counts the conv
    layers plus one. Their value equals neural-tangents' NTK of::

        Conv(W_std=1) -> Relu -> [Conv(W_std=sqrt 2) -> Relu] x (depth - 2)
            -> Flatten | GlobalAvgPool -> Dense(W_std=sqrt 2)

    (all bias-free, q x q SAME filters) times ``C * P * Q`` (vanilla) or ``C`` (GAP),
    which is how it is computed here; the constant is derived in DESIGN.md section 2
    and tested against a literal transcription of their formulas.

    Args:
      x1: `(N1, H, W, C)` images (``layout='NCHW'`` for channels first, as their code).
      x2: images or ``None`` (x1 against itself).
      depth: their ``d`` >= 2 (``d - 1`` conv layers); 21 in their CIFAR-10 runs.
      readout: ``'gap'`` (CNTK-GAP) or ``'vanilla'`` (CNTK-V).
      fix: their ``--fix`` option: first and last layer not trained (their code's
        default is ``fix=yes``; the paper's formula is ``fix=False``).
      filter_size: q (3 in their code).
      **kwargs: ``device``, ``dtype``, ``out``, ``threads``, ``progress`` as for
        `cntk_kernels`.

    Returns:
      The `(N1, N2)` NTK in Arora et al.'s scale.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"depth (Arora et al.'s d = conv layers + 1) must be an integer >= 2, got {depth!r}")
    if readout not in ("gap", "vanilla"):
        raise ValueError(f"readout must be 'gap' or 'vanilla', got {readout!r}")
    s2 = float(np.sqrt(2.0))
    convs = (ConvLayer(1.0, 0.0, filter_size),) + (ConvLayer(s2, 0.0, filter_size),) * (int(depth) - 2)
    spec = CntkSpec(convs, final_act=True, readout=readout, out_w_std=s2, train_first=not fix, train_last=not fix)
    a1 = as_images(x1, "x1", layout)
    _, P, Q, C = a1.shape
    ntk = cntk_kernels(a1, None if x2 is None else as_images(x2, "x2", layout), spec, "ntk", **kwargs)
    ntk *= C * (P * Q if readout == "vanilla" else 1)
    return ntk
