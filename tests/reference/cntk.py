"""Literal 4-D numpy references of the convolutional NTK.

Written to be obviously correct, not fast: every covariance is a full
``[P, Q, P, Q]`` array, the patch operation shifts that array by every filter
offset, and the dual activation is applied entry by entry through the scalar
closed forms of :mod:`reference.fc`.  Use tiny images only.

Two conventions:

* :func:`nt_cntk`: neural-tangents' NTK parameterization (DESIGN.md section 2).
  ``Conv`` with ``W_std = w``, ``b_std = b`` and a ``q x q`` SAME filter maps a
  4-D covariance ``K`` to ``w**2 * patch_mean(K) + b**2`` where
  ``patch_mean(K)[i, j, i', j'] = mean_{a, b} K[i+a, j+b, i'+a, j'+b]`` over the
  ``q**2`` offsets, with zero outside the image; the input covariance is
  ``x[i, j, :] . x'[i', j', :] / C``; ``Flatten`` averages the diagonal
  ``p = p'``, ``GlobalAvgPool`` averages all ``(p, p')``.
* :func:`arora_cntk`: Arora et al. 2019 ("On exact computation with an
  infinitely wide neural net", arXiv:1904.11955, section 4 and appendix),
  ReLU, ``c_sigma = 2``, ``q x q`` filters, the unnormalised first layer
  ``Sigma^(0) = sum_c patch_sum(x_c x'_c)``,
  ``K^(h) = c_sigma / q**2 * E[relu relu]``, ``Kdot^(h) = c_sigma / q**2 * E[relu' relu']``,
  ``Sigma^(h) = patch_sum(K^(h))``, ``Theta^(h) = patch_sum(Kdot^(h) Theta^(h-1) + K^(h))``
  and the readouts ``trace`` (vanilla) or ``mean`` (GAP) of
  ``Kdot^(L) Theta^(L-1) + K^(L)``, ``L = depth - 1``.  ``fix=True`` follows the
  authors' code option of the same name (first and last layer not trained):
  ``Theta^(0) = 0`` and ``K^(L)`` left out of the readout.

Near-colinear entries after the first layer (``|cos| > 0.95``) take their angle
from the patch vectors in 50-digit arithmetic (`_exact_angle`): identical or
colinear patches, common in real images (a lone nonzero pixel at the same offset),
then get the exact angle 0 or pi instead of ~1e-8. Deeper layers use
``arccos(c / sqrt(q q'))``; an identical pair still gets exactly 0 there because
``sqrt(q * q) == q`` in IEEE arithmetic.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence, Tuple

import mpmath
import numpy as np

from . import fc as fcref

__all__ = ["patch_sum", "nt_cntk", "arora_cntk"]


def patch_sum(K: np.ndarray, q: int) -> np.ndarray:
    """``sum_{a, b} K[i+a, j+b, i'+a, j'+b]`` over ``a, b in [-(q//2), q//2]``, zero outside."""
    P, Q = K.shape[:2]
    r = q // 2
    padded = np.zeros((P + 2 * r, Q + 2 * r, P + 2 * r, Q + 2 * r))
    padded[r:r + P, r:r + Q, r:r + P, r:r + Q] = K
    out = np.zeros_like(K)
    for a in range(-r, r + 1):
        for b in range(-r, r + 1):
            out += padded[r + a:r + a + P, r + b:r + b + Q, r + a:r + a + P, r + b:r + b + Q]
    return out


def _diag(K: np.ndarray) -> np.ndarray:
    """The ``[P, Q]`` map ``K[i, j, i, j]``."""
    P, Q = K.shape[:2]
    return np.array([[K[i, j, i, j] for j in range(Q)] for i in range(P)])


def _patch(x: np.ndarray, i: int, j: int, q: int) -> np.ndarray:
    """The zero-padded q x q x C patch of `x` centred at (i, j), flattened."""
    P, Q, C = x.shape
    r = q // 2
    out = np.zeros((q, q, C))
    for a in range(-r, r + 1):
        for b in range(-r, r + 1):
            if 0 <= i + a < P and 0 <= j + b < Q:
                out[a + r, b + r] = x[i + a, j + b]
    return out.ravel()


def _exact_angle(u: np.ndarray, v: np.ndarray) -> float:
    """The angle between two vectors in 50-digit arithmetic, 2 atan2(|u^ - v^|, |u^ + v^|)."""
    with mpmath.workdps(50):
        mu = [mpmath.mpf(float(t)) for t in u]
        mv = [mpmath.mpf(float(t)) for t in v]
        nu = mpmath.sqrt(mpmath.fsum(t * t for t in mu))
        nv = mpmath.sqrt(mpmath.fsum(t * t for t in mv))
        dif = mpmath.sqrt(mpmath.fsum((a / nu - b / nv) ** 2 for a, b in zip(mu, mv)))
        sm = mpmath.sqrt(mpmath.fsum((a / nu + b / nv) ** 2 for a, b in zip(mu, mv)))
        return float(2 * mpmath.atan2(dif, sm))


@contextlib.contextmanager
def _angle_override(theta: float):
    """Makes reference.fc's closed forms use `theta` as the angle of the next pair."""
    saved = fcref.angle
    fcref.angle = lambda q, qp, c: theta
    try:
        yield
    finally:
        fcref.angle = saved


#: |cos| above which a layer-0 angle is taken from the patches in 50-digit
#: arithmetic instead of arccos(c / sqrt(q q')) (which has ~1e-8 error near +-1).
COLINEAR = 0.95


def _dual(act, Kxy: np.ndarray, qx: np.ndarray, qy: np.ndarray,
          layer0: Optional[Tuple[np.ndarray, np.ndarray, int, float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Entry by entry ``T`` and ``Tdot`` of a 4-D covariance, given both diagonal maps.

    `layer0` = (x, y, q, beta) marks the activation after the first conv: there the
    angle of a nearly (anti)colinear entry comes from the augmented patch vectors
    (patch, beta), beta = b_0 / (w_0 / (q sqrt C)), exactly.
    """
    P, Q = qx.shape
    T = np.zeros_like(Kxy)
    Td = np.zeros_like(Kxy)
    for i in range(P):
        for j in range(Q):
            for i2 in range(P):
                for j2 in range(Q):
                    q, qp, c = float(qx[i, j]), float(qy[i2, j2]), float(Kxy[i, j, i2, j2])
                    ctx = contextlib.nullcontext()
                    if layer0 is not None and q > 0 and qp > 0 and abs(c) / np.sqrt(q * qp) > COLINEAR:
                        x, y, qf, beta = layer0
                        u = np.append(_patch(x, i, j, qf), beta)
                        v = np.append(_patch(y, i2, j2, qf), beta)
                        ctx = _angle_override(_exact_angle(u, v))
                    with ctx:
                        T[i, j, i2, j2] = act.T(q, qp, c)
                        Td[i, j, i2, j2] = act.Tdot(q, qp, c)
    return T, Td


def nt_cntk(x: np.ndarray, y: np.ndarray, act, convs: Sequence[Tuple[float, float, int]],
            final_act: bool = True, readout: str = "gap", out_w: float = 1.0, out_b: float = 0.0,
            train_first: bool = True, train_last: bool = True) -> Tuple[float, float]:
    """NNGP and NTK of one image pair (``x, y``: ``[P, Q, C]``) in neural-tangents' convention.

    ``convs`` lists ``(W_std, b_std, q)`` per conv layer; an activation follows
    every conv but the last, and the last too when ``final_act``.
    """
    act = fcref.as_activation(act)
    C = x.shape[2]
    inputs = {"xx": (x, x), "yy": (y, y), "xy": (x, y)}
    # Layer 0: x[i, j, :] . y[i', j', :] / C, then conv 0.
    w, b, q = convs[0]
    S = {k: w**2 * patch_sum(np.einsum("ijc,klc->ijkl", u, v) / C, q) / q**2 + b**2
         for k, (u, v) in inputs.items()}
    T = S["xy"].copy() if train_first else np.zeros_like(S["xy"])
    n_act = len(convs) - 1 + (1 if final_act else 0)
    w0, b0, q0 = convs[0]
    beta = b0 / (w0 / (q0 * np.sqrt(C))) if w0 > 0 else 0.0
    for stage in range(n_act):
        qx, qy = _diag(S["xx"]), _diag(S["yy"])
        l0 = (lambda u, v: (u, v, q0, beta)) if stage == 0 else (lambda u, v: None)
        Kxx, _ = _dual(act, S["xx"], qx, qx, l0(x, x))
        Kyy, _ = _dual(act, S["yy"], qy, qy, l0(y, y))
        Kxy, Kd = _dual(act, S["xy"], qx, qy, l0(x, y))
        S = {"xx": Kxx, "yy": Kyy, "xy": Kxy}
        T = Kd * T
        if stage + 1 < len(convs):
            w, b, q = convs[stage + 1]
            S = {k: w**2 * patch_sum(v, q) / q**2 + b**2 for k, v in S.items()}
            T = w**2 * patch_sum(T, q) / q**2 + S["xy"]
    P, Q = x.shape[:2]
    if readout == "gap":
        rk, rt = S["xy"].mean(), T.mean()
    else:
        rk, rt = np.trace(S["xy"].reshape(P * Q, P * Q)) / (P * Q), np.trace(T.reshape(P * Q, P * Q)) / (P * Q)
    nngp = out_w**2 * rk + out_b**2
    ntk = out_w**2 * rt + (nngp if train_last else 0.0)
    return float(nngp), float(ntk)


def arora_cntk(x: np.ndarray, y: np.ndarray, depth: int, readout: str = "gap", q: int = 3,
               fix: bool = False) -> float:
    """Arora et al.'s CNTK value of one pair (``x, y``: ``[P, Q, C]``), bias-free ReLU."""
    relu = fcref.Relu()
    c_sigma = 2.0
    inputs = {"xx": (x, x), "yy": (y, y), "xy": (x, y)}
    S = {k: patch_sum(np.einsum("ijc,klc->ijkl", u, v), q) for k, (u, v) in inputs.items()}
    Theta = np.zeros_like(S["xy"]) if fix else S["xy"].copy()
    L = depth - 1
    for h in range(1, L + 1):
        qx, qy = _diag(S["xx"]), _diag(S["yy"])
        K = {}
        sides = {"xx": (x, x), "yy": (y, y), "xy": (x, y)}
        for k, (a, bq) in {"xx": (qx, qx), "yy": (qy, qy), "xy": (qx, qy)}.items():
            t, td = _dual(relu, S[k], a, bq, (sides[k][0], sides[k][1], q, 0.0) if h == 1 else None)
            K[k] = (c_sigma / q**2 * t, c_sigma / q**2 * td)
        Kxy, Kdxy = K["xy"]
        if h < L:
            S = {k: patch_sum(v[0], q) for k, v in K.items()}
            Theta = patch_sum(Kdxy * Theta + Kxy, q)
        else:
            final = Kdxy * Theta + (0.0 if fix else Kxy)
    P, Q = x.shape[:2]
    if readout == "gap":
        return float(final.mean())
    return float(np.trace(final.reshape(P * Q, P * Q)))
