"""Training dynamics of infinitely wide networks: closed forms, Gaussian processes, solvers.

Time convention: ``convention='ntkx'`` (default) is gradient flow on
``L = 1/2 sum (f - y)^2``, so the training residual decays as ``exp(-eta t Theta)``;
``convention='neural_tangents'`` divides the exponent by ``y_train.size`` as
neural-tangents' mean-reduced loss does. See `ntkx._src.dynamics` for the numerics.

Dense closed forms (one cached eigendecomposition): `MSEDynamics`, `GPDynamics`,
`cross_entropy_flow` and neural-tangents-style `gradient_descent_mse[_ensemble]`.
When N is too large to diagonalize: `cg_solve` (Nystrom-preconditioned block CG),
`expm_multiply` / `phi_multiply` / `mse_dynamics_iterative` (Lanczos) and
`top_eigenpairs`, which need only products of the kernel with a block of vectors
(an array, a memmap, a LinearOperator or a callable).

Example:
    >>> import numpy as np, ntkx
    >>> from ntkx import stax, dynamics
    >>> kernel_fn = stax.serial(stax.Dense(1), stax.Relu(), stax.Dense(1))[2]
    >>> rng = np.random.default_rng(0)
    >>> x, y, xt = rng.standard_normal((20, 3)), rng.standard_normal((20, 1)), rng.standard_normal((5, 3))
    >>> m = dynamics.MSEDynamics(kernel_fn(x, None, 'ntk'), y)
    >>> m.test_mean(np.array([0.0, 1.0, np.inf]), kernel_fn(xt, x, 'ntk')).shape
    (3, 5, 1)
"""
from ntkx._src.dynamics import (
    CrossEntropyFlow,
    EarlyStopping,
    Gaussian,
    GPDynamics,
    MSEDynamics,
    MSEModes,
    UnstableLearningRateWarning,
    cross_entropy_flow,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
)
from ntkx._src.iterative import (
    CgResult,
    MsePrediction,
    as_operator,
    cg_solve,
    expm_multiply,
    mse_dynamics_iterative,
    phi_multiply,
    top_eigenpairs,
)

__all__ = [
    "CrossEntropyFlow", "EarlyStopping", "GPDynamics", "Gaussian", "MSEDynamics", "MSEModes",
    "UnstableLearningRateWarning", "cross_entropy_flow", "gradient_descent_mse", "gradient_descent_mse_ensemble",
    "CgResult", "MsePrediction", "as_operator", "cg_solve", "expm_multiply", "mse_dynamics_iterative", "phi_multiply",
    "top_eigenpairs",
]
