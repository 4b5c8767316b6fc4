"""Training dynamics of infinitely wide networks, in function space.

An infinitely wide network trained by gradient descent evolves as its
linearization, so its outputs follow linear dynamics driven by the NTK Θ
(Jacot et al. 2018; Lee et al. 2019, "Wide neural networks of any depth evolve
as linear models under gradient descent"). This module gives those dynamics in
closed form from ONE symmetric eigendecomposition of the training kernel,
reused for every time asked for, plus the softmax cross-entropy flow by ODE
integration.

Time convention
---------------
``convention='ntkx'`` (the default): the loss is the sum over training points
and outputs, ``L = 1/2 sum_ij (f_i(x_j) - y_ij)^2``, and gradient flow with
learning rate η is ``df(X)/dt = -η Θ (f(X) - Y)``. The train residual is then
``e^{-η t Θ} (f0(X) - Y)``; ``k`` discrete gradient-descent steps give
``(I - η Θ)^k (f0(X) - Y)``.

``convention='neural_tangents'``: the loss of neural-tangents'
``predict.gradient_descent_mse`` is the MEAN over all ``n k = y_train.size``
targets, so the exponent becomes ``η t Θ / (n k)`` (and a discrete step uses the
rate ``η / (n k)``). Everything else is identical.

A ridge ``r >= 0`` (absolute units) replaces Θ by ``Θ + r I`` in the training
dynamics, as neural-tangents' ``diag_reg`` does; the test-train kernel is not
changed. (neural-tangents' ``diag_reg`` is by default relative to the mean
diagonal of the kernel; `gradient_descent_mse` and
`gradient_descent_mse_ensemble` convert it.)

Numerics
--------
Eigenvalues of ``Θ + r I`` below ``n * eps * λ_max`` (including negative
round-off) are set to exactly 0. The functions of the kernel are evaluated per
eigenvalue λ with the rate-scaled time τ (``τ = η t``, or ``η t / (n k)``):

* ``(1 - e^{-λ τ}) / λ`` as ``-expm1(-λ τ) / λ``, with the exact limit ``τ``
  at λ = 0, so singular kernels (duplicate training points) give finite,
  correct outputs at every finite t;
* at ``t = inf`` the same function is ``1/λ`` on the range of the kernel and 0
  on its null space (the pseudo-inverse). On the null space of a positive
  semi-definite kernel the test-train kernel vanishes too, so this is the limit
  of the test predictions; the train residual's null-space part never decays.

When only ``t = inf`` is requested and no eigendecomposition exists yet, the
system is solved by a Cholesky factorization instead. If the factorization fails
or a pivot is tiny (``pivot^2 <= n * eps * max diag``, a numerically singular
kernel), the eigendecomposition pseudo-inverse with the cutoff above is used.

Validation
----------
Every kernel and covariance matrix taken here must be finite, symmetric
(``max|K - K^T| <= 1e-6 max|K|``, then symmetrized) and positive semi-definite
by one rule, `ntkx._src.validate.check_psd`: the smallest eigenvalue must be
``>= -1e-6 * max|eigenvalue|`` (``validate.PSD_TOL``). Round-off negatives of a
PSD kernel (duplicated points, a rank-deficient Gram matrix ``X X^T``) are far
inside it. Where the eigenvalues are computed anyway the check is on them;
otherwise a Cholesky factorization of the slightly shifted matrix decides
(n^3 / 3 flops), never a second eigendecomposition. A matrix that is not PSD
raises ``ValueError("<name> is not positive semi-definite: ...")``.

* The matrix of the dynamics, ``Θ + r I`` (`MSEDynamics`, the NTK of
  `GPDynamics`, and ``K + r I`` for its ``get='nngp'``), is checked when its
  spectrum is first needed, i.e. by the first call that computes outputs, not
  by the constructor; a well-conditioned Cholesky factor (the ``t = inf``
  solve) is itself the proof. The requirement is on the matrix the flow uses, so
  it includes the ridge.
* The NNGP ``K(X, X)`` of `GPDynamics` is a prior covariance and is checked on
  its own (no ridge) by the constructor; a full ``nngp_test_test`` by each
  `GPDynamics.predict` (with ``diag_only``, or given as a diagonal, only the
  variances are used and checked: each ``>= -1e-6 * max|variance|``). The
  test-train blocks cannot be checked without forming the joint matrix (see
  the notes of `GPDynamics`).
* `cross_entropy_flow` checks its kernel, and its targets are probability rows
  (`ntkx._src.validate.check_probability_rows`).
* The neural-tangents-style `gradient_descent_mse` and
  `gradient_descent_mse_ensemble` check through the classes they build.

References: Jacot et al. (2018); Lee et al. (2019), Eqs. 15-16; Xiao, Pennington
and Schoenholz (2020), "Disentangling trainability and generalization in deep
neural networks", Proposition 6.
"""

from __future__ import annotations

import collections
import dataclasses
import numbers
import warnings
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

import numpy as np
import scipy.integrate
import scipy.linalg

from ntkx._src import validate

__all__ = [
    "MSEDynamics", "MSEModes", "GPDynamics", "Gaussian", "EarlyStopping", "CrossEntropyFlow",
    "UnstableLearningRateWarning", "cross_entropy_flow", "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
]

_EPS = np.finfo(np.float64).eps
#: Relative asymmetry ``max|K - K^T| / max|K|`` tolerated (and symmetrized away):
#: float32 kernels and kernels assembled from tiles differ by round-off.
_SYM_TOL = 1e-6
#: Eigenvalues below ``-_NEG_TOL * max|λ|`` mean the kernel is not PSD (an error);
#: the one rule of `validate.check_psd`, shared by every matrix this module takes.
_NEG_TOL = validate.PSD_TOL
_CONVENTIONS = ("ntkx", "neural_tangents")

Times = Union[float, np.ndarray]


