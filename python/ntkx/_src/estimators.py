"""scikit-learn estimators for infinite-width networks trained by gradient descent.

`NTKRegressor` and `NTKClassifier` predict with the mean output of an infinitely
wide network trained on the squared loss for a time `t` (``t = inf``: kernel ridge
regression with the NTK, or with the NNGP for ``get='nngp'``), through the closed
forms of `ntkx.dynamics`. Both work in `sklearn.pipeline.Pipeline` and
`sklearn.model_selection.GridSearchCV`: every hyper-parameter is a plain
constructor argument.

The network is chosen by ``kernel``:

* ``'fc'``: Dense -> [activation -> Dense] x `depth` (`w_std`, `b_std`,
  `activation`), on flat features;
* ``'cnn'``: Conv(q x q) -> [activation -> Conv] x (`depth` - 1) -> activation ->
  GlobalAvgPool (``readout='gap'``) or Flatten (``'vanilla'``) -> Dense, on images:
  rows of `X` are reshaped to `image_shape` ``(H, W, C)``;
* an `ntkx.FcSpec` or `ntkx.CntkSpec`, or an `ntkx.stax` layer or ``kernel_fn``
  (anything called as ``kernel_fn(x1, x2, get, **kwargs)``);
* ``'precomputed'`` (scikit-learn's idiom, as in ``SVC`` / ``KernelRidge``): `X` is
  the kernel itself, the ``(n_train, n_train)`` Gram in ``fit`` and the
  ``(n_test, n_train)`` kernel in ``predict``, as an array, a
  `ntkx.precompute.StoredKernel` or the path of a kernel store (its `get` kernel is
  read). A stored kernel is never loaded whole: ``fit`` solves
  ``(K + ridge I) alpha = Y`` by `ntkx.dynamics.cg_solve` on
  ``StoredKernel.as_operator()`` and ``predict`` streams ``K_test @ alpha`` tile
  by tile. Only ``t = inf`` (the converged network) and the mean (no
  ``return_std``) are available this way.

Time convention (see `ntkx.dynamics`): gradient flow on L = 1/2 sum (f - y)^2 with
learning rate `learning_rate`, so the training residual decays as
exp(-learning_rate * t * Theta).
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Optional, Tuple

import numpy as np
from scipy import special

from ntkx._src.cntk import CntkSpec, cntk_kernels
from ntkx._src.fc import FcSpec, fc_kernels
from ntkx._src.precompute.kernel import build_spec

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("ntkx.estimators needs scikit-learn >= 1.6: pip install 'scikit-learn>=1.6'") from e


def _is_precomputed(kernel: Any) -> bool:
    return isinstance(kernel, str) and kernel == "precomputed"


_DIAG_CHUNK = 64  # test points per block when only the kernel's diagonal is needed


class _NTKBase(BaseEstimator):
    """Shared kernel construction, fitting and prediction of the NTK estimators."""

    def __init__(
        self,
        kernel: Any = "fc",
        *,
        depth: int = 3,
        w_std: float = 2**0.5,
        b_std: float = 0.0,
        activation: str = "relu",
        filter_size: int = 3,
        readout: str = "gap",
        image_shape: Optional[Tuple[int, int, int]] = None,
        get: str = "ntk",
        t: float = np.inf,
        ridge: float = 1e-6,
        learning_rate: float = 1.0,
        device: str = "auto",
        dtype: Any = "float64",
        progress: Any = False,
    ):
        self.kernel = kernel
        self.depth = depth
        self.w_std = w_std
        self.b_std = b_std
        self.activation = activation
        self.filter_size = filter_size
        self.readout = readout
        self.image_shape = image_shape
        self.get = get
        self.t = t
        self.ridge = ridge
        self.learning_rate = learning_rate
        self.device = device
        self.dtype = dtype
        self.progress = progress

    # ---- kernel -------------------------------------------------------------------

    def _spec(self):
        """The `FcSpec`, `CntkSpec` or kernel_fn that this estimator's kernel means."""
        k = self.kernel
        if isinstance(k, (FcSpec, CntkSpec)):
            return k
        if isinstance(k, str):
            if k not in ("fc", "cnn"):
                raise ValueError(f"kernel must be 'fc', 'cnn', 'precomputed', an FcSpec/CntkSpec or a stax kernel_fn, got {k!r}")
            return build_spec(k, self.depth, self.w_std, self.b_std, self.activation, self.filter_size, self.readout)
        if isinstance(k, tuple) and len(k) == 3 and callable(k[2]):  # stax.serial(...) result
            return k[2]
        if callable(k):
            return k
        raise TypeError(f"kernel must be 'fc', 'cnn', 'precomputed', an FcSpec/CntkSpec or a stax kernel_fn, got {type(k).__name__}")

    def _inputs(self, X: np.ndarray, spec) -> np.ndarray:
        """Rows of X as the kernel wants them: flat features or (N, H, W, C) images."""
        wants_images = isinstance(spec, CntkSpec) or (self.image_shape is not None and not isinstance(spec, FcSpec))
        if not wants_images:
            return X
        if X.ndim == 4:
            return X
        if self.image_shape is None:
            raise ValueError("a conv kernel needs image_shape=(H, W, C) to reshape the rows of X "
                             f"(got X of shape {X.shape})")
        shape = tuple(int(s) for s in self.image_shape)
        if len(shape) != 3 or int(np.prod(shape)) != X.shape[1]:
            raise ValueError(f"image_shape {self.image_shape} does not hold the {X.shape[1]} features of each row of X")
        return X.reshape((X.shape[0],) + shape)

    def _kernels(self, x1: np.ndarray, x2: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """(nngp, ntk) between x1 and x2 (x2 = None: x1 against itself)."""
        spec = self.spec_
        kw = dict(device=self.device, dtype=np.dtype(self.dtype), progress=self.progress)
        a1 = self._inputs(x1, spec)
        a2 = None if x2 is None else self._inputs(x2, spec)
        if isinstance(spec, FcSpec):
            k = fc_kernels(a1, a2, spec, ("nngp", "ntk"), **kw)
        elif isinstance(spec, CntkSpec):
            k = cntk_kernels(a1, a2, spec, ("nngp", "ntk"), **kw)
        else:
            k = spec(a1, a2, ("nngp", "ntk"), **kw)
        return np.asarray(k.nngp, dtype=np.float64), np.asarray(k.ntk, dtype=np.float64)

    def _diag(self, x: np.ndarray) -> np.ndarray:
        """NNGP k(x, x) of each row (blocks of the symmetric kernel, never n x n)."""
        out = np.empty(len(x))
        for s in range(0, len(x), _DIAG_CHUNK):
            nngp, _ = self._kernels(x[s:s + _DIAG_CHUNK], None)
            out[s:s + _DIAG_CHUNK] = np.diag(nngp)
        return out

    # ---- precomputed kernels -------------------------------------------------------

    def _precomputed_kernel(self, X: Any, what: str) -> Any:
        """`X` of ``kernel='precomputed'`` as a StoredKernel or a float64 2-D array."""
        from ntkx._src.precompute.reader import StoredKernel

        if isinstance(X, (str, os.PathLike)):
            X = StoredKernel(os.fspath(X), self.get)
        if isinstance(X, StoredKernel):
            if X.name != self.get:
                raise ValueError(f"the stored kernel is {X.name!r} but get={self.get!r}; open the store's "
                                 f"{self.get!r} kernel (ntkx.precompute.open(path, {self.get!r})) or pass its path")
            return X
        K = np.asarray(X, dtype=np.float64)
        if K.ndim != 2:
            raise ValueError(f"kernel='precomputed' takes the {what} kernel as X, a 2-D array, a StoredKernel or "
                             f"a store path; got an array of shape {K.shape}")
        if not np.all(np.isfinite(K)):
            raise ValueError(f"the precomputed {what} kernel has NaN or Inf entries")
        return K

    def _fit_precomputed(self, X: Any, Y: np.ndarray) -> "_NTKBase":
        from ntkx._src.iterative import cg_solve
        from ntkx._src.precompute.reader import StoredKernel

        self._check_params()
        if self.t != np.inf:
            raise ValueError(f"kernel='precomputed' fits the converged network (t=inf) by conjugate gradients; "
                             f"got t={self.t!r} (finite times need the kernel's eigendecomposition: pass the "
                             f"inputs with kernel='fc'/'cnn', or use ntkx.dynamics.mse_dynamics_iterative)")
        K = self._precomputed_kernel(X, "training")
        n = K.shape[0]
        if K.shape != (n, n):
            raise ValueError(f"kernel='precomputed' fit takes the square (n_train, n_train) Gram, got shape {K.shape}")
        if Y.shape[0] != n:
            raise ValueError(f"the training kernel has {n} rows but y has {Y.shape[0]}")
        stored = isinstance(K, StoredKernel)
        diag = np.asarray(K.diagonal() if stored else np.diag(K), dtype=np.float64)
        scale = float(np.mean(diag))
        if not np.isfinite(scale):
            raise ValueError("the training kernel's diagonal is not finite")
        self.spec_ = "precomputed"
        self.ridge_ = self.ridge * scale if scale > 0 else float(self.ridge)
        result = cg_solve(K.as_operator() if stored else K, Y, ridge=self.ridge_)
        self.dual_coef_ = np.asarray(result.x, dtype=np.float64).reshape(n, -1)
        self.cg_result_ = result
        self.n_features_in_ = n
        return self

    def _predict_precomputed(self, X: Any) -> np.ndarray:
        from ntkx._src.precompute.reader import StoredKernel

        K = self._precomputed_kernel(X, "test-train")
        if K.shape[1] != self.n_features_in_:
            raise ValueError(f"kernel='precomputed' predict takes the (n_test, n_train) kernel against the "
                             f"{self.n_features_in_} training points, got shape {K.shape}")
        return K.matmat(self.dual_coef_) if isinstance(K, StoredKernel) else K @ self.dual_coef_

    # ---- fit / predict -------------------------------------------------------------

    def _check_params(self) -> None:
        if self.get not in ("ntk", "nngp"):
            raise ValueError(f"get must be 'ntk' or 'nngp', got {self.get!r}")
        t = self.t
        if not isinstance(t, numbers.Real) or np.isnan(t) or t < 0:
            raise ValueError(f"t must be a time >= 0 (np.inf for the converged network), got {t!r}")
        if not isinstance(self.ridge, numbers.Real) or not np.isfinite(self.ridge) or self.ridge < 0:
            raise ValueError(f"ridge must be a finite number >= 0 (relative to the mean diagonal), got {self.ridge!r}")
        lr = self.learning_rate
        if not isinstance(lr, numbers.Real) or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning_rate must be a finite number > 0, got {lr!r}")

    def _fit_targets(self, X: Any, Y: np.ndarray) -> "_NTKBase":
        from ntkx._src.dynamics import GPDynamics

        self._check_params()
        self.spec_ = self._spec()
        self.X_fit_ = X
        nngp, ntk = self._kernels(X, None)
        train = nngp if self.get == "nngp" else ntk
        scale = float(np.mean(np.diag(train)))
        if not np.isfinite(scale):
            raise ValueError("the training kernel is not finite")
        self.ridge_ = self.ridge * scale if scale > 0 else float(self.ridge)
        self.dynamics_ = GPDynamics(ntk, nngp, Y, learning_rate=self.learning_rate, ridge=self.ridge_)
        return self

    def _predict_outputs(self, X: Any, return_var: bool = False):
        nngp, ntk = self._kernels(X, self.X_fit_)
        diag = self._diag(X) if return_var else None
        mean, var = self.dynamics_.predict(self.t, ntk_test_train=ntk, nngp_test_train=nngp, nngp_test_test=diag,
                                           get=self.get, compute_cov=return_var, diag_only=True)
        return mean, var


class NTKRegressor(RegressorMixin, _NTKBase):
    """Regression with an infinitely wide network trained by gradient descent.

    Predictions are the mean output over random initializations of the network
    after gradient flow for time `t` on the squared loss (Lee et al. 2019); with
    ``t = inf`` and ``get='nngp'`` this is Gaussian-process regression with the
    NNGP, with ``get='ntk'`` kernel regression with the NTK.

    Parameters
    ----------
    kernel : {'fc', 'cnn', 'precomputed'}, FcSpec, CntkSpec or stax kernel_fn, default='fc'
        The network (see the module docstring); ``'precomputed'``: `X` is the kernel
        (an array, a `ntkx.precompute.StoredKernel` or a store path), solved by CG.
    depth : int, default=3
        Hidden layers (``'fc'``) or conv layers (``'cnn'``).
    w_std, b_std : float
        Weight and bias standard deviations of every layer.
    activation : {'relu', 'abs', 'step', 'requ', 'erf'}, default='relu'
        A name of ``ntkx._src.activations.NAMED`` (as an architecture string's ``act=``).
    filter_size : int, default=3
        Conv filter side (``'cnn'``).
    readout : {'gap', 'vanilla'}, default='gap'
        Readout of a ``'cnn'`` network.
    image_shape : (H, W, C), optional
        Shape each row of X is reshaped to for a conv kernel.
    get : {'ntk', 'nngp'}, default='ntk'
        Train all layers (NTK) or the readout only (NNGP).
    t : float, default=inf
        Training time (gradient flow; inf: converged).
    ridge : float, default=1e-6
        Diagonal regularization, relative to the mean diagonal of the training kernel.
    learning_rate : float, default=1.0
    device : {'auto', 'cpu', 'cuda'}, default='auto'
    dtype : {'float64', 'float32'}, default='float64'
        Kernel storage precision.
    progress : bool or callable, default=False
        Progress of the kernel computations.

    Attributes
    ----------
    X_fit_ : ndarray
        Training inputs.
    dynamics_ : ntkx.dynamics.GPDynamics
        The fitted training dynamics (eigendecomposition cached).
    ridge_ : float
        The absolute ridge used.
    dual_coef_ : ndarray
        ``(K + ridge_ I)^{-1} Y``, ``(n_train, n_outputs)`` (``kernel='precomputed'`` only).
    """

    def fit(self, X: Any, y: Any) -> "NTKRegressor":
        """Compute the training kernel and the closed-form dynamics.

        With ``kernel='precomputed'``, `X` is the training Gram (array, StoredKernel or
        store path) and the fit is a conjugate-gradient solve (`dual_coef_`).
        """
        if _is_precomputed(self.kernel):
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
            self._y_1d = y.ndim == 1
            return self._fit_precomputed(X, y.reshape(len(y), -1))
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64,
                             allow_nd=True)
        self._y_1d = y.ndim == 1
        return self._fit_targets(X, y.astype(np.float64))

    def predict(self, X: Any, return_std: bool = False):
        """Mean prediction at `X`; with ``return_std`` also the predictive standard deviation.

        The standard deviation is that of the output of the trained network over
        random initializations (the NTK-GP of Lee et al. 2019, or the NNGP posterior
        for ``get='nngp'``): the same for every output dimension.
        """
        check_is_fitted(self)
        if _is_precomputed(self.kernel):
            if return_std:
                raise ValueError("return_std is not available with kernel='precomputed' (it needs the test "
                                 "points' own kernel); pass the inputs with kernel='fc'/'cnn'")
            mean = self._predict_precomputed(X)
            return mean[:, 0] if self._y_1d else mean
        X = validate_data(self, X, reset=False, dtype=np.float64, allow_nd=True)
        mean, var = self._predict_outputs(X, return_var=return_std)
        if not return_std:
            return mean
        return mean, np.sqrt(np.maximum(var, 0.0))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class NTKClassifier(ClassifierMixin, _NTKBase):
    """Classification with an infinitely wide network trained on the squared loss.

    Classes are encoded as targets (``'one-hot'``: e_c; ``'centered'``: e_c - 1/K,
    the zero-mean encoding, as in the lecture slides on the NTK), the network output
    after training time `t` is computed in closed form, and the predicted class is
    its arg-max. Parameters are those of `NTKRegressor` plus:

    Parameters
    ----------
    encoding : {'one-hot', 'centered'}, default='one-hot'
    temperature : float, default=0.1
        Softmax temperature of `predict_proba`'s scores.

    Attributes
    ----------
    classes_ : ndarray
        The class labels.
    """

    def __init__(self, kernel: Any = "fc", *, depth: int = 3, w_std: float = 2**0.5, b_std: float = 0.0,
                 activation: str = "relu", filter_size: int = 3, readout: str = "gap",
                 image_shape: Optional[Tuple[int, int, int]] = None, get: str = "ntk", t: float = np.inf,
                 ridge: float = 1e-6, learning_rate: float = 1.0, encoding: str = "one-hot",
                 temperature: float = 0.1, device: str = "auto", dtype: Any = "float64", progress: Any = False):
        super().__init__(kernel, depth=depth, w_std=w_std, b_std=b_std, activation=activation,
                         filter_size=filter_size, readout=readout, image_shape=image_shape, get=get, t=t,
                         ridge=ridge, learning_rate=learning_rate, device=device, dtype=dtype, progress=progress)
        self.encoding = encoding
        self.temperature = temperature

    def _encode(self, y_index: np.ndarray) -> np.ndarray:
        k = len(self.classes_)
        Y = np.eye(k)[y_index]
        return Y - 1.0 / k if self.encoding == "centered" else Y

    def fit(self, X: Any, y: Any) -> "NTKClassifier":
        """Encode the classes, compute the training kernel and the dynamics."""
        if self.encoding not in ("one-hot", "centered"):
            raise ValueError(f"encoding must be 'one-hot' or 'centered', got {self.encoding!r}")
        if _is_precomputed(self.kernel):
            y = column_or_1d(y, warn=True)
        else:
            X, y = validate_data(self, X, y, dtype=np.float64, allow_nd=True)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if _is_precomputed(self.kernel):
            return self._fit_precomputed(X, self._encode(y_index))
        return self._fit_targets(X, self._encode(y_index))

    def _outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        if _is_precomputed(self.kernel):
            return self._predict_precomputed(X)
        X = validate_data(self, X, reset=False, dtype=np.float64, allow_nd=True)
        return self._predict_outputs(X)[0]

    def decision_function(self, X: Any) -> np.ndarray:
        """Network outputs at `X`, one column per class (in the target encoding).

        With two classes, scikit-learn's convention: one score per sample, the
        output of ``classes_[1]`` minus that of ``classes_[0]`` (> 0 predicts
        ``classes_[1]``).
        """
        f = self._outputs(X)
        return f[:, 1] - f[:, 0] if f.shape[1] == 2 else f

    def predict(self, X: Any) -> np.ndarray:
        """The class whose output is largest."""
        f = self._outputs(X)
        return self.classes_[np.argmax(f, axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability-like scores: ``softmax(outputs / temperature)`` per row.

        Kernel regression on one-hot targets gives outputs near 1 for the predicted
        class and near 0 for the others; the softmax turns them into scores that sum
        to 1 and rank samples as `decision_function` does. They are not calibrated
        probabilities (calibrate with `sklearn.calibration.CalibratedClassifierCV`).
        """
        if not isinstance(self.temperature, numbers.Real) or not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        return special.softmax(self._outputs(X) / float(self.temperature), axis=1)
