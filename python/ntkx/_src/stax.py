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

import math
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.polynomial import hermite_e
from scipy import special

from ntkx._src import activations, network, validate
from ntkx._src.activations import Activation, ActivationKind
from ntkx._src.cntk import _MAX_CONV, CntkSpec, CntkStandard, ConvLayer, cntk_kernels
from ntkx._src.fc import FcSpec, Get, Kernel, Kernels, fc_kernels, result
from ntkx._src.fc_program import compile_program
from ntkx._src.network import ActOp, ConvOp, DenseOp, FanInOp, FanOutOp, ParallelOp, ReadoutOp, RepeatOp
from ntkx._src.network import expand as _expand

Shape = Tuple[int, ...]
Params = Any


SUPPORTED = (
    "ntkx's FC kernels support serial / repeat of Dense (any W_std / b_std per layer), Identity, Flatten() "
    "first, FanOut / parallel / FanInSum / FanInConcat, and the activations Relu, LeakyRelu, ABRelu, Abs, Erf, "
    "Sigmoid_like, Gelu, Sin, Cos, Rbf, Exp, Gaussian, ExpNormalized, Sign, Monomial, Hermite, Polynomial and "
    "RectifiedMonomial / ArcCosine (one kind per layer, any mix)"
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


def _parameterization(parameterization: Any, s: Any, layer: str) -> str:
    if parameterization not in network.PARAMETERIZATIONS:
        raise ValueError(f"{layer}(parameterization={parameterization!r}): expected one of "
                         f"{network.PARAMETERIZATIONS}")
    if parameterization == "standard":
        _only("s", tuple(s), ((1, 1),), layer)
    return parameterization


def Dense(out_dim: int, W_std: float = 1.0, b_std: Optional[float] = None, batch_axis: int = 0,
          channel_axis: int = -1, parameterization: str = "ntk", s: Tuple[int, int] = (1, 1)) -> Layer:
    """Fully-connected layer ``W_std / sqrt(fan_in) * x W + b_std * b`` (NTK parameterization),
    or ``x W + b`` with ``W ~ N(0, W_std^2 / fan_in)``, ``b ~ N(0, b_std^2)`` (standard).

    The signature is neural-tangents' ``stax.Dense``.

    Args:
      out_dim: width of the finite network (irrelevant to the infinite-width kernel).
      W_std: weight standard deviation.
      b_std: bias standard deviation; ``None`` means no bias.
      batch_axis, channel_axis: only the defaults 0 and -1 (inputs `(N, d)`).
      parameterization: ``'ntk'`` or ``'standard'``; every entry point runs both. In the
        standard one the NNGP is the same and the NTK is neural-tangents' (Sohl-Dickstein
        et al. 2020) ``Theta' = W_std^2 Theta + n_in K + 1[b_std is not None]``, n_in the
        layer's input width (FC networks; the register program).
      s: neural-tangents' widening factors of the standard parameterization; they do
        not enter the NTK parameterization (ignored there, as in neural-tangents), and
        only ``(1, 1)`` is supported under ``'standard'``.
    """
    par = _parameterization(parameterization, s, "Dense")
    _only("batch_axis", batch_axis, (0,), "Dense")
    _only("channel_axis", channel_axis, (-1, 1), "Dense")
    if not isinstance(out_dim, (int, np.integer)) or out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
    w = validate.check_std(W_std, "W_std")
    b = None if b_std is None else validate.check_std(b_std, "b_std")
    return Layer([DenseOp(int(out_dim), w, b, par)])


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
      parameterization: ``'ntk'`` or ``'standard'`` (weights ``N(0, W_std^2 / (q q C_in))``
        used as they are; ``kernel_fn`` runs ``'ntk'`` only, see `Dense`).
      s: standard-parameterization widening factors; ignored under ``'ntk'`` (as in
        neural-tangents), only ``(1, 1)`` under ``'standard'``.
    """
    par = _parameterization(parameterization, s, "Conv")
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
    return Layer([ConvOp(int(out_chan), int(fs[0]), w, b, par)])


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


def _no_finite_network(name: str) -> Callable[[np.ndarray], np.ndarray]:
    def refuse(x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{name} is a kernel map with no finite network (as in neural-tangents); "
                                  "its kernel_fn works, apply_fn does not")
    return refuse


def _hermite_fns(n: int):
    """He_n(x) / sqrt(n!) and its derivative n He_{n-1}(x) / sqrt(n!)."""
    norm = math.sqrt(math.factorial(n))
    unit = np.zeros(n + 1)
    unit[n] = 1.0
    lower = np.zeros(max(n, 1))
    if n > 0:
        lower[n - 1] = n
    return (lambda x: hermite_e.hermeval(x, unit) / norm,
            lambda x: hermite_e.hermeval(x, lower) / norm if n > 0 else np.zeros_like(x))


def _gelu_fns(approximate: bool):
    """jax.nn.gelu's two forms and their derivatives."""
    if not approximate:
        return (lambda x: 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0))),
                lambda x: 0.5 * (1.0 + special.erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
    c = math.sqrt(2.0 / math.pi)

    def dphi(x):
        t = np.tanh(c * (x + 0.044715 * x ** 3))
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)
    return lambda x: 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x ** 3))), dphi


