"""The Gaussian process of an infinite ensemble during training: `GPDynamics`.

See `ntkx._src.dynamics` for the time convention, the numerics and the validation.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from ntkx._src import validate
from ntkx._src.flow import phi
from ntkx._src.flow.spectrum import NEG_TOL, NOT_COVARIANCE, Spectrum, Times, sym, training_options


class Gaussian(NamedTuple):
    """Mean and covariance (``None`` when not computed) of the network outputs."""

    mean: np.ndarray
    covariance: Optional[np.ndarray]



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

    Args:
        ntk_train_train, nngp_train_train (array_like, shape (n, n)): Symmetric and positive semi-definite (see
            "Validation" in the module docstring): ``Θ + ridge I`` when the NTK dynamics first need it, and the
            NNGP by itself, here, since it is the prior covariance.
        y_train (array_like, shape (n,) or (n, k)):
        learning_rate (float, default 1.0):
        ridge (float, default 0.0): Absolute units.
        convention ({'ntkx', 'neural_tangents'}): Time scale, as in `MSEDynamics`.

    Raises:
        ValueError: ``"nngp_train_train is not positive semi-definite: ..."`` and the other input checks.

    Note:
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
        theta = validate.check_kernel(ntk_train_train, "ntk_train_train")
        self.n = theta.shape[0]
        k = validate.check_kernel(nngp_train_train, "nngp_train_train", self.n)
        self.y_train, self.learning_rate, self.ridge, self.convention, self.rate = training_options(
            y_train, self.n, learning_rate, ridge, convention)
        if check_nngp:
            validate.check_psd(k, "nngp_train_train", tol=NEG_TOL, suffix=NOT_COVARIANCE)
        eye = self.ridge * np.eye(self.n)
        self._nngp = k
        self._spec = {"ntk": Spectrum(theta + eye, "ntk_train_train + ridge * I"),
                      "nngp": Spectrum(k + eye, "nngp_train_train + ridge * I")}
        self._kv: Optional[np.ndarray] = None  # V^T K V in the NTK eigenbasis

    def _k_in_ntk_basis(self) -> np.ndarray:
        if self._kv is None:
            _, v = self._spec["ntk"].eig()
            self._kv = sym(v.T @ self._nngp @ v)
        return self._kv

    def predict(self, t: Times, ntk_test_train: Any = None, nngp_test_train: Any = None, nngp_test_test: Any = None,
                get: str = "ntk", compute_cov: bool = True, diag_only: bool = False) -> Gaussian:
        """Mean and covariance of the outputs at time[s] `t`.

        Args:
            t (float or array_like): Times >= 0, ``np.inf`` allowed (leading axes of the outputs).
            ntk_test_train (array_like, shape (m, n), optional): Θ(x, X); needed for ``get='ntk'`` on test
                points.
            nngp_test_train (array_like, shape (m, n), optional): K(x, X); needed for ``get='nngp'``, and for
                the NTK covariance.
            nngp_test_test (array_like, shape (m, m) or (m,), optional): K(x, x') for the covariance; with
                ``diag_only`` its diagonal suffices.
            get ({'ntk', 'nngp'}):
            compute_cov (bool): If False, ``covariance`` is None.
            diag_only (bool): Return only the variances (``t.shape + (m,)``), never forming an ``(m, m)``
                matrix.

        Returns:
            Gaussian: ``mean``: ``t.shape + (m,) + y_train.shape[1:]``; ``covariance``: ``t.shape + (m, m)``
                (symmetric, shared by all outputs) or ``t.shape + (m,)``.

        Note:
            With all test arguments None the training points are used, with the
            regularized kernel as their test-train kernel: mean ``(I - E_t) Y`` and
            covariance ``E_t K E_t`` (ntk) or ``E_t A`` ``E_t`` (nngp), ``E_t = e^{-a t A}``.
        """
        if get not in ("ntk", "nngp"):
            raise ValueError(f"get must be 'ntk' or 'nngp', got {get!r}")
        tflat, tshape = validate.check_times(t)
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
        mean = spec.apply(phi.fit(lam, tau), y2)
        if not compute_cov:
            return mean, None
        e = phi.decay(lam, tau)  # (T, n)
        if get == "nngp":
            w = lam * e * e
            if diag_only:
                return mean, np.einsum("ij,tj,ij->ti", v, w, v, optimize=True)
            return mean, sym(np.einsum("ij,tj,kj->tik", v, w, v, optimize=True))
        kv = self._k_in_ntk_basis()
        if diag_only:  # one time at a time: O(n^2) working memory, not (T, n, n)
            var = np.empty((T, n))
            for i in range(T):
                ve = v * e[i]  # V diag(e_t)
                var[i] = np.einsum("ij,ij->i", ve @ kv, ve)
            return mean, var
        ve = v[None] * e[:, None, :]  # V diag(e_t): (T, n, n)
        return mean, sym((ve @ kv) @ np.swapaxes(ve, 1, 2))

    def _on_test(self, get, spec, tau, compute_cov, diag_only, y2, ntk_tx, nngp_tx, nngp_tt):
        n, T = self.n, tau.shape[0]
        if get == "ntk" and ntk_tx is None:
            raise ValueError("get='ntk' on test points needs ntk_test_train (m, n)")
        if (get == "nngp" or compute_cov) and nngp_tx is None:
            raise ValueError(f"get={get!r}" + (" with compute_cov=True" if get == "ntk" else "")
                             + " on test points needs nngp_test_train (m, n)")
        ktx = validate.check_cross(nngp_tx, n, "nngp_test_train") if nngp_tx is not None else None
        dtx = validate.check_cross(ntk_tx, n, "ntk_test_train") if get == "ntk" else ktx
        m = dtx.shape[0]
        if ktx is not None and ktx.shape[0] != m:
            raise ValueError(f"nngp_test_train has shape {ktx.shape} but ntk_test_train has {dtx.shape}: "
                             "both must be (m, n) for the same m test points")
        ktt = None
        if compute_cov:
            if nngp_tt is None:
                raise ValueError("compute_cov=True on test points needs nngp_test_test, "
                                 f"shape ({m}, {m}) (or ({m},), its diagonal, with diag_only=True)")
            ktt = validate.finite_float_array(nngp_tt, "nngp_test_test")
            if ktt.shape == (m, m):
                if diag_only:
                    ktt = np.diag(ktt).copy()
                else:
                    ktt = validate.check_kernel(ktt, "nngp_test_test")
                    validate.check_psd(ktt, "nngp_test_test", tol=NEG_TOL, suffix=NOT_COVARIANCE)
            elif not (diag_only and ktt.shape == (m,)):
                raise ValueError(f"nngp_test_test must have shape ({m}, {m})"
                                 + (f" or ({m},) (its diagonal)" if diag_only else " (diag_only=False)")
                                 + f", got {ktt.shape}")
            if ktt.ndim == 1:
                validate.check_variances(ktt, "nngp_test_test", NOT_COVARIANCE)

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
                    cov = sym(ktt - ktx @ mt)
            else:
                km = self._nngp @ mt
                if diag_only:
                    cov = ktt + np.einsum("ji,ji->i", mt, km) - 2 * np.einsum("ij,ji->i", ktx, mt)
                else:
                    cross = ktx @ mt
                    cov = sym(ktt + mt.T @ km - cross - cross.T)
            return mean, np.broadcast_to(cov, (T,) + cov.shape), m

        lam, v = spec.eig()
        b = dtx @ v  # D(x, X) V
        ph = phi.phi(lam, tau)  # (T, n)
        mean = np.einsum("ij,tj,jc->tic", b, ph, v.T @ y2, optimize=True)
        if not compute_cov:
            return mean, None, m
        if get == "nngp":
            w = phi.phi(lam, 2 * tau)  # (1 - e^{-2 λ τ}) / λ
            if diag_only:
                cov = ktt[None] - np.einsum("ij,tj,ij->ti", b, w, b, optimize=True)
            else:
                cov = sym(ktt[None] - np.einsum("ij,tj,kj->tik", b, w, b, optimize=True))
            return mean, cov, m
        c = ktx @ v  # K(x, X) V
        kv = self._k_in_ntk_basis()
        bg = b[None] * ph[:, None, :]  # (T, m, n)
        left = bg @ kv
        if diag_only:
            cov = ktt[None] + np.einsum("tij,tij->ti", left, bg) - 2 * np.einsum("tij,ij->ti", bg, c)
            return mean, cov, m
        cross = bg @ c.T
        cov = ktt[None] + left @ np.swapaxes(bg, 1, 2) - cross - np.swapaxes(cross, 1, 2)
        return mean, sym(cov), m