class UnstableLearningRateWarning(UserWarning):
    """The learning rate exceeds ``2 / λ_max``: discrete gradient descent diverges.

    Raised as a warning only when discrete steps are computed anyway
    (``allow_unstable=True``); gradient flow (continuous t) is unaffected.
    """


class Gaussian(NamedTuple):
    """Mean and covariance (``None`` when not computed) of the network outputs."""

    mean: np.ndarray
    covariance: Optional[np.ndarray]


class EarlyStopping(NamedTuple):
    """The time of least validation error and the validation curve."""

    time: float
    mse: np.ndarray


class CrossEntropyFlow(NamedTuple):
    """Outputs of the cross-entropy flow at each requested time.

    ``train`` is ``t.shape + (n, k)``, ``test`` ``t.shape + (m, k)`` (``None``
    without test points) and ``loss`` the summed training cross-entropy,
    ``t.shape``.
    """

    train: np.ndarray
    test: Optional[np.ndarray]
    loss: np.ndarray


# ----------------------------------------------------------------------------- validation


def _as_float_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(validate.numeric_array(x, name), dtype=np.float64)
    validate.check_finite(arr, f"{name} of shape {arr.shape}")
    return arr


def _check_kernel(k: Any, name: str, n: Optional[int] = None) -> np.ndarray:
    """A finite, square, symmetric ``(n, n)`` matrix (symmetrized copy)."""
    k = _as_float_array(k, name)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square matrix (n, n), got shape {k.shape}")
    if k.shape[0] == 0:
        raise ValueError(f"{name} must have at least one training point, got shape {k.shape}")
    if n is not None and k.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, {n}) like the other training kernel, got {k.shape}")
    scale = float(np.max(np.abs(k)))
    asym = float(np.max(np.abs(k - k.T)))
    if asym > _SYM_TOL * scale:
        raise ValueError(
            f"{name} of shape {k.shape} must be symmetric: max |K - K^T| = {asym:.3g} "
            f"against max |K| = {scale:.3g} (tolerance {_SYM_TOL:g} relative)")
    return 0.5 * (k + k.T)


def _check_targets(y: Any, n: int, name: str) -> np.ndarray:
    y = _as_float_array(y, name)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, k) to match the {n} training points, "
                         f"got {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} must have at least one output, got shape {y.shape}")
    return y


def _check_cross(k: Any, n: int, name: str) -> np.ndarray:
    k = _as_float_array(k, name)
    if k.ndim != 2 or k.shape[1] != n:
        raise ValueError(f"{name} must have shape (m, {n}) (test points x {n} training points), got {k.shape}")
    return k


def _check_outputs(f: Any, shape: Tuple[int, ...], name: str) -> np.ndarray:
    """Initial outputs: None (zeros), a scalar, or an array of exactly `shape`."""
    if f is None:
        return np.zeros(shape)
    f = _as_float_array(f, name)
    if f.ndim == 0:
        return np.full(shape, float(f))
    if f.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {f.shape}")
    return f


def _check_real(x: Any, name: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {x!r}")
    v = float(x)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def _check_positive(x: Any, name: str) -> float:
    v = _check_real(x, name)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {x!r}")
    return v


def _check_nonneg(x: Any, name: str) -> float:
    v = _check_real(x, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {x!r}")
    return v


def _check_convention(c: Any) -> str:
    if c not in _CONVENTIONS:
        raise ValueError(f"convention must be one of {_CONVENTIONS}, got {c!r}")
    return c


def _as_times(t: Any, name: str = "t") -> Tuple[np.ndarray, Tuple[int, ...]]:
    """Times ``>= 0`` (``inf`` allowed) as a flat array and the caller's shape."""
    if t is None:
        raise TypeError(f"{name} must be a time or an array of times >= 0 (np.inf allowed), got None")
    try:
        arr = np.asarray(t)
    except Exception as e:
        raise TypeError(f"{name} could not be converted to an array of times: {e}") from None
    if arr.dtype == object or arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real times, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name} of shape {arr.shape} contains NaN")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0, got minimum {arr.min()!r} (shape {arr.shape})")
    return arr.reshape(-1), arr.shape


def _as_steps(steps: Any) -> Tuple[np.ndarray, Tuple[int, ...]]:
    arr = np.asarray(steps)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"steps must be an integer or an array of integers, got {steps!r}")
    if (arr < 0).any():
        raise ValueError(f"steps must be >= 0, got minimum {arr.min()} (shape {arr.shape})")
    return arr.reshape(-1).astype(np.int64), arr.shape


# ----------------------------------------------------------------------------- phi-functions
#
# Each takes eigenvalues ``lam`` (n,) that are 0 or >= the cutoff, and times as a
# column (T, 1); each returns (T, n).