def _act_layer(act: Activation, fns=None) -> Layer:
    """The layer of a closed-form activation: `act` for the kernels, and its numpy
    ``phi`` and ``phi'`` for the finite network (one switch over the kinds; `fns`
    overrides them where the kernel does not say which function it is, as Gelu's
    approximate form)."""
    if fns is not None:
        return Layer([ActOp(act, *fns)])
    a, b, c = act.a, act.b, act.c
    K = ActivationKind
    if act.kind is K.ABRELU:
        if a == 0:  # ReLU-like: one pass, no temporaries of the negative branch
            return Layer([ActOp(act, lambda x: np.maximum(x, 0) * b if b != 1 else np.maximum(x, 0),
                                lambda x: (x > 0) * b)])
        return Layer([ActOp(act, lambda x: np.where(x > 0, b * x, a * x), lambda x: np.where(x > 0, b, a))])
    if act.kind in (K.ARCCOS0, K.SIGN):  # phi' taken as 0, as neural-tangents does
        phi = (lambda x: (x > 0).astype(x.dtype)) if act.kind is K.ARCCOS0 else np.sign
        return Layer([ActOp(act, phi, lambda x: np.zeros_like(x))])
    if act.kind in (K.ARCCOS2, K.ARCCOSN):
        n = 2 if act.kind is K.ARCCOS2 else int(a)
        return Layer([ActOp(act, lambda x: np.maximum(x, 0) ** n, lambda x: n * np.maximum(x, 0) ** (n - 1))])
    if act.kind is K.MONOMIAL:
        n = int(a)
        return Layer([ActOp(act, lambda x: x ** n, lambda x: n * x ** (n - 1) if n > 0 else np.zeros_like(x))])
    if act.kind is K.HERMITE:
        return Layer([ActOp(act, *_hermite_fns(int(a)))])
    if act.kind is K.EXP_NORMALIZED:
        return Layer([ActOp(act, _no_finite_network("ExpNormalized"), _no_finite_network("ExpNormalized"))])
    if act.kind is K.GELU:
        return Layer([ActOp(act, *_gelu_fns(False))])
    if act.kind is K.SIN:
        return Layer([ActOp(act, lambda x: a * np.sin(b * x + c), lambda x: a * b * np.cos(b * x + c))])
    if act.kind is K.RBF:
        w = math.sqrt(2.0 * a)
        return Layer([ActOp(act, lambda x: math.sqrt(2.0) * np.sin(w * x + math.pi / 4),
                            lambda x: math.sqrt(2.0) * w * np.cos(w * x + math.pi / 4))])
    if act.kind is K.EXP:
        return Layer([ActOp(act, lambda x: a * np.exp(b * x), lambda x: a * b * np.exp(b * x))])
    if act.kind is K.GAUSSIAN:
        return Layer([ActOp(act, lambda x: a * np.exp(b * x * x), lambda x: 2.0 * a * b * x * np.exp(b * x * x))])
    if act.kind is K.POLYNOMIAL:
        co = np.asarray(act.coef)
        dco = np.polynomial.polynomial.polyder(co) if len(co) > 1 else np.zeros(1)
        return Layer([ActOp(act, lambda x: np.polynomial.polynomial.polyval(x, co),
                            lambda x: np.polynomial.polynomial.polyval(x, dco))])
    return Layer([ActOp(act, lambda x: a * special.erf(b * x) + c,
                        lambda x: a * b * 2.0 / math.sqrt(math.pi) * np.exp(-((b * x) ** 2)))])


