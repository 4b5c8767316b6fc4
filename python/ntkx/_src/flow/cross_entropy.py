"""Gradient flow of the softmax cross-entropy in function space: `cross_entropy_flow`."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np
import scipy.integrate

from ntkx._src import validate
from ntkx._src.flow.spectrum import NEG_TOL, Times


class CrossEntropyFlow(NamedTuple):
    """Outputs of the cross-entropy flow at each requested time.

    ``train`` is ``t.shape + (n, k)``, ``test`` ``t.shape + (m, k)`` (``None``
    without test points) and ``loss`` the summed training cross-entropy,
    ``t.shape``.
    """

    train: np.ndarray
    test: Optional[np.ndarray]
    loss: np.ndarray



def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _cross_entropy(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Summed cross-entropy ``-sum y log softmax(f)`` over the last two axes."""
    z = f - f.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.sum(y * logp, axis=(-2, -1))



def cross_entropy_flow(k_train_train: Any, y_train_onehot: Any, t: Times, *, k_test_train: Any = None,
                       f0_train: Any = None, f0_test: Any = None, learning_rate: float = 1.0,
                       rtol: float = 1e-10, atol: float = 1e-12, method: str = "DOP853") -> CrossEntropyFlow:
    """Gradient flow of the softmax cross-entropy in function space.

    The loss is ``L = -sum_i sum_c y_ic log softmax(f(x_i))_c`` (sum over training
    points), so ``df(X)/dt = -η Θ (softmax(f(X)) - Y)`` and on test points
    ``df(x)/dt = -η Θ(x, X)(softmax(f(X)) - Y)``. Both are linear in
    ``S(t) = int_0^t (softmax(f(X)) - Y) ds``, the only state integrated
    (``scipy.integrate.solve_ivp``, dense output):
    ``f_t(X) = f0(X) - η Θ S(t)``, ``f_t(x) = f0(x) - η Θ(x, X) S(t)``.

    Args:
        k_train_train (array_like, shape (n, n)): Symmetric positive semi-definite (`validate.check_psd`:
            smallest eigenvalue ``>= -1e-6 * max|eigenvalue|``).
        y_train_onehot (array_like, shape (n, k)): One-hot (or any probability-row) targets: finite, entries in
            [0, 1] and each row summing to 1, within ``max(1e-8, k * eps)`` (``eps`` of the array's dtype;
            `validate.check_probability_rows`). Class indices (a 1-D integer vector) are not accepted, since the
            number of classes k cannot be read off them reliably: one-hot encode them first, e.g.
            ``np.eye(k)[labels]``.
        t (float or array_like): Finite times >= 0, any order (sorted internally).
        k_test_train (array_like, shape (m, n), optional):
        f0_train, f0_test (array_like, optional): Initial logits, shapes (n, k) and (m, k) (default 0).
        learning_rate (float):
        rtol, atol (float): Tolerances of the integrator, on S.
        method ({'DOP853', 'LSODA', 'RK45', 'Radau', 'BDF'}):

    Returns:
        CrossEntropyFlow: ``train`` ``t.shape + (n, k)``, ``test`` ``t.shape + (m, k)`` or None, and the summed
            training ``loss`` at each time.

    Raises:
        ValueError: A kernel that is not PSD, targets that are not ``(n, k)`` probability rows (the message
            names the first bad row), and the other input checks.
    """
    k = validate.check_kernel(k_train_train, "k_train_train")
    n = k.shape[0]
    y = validate.check_probability_targets(y_train_onehot, n, "y_train_onehot")
    eta = validate.check_real_nonneg(learning_rate, "learning_rate", strict=True)
    validate.check_real_nonneg(rtol, "rtol", strict=True)
    validate.check_real_nonneg(atol, "atol", strict=True)
    tflat, tshape = validate.check_times(t)
    if np.isinf(tflat).any():
        raise ValueError("t must be finite for cross_entropy_flow (the logits grow without bound)")
    f0 = validate.check_outputs(f0_train, y.shape, "f0_train")
    ktx = None
    if k_test_train is not None:
        ktx = validate.check_cross(k_test_train, n, "k_test_train")
        f0t = validate.check_outputs(f0_test, (ktx.shape[0], y.shape[1]), "f0_test")
    elif f0_test is not None:
        raise ValueError("f0_test was given without k_test_train")
    validate.check_psd(k, "k_train_train", tol=NEG_TOL, suffix="; the cross-entropy flow on it diverges")

    def rhs(_, s):
        f = f0 - eta * (k @ s.reshape(y.shape))
        return (_softmax(f) - y).reshape(-1)

    tmax = float(tflat.max()) if tflat.size else 0.0
    s = np.zeros((tflat.size,) + y.shape)
    if tmax > 0:
        sol = scipy.integrate.solve_ivp(rhs, (0.0, tmax), np.zeros(y.size), method=method, dense_output=True,
                                        rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"cross_entropy_flow: the integrator failed: {sol.message}")
        order = np.argsort(tflat)
        vals = sol.sol(tflat[order]).T.reshape((-1,) + y.shape)
        vals[tflat[order] == 0] = 0.0
        s[order] = vals
    train = f0[None] - eta * np.einsum("ij,tjc->tic", k, s)
    test = None
    if ktx is not None:
        test = (f0t[None] - eta * np.einsum("ij,tjc->tic", ktx, s)).reshape(tshape + f0t.shape)
    loss = _cross_entropy(train, y[None]).reshape(tshape)
    return CrossEntropyFlow(train.reshape(tshape + y.shape), test, loss)