def _fit(lam: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``1 - e^{-λ τ}`` (0 on the null space, at every τ)."""
    with np.errstate(invalid="ignore"):
        x = np.where(lam > 0, lam * tau, 0.0)
    return -np.expm1(-x)


def _phi(lam: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``(1 - e^{-λ τ}) / λ``: τ at λ = 0 for finite τ, the pseudo-inverse at τ = inf."""
    pos = lam > 0
    safe = np.where(pos, lam, 1.0)
    out = np.where(pos, _fit(lam, tau) / safe, tau)
    return np.where(~pos & np.isinf(tau), 0.0, out)


def _fit_steps(lam: np.ndarray, rate: float, k: np.ndarray) -> np.ndarray:
    """``1 - (1 - a λ)^k``, via expm1/log1p while ``0 <= a λ < 1``."""
    q = 1.0 - rate * lam
    small = (q > 0) & (lam >= 0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        stable = -np.expm1(k * np.log1p(-rate * np.where(small, lam, 0.0)))
        direct = 1.0 - np.power(q, k)
    return np.where(small, stable, direct)


def _phi_steps(lam: np.ndarray, rate: float, k: np.ndarray) -> np.ndarray:
    """``sum_{j<k} (1 - a λ)^j a = (1 - (1 - a λ)^k) / λ`` (``a k`` at λ = 0)."""
    pos = lam > 0
    safe = np.where(pos, lam, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(pos, _fit_steps(lam, rate, k) / safe, rate * k.astype(np.float64))


# ----------------------------------------------------------------------------- spectrum


_DIVERGES = "; gradient flow on it diverges"
_NOT_COVARIANCE = "; it is not a covariance (the predicted variances could be negative)"


class _Spectrum:
    """Lazy eigendecomposition and Cholesky factor of one symmetric PSD matrix.

    Every route to the matrix's spectrum checks it is PSD (`validate.check_psd`)
    without extra work: `eig` and `lambda_max` on the eigenvalues they compute, and
    a successful, well-conditioned `cho` is itself the proof (a failed one falls
    back to `eig`).
    """

    def __init__(self, a: np.ndarray, name: str):
        self.a = a
        self.n = a.shape[0]
        self.name = name
        self._evals: Optional[np.ndarray] = None
        self._evecs: Optional[np.ndarray] = None
        self._lmax: Optional[float] = None
        self._cho: Any = None
        self._cho_tried = False

    @property
    def has_eig(self) -> bool:
        return self._evecs is not None

    def eig(self) -> Tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (descending, clipped) and eigenvectors (columns)."""
        if self._evecs is None:
            w, v = scipy.linalg.eigh(self.a)
            w, v = w[::-1].copy(), np.ascontiguousarray(v[:, ::-1])
            scale = max(abs(w[0]), abs(w[-1]))
            validate.check_psd(w, self.name, tol=_NEG_TOL, eigenvalues=True, suffix=_DIVERGES)
            cutoff = self.n * _EPS * scale
            w[w < cutoff] = 0.0
            self._evals, self._evecs = w, v
            self._lmax = float(w[0])
        return self._evals, self._evecs

    @property
    def lambda_max(self) -> float:
        """The largest eigenvalue, from all the eigenvalues (no eigenvectors).

        All of them cost the same as the largest alone (the tridiagonal reduction
        dominates both), and they give the PSD check for free.
        """
        if self._lmax is None:
            w = scipy.linalg.eigh(self.a, eigvals_only=True, check_finite=False)
            validate.check_psd(w, self.name, tol=_NEG_TOL, eigenvalues=True, suffix=_DIVERGES)
            self._lmax = max(float(w[-1]), 0.0)
        return self._lmax

    def cho(self) -> Any:
        """The Cholesky factor, or None when the matrix is (numerically) singular."""
        if not self._cho_tried:
            self._cho_tried = True
            try:
                c, lower = scipy.linalg.cho_factor(self.a, lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                return None
            piv = np.diag(c)
            if np.min(piv) ** 2 > self.n * _EPS * np.max(np.diag(self.a)):
                self._cho = (c, lower)
        return self._cho

    def use_solve(self, tau: np.ndarray) -> bool:
        """Whether to answer `tau` (all inf) by a direct solve instead of eigh.

        Always the solve when the Cholesky factorization is well conditioned,
        whether or not an eigendecomposition is cached, so the same call gives the
        same answer regardless of what ran before.
        """
        return bool(np.all(np.isinf(tau))) and self.cho() is not None

    def solve(self, b: np.ndarray) -> np.ndarray:
        return scipy.linalg.cho_solve(self._cho, b, check_finite=False)

    def apply(self, coef: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``V diag(coef_t) V^T rhs`` for each row t of `coef`: (T, n, c)."""
        _, v = self.eig()
        w = v.T @ rhs
        return np.einsum("ij,tj,jc->tic", v, coef, w, optimize=True)


def _check_variances(d: np.ndarray, name: str) -> None:
    """Raises unless every prior variance is ``>= -_NEG_TOL * max|variance|``.

    The diagonal of a PSD matrix is >= 0; the tolerance is that of
    `validate.check_psd` (the entries of ``diag(d)`` are its eigenvalues).

    Args:
        d: The variances (the diagonal of a covariance matrix), shape (m,).
        name: The argument as the message names it.

    Raises:
        ValueError: naming the first negative variance.
    """
    if d.size == 0:
        return
    bad = d < -_NEG_TOL * float(np.max(np.abs(d)))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} (the test variances) must be >= 0: entry {i} is {d[i]:.6g} "
                         f"(tolerance -{_NEG_TOL:g} * max|variance|){_NOT_COVARIANCE}")


def _rate(learning_rate: float, convention: str, size: int) -> float:
    return learning_rate if convention == "ntkx" else learning_rate / size


def _sym(c: np.ndarray) -> np.ndarray:
    return 0.5 * (c + np.swapaxes(c, -1, -2))


# ----------------------------------------------------------------------------- MSE


@dataclasses.dataclass(frozen=True)
class MSEModes:
    """The training residual in the eigenbasis of ``Θ + ridge I``.

    Attributes
    ----------
    eigenvalues : ndarray, shape (n,)
        Descending, with round-off below the cutoff set to 0.
    projections : ndarray, shape (n,) or (n, k)
        ``V^T (Y - f0(X))``: the residual's component along each eigenvector.
    rate : float
        The rate-scaled learning rate ``a`` (η, or η / y.size): mode i decays as
        ``e^{-a λ_i t}``.
    """

    eigenvalues: np.ndarray
    projections: np.ndarray
    rate: float

    def time_to_residual(self, eps: float) -> np.ndarray:
        """Per mode, the time t at which ``|projection| e^{-a λ t}`` reaches `eps`.

        For several outputs ``|projection|`` is the Euclidean norm over them. A
        mode already at or below `eps` gives 0; a zero-eigenvalue mode above it
        never decays (inf).

        Returns
        -------
        ndarray, shape (n,)
        """
        eps = _check_positive(eps, "eps")
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

    Parameters
    ----------
    k_train_train : array_like, shape (n, n)
        The NTK Θ on the training points (symmetric, positive semi-definite).
        ``Θ + ridge I`` must pass `validate.check_psd` (smallest eigenvalue
        ``>= -1e-6 * max|eigenvalue|``); that is checked on the eigenvalues when
        the first call that needs the spectrum computes them, so a non-PSD kernel
        raises ``ValueError("... is not positive semi-definite ...")`` there, at no
        extra cost, not in the constructor.
    y_train : array_like, shape (n,) or (n, k)
        Targets; outputs keep this shape (with leading time axes for arrays of t).
    learning_rate : float, default 1.0
        η > 0. Gradient flow (times `t`) is stable at any rate; above
        `max_learning_rate` discrete descent (``steps=``) diverges: an error
        unless ``allow_unstable=True`` (then `UnstableLearningRateWarning`).
    ridge : float, default 0.0
        ``r >= 0`` in absolute units; the dynamics use ``Θ + r I``.
    convention : {'ntkx', 'neural_tangents'}
        The time scale (see the module docstring): exponent ``η t Θ`` or
        ``η t Θ / y_train.size``.

    Notes
    -----
    One eigendecomposition of ``Θ + r I`` is computed on first need and reused
    for every time; ``t = inf`` alone is answered by a Cholesky solve.
    """

    def __init__(self, k_train_train: Any, y_train: Any, *, learning_rate: float = 1.0, ridge: float = 0.0,
                 convention: str = "ntkx"):
        k = _check_kernel(k_train_train, "k_train_train")
        self.n = k.shape[0]
        self.y_train = _check_targets(y_train, self.n, "y_train")
        self.learning_rate = _check_positive(learning_rate, "learning_rate")
        self.ridge = _check_nonneg(ridge, "ridge")
        self.convention = _check_convention(convention)
        self.rate = _rate(self.learning_rate, self.convention, self.y_train.size)
        if self.ridge:
            k = k + self.ridge * np.eye(self.n)
        self._spec = _Spectrum(k, "k_train_train + ridge * I" if self.ridge else "k_train_train")

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
        f0 = _check_outputs(f0_train, self.y_train.shape, "f0_train")
        lam, v = self._spec.eig()
        return MSEModes(lam.copy(), v.T @ (self.y_train - f0), self.rate)

    # -- time handling ----------------------------------------------------------------------

    def _coefs(self, t: Any, steps: Any, allow_unstable: bool, kind: str):
        """(coef (T, n) or None for the direct solve, output time shape)."""
        if steps is not None:
            if t is not None:
                raise ValueError("give either t (gradient flow) or steps (gradient descent), not both")
            k, shape = _as_steps(steps)
            if self._unstable():
                msg = (f"learning_rate={self.learning_rate:g} exceeds max_learning_rate={self.max_learning_rate:.6g}"
                       " (2 / lambda_max): discrete gradient descent diverges")
                if not allow_unstable:
                    raise ValueError(msg + "; pass allow_unstable=True to compute it anyway")
                warnings.warn(msg, UnstableLearningRateWarning, stacklevel=3)
            lam, _ = self._spec.eig()
            fn = _fit_steps if kind == "fit" else _phi_steps
            return fn(lam, self.rate, k[:, None]), shape
        tflat, shape = _as_times(t)
        tau = (self.rate * tflat)[:, None]
        if self._spec.use_solve(tau):
            return None, shape
        lam, _ = self._spec.eig()
        return (_fit if kind == "fit" else _phi)(lam, tau), shape

    def _reshape(self, out: np.ndarray, tshape: Tuple[int, ...], tail: Tuple[int, ...]) -> np.ndarray:
        return out.reshape(tshape + tail)

    # -- outputs ----------------------------------------------------------------------------

    def train_outputs(self, t: Optional[Times] = None, f0_train: Any = None, *, steps: Any = None,
                      allow_unstable: bool = False) -> np.ndarray:
        """Outputs on the training points, ``f_t(X) = f0 + (I - e^{-a t A})(Y - f0)``.

        Parameters
        ----------
        t : float or array_like, optional
            Times >= 0 (``np.inf`` allowed) for gradient flow. Exactly one of `t`
            and `steps` is given.
        f0_train : array_like, optional
            Outputs at initialization, shape of `y_train` (default 0).
        steps : int or array_like of int, optional
            Numbers of discrete gradient-descent steps: ``(I - a A)^k`` replaces the
            exponential.
        allow_unstable : bool
            Compute discrete steps even above `max_learning_rate`.

        Returns
        -------
        ndarray, shape ``t.shape + y_train.shape``
        """
        if t is None and steps is None:
            raise TypeError("train_outputs needs t (times, np.inf allowed) or steps")
        f0 = _check_outputs(f0_train, self.y_train.shape, "f0_train")
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

        Parameters
        ----------
        t : float or array_like or None
            Times >= 0 (inf allowed); None when `steps` is given.
        k_test_train : array_like, shape (m, n)
            Θ(x, X) (no ridge).
        f0_train, f0_test : array_like, optional
            Initial outputs, shapes ``y_train.shape`` and ``(m,) + y_train.shape[1:]``
            (default 0).
        steps, allow_unstable
            As in `train_outputs`.

        Returns
        -------
        ndarray, shape ``t.shape + (m,) + y_train.shape[1:]``
        """
        if t is None and steps is None:
            raise TypeError("test_mean needs t (times, np.inf allowed) or steps")
        ktx = _check_cross(k_test_train, self.n, "k_test_train")
        m = ktx.shape[0]
        tail = (m,) + self.y_train.shape[1:]
        f0 = _check_outputs(f0_train, self.y_train.shape, "f0_train")
        f0t = _check_outputs(f0_test, tail, "f0_test")
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
        tflat, shape = _as_times(t)
        lam, _ = self._spec.eig()
        return _phi(lam, (self.rate * tflat)[:, None]).reshape(shape + (self.n,))

    def projection(self, t: Times) -> np.ndarray:
        """The matrix ``T_t = A^{-1}(I - e^{-a t A})``, shape ``t.shape + (n, n)``.

        Proposition 6 of Xiao et al. (2020): the test mean is ``Θ(x, X) T_t Y``.
        Its eigenvalues are `projection_eigenvalues`. Here ``A = Θ + r I`` and
        ``a = η`` (or ``η / y_train.size``) multiplies t in the exponent only.
        """
        tflat, shape = _as_times(t)
        tau = (self.rate * tflat)[:, None]
        if self._spec.use_solve(tau):
            p = self._spec.solve(np.eye(self.n))
            return np.broadcast_to(_sym(p), (len(tflat), self.n, self.n)).reshape(shape + (self.n, self.n)).copy()
        lam, v = self._spec.eig()
        p = np.einsum("ij,tj,kj->tik", v, _phi(lam, tau), v, optimize=True)
        return _sym(p).reshape(shape + (self.n, self.n))

    def early_stopping_time(self, k_val_train: Any, y_val: Any, times: Any, f0_train: Any = None,
                            f0_val: Any = None) -> EarlyStopping:
        """The time in `times` with the smallest validation MSE of the test mean.

        Parameters
        ----------
        k_val_train : array_like, shape (m, n)
        y_val : array_like, shape ``(m,) + y_train.shape[1:]``
        times : array_like, shape (T,)
            Candidate times >= 0 (inf allowed). Ties go to the earliest entry.
        f0_train, f0_val : optional initial outputs.

        Returns
        -------
        EarlyStopping
            ``time`` and ``mse`` (shape (T,), mean over points and outputs).
        """
        tflat, shape = _as_times(times, "times")
        if len(shape) != 1 or shape[0] == 0:
            raise ValueError(f"times must be a non-empty 1-D array, got shape {shape}")
        ktx = _check_cross(k_val_train, self.n, "k_val_train")
        yv = _as_float_array(y_val, "y_val")
        want = (ktx.shape[0],) + self.y_train.shape[1:]
        if yv.shape != want:
            raise ValueError(f"y_val must have shape {want}, got {yv.shape}")
        pred = self.test_mean(tflat, ktx, f0_train, f0_val)
        mse = np.mean((pred - yv[None]) ** 2, axis=tuple(range(1, pred.ndim)))
        return EarlyStopping(float(tflat[int(np.argmin(mse))]), mse)


# ----------------------------------------------------------------------------- GP


class GPDynamics:
    """The Gaussian process of an infinite ensemble of wide networks during training.

    With ``f0 ~ GP(0, K)`` (K the NNGP) and gradient flow on the squared loss,
    ``f_t(x) = f0(x) + Θ(x, X) T_t (Y - f0(X))``, ``T_t = A^{-1}(I - e^{-a t A})``,
    ``A = Θ + r I`` (Lee et al. 2019, Eqs. 15-16). Being linear in f0 it is
    Gaussian with

    * ``mean(x) = Θ(x, X) T_t Y``
    * ``cov(x, x') = K(x, x') + Θ(x, X) T_t K(X, X) T_t Θ(X, x')
      - Θ(x, X) T_t K(X, x') - K(x, X) T_t Θ(X, x')``.

    ``get='nngp'`` trains only the readout layer (equivalently: Θ replaced by K
    everywhere). There the ridge is also added to the prior covariance of the
    training outputs (observation noise r), which makes
    ``cov = K(x, x') - K(x, X) A^{-1}(I - e^{-2 a t A}) K(X, x')`` with
    ``A = K + r I``, and at ``t = inf`` the exact GP posterior with noise variance
    r. For ``get='ntk'`` the ridge only enters the dynamics (the prior K(X, X) is
    noise-free). Both choices are those of neural-tangents'
    ``gradient_descent_mse_ensemble``.

    Parameters
    ----------
    ntk_train_train, nngp_train_train : array_like, shape (n, n)
        Symmetric and positive semi-definite (see "Validation" in the module
        docstring): ``Θ + ridge I`` when the NTK dynamics first need it, and the
        NNGP by itself, here, since it is the prior covariance.
    y_train : array_like, shape (n,) or (n, k)
    learning_rate : float, default 1.0
    ridge : float, default 0.0
        Absolute units.
    convention : {'ntkx', 'neural_tangents'}
        Time scale, as in `MSEDynamics`.

    Raises
    ------
    ValueError
        ``"nngp_train_train is not positive semi-definite: ..."`` and the other
        input checks.

    Notes
    -----
    Negative variances. Every covariance returned is that of a linear function
    of the prior ``f0 ~ GP(0, K)``, so it is PSD whenever the prior over the
    training and the test points together is: the train-train NNGP and a full
    test-test NNGP are checked here, the test-train blocks (rectangular) cannot
    be checked without forming that joint matrix, so blocks of different kernels
    can still give negative variances. With consistent inputs, round-off can
    leave variances of order ``-n * eps * max|K|`` where the exact variance is 0
    (a test point equal to a training point, at ``t = inf``); they are returned
    as computed, not clamped to 0 (nothing in this module clamps outputs), so
    they stay equal to the dense closed forms to round-off.
    """

    def __init__(self, ntk_train_train: Any, nngp_train_train: Any, y_train: Any, *, learning_rate: float = 1.0,
                 ridge: float = 0.0, convention: str = "ntkx"):
        self._init(ntk_train_train, nngp_train_train, y_train, learning_rate, ridge, convention, check_nngp=True)

    def _init(self, ntk_train_train: Any, nngp_train_train: Any, y_train: Any, learning_rate: float, ridge: float,
              convention: str, check_nngp: bool) -> None:
        """The constructor; ``check_nngp=False`` when the caller already checked the NNGP is PSD."""
        theta = _check_kernel(ntk_train_train, "ntk_train_train")
        self.n = theta.shape[0]
        k = _check_kernel(nngp_train_train, "nngp_train_train", self.n)
        self.y_train = _check_targets(y_train, self.n, "y_train")
        self.learning_rate = _check_positive(learning_rate, "learning_rate")
        self.ridge = _check_nonneg(ridge, "ridge")
        self.convention = _check_convention(convention)
        self.rate = _rate(self.learning_rate, self.convention, self.y_train.size)
        if check_nngp:
            validate.check_psd(k, "nngp_train_train", tol=_NEG_TOL, suffix=_NOT_COVARIANCE)
        eye = self.ridge * np.eye(self.n)
        self._nngp = k
        self._spec = {"ntk": _Spectrum(theta + eye, "ntk_train_train + ridge * I"),
                      "nngp": _Spectrum(k + eye, "nngp_train_train + ridge * I")}
        self._kv: Optional[np.ndarray] = None  # V^T K V in the NTK eigenbasis

    def _k_in_ntk_basis(self) -> np.ndarray:
        if self._kv is None:
            _, v = self._spec["ntk"].eig()
            self._kv = _sym(v.T @ self._nngp @ v)
        return self._kv

    def predict(self, t: Times, ntk_test_train: Any = None, nngp_test_train: Any = None, nngp_test_test: Any = None,
                get: str = "ntk", compute_cov: bool = True, diag_only: bool = False) -> Gaussian:
        """Mean and covariance of the outputs at time[s] `t`.

        Parameters
        ----------
        t : float or array_like
            Times >= 0, ``np.inf`` allowed (leading axes of the outputs).
        ntk_test_train : array_like, shape (m, n), optional
            Θ(x, X); needed for ``get='ntk'`` on test points.
        nngp_test_train : array_like, shape (m, n), optional
            K(x, X); needed for ``get='nngp'``, and for the NTK covariance.
        nngp_test_test : array_like, shape (m, m) or (m,), optional
            K(x, x') for the covariance; with ``diag_only`` its diagonal suffices.
        get : {'ntk', 'nngp'}
        compute_cov : bool
            If False, ``covariance`` is None.
        diag_only : bool
            Return only the variances (``t.shape + (m,)``), never forming an
            ``(m, m)`` matrix.

        Returns
        -------
        Gaussian
            ``mean``: ``t.shape + (m,) + y_train.shape[1:]``; ``covariance``:
            ``t.shape + (m, m)`` (symmetric, shared by all outputs) or
            ``t.shape + (m,)``.

        Notes
        -----
        With all test arguments None the training points are used, with the
        regularized kernel as their test-train kernel: mean ``(I - E_t) Y`` and
        covariance ``E_t K E_t`` (ntk) or ``E_t A`` ``E_t`` (nngp), ``E_t = e^{-a t A}``.
        """
        if get not in ("ntk", "nngp"):
            raise ValueError(f"get must be 'ntk' or 'nngp', got {get!r}")
        tflat, tshape = _as_times(t)
        tau = (self.rate * tflat)[:, None]
        spec = self._spec[get]
        y2 = self.y_train.reshape(self.n, -1)
        if ntk_test_train is None and nngp_test_train is None and nngp_test_test is None:
            mean, cov = self._on_train(get, spec, tau, compute_cov, diag_only, y2)
            m = self.n
        else:
            mean, cov, m = self._on_test(get, spec, tau, compute_cov, diag_only, y2, ntk_test_train,
                                         nngp_test_train, nngp_test_test)
        mean = mean.reshape(tshape + (m,) + self.y_train.shape[1:])
        if cov is not None:
            cov = cov.reshape(tshape + ((m,) if diag_only else (m, m)))
        return Gaussian(mean, cov)

    def _on_train(self, get, spec, tau, compute_cov, diag_only, y2):
        n, T = self.n, tau.shape[0]
        if spec.use_solve(tau):
            mean = np.broadcast_to(y2, (T, n, y2.shape[1])).copy()
            cov = None
            if compute_cov:
                cov = np.zeros((T, n) if diag_only else (T, n, n))
            return mean, cov
        lam, v = spec.eig()
        mean = spec.apply(_fit(lam, tau), y2)
        if not compute_cov:
            return mean, None
        with np.errstate(invalid="ignore"):
            e = np.exp(-np.where(lam > 0, lam * tau, 0.0))  # (T, n)
        if get == "nngp":
            w = lam * e * e
            if diag_only:
                return mean, np.einsum("ij,tj,ij->ti", v, w, v, optimize=True)
            return mean, _sym(np.einsum("ij,tj,kj->tik", v, w, v, optimize=True))
        kv = self._k_in_ntk_basis()
        if diag_only:  # one time at a time: O(n^2) working memory, not (T, n, n)
            var = np.empty((T, n))
            for i in range(T):
                ve = v * e[i]  # V diag(e_t)
                var[i] = np.einsum("ij,ij->i", ve @ kv, ve)
            return mean, var
        ve = v[None] * e[:, None, :]  # V diag(e_t): (T, n, n)
        return mean, _sym((ve @ kv) @ np.swapaxes(ve, 1, 2))

    def _on_test(self, get, spec, tau, compute_cov, diag_only, y2, ntk_tx, nngp_tx, nngp_tt):
        n, T = self.n, tau.shape[0]
        if get == "ntk" and ntk_tx is None:
            raise ValueError("get='ntk' on test points needs ntk_test_train (m, n)")
        if (get == "nngp" or compute_cov) and nngp_tx is None:
            raise ValueError(f"get={get!r}" + (" with compute_cov=True" if get == "ntk" else "")
                             + " on test points needs nngp_test_train (m, n)")
        ktx = _check_cross(nngp_tx, n, "nngp_test_train") if nngp_tx is not None else None
        dtx = _check_cross(ntk_tx, n, "ntk_test_train") if get == "ntk" else ktx
        m = dtx.shape[0]
        if ktx is not None and ktx.shape[0] != m:
            raise ValueError(f"nngp_test_train has shape {ktx.shape} but ntk_test_train has {dtx.shape}: "
                             "both must be (m, n) for the same m test points")
        ktt = None
        if compute_cov:
            if nngp_tt is None:
                raise ValueError("compute_cov=True on test points needs nngp_test_test, "
                                 f"shape ({m}, {m}) (or ({m},), its diagonal, with diag_only=True)")
            ktt = _as_float_array(nngp_tt, "nngp_test_test")
            if ktt.shape == (m, m):
                if diag_only:
                    ktt = np.diag(ktt).copy()
                else:
                    ktt = _check_kernel(ktt, "nngp_test_test")
                    validate.check_psd(ktt, "nngp_test_test", tol=_NEG_TOL, suffix=_NOT_COVARIANCE)
            elif not (diag_only and ktt.shape == (m,)):
                raise ValueError(f"nngp_test_test must have shape ({m}, {m})"
                                 + (f" or ({m},) (its diagonal)" if diag_only else " (diag_only=False)")
                                 + f", got {ktt.shape}")
            if ktt.ndim == 1:
                _check_variances(ktt, "nngp_test_test")

        if spec.use_solve(tau):
            sol = spec.solve(np.concatenate([y2, dtx.T], axis=1))
            mean = np.broadcast_to(dtx @ sol[:, :y2.shape[1]], (T, m, y2.shape[1]))
            if not compute_cov:
                return mean, None, m
            mt = sol[:, y2.shape[1]:y2.shape[1] + m]  # A^{-1} D(X, x)
            if get == "nngp":
                if diag_only:
                    cov = ktt - np.einsum("ij,ji->i", ktx, mt)
                else:
                    cov = _sym(ktt - ktx @ mt)
            else:
                km = self._nngp @ mt
                if diag_only:
                    cov = ktt + np.einsum("ji,ji->i", mt, km) - 2 * np.einsum("ij,ji->i", ktx, mt)
                else:
                    cross = ktx @ mt
                    cov = _sym(ktt + mt.T @ km - cross - cross.T)
            return mean, np.broadcast_to(cov, (T,) + cov.shape), m

        lam, v = spec.eig()
        b = dtx @ v  # D(x, X) V
        phi = _phi(lam, tau)  # (T, n)
        mean = np.einsum("ij,tj,jc->tic", b, phi, v.T @ y2, optimize=True)
        if not compute_cov:
            return mean, None, m
        if get == "nngp":
            w = _phi(lam, 2 * tau)  # (1 - e^{-2 λ τ}) / λ
            if diag_only:
                cov = ktt[None] - np.einsum("ij,tj,ij->ti", b, w, b, optimize=True)
            else:
                cov = _sym(ktt[None] - np.einsum("ij,tj,kj->tik", b, w, b, optimize=True))
            return mean, cov, m
        c = ktx @ v  # K(x, X) V
        kv = self._k_in_ntk_basis()
        bg = b[None] * phi[:, None, :]  # (T, m, n)
        left = bg @ kv
        if diag_only:
            cov = ktt[None] + np.einsum("tij,tij->ti", left, bg) - 2 * np.einsum("tij,ij->ti", bg, c)
            return mean, cov, m
        cross = bg @ c.T
        cov = ktt[None] + left @ np.swapaxes(bg, 1, 2) - cross - np.swapaxes(cross, 1, 2)
        return mean, _sym(cov), m


# ----------------------------------------------------------------------------- cross-entropy


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _cross_entropy(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Summed cross-entropy ``-sum y log softmax(f)`` over the last two axes."""
    z = f - f.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.sum(y * logp, axis=(-2, -1))


def _check_probability_targets(y: Any, n: int, name: str) -> np.ndarray:
    """`y` as a float64 ``(n, k)`` array of probability rows, or a clear error.

    Args:
        y: The targets as given.
        n: The number of training points.
        name: The argument as messages name it.

    Returns:
        The targets, float64.

    Raises:
        ValueError: on a shape other than ``(n, k)`` (for a 1-D vector, the advice
            to one-hot encode class indices), NaN or Inf, or a row that is not a
            probability vector (`validate.check_probability_rows`).
    """
    arr = validate.numeric_array(y, name, f"an array of shape ({n}, k)")
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
        hint = ""
        if arr.ndim == 1:
            kind = "class indices" if np.issubdtype(arr.dtype, np.integer) else "class labels"
            hint = (f": {kind} must be one-hot encoded first, e.g. np.eye(k)[labels] "
                    "(one probability row per training point)")
        raise ValueError(f"{name} must have shape ({n}, k), got {arr.shape}{hint}")
    out = np.asarray(arr, dtype=np.float64)
    validate.check_finite(out, f"{name} of shape {out.shape}")
    validate.check_probability_rows(arr, name)
    return out


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

    Parameters
    ----------
    k_train_train : array_like, shape (n, n)
        Symmetric positive semi-definite (`validate.check_psd`: smallest
        eigenvalue ``>= -1e-6 * max|eigenvalue|``).
    y_train_onehot : array_like, shape (n, k)
        One-hot (or any probability-row) targets: finite, entries in [0, 1] and
        each row summing to 1, within ``max(1e-8, k * eps)`` (``eps`` of the
        array's dtype; `validate.check_probability_rows`). Class indices (a 1-D
        integer vector) are not accepted, since the number of classes k cannot
        be read off them reliably: one-hot encode them first, e.g.
        ``np.eye(k)[labels]``.
    t : float or array_like
        Finite times >= 0, any order (sorted internally).
    k_test_train : array_like, shape (m, n), optional
    f0_train, f0_test : array_like, optional
        Initial logits, shapes (n, k) and (m, k) (default 0).
    learning_rate : float
    rtol, atol : float
        Tolerances of the integrator, on S.
    method : {'DOP853', 'LSODA', 'RK45', 'Radau', 'BDF'}

    Returns
    -------
    CrossEntropyFlow
        ``train`` ``t.shape + (n, k)``, ``test`` ``t.shape + (m, k)`` or None, and
        the summed training ``loss`` at each time.

    Raises
    ------
    ValueError
        A kernel that is not PSD, targets that are not ``(n, k)`` probability
        rows (the message names the first bad row), and the other input checks.
    """
    k = _check_kernel(k_train_train, "k_train_train")
    n = k.shape[0]
    y = _check_probability_targets(y_train_onehot, n, "y_train_onehot")
    eta = _check_positive(learning_rate, "learning_rate")
    _check_positive(rtol, "rtol")
    _check_positive(atol, "atol")
    tflat, tshape = _as_times(t)
    if np.isinf(tflat).any():
        raise ValueError("t must be finite for cross_entropy_flow (the logits grow without bound)")
    f0 = _check_outputs(f0_train, y.shape, "f0_train")
    ktx = None
    if k_test_train is not None:
        ktx = _check_cross(k_test_train, n, "k_test_train")
        f0t = _check_outputs(f0_test, (ktx.shape[0], y.shape[1]), "f0_test")
    elif f0_test is not None:
        raise ValueError("f0_test was given without k_test_train")
    validate.check_psd(k, "k_train_train", tol=_NEG_TOL, suffix="; the cross-entropy flow on it diverges")

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


# ----------------------------------------------------------------------------- neural-tangents look


def _absolute_ridge(k: np.ndarray, diag_reg: Any, absolute: bool) -> float:
    r = _check_nonneg(diag_reg, "diag_reg")
    return r if absolute else r * float(np.trace(k)) / k.shape[0]


def gradient_descent_mse(k_train_train: Any, y_train: Any, learning_rate: float = 1.0, diag_reg: float = 0.0,
                         convention: str = "neural_tangents", *,
                         diag_reg_absolute_scale: bool = False) -> Callable[..., Any]:
    """Gradient-flow predictions under MSE, with neural-tangents' call signature.

    Mirrors ``neural_tangents.predict.gradient_descent_mse`` (Θ ⊗ I over the
    outputs, ``trace_axes=(-1,)``): with ``convention='neural_tangents'`` the
    exponent is ``learning_rate * t * Θ / y_train.size``, and the ridge is
    ``diag_reg * trace(Θ) / n`` (or ``diag_reg`` when
    ``diag_reg_absolute_scale=True``), added to Θ's diagonal for the dynamics.
    ``convention='ntkx'`` only drops the ``1 / y_train.size``.

    Returns
    -------
    predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)
        ``t=None`` means ``t = inf``. Returns ``fx_train_t``; or
        ``(fx_train_t, fx_test_t)`` when `fx_test_0` is given (then
        `k_test_train`, ``(m, n)``, is required); or only ``fx_test_t`` when
        ``fx_train_0=None``. Leading axes follow ``np.shape(t)``.
    """
    k = _check_kernel(k_train_train, "k_train_train")
    ridge = _absolute_ridge(k, diag_reg, diag_reg_absolute_scale)
    dyn = MSEDynamics(k, y_train, learning_rate=learning_rate, ridge=ridge, convention=convention)

    def predict_fn(t: Optional[Times] = None, fx_train_0: Any = 0.0, fx_test_0: Any = None,
                   k_test_train: Any = None) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        if fx_test_0 is not None and k_test_train is None:
            raise ValueError("fx_test_0 was given without k_test_train (m, n)")
        if fx_train_0 is None and fx_test_0 is None:
            raise ValueError("nothing to predict: fx_train_0 and fx_test_0 are both None")
        tt = np.inf if t is None else t
        train = None if fx_train_0 is None else dyn.train_outputs(tt, fx_train_0)
        if fx_test_0 is None:
            return train
        test = dyn.test_mean(tt, k_test_train, fx_train_0, fx_test_0)
        return test if train is None else (train, test)

    return predict_fn


def gradient_descent_mse_ensemble(ntk_train_train: Any, nngp_train_train: Any, y_train: Any,
                                  learning_rate: float = 1.0, diag_reg: float = 0.0,
                                  convention: str = "neural_tangents", *,
                                  diag_reg_absolute_scale: bool = False) -> Callable[..., Any]:
    """Infinite-ensemble mean and covariance, with neural-tangents' call pattern.

    Mirrors ``neural_tangents.predict.gradient_descent_mse_ensemble`` but takes
    precomputed kernel matrices instead of a ``kernel_fn``. As there, the ridge
    of each kernel is relative to its own mean diagonal (``diag_reg * trace / n``
    unless ``diag_reg_absolute_scale``), and ``convention='neural_tangents'``
    scales time by ``learning_rate / y_train.size``. See `GPDynamics`.

    Returns
    -------
    predict_fn(t=None, get='ntk', compute_cov=False, ntk_test_train=None, nngp_test_train=None, nngp_test_test=None)
        ``t=None`` means ``t = inf``; no test arguments means the training points.
        Returns the mean, or a `Gaussian` when `compute_cov`; for a tuple `get`
        (None means ``('nngp', 'ntk')``) a namedtuple of those, by name.
    """
    theta = _check_kernel(ntk_train_train, "ntk_train_train")
    k = _check_kernel(nngp_train_train, "nngp_train_train", theta.shape[0])
    dyn = {}
    for g in ("ntk", "nngp"):  # the NNGP is checked PSD once, by the first
        dyn[g] = GPDynamics.__new__(GPDynamics)
        dyn[g]._init(theta, k, y_train, learning_rate, _absolute_ridge(theta if g == "ntk" else k, diag_reg,
                                                                       diag_reg_absolute_scale),
                     convention, check_nngp=g == "ntk")

    def predict_fn(t: Optional[Times] = None, get: Any = "ntk", compute_cov: bool = False,
                   ntk_test_train: Any = None, nngp_test_train: Any = None, nngp_test_test: Any = None) -> Any:
        gets = ("nngp", "ntk") if get is None else ((get,) if isinstance(get, str) else tuple(get))
        for g in gets:
            if g not in ("nngp", "ntk"):
                raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
        tt = np.inf if t is None else t
        out = []
        for g in gets:
            res = dyn[g].predict(tt, ntk_test_train, nngp_test_train, nngp_test_test, get=g,
                                 compute_cov=compute_cov)
            out.append(res if compute_cov else res.mean)
        if isinstance(get, str):
            return out[0]
        return collections.namedtuple("Gaussians", gets)(*out)

    return predict_fn