def ABRelu(a: float, b: float, do_stabilize: bool = False) -> Layer:
    """``a * min(x, 0) + b * max(x, 0)``.

    `do_stabilize` (neural-tangents' option for finite networks) does not change the
    kernel and is accepted for compatibility. `a`, `b` must be finite (see
    `ntkx.Activation`).
    """
    return _act_layer(activations.abrelu(a, b))


def Relu(do_stabilize: bool = False) -> Layer:
    """``max(x, 0)`` (= ``ABRelu(0, 1)`` = ``ArcCosine(1)``)."""
    return ABRelu(0.0, 1.0)


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> Layer:
    """``max(x, alpha x)`` (= ``ABRelu(alpha, 1)``)."""
    return _act_layer(activations.leaky_relu(alpha))


def Abs(do_stabilize: bool = False) -> Layer:
    """``|x|`` (= ``ABRelu(-1, 1)``)."""
    return ABRelu(-1.0, 1.0)


def RectifiedMonomial(degree: int) -> Layer:
    """``max(x, 0) ** degree``, degree 0 to 15: the arc-cosine family of Cho & Saul (2009)
    (degree > 2 by J_n's recursion). Degree 0's derivative is taken as 0 (as neural-tangents)."""
    return _act_layer(activations.rectified_monomial(degree))


