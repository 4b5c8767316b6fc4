"""The cached spectrum of one symmetric PSD matrix, shared by `MSEDynamics` and `GPDynamics`.

One eigendecomposition (or, for ``t = inf`` alone, one Cholesky factor) of the
matrix of the dynamics serves every time asked for. Eigenvalues below
``n * eps * λ_max`` (including negative round-off) are set to exactly 0; each route
to the spectrum checks the matrix is PSD on what it computes anyway
(`ntkx._src.validate.check_psd`). See `ntkx._src.dynamics` for the numerics.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np
import scipy.linalg

from ntkx._src import validate

EPS = np.finfo(np.float64).eps
#: Eigenvalues below ``-NEG_TOL * max|λ|`` mean the kernel is not PSD (an error):
#: the one rule of `validate.check_psd`, shared by every matrix the dynamics take.
NEG_TOL = validate.PSD_TOL
DIVERGES = "; gradient flow on it diverges"
NOT_COVARIANCE = "; it is not a covariance (the predicted variances could be negative)"

Times = Union[float, np.ndarray]


class Spectrum:
    """Lazy eigendecomposition and Cholesky factor of one symmetric PSD matrix.

    Every route to the matrix's spectrum checks it is PSD (`validate.check_psd`)
    without extra work: `eig` and `lambda_max` on the eigenvalues they compute, and
    a successful, well-conditioned `cho` is itself the proof (a failed one falls
    back to `eig`).

    Args:
        a: The symmetric ``(n, n)`` matrix of the dynamics (kept by reference).
        name: The matrix as messages name it, e.g. ``"k_train_train + ridge * I"``.
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
        """Whether the eigendecomposition has been computed (the tests' probe of laziness)."""
        return self._evecs is not None

    def eig(self) -> Tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (descending, clipped) and eigenvectors (columns)."""
        if self._evecs is None:
            w, v = scipy.linalg.eigh(self.a)
            w, v = w[::-1].copy(), np.ascontiguousarray(v[:, ::-1])
            scale = max(abs(w[0]), abs(w[-1]))
            validate.check_psd(w, self.name, tol=NEG_TOL, eigenvalues=True, suffix=DIVERGES)
            cutoff = self.n * EPS * scale
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
            validate.check_psd(w, self.name, tol=NEG_TOL, eigenvalues=True, suffix=DIVERGES)
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
            if np.min(piv) ** 2 > self.n * EPS * np.max(np.diag(self.a)):
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
        """``A^{-1} b`` by the Cholesky factor (only after `use_solve` said True)."""
        return scipy.linalg.cho_solve(self._cho, b, check_finite=False)

    def apply(self, coef: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``V diag(coef_t) V^T rhs`` for each row t of `coef`: (T, n, c)."""
        _, v = self.eig()
        w = v.T @ rhs
        return np.einsum("ij,tj,jc->tic", v, coef, w, optimize=True)


def training_options(y_train: Any, n: int, learning_rate: Any, ridge: Any,
                     convention: Any) -> Tuple[np.ndarray, float, float, str, float]:
    """The checked options shared by `MSEDynamics` and `GPDynamics`, and the rate they give.

    Args:
        y_train: Targets, ``(n,)`` or ``(n, k)``.
        n: The number of training points.
        learning_rate: η > 0.
        ridge: ``r >= 0``.
        convention: One of `validate.CONVENTIONS`.

    Returns:
        ``(y_train, learning_rate, ridge, convention, rate)``, with `rate` from `rate`.
    """
    y = validate.check_targets(y_train, n, "y_train")
    eta = validate.check_real_nonneg(learning_rate, "learning_rate", strict=True)
    r = validate.check_real_nonneg(ridge, "ridge")
    c = validate.check_convention(convention)
    return y, eta, r, c, rate(eta, c, y.size)


def rate(learning_rate: float, convention: str, size: int) -> float:
    """The rate-scaled learning rate ``a``: η (``'ntkx'``) or ``η / size`` (``'neural_tangents'``)."""
    return learning_rate if convention == "ntkx" else learning_rate / size


def sym(c: np.ndarray) -> np.ndarray:
    """The symmetric part ``(C + C^T) / 2`` over the last two axes."""
    return 0.5 * (c + np.swapaxes(c, -1, -2))

