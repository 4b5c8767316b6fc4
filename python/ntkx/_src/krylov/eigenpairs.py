"""The leading eigenpairs of a kernel by ARPACK or a randomized range finder: `top_eigenpairs`."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import eigsh

from ntkx._src import validate
from ntkx._src.krylov.operators import DEFAULT_BLOCK_BYTES, KernelLike, as_operator


def top_eigenpairs(
    k: KernelLike,
    k_top: int,
    *,
    method: str = "eigsh",
    tol: float = 1e-12,
    seed: Any = 0,
    n: Optional[int] = None,
    oversample: int = 10,
    power_iter: int = 6,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> Tuple[np.ndarray, np.ndarray]:
    """The `k_top` largest eigenvalues of a symmetric kernel and their eigenvectors.

    Args:
        k (ndarray, memmap, LinearOperator or callable): Symmetric `(n, n)` kernel (a callable needs `n`).
        k_top (int): Number of eigenpairs, ``1 <= k_top < n``.
        method ({'eigsh', 'randomized'}): ``'eigsh'`` (default): ARPACK's implicitly restarted Lanczos on the
            operator (one matvec at a time), to relative accuracy `tol`. ``'randomized'``: Halko, Martinsson &
            Tropp (2011), https://arxiv.org/abs/0909.4061, Algorithms 4.4 and 5.3: a Gaussian sketch of ``k_top
            + oversample`` columns, `power_iter` power iterations (re-orthonormalized each time), then
            Rayleigh-Ritz; ``power_iter + 2`` block products, accuracy set by the spectral gap (not by `tol`).
        tol (float): ARPACK's relative accuracy of the Ritz values (> 0).
        seed (int or numpy.random.Generator): ARPACK's start vector / the Gaussian sketch.
        n (int, optional): Kernel size; required for a callable.
        oversample, power_iter (int): Randomized method only (``power_iter`` may be 0).
        block_bytes (int): Row-block memory for array kernels (see `as_operator`).

    Returns:
        Tuple[ndarray, ndarray]: ``(eigenvalues, eigenvectors)``: the eigenvalues `(k_top,)`, descending,
            and the eigenvectors `(n, k_top)`, orthonormal columns, in the same order.
    """
    op = as_operator(k, n, block_bytes=block_bytes)
    n = op.shape[0]
    k_top = validate.check_count(k_top, "k_top")
    if k_top >= n:
        raise ValueError(f"k_top must be < n = {n} (use scipy.linalg.eigh for the full spectrum), got {k_top}")
    tol = validate.check_nonneg(tol, "tol", strict=True)
    rng = validate.rng(seed)
    if method == "eigsh":
        ncv = min(n, max(2 * k_top + 1, 20))
        w, u = eigsh(op, k=k_top, which="LA", tol=tol, v0=rng.standard_normal(n), ncv=ncv)
    elif method == "randomized":
        oversample = validate.check_count(oversample, "oversample")
        power_iter = validate.check_count(power_iter, "power_iter", minimum=0)
        ell = min(n, k_top + oversample)
        y = np.asarray(op.matmat(rng.standard_normal((n, ell))), dtype=np.float64)
        for _ in range(int(power_iter)):
            q, _ = np.linalg.qr(y)
            y = np.asarray(op.matmat(q), dtype=np.float64)
        q, _ = np.linalg.qr(y)
        b = q.T @ np.asarray(op.matmat(q), dtype=np.float64)
        w, s = scipy.linalg.eigh(0.5 * (b + b.T))
        w, u = w[-k_top:], q @ s[:, -k_top:]
    else:
        raise ValueError(f"method must be 'eigsh' or 'randomized', got {method!r}")
    if not np.isfinite(w).all():
        raise FloatingPointError("the kernel operator returned NaN or Inf")
    order = np.argsort(w)[::-1]
    return w[order], u[:, order]