def ArcCosine(order: int) -> Layer:
    """The arc-cosine activation of order 0, 1 or 2 (= ``RectifiedMonomial(order)``)."""
    return RectifiedMonomial(order)


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``a * erf(b x) + c`` (neural-tangents' ``stax.Erf``); finite parameters (see
    `ntkx.Activation`)."""
    return _act_layer(activations.erf(a, b, c))


def Polynomial(coef: Sequence[float]) -> Layer:
    """``coef[0] + coef[1] x + ... + coef[n] x^n`` (neural-tangents' ``stax.Polynomial``), n <= 15.
    Its kernel runs in the FC register program (CPU backend)."""
    return _act_layer(activations.polynomial(coef))


def Sigmoid_like() -> Layer:
    """``0.5 erf(x / 2.4020563531719796) + 0.5`` (neural-tangents' ``stax.Sigmoid_like``: an Erf)."""
    return Erf(a=0.5, b=1 / 2.4020563531719796, c=0.5)


def Sign() -> Layer:
    """``sign(x)``; its derivative is taken as 0, so it adds nothing to the NTK (as neural-tangents)."""
    return _act_layer(activations.sign())


def Monomial(degree: int) -> Layer:
    """``x ** degree`` for degree 0 to 15 (neural-tangents has 0 to 5)."""
    return _act_layer(activations.monomial(degree))


def Hermite(degree: int) -> Layer:
    """The normalized Hermite polynomial ``He_n(x) / sqrt(n!)``. As in neural-tangents, the
    kernel is K' = K^n (Theta' = n K^(n-1) Theta), which assumes unit-variance inputs
    (``std(x, axis=channel) == 1``); degree 0 to 15."""
    return _act_layer(activations.hermite(degree))


def ExpNormalized(gamma: float = 1.0, shift: float = -1.0, do_clip: bool = False) -> Layer:
    """neural-tangents' "Gaussian normalized kernel" map: K' = sqrt(q q') exp(gamma (K / sqrt(q q') +
    shift)), Theta' = gamma exp(gamma (rho + shift)) Theta; gamma >= 0. ntkx's correlations are
    always in [-1, 1], so `do_clip` changes nothing. It has no finite network: apply_fn raises
    NotImplementedError (as neural-tangents)."""
    return _act_layer(activations.exp_normalized(gamma, shift))


def Gelu(approximate: bool = False) -> Layer:
    """``x Phi(x)``. `approximate` (jax.nn.gelu's tanh form) only changes the finite
    network's apply_fn, as in neural-tangents; the kernel is the exact Gelu's."""
    act = activations.gelu()
    return _act_layer(act, _gelu_fns(bool(approximate)))


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``a * sin(b x + c)``."""
    return _act_layer(activations.sin(a, b, c))


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``a * cos(b x + c)`` = ``Sin(a, b, c + pi/2)`` (as neural-tangents)."""
    return Sin(a=a, b=b, c=c + math.pi / 2)


def Rbf(gamma: float = 1.0) -> Layer:
    """``sqrt(2) sin(sqrt(2 gamma) x + pi/4)``, whose kernel is K' = exp(-gamma (q + q' - 2K)):
    after a Dense of W_std = 1 on inputs of dimension d, exp(-gamma |x - x'|^2 / d); gamma >= 0."""
    return _act_layer(activations.rbf(gamma))


def Exp(a: float = 1.0, b: float = 1.0) -> Layer:
    """``a * exp(b x)``."""
    return _act_layer(activations.exp(a, b))


def Gaussian(a: float = 1.0, b: float = -1.0) -> Layer:
    """``a * exp(b x^2)``; needs b q < 1/4 on every input variance q (else E[phi^2] is infinite)."""
    return _act_layer(activations.gaussian(a, b))


def Identity() -> Layer:
    """The identity layer (neural-tangents' ``stax.Identity``): no op, no parameters."""
    return Layer([])


def FanOut(num: int) -> Layer:
    """``num`` copies of the input, for `parallel` branches (neural-tangents' ``stax.FanOut``)."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"FanOut: num must be a positive integer, got {num!r}")
    return Layer([FanOutOp(int(num))])


def FanInSum() -> Layer:
    """The sum of a list of inputs (neural-tangents' ``stax.FanInSum``): with `FanOut` and
    `parallel`, a residual connection. Its kernels are the sums of the branches'."""
    return Layer([FanInOp("sum")])


def FanInConcat(axis: int = -1) -> Layer:
    """Concatenation of a list of inputs along `axis` (neural-tangents' ``stax.FanInConcat``).
    Along the channel axis (the only one ntkx's kernels take) the kernel is the
    width-weighted mean of the branches' kernels, and only a Dense may follow."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"FanInConcat: axis must be an integer, got {axis!r}")
    return Layer([FanInOp("concat", int(axis))])


def parallel(*layers: Layer) -> Layer:
    """Layer k applied to input k of a list (neural-tangents' ``stax.parallel``); after
    ``FanOut(len(layers))``, a multi-branch block."""
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"parallel: argument {i} is not an ntkx.stax layer (got {type(layer).__name__})")
    if not layers:
        raise ValueError("parallel needs at least one layer")
    return Layer([ParallelOp(tuple(layer.ops for layer in layers))])


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


def _init_fn(ops):
    def init_fn(rng: Any, input_shape: Shape) -> Tuple[Shape, List[Params]]:
        """Draws the finite network's parameters: ``(output_shape, params)``.

        Args:
          rng: a ``numpy.random.Generator`` or a seed.
          input_shape: ``(N, d)`` or ``(N, H, W, C)``; N may be -1.
        """
        return network.init_params(ops, rng, input_shape)

    return init_fn


def _apply_fn(ops):
    def apply_fn(params: List[Params], x: Any, **kwargs: Any) -> np.ndarray:
        """The finite network's outputs on `x` (`(N, d)`, or NHWC images) in float64."""
        flat = list(_expand(ops))
        x = np.asarray(x, dtype=np.float64)
        # The shapes too: a FanIn of one array, or a parallel of more branches than inputs,
        # would otherwise run (summing rows, zip truncating) instead of raising.
        network.check_params(flat, params, "apply_fn", input_shape=x.shape)
        return network.forward(flat, params, x, keep=False).out

    apply_fn.ntkx_ops = ops  # what ntkx.empirical_kernel_fn differentiates
    return apply_fn


def empirical_kernels(layer: Layer, params: List[Params], x1: Any, x2: Any = None) -> Kernels:
    """NNGP and NTK of one finite network draw, by hand-written backprop.

    The empirical NTK is ``(1/k) sum_o J_o(x1) J_o(x2)^T`` over the k outputs, with
    ``J_o`` the gradient of output o with respect to all parameters (in the layers'
    parameterization); the empirical NNGP is the readout layer's feature kernel
    ``W_std^2/n h(x1).h(x2) + b_std^2``. In the NTK parameterization both approach the
    analytic kernels as the width grows (Jacot et al. 2018); in the standard one the
    NTK grows with the width.

    Works for FC networks ``serial(Dense, act, Dense, ...)`` and conv networks
    ``serial(Conv, act, Conv, ..., [act], GlobalAvgPool() | Flatten(), Dense)``; the
    forward and backward passes are `ntkx._src.network`'s (the same the training loop
    of `ntkx.theory` uses).

    Args:
      layer: the network (an ntkx.stax layer ending in Dense).
      params: its parameters, from ``init_fn``.
      x1: `(N1, d)` inputs or `(N1, H, W, C)` NHWC images.
      x2: likewise, or ``None`` (x1 against itself).

    Returns:
      ``Kernels(nngp, ntk)``, each `(N1, N2)`.
    """
    return network.empirical_kernels(layer.ops, params, x1, x2)


# ----------------------------------------------------------------------------- kernel


def compile_fc_program(ops: Sequence[Any]) -> Tuple[FcSpec, bool, bool]:
    """``(spec, ends_in_activation, flatten_first)`` of an FC network, or NotImplementedError.

    Dense layers may differ in W_std / b_std (the spec then carries per-layer stds);
    a network that ends in an activation is compiled with a virtual last
    ``Dense(W_std=1, b_std=0)``, whose NNGP is the activation's kernel
    ``E[phi phi']`` and whose NTK minus NNGP is the activation's NTK
    (``E[phi' phi'] Theta``); ``Flatten()`` first means images flattened to rows.
    """
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
    flatten_first = bool(seq) and seq[0][1] == 1 and _is_flatten(seq[0][0])
    if flatten_first:
        seq = seq[1:]
    if not seq or not isinstance(seq[0][0], DenseOp) or seq[0][1] != 1:
        raise NotImplementedError(f"the network must start with one Dense layer (after Flatten() on images). "
                                  f"{SUPPORTED}")
    first = seq[0][0]
    flat: List[Tuple[Any, int]] = []  # ((act, dense), count) pairs after the first Dense
    ends_in_act = False
    i = 1
    while i < len(seq):
        op, n = seq[i]
        if isinstance(op, tuple):
            flat.append((op, n))
            i += 1
        elif isinstance(op, ActOp) and i + 1 < len(seq) and isinstance(seq[i + 1][0], DenseOp):
            flat.append(((op, seq[i + 1][0]), n))
            i += 2
        elif isinstance(op, ActOp) and i + 1 == len(seq) and n == 1:
            flat.append(((op, DenseOp(1, 1.0, None, "ntk")), 1))  # the virtual readout
            ends_in_act = True
            i += 1
        else:
            raise NotImplementedError(f"cannot compile {type(op).__name__} at position {i}. {SUPPORTED}")
    depth = sum(n for _, n in flat)
    if depth == 0:
        return FcSpec(0, first.W_std, first.b_std or 0.0), False, flatten_first
    acts = {a.act for (a, _), _ in flat}
    if any(a.kind is ActivationKind.POLYNOMIAL for a in acts):
        raise NotImplementedError("Polynomial runs in the register program")  # _kernels falls back to it
    if len(acts) > 1:
        raise NotImplementedError(f"all activations must be the same, got {sorted(a.name for a in acts)}. {SUPPORTED}")
    runs = [((first.W_std, first.b_std or 0.0), 1)] + [((d.W_std, d.b_std or 0.0), n) for (_, d), n in flat]
    distinct = {wb for wb, _ in runs}
    act = acts.pop()
    if len(distinct) == 1:
        (w, b), = distinct
        return FcSpec(depth, w, b, act), ends_in_act, flatten_first
    if depth > MAX_LAYER_LIST:
        raise NotImplementedError(f"per-layer W_std / b_std are supported up to {MAX_LAYER_LIST} layers, got "
                                  f"{depth}. {SUPPORTED}")
    ws = [wb[0] for wb, n in runs for _ in range(n)]
    bs = [wb[1] for wb, n in runs for _ in range(n)]
    return FcSpec(depth, ws[0], bs[0], act, w_layers=tuple(ws), b_layers=tuple(bs)), ends_in_act, flatten_first


def compile_fc(ops: Sequence[Any]) -> FcSpec:
    """The FcSpec of a layer description ending in Dense on rows, or NotImplementedError."""
    spec, ends_in_act, flatten_first = compile_fc_program(ops)
    if ends_in_act or flatten_first:
        raise NotImplementedError("a network that ends in an activation or starts with Flatten() runs through its "
                                  "kernel_fn only (it is not one FcSpec)")
    return spec


#: Longest network with per-layer W_std / b_std (its stds are one array per call).
MAX_LAYER_LIST = 1_000_000


def _flatten_images(x: Any, name: str) -> np.ndarray:
    """``Flatten()`` first: `(N, ...)` inputs as `(N, prod(...))` rows."""
    a = validate.numeric_array(x, name)
    if a.ndim < 2:
        raise ValueError(f"Flatten() needs {name} of shape (N, ...), got {a.shape}")
    return a.reshape(a.shape[0], -1)


def _activation_readout(x1: Any, x2: Any, spec: FcSpec, get: Get, kwargs: dict) -> Any:
    """The kernels of a network that ends in an activation, from its virtual last
    Dense(1, 0): NNGP = E[phi phi'] = that layer's NNGP, NTK = E[phi' phi'] Theta = its NTK
    minus its NNGP (in place, no third N x N array)."""
    names, single = validate.check_get(get)
    if kwargs.get("out") is not None:
        raise NotImplementedError("out= is not supported for a network that ends in an activation")
    k = fc_kernels(x1, x2, spec, ("nngp", "ntk"), **kwargs)
    np.subtract(k.ntk, k.nngp, out=k.ntk)
    return result({"nngp": k.nngp, "ntk": k.ntk}, names, single)


def _program_kernels(ops: Sequence[Any], x1: Any, x2: Any, get: Get, kwargs: dict) -> Any:
    """Kernels of a general FC composition (per-layer activations, residual branches,
    FanInConcat; `ntkx._src.fc_program`), compiled for the inputs' feature size."""
    if _is_flatten(_first_op(ops)):
        x1 = _flatten_images(x1, "x1")
        x2 = None if x2 is None else _flatten_images(x2, "x2")
        ops = _drop_first_op(ops)
    else:
        x1 = validate.numeric_array(x1, "x1")
        if x1.ndim != 2:
            raise ValueError(f"x1 must be (N, d) rows for an FC network, got shape {x1.shape} (Flatten() first "
                             f"runs an MLP on images)")
    return fc_kernels(x1, x2, compile_program(ops, x1.shape[1]), get, **kwargs)


def _first_op(ops: Sequence[Any]) -> Any:
    """The first elementary op `ops` expands to (repeats of 0, empty bodies skipped), or None."""
    return next(iter(_expand_shallow(ops)), None)


def _drop_first_op(ops: Sequence[Any]) -> List[Any]:
    """`ops` without the first elementary op it expands to (`_first_op`'s), repeats kept
    compact: a repeat holding it becomes its body once without that op, then n - 1 repeats."""
    ops = list(ops)
    for k, head in enumerate(ops):
        if isinstance(head, RepeatOp):
            if head.n == 0 or _first_op(head.body) is None:
                continue  # expands to nothing
            rest = [RepeatOp(head.body, head.n - 1)] if head.n > 1 else []
            return _drop_first_op(head.body) + rest + ops[k + 1:]
        return ops[k + 1:]
    return []


def _is_flatten(op: Any) -> bool:
    return isinstance(op, ReadoutOp) and op.kind == "flatten"


def is_cnn(ops: Sequence[Any]) -> bool:
    """Whether a layer description has convolutions, or a spatial readout that is not a
    leading Flatten() (an MLP on images is an FC network)."""
    shallow = list(_expand_shallow(ops))
    flatten_first = _is_flatten(_first_op(ops))
    return (any(isinstance(op, ConvOp) for op in shallow)
            or (not flatten_first and any(isinstance(op, ReadoutOp) for op in shallow)))


def _expand_shallow(ops):
    """The elementary ops of `ops`, each repeat's body once (a repeat of 0 none)."""
    for op in ops:
        if isinstance(op, RepeatOp):
            if op.n > 0:
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
    act = kinds.pop() if kinds else activations.relu()
    dense = seq[i + 1]
    standard = None
    if any(op.parameterization == "standard" for op in convs + [dense]):
        standard = CntkStandard(tuple(c.parameterization == "standard" for c in convs),
                                tuple(int(c.out_chan) for c in convs), tuple(c.b_std is not None for c in convs),
                                dense.parameterization == "standard", dense.b_std is not None)
    return CntkSpec(
        tuple(ConvLayer(c.W_std, c.b_std or 0.0, c.filt) for c in convs), act, final_act,
        "gap" if seq[i].kind == "gap" else "vanilla", dense.W_std, dense.b_std or 0.0, standard=standard)


#: Rows (images) per call when `kernel_fn`'s ``get=None`` computes the diagonals
#: cov1 / cov2 of a cross kernel: each block against itself, so the extra work is
#: (N1 + N2) x block pairs next to the N1 x N2 of the kernel.
_COV_BLOCK = {"fc": 256, "cnn": 16}


def _kernel_fn(ops):
    def kernel_fn(x1: Any, x2: Any = None, get: Get = None, **kwargs: Any) -> Union[np.ndarray, Kernels, Kernel]:
        """Infinite-width NNGP/NTK of this network between the inputs `x1` and `x2`.

        Args:
          x1: `(N1, d)` inputs, or `(N1, H, W, C)` images for a conv network; any
            array-like (numpy, jax, lists).
          x2: likewise, or ``None`` (x1 against itself).
          get: ``'nngp'``, ``'ntk'``, a tuple of them, or ``None`` for neural-tangents'
            kernel object (`ntkx.Kernel`: nngp, ntk, cov1, cov2, shape1, shape2).
          **kwargs: ``device``, ``dtype``, ``out``, ``memory_budget``, ``threads``,
            ``progress`` (see `ntkx.fc_kernels`); conv networks also take
            ``layout='NHWC'|'NCHW'`` (see `ntkx.cntk_kernels`).

        Returns:
          An array for a single `get`, the kernels as a named tuple in the order of a
          tuple `get`, else an `ntkx.Kernel`. With x2 given, ``get=None`` also computes
          the diagonals cov1 and cov2 (blocks of rows against themselves).
        """
        if get is None:
            return _kernel_object(ops, kernel_fn, x1, x2, kwargs)
        return _kernels(ops, x1, x2, get, kwargs)

    return kernel_fn


def _kernel_object(ops: Sequence[Any], kernel_fn: Any, x1: Any, x2: Any, kwargs: dict) -> Kernel:
    """neural-tangents' ``Kernel`` of `kernel_fn` (get=None): both kernels, the NNGP
    diagonals and the finite network's output shapes."""
    x1 = validate.numeric_array(x1, "x1")
    x2 = None if x2 is None else validate.numeric_array(x2, "x2")
    k = kernel_fn(x1, x2, ("nngp", "ntk"), **kwargs)

    def diag(x: np.ndarray) -> np.ndarray:
        kw = {key: v for key, v in kwargs.items() if key not in ("out", "progress")}
        b = _COV_BLOCK["cnn" if is_cnn(ops) else "fc"]
        return np.concatenate([np.diagonal(np.asarray(kernel_fn(x[i:i + b], None, "nngp", **kw)))
                               for i in range(0, len(x), b)]) if len(x) else np.zeros(0, np.asarray(k.nngp).dtype)

    def out_shape(x: np.ndarray) -> Tuple[int, ...]:
        shape = tuple(x.shape)
        if kwargs.get("layout") == "NCHW" and len(shape) == 4:
            shape = (shape[0], shape[2], shape[3], shape[1])
        return tuple(network.param_shapes(ops, shape)[0])

    cov1 = np.diagonal(k.nngp).copy() if x2 is None else diag(x1)
    cov2 = None if x2 is None else diag(x2)
    shape1 = out_shape(x1)
    return Kernel(k.nngp, k.ntk, cov1, cov2, x2 is None, shape1, shape1 if x2 is None else out_shape(x2))


def _kernels(ops: Sequence[Any], x1: Any, x2: Any, get: Get, kwargs: dict) -> Union[np.ndarray, Kernels]:
    """The kernels `get` names of the network `ops` (what `kernel_fn` computes)."""
    standard = any(isinstance(op, (DenseOp, ConvOp)) and op.parameterization != "ntk" for op in _expand_shallow(ops))
    if is_cnn(ops):
        return cntk_kernels(x1, x2, compile_cnn(ops), get, **kwargs)
    if standard:  # neural-tangents' standard Dense: the register program's DENSE_STD ops
        return _program_kernels(ops, x1, x2, get, kwargs)
    try:
        spec, ends_in_act, flatten_first = compile_fc_program(ops)
    except NotImplementedError:  # not one FcSpec: the general program, or its own error
        return _program_kernels(ops, x1, x2, get, kwargs)
    if flatten_first:
        x1 = _flatten_images(x1, "x1")
        x2 = None if x2 is None else _flatten_images(x2, "x2")
    if not ends_in_act:
        return fc_kernels(x1, x2, spec, get, **kwargs)
    return _activation_readout(x1, x2, spec, get, kwargs)
