"""The theory around the kernels, put to work: finite-width training and numerical checks
of the NTK theorems.

`train` runs full-batch gradient descent of a finite `ntkx.stax` network (NTK or
standard parameterization, FC or CNN, MSE or cross-entropy) with its linearization
trained alongside, and records outputs, parameter distances, empirical NTKs and
gradient alignment (`Trajectory`). `ntkx.theory.checks` measures each NTK claim and
returns a `CheckResult` with fitted rates, a verdict and a figure; ``ntkx check``
writes them all into one report.

Example:
    >>> import numpy as np
    >>> from ntkx import stax, theory
    >>> net = stax.serial(stax.Dense(256, W_std=1.4), stax.Relu(), stax.Dense(1, W_std=1.4))
    >>> x = np.random.default_rng(0).standard_normal((8, 3)); y = np.sin(x[:, :1])
    >>> _, params = net[0](0, x.shape)
    >>> traj = theory.train(net, params, x, y, learning_rate=0.1, steps=50)
    >>> bool(traj.loss[-1] < traj.loss[0])
    True
"""
from ntkx._src.network import PARAMETERIZATIONS
from ntkx._src.stax import empirical_kernels
from ntkx._src.theory.train import LOSSES, Trajectory, record_grid, train

__all__ = ["LOSSES", "PARAMETERIZATIONS", "Trajectory", "empirical_kernels", "record_grid", "train"]
