"""What the depth checks (issue 13, "Depth": ``depth_*``) share: the engine's normalized kernels,
the depth fits, the paper's recurrences, exact data and finite-network simulators.

The checks themselves are in `checks_depth_limits` (the limits in depth),
`checks_depth_spectrum` (Gram spectra and the gradient-flow operator) and
`checks_depth_finite` (finite networks).

The claims are those of St-Arnaud, Carvalho & Farnadi, "Revisiting the Neural Tangent
Kernel: the role of large width and depth" (arXiv:2511.07272; v1 was titled
"Understanding the role of depth in the neural tangent kernel for overparameterized
neural networks"), for bias-free ReLU networks on the sphere. Only the abstracts of the
paper could be read here; where a statement below is a reading of a numbered result,
its ``claim`` says so and says precisely what was implemented.

Conventions. The engine (`ntkx.fc_kernels`, DESIGN.md section 2) computes Sigma^D and
Theta^D of ``Dense -> [Relu -> Dense] x D`` in the NTK parameterization, Sigma^0 =
w^2 x.x'/d + b^2. The paper counts L = D + 1 weight layers and uses unit-variance
weights (c_sigma = 1), so that on the unit sphere its NTK has the diagonal
Theta_paper^(L)(x, x) = L / (n0 2^(L-1)); its normalized NTK (Definition 4) is
``K_L = Theta_paper^(L) n0 2^(L-1) / L``. ReLU is homogeneous, so the two conventions
differ by one constant per depth: with w^2 = 2, b = 0 here,
``Theta^D = 2^(D+1) Theta_paper^(D+1)`` for inputs of the same radius, the diagonal is
Theta^D(x, x) = (D + 1) q0 with q0 = 2|x|^2/d, and

    K_L(x, x') = Theta^{L-1}(x, x') / (L q0) = Theta^{L-1}(x, x') / Theta^{L-1}(x, x).

Every check below normalizes by the diagonal, which is Definition 4 exactly without
bias (`depth_prop5_recurrence` checks the map against the paper's recurrence).

The depth asymptotics used as expected values are derived in each check's notes; in
brief, with theta_D the angle of the NNGP correlation rho_D = cos theta_D, the ReLU
correlation map is cos theta' = (sin theta + (pi - theta) cos theta)/pi, i.e.
theta' = theta - theta^2/(3 pi) - theta^3/(18 pi^2) + O(theta^4), whence
1/theta_D = D/(3 pi) + ln(D)/(2 pi) + O(1): 1 - rho_D ~ (9 pi^2/2)/D^2 and the
normalized NTK tends to 1/4 as 1/4 + (3/8) ln(D)/D + O(1/D).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple

import numpy as np
from scipy import linalg, stats

from ntkx import stax
from ntkx._src import network
from ntkx._src.activations import relu
from ntkx._src.fc import FcSpec, fc_kernels
from ntkx._src.theory.result import CONFIDENCE
from ntkx._src.theory.train import train

SOURCE = ("St-Arnaud, Carvalho & Farnadi, 'Revisiting the Neural Tangent Kernel: the role of large width "
          "and depth', arXiv:2511.07272")
RELU = relu()
W_HE = math.sqrt(2.0)  # the critical ReLU weight std (Sigma(x, x) constant in depth without bias)
D_IN = 10  # input dimension of the sphere data
ULP_HALF = 2.0 ** -53

#: 1 - rho_D ~ NNGP_CONST / D^2 (bias-free ReLU, any input angle in (0, pi)).
NNGP_CONST = 9.0 * math.pi ** 2 / 2.0
#: The normalized NTK's limit and its ln(D)/D coefficient (bias-free ReLU).
NTK_LIMIT = 0.25
NTK_LOG_COEF = 3.0 / 8.0
#: With a bias b > 0 at w^2 = 2: 1 - rho_D ~ BIAS_NNGP_CONST / D^2, normalized NTK -> 4/7.
BIAS_NNGP_CONST = 9.0 * math.pi ** 2 / 8.0
BIAS_NTK_LIMIT = 4.0 / 7.0


# ----------------------------------------------------------------------------- engine helpers


def relu_spec(depth: int, w_std: float = W_HE, b_std: float = 0.0) -> FcSpec:
    """The engine's spec of ``Dense -> [Relu -> Dense] x depth`` with weight std `w_std` and bias std `b_std`."""
    return FcSpec(depth=int(depth), w_std=w_std, b_std=b_std, activation=RELU)


