"""The functions of a kernel that gradient flow and gradient descent apply, per eigenvalue.

Every formula of the training dynamics is a function of one eigenvalue (or Ritz
value) ``λ >= 0`` and the rate-scaled time ``τ`` (``η t``, or ``η t / (n k)``),
written here once and used by the dense closed forms (`ntkx._src.dynamics`) and the
Lanczos solvers (`ntkx._src.iterative`) alike:

* `decay`: ``e^{-λ τ}``, the residual's decay;
* `fit`: ``1 - e^{-λ τ}``, the part of the residual fitted;
* `phi`: ``(1 - e^{-λ τ}) / λ``, the test-time map (``τ`` at λ = 0 for finite τ,
  the pseudo-inverse at ``τ = inf``);
* `fit_steps`, `phi_steps`: their analogues after ``k`` discrete steps.

Eigenvalues are 0 or positive (the callers set round-off below a cutoff to exactly
0). Each function broadcasts ``lam`` ``(n,)`` against times as a column ``(T, 1)``
and returns ``(T, n)``.
"""

from __future__ import annotations

import numpy as np


def _exponent(lam: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``λ τ``, and 0 on the null space at every τ (``0 * inf`` would be NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(lam > 0, lam * tau, 0.0)


def decay(lam: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``e^{-λ τ}``: 1 on the null space at every τ, 0 for λ > 0 at ``τ = inf``.

    Args:
        lam: Eigenvalues, 0 or positive, shape (n,).
        tau: Rate-scaled times >= 0 (inf allowed) as a column, shape (T, 1).

    Returns:
        Shape (T, n).
    """
    with np.errstate(over="ignore"):
        return np.exp(-_exponent(lam, tau))


def fit(lam: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``1 - e^{-λ τ}`` as ``-expm1(-λ τ)`` (0 on the null space, at every τ).

    The arguments and the shape returned are those of `decay`.
    """
    return -np.expm1(-_exponent(lam, tau))


def phi(lam: np.ndarray, tau: np.ndarray, *, scaled: bool = False) -> np.ndarray:
    """``(1 - e^{-λ τ}) / λ``: τ at λ = 0 for finite τ, the pseudo-inverse at ``τ = inf``.

    Two evaluation orders of the one function, each kept for the values its callers
    have always returned:

    * ``scaled=False`` (the dense closed forms): ``fit(λ, τ) / λ``;
    * ``scaled=True`` (the Lanczos solvers): ``τ g(λ τ)`` with
      ``g(x) = -expm1(-x) / x`` and ``g(0) = 1``, which is also exact where ``λ τ``
      underflows to 0.

    At ``τ = inf`` both give ``1 / λ`` on the range and 0 on the null space.

    Args:
        lam: Eigenvalues (or Ritz values), 0 or positive, shape (n,).
        tau: Rate-scaled times >= 0 (inf allowed) as a column, shape (T, 1).
        scaled: Choose the evaluation order (see above).

    Returns:
        Shape (T, n).
    """
    pos = lam > 0
    safe = np.where(pos, lam, 1.0)
    if not scaled:
        out = np.where(pos, fit(lam, tau) / safe, tau)
        return np.where(~pos & np.isinf(tau), 0.0, out)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = _exponent(lam, tau)
        nonzero = np.where(x == 0, 1.0, x)
        g = np.where(x == 0, 1.0, fit(lam, tau) / nonzero)
        return np.where(np.isinf(tau), np.where(pos, 1.0 / safe, 0.0), tau * g)


def fit_steps(lam: np.ndarray, rate: float, k: np.ndarray) -> np.ndarray:
    """``1 - (1 - a λ)^k`` after `k` steps of rate `a`, via expm1/log1p while ``0 <= a λ < 1``.

    Args:
        lam: Eigenvalues, shape (n,).
        rate: The rate-scaled learning rate ``a``.
        k: Numbers of steps as a column, shape (T, 1).

    Returns:
        Shape (T, n).
    """
    q = 1.0 - rate * lam
    small = (q > 0) & (lam >= 0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        stable = -np.expm1(k * np.log1p(-rate * np.where(small, lam, 0.0)))
        direct = 1.0 - np.power(q, k)
    return np.where(small, stable, direct)


def phi_steps(lam: np.ndarray, rate: float, k: np.ndarray) -> np.ndarray:
    """``sum_{j<k} (1 - a λ)^j a = (1 - (1 - a λ)^k) / λ`` (``a k`` at λ = 0).

    The arguments and the shape returned are those of `fit_steps`.
    """
    pos = lam > 0
    safe = np.where(pos, lam, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(pos, fit_steps(lam, rate, k) / safe, rate * k.astype(np.float64))
