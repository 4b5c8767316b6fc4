"""Closed-form gradient flow and gradient descent on the squared loss: `MSEDynamics`.

See `ntkx._src.dynamics` for the time convention, the numerics and the validation.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from ntkx._src import validate
from ntkx._src.flow import phi
from ntkx._src.flow.spectrum import Spectrum, Times, sym, training_options


class UnstableLearningRateWarning(UserWarning):
    """The learning rate exceeds ``2 / λ_max``: discrete gradient descent diverges.

    Raised as a warning only when discrete steps are computed anyway
    (``allow_unstable=True``); gradient flow (continuous t) is unaffected.
    """



class EarlyStopping(NamedTuple):
    """The time of least validation error and the validation curve."""

    time: float
    mse: np.ndarray



@dataclasses.dataclass(frozen=True)
class MSEModes:
    """The training residual in the eigenbasis of ``Θ + ridge I``.

    Attributes:
        eigenvalues (ndarray, shape (n,)): Descending, with round-off below the cutoff set to 0.
        projections (ndarray, shape (n,) or (n, k)): ``V^T (Y - f0(X))``: the residual's component along each
            eigenvector.
        rate (float): The rate-scaled learning rate ``a`` (η, or η / y.size): mode i decays as ``e^{-a λ_i t}``.
    """

    eigenvalues: np.ndarray
    projections: np.ndarray
    rate: float

    def time_to_residual(self, eps: float) -> np.ndarray:
        """Per mode, the time t at which ``|projection| e^{-a λ t}`` reaches `eps`.

        For several outputs ``|projection|`` is the Euclidean norm over them. A
        mode already at or below `eps` gives 0; a zero-eigenvalue mode above it
        never decays (inf).

        Returns:
            ndarray: shape (n,).
        """
        eps = validate.check_real_nonneg(eps, "eps", strict=True)
        p = self.projections
        mag = np.abs(p) if p.ndim == 1 else np.linalg.norm(p, axis=1)
        lam = self.eigenvalues
        out = np.zeros_like(mag)
        need = mag > eps
        out[need & (lam == 0)] = np.inf
        go = need & (lam > 0)
        out[go] = np.log(mag[go] / eps) / (self.rate * lam[go])
        return out


class MSEDynamics:
    """Closed-form gradient flow / gradient descent on the squared loss.

    Args:
        k_train_train (array_like, shape (n, n)): The NTK Θ on the training points (symmetric, positive
            semi-definite). ``Θ + ridge I`` must pass `validate.check_psd` (smallest eigenvalue ``>= -1e-6 *
            max|eigenvalue|``); that is checked on the eigenvalues when the first call that needs the spectrum
            computes them, so a non-PSD kernel raises ``ValueError("... is not positive semi-definite ...")``
            there, at no extra cost, not in the constructor.
        y_train (array_like, shape (n,) or (n, k)): Targets; outputs keep this shape (with leading time axes for
            arrays of t).
        learning_rate (float, default 1.0): η > 0. Gradient flow (times `t`) is stable at any rate; above
            `max_learning_rate` discrete descent (``steps=``) diverges: an error unless ``allow_unstable=True``
            (then `UnstableLearningRateWarning`).
        ridge (float, default 0.0): ``r >= 0`` in absolute units; the dynamics use ``Θ + r I``.
        convention ({'ntkx', 'neural_tangents'}): The time scale (see the module docstring): exponent ``η t Θ``
            or ``η t Θ / y_train.size``.

    Note:
        One eigendecomposition of ``Θ + r I`` is computed on first need and reused
        for every time; ``t = inf`` alone is answered by a Cholesky solve.
    """

    def __init__(self, k_train_train: Any, y_train: Any, *, learning_rate: float = 1.0, ridge: float = 0.0,
                 convention: str = "ntkx"):
        k = validate.check_kernel(k_train_train, "k_train_train")
        self.n = k.shape[0]
        self.y_train, self.learning_rate, self.ridge, self.convention, self.rate = training_options(
            y_train, self.n, learning_rate, ridge, convention)
        if self.ridge:
            k = k + self.ridge * np.eye(self.n)
        self._spec = Spectrum(k, "k_train_train + ridge * I" if self.ridge else "k_train_train")

    # -- spectrum ---------------------------------------------------------------------------

    @property
    def max_learning_rate(self) -> float:
        """``2 / λ_max(Θ + r I)`` (times ``y_train.size`` in the neural_tangents convention)."""
        lmax = self._spec.lambda_max
        if lmax <= 0:
            return np.inf
        return 2.0 / lmax * (self.learning_rate / self.rate)

    def _unstable(self) -> bool:
        return self.rate * self._spec.lambda_max > 2.0

    @property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``Θ + r I``, descending, round-off below the cutoff set to 0."""
        return self._spec.eig()[0].copy()

    def modes(self, f0_train: Any = None) -> MSEModes:
        """The residual ``Y - f0(X)`` per eigenmode (see `MSEModes`)."""
        f0 = validate.check_outputs(f0_train, self.y_train.shape, "f0_train")
        lam, v = self._spec.eig()
        return MSEModes(lam.copy(), v.T @ (self.y_train - f0), self.rate)

    # -- time handling ----------------------------------------------------------------------

    def _coefs(self, t: Any, steps: Any, allow_unstable: bool, kind: str):
        """(coef (T, n) or None for the direct solve, output time shape)."""
        if steps is not None:
            if t is not None:
                raise ValueError("give either t (gradient flow) or steps (gradient descent), not both")
            k, shape = validate.check_steps(steps)
            if self._unstable():
                msg = (f"learning_rate={self.learning_rate:g} exceeds max_learning_rate={self.max_learning_rate:.6g}"
                       " (2 / lambda_max): discrete gradient descent diverges")
                if not allow_unstable:
                    raise ValueError(msg + "; pass allow_unstable=True to compute it anyway")
                warnings.warn(msg, UnstableLearningRateWarning, stacklevel=3)
            lam, _ = self._spec.eig()
            fn = phi.fit_steps if kind == "fit" else phi.phi_steps
            return fn(lam, self.rate, k[:, None]), shape
        tflat, shape = validate.check_times(t)
        tau = (self.rate * tflat)[:, None]
        if self._spec.use_solve(tau):
            return None, shape
        lam, _ = self._spec.eig()
        return (phi.fit if kind == "fit" else phi.phi)(lam, tau), shape

    def _reshape(self, out: np.ndarray, tshape: Tuple[int, ...], tail: Tuple[int, ...]) -> np.ndarray:
        return out.reshape(tshape + tail)

    # -- outputs ----------------------------------------------------------------------------

    def train_outputs(self, t: Optional[Times] = None, f0_train: Any = None, *, steps: Any = None,
                      allow_unstable: bool = False) -> np.ndarray:
        """Outputs on the training points, ``f_t(X) = f0 + (I - e^{-a t A})(Y - f0)``.

        Args:
            t (float or array_like, optional): Times >= 0 (``np.inf`` allowed) for gradient flow. Exactly one of
                `t` and `steps` is given.
            f0_train (array_like, optional): Outputs at initialization, shape of `y_train` (default 0).
            steps (int or array_like of int, optional): Numbers of discrete gradient-descent steps: ``(I - a
                A)^k`` replaces the exponential.
            allow_unstable (bool): Compute discrete steps even above `max_learning_rate`.

        Returns:
            ndarray: shape ``t.shape + y_train.shape``.
        """
        if t is None and steps is None:
            raise TypeError("train_outputs needs t (times, np.inf allowed) or steps")
        f0 = validate.check_outputs(f0_train, self.y_train.shape, "f0_train")
        r = (self.y_train - f0).reshape(self.n, -1)
        coef, tshape = self._coefs(t, steps, allow_unstable, "fit")
        T = int(np.prod(tshape, dtype=np.int64))
        if coef is None:  # t = inf, nonsingular: the residual is gone
            out = np.broadcast_to(self.y_train.reshape(self.n, -1), (T,) + r.shape).copy()
        else:
            out = f0.reshape(self.n, -1)[None] + self._spec.apply(coef, r)
        return self._reshape(out, tshape, self.y_train.shape)

    def test_mean(self, t: Optional[Times], k_test_train: Any, f0_train: Any = None, f0_test: Any = None, *,
                  steps: Any = None, allow_unstable: bool = False) -> np.ndarray:
        """Outputs on test points, ``f_t(x) = f0(x) + Θ(x, X) T_t (Y - f0(X))``.

        ``T_t = A^{-1}(I - e^{-a t A})`` (`projection`), or for ``steps=k`` its
        discrete analogue ``sum_{j<k} (I - a A)^j a``.

        Args:
            t (float or array_like or None): Times >= 0 (inf allowed); None when `steps` is given.
            k_test_train (array_like, shape (m, n)): Θ(x, X) (no ridge).
            f0_train, f0_test (array_like, optional): Initial outputs, shapes ``y_train.shape`` and ``(m,) +
                y_train.shape[1:]`` (default 0).
            steps, allow_unstable: As in `train_outputs`.

        Returns:
            ndarray: shape ``t.shape + (m,) + y_train.shape[1:]``.
        """
        if t is None and steps is None:
            raise TypeError("test_mean needs t (times, np.inf allowed) or steps")
        ktx = validate.check_cross(k_test_train, self.n, "k_test_train")
        m = ktx.shape[0]
        tail = (m,) + self.y_train.shape[1:]
        f0 = validate.check_outputs(f0_train, self.y_train.shape, "f0_train")
        f0t = validate.check_outputs(f0_test, tail, "f0_test")
        r = (self.y_train - f0).reshape(self.n, -1)
        coef, tshape = self._coefs(t, steps, allow_unstable, "phi")
        T = int(np.prod(tshape, dtype=np.int64))
        if coef is None:
            d = np.broadcast_to(ktx @ self._spec.solve(r), (T, m, r.shape[1]))
        else:
            lam, v = self._spec.eig()
            d = np.einsum("ij,tj,jc->tic", ktx @ v, coef, v.T @ r, optimize=True)
        return self._reshape(f0t.reshape(m, -1)[None] + d, tshape, tail)

    def projection_eigenvalues(self, t: Times) -> np.ndarray:
        """``(1 - e^{-a t λ}) / λ`` per eigenvalue (descending), shape ``t.shape + (n,)``.

        λ = 0 gives ``a t`` (finite t) and 0 at ``t = inf`` (the pseudo-inverse).
        """
        tflat, shape = validate.check_times(t)
        lam, _ = self._spec.eig()
        return phi.phi(lam, (self.rate * tflat)[:, None]).reshape(shape + (self.n,))

    def projection(self, t: Times) -> np.ndarray:
        """The matrix ``T_t = A^{-1}(I - e^{-a t A})``, shape ``t.shape + (n, n)``.

        Proposition 6 of Xiao et al. (2020): the test mean is ``Θ(x, X) T_t Y``.
        Its eigenvalues are `projection_eigenvalues`. Here ``A = Θ + r I`` and
        ``a = η`` (or ``η / y_train.size``) multiplies t in the exponent only.
        """
        tflat, shape = validate.check_times(t)
        tau = (self.rate * tflat)[:, None]
        if self._spec.use_solve(tau):
            p = self._spec.solve(np.eye(self.n))
            return np.broadcast_to(sym(p), (len(tflat), self.n, self.n)).reshape(shape + (self.n, self.n)).copy()
        lam, v = self._spec.eig()
        p = np.einsum("ij,tj,kj->tik", v, phi.phi(lam, tau), v, optimize=True)
        return sym(p).reshape(shape + (self.n, self.n))

    def early_stopping_time(self, k_val_train: Any, y_val: Any, times: Any, f0_train: Any = None,
                            f0_val: Any = None) -> EarlyStopping:
        """The time in `times` with the smallest validation MSE of the test mean.

        Args:
            k_val_train (array_like, shape (m, n)):
            y_val (array_like, shape ``(m,) + y_train.shape[1:]``):
            times (array_like, shape (T,)): Candidate times >= 0 (inf allowed). Ties go to the earliest entry.
            f0_train, f0_val (optional initial outputs.):

        Returns:
            EarlyStopping: ``time`` and ``mse`` (shape (T,), mean over points and outputs).
        """
        tflat, shape = validate.check_times(times, "times")
        if len(shape) != 1 or shape[0] == 0:
            raise ValueError(f"times must be a non-empty 1-D array, got shape {shape}")
        ktx = validate.check_cross(k_val_train, self.n, "k_val_train")
        yv = validate.finite_float_array(y_val, "y_val")
        want = (ktx.shape[0],) + self.y_train.shape[1:]
        if yv.shape != want:
            raise ValueError(f"y_val must have shape {want}, got {yv.shape}")
        pred = self.test_mean(tflat, ktx, f0_train, f0_val)
        mse = np.mean((pred - yv[None]) ** 2, axis=tuple(range(1, pred.ndim)))
        return EarlyStopping(float(tflat[int(np.argmin(mse))]), mse)

