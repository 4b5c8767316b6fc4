"""Closed-form-free references for the activations of issue 17's step 2.

Each activation here has the ``T(q, q', c)`` / ``Tdot(q, q', c)`` interface of
``fc.Activation`` (so ``fc.graph_kernels`` and ``fc.kernel_recursion`` run it), computed
without the closed forms ntkx uses:

* smooth activations (Gelu, Sin, Rbf, Exp, Gaussian, Monomial, Polynomial, Hermite): 2-D
  Gauss-Hermite quadrature of the literal numpy ``phi`` and ``phi'``
  (``duals.dual_quadrature``), exact for polynomials and at round-off level for these
  entire functions at the moderate variances the tests use;
* positively homogeneous non-smooth ones (Sign, the rectified monomials): in polar
  coordinates, ``E[f(u) g(v)] = E[R^(2n)] (1/2pi) int f(l11 cos a) g(l21 cos a + l22 sin a) da``
  with ``E[R^(2n)] = 2^n n!`` for z = R (cos a, sin a) ~ N(0, I_2), a 1-D integral split at
  the kinks (scipy's adaptive ``quad``);
* neural-tangents' kernel maps with no finite network or a stated input convention
  (ExpNormalized, and Hermite's K^n), as the literal formulas of its documentation.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.polynomial import hermite_e
from scipy import integrate, special

from reference.duals import dual_quadrature

ArrayFn = Callable[[np.ndarray], np.ndarray]

#: Gauss-Hermite nodes per axis for the smooth activations.
NODES = 200


class Quadrature:
    """T and Tdot of a smooth `phi` by 2-D Gauss-Hermite quadrature."""

    def __init__(self, phi: ArrayFn, dphi: ArrayFn, n: int = NODES):
        self.phi, self.dphi, self.n = phi, dphi, n

    def T(self, q: float, qp: float, c: float) -> float:
        return dual_quadrature(self.phi, q, qp, c, n=self.n)

    def Tdot(self, q: float, qp: float, c: float) -> float:
        return dual_quadrature(self.dphi, q, qp, c, n=self.n)


class Polar:
    """T and Tdot of a positively homogeneous `phi` of degree `degree` (phi' of degree - 1)."""

    def __init__(self, phi: Callable[[float], float], dphi: Callable[[float], float], degree: int):
        self.phi, self.dphi, self.degree = phi, dphi, degree

    @staticmethod
    def _expect(f: Callable[[float], float], n: int, q: float, qp: float, c: float) -> float:
        if q == 0.0 or qp == 0.0:
            return f(0.0) * f(0.0) if n == 0 else 0.0
        # unit variances and the scale (q q')^(n/2) apart, so an identical pair (c = q = q') has
        # rho = 1 and l22 = 0 exactly (a Cholesky factor would leave l22 ~ 1e-8 from rounding)
        rho = max(-1.0, min(1.0, c / math.sqrt(q * qp)))
        l11, l21, l22 = 1.0, rho, math.sqrt(max(0.0, (1.0 - rho) * (1.0 + rho)))
        # kinks: cos a = 0 and l21 cos a + l22 sin a = 0
        pts = sorted({math.pi / 2, 3 * math.pi / 2} | {(math.atan2(-l21, l22) + k * math.pi) % (2 * math.pi)
                                                       for k in range(2)})
        g = lambda a: f(l11 * math.cos(a)) * f(l21 * math.cos(a) + l22 * math.sin(a))
        edges = [0.0] + [p for p in pts if 0.0 < p < 2 * math.pi] + [2 * math.pi]
        tot = sum(integrate.quad(g, lo, hi, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
                  for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo)
        return tot / (2 * math.pi) * 2.0 ** n * math.factorial(n) * (q * qp) ** (n / 2)

    def T(self, q, qp, c):
        return self._expect(self.phi, self.degree, q, qp, c)

    def Tdot(self, q, qp, c):
        return self._expect(self.dphi, self.degree - 1, q, qp, c) if self.degree > 0 else 0.0


def gelu() -> Quadrature:
    phi = lambda x: 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0)))
    dphi = lambda x: 0.5 * (1.0 + special.erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return Quadrature(phi, dphi)


def sin(a: float, b: float, c: float) -> Quadrature:
    return Quadrature(lambda x: a * np.sin(b * x + c), lambda x: a * b * np.cos(b * x + c))


def rbf(gamma: float) -> Quadrature:
    w = math.sqrt(2 * gamma)
    return Quadrature(lambda x: math.sqrt(2) * np.sin(w * x + math.pi / 4),
                      lambda x: math.sqrt(2) * w * np.cos(w * x + math.pi / 4))


def exp(a: float, b: float) -> Quadrature:
    return Quadrature(lambda x: a * np.exp(b * x), lambda x: a * b * np.exp(b * x))


def gaussian(a: float, b: float) -> Quadrature:
    return Quadrature(lambda x: a * np.exp(b * x * x), lambda x: 2 * a * b * x * np.exp(b * x * x))


def monomial(n: int) -> Quadrature:
    return Quadrature(lambda x: x ** n, lambda x: n * x ** (n - 1) if n > 0 else 0.0 * x, n=max(n + 2, 8))


def polynomial(coef) -> Quadrature:
    c = np.asarray(coef, dtype=np.float64)
    dc = np.polynomial.polynomial.polyder(c) if len(c) > 1 else np.zeros(1)
    return Quadrature(lambda x: np.polynomial.polynomial.polyval(x, c),
                      lambda x: np.polynomial.polynomial.polyval(x, dc), n=max(len(c) + 2, 8))


def hermite_function(n: int) -> Quadrature:
    """He_n / sqrt(n!) by quadrature: its true duals (rho^n, n rho^(n-1) at unit variances)."""
    unit = np.eye(n + 1)[n]
    norm = math.sqrt(math.factorial(n))
    d = hermite_e.hermeder(unit) if n > 0 else np.zeros(1)
    return Quadrature(lambda x: hermite_e.hermeval(x, unit) / norm, lambda x: hermite_e.hermeval(x, d) / norm,
                      n=max(n + 2, 8))


def sign() -> Polar:
    return Polar(lambda x: float(np.sign(x)), lambda x: 0.0, 0)


def rectified_monomial(n: int) -> Polar:
    return Polar(lambda x: max(x, 0.0) ** n, lambda x: n * max(x, 0.0) ** (n - 1), n)


class HermiteNT:
    """neural-tangents' Hermite(n) kernel map: K' = K^n, Theta' = n K^(n-1) Theta."""

    def __init__(self, n: int):
        self.n = n

    def T(self, q, qp, c):
        return c ** self.n

    def Tdot(self, q, qp, c):
        return self.n * c ** (self.n - 1) if self.n > 0 else 0.0


class ExpNormalizedNT:
    """neural-tangents' ExpNormalized(gamma, shift): K' = sqrt(q q') exp(gamma (K / sqrt(q q') + shift)),
    Theta' = gamma exp(gamma (rho + shift)) Theta."""

    def __init__(self, gamma: float, shift: float):
        self.gamma, self.shift = gamma, shift

    def T(self, q, qp, c):
        s = math.sqrt(q * qp)
        return 0.0 if s == 0.0 else s * math.exp(self.gamma * (c / s + self.shift))

    def Tdot(self, q, qp, c):
        s = math.sqrt(q * qp)
        return 0.0 if s == 0.0 else self.gamma * math.exp(self.gamma * (c / s + self.shift))
