"""Literal references for the depth checks (``ntkx._src.theory.checks_depth_*``, helpers in ``depth``).

Each formula is written here a second time, as directly as possible and without the
checks' code:

- the paper's recurrence (Proposition 5) for bias-free ReLU on the unit sphere, in
  mpmath at `dps` digits, where the literal arccos form loses nothing::

      kappa0(r) = (pi - arccos r)/pi,  kappa1(r) = (sqrt(1 - r^2) + (pi - arccos r) r)/pi,
      rho_{L+1} = kappa1(rho_L),       K_{L+1} = (L K_L kappa0(rho_L) + rho_{L+1})/(L + 1),
      rho_1 = K_1 = x.x';

- the asymptotic constants derived in the checks' notes, as literal expressions;
- Sheppard's separation probability P(sign u != sign v) from scipy's bivariate normal CDF;
- the gradient-flow operator K(X*, X) K^-1 (I - expm(-t K)) with scipy's ``expm`` and ``inv``.
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import mpmath
import numpy as np
from scipy import linalg, stats

# 1 - rho_D ~ C / D^2 without bias; with a bias at w^2 = 2
NNGP_CONST = 9 * math.pi ** 2 / 2
BIAS_NNGP_CONST = 9 * math.pi ** 2 / 8
# normalized NTK limits and the ln(L)/L coefficient
NTK_LIMIT = 1 / 4
NTK_LOG_COEF = 3 / 8
BIAS_NTK_LIMIT = 4 / 7
# unit-variance weights with a bias: 1 - K_L ~ 2^(-L/2)
UNIT_BIAS_SLOPE = -math.log(2) / 2


def prop5_mp(rho1: float, big_l: int, keep: Sequence[int], dps: int = 40) -> Dict[int, Tuple[float, float]]:
    """The recurrence of Proposition 5 in mpmath: ``{L: (rho_L, K_L)}`` as floats."""
    keep = set(int(k) for k in keep)
    out = {}
    with mpmath.workdps(dps):
        rho = mpmath.mpf(rho1)
        k = rho
        for big in range(1, big_l + 1):
            if big in keep:
                out[big] = (float(rho), float(k))
            th = mpmath.acos(rho)
            rho_next = (mpmath.sqrt(1 - rho * rho) + (mpmath.pi - th) * rho) / mpmath.pi
            k = (big * k * (mpmath.pi - th) / mpmath.pi + rho_next) / (big + 1)
            rho = rho_next
    return out


def prop5_mp_one_minus_rho(rho1: float, big_l: int, dps: int = 40) -> float:
    """1 - rho_L of the same recurrence, carried in mpmath (no float64 cancellation)."""
    with mpmath.workdps(dps):
        rho = mpmath.mpf(rho1)
        for _ in range(1, big_l):
            th = mpmath.acos(rho)
            rho = (mpmath.sqrt(1 - rho * rho) + (mpmath.pi - th) * rho) / mpmath.pi
        return float(1 - rho)


def separation_probability(rho: float) -> float:
    """P(sign u != sign v) for (u, v) standard bivariate normal with correlation rho, by numerical integration."""
    p_both_negative = stats.multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]]).cdf([0.0, 0.0])
    return float(1.0 - 2.0 * p_both_negative)


def gradient_flow_operator(k_train: np.ndarray, k_test: np.ndarray, t: float) -> np.ndarray:
    """K(X*, X) K^-1 (I - expm(-t K)); t = inf gives K(X*, X) K^-1."""
    kinv = linalg.inv(k_train)
    if math.isinf(t):
        return k_test @ kinv
    return k_test @ kinv @ (np.eye(k_train.shape[0]) - linalg.expm(-t * k_train))

