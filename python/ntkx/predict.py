"""neural-tangents' ``predict`` API: ``from ntkx import predict`` in place of ``from neural_tangents import predict``.

The same signatures and outputs as ``neural_tangents.predict`` (``trace_axes=(-1,)``),
computed by `ntkx.dynamics`' closed forms; see `ntkx._src.predict`.

Example:
    >>> import numpy as np
    >>> from ntkx import predict, stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(1))
    >>> rng = np.random.default_rng(0)
    >>> x, y, xt = rng.standard_normal((20, 3)), rng.standard_normal((20, 1)), rng.standard_normal((5, 3))
    >>> predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, x, y, diag_reg=1e-4)
    >>> mean, cov = predict_fn(x_test=xt, get='ntk', compute_cov=True)
    >>> mean.shape, cov.shape
    ((5, 1), (5, 5))
"""
from ntkx._src.flow.gp import Gaussian
from ntkx._src.predict import (
    gp_inference,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    max_learning_rate,
)

__all__ = ["Gaussian", "gp_inference", "gradient_descent_mse", "gradient_descent_mse_ensemble", "max_learning_rate"]
