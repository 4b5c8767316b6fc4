"""High-precision (mpmath) reference of the fully-connected NNGP / NTK recursion.

Same network and conventions as ``fc.py`` (neural-tangents' NTK
parameterization; Jacot et al. 2018, arXiv:1806.07572; Lee et al. 2019,
arXiv:1902.06720)::

    Sigma^0 = w^2 <x, x'> / d + b^2,            Theta^0 = Sigma^0
    Sigma^l = w^2 T(q, q', c) + b^2,            SigmaDot^l = w^2 Tdot(q, q', c)
    Theta^l = SigmaDot^l Theta^{l-1} + Sigma^l

but every operation is carried out in ``mpmath`` at ``dps`` significant
decimal digits (default 50).  Inputs are converted *exactly* (``mpmath.mpf``
of each float64), so the only errors are the working-precision roundings.
Identical inputs give an angle of exactly 0 (the three covariances are
computed by the same operations, and a correctly rounded binary ``sqrt(q*q)``
is exactly ``q``); the cosine is nevertheless clamped to ``[-1, 1]``.
A float ``w_std`` / ``b_std`` enters as the float64 variance ``fl(w_std**2)``,
exactly like in any float64 implementation (pass a str or mpf to square it
exactly instead).

The dual activations are implemented here a second time, in mpmath and, for
``ABRelu``, in a *different algebraic form* from ``fc.py`` (the form of
Tsuchida et al. 2018, arXiv:1711.09090, also used by neural-tangents)::

    ABRelu:  T    = (a - b)^2 / (2 pi) sqrt(q q') sin(theta)
                    + ((a^2 + b^2) / 2 - (a - b)^2 theta / (2 pi)) c
             Tdot = (a^2 + b^2) / 2 - (a - b)^2 theta / (2 pi)
    arc-cosine order n (Cho & Saul 2009, NIPS 22, "Kernel Methods for Deep
    Learning"):
             T    = (q q')^(n/2) J_n(theta) / (2 pi)
             Tdot = n^2 (q q')^((n-1)/2) J_{n-1}(theta) / (2 pi)   (0 for n = 0)
    Erf(a, b, c) (Williams 1997, "Computing with infinite networks"):
             T    = a^2 (2/pi) arcsin(2 b^2 c12 / sqrt((1 + 2 b^2 q)(1 + 2 b^2 q'))) + c^2
             Tdot = a^2 b^2 (4/pi) / sqrt((1 + 2 b^2 q)(1 + 2 b^2 q') - 4 b^4 c12^2)

so that an algebra slip in one of the two modules shows up as a disagreement.
Zero variances are handled explicitly exactly as in ``fc.py``
(``T = phi(0) E[phi(v)]``, ``Tdot = phi'(0) E[phi'(v)]``).

Speed (pure-Python mpmath backend, i.e. without gmpy2; one core of a
loaded 2-core VM): one layer costs ~25 us for identical inputs (one dual
evaluation) and ~60-120 us for distinct inputs (one full dual evaluation plus
the two diagonal ones).  Measured for one pair with ``depth = 10**5``::

    activation    dps=40 distinct / identical    dps=50 distinct / identical
    relu              8-10 s / 2.9 s                  9 s / 2.9 s
    abs                  8 s / 2.8 s                 10 s / 3.2 s
    erf               9-13 s / 6.1 s                  9 s / 6.1 s
    arccos0              8 s / 3.2 s                  9 s / 3.5 s
    arccos2              6 s / 5.5 s                  6 s / 5.2 s

(Once a bias-driven recursion has converged to ``q == q' == c`` exactly, the
identical-input shortcut applies and a distinct pair becomes as cheap.)
Installing ``gmpy2`` makes mpmath several times faster.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import mpmath
import numpy as np
from mpmath import mp

from .fc import ABRelu, Erf, RectifiedMonomial, as_activation

__all__ = [
    "mp_duals",
    "mp_kernel_recursion",
    "mp_pair_kernels",
    "mp_fc_kernels",
]


def _mpf(v: Any) -> mpmath.mpf:
    """Exact conversion of a float (or int / str / mpf) to ``mpf``."""
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    return mp.mpf(v)


def _J(n: int, theta: mpmath.mpf) -> mpmath.mpf:
    """Cho & Saul (2009) angular function ``J_n``, n in {0, 1, 2}."""
    s, co = mp.sin(theta), mp.cos(theta)
    if n == 0:
        return mp.pi - theta
    if n == 1:
        return s + (mp.pi - theta) * co
    if n == 2:
        return 3 * s * co + (mp.pi - theta) * (1 + 2 * co * co)
    raise ValueError(n)


def _pow_half(prod: mpmath.mpf, n: int) -> mpmath.mpf:
    """``prod^(n/2)`` for a small integer ``n >= 0`` (avoids a slow real power)."""
    r = prod ** (n // 2) if n >= 2 else mp.mpf(1)
    return r * mp.sqrt(prod) if n % 2 else r


def _variance(std: Any) -> mpmath.mpf:
    """Variance from a standard deviation.

    A float (Python or numpy) is squared *in float64* first, so that the
    variance is exactly the ``fl(std**2)`` every float64 implementation
    (``fc.py``, neural-tangents, ntkx) uses; otherwise depth-``L`` results
    would differ by ``~L * 1e-16`` relative merely because of that rounding.
    An int, str or mpf is squared exactly at the working precision.
    """
    if isinstance(std, (float, np.floating)):
        return mp.mpf(float(std) ** 2)
    return _mpf(std) ** 2


def _half_moment(n: int) -> mpmath.mpf:
    """``E[max(z, 0)^n]``, ``z ~ N(0, 1)``: ``2^(n/2) Gamma((n+1)/2) / (2 sqrt(pi))``."""
    return mp.power(2, mp.mpf(n) / 2) * mp.gamma(mp.mpf(n + 1) / 2) / (2 * mp.sqrt(mp.pi))


def _degenerate(f0: mpmath.mpf, mean: Any, q: mpmath.mpf, qp: mpmath.mpf) -> mpmath.mpf:
    """``E[f(u) f(v)]`` when ``u`` or ``v`` is identically 0 (``f0 = f(0)``)."""
    if q == 0 and qp == 0:
        return f0 * f0
    return f0 * mean(qp if q == 0 else q)


class _MpDual:
    """Dual activation evaluator with its constants precomputed at the current precision.

    Must be constructed and used inside the same ``mp.workdps`` context.
    """

    def __init__(self, activation: Any):
        act = as_activation(activation)
        self.act = act
        self.pi = +mp.pi
        self.two_pi = 2 * self.pi
        self.one = mp.mpf(1)
        if isinstance(act, ABRelu):
            self.kind = "abrelu"
            self.a, self.b = _mpf(act.a), _mpf(act.b)
            self.k = (self.a - self.b) ** 2 / self.two_pi
            self.half_sq = (self.a ** 2 + self.b ** 2) / 2
        elif isinstance(act, RectifiedMonomial):
            self.kind = "arccos"
            self.n = act.n
        elif isinstance(act, Erf):
            self.kind = "erf"
            self.a, self.b, self.c = _mpf(act.a), _mpf(act.b), _mpf(act.c)
            self.b2 = self.b ** 2
            self.two_over_pi = 2 / self.pi
            self.a2b2_four_over_pi = self.a ** 2 * self.b2 * 4 / self.pi
        else:
            raise TypeError(f"mp reference does not support activation {act!r}")

    def _clamp(self, x: mpmath.mpf) -> mpmath.mpf:
        one = self.one
        return one if x > one else (-one if x < -one else x)

    def __call__(self, q: mpmath.mpf, qp: mpmath.mpf, c: mpmath.mpf,
                 need_tdot: bool = True) -> Tuple[mpmath.mpf, Optional[mpmath.mpf]]:
        two_pi = self.two_pi

        if self.kind == "abrelu":
            a, b = self.a, self.b
            if q == 0 or qp == 0:
                # phi(0) = 0, E[phi(v)] = (b - a) sqrt(s / 2pi); phi'(0) = E[phi'(v)] = (a + b)/2.
                t = _degenerate(mp.mpf(0), lambda s: (b - a) * mp.sqrt(s / two_pi), q, qp)
                return t, ((a + b) ** 2 / 4 if need_tdot else None)
            root = mp.sqrt(q * qp)
            theta = mp.acos(self._clamp(c / root))
            dot = self.half_sq - self.k * theta
            t = self.k * root * mp.sin(theta) + dot * c
            return t, (dot if need_tdot else None)

        if self.kind == "arccos":
            n = self.n
            if q == 0 or qp == 0:
                # phi(0) = 0 for all n (step convention 1[x > 0] for n = 0).
                t = _degenerate(mp.mpf(0), lambda s: _pow_half(s, n) * _half_moment(n), q, qp)
                if not need_tdot:
                    return t, None
                if n == 0:
                    return t, mp.mpf(0)
                dphi0 = mp.mpf(1) / 2 if n == 1 else mp.mpf(0)
                td = _degenerate(dphi0, lambda s: n * _pow_half(s, n - 1) * _half_moment(n - 1),
                                 q, qp)
                return t, td
            prod = q * qp
            theta = mp.acos(self._clamp(c / mp.sqrt(prod)))
            t = _pow_half(prod, n) * _J(n, theta) / two_pi
            if not need_tdot:
                return t, None
            if n == 0:
                return t, mp.mpf(0)
            return t, n * n * _pow_half(prod, n - 1) * _J(n - 1, theta) / two_pi

        # Erf(a, b, c); valid for zero variances as well.
        b2 = self.b2
        d1, d2 = 1 + 2 * b2 * q, 1 + 2 * b2 * qp
        s = self._clamp(2 * b2 * c / mp.sqrt(d1 * d2))
        t = self.a ** 2 * self.two_over_pi * mp.asin(s) + self.c ** 2
        if not need_tdot:
            return t, None
        return t, self.a2b2_four_over_pi / mp.sqrt(d1 * d2 - 4 * b2 * b2 * c * c)


def mp_duals(activation: Any, q: Any, qp: Any, c: Any, dps: int = 50,
             need_tdot: bool = True) -> Tuple[mpmath.mpf, Optional[mpmath.mpf]]:
    """``(T, Tdot)`` of one covariance triple in high precision.

    Args:
      activation: an ``fc.ABRelu``, ``fc.RectifiedMonomial`` or ``fc.Erf``
        (or a spec accepted by ``fc.as_activation``).
      q: variance of ``u`` (float, str or mpf).
      qp: variance of ``v``.
      c: covariance.
      dps: working precision in decimal digits.
      need_tdot: if False, ``Tdot`` is not computed and ``None`` is returned.

    Returns:
      ``(T, Tdot)`` as mpf (``Tdot`` possibly ``None``).
    """
    with mp.workdps(dps):
        dual = _MpDual(activation)
        t, td = dual(_mpf(q), _mpf(qp), _mpf(c), need_tdot)
        return +t, (None if td is None else +td)


def mp_kernel_recursion(q0: Any, qp0: Any, c0: Any, depth: int, w_std: Any,
                        b_std: Any, activation: Any, dps: int = 50,
                        ntk0: Any = None) -> Tuple[mpmath.mpf, mpmath.mpf]:
    """High-precision recursion for one pair from given first-layer covariances.

    The diagonal variances go through the same (general) dual formulas as the
    off-diagonal covariance, with angle exactly 0.

    Args:
      q0: ``Sigma^0(x, x)``.
      qp0: ``Sigma^0(x', x')``.
      c0: ``Sigma^0(x, x')``.
      depth: number ``L`` of hidden activations.
      w_std: weight std.  A float gives the variance ``fl(w_std**2)`` (the
        float64 square, as in every float64 implementation); an int, str or
        mpf (e.g. ``'1.4142135623730950488'``) is squared exactly.
      b_std: bias std (same conventions as ``w_std``).
      activation: activation spec.
      dps: working precision in decimal digits.
      ntk0: ``Theta^0``; defaults to ``c0``.

    Returns:
      ``(nngp, ntk)`` as mpf at precision ``dps``.
    """
    with mp.workdps(dps):
        dual = _MpDual(activation)
        w2 = _variance(w_std)
        b2 = _variance(b_std)
        q, qp, c = _mpf(q0), _mpf(qp0), _mpf(c0)
        theta = c if ntk0 is None else _mpf(ntk0)
        for _ in range(int(depth)):
            t, tdot = dual(q, qp, c)
            if q == qp == c:            # identical inputs: nothing else to compute
                tq = tqp = t
            else:
                tq = dual(q, q, q, need_tdot=False)[0]
                tqp = tq if qp == q else dual(qp, qp, qp, need_tdot=False)[0]
            c_next = w2 * t + b2
            theta = w2 * tdot * theta + c_next
            q, qp, c = w2 * tq + b2, w2 * tqp + b2, c_next
        return +c, +theta


def mp_pair_kernels(x: np.ndarray, xp: np.ndarray, depth: int, w_std: Any,
                    b_std: Any, activation: Any, dps: int = 50
                    ) -> Tuple[mpmath.mpf, mpmath.mpf]:
    """High-precision NNGP and NTK of one pair of float inputs.

    Every float64 coordinate is converted exactly with ``mpmath.mpf``; the
    dot products are then (for ``dps >= 40``) essentially exact.

    Args:
      x: first input, shape ``(d,)``.
      xp: second input, shape ``(d,)``.
      depth: number ``L`` of hidden activations (``1e5`` takes ~3-13 s, see
        the module docstring).
      w_std: weight std.
      b_std: bias std.
      activation: activation spec.
      dps: working precision in decimal digits.

    Returns:
      ``(nngp, ntk)`` as mpf.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    xp = np.asarray(xp, dtype=np.float64).ravel()
    if x.shape != xp.shape:
        raise ValueError("inputs must have the same dimension")
    with mp.workdps(dps):
        d = len(x)
        w2 = _variance(w_std)
        b2 = _variance(b_std)
        mx = [mp.mpf(float(v)) for v in x]
        mxp = [mp.mpf(float(v)) for v in xp]
        q0 = w2 * mp.fsum(u * u for u in mx) / d + b2
        qp0 = w2 * mp.fsum(u * u for u in mxp) / d + b2
        c0 = w2 * mp.fsum(u * v for u, v in zip(mx, mxp)) / d + b2
        return mp_kernel_recursion(q0, qp0, c0, depth, w_std, b_std, activation, dps=dps)


def mp_fc_kernels(x1: np.ndarray, x2: Optional[np.ndarray], depth: int,
                  w_std: Any, b_std: Any, activation: Any, dps: int = 50
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """High-precision NNGP and NTK matrices, rounded to float64.

    Args:
      x1: inputs, shape ``(n1, d)``.
      x2: inputs, shape ``(n2, d)``, or ``None`` meaning ``x1``.
      depth: number ``L >= 0`` of hidden activations.
      w_std: weight std.
      b_std: bias std.
      activation: activation spec.
      dps: working precision in decimal digits.

    Returns:
      ``(nngp, ntk)`` float64 arrays of shape ``(n1, n2)`` (values outside
      the float64 range over/underflow to ``inf`` / ``0``).
    """
    act = as_activation(activation)
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"expected (n1, d) and (n2, d) inputs, got {x1.shape}, {x2.shape}")
    nngp = np.zeros((x1.shape[0], x2.shape[0]), dtype=np.float64)
    ntk = np.zeros_like(nngp)
    for i in range(x1.shape[0]):
        for j in range(x2.shape[0]):
            k, t = mp_pair_kernels(x1[i], x2[j], depth, w_std, b_std, act, dps=dps)
            nngp[i, j] = float(k)
            ntk[i, j] = float(t)
    return nngp, ntk
