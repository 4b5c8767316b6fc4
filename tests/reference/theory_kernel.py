"""Naive references for the kernel theorem checks (`ntkx._src.theory.checks_kernel` and `checks_generalization`).

Written to be obviously right, not fast:

- `identity_ntk_coefficients`: the NTK of an identity-activation FC network as an affine
  function ``alpha + beta x.x'``, by running the layer recursion (DESIGN.md section 2) on
  the pair ``(constant, coefficient of x.x')`` with ``T(q, q', c) = c`` and ``Tdot = 1``.
- `rademacher_complexity_mc`: the empirical Rademacher complexity of an RKHS ball by
  Monte Carlo over sign vectors, ``E_sigma sup_{|f|_H <= B} (1/n) sum sigma_i f(x_i)
  = (B / n) E_sigma sqrt(sigma^T K sigma)`` (the sup is attained at ``f = B K sigma / |.|``).
- `margin_bound_literal`: the union-over-B margin bound term by term, the power of two
  found by a loop.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np


def identity_ntk_coefficients(depth: int, w_std: float, b_std: float, d: int) -> Tuple[float, float]:
    """``(alpha, beta)`` with ``Theta^L(x, x') = alpha + beta x.x'`` for ``phi(u) = u``.

    Args:
      depth: hidden layers L (Dense -> [phi -> Dense] x L).
      w_std, b_std: every Dense's weight and bias std.
      d: input dimension.
    """
    sigma = [b_std**2, w_std**2 / d]  # Sigma^0 = w^2 x.x'/d + b^2
    theta = list(sigma)
    for _ in range(depth):
        sigma = [w_std**2 * sigma[0] + b_std**2, w_std**2 * sigma[1]]  # w^2 T + b^2, T(c) = c
        sigma_dot = w_std**2  # w^2 Tdot, Tdot = 1
        theta = [sigma_dot * theta[0] + sigma[0], sigma_dot * theta[1] + sigma[1]]
    return theta[0], theta[1]


def rademacher_complexity_mc(k: np.ndarray, radius: float, n_sigma: int, seed: int = 0) -> float:
    """Monte Carlo estimate of the empirical Rademacher complexity of ``{|f|_H <= radius}``."""
    n = k.shape[0]
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(n_sigma):
        sigma = rng.choice([-1.0, 1.0], size=n)
        total += math.sqrt(max(float(sigma @ k @ sigma), 0.0))
    return radius / n * total / n_sigma


def margin_bound_literal(rkhs_norm: float, trace: float, n: int, train_ramp_loss: float,
                         delta: float, margin: float) -> float:
    """``ramp + (2/gamma) 2^k sqrt(tr K)/n + 3 sqrt(ln(2 k (k+1)/delta)/(2n))``, k >= 1 the
    smallest with ``2^k >= rkhs_norm``."""
    k = 1
    while 2.0**k < rkhs_norm:
        k += 1
    return (train_ramp_loss + 2.0 / margin * 2.0**k * math.sqrt(trace) / n
            + 3.0 * math.sqrt(math.log(2.0 * k * (k + 1) / delta) / (2.0 * n)))
