"""Numerical (closed-form-free) evaluation of dual activations.

The dual activations used by the kernel recursion are::

    T(q, q', c)    = E[phi(u) phi(v)]
    Tdot(q, q', c) = E[phi'(u) phi'(v)]        (u, v) ~ N(0, [[q, c], [c, q']])

(Daniely et al. 2016, arXiv:1602.05897, call ``T`` the *dual activation*.)
This module evaluates such expectations for an arbitrary numpy function,
independently of the closed forms of ``fc.py``:

* :func:`dual_quadrature`: tensor-product Gauss-Hermite quadrature
  (probabilists' Hermite, ``numpy.polynomial.hermite_e.hermegauss``) in
  whitened coordinates ``(u, v) = L z``, ``z ~ N(0, I_2)``, where ``L`` is the
  lower Cholesky factor of ``[[q, c], [c, q']]``.
* :func:`dual_monte_carlo`: plain Monte Carlo with a seeded
  ``numpy.random.Generator``, same whitening.

Observed accuracy (``q = 1.3, q' = 0.7``, correlations
``rho in {-0.9, -0.3, 0, 0.5, 0.95}``, against the closed forms of ``fc.py``;
errors are absolute and normalised by the Cauchy-Schwarz scale
``sqrt(T(q,q,q) T(q',q',q'))``; reproduce with ``python -m reference.duals``
run from ``tests/``)::

    quadrature, n nodes/axis      n=16      n=64      n=256     n=360
    erf             T            2.6e-4    5.8e-14   1.6e-15   8.6e-16
                    Tdot         1.6e-3    1.6e-12   1.7e-15   7.7e-16
    relu/arccos1    T            1.7e-2    4.1e-3    1.0e-3    7.3e-4
                    Tdot         6.9e-2    2.9e-2    1.2e-2    1.0e-2
    abs             T            3.4e-2    8.3e-3    2.0e-3    1.5e-3
                    Tdot         1.4e-1    5.7e-2    2.5e-2    2.0e-2
    arccos0 (step)  T            6.9e-2    2.9e-2    1.2e-2    1.0e-2
    arccos2         T            3.1e-4    1.7e-5    1.0e-6    5.1e-7
                    Tdot         1.7e-2    4.1e-3    1.0e-3    7.3e-4

* Smooth ``phi`` (``Erf``): exponential convergence, round-off level
  (~1e-15) from ``n ~ 100``.
* Non-smooth ``phi``: the kink / jump at 0 (a line through the tensor grid)
  destroys spectral convergence.  The error decays only like ``O(1/n)`` when
  the integrand is continuous with a kink, i.e. a jump in its first
  derivative (ReLU ``T``, arccos2 ``Tdot``), ``O(1/n^2)`` for a jump in the
  second derivative (arccos2 ``T``), and roughly like ``O(n^-1/2)`` when the
  integrand itself jumps (steps: ReLU ``Tdot``, arccos0 ``T``).
  Suggested tolerances at ``n = 256``: 3e-3 (kink), 3e-2 (jump), 1e-12
  (``Erf``).  ``hermegauss`` itself breaks (NaN weights) above ~360 nodes.
* Monte Carlo, 1e6 samples, seed 0: all estimates within 2.1 reported
  standard errors of the closed form (normalised errors 7e-4 .. 1e-2; the
  largest is arccos2 ``T``, whose integrand has heavy tails).  Use a
  tolerance of ~5 standard errors.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple, Union

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

__all__ = [
    "cholesky_2x2",
    "dual_quadrature",
    "dual_monte_carlo",
    "NumericalActivation",
]

ArrayFn = Callable[[np.ndarray], np.ndarray]

#: Largest node count for which ``numpy.polynomial.hermite_e.hermegauss``
#: still returns finite weights (it overflows around n = 400).
MAX_QUADRATURE_NODES = 360


def cholesky_2x2(q: float, qp: float, c: float) -> Tuple[float, float, float]:
    """Lower Cholesky factor of ``[[q, c], [c, q']]``, written out explicitly.

    ``L = [[l11, 0], [l21, l22]]`` with ``l11 = sqrt(q)``, ``l21 = c / l11``,
    ``l22 = sqrt(q' - l21^2)``.  Unlike ``numpy.linalg.cholesky`` this also
    works for *semi*-definite matrices: ``q == 0`` gives ``l21 = 0`` and
    ``q' - l21^2`` is clipped at 0 (identical or antipodal inputs).

    Args:
      q: variance of ``u``.
      qp: variance of ``v``.
      c: covariance.

    Returns:
      ``(l11, l21, l22)``.
    """
    if q < 0 or qp < 0:
        raise ValueError("variances must be non-negative")
    l11 = math.sqrt(q)
    l21 = c / l11 if l11 > 0 else 0.0
    l22 = math.sqrt(max(qp - l21 * l21, 0.0))
    return l11, l21, l22


def dual_quadrature(phi: ArrayFn, q: float, qp: float, c: float, n: int = 128,
                    phi2: Optional[ArrayFn] = None) -> float:
    """``E[phi(u) phi2(v)]`` by tensor-product Gauss-Hermite quadrature.

    With ``hermegauss(n)`` nodes ``z_k`` and weights ``w_k`` (for the weight
    ``exp(-z^2/2)``, so ``sum w_k = sqrt(2 pi)``)::

        E ~= (1 / 2pi) sum_{i,j} w_i w_j phi(l11 z_i) phi2(l21 z_i + l22 z_j)

    Exact for polynomials of degree ``<= 2n - 1`` in each variable; see the
    module docstring for the (poor) accuracy on non-smooth functions.

    Args:
      phi: vectorised numpy function applied to ``u``.
      q: variance of ``u``.
      qp: variance of ``v``.
      c: covariance of ``u`` and ``v``.
      n: number of nodes per axis, ``1 <= n <= 360`` (numpy's ``hermegauss``
        overflows to NaN weights somewhere between 360 and 400).
      phi2: function applied to ``v``; defaults to ``phi``.  Pass the
        derivative ``phi'`` as both ``phi`` and ``phi2`` to get ``Tdot``.

    Returns:
      The quadrature estimate as a float.
    """
    if not 1 <= n <= MAX_QUADRATURE_NODES:
        raise ValueError(f"n must be in [1, {MAX_QUADRATURE_NODES}], got {n}")
    phi2 = phi if phi2 is None else phi2
    z, w = hermegauss(n)
    w = w / math.sqrt(2.0 * math.pi)
    l11, l21, l22 = cholesky_2x2(q, qp, c)
    u = l11 * z                                   # (n,)   indexed by i
    v = l21 * z[:, None] + l22 * z[None, :]       # (n, n) indexed by i, j
    fu = np.asarray(phi(u), dtype=np.float64)
    fv = np.asarray(phi2(v), dtype=np.float64)
    return float(np.einsum("i,j,i,ij->", w, w, fu, fv))


def dual_monte_carlo(phi: ArrayFn, q: float, qp: float, c: float,
                     n_samples: int = 1_000_000, seed: int = 0,
                     phi2: Optional[ArrayFn] = None,
                     return_stderr: bool = False,
                     chunk: int = 1_000_000) -> Union[float, Tuple[float, float]]:
    """``E[phi(u) phi2(v)]`` by Monte Carlo with a seeded generator.

    Samples ``z ~ N(0, I_2)`` from ``numpy.random.default_rng(seed)`` and sets
    ``u = l11 z_1``, ``v = l21 z_1 + l22 z_2`` (see :func:`cholesky_2x2`).
    The result is deterministic for a given ``(seed, n_samples, chunk)``.

    Args:
      phi: vectorised numpy function applied to ``u``.
      q: variance of ``u``.
      qp: variance of ``v``.
      c: covariance of ``u`` and ``v``.
      n_samples: number of samples.
      seed: seed of ``numpy.random.default_rng``.
      phi2: function applied to ``v``; defaults to ``phi``.
      return_stderr: also return the standard error of the estimate.
      chunk: samples drawn per batch (bounds memory).

    Returns:
      The estimate, or ``(estimate, standard_error)`` if ``return_stderr``.
    """
    phi2 = phi if phi2 is None else phi2
    rng = np.random.default_rng(seed)
    l11, l21, l22 = cholesky_2x2(q, qp, c)
    total = 0.0
    total_sq = 0.0
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        z = rng.standard_normal((m, 2))
        u = l11 * z[:, 0]
        v = l21 * z[:, 0] + l22 * z[:, 1]
        prod = np.asarray(phi(u), dtype=np.float64) * np.asarray(phi2(v), dtype=np.float64)
        total += float(prod.sum())
        total_sq += float((prod * prod).sum())
        done += m
    mean = total / n_samples
    if not return_stderr:
        return mean
    var = max(total_sq / n_samples - mean * mean, 0.0)
    return mean, math.sqrt(var / max(n_samples - 1, 1))


class NumericalActivation:
    """An activation whose duals are computed numerically.

    Has the ``T`` / ``Tdot`` interface expected by ``fc.fc_kernels`` and
    ``fc.kernel_recursion``, so the whole fully-connected recursion can be run
    without any closed form (e.g. to cross-check ``fc.py``'s closed forms).

    Attributes:
      phi: vectorised activation.
      dphi: vectorised derivative.
      method: ``'quadrature'`` or ``'monte_carlo'``.
      n: quadrature nodes per axis, or Monte Carlo samples.
      seed: Monte Carlo seed.
    """

    def __init__(self, phi: ArrayFn, dphi: ArrayFn, method: str = "quadrature",
                 n: Optional[int] = None, seed: int = 0):
        if method not in ("quadrature", "monte_carlo"):
            raise ValueError(f"unknown method {method!r}")
        self.phi = phi
        self.dphi = dphi
        self.method = method
        self.n = n if n is not None else (128 if method == "quadrature" else 1_000_000)
        self.seed = seed

    @classmethod
    def from_activation(cls, act, **kwargs) -> "NumericalActivation":
        """Wrap the ``phi`` / ``dphi`` of an ``fc.Activation``."""
        return cls(act.phi, act.dphi, **kwargs)

    def _expect(self, f: ArrayFn, q: float, qp: float, c: float) -> float:
        if self.method == "quadrature":
            return dual_quadrature(f, q, qp, c, n=self.n)
        return dual_monte_carlo(f, q, qp, c, n_samples=self.n, seed=self.seed)

    def T(self, q: float, qp: float, c: float) -> float:
        """Numerical ``E[phi(u) phi(v)]``."""
        return self._expect(self.phi, q, qp, c)

    def Tdot(self, q: float, qp: float, c: float) -> float:
        """Numerical ``E[phi'(u) phi'(v)]``."""
        return self._expect(self.dphi, q, qp, c)


def _accuracy_table() -> None:  # pragma: no cover - diagnostic script
    """Print quadrature / Monte Carlo errors against the closed forms of ``fc.py``.

    Errors are normalised by the Cauchy-Schwarz scale
    ``sqrt(T(q, q, q) T(q', q', q'))`` (resp. with ``Tdot``), so that entries
    where the dual vanishes (e.g. ``erf`` at zero correlation) are meaningful.
    """
    try:
        from . import fc
    except ImportError:
        import fc  # type: ignore
    acts = {
        "relu": fc.Relu(),
        "leaky(0.1)": fc.LeakyRelu(0.1),
        "abs": fc.Abs(),
        "arccos0": fc.RectifiedMonomial(0),
        "arccos1": fc.RectifiedMonomial(1),
        "arccos2": fc.RectifiedMonomial(2),
        "erf": fc.Erf(),
        "erf(1.3,.7,.2)": fc.Erf(1.3, 0.7, 0.2),
    }
    q, qp = 1.3, 0.7
    cs = [rho * math.sqrt(q * qp) for rho in (-0.9, -0.3, 0.0, 0.5, 0.95)]
    ns = (8, 16, 32, 64, 128, 256, 360)

    def scale(f, q, qp):
        return math.sqrt(abs(f(q, q, q) * f(qp, qp, qp)))

    print("Gauss-Hermite quadrature: max |error| / sqrt(T(q,q,q) T(q',q',q')), T ; Tdot")
    print(f"{'activation':15s}" + "".join(f"{'n=' + str(n):>18s}" for n in ns))
    for name, act in acts.items():
        row = f"{name:15s}"
        sT, sD = scale(act.T, q, qp), scale(act.Tdot, q, qp)
        for n in ns:
            eT = eD = 0.0
            for c in cs:
                eT = max(eT, abs(dual_quadrature(act.phi, q, qp, c, n) - act.T(q, qp, c)) / sT)
                if sD:
                    eD = max(eD, abs(dual_quadrature(act.dphi, q, qp, c, n) - act.Tdot(q, qp, c)) / sD)
            row += f"   {eT:7.1e};{eD:7.1e}"
        print(row)
    print("\nMonte Carlo, 1e6 samples, seed 0: max |error|/stderr and max normalised error, T ; Tdot")
    for name, act in acts.items():
        sT, sD = scale(act.T, q, qp), scale(act.Tdot, q, qp)
        zT = zD = rT = rD = 0.0
        for c in cs:
            t, td = act.T(q, qp, c), act.Tdot(q, qp, c)
            m, s = dual_monte_carlo(act.phi, q, qp, c, 10**6, 0, return_stderr=True)
            zT, rT = max(zT, abs(m - t) / s if s else 0.0), max(rT, abs(m - t) / sT)
            if sD:
                m, s = dual_monte_carlo(act.dphi, q, qp, c, 10**6, 0, return_stderr=True)
                zD, rD = max(zD, abs(m - td) / s if s else 0.0), max(rD, abs(m - td) / sD)
        print(f"{name:15s} z={zT:5.2f} err={rT:8.1e} ; z={zD:5.2f} err={rD:8.1e}")


if __name__ == "__main__":  # pragma: no cover
    _accuracy_table()
