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

The implementation is the package `ntkx._src.flow`: `phi` (the per-eigenvalue
functions), `spectrum` (the cached eigendecomposition), `mse` (`MSEDynamics`),
`gp` (`GPDynamics`), `cross_entropy` (`cross_entropy_flow`) and `nt_compat` (the
neural-tangents-style wrappers).
"""

from ntkx._src.flow.cross_entropy import CrossEntropyFlow, cross_entropy_flow
from ntkx._src.flow.gp import Gaussian, GPDynamics
from ntkx._src.flow.mse import EarlyStopping, MSEDynamics, MSEModes, UnstableLearningRateWarning
from ntkx._src.flow.nt_compat import gradient_descent_mse, gradient_descent_mse_ensemble

__all__ = [
    "MSEDynamics", "MSEModes", "GPDynamics", "Gaussian", "EarlyStopping", "CrossEntropyFlow",
    "UnstableLearningRateWarning", "cross_entropy_flow", "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
]
