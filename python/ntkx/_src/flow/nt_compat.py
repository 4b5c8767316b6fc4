"""neural-tangents-style entry points: `gradient_descent_mse` and `gradient_descent_mse_ensemble`.

Same call signatures as ``neural_tangents.predict``, on precomputed kernel matrices,
built on `MSEDynamics` and `GPDynamics`.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from ntkx._src import validate
from ntkx._src.flow.gp import GPDynamics
from ntkx._src.flow.mse import MSEDynamics
from ntkx._src.flow.spectrum import Times


def gaussians(gets: Tuple[str, ...], get: Any, values: Any) -> Any:
    """neural-tangents' return convention: the value for a string `get`, else a ``Gaussians``
    namedtuple of `values[g]` for each g of `gets`."""
    if isinstance(get, str):
        return values[get]
    return collections.namedtuple("Gaussians", gets)(*(values[g] for g in gets))


def _absolute_ridge(k: np.ndarray, diag_reg: Any, absolute: bool) -> float:
    r = validate.check_real_nonneg(diag_reg, "diag_reg")
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

    Returns:
        predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None): ``t=None`` means ``t = inf``.
            Returns ``fx_train_t``; or ``(fx_train_t, fx_test_t)`` when `fx_test_0` is given (then
            `k_test_train`, ``(m, n)``, is required); or only ``fx_test_t`` when ``fx_train_0=None``. Leading
            axes follow ``np.shape(t)``.
    """
    k = validate.check_kernel(k_train_train, "k_train_train")
    ridge = _absolute_ridge(k, diag_reg, diag_reg_absolute_scale)
    dyn = MSEDynamics(k, y_train, learning_rate=learning_rate, ridge=ridge, convention=convention)

    def predict_fn(t: Optional[Times] = None, fx_train_0: Any = 0.0, fx_test_0: Any = None,
                   k_test_train: Any = None) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """The outputs at time[s] `t` (None: inf); see the Returns section above."""
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

    Returns:
        predict_fn(t=None, get='ntk', compute_cov=False, ntk_test_train=None, nngp_test_train=None,
            nngp_test_test=None): ``t=None`` means ``t = inf``; no test arguments means the training points.
            Returns the mean, or a `Gaussian` when `compute_cov`; for a tuple `get` (None means ``('nngp',
            'ntk')``) a namedtuple of those, by name.
    """
    theta = validate.check_kernel(ntk_train_train, "ntk_train_train")
    k = validate.check_kernel(nngp_train_train, "nngp_train_train", theta.shape[0])
    dyn = {}
    for g in ("ntk", "nngp"):  # the NNGP is checked PSD once, by the first
        dyn[g] = GPDynamics.__new__(GPDynamics)
        dyn[g]._init(theta, k, y_train, learning_rate, _absolute_ridge(theta if g == "ntk" else k, diag_reg,
                                                                       diag_reg_absolute_scale),
                     convention, check_nngp=g == "ntk")

    def predict_fn(t: Optional[Times] = None, get: Any = "ntk", compute_cov: bool = False,
                   ntk_test_train: Any = None, nngp_test_train: Any = None, nngp_test_test: Any = None) -> Any:
        """The mean (or `Gaussian`) at time[s] `t` (None: inf); see the Returns section above."""
        gets = ("nngp", "ntk") if get is None else ((get,) if isinstance(get, str) else tuple(get))
        for g in gets:
            if g not in ("nngp", "ntk"):
                raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
        tt = np.inf if t is None else t
        out = {}
        for g in gets:
            res = dyn[g].predict(tt, ntk_test_train, nngp_test_train, nngp_test_test, get=g,
                                 compute_cov=compute_cov)
            out[g] = res if compute_cov else res.mean
        return gaussians(gets, get, out)

    return predict_fn
