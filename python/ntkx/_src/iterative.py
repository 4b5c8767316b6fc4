"""Iterative solvers and Krylov matrix functions for kernels too large to factorize.

`ntkx.dynamics` diagonalizes the N x N kernel once; that needs O(N^2) extra memory
and O(N^3) time. This module needs only products ``K @ V`` with a block of
vectors, so the kernel may be

* an ``ndarray`` or a ``numpy.memmap`` (never copied: products run in row blocks of
  bounded size, see `as_operator`), or any array-like with ``shape``, ``dtype`` and
  row slicing (h5py / Zarr datasets);
* a ``scipy.sparse.linalg.LinearOperator``;
* a callable ``matmat(V) -> K @ V`` for ``V`` of shape ``(n, m)``, with ``n`` given
  (or taken from the right-hand side).

The kernel is assumed symmetric positive semidefinite (an NNGP or NTK); this is not
checked, since checking would cost a pass over it.

What is provided:

* `cg_solve`: block conjugate gradients for ``(K + ridge I) X = Y`` with the
  randomized Nystrom preconditioner of Frangella, Tropp & Udell (2021),
  https://arxiv.org/abs/2110.02820 ;
* `expm_multiply`, `phi_multiply`, `mse_dynamics_iterative`: Lanczos with full
  reorthogonalization for ``exp(-eta t K) V`` and
  ``K^{-1} (I - exp(-eta t K)) V``, one Krylov basis per column reused for all
  times ``t``; the same conventions as `ntkx.dynamics` (gradient flow on
  ``1/2 sum (f - y)^2`` with learning rate ``eta``);
* `top_eigenpairs`: the leading eigenpairs by ARPACK (``eigsh``) or by a randomized
  range finder with power iterations (Halko, Martinsson & Tropp 2011,
  https://arxiv.org/abs/0909.4061).

Every function validates its inputs once and raises ``ValueError`` / ``TypeError``
naming the argument and its shape. Nothing here keeps global state, so a
``KeyboardInterrupt`` (raised inside the operator, the progress callback or numpy)
simply propagates; the caller's arrays are never modified.

The implementation is the package `ntkx._src.krylov`: `operators`
(`as_operator`), `cg` (`cg_solve`), `lanczos` (`expm_multiply`, `phi_multiply`,
`mse_dynamics_iterative`) and `eigenpairs` (`top_eigenpairs`).
"""

from ntkx._src.krylov.cg import CgResult, cg_solve
from ntkx._src.krylov.eigenpairs import top_eigenpairs
from ntkx._src.krylov.lanczos import MsePrediction, expm_multiply, mse_dynamics_iterative, phi_multiply
from ntkx._src.krylov.operators import DEFAULT_BLOCK_BYTES, as_operator

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "CgResult",
    "MsePrediction",
    "as_operator",
    "cg_solve",
    "expm_multiply",
    "mse_dynamics_iterative",
    "phi_multiply",
    "top_eigenpairs",
]