def normalized_kernels(x: np.ndarray, depth: int, w_std: float = W_HE,
                       b_std: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """The engine's NNGP and NTK at `depth`, each divided by ``sqrt(K(x, x) K(x', x'))``.

    Returns:
      ``(rho, k)``: `(N, N)` NNGP correlations and normalized NTK (Definition 4 without bias).
    """
    ker = fc_kernels(x, None, relu_spec(depth, w_std, b_std), get=("nngp", "ntk"))
    out = []
    for m in (ker.nngp, ker.ntk):
        s = np.sqrt(np.diag(m))
        out.append(m / np.outer(s, s))
    return out[0], out[1]


def offdiag(m: np.ndarray) -> np.ndarray:
    """The entries above the diagonal of a square matrix, row by row."""
    return m[np.triu_indices(m.shape[0], 1)]


def depth_grid(lo: int, hi: int, per_decade: int) -> np.ndarray:
    """Distinct integer depths from `lo` to `hi`, `per_decade` per decade, log-spaced.

    Args:
      lo, hi: the first and last depth (``lo >= 1``).
      per_decade: points per factor of 10 before rounding (rounding may merge some).

    Returns:
      The sorted int64 depths.
    """
    n = int(round(per_decade * math.log10(hi / lo))) + 1
    return np.unique(np.round(np.logspace(math.log10(lo), math.log10(hi), n)).astype(np.int64))


def sweep(x: np.ndarray, depths: Sequence[int], w_std: float = W_HE,
          b_std: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Off-diagonal NNGP correlations and normalized NTK at each depth.

    Args:
      x: `(N, d)` inputs; depths: the engine's depths D.
      w_std, b_std: weight and bias std of the ReLU network.

    Returns:
      ``(rho, k)``: two `(len(depths), N (N - 1) / 2)` arrays (`offdiag` order).
    """
    rhos, ks = [], []
    for dpt in depths:
        rho, k = normalized_kernels(x, int(dpt), w_std, b_std)
        rhos.append(offdiag(rho))
        ks.append(offdiag(k))
    return np.array(rhos), np.array(ks)


def output_floor(depth: Any) -> np.ndarray:
    """Absolute rounding floor of a correlation read off the engine's outputs at `depth`.

    The engine carries 1 - rho with full relative accuracy internally (it sets the angles),
    but its NNGP output is sqrt(Q Q') rho with rho updated by ``rho + g`` each layer: a
    half-ulp of 1 per layer at most, so 1 - rho read from the outputs is good to about
    ``depth * 2^-53`` absolutely (measured: 5e-13 at depth 10^6, against 4.4e-11).
    """
    return np.asarray(depth, dtype=float) * ULP_HALF


def fit_limit(depths: np.ndarray, values: np.ndarray, shared: Sequence[str] = ("lnL/L",),
              per_pair: Sequence[str] = ("1/L",)) -> Dict[str, Any]:
    """Least squares of ``v = c + sum_s a_s f_s(D) + sum_p b_{p,j} g_p(D)`` over every pair j.

    c and the `shared` coefficients are common to all pairs, the `per_pair` ones are
    fitted per pair. Basis names: ``'lnL/L'``, ``'1/L'``, ``'1/sqrtL'``.

    Args:
      depths: `(n,)`; values: `(n, pairs)`.

    Returns:
      ``limit`` and ``limit_ci95`` (Student t, 95%), ``coef`` and ``coef_ci95`` of each
      shared basis by name, ``max_residual``.
    """
    basis = {"lnL/L": lambda d: np.log(d) / d, "1/L": lambda d: 1.0 / d, "1/sqrtL": lambda d: d ** -0.5}
    d = np.asarray(depths, dtype=float)
    v = np.asarray(values, dtype=float)
    n, p = v.shape
    ns, npp = len(shared), len(per_pair)
    rows = []
    for j in range(p):
        block = np.zeros((n, 1 + ns + npp * p))
        block[:, 0] = 1.0
        for i, name in enumerate(shared):
            block[:, 1 + i] = basis[name](d)
        for i, name in enumerate(per_pair):
            block[:, 1 + ns + i * p + j] = basis[name](d)
        rows.append(block)
    a = np.vstack(rows)
    y = v.T.ravel()
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    dof = max(a.shape[0] - a.shape[1], 1)
    cov = float(res @ res) / dof * np.linalg.pinv(a.T @ a)
    h = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) * np.sqrt(np.maximum(np.diag(cov), 0.0))
    out = {"limit": float(coef[0]), "limit_ci95": [float(coef[0] - h[0]), float(coef[0] + h[0])],
           "coef": {}, "coef_ci95": {}, "max_residual": float(np.max(np.abs(res)))}
    for i, name in enumerate(shared):
        out["coef"][name] = float(coef[1 + i])
        out["coef_ci95"][name] = [float(coef[1 + i] - h[1 + i]), float(coef[1 + i] + h[1 + i])]
    return out


def count_decreases(values: np.ndarray, tol: float = 1e-12) -> int:
    """Steps along axis 0 where a `(n, pairs)` sequence decreases by more than `tol`, summed over pairs.

    Args:
      values: `(n, pairs)`; tol: the decrease below which a step counts as flat.

    Returns:
      The number of decreasing steps.
    """
    return int(np.sum(np.diff(values, axis=0) < -tol))


def ci_text(ci: Sequence[float], digits: int = 5) -> str:
    """A confidence interval as ``'[lo, hi]'`` with `digits` decimals."""
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


# ----------------------------------------------------------------------------- the paper's recurrences


def prop5_step(rho: np.ndarray, k: np.ndarray, big: int) -> Tuple[np.ndarray, np.ndarray]:
    """One step L -> L + 1 of Proposition 5's recurrence, literally, in float64.

    With kappa0(r) = (pi - arccos r)/pi and kappa1(r) = (sqrt(1 - r^2) + (pi - arccos r) r)/pi:
    ``rho_{L+1} = kappa1(rho_L)``, ``K_{L+1} = (L K_L kappa0(rho_L) + rho_{L+1}) / (L + 1)``.

    Args:
      rho, k: rho_L and K_L (any shape, the same).
      big: L.

    Returns:
      ``(rho_{L+1}, K_{L+1})``.
    """
    rho = np.asarray(rho, dtype=float)
    theta = np.arccos(rho)
    rho_next = (np.sqrt(np.maximum(1.0 - rho * rho, 0.0)) + (np.pi - theta) * rho) / np.pi
    return rho_next, (big * np.asarray(k, dtype=float) * (np.pi - theta) / np.pi + rho_next) / (big + 1)


def prop5_recurrence(rho1: np.ndarray, big_l: int, keep: Sequence[int]) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    """Proposition 5's recurrence of the normalized NTK iterated from rho_1 = K_1 = x.x' (`prop5_step`).

    Args:
      rho1: input correlations on the unit sphere (any shape).
      big_l: the largest L (paper's count: L weight layers, the engine's depth L - 1).
      keep: the L at which to return ``(rho_L, K_L)``.

    Returns:
      ``{L: (rho_L, K_L)}`` for each L in `keep` (up to `big_l`).
    """
    keep = set(int(k) for k in keep)
    rho = np.array(rho1, dtype=float)
    k = rho.copy()
    out = {}
    for big in range(1, big_l + 1):
        if big in keep:
            out[big] = (rho.copy(), k.copy())
        rho, k = prop5_step(rho, k, big)
    return out


def _sin_minus_tcos(t: float) -> float:
    """sin t - t cos t without cancellation (Taylor below 1/2: truncation < 1e-18 relative)."""
    if t >= 0.5:
        return math.sin(t) - t * math.cos(t)
    z = t * t
    # sum_k (-1)^(k+1) 2k t^(2k+1)/(2k+1)!, k = 1..7
    p = 1 / 3 - z * (1 / 30 - z * (1 / 840 - z * (1 / 45360 - z * (1 / 3991680 - z * (1 / 518918400
                                                                                    - z / 93405312000)))))
    return z * t * p


def prop5_stable(rho1: float, big_l: int, keep: Sequence[int]) -> Dict[int, Tuple[float, float]]:
    """Proposition 5's recurrence rewritten without cancellation: returns ``{L: (1 - rho_L, K_L)}``.

    The same map as `prop5_recurrence`, carried in the angle theta_L = arccos rho_L with
    1 - kappa1(cos t) = (2 pi sin^2(t/2) - (sin t - t cos t))/pi and
    theta_{L+1} = 2 asin(sqrt((1 - rho_{L+1})/2)): no step loses digits, so it stays
    exact to rounding at depth 10^6 where the literal form has lost most of them.

    Args:
      rho1: one input correlation x.x' on the unit sphere.
      big_l: the largest L; keep: the L at which to return.

    Returns:
      ``{L: (1 - rho_L, K_L)}`` for each L in `keep`.
    """
    keep = set(int(k) for k in keep)
    t = math.acos(rho1) if rho1 < 0.5 else 2.0 * math.asin(math.sqrt(0.5 * (1.0 - rho1)))
    omr = 1.0 - rho1 if rho1 < 0.5 else 2.0 * math.sin(0.5 * t) ** 2
    k = rho1
    out = {}
    pi = math.pi
    for big in range(1, big_l + 1):
        if big in keep:
            out[big] = (omr, k)
        s = math.sin(0.5 * t)
        omr_next = (2.0 * pi * s * s - _sin_minus_tcos(t)) / pi
        k = (big * k * (1.0 - t / pi) + (1.0 - omr_next)) / (big + 1)
        omr = omr_next
        t = 2.0 * math.asin(math.sqrt(0.5 * omr)) if omr < 1.0 else math.acos(1.0 - omr)
    return out


# ----------------------------------------------------------------------------- exact data (Proposition 6)


def equicorrelated(n: int, c: str) -> np.ndarray:
    """`n` points with every pairwise cosine equal, exactly in float64.

    ``c = 'simplex'``: e_i - 1/n (cosine -1/(n-1), n a power of two keeps it exact);
    ``c = 'half'``: e_i + e_(n+1) (cosine 1/2).

    Args:
      n: the number of points; c: ``'simplex'`` or ``'half'``.

    Returns:
      `(n, n)` (simplex) or `(n, n + 1)` (half) points.

    Raises:
      ValueError: another `c`.
    """
    if c == "simplex":
        return np.eye(n) - 1.0 / n
    if c == "half":
        x = np.zeros((n, n + 1))
        x[:, :n] = np.eye(n)
        x[:, n] = 1.0
        return x
    raise ValueError(f"equicorrelated: c must be 'simplex' or 'half', got {c!r}")


# ----------------------------------------------------------------------------- the gradient-flow operator (Theorem 3)

#: Stopping times of `depth_stopping_time`, in units of the normalized kernel (t_unnormalized (L q0) = t).
SCHEDULES = ("1/L", "1", "L", "inf")


def projection_norms(k_train: np.ndarray, k_test: np.ndarray, t: float) -> Tuple[float, float]:
    """Norms of the gradient-flow operator ``P_t = K(X*, X) K^-1 (I - exp(-t K))`` and of its data-dependent part.

    Returns:
      ``(|P_t|_2, |P_t Pi|_2)`` with Pi = I - 1 1^T/N the projection off the constant targets.
    """
    lam, v = linalg.eigh(k_train)
    lam = np.maximum(lam, 1e-300)
    phi = 1.0 / lam if math.isinf(t) else -np.expm1(-t * lam) / lam
    p = (k_test @ v) * phi @ v.T
    p_perp = p - p.mean(axis=1, keepdims=True)  # P Pi
    return float(np.linalg.norm(p, 2)), float(np.linalg.norm(p_perp, 2))


# ----------------------------------------------------------------------------- finite networks (Propositions 4, 7)


def relu_preacts_pair(x: np.ndarray, width: int, depth: int, rng: np.random.Generator) -> np.ndarray:
    """Pre-activations h^1..h^depth at two inputs of a random finite bias-free ReLU net (w^2 = 2, NTK param.).

    Exact in distribution without forming the weights: given the layer below, the pairs
    (h_i(x), h_i(x')) of a Gaussian layer are i.i.d. N(0, (w^2/fan_in) G) over neurons i, with
    G the 2 x 2 Gram of the two inputs' activations, so each layer costs O(width).

    Args:
      x: `(2, d)` the two inputs; width: neurons per layer; depth: hidden layers.
      rng: the random stream (one `(2, width)` normal draw per layer).

    Returns:
      `(depth, 2, width)`.
    """
    out = np.empty((depth, 2, width))
    a = np.asarray(x, dtype=float)
    fan = a.shape[1]
    for l in range(depth):
        g = a @ a.T * (W_HE ** 2 / fan)
        c = np.linalg.cholesky(g)
        h = c @ rng.standard_normal((2, width))
        out[l] = h
        a = np.maximum(h, 0.0)
        fan = width
    return out


def train_deviation(x: np.ndarray, y: np.ndarray, width: int, steps: int, lr: float,
                    rng: np.random.Generator) -> Tuple[np.ndarray, float]:
    """Full-batch GD (`ntkx.theory.train`, MSE) of ``Dense(width) -> Relu -> Dense(1)``
    (w^2 = 2, NTK parameterization, no bias) from a standard-normal init.

    Args:
      x: `(N, d)` training inputs; y: `(N,)` targets.
      width: hidden units; steps: GD steps; lr: the learning rate.
      rng: the initialization's random stream.

    Returns:
      ``(change, loss_ratio)``: the change of the hidden layer's activations at the
      training inputs, `(N, width)`, and the final loss over the initial one.
    """
    net = stax.serial(stax.Dense(width, W_std=W_HE), stax.Relu(), stax.Dense(1, W_std=W_HE))
    ops = list(network.expand(net.ops))
    _, params = net[0](rng, x.shape)
    tr = train(net, params, x, y[:, None], learning_rate=lr, steps=steps, record=[0, steps], linearized=False)
    hidden = [network.forward(ops, p, x).ins[2] for p in (params, tr.params)]  # the last Dense's input
    return hidden[1] - hidden[0], float(tr.loss[-1] / tr.loss[0])
