"""The neural-tangents-style front end: layers as ``(init_fn, apply_fn, kernel_fn)``.

A neural-tangents user switches by changing one import::

    from ntkx import stax
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu(), stax.Dense(1, W_std=1.5, b_std=0.05))
    k = kernel_fn(x1, x2, ('nngp', 'ntk'))

``init_fn`` / ``apply_fn`` are numpy implementations of the finite network in the
NTK parameterization (weights N(0, 1), scaled by ``W_std / sqrt(fan_in)`` in the
forward pass); ``kernel_fn`` computes the infinite-width kernels with the compiled
backend. Conventions follow neural-tangents (arXiv:1912.02803).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import special

from ntkx._src import validate
from ntkx._src.cntk import _MAX_CONV, CntkSpec, ConvLayer, cntk_kernels
from ntkx._src.fc import Activation, FcSpec, Get, Kernels, fc_kernels

Shape = Tuple[int, ...]
Params = Any


@dataclasses.dataclass(frozen=True)
class DenseOp:
    out_dim: int
    W_std: float
    b_std: Optional[float]


@dataclasses.dataclass(frozen=True)
class ActOp:
    act: Activation
    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]

    def __eq__(self, other: object) -> bool:  # the closed form decides, not the lambdas
        return isinstance(other, ActOp) and other.act == self.act

    def __hash__(self) -> int:
        return hash(self.act)


@dataclasses.dataclass(frozen=True)
class ConvOp:
    out_chan: int
    filt: int
    W_std: float
    b_std: Optional[float]


@dataclasses.dataclass(frozen=True)
class ReadoutOp:
    kind: str  # 'gap' or 'flatten'


@dataclasses.dataclass(frozen=True)
class RepeatOp:
    body: Tuple[Any, ...]
    n: int


SUPPORTED = (
    "ntkx's FC kernels support serial(Dense, [activation, Dense] x L) with every Dense sharing "
    "W_std and b_std and one activation among Relu, LeakyRelu, ABRelu, Abs, Erf, "
    "RectifiedMonomial(0|1|2) / ArcCosine(0|1|2), repeated with stax.repeat or listed"
)


SUPPORTED_CNN = (
    "ntkx's CNTK supports serial(Conv, [activation, Conv] ..., [activation], GlobalAvgPool() | Flatten(), "
    "Dense) with SAME padding, stride 1, odd square filters, one activation among Relu, LeakyRelu, ABRelu, "
    "Abs, Erf, RectifiedMonomial(0|1|2), any W_std / b_std per conv layer and at most 128 conv layers"
)


class Layer(tuple):
    """``(init_fn, apply_fn, kernel_fn)`` plus the layer description `ops`."""

    ops: Tuple[Any, ...]

    def __new__(cls, ops: Sequence[Any]) -> "Layer":
        ops = tuple(ops)
        self = super().__new__(cls, (_init_fn(ops), _apply_fn(ops), _kernel_fn(ops)))
        self.ops = ops
        return self


# ----------------------------------------------------------------------------- layers


def _only(name: str, value: Any, allowed: Sequence[Any], layer: str) -> None:
    """Refuses a neural-tangents argument ntkx accepts only at the listed values."""
    if not any(value == a for a in allowed):
        raise NotImplementedError(f"{layer}({name}={value!r}): ntkx supports {name}={allowed[0]!r} only")


def Dense(out_dim: int, W_std: float = 1.0, b_std: Optional[float] = None, batch_axis: int = 0,
          channel_axis: int = -1, parameterization: str = "ntk", s: Tuple[int, int] = (1, 1)) -> Layer:
    """Fully-connected layer ``W_std / sqrt(fan_in) * x W + b_std * b`` (NTK parameterization).

    The signature is neural-tangents' ``stax.Dense``.

    Args:
      out_dim: width of the finite network (irrelevant to the infinite-width kernel).
      W_std: weight standard deviation.
      b_std: bias standard deviation; ``None`` means no bias.
      batch_axis, channel_axis: only the defaults 0 and -1 (inputs `(N, d)`).
      parameterization: only ``'ntk'`` is supported.
      s: neural-tangents' widening factors of the standard parameterization; they do
        not enter the NTK parameterization (ignored there, as in neural-tangents).
    """
    if parameterization != "ntk":
        raise NotImplementedError(f"parameterization={parameterization!r}: ntkx implements 'ntk' only")
    _only("batch_axis", batch_axis, (0,), "Dense")
    _only("channel_axis", channel_axis, (-1, 1), "Dense")
    if not isinstance(out_dim, (int, np.integer)) or out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
    w = validate.check_std(W_std, "W_std")
    b = None if b_std is None else validate.check_std(b_std, "b_std")
    return Layer([DenseOp(int(out_dim), w, b)])


def Conv(out_chan: int, filter_shape: Sequence[int], strides: Optional[Sequence[int]] = None,
         padding: str = "VALID", W_std: float = 1.0, b_std: Optional[float] = None,
         dimension_numbers: Optional[Tuple[str, str, str]] = None, parameterization: str = "ntk",
         s: Tuple[int, int] = (1, 1)) -> Layer:
    """2-D convolution over NHWC images in the NTK parameterization (neural-tangents' ``stax.Conv``).

    The signature and defaults are neural-tangents': `filter_shape` is required and
    `padding` defaults to ``'VALID'``, which ntkx's CNTK does not run yet, so a Conv
    without ``padding='SAME'`` is refused (rather than computed with another padding).
    Weights have variance ``W_std**2 / (q * q * C_in)``. The CNTK backend runs
    stride 1, ``'SAME'`` zero padding and odd square filters ``(q, q)``.

    Args:
      out_chan: channels of the finite network (irrelevant to the infinite-width kernel).
      filter_shape: ``(q, q)`` with q odd.
      strides: ``None`` or ``(1, 1)``.
      padding: ``'SAME'`` (neural-tangents' default ``'VALID'`` is refused).
      W_std: weight standard deviation.
      b_std: bias standard deviation; ``None`` means no bias.
      dimension_numbers: ``None`` or ``('NHWC', 'HWIO', 'NHWC')``.
      parameterization: only ``'ntk'``.
      s: standard-parameterization widening factors; ignored under ``'ntk'`` (as in
        neural-tangents).
    """
    if parameterization != "ntk":
        raise NotImplementedError(f"parameterization={parameterization!r}: ntkx implements 'ntk' only")
    if dimension_numbers is not None:
        _only("dimension_numbers", tuple(dimension_numbers), (("NHWC", "HWIO", "NHWC"),), "Conv")
    if not isinstance(out_chan, (int, np.integer)) or out_chan < 1:
        raise ValueError(f"out_chan must be a positive integer, got {out_chan!r}")
    fs = tuple(filter_shape)
    if len(fs) != 2 or fs[0] != fs[1] or not isinstance(fs[0], (int, np.integer)) or fs[0] < 1 or fs[0] % 2 == 0:
        raise NotImplementedError(f"filter_shape={filter_shape!r}: ntkx's CNTK needs odd square filters (q, q)")
    if strides is not None and tuple(strides) != (1, 1):
        raise NotImplementedError(f"strides={strides!r}: ntkx's CNTK supports stride 1 only")
    if str(padding).upper() != "SAME":
        raise NotImplementedError(
            f"Conv(padding={padding!r}): ntkx's CNTK supports padding='SAME' only"
            + (" ('VALID' is neural-tangents' default: pass padding='SAME' explicitly)"
               if str(padding).upper() == "VALID" else ""))
    w = validate.check_std(W_std, "W_std")
    b = None if b_std is None else validate.check_std(b_std, "b_std")
    return Layer([ConvOp(int(out_chan), int(fs[0]), w, b)])


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1) -> Layer:
    """Mean over all spatial positions: ``(N, H, W, C) -> (N, C)`` (neural-tangents'
    signature; only the default axes)."""
    _only("batch_axis", batch_axis, (0,), "GlobalAvgPool")
    _only("channel_axis", channel_axis, (-1, 3), "GlobalAvgPool")
    return Layer([ReadoutOp("gap")])


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0) -> Layer:
    """``(N, H, W, C) -> (N, H W C)`` (the "vanilla" CNTK readout; neural-tangents'
    signature, only the default axes)."""
    _only("batch_axis", batch_axis, (0,), "Flatten")
    _only("batch_axis_out", batch_axis_out, (0,), "Flatten")
    return Layer([ReadoutOp("flatten")])


def _number(x: Any, what: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {x!r}") from None


def ABRelu(a: float, b: float, do_stabilize: bool = False) -> Layer:
    """``a * min(x, 0) + b * max(x, 0)``.

    `do_stabilize` (neural-tangents' option for finite networks) does not change the
    kernel and is accepted for compatibility. `a`, `b` must be finite (see
    `ntkx.Activation`).
    """
    a, b = _number(a, "ABRelu: a"), _number(b, "ABRelu: b")
    act = Activation("abrelu", a, b, 0.0, f"ABRelu({a}, {b})")
    return Layer([ActOp(act, lambda x: np.where(x > 0, b * x, a * x), lambda x: np.where(x > 0, b, a))])


def Relu(do_stabilize: bool = False) -> Layer:
    """``max(x, 0)`` (= ``ABRelu(0, 1)`` = ``ArcCosine(1)``)."""
    return ABRelu(0.0, 1.0)


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> Layer:
    """``max(x, alpha x)`` (= ``ABRelu(alpha, 1)``)."""
    return ABRelu(alpha, 1.0)


def Abs(do_stabilize: bool = False) -> Layer:
    """``|x|`` (= ``ABRelu(-1, 1)``)."""
    return ABRelu(-1.0, 1.0)


def RectifiedMonomial(degree: int) -> Layer:
    """``max(x, 0) ** degree`` for degree 0 (step), 1 (ReLU) or 2 (ReQU): the arc-cosine
    family of Cho & Saul (2009). Degree 0's derivative is taken as 0 (as neural-tangents)."""
    if degree not in (0, 1, 2):
        raise NotImplementedError(f"RectifiedMonomial({degree!r}): ntkx has closed forms for degree 0, 1, 2")
    if degree == 1:
        return Relu()
    if degree == 0:
        act = Activation("arccos0", name="RectifiedMonomial(0)")
        return Layer([ActOp(act, lambda x: (x > 0).astype(x.dtype), lambda x: np.zeros_like(x))])
    act = Activation("arccos2", name="RectifiedMonomial(2)")
    return Layer([ActOp(act, lambda x: np.maximum(x, 0) ** 2, lambda x: 2 * np.maximum(x, 0))])


def ArcCosine(order: int) -> Layer:
    """The arc-cosine activation of order 0, 1 or 2 (= ``RectifiedMonomial(order)``)."""
    return RectifiedMonomial(order)


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``a * erf(b x) + c`` (neural-tangents' ``stax.Erf``); finite parameters (see
    `ntkx.Activation`)."""
    a, b, c = _number(a, "Erf: a"), _number(b, "Erf: b"), _number(c, "Erf: c")
    act = Activation("erf", a, b, c, f"Erf({a}, {b}, {c})")
    return Layer([ActOp(act, lambda x: a * special.erf(b * x) + c,
                        lambda x: a * b * 2.0 / math.sqrt(math.pi) * np.exp(-((b * x) ** 2)))])


def serial(*layers: Layer) -> Layer:
    """Composes layers in sequence (neural-tangents' ``stax.serial``)."""
    ops: List[Any] = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"serial: argument {i} is not an ntkx.stax layer (got {type(layer).__name__})")
        ops.extend(layer.ops)
    return Layer(ops)


def repeat(layer: Layer, n: int) -> Layer:
    """``serial(layer, layer, ..., layer)`` n times, stored compactly (deep nets need not
    build a list of 10^6 layers)."""
    if not isinstance(layer, Layer):
        raise TypeError("repeat: layer must be an ntkx.stax layer")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"repeat: n must be an integer >= 0, got {n!r}")
    return Layer([RepeatOp(layer.ops, int(n))])


# ----------------------------------------------------------------------------- finite network


def _expand(ops: Sequence[Any]):
    """Yields the elementary ops (Dense/activation) of a description, in order."""
    for op in ops:
        if isinstance(op, RepeatOp):
            for _ in range(op.n):
                yield from _expand(op.body)
        else:
            yield op


def _rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _init_fn(ops):
    def init_fn(rng: Any, input_shape: Shape) -> Tuple[Shape, List[Params]]:
        """Draws the finite network's parameters: ``(output_shape, params)``.

        Args:
          rng: a ``numpy.random.Generator`` or a seed.
          input_shape: ``(N, d)``; N may be -1.
        """
        gen = _rng(rng)
        shape = tuple(input_shape)
        params: List[Params] = []
        for op in _expand(ops):
            if isinstance(op, DenseOp):
                w = gen.standard_normal((shape[-1], op.out_dim))
                b = gen.standard_normal(op.out_dim) if op.b_std is not None else None
                params.append((w, b))
                shape = shape[:-1] + (op.out_dim,)
            elif isinstance(op, ConvOp):
                w = gen.standard_normal((op.filt, op.filt, shape[-1], op.out_chan))  # HWIO
                b = gen.standard_normal(op.out_chan) if op.b_std is not None else None
                params.append((w, b))
                shape = shape[:-1] + (op.out_chan,)
            elif isinstance(op, ReadoutOp):
                shape = (shape[0], shape[-1]) if op.kind == "gap" else (shape[0], int(np.prod(shape[1:])))
                params.append(())
            else:
                params.append(())
        return shape, params

    return init_fn


def _apply_fn(ops):
    def apply_fn(params: List[Params], x: Any, **kwargs: Any) -> np.ndarray:
        """The finite network's outputs on `x` (`(N, d)`, or NHWC images) in float64."""
        h = np.asarray(x, dtype=np.float64)
        for op, p in zip(_expand(ops), params):
            if isinstance(op, DenseOp):
                w, b = p
                h = h @ w * (op.W_std / math.sqrt(w.shape[0]))
                if b is not None:
                    h = h + op.b_std * b
            elif isinstance(op, ConvOp):
                w, b = p
                h = conv_same(h, w) * (op.W_std / math.sqrt(w.shape[0] * w.shape[1] * w.shape[2]))
                if b is not None:
                    h = h + op.b_std * b
            elif isinstance(op, ReadoutOp):
                h = h.mean(axis=(1, 2)) if op.kind == "gap" else h.reshape(h.shape[0], -1)
            else:
                h = op.phi(h)
        return h

    return apply_fn


def patches(h: np.ndarray, q: int) -> np.ndarray:
    """SAME zero-padded q x q patches of NHWC `h`: ``(N, H, W, q, q, C)``."""
    r = q // 2
    N, H, W, C = h.shape
    hp = np.zeros((N, H + 2 * r, W + 2 * r, C))
    hp[:, r:r + H, r:r + W] = h
    out = np.empty((N, H, W, q, q, C))
    for a in range(q):
        for b in range(q):
            out[:, :, :, a, b] = hp[:, a:a + H, b:b + W]
    return out


def conv_same(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Stride-1 SAME convolution (cross-correlation) of NHWC `h` with HWIO `w`, unscaled."""
    q = w.shape[0]
    return np.einsum("nijabc,abco->nijo", patches(h, q), w, optimize=True)


def _col2im(g: np.ndarray) -> np.ndarray:
    """The adjoint of `patches`: scatter-adds patch entries back onto the image.

    Args:
      g: `(N, H, W, q, q, *rest)` gradients with respect to ``patches(h, q)``.

    Returns:
      `(N, H, W, *rest)`: the gradient with respect to `h` (padding entries dropped).
    """
    N, H, W, q = g.shape[:4]
    r = q // 2
    hp = np.zeros((N, H + 2 * r, W + 2 * r) + g.shape[5:])
    for a in range(q):
        for b in range(q):
            hp[:, a:a + H, b:b + W] += g[:, :, :, a, b]
    return hp[:, r:r + H, r:r + W]


def _features(op: Any, h: np.ndarray) -> Tuple[np.ndarray, float]:
    """What a Dense or Conv layer multiplies by its weights, and the forward scale.

    Returns `(N, S, F)` rows over S positions (S = 1 for a Dense on `(N, n)`; the
    H W patches of size q q C for a Conv) and ``W_std / sqrt(F)``.
    """
    if isinstance(op, ConvOp):
        f = patches(h, op.filt)
        f = f.reshape(h.shape[0], h.shape[1] * h.shape[2], -1)
    else:
        f = h.reshape(h.shape[0], -1, h.shape[-1])
    return f, op.W_std / math.sqrt(f.shape[-1])


def _param_gram(f1: np.ndarray, f2: np.ndarray, d1: np.ndarray, d2: np.ndarray, scale: float,
                b_std: Optional[float]) -> np.ndarray:
    """``sum_o <dz_o/dtheta (x1), dz_o/dtheta (x2)>`` over one Dense/Conv layer's parameters.

    The layer computes ``z[s, :] = scale * f[s, :] @ w + b_std * b`` at every position s, so
    the weight term is ``scale^2 sum_{s, s'} <f1[s], f2[s']> <d1[s], d2[s']>`` and the bias
    term ``b_std^2 <sum_s d1[s], sum_s' d2[s']>``, with d the backpropagated output gradients.
    Costs ``(N1 S)(N2 S)(F + n k)`` flops; rows of x1 are processed in chunks so the
    `(rows, S, N2, S)` products stay below 2^24 entries.

    Args:
      f1, f2: `(N1, S, F)`, `(N2, S, F)` layer inputs (patches for a Conv).
      d1, d2: `(N1, S, n, k)`, `(N2, S, n, k)` gradients of the k outputs w.r.t. the layer's output.
      scale: the forward weight scale ``W_std / sqrt(F)``.
      b_std: the bias std, or ``None`` for no bias.

    Returns:
      `(N1, N2)`, summed (not averaged) over the k outputs.
    """
    N1, S, _ = f1.shape
    N2 = f2.shape[0]
    F2 = f2.reshape(N2 * S, -1)
    D2 = d2.reshape(N2 * S, -1)
    out = np.empty((N1, N2))
    rows = max(1, 2**24 // (S * N2 * S))
    for i in range(0, N1, rows):
        g = f1[i:i + rows].reshape(-1, F2.shape[1]) @ F2.T  # (rows S, N2 S)
        g *= d1[i:i + rows].reshape(-1, D2.shape[1]) @ D2.T
        out[i:i + rows] = g.reshape(-1, S, N2, S).sum(axis=(1, 3))
    out *= scale**2
    if b_std is not None:
        s1, s2 = d1.sum(axis=1), d2.sum(axis=1)  # (N, n, k)
        out += b_std**2 * np.einsum("inp,jnp->ij", s1, s2)
    return out


def _backprop(op: Any, w: np.ndarray, scale: float, d: np.ndarray) -> np.ndarray:
    """Gradient w.r.t. a Dense/Conv layer's input from `d`, the gradient w.r.t. its output.

    `d` is `(N, ..., n_out, k)`; the result `(N, ..., n_in, k)`. A Conv's transpose
    maps output gradients to patch gradients ``scale * w @ d`` and scatter-adds them
    onto the image (`_col2im`).
    """
    if isinstance(op, ConvOp):
        return _col2im(np.einsum("abco,nijop->nijabcp", w, d, optimize=True) * scale)
    return np.einsum("io,...op->...ip", w, d, optimize=True) * scale


def empirical_kernels(layer: Layer, params: List[Params], x1: Any, x2: Any = None) -> Kernels:
    """NNGP and NTK of one finite network draw, by hand-written backprop.

    The empirical NTK is ``(1/k) sum_o J_o(x1) J_o(x2)^T`` over the k outputs, with
    ``J_o`` the gradient of output o with respect to all parameters; the empirical
    NNGP is the readout layer's feature kernel ``W_std^2/n h(x1).h(x2) + b_std^2``.
    Both approach the analytic kernels as the width grows (Jacot et al. 2018).

    Works for FC networks ``serial(Dense, act, Dense, ...)`` and conv networks
    ``serial(Conv, act, Conv, ..., [act], GlobalAvgPool() | Flatten(), Dense)``. Per
    Dense/Conv layer the parameter-gradient inner product is `_param_gram`; gradients
    flow back through a Conv by its transpose (`_backprop`), through an activation by
    ``phi'`` of its input, and through GlobalAvgPool by spreading ``1/(H W)`` over the positions.

    Args:
      layer: the network (an ntkx.stax layer ending in Dense).
      params: its parameters, from ``init_fn``.
      x1: `(N1, d)` inputs or `(N1, H, W, C)` NHWC images.
      x2: likewise, or ``None`` (x1 against itself).

    Returns:
      ``Kernels(nngp, ntk)``, each `(N1, N2)`.
    """
    ops = list(_expand(layer.ops))
    if not ops or not isinstance(ops[-1], DenseOp):
        raise NotImplementedError("empirical_kernels: the network must end with a Dense readout layer")
    if len(params) != len(ops):
        raise ValueError(f"empirical_kernels: expected {len(ops)} parameter entries (from init_fn), got {len(params)}")

    def forward(x):
        ins, feats = [], {}  # ins[t]: the input of ops[t]; feats[t]: _features of a Dense/Conv input
        h = x
        for t, (op, p) in enumerate(zip(ops, params)):
            ins.append(h)
            if isinstance(op, (DenseOp, ConvOp)):
                w, b = p
                f, scale = feats[t] = _features(op, h)
                h = (f @ w.reshape(-1, w.shape[-1])).reshape(h.shape[:-1] + (w.shape[-1],)) * scale
                if b is not None:
                    h = h + op.b_std * b
            elif isinstance(op, ReadoutOp):
                h = h.mean(axis=(1, 2)) if op.kind == "gap" else h.reshape(h.shape[0], -1)
            else:
                h = op.phi(h)
        if h.ndim != 2:
            raise NotImplementedError(f"empirical_kernels: the outputs must be (N, k), got shape {h.shape}")
        return ins, feats, h

    xs = [np.asarray(x1, dtype=np.float64)] + ([] if x2 is None else [np.asarray(x2, dtype=np.float64)])
    runs = [forward(x) for x in xs]  # one run when x2 is None: both sides share it
    k = runs[0][2].shape[1]
    # ds[side][..., o] = d f_o / d (output of ops[t]), carried backwards: (N, *shape, k).
    ds = [np.broadcast_to(np.eye(k), (out.shape[0], k, k)) for _, _, out in runs]
    first = min(t for t, op in enumerate(ops) if isinstance(op, (DenseOp, ConvOp)))
    ntk = np.zeros((runs[0][2].shape[0], runs[-1][2].shape[0]))
    for t in range(len(ops) - 1, first - 1, -1):
        op = ops[t]
        if isinstance(op, (DenseOp, ConvOp)):
            w, b = params[t]
            (fa, scale), (fb, _) = runs[0][1][t], runs[-1][1][t]
            da, db = (d.reshape(f.shape[:2] + (w.shape[-1], k)) for d, f in ((ds[0], fa), (ds[-1], fb)))
            ntk += _param_gram(fa, fb, da, db, scale, op.b_std if b is not None else None) / k
            if t > first:
                ds = [_backprop(op, w, scale, d) for d in ds]
        elif isinstance(op, ReadoutOp):
            hs = [ins[t] for ins, _, _ in runs]
            if op.kind == "gap":  # every position receives 1/(H W) of the pooled gradient
                ds = [np.broadcast_to(d[:, None, None] / (h.shape[1] * h.shape[2]), h.shape + (k,))
                      for d, h in zip(ds, hs)]
            else:
                ds = [d.reshape(h.shape + (k,)) for d, h in zip(ds, hs)]
        else:
            ds = [d * op.dphi(ins[t])[..., None] for d, (ins, _, _) in zip(ds, runs)]
    op, (w, b) = ops[-1], params[-1]
    ha, hb = runs[0][0][-1], runs[-1][0][-1]
    nngp = op.W_std**2 / w.shape[0] * (ha @ hb.T) + (op.b_std**2 if b is not None else 0.0)
    return Kernels(nngp, ntk)


# ----------------------------------------------------------------------------- kernel


def compile_fc(ops: Sequence[Any]) -> FcSpec:
    """The FcSpec of a layer description, or NotImplementedError naming what is supported."""
    seq: List[Tuple[Any, int]] = []  # (op, count) runs; repeats of (act, Dense) stay compact

    def walk(items, mult):
        for op in items:
            if isinstance(op, RepeatOp):
                body = list(op.body)
                if len(body) == 2 and isinstance(body[0], ActOp) and isinstance(body[1], DenseOp):
                    seq.append((tuple(body), op.n * mult))
                else:
                    for _ in range(op.n):
                        walk(body, mult)
            else:
                seq.append((op, mult))

    walk(ops, 1)
    flat: List[Tuple[Any, int]] = []  # merge into ((act, dense), count) pairs after the first Dense
    i = 0
    if not seq or not isinstance(seq[0][0], DenseOp) or seq[0][1] != 1:
        raise NotImplementedError(f"the network must start with one Dense layer. {SUPPORTED}")
    first = seq[0][0]
    i = 1
    while i < len(seq):
        op, n = seq[i]
        if isinstance(op, tuple):
            flat.append((op, n))
            i += 1
        elif isinstance(op, ActOp) and i + 1 < len(seq) and isinstance(seq[i + 1][0], DenseOp):
            flat.append(((op, seq[i + 1][0]), n))
            i += 2
        else:
            raise NotImplementedError(f"cannot compile {type(op).__name__} at position {i}. {SUPPORTED}")
    depth = sum(n for _, n in flat)
    if depth == 0:
        return FcSpec(0, first.W_std, first.b_std or 0.0)
    acts = {a.act for (a, _), _ in flat}
    denses = {(d.W_std, d.b_std or 0.0) for (_, d), _ in flat} | {(first.W_std, first.b_std or 0.0)}
    if len(acts) > 1:
        raise NotImplementedError(f"all activations must be the same, got {sorted(a.name for a in acts)}. {SUPPORTED}")
    if len(denses) > 1:
        raise NotImplementedError(f"all Dense layers must share W_std and b_std, got {sorted(denses)}. {SUPPORTED}")
    (w, b), = denses
    return FcSpec(depth, w, b, acts.pop())


def is_cnn(ops: Sequence[Any]) -> bool:
    """Whether a layer description contains convolutions or a spatial readout."""
    return any(isinstance(op, (ConvOp, ReadoutOp)) for op in _expand_shallow(ops))


def _expand_shallow(ops):
    for op in ops:
        if isinstance(op, RepeatOp):
            yield from _expand_shallow(op.body)
        else:
            yield op


def _count(ops: Sequence[Any], kind: type) -> int:
    """How many ops of `kind` a description expands to, without expanding repeats."""
    return sum(op.n * _count(op.body, kind) if isinstance(op, RepeatOp) else isinstance(op, kind) for op in ops)


def compile_cnn(ops: Sequence[Any]) -> CntkSpec:
    """The CntkSpec of a conv network, or NotImplementedError naming what is supported."""
    n_conv = _count(ops, ConvOp)
    if n_conv > _MAX_CONV:  # refused before a repeat is expanded
        raise NotImplementedError(f"the network has {n_conv} conv layers; {SUPPORTED_CNN}")
    seq = list(_expand(ops))
    if not seq or not isinstance(seq[0], ConvOp):
        raise NotImplementedError(f"a conv network must start with Conv. {SUPPORTED_CNN}")
    convs, acts = [seq[0]], []
    i, final_act = 1, False
    while i < len(seq) and not isinstance(seq[i], ReadoutOp):
        op = seq[i]
        if isinstance(op, ActOp) and i + 1 < len(seq) and isinstance(seq[i + 1], ConvOp):
            acts.append(op)
            convs.append(seq[i + 1])
            i += 2
        elif isinstance(op, ActOp) and i + 1 < len(seq) and isinstance(seq[i + 1], ReadoutOp):
            acts.append(op)
            final_act = True
            i += 1
        else:
            raise NotImplementedError(f"cannot compile {type(op).__name__} at position {i}. {SUPPORTED_CNN}")
    if i >= len(seq) or i + 2 != len(seq) or not isinstance(seq[i + 1], DenseOp):
        raise NotImplementedError(f"the conv stack must end with GlobalAvgPool() or Flatten() and one Dense. "
                                  f"{SUPPORTED_CNN}")
    kinds = {a.act for a in acts}
    if len(kinds) > 1:
        raise NotImplementedError(f"all activations must be the same, got {sorted(a.name for a in kinds)}. "
                                  f"{SUPPORTED_CNN}")
    act = kinds.pop() if kinds else Activation("abrelu", 0.0, 1.0, 0.0, "Relu")
    dense = seq[i + 1]
    return CntkSpec(
        tuple(ConvLayer(c.W_std, c.b_std or 0.0, c.filt) for c in convs), act, final_act,
        "gap" if seq[i].kind == "gap" else "vanilla", dense.W_std, dense.b_std or 0.0)


def _kernel_fn(ops):
    def kernel_fn(x1: Any, x2: Any = None, get: Get = None, **kwargs: Any) -> Union[np.ndarray, Kernels]:
        """Infinite-width NNGP/NTK of this network between the inputs `x1` and `x2`.

        Args:
          x1: `(N1, d)` inputs, or `(N1, H, W, C)` images for a conv network.
          x2: likewise, or ``None`` (x1 against itself).
          get: ``'nngp'``, ``'ntk'``, a tuple of them, or ``None`` for both.
          **kwargs: ``device``, ``dtype``, ``out``, ``memory_budget``, ``threads``,
            ``progress`` (see `ntkx.fc_kernels`); conv networks also take
            ``layout='NHWC'|'NCHW'`` (see `ntkx.cntk_kernels`).

        Returns:
          An array for a single `get`, else ``Kernels(nngp, ntk)``.
        """
        if is_cnn(ops):
            return cntk_kernels(x1, x2, compile_cnn(ops), get, **kwargs)
        return fc_kernels(x1, x2, compile_fc(ops), get, **kwargs)

    return kernel_fn
