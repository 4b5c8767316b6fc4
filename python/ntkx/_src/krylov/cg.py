"""Block conjugate gradients with the randomized Nystrom preconditioner: `cg_solve`.

Frangella, Tropp & Udell (2021), https://arxiv.org/abs/2110.02820 .
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List, Optional, Union

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator

from ntkx._src import validate
from ntkx._src.krylov.operators import DEFAULT_BLOCK_BYTES, KernelLike, as_operator

#: Default Nystrom sketch size: one (n, 200) GEMM costs about as much memory
#: traffic as a single CG iteration, and 200 removes the top of an NTK spectrum
#: (a few large eigenvalues and a slowly decaying tail).
DEFAULT_NYSTROM_RANK = 200

Preconditioner = Union[str, Callable[[np.ndarray], np.ndarray], None]


class _NystromPreconditioner:
    """``P^{-1} = (lam_r + mu) U (Lam + mu)^{-1} U^T + (I - U U^T)``.

    From the randomized Nystrom approximation ``K ~ U Lam U^T`` of rank r
    (Frangella, Tropp & Udell 2021, Algorithms 2.1 and 5.1): a Gaussian sketch
    ``K Omega`` stabilized by a shift ``nu`` of the order of the rounding error, then
    a Cholesky factor and a thin SVD. One block product with `rank` columns.
    """

    def __init__(self, op: LinearOperator, rank: int, mu: float, rng: np.random.Generator):
        n = op.shape[0]
        omega, _ = np.linalg.qr(rng.standard_normal((n, rank)))  # `(n, r)` orthonormal
        y = np.asarray(op.matmat(omega), dtype=np.float64)  # `(n, r)` = K Omega
        if not np.isfinite(y).all():
            raise FloatingPointError("the kernel operator returned NaN or Inf (in the Nystrom sketch)")
        nu = np.sqrt(n) * np.spacing(np.linalg.norm(y))
        for _ in range(8):
            y_nu = y + nu * omega
            m = omega.T @ y_nu
            try:
                c = scipy.linalg.cholesky(0.5 * (m + m.T), lower=False)
                break
            except np.linalg.LinAlgError:  # rounding made Omega^T K Omega indefinite: shift more
                nu *= 100.0
        else:
            raise ValueError(
                "the Nystrom sketch Omega^T K Omega is not positive definite even after shifting: "
                "is the kernel symmetric positive semidefinite?"
            )
        b = scipy.linalg.solve_triangular(c, y_nu.T, trans="T", lower=False).T  # B C = Y_nu
        u, s, _ = scipy.linalg.svd(b, full_matrices=False, overwrite_a=True)
        lam = np.maximum(s**2 - nu, 0.0)  # descending
        if mu == 0.0:
            # (lam_r + 0) / (lam_i + 0) needs lam > 0: drop what is rounding noise.
            keep = lam > lam[0] * 1e-13 if lam.size and lam[0] > 0 else np.zeros(lam.shape, bool)
            u, lam = u[:, keep], lam[keep]
        self.u = u  # `(n, r')`
        self.lam = lam  # `(r',)`
        self.mu = mu
        self.rank = int(lam.size)
        # P^{-1} R = R + U [((lam_r + mu) / (lam + mu) - 1) * (U^T R)]
        self._scale = ((lam[-1] + mu) / (lam + mu) - 1.0)[:, None] if lam.size else None

    def __call__(self, r: np.ndarray) -> np.ndarray:
        if self._scale is None:
            return r.copy()
        return r + self.u @ (self._scale * (self.u.T @ r))


@dataclasses.dataclass
class CgResult:
    """Result of `cg_solve`.

    Attributes:
        x (ndarray): The solution, `(n,)` or `(n, m)` like the right-hand side.
        iterations (int): Block iterations (operator products of the CG loop), i.e. the most any column needed.
        column_iterations (ndarray): `(m,)` iterations per column (a converged column is frozen).
        residual_history (list of ndarray): Per column, the relative residuals ``||r_j|| / ||y_j||`` of the CG
            recursion, starting with the initial one (restarts append theirs).
        relative_residual (ndarray): `(m,)` final ``||y_j - (K + ridge I) x_j|| / ||y_j||`` from an independent
            product at the end (0 for a zero column), not from the recursion.
        converged (bool): Whether every column's final `relative_residual` is <= `tol`.
        column_converged (ndarray): `(m,)` bool, per column.
        preconditioner_rank (int): Rank of the Nystrom approximation used (0: none or a user callable).
        operator_products (int): Block products with the kernel, including the sketch and the final check.
    """

    x: np.ndarray
    iterations: int
    column_iterations: np.ndarray
    residual_history: List[np.ndarray]
    relative_residual: np.ndarray
    converged: bool
    column_converged: np.ndarray
    preconditioner_rank: int
    operator_products: int


def cg_solve(
    k: KernelLike,
    y: Any,
    ridge: float = 0.0,
    *,
    tol: float = 1e-10,
    maxiter: Optional[int] = None,
    preconditioner: Preconditioner = "nystrom",
    rank: Optional[int] = None,
    seed: Any = 0,
    x0: Any = None,
    progress: Optional[Callable[[int, float], None]] = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> CgResult:
    """Solves ``(K + ridge I) X = Y`` by preconditioned block conjugate gradients.

    The `m` columns of `Y` run together: each iteration is one block product
    ``K @ P`` over the columns still active, with separate CG scalars per column;
    a column is frozen once its relative residual is <= `tol`. When the loop
    stops, the residual is recomputed by an independent product; columns whose
    true residual is still above `tol` (the recursion drifted) restart from it,
    at most three times, while iterations remain.

    Args:
        k (ndarray, memmap, LinearOperator or callable): The symmetric positive semidefinite `(n, n)` kernel
            (see `as_operator`; a callable gets `n` from `y`).
        y (array_like): Right-hand sides, `(n,)` or `(n, m)`, finite.
        ridge (float): Diagonal shift >= 0 (needed when K is singular).
        tol (float): Target relative residual ``||y - (K + ridge I) x|| / ||y||`` per column.
        maxiter (int, optional): Cap on block iterations (default ``10 n``, as scipy's ``cg``).
        preconditioner ({'nystrom', 'none'} or callable): ``'nystrom'`` (default): randomized Nystrom
            preconditioner of Frangella, Tropp & Udell (2021), https://arxiv.org/abs/2110.02820, with ``P^{-1} =
            (lam_r + ridge) U (Lam + ridge)^{-1} U^T + (I - U U^T)``; it costs one block product with `rank`
            columns and ``~5 n rank`` floats. A callable ``M(R) -> P^{-1} R`` (for `R` of shape `(n, a)`) is
            used as is; it must be symmetric positive definite.
        rank (int, optional): Nystrom sketch size (default ``min(n, 200)``).
        seed (int or numpy.random.Generator): Seed of the Gaussian sketch.
        x0 (array_like, optional): Initial guess, shaped like `y` (not modified).
        progress (callable, optional): Called as ``progress(iteration, max_rel_residual)`` after each iteration
            (the largest recursive relative residual over the columns).
        block_bytes (int): Row-block memory for array kernels (see `as_operator`).

    Returns:
        CgResult: Solution, iteration counts, residual histories and the independently checked final relative
            residuals. Not converging within `maxiter` is reported (``converged=False``), not raised.

    Raises:
        ValueError: Bad shapes, NaN/Inf in `y` or `x0`, negative `ridge`, non-positive `tol`, `maxiter` or
            `rank`, or ``K + ridge I`` found not positive definite.
        FloatingPointError: The operator returned NaN or Inf.

    Examples:
        >>> res = cg_solve(kernel, y_train, ridge=1e-6)  # doctest: +SKIP
        >>> res.converged, res.iterations, res.relative_residual  # doctest: +SKIP
    """
    n_hint = np.shape(y)[0] if np.ndim(y) >= 1 else None
    ridge = validate.check_nonneg(ridge, "ridge")
    tol = validate.check_nonneg(tol, "tol", strict=True)
    maxiter = validate.check_count(maxiter, "maxiter", allow_none=True)
    rank = validate.check_count(rank, "rank", allow_none=True)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable(iteration, max_rel_residual) or None, got {progress!r}")
    if isinstance(k, LinearOperator) or not callable(k) or hasattr(k, "shape"):
        op = as_operator(k, block_bytes=block_bytes)
    else:
        if n_hint is None:
            raise ValueError(f"y must have shape (n,) or (n, m), got shape {np.shape(y)}")
        op = as_operator(k, n_hint, block_bytes=block_bytes)
    n = op.shape[0]
    yb, vec = validate.as_rhs(y, "y", n)
    m = yb.shape[1]
    x = np.zeros((n, m)) if x0 is None else validate.as_rhs(x0, "x0", n, m)[0].copy()
    if maxiter is None:
        maxiter = 10 * n

    rng = validate.rng(seed)
    if isinstance(preconditioner, str):
        if preconditioner not in ("nystrom", "none"):
            raise ValueError(f"preconditioner must be 'nystrom', 'none' or a callable, got {preconditioner!r}")
    elif preconditioner is not None and not callable(preconditioner):
        raise TypeError(f"preconditioner must be 'nystrom', 'none' or a callable, got {preconditioner!r}")

    def apply(v: np.ndarray) -> np.ndarray:
        out = np.asarray(op.matmat(v), dtype=np.float64).reshape(v.shape)
        if ridge:
            out += ridge * v
        if not np.isfinite(out).all():
            raise FloatingPointError("the kernel operator returned NaN or Inf")
        return out

    products = 0
    prec_rank = 0
    if preconditioner == "nystrom":
        pre = _NystromPreconditioner(op, min(n, rank or DEFAULT_NYSTROM_RANK), ridge, rng)
        minv: Callable[[np.ndarray], np.ndarray] = pre
        prec_rank, products = pre.rank, 1
    elif preconditioner is None or preconditioner == "none":
        minv = np.copy
    else:
        user = preconditioner

        def minv(r: np.ndarray) -> np.ndarray:
            out = np.asarray(user(r), dtype=np.float64)
            if out.size != r.size:
                raise ValueError(f"the preconditioner must return an array of shape {r.shape}, got {out.shape}")
            return out.reshape(r.shape)

    ynorm = np.linalg.norm(yb, axis=0)
    safe = np.where(ynorm > 0, ynorm, 1.0)
    zero_cols = ynorm == 0
    x[:, zero_cols] = 0.0  # the exact solution, whatever x0 said
    history: List[List[float]] = [[] for _ in range(m)]
    col_iters = np.zeros(m, dtype=np.int64)
    it = 0

    def true_residual() -> np.ndarray:
        nonlocal products
        products += 1
        return yb - apply(x)

    r = true_residual() if x0 is not None else yb.copy()
    rel = np.linalg.norm(r, axis=0) / safe
    best = rel.copy()
    for restart in range(4):
        for j in range(m):
            history[j].append(float(rel[j]))
        active = np.flatnonzero((rel > tol) & ~zero_cols)
        if active.size == 0 or it >= maxiter:
            break
        ra = r[:, active]
        z = minv(ra)
        p = z.copy()
        rz = np.einsum("ij,ij->j", ra, z)
        cur = rel.copy()
        while active.size and it < maxiter:
            ap = apply(p)
            products += 1
            it += 1
            pap = np.einsum("ij,ij->j", p, ap)
            if (pap <= 0).any():
                j = int(active[np.argmax(pap <= 0)])
                raise ValueError(
                    f"K + ridge I is not positive definite (p^T A p <= 0 in column {j} at iteration {it}); "
                    f"pass a ridge > 0"
                )
            alpha = rz / pap
            x[:, active] += alpha * p
            ra = r[:, active] - alpha * ap
            r[:, active] = ra
            rel_a = np.linalg.norm(ra, axis=0) / safe[active]
            cur[active] = rel_a
            col_iters[active] += 1
            for jj, j in enumerate(active):
                history[j].append(float(rel_a[jj]))
            if progress is not None:
                progress(it, float(cur.max()))
            keep = rel_a > tol
            if not keep.any():
                break
            active, ra, p, rz = active[keep], ra[:, keep], p[:, keep], rz[keep]
            z = minv(ra)
            rz_new = np.einsum("ij,ij->j", ra, z)
            p = z + (rz_new / rz) * p
            rz = rz_new
        # Independent check; restart only columns whose true residual is above tol
        # and still improving (the recursion can drift below what is attainable).
        r = true_residual()
        rel = np.linalg.norm(r, axis=0) / safe
        improving = rel < 0.5 * best
        best = np.minimum(best, rel)
        if not ((rel > tol) & improving & ~zero_cols).any():
            break
    rel[zero_cols] = 0.0
    converged_cols = rel <= tol
    return CgResult(
        x=x[:, 0].copy() if vec else x,
        iterations=it,
        column_iterations=col_iters,
        residual_history=[np.asarray(h) for h in history],
        relative_residual=rel,
        converged=bool(converged_cols.all()),
        column_converged=converged_cols,
        preconditioner_rank=prec_rank,
        operator_products=products,
    )
