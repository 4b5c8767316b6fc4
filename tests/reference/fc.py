"""Naive, loop-based numpy reference for infinite-width fully-connected kernels.

This module is written to be *obviously* correct rather than fast: every
kernel entry is computed pair by pair with explicit Python loops over the
pairs and over the layers, using the textbook closed forms of the dual
activations.  It exists only to check the real implementation.

Conventions (neural-tangents' NTK parameterization, Jacot et al. 2018,
arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720):

The network is ``Dense -> [phi -> Dense] x L`` (``L = depth >= 0``), every
``Dense`` layer having weight standard deviation ``w`` (weight variance
``w**2 / fan_in``) and bias standard deviation ``b``.  For inputs
``x, x'`` in ``R^d``::

    Sigma^0(x, x') = w**2 * <x, x'> / d + b**2
    Theta^0(x, x') = Sigma^0(x, x')

and for ``l = 1..L``, with ``q = Sigma^{l-1}(x, x)``, ``q' = Sigma^{l-1}(x', x')``
and ``c = Sigma^{l-1}(x, x')``::

    Sigma^l    = w**2 * T(q, q', c) + b**2        T    = E[phi(u)  phi(v)]
    SigmaDot^l = w**2 * Tdot(q, q', c)            Tdot = E[phi'(u) phi'(v)]
    Theta^l    = SigmaDot^l * Theta^{l-1} + Sigma^l

where ``(u, v) ~ N(0, [[q, c], [c, q']])``.  The NNGP kernel is ``Sigma^L`` and
the NTK is ``Theta^L``.

Degenerate inputs: if ``q == 0`` (resp. ``q' == 0``), ``u`` (resp. ``v``) is
identically zero, so ``T = phi(0) * E[phi(v)]`` and
``Tdot = phi'(0) * E[phi'(v)]``.  These cases are handled explicitly (no
``0 / 0``).  With ``b_std == 0`` a zero input vector therefore gives an exactly
zero kernel row for every activation with ``phi(0) == 0``.

Activations are small frozen dataclasses (``ABRelu``, ``RectifiedMonomial``,
``Erf`` and the factories ``Relu``, ``LeakyRelu``, ``Abs``).  Any object with
methods ``T(q, qp, c)`` and ``Tdot(q, qp, c)`` returning floats can be passed
to :func:`fc_kernels` (see ``duals.NumericalActivation``).  Dicts and strings
are accepted too, see :func:`as_activation`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np
from scipy import special

__all__ = [
    "Activation",
    "ABRelu",
    "Relu",
    "LeakyRelu",
    "Abs",
    "RectifiedMonomial",
    "Erf",
    "as_activation",
    "arccos_J",
    "angle",
    "input_covariance",
    "kernel_recursion",
    "pair_kernels",
    "fc_kernels",
]


# ---------------------------------------------------------------------------
# Geometry helpers.
# ---------------------------------------------------------------------------


def angle(q: float, qp: float, c: float) -> float:
    """Angle between two jointly Gaussian variables.

    ``theta = arccos(c / sqrt(q * q'))``, the quantity used by the arc-cosine
    kernels of Cho & Saul (2009), "Kernel Methods for Deep Learning", NIPS 22.

    The cosine is clipped to ``[-1, 1]`` so that round-off (e.g. ``c`` a hair
    larger than ``sqrt(q q')`` for identical inputs) cannot produce a NaN;
    a NaN cosine (overflowed variances) stays NaN.  ``sqrt(q * q')`` is used
    rather than ``sqrt(q) * sqrt(q')`` on purpose: for identical inputs
    (``q == q' == c``) IEEE arithmetic gives ``sqrt(q * q) == q`` exactly, hence
    ``cos(theta) == 1`` and ``theta == 0`` exactly, whereas
    ``sqrt(q) * sqrt(q)`` may be off by one ulp, i.e. ``theta ~ 1e-8``.

    Args:
      q: variance of ``u`` (must be > 0).
      qp: variance of ``v`` (must be > 0).
      c: covariance of ``u`` and ``v``.

    Returns:
      The angle in ``[0, pi]``.
    """
    cos_theta = c / _sqrt_prod(q, qp)
    return math.acos(_clip_unit(cos_theta))


def _sqrt_prod(q: float, qp: float) -> float:
    """``sqrt(q * q')``; falls back to ``sqrt(q) sqrt(q')`` if the product under/overflows."""
    prod = q * qp
    if prod == 0.0 or math.isinf(prod):
        return math.sqrt(q) * math.sqrt(qp)
    return math.sqrt(prod)


def _clip_unit(x: float) -> float:
    """Clip to ``[-1, 1]``, letting NaN (e.g. from overflowed variances) through."""
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return x


def arccos_J(n: int, theta: float) -> float:
    """Angular part ``J_n(theta)`` of the arc-cosine kernel of order ``n``.

    From Cho & Saul (2009), "Kernel Methods for Deep Learning", NIPS 22,
    eq. (4)-(6) (arXiv version: arXiv:1112.3712)::

        J_0(theta) = pi - theta
        J_1(theta) = sin(theta) + (pi - theta) cos(theta)
        J_2(theta) = 3 sin(theta) cos(theta) + (pi - theta) (1 + 2 cos(theta)**2)

    With ``w ~ N(0, I)``, Cho & Saul show
    ``2 E[H(w.x) H(w.y) (w.x)^n (w.y)^n] = (1/pi) |x|^n |y|^n J_n(theta)``,
    i.e. for ``(u, v)`` Gaussian with variances ``q, q'`` and angle ``theta``::

        E[max(u, 0)^n max(v, 0)^n] = (q q')^(n/2) J_n(theta) / (2 pi).

    Args:
      n: order, one of 0, 1, 2.
      theta: angle in ``[0, pi]``.

    Returns:
      ``J_n(theta)``.
    """
    s = math.sin(theta)
    co = math.cos(theta)
    if n == 0:
        return math.pi - theta
    if n == 1:
        return s + (math.pi - theta) * co
    if n == 2:
        return 3.0 * s * co + (math.pi - theta) * (1.0 + 2.0 * co * co)
    raise ValueError(f"arc-cosine order must be 0, 1 or 2, got {n}")


# ---------------------------------------------------------------------------
# Activations.
# ---------------------------------------------------------------------------


class Activation:
    """Base class of the activation specs.

    Subclasses implement the closed forms ``_T`` / ``_Tdot`` valid for
    ``q, q' > 0``, and the one-variable means ``mean_phi(s) = E[phi(v)]``,
    ``mean_dphi(s) = E[phi'(v)]`` for ``v ~ N(0, s)``, which are used for the
    degenerate case of a zero variance.  ``phi`` and ``dphi`` are vectorised
    numpy functions (used by the numerical checks in ``duals.py``).
    """

    name = "activation"

    # -- element-wise functions (numpy, vectorised) --------------------------
    def phi(self, x):
        """Element-wise activation ``phi(x)``."""
        raise NotImplementedError

    def dphi(self, x):
        """Element-wise derivative ``phi'(x)`` (convention at kinks documented)."""
        raise NotImplementedError

    # -- one-variable Gaussian means -----------------------------------------
    def mean_phi(self, s: float) -> float:
        """``E[phi(v)]`` for ``v ~ N(0, s)``."""
        raise NotImplementedError

    def mean_dphi(self, s: float) -> float:
        """``E[phi'(v)]`` for ``v ~ N(0, s)``."""
        raise NotImplementedError

    # -- closed forms for q, q' > 0 ------------------------------------------
    def _T(self, q: float, qp: float, c: float) -> float:
        raise NotImplementedError

    def _Tdot(self, q: float, qp: float, c: float) -> float:
        raise NotImplementedError

    # -- public dual activations ---------------------------------------------
    def T(self, q: float, qp: float, c: float) -> float:
        """Dual activation ``E[phi(u) phi(v)]``, ``(u,v) ~ N(0,[[q,c],[c,q']])``.

        Args:
          q: variance of ``u``.
          qp: variance of ``v``.
          c: covariance of ``u`` and ``v``.

        Returns:
          The expectation as a Python float.
        """
        if q == 0.0 or qp == 0.0:
            return _degenerate(lambda x: float(self.phi(np.float64(x))),
                               self.mean_phi, q, qp)
        return self._T(q, qp, c)

    def Tdot(self, q: float, qp: float, c: float) -> float:
        """Derivative dual ``E[phi'(u) phi'(v)]`` (same arguments as :meth:`T`)."""
        if q == 0.0 or qp == 0.0:
            return _degenerate(lambda x: float(self.dphi(np.float64(x))),
                               self.mean_dphi, q, qp)
        return self._Tdot(q, qp, c)

    def spec(self) -> dict:
        """A plain-dict description, e.g. ``{'name': 'abrelu', 'a': 0, 'b': 1}``."""
        d = {"name": self.name}
        d.update(dataclasses.asdict(self))
        return d


def _degenerate(f: Callable[[float], float], mean_f: Callable[[float], float],
                q: float, qp: float) -> float:
    """``E[f(u) f(v)]`` when at least one of ``u``, ``v`` is identically 0."""
    if q == 0.0 and qp == 0.0:
        return f(0.0) * f(0.0)
    if q == 0.0:
        return f(0.0) * mean_f(qp)
    return mean_f(q) * f(0.0)


@dataclasses.dataclass(frozen=True)
class ABRelu(Activation):
    """``phi(x) = a * min(x, 0) + b * max(x, 0)`` (neural-tangents ``stax.ABRelu``).

    Writing ``phi(x) = b relu(x) - a relu(-x)`` and using the order-1 and
    order-0 arc-cosine kernels (Cho & Saul 2009) with the fact that
    ``(u, -v)`` has angle ``pi - theta``::

        T    = sqrt(q q') / (2 pi) * [(a^2 + b^2) J_1(theta) - 2 a b J_1(pi - theta)]
        Tdot = 1 / (2 pi)          * [(a^2 + b^2) J_0(theta) + 2 a b J_0(pi - theta)]

    (cf. Tsuchida et al. 2018, arXiv:1711.09090, for the leaky ReLU case).

    ``phi'(0)`` is taken as ``(a + b) / 2``; this only matters for zero-variance
    inputs and matches neural-tangents (which uses ``theta = pi / 2`` there).
    """

    a: float
    b: float
    name = "abrelu"

    def phi(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.a * np.minimum(x, 0.0) + self.b * np.maximum(x, 0.0)

    def dphi(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.where(x > 0, self.b, np.where(x < 0, self.a, 0.5 * (self.a + self.b)))

    def mean_phi(self, s):
        # E[b relu(v) - a relu(-v)] = (b - a) sqrt(s) / sqrt(2 pi).
        return (self.b - self.a) * math.sqrt(s) / math.sqrt(2.0 * math.pi)

    def mean_dphi(self, s):
        # P(v > 0) = P(v < 0) = 1/2 for s > 0; phi'(0) = (a + b)/2 for s == 0.
        return 0.5 * (self.a + self.b)

    def _T(self, q, qp, c):
        a, b = self.a, self.b
        theta = angle(q, qp, c)
        return _sqrt_prod(q, qp) / (2.0 * math.pi) * (
            (a * a + b * b) * arccos_J(1, theta)
            - 2.0 * a * b * arccos_J(1, math.pi - theta))

    def _Tdot(self, q, qp, c):
        a, b = self.a, self.b
        theta = angle(q, qp, c)
        return 1.0 / (2.0 * math.pi) * (
            (a * a + b * b) * arccos_J(0, theta)
            + 2.0 * a * b * arccos_J(0, math.pi - theta))


def Relu() -> ABRelu:
    """ReLU, ``ABRelu(0, 1)``."""
    return ABRelu(0.0, 1.0)


def LeakyRelu(alpha: float) -> ABRelu:
    """Leaky ReLU ``alpha * min(x, 0) + max(x, 0)``, i.e. ``ABRelu(alpha, 1)``."""
    return ABRelu(float(alpha), 1.0)


def Abs() -> ABRelu:
    """Absolute value, ``ABRelu(-1, 1)``."""
    return ABRelu(-1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class RectifiedMonomial(Activation):
    """Arc-cosine activation of order ``n``: ``phi(x) = max(x, 0)^n``, n in {0,1,2}.

    For ``n = 0`` this is the step function ``1[x > 0]`` (so ``phi(0) = 0``;
    note that neural-tangents' ``stax.RectifiedMonomial`` uses ``x >= 0``,
    which only differs for zero-variance inputs).

    Closed forms (Cho & Saul 2009, see :func:`arccos_J`)::

        T    = (q q')^(n/2) J_n(theta) / (2 pi)
        Tdot = n^2 (q q')^((n-1)/2) J_{n-1}(theta) / (2 pi)     (n >= 1)
        Tdot = 0                                                 (n = 0)

    using ``phi'(x) = n max(x, 0)^(n-1)``.  For ``n = 0`` the derivative is zero
    almost everywhere, hence ``Tdot = 0`` (neural-tangents 0.6.5 does the same:
    its kernel sets the post-activation NTK to zeros for degree 0).
    For ``n = 1``, ``phi'(0)`` is taken as ``1/2`` (consistent with ``ABRelu``).
    """

    n: int
    name = "rectified_monomial"

    def __post_init__(self):
        if self.n not in (0, 1, 2):
            raise ValueError(f"RectifiedMonomial order must be 0, 1 or 2, got {self.n}")

    def phi(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.n == 0:
            return (x > 0).astype(np.float64)
        return np.maximum(x, 0.0) ** self.n

    def dphi(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.n == 0:
            return np.zeros_like(x)
        if self.n == 1:
            return np.where(x > 0, 1.0, np.where(x < 0, 0.0, 0.5))
        return 2.0 * np.maximum(x, 0.0)

    @staticmethod
    def _half_moment(n: int) -> float:
        """``E[max(z, 0)^n]`` for ``z ~ N(0, 1)``: ``2^(n/2) Gamma((n+1)/2) / (2 sqrt(pi))``."""
        return 2.0 ** (n / 2.0) * math.gamma((n + 1) / 2.0) / (2.0 * math.sqrt(math.pi))

    def mean_phi(self, s):
        if s == 0.0:
            return float(self.phi(0.0))
        return s ** (self.n / 2.0) * self._half_moment(self.n)

    def mean_dphi(self, s):
        if self.n == 0:
            return 0.0
        if s == 0.0:
            return float(self.dphi(0.0))
        return self.n * s ** ((self.n - 1) / 2.0) * self._half_moment(self.n - 1)

    def _T(self, q, qp, c):
        n = self.n
        theta = angle(q, qp, c)
        return (q * qp) ** (n / 2.0) * arccos_J(n, theta) / (2.0 * math.pi)

    def _Tdot(self, q, qp, c):
        n = self.n
        if n == 0:
            return 0.0
        theta = angle(q, qp, c)
        return n * n * (q * qp) ** ((n - 1) / 2.0) * arccos_J(n - 1, theta) / (2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class Erf(Activation):
    """``phi(x) = a * erf(b * x) + c`` (neural-tangents ``stax.Erf(a=1, b=1, c=0)``).

    Closed form of Williams (1997), "Computing with infinite networks", NIPS 9
    (the arcsin kernel), rescaled::

        T    = a^2 (2/pi) arcsin(2 b^2 c12 / sqrt((1 + 2 b^2 q)(1 + 2 b^2 q'))) + c^2
        Tdot = a^2 b^2 (4/pi) / sqrt((1 + 2 b^2 q)(1 + 2 b^2 q') - 4 b^4 c12^2)

    where ``c12`` is the covariance (the ``+ c^2`` uses ``E[erf(b u)] = 0``).
    Both are valid for zero variances as well.
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0
    name = "erf"

    def phi(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.a * special.erf(self.b * x) + self.c

    def dphi(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.a * self.b * 2.0 / math.sqrt(math.pi) * np.exp(-(self.b * x) ** 2)

    def mean_phi(self, s):
        return self.c

    def mean_dphi(self, s):
        return self.a * self.b * 2.0 / math.sqrt(math.pi) / math.sqrt(1.0 + 2.0 * self.b ** 2 * s)

    def _T(self, q, qp, c12):
        a, b, c = self.a, self.b, self.c
        s = 2.0 * b * b * c12 / math.sqrt((1.0 + 2.0 * b * b * q) * (1.0 + 2.0 * b * b * qp))
        s = _clip_unit(s)
        return a * a * (2.0 / math.pi) * math.asin(s) + c * c

    def _Tdot(self, q, qp, c12):
        a, b = self.a, self.b
        det = (1.0 + 2.0 * b * b * q) * (1.0 + 2.0 * b * b * qp) - 4.0 * b ** 4 * c12 * c12
        return a * a * b * b * (4.0 / math.pi) / math.sqrt(det)


def as_activation(spec: Any) -> Any:
    """Normalise an activation spec.

    Accepted forms:
      * an :class:`Activation` instance, or any object with ``T`` and ``Tdot``
        methods (returned unchanged);
      * a string: ``'relu'``, ``'abs'``, ``'erf'``, ``'step'`` (order-0
        arc-cosine), ``'arccos0'``, ``'arccos1'``, ``'arccos2'``;
      * a dict with key ``'name'`` in ``{'relu', 'leaky_relu', 'abrelu', 'abs',
        'rectified_monomial', 'arccos', 'erf'}`` and the parameters
        (``alpha``; ``a``, ``b``; ``n`` or ``degree``; ``a``, ``b``, ``c``).

    Args:
      spec: the activation description.

    Returns:
      An activation object with ``T`` / ``Tdot`` methods.
    """
    if hasattr(spec, "T") and hasattr(spec, "Tdot"):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise TypeError(f"unsupported activation spec {spec!r}")
    d = dict(spec)
    name = d.pop("name").lower().replace("-", "_")
    if name == "relu":
        return Relu()
    if name in ("leaky_relu", "leakyrelu"):
        return LeakyRelu(d.get("alpha", 0.01))
    if name == "abrelu":
        return ABRelu(float(d["a"]), float(d["b"]))
    if name == "abs":
        return Abs()
    if name in ("rectified_monomial", "rectifiedmonomial", "arccos", "arc_cosine"):
        return RectifiedMonomial(int(d.get("n", d.get("degree", 1))))
    if name.startswith("arccos") and name[6:].isdigit():
        return RectifiedMonomial(int(name[6:]))
    if name in ("step", "heaviside"):
        return RectifiedMonomial(0)
    if name == "erf":
        return Erf(float(d.get("a", 1.0)), float(d.get("b", 1.0)), float(d.get("c", 0.0)))
    raise ValueError(f"unknown activation {name!r}")


# ---------------------------------------------------------------------------
# The recursion.
# ---------------------------------------------------------------------------


def input_covariance(x: np.ndarray, xp: np.ndarray, w_std: float, b_std: float) -> float:
    """First-layer covariance ``Sigma^0(x, x') = w^2 <x, x'> / d + b^2``.

    The dot product is accumulated with a plain Python loop.

    Args:
      x: first input, shape ``(d,)``.
      xp: second input, shape ``(d,)``.
      w_std: weight standard deviation ``w``.
      b_std: bias standard deviation ``b``.

    Returns:
      ``Sigma^0(x, x')`` as a float.
    """
    d = len(x)
    dot = 0.0
    for k in range(d):
        dot += float(x[k]) * float(xp[k])
    return w_std ** 2 * dot / d + b_std ** 2


def _at(std: Any, layer: int) -> float:
    """The std of Dense layer `layer`: `std` itself, or its entry when it is a per-layer sequence."""
    return float(std) if np.ndim(std) == 0 else float(std[layer])


def kernel_recursion(q0: float, qp0: float, c0: float, depth: int,
                     w_std: float, b_std: float, activation: Any,
                     ntk0: Optional[float] = None) -> Tuple[float, float]:
    """Run the NNGP / NTK recursion for one pair from given first-layer covariances.

    Implements the NNGP recursion (Lee et al. 2018, arXiv:1711.00165) and the
    NTK recursion (Jacot et al. 2018, arXiv:1806.07572, Thm. 1), in the NTK
    parameterization with biases of Lee et al. 2019, arXiv:1902.06720::

        Sigma^l    = w^2 T(q, q', c) + b^2
        SigmaDot^l = w^2 Tdot(q, q', c)
        Theta^l    = SigmaDot^l Theta^{l-1} + Sigma^l

    where the diagonal variances ``q, q'`` follow their own recursion
    ``q^l = w^2 T(q, q, q) + b^2``.

    Args:
      q0: ``Sigma^0(x, x)``.
      qp0: ``Sigma^0(x', x')``.
      c0: ``Sigma^0(x, x')``.
      depth: number ``L`` of hidden activations.
      w_std: weight standard deviation.
      b_std: bias standard deviation.
      activation: activation spec (see :func:`as_activation`).
      ntk0: ``Theta^0(x, x')``; defaults to ``c0``.

    Returns:
      ``(Sigma^L(x, x'), Theta^L(x, x'))``.
    """
    act = as_activation(activation)
    q, qp, c = float(q0), float(qp0), float(c0)
    theta = c if ntk0 is None else float(ntk0)
    for layer in range(1, int(depth) + 1):
        w2 = _at(w_std, layer) ** 2
        b2 = _at(b_std, layer) ** 2
        t = act.T(q, qp, c)
        tdot = act.Tdot(q, qp, c)
        q_next = w2 * act.T(q, q, q) + b2
        qp_next = w2 * act.T(qp, qp, qp) + b2
        c_next = w2 * t + b2
        sigma_dot = w2 * tdot
        theta = sigma_dot * theta + c_next
        q, qp, c = q_next, qp_next, c_next
    return c, theta


def pair_kernels(x: np.ndarray, xp: np.ndarray, depth: int, w_std: float,
                 b_std: float, activation: Any) -> Tuple[float, float]:
    """NNGP and NTK of one pair of inputs.

    Args:
      x: first input, shape ``(d,)``.
      xp: second input, shape ``(d,)``.
      depth: number ``L`` of hidden activations.
      w_std: weight standard deviation.
      b_std: bias standard deviation.
      activation: activation spec (see :func:`as_activation`).

    Returns:
      ``(nngp, ntk)`` as floats.
    """
    w0, b0 = _at(w_std, 0), _at(b_std, 0)
    q0 = input_covariance(x, x, w0, b0)
    qp0 = input_covariance(xp, xp, w0, b0)
    c0 = input_covariance(x, xp, w0, b0)
    return kernel_recursion(q0, qp0, c0, depth, w_std, b_std, activation)


def fc_kernels(x1: np.ndarray, x2: Optional[np.ndarray], depth: int,
               w_std: float, b_std: float, activation: Any
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Infinite-width NNGP and NTK of ``Dense -> [phi -> Dense] x depth``.

    Every entry is computed independently by :func:`pair_kernels` inside an
    explicit double loop over the pairs.

    Args:
      x1: inputs, shape ``(n1, d)``.
      x2: inputs, shape ``(n2, d)``, or ``None`` meaning ``x1``.
      depth: number ``L >= 0`` of hidden activations.
      w_std: weight standard deviation of every Dense layer, or a sequence of
        ``depth + 1`` (one per Dense layer, the first Dense first).
      b_std: bias standard deviation of every Dense layer, or such a sequence.
      activation: activation spec (see :func:`as_activation`).

    Returns:
      ``(nngp, ntk)``, float64 arrays of shape ``(n1, n2)``.
    """
    act = as_activation(activation)
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"expected (n1, d) and (n2, d) inputs, got {x1.shape}, {x2.shape}")
    if depth < 0:
        raise ValueError("depth must be >= 0")
    n1, n2 = x1.shape[0], x2.shape[0]
    nngp = np.zeros((n1, n2), dtype=np.float64)
    ntk = np.zeros((n1, n2), dtype=np.float64)
    for i in range(n1):
        for j in range(n2):
            nngp[i, j], ntk[i, j] = pair_kernels(x1[i], x2[j], depth, w_std, b_std, act)
    return nngp, ntk


# ---------------------------------------------------------------------------
# General compositions (residual branches, per-layer activations).
# ---------------------------------------------------------------------------
#
# A network is a list of ops, written independently of ntkx's stax:
#   ("dense", w_std, b_std, width)  affine layer, NTK parameterization (b_std None: no bias)
#   ("dense", w_std, b_std, width, "standard")  the standard parameterization (neural-tangents'
#                                   Sohl-Dickstein et al. 2020 form: Theta' = w^2 Theta + n_in K + 1[bias],
#                                   n_in the input width)
#   ("act", activation)             an activation spec (see `as_activation`)
#   ("fanout", n)                   n copies of the current value
#   ("parallel", [ops, ops, ...])   one op list per copy
#   ("sum",)                        FanInSum: the kernels add (the branches are independent
#                                   Gaussian processes, neural-tangents' convention)
#   ("concat",)                     FanInConcat on the channel axis: the channel-weighted
#                                   mean of the kernels
# The value of one pair is (q, q', c, theta, width): the two variances, the NNGP
# covariance, the NTK and the channel count.


def _graph_step(op: Any, v: Any) -> Any:
    kind = op[0]
    if kind == "dense":
        _, w, b, width = op[:4]
        q, qp, c, theta, n_in = v
        w2, b2 = float(w) ** 2, 0.0 if b is None else float(b) ** 2
        c_next = w2 * c + b2
        if len(op) == 5 and op[4] == "standard":  # Theta' = w^2 Theta + n_in K + [a bias, even b = 0]
            return (w2 * q + b2, w2 * qp + b2, c_next, w2 * theta + n_in * c + (b is not None), int(width))
        return (w2 * q + b2, w2 * qp + b2, c_next, w2 * theta + c_next, int(width))
    if kind == "act":
        act = as_activation(op[1])
        q, qp, c, theta, width = v
        return (act.T(q, q, q), act.T(qp, qp, qp), act.T(q, qp, c), act.Tdot(q, qp, c) * theta, width)
    if kind == "fanout":
        return [v] * int(op[1])
    if kind == "parallel":
        return [graph_pair_values(branch, vb) for branch, vb in zip(op[1], v)]
    if kind == "sum":
        out = [0.0, 0.0, 0.0, 0.0]
        for vb in v:
            for k in range(4):
                out[k] += vb[k]
        return (out[0], out[1], out[2], out[3], v[0][4])
    if kind == "concat":
        total = sum(vb[4] for vb in v)
        out = [0.0, 0.0, 0.0, 0.0]
        for vb in v:
            for k in range(4):
                out[k] += vb[4] / total * vb[k]
        return (out[0], out[1], out[2], out[3], total)
    raise ValueError(f"unknown op {op!r}")


def graph_pair_values(ops: Sequence[Any], v: Any) -> Any:
    """Run the op list `ops` on one pair's value `v` (see the comment above)."""
    for op in ops:
        v = _graph_step(op, v)
    return v


def graph_kernels(x1: np.ndarray, x2: Optional[np.ndarray], ops: Sequence[Any]
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK of a general FC composition, one pair at a time.

    The input value of a pair is ``(x.x/d, x'.x'/d, x.x'/d, 0, d)``: the raw inputs,
    not Gaussian, with no parameters of their own.
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    d = x1.shape[1]
    nngp = np.zeros((x1.shape[0], x2.shape[0]))
    ntk = np.zeros_like(nngp)
    for i in range(x1.shape[0]):
        for j in range(x2.shape[0]):
            q = input_covariance(x1[i], x1[i], 1.0, 0.0)
            qp = input_covariance(x2[j], x2[j], 1.0, 0.0)
            c = input_covariance(x1[i], x2[j], 1.0, 0.0)
            out = graph_pair_values(ops, (q, qp, c, 0.0, d))
            nngp[i, j], ntk[i, j] = out[2], out[3]
    return nngp, ntk
