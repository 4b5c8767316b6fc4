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
from ntkx._src.cntk import CntkSpec, ConvLayer, cntk_kernels
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


def Dense(out_dim: int, W_std: float = 1.0, b_std: Optional[float] = None, parameterization: str = "ntk") -> Layer:
    """Fully-connected layer ``W_std / sqrt(fan_in) * x W + b_std * b`` (NTK parameterization).

    Args:
      out_dim: width of the finite network (irrelevant to the infinite-width kernel).
      W_std: weight standard deviation.
      b_std: bias standard deviation; ``None`` means no bias.
      parameterization: only ``'ntk'`` is supported.
    """
    if parameterization != "ntk":
        raise NotImplementedError(f"parameterization={parameterization!r}: ntkx implements 'ntk' only")
    if not isinstance(out_dim, (int, np.integer)) or out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
    w = validate.check_std(W_std, "W_std")
    b = None if b_std is None else validate.check_std(b_std, "b_std")
    return Layer([DenseOp(int(out_dim), w, b)])


def Conv(out_chan: int, filter_shape: Sequence[int] = (3, 3), strides: Optional[Sequence[int]] = None,
         padding: str = "SAME", W_std: float = 1.0, b_std: Optional[float] = None,
         parameterization: str = "ntk") -> Layer:
    """2-D convolution over NHWC images in the NTK parameterization (neural-tangents' ``stax.Conv``).

    Weights have variance ``W_std**2 / (q * q * C_in)``. The CNTK backend runs
    stride 1, ``'SAME'`` zero padding and odd square filters ``(q, q)``.

    Args:
      out_chan: channels of the finite network (irrelevant to the infinite-width kernel).
      filter_shape: ``(q, q)`` with q odd.
      strides: ``None`` or ``(1, 1)``.
      padding: ``'SAME'``.
      W_std: weight standard deviation.
      b_std: bias standard deviation; ``None`` means no bias.
      parameterization: only ``'ntk'``.
    """
    if parameterization != "ntk":
        raise NotImplementedError(f"parameterization={parameterization!r}: ntkx implements 'ntk' only")
    if not isinstance(out_chan, (int, np.integer)) or out_chan < 1:
        raise ValueError(f"out_chan must be a positive integer, got {out_chan!r}")
    fs = tuple(filter_shape)
    if len(fs) != 2 or fs[0] != fs[1] or not isinstance(fs[0], (int, np.integer)) or fs[0] < 1 or fs[0] % 2 == 0:
        raise NotImplementedError(f"filter_shape={filter_shape!r}: ntkx's CNTK needs odd square filters (q, q)")
    if strides is not None and tuple(strides) != (1, 1):
        raise NotImplementedError(f"strides={strides!r}: ntkx's CNTK supports stride 1 only")
    if str(padding).upper() != "SAME":
        raise NotImplementedError(f"padding={padding!r}: ntkx's CNTK supports 'SAME' only")
    w = validate.check_std(W_std, "W_std")
    b = None if b_std is None else validate.check_std(b_std, "b_std")
    return Layer([ConvOp(int(out_chan), int(fs[0]), w, b)])


def GlobalAvgPool() -> Layer:
    """Mean over all spatial positions: ``(N, H, W, C) -> (N, C)``."""
    return Layer([ReadoutOp("gap")])


def Flatten() -> Layer:
    """``(N, H, W, C) -> (N, H W C)`` (the "vanilla" CNTK readout)."""
    return Layer([ReadoutOp("flatten")])


def ABRelu(a: float, b: float) -> Layer:
    """``a * min(x, 0) + b * max(x, 0)``."""
    a, b = float(a), float(b)
    act = Activation("abrelu", a, b, 0.0, f"ABRelu({a}, {b})")
    return Layer([ActOp(act, lambda x: np.where(x > 0, b * x, a * x), lambda x: np.where(x > 0, b, a))])


def Relu() -> Layer:
    """``max(x, 0)`` (= ``ABRelu(0, 1)`` = ``ArcCosine(1)``)."""
    return ABRelu(0.0, 1.0)


def LeakyRelu(alpha: float) -> Layer:
    """``max(x, alpha x)`` (= ``ABRelu(alpha, 1)``)."""
    return ABRelu(alpha, 1.0)


def Abs() -> Layer:
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
    """``a * erf(b x) + c`` (neural-tangents' ``stax.Erf``)."""
    a, b, c = float(a), float(b), float(c)
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


def empirical_kernels(layer: Layer, params: List[Params], x1: Any, x2: Any = None) -> Kernels:
    """NNGP and NTK of one finite network draw, by hand-written backprop.

    The empirical NTK is ``(1/k) sum_o J_o(x1) J_o(x2)^T`` over the k outputs, with
    ``J_o`` the gradient of output o with respect to all parameters; the empirical
    NNGP is the readout layer's feature kernel ``W_std^2/n h(x1).h(x2) + b_std^2``.
    Both approach the analytic kernels as the width grows (Jacot et al. 2018).
    """
    ops = list(_expand(layer.ops))
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)

    def forward(x):
        hs, zs = [x], []  # hs[l]: input of the l-th Dense; zs[l]: its output
        h = x
        for op, p in zip(ops, params):
            if isinstance(op, DenseOp):
                w, b = p
                z = h @ w * (op.W_std / math.sqrt(w.shape[0])) + (op.b_std * b if b is not None else 0.0)
                zs.append(z)
                h = z
            else:
                h = op.phi(h)
                hs.append(h)
        return hs, zs

    dense = [(op, p) for op, p in zip(ops, params) if isinstance(op, DenseOp)]
    acts = [op for op in ops if isinstance(op, ActOp)]
    h1, z1 = forward(x1)
    h2, z2 = forward(x2)
    k_out = z1[-1].shape[1]
    ntk = np.zeros((x1.shape[0], x2.shape[0]))
    # delta[o] = d f_o / d z_l for every output o: shape (N, n_l, k) carried backwards.
    d1 = np.broadcast_to(np.eye(k_out), (x1.shape[0], k_out, k_out)).copy()
    d2 = np.broadcast_to(np.eye(k_out), (x2.shape[0], k_out, k_out)).copy()
    for l in range(len(dense) - 1, -1, -1):
        op, (w, b) = dense[l]
        n_in = w.shape[0]
        feat = op.W_std**2 / n_in * (h1[l] @ h2[l].T) + (op.b_std**2 if b is not None else 0.0)
        ntk += feat * np.einsum("inp,jnp->ij", d1, d2) / k_out
        if l > 0:
            scale = op.W_std / math.sqrt(n_in)
            d1 = np.einsum("nk,ikp->inp", w, d1) * scale * acts[l - 1].dphi(z1[l - 1])[:, :, None]
            d2 = np.einsum("nk,ikp->inp", w, d2) * scale * acts[l - 1].dphi(z2[l - 1])[:, :, None]
    op, (w, b) = dense[-1]
    nngp = op.W_std**2 / w.shape[0] * (h1[-1] @ h2[-1].T) + (op.b_std**2 if b is not None else 0.0)
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


def compile_cnn(ops: Sequence[Any]) -> CntkSpec:
    """The CntkSpec of a conv network, or NotImplementedError naming what is supported."""
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
