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
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator, eigsh

from ntkx._src import validate

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

#: Working memory of one row block of an array kernel, in bytes. 64 MB keeps a
#: block well inside the last-level cache's neighbourhood of main memory while
#: each block's GEMM is still large enough (>= 400 rows at N = 20,000) to run at
#: full BLAS speed; for a memmap it bounds the pages touched per step, not the
#: page cache (which the OS may reclaim).
DEFAULT_BLOCK_BYTES = 64 * 2**20

#: Default Nystrom sketch size: one (n, 200) GEMM costs about as much memory
#: traffic as a single CG iteration, and 200 removes the top of an NTK spectrum
#: (a few large eigenvalues and a slowly decaying tail).
DEFAULT_NYSTROM_RANK = 200

#: Default cap on the Krylov dimension of `expm_multiply` and friends. The basis
#: costs ``max_dim * n * 8`` bytes per right-hand side (80 MB at n = 20,000).
DEFAULT_MAX_KRYLOV_DIM = 500

KernelLike = Union[np.ndarray, LinearOperator, Callable[[np.ndarray], np.ndarray], Any]
Preconditioner = Union[str, Callable[[np.ndarray], np.ndarray], None]


# ----------------------------------------------------------------------------
# Operators
# ----------------------------------------------------------------------------


class _RowBlockOperator(LinearOperator):
    """``A @ V`` for an array-like `A` by row blocks of at most `block_bytes`.

    Each block ``A[s:e]`` is a view for a float64 ndarray or memmap (other dtypes
    are converted one block at a time), so no N x N temporary is ever created.
    """

    def __init__(self, a: Any, block_bytes: int):
        self.matrix = a  # `(n_rows, n_cols)`, kept by reference
        super().__init__(dtype=np.dtype(np.float64), shape=tuple(int(s) for s in a.shape))
        self.rows_per_block = max(1, int(block_bytes) // (8 * max(self.shape[1], 1)))

    def _blocks(self):
        n_rows, rb = self.shape[0], self.rows_per_block
        for s in range(0, n_rows, rb):
            e = min(s + rb, n_rows)
            yield s, e, np.asarray(self.matrix[s:e], dtype=np.float64)

    def _matmat(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)  # `(n_cols, m)`
        out = np.empty((self.shape[0], v.shape[1]))
        for s, e, blk in self._blocks():
            np.matmul(blk, v, out=out[s:e])
        return out

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(v, (-1, 1))).reshape(-1)

    def _rmatmat(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)  # `(n_rows, m)`
        out = np.zeros((self.shape[1], v.shape[1]))
        for s, e, blk in self._blocks():
            out += blk.T @ v[s:e]
        return out

    def _rmatvec(self, v: np.ndarray) -> np.ndarray:
        return self._rmatmat(np.reshape(v, (-1, 1))).reshape(-1)


class _CallableOperator(LinearOperator):
    """A symmetric operator from ``matmat(V) -> K @ V``; checks what it returns."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], n: int):
        self.fn = fn
        super().__init__(dtype=np.dtype(np.float64), shape=(n, n))

    def _matmat(self, v: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(v, dtype=np.float64)
        out = np.asarray(self.fn(v), dtype=np.float64)
        if out.size != v.size:
            raise ValueError(
                f"the kernel callable must return K @ V of shape {v.shape} for V of shape {v.shape}, "
                f"got shape {out.shape}"
            )
        return out.reshape(v.shape)

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(v, (-1, 1))).reshape(-1)

    _rmatmat = _matmat  # symmetric
    _rmatvec = _matvec


def _check_array_kernel(k: Any, name: str) -> None:
    shape, dtype = getattr(k, "shape", None), getattr(k, "dtype", None)
    if shape is None or dtype is None or not hasattr(k, "__getitem__"):
        raise TypeError(
            f"{name} must be an ndarray/memmap, a scipy LinearOperator or a callable matmat(V) -> K @ V, "
            f"got {type(k).__name__}"
        )
    dtype = np.dtype(dtype)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {dtype}")
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(shape)}")


def as_operator(k: KernelLike, n: Optional[int] = None, *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> LinearOperator:
    """Wraps a symmetric kernel as a ``scipy.sparse.linalg.LinearOperator``.

    Parameters
    ----------
    k : ndarray, memmap, array-like, LinearOperator or callable
        The `(n, n)` kernel. Arrays (including ``numpy.memmap`` and any object with
        ``shape``, ``dtype`` and row slicing) are kept by reference, never copied,
        and multiplied in row blocks of at most `block_bytes` bytes. A
        ``LinearOperator`` is returned as is. A callable is taken as
        ``matmat(V) -> K @ V`` for ``V`` of shape `(n, m)`.
    n : int, optional
        The kernel's size; required for a callable, checked otherwise.
    block_bytes : int
        Working memory of one row block (default 64 MB): the product then needs
        ``block_bytes`` plus its output, whatever the kernel's size.

    Returns
    -------
    LinearOperator
        A float64 operator of shape `(n, n)`, symmetric by assumption.

    Examples
    --------
    >>> k = np.lib.format.open_memmap("ntk.npy", mode="r")  # doctest: +SKIP
    >>> op = as_operator(k)                                  # doctest: +SKIP
    >>> y = op.matmat(v)                                     # doctest: +SKIP
    """
    n = _check_count(n, "n", allow_none=True)
    block_bytes = _check_count(block_bytes, "block_bytes")
    if isinstance(k, LinearOperator):
        op = k
    elif callable(k) and not hasattr(k, "shape"):
        if n is None:
            raise TypeError("n must be given when the kernel is a callable matmat(V) -> K @ V")
        return _CallableOperator(k, n)
    else:
        if not hasattr(k, "shape"):
            try:
                k = np.asarray(k)
            except Exception as e:  # ragged lists and the like
                raise TypeError(f"k could not be converted to a numeric array: {e}") from None
        _check_array_kernel(k, "k")
        op = _RowBlockOperator(k, block_bytes)
    shape = tuple(op.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"k must be square (n, n), got shape {shape}")
    if n is not None and shape[0] != n:
        raise ValueError(f"k has shape {shape} but n = {n}")
    return op


def _as_rect_operator(k: Any, shape: Tuple[Optional[int], int], name: str) -> LinearOperator:
    """An `(n_rows, n_cols)` operator (e.g. the test-train kernel); n_rows None: any."""
    if isinstance(k, LinearOperator):
        op = k
    elif callable(k) and not hasattr(k, "shape"):
        raise TypeError(
            f"{name} must be an array or a scipy LinearOperator of shape (n_test, {shape[1]}); wrap a callable "
            f"as scipy.sparse.linalg.LinearOperator((n_test, {shape[1]}), matmat=f)"
        )
    else:
        if not hasattr(k, "shape"):
            k = np.asarray(k)
        _check_array_kernel(k, name)
        op = _RowBlockOperator(k, DEFAULT_BLOCK_BYTES)
    got = tuple(op.shape)
    if len(got) != 2 or got[1] != shape[1] or (shape[0] is not None and got[0] != shape[0]):
        want = f"(n_test, {shape[1]})" if shape[0] is None else str(shape)
        raise ValueError(f"{name} must have shape {want}, got {got}")
    return op


# ----------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------


def _check_count(value: Any, name: str, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _as_rhs(y: Any, name: str, n: Optional[int], m: Optional[int] = None) -> Tuple[np.ndarray, bool]:
    """`y` as a float64 `(n, m)` array (a copy only when needed) and whether it was 1-D."""
    arr = validate.numeric_array(y, name, "an array of shape (n,) or (n, m)")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (n,) or (n, m), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows to match the kernel, got shape {arr.shape}")
    if arr.shape[0] == 0 or (arr.ndim == 2 and arr.shape[1] == 0):
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    vec = arr.ndim == 1
    arr = arr.reshape(arr.shape[0], -1).astype(np.float64, copy=False)
    if m is not None and arr.shape[1] != m:
        raise ValueError(f"{name} must have {m} column(s), got shape {np.shape(y)}")
    validate.check_finite(arr, name, f", shape {np.shape(y)}")
    return arr, vec


def _as_times(t: Any) -> Tuple[np.ndarray, bool]:
    """`t` as a 1-D float64 array of times >= 0 (inf allowed) and whether it was scalar."""
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"t must be a number or a 1-D array of numbers, got {t!r}") from None
    if arr.ndim > 1:
        raise ValueError(f"t must be a scalar or 1-D, got shape {arr.shape}")
    scalar = arr.ndim == 0
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError("t must contain at least one time, got an empty array")
    if np.isnan(arr).any() or (arr < 0).any():
        raise ValueError(f"t must be >= 0 (inf allowed) and not NaN, got {t!r}")
    return arr, scalar


def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    is_int = isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, (bool, np.bool_))
    if seed is not None and not is_int:
        raise TypeError(f"seed must be an integer, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------
# Conjugate gradients with a randomized Nystrom preconditioner
# ----------------------------------------------------------------------------


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

    Attributes
    ----------
    x : ndarray
        The solution, `(n,)` or `(n, m)` like the right-hand side.
    iterations : int
        Block iterations (operator products of the CG loop), i.e. the most any
        column needed.
    column_iterations : ndarray
        `(m,)` iterations per column (a converged column is frozen).
    residual_history : list of ndarray
        Per column, the relative residuals ``||r_j|| / ||y_j||`` of the CG
        recursion, starting with the initial one (restarts append theirs).
    relative_residual : ndarray
        `(m,)` final ``||y_j - (K + ridge I) x_j|| / ||y_j||`` from an independent
        product at the end (0 for a zero column), not from the recursion.
    converged : bool
        Whether every column's final `relative_residual` is <= `tol`.
    column_converged : ndarray
        `(m,)` bool, per column.
    preconditioner_rank : int
        Rank of the Nystrom approximation used (0: none or a user callable).
    operator_products : int
        Block products with the kernel, including the sketch and the final check.
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

    Parameters
    ----------
    k : ndarray, memmap, LinearOperator or callable
        The symmetric positive semidefinite `(n, n)` kernel (see `as_operator`; a
        callable gets `n` from `y`).
    y : array_like
        Right-hand sides, `(n,)` or `(n, m)`, finite.
    ridge : float
        Diagonal shift >= 0 (needed when K is singular).
    tol : float
        Target relative residual ``||y - (K + ridge I) x|| / ||y||`` per column.
    maxiter : int, optional
        Cap on block iterations (default ``10 n``, as scipy's ``cg``).
    preconditioner : {'nystrom', 'none'} or callable
        ``'nystrom'`` (default): randomized Nystrom preconditioner of Frangella,
        Tropp & Udell (2021), https://arxiv.org/abs/2110.02820, with
        ``P^{-1} = (lam_r + ridge) U (Lam + ridge)^{-1} U^T + (I - U U^T)``;
        it costs one block product with `rank` columns and ``~5 n rank`` floats.
        A callable ``M(R) -> P^{-1} R`` (for `R` of shape `(n, a)`) is used as is;
        it must be symmetric positive definite.
    rank : int, optional
        Nystrom sketch size (default ``min(n, 200)``).
    seed : int or numpy.random.Generator
        Seed of the Gaussian sketch.
    x0 : array_like, optional
        Initial guess, shaped like `y` (not modified).
    progress : callable, optional
        Called as ``progress(iteration, max_rel_residual)`` after each iteration
        (the largest recursive relative residual over the columns).
    block_bytes : int
        Row-block memory for array kernels (see `as_operator`).

    Returns
    -------
    CgResult
        Solution, iteration counts, residual histories and the independently
        checked final relative residuals. Not converging within `maxiter` is
        reported (``converged=False``), not raised.

    Raises
    ------
    ValueError
        Bad shapes, NaN/Inf in `y` or `x0`, negative `ridge`, non-positive `tol`,
        `maxiter` or `rank`, or ``K + ridge I`` found not positive definite.
    FloatingPointError
        The operator returned NaN or Inf.

    Examples
    --------
    >>> res = cg_solve(kernel, y_train, ridge=1e-6)  # doctest: +SKIP
    >>> res.converged, res.iterations, res.relative_residual  # doctest: +SKIP
    """
    n_hint = np.shape(y)[0] if np.ndim(y) >= 1 else None
    ridge = validate.check_nonneg(ridge, "ridge")
    tol = validate.check_nonneg(tol, "tol", strict=True)
    maxiter = _check_count(maxiter, "maxiter", allow_none=True)
    rank = _check_count(rank, "rank", allow_none=True)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable(iteration, max_rel_residual) or None, got {progress!r}")
    if isinstance(k, LinearOperator) or not callable(k) or hasattr(k, "shape"):
        op = as_operator(k, block_bytes=block_bytes)
    else:
        if n_hint is None:
            raise ValueError(f"y must have shape (n,) or (n, m), got shape {np.shape(y)}")
        op = as_operator(k, n_hint, block_bytes=block_bytes)
    n = op.shape[0]
    yb, vec = _as_rhs(y, "y", n)
    m = yb.shape[1]
    x = np.zeros((n, m)) if x0 is None else _as_rhs(x0, "x0", n, m)[0].copy()
    if maxiter is None:
        maxiter = 10 * n

    rng = _rng(seed)
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


# ----------------------------------------------------------------------------
# Lanczos matrix functions
# ----------------------------------------------------------------------------


def _exp_values(theta: np.ndarray, st: np.ndarray) -> np.ndarray:
    """``exp(-s theta)`` for `s = eta t` `(T,)` and Ritz values `theta` `(d,)` -> `(T, d)`.

    ``s = inf`` gives 0 for theta > 0 and 1 for theta == 0 (the projection on the
    null space, which assumes exact zeros; rounding makes it ill-defined).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        x = st[:, None] * theta[None, :]
        out = np.exp(-x)
    return np.where(np.isnan(out), 1.0, out)


def _phi_values(theta: np.ndarray, st: np.ndarray) -> np.ndarray:
    """``(1 - exp(-s theta)) / theta`` `(T, d)`, stable: ``s * (-expm1(-x) / x)``, x = s theta.

    Equal to `s` at theta = 0 and to ``1 / theta`` at s = inf (0 at theta = 0 there:
    the pseudo-inverse, as in `ntkx.dynamics`).
    """
    out = np.empty((st.size, theta.size))
    fin = np.isfinite(st)
    x = st[fin, None] * theta[None, :]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        g = np.where(x == 0, 1.0, -np.expm1(-x) / np.where(x == 0, 1.0, x))
        out[fin] = st[fin, None] * g
        out[~fin] = np.where(theta > 0, 1.0 / np.where(theta > 0, theta, 1.0), 0.0)[None, :]
    return out


def _lanczos_functions(
    op: LinearOperator,
    v: np.ndarray,
    funcs: Sequence[Callable[[np.ndarray], np.ndarray]],
    zero_ok: Sequence[np.ndarray],
    *,
    shift: float,
    tol: float,
    max_dim: int,
) -> List[np.ndarray]:
    """``f(K + shift I) v_j`` for each function and column, by Lanczos.

    Each column of `v` `(n, m)` gets its own Krylov basis, built with full
    reorthogonalization (classical Gram-Schmidt, twice); the columns advance in
    lockstep so each step is one block product. `funcs` map Ritz values `(d,)` to
    `(T, d)` values (one row per time). After every step the small problem
    ``T_d = S diag(theta) S^T`` is solved by ``scipy.linalg.eigh_tridiagonal`` and
    the coefficients ``c = ||v|| S f(theta) S[0]^T`` in the basis are compared with
    the previous step's: a column stops when ``||c_d - c_{d-1}|| <= tol ||c_d||``
    for every function and time at two consecutive steps, at an invariant
    subspace (beta ~ 0), or at `max_dim` (with a RuntimeWarning). A time whose
    result is still exactly 0 (every Ritz value's exp underflowed while the small
    eigenvalues that carry the answer are not found yet) does not count as
    converged unless `zero_ok` (one boolean per time and function) says 0 is the
    answer there. Ritz values below ``n eps max(theta)`` count as exact zeros, as
    the eigenvalues in `ntkx.dynamics` do.

    Returns one `(T_f, n, m)` array per function.
    """
    n, m = v.shape
    max_dim = min(max_dim, n)
    outs = [None] * len(funcs)
    beta0 = np.linalg.norm(v, axis=0)
    bases: dict = {}
    alphas: dict = {j: [] for j in range(m)}
    betas: dict = {j: [] for j in range(m)}
    prev: dict = {}
    calm = np.zeros(m, dtype=np.int64)
    final: dict = {}
    last_change = np.zeros(m)
    unconverged = []
    active = [j for j in range(m) if beta0[j] > 0]
    for j in active:
        q = np.empty((min(max_dim, 64), n))
        q[0] = v[:, j] / beta0[j]
        bases[j] = q
    dim = 0
    while active:
        w_block = np.asarray(op.matmat(np.stack([bases[j][dim] for j in active], axis=1)), dtype=np.float64)
        if not np.isfinite(w_block).all():
            raise FloatingPointError("the kernel operator returned NaN or Inf")
        still = []
        for jj, j in enumerate(active):
            q = bases[j]
            w = w_block[:, jj].copy()
            a = float(q[dim] @ w)
            w -= a * q[dim]
            if dim > 0:
                w -= betas[j][-1] * q[dim - 1]
            for _ in range(2):  # "twice is enough" (Giraud et al. 2005)
                w -= q[: dim + 1].T @ (q[: dim + 1] @ w)
            b = float(np.linalg.norm(w))
            alphas[j].append(a)
            d = dim + 1
            theta, s = scipy.linalg.eigh_tridiagonal(np.asarray(alphas[j]), np.asarray(betas[j]))
            theta = theta + shift
            theta[theta <= n * np.finfo(float).eps * max(float(theta.max()), 0.0)] = 0.0
            coefs = [beta0[j] * (f(theta) * s[0][None, :]) @ s.T for f in funcs]  # each `(T, d)`
            if j in prev:
                ok = True
                change = 0.0
                for c, cp, zok in zip(coefs, prev[j], zero_ok):
                    diff = c.copy()
                    diff[:, : d - 1] -= cp
                    dn, cn = np.linalg.norm(diff, axis=1), np.linalg.norm(c, axis=1)
                    ok &= bool(np.all((dn <= tol * cn) & ((cn > 0) | zok)))
                    with np.errstate(invalid="ignore", divide="ignore"):
                        change = max(change, float(np.nanmax(np.where(cn > 0, dn / cn, 0.0))))
                calm[j] = calm[j] + 1 if ok else 0
                last_change[j] = change
            prev[j] = coefs
            anorm = max(np.abs(alphas[j]).max(), max(betas[j], default=0.0), b)
            breakdown = b <= 64 * np.finfo(float).eps * anorm or d == n
            if calm[j] >= 2 or breakdown:
                final[j] = (coefs, d)
            elif d >= max_dim:
                final[j] = (coefs, d)
                unconverged.append(j)
            else:
                betas[j].append(b)
                if d >= q.shape[0]:  # grow the basis geometrically
                    grown = np.empty((min(max_dim, 2 * q.shape[0]), n))
                    grown[:d] = q[:d]
                    bases[j] = q = grown
                q[d] = w / b
                still.append(j)
        active = still
        dim += 1
    if unconverged:
        warnings.warn(
            f"Lanczos reached max_dim={max_dim} before converging for {len(unconverged)} of {m} column(s) "
            f"(last relative change {max(last_change[j] for j in unconverged):.1e} > tol={tol:.1e}); "
            f"increase max_dim",
            RuntimeWarning,
            stacklevel=3,
        )
    for i, f in enumerate(funcs):
        n_t = f(np.zeros(1)).shape[0]
        out = np.zeros((n_t, n, m))
        for j, (coefs, d) in final.items():
            out[:, :, j] = coefs[i] @ bases[j][:d]
        outs[i] = out
    return outs


def _krylov_setup(k, v, learning_rate, ridge, tol, max_dim, block_bytes, t, name="v"):
    learning_rate = validate.check_nonneg(learning_rate, "learning_rate", strict=True)
    ridge = validate.check_nonneg(ridge, "ridge")
    tol = validate.check_nonneg(tol, "tol", strict=True)
    max_dim = _check_count(max_dim, "max_dim", allow_none=True) or DEFAULT_MAX_KRYLOV_DIM
    times, scalar = _as_times(t)
    if isinstance(k, LinearOperator) or not callable(k) or hasattr(k, "shape"):
        op = as_operator(k, block_bytes=block_bytes)
    else:
        op = as_operator(k, np.shape(v)[0] if np.ndim(v) >= 1 else None, block_bytes=block_bytes)
    vb, vec = _as_rhs(v, name, op.shape[0])
    return op, vb, vec, times, scalar, learning_rate, ridge, tol, max_dim


def _shape_out(out: np.ndarray, scalar: bool, vec: bool) -> np.ndarray:
    if vec:
        out = out[:, :, 0]
    return out[0] if scalar else out


def expm_multiply(
    k: KernelLike,
    v: Any,
    t: Any,
    *,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    tol: float = 1e-10,
    max_dim: Optional[int] = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> np.ndarray:
    """``exp(-eta t (K + ridge I)) v`` by Lanczos, for one or many times.

    Note the sign: this is the decay of a gradient-flow residual (unlike
    ``scipy.sparse.linalg.expm_multiply``, which computes ``exp(t A) v``). One
    Krylov basis per column of `v` serves all times; its dimension grows until
    the result changes by less than `tol` (relative) between steps, for every
    time (see the module notes). ``t = inf`` gives 0 when ``K + ridge I`` is
    positive definite.

    Parameters
    ----------
    k : ndarray, memmap, LinearOperator or callable
        Symmetric PSD `(n, n)` kernel (a callable gets `n` from `v`).
    v : array_like
        `(n,)` or `(n, m)`, finite.
    t : float or array_like
        Time(s) >= 0, scalar or `(T,)`; ``inf`` allowed.
    learning_rate : float
        ``eta`` > 0.
    ridge : float
        Diagonal shift >= 0.
    tol : float
        Relative change at which the Krylov dimension stops growing.
    max_dim : int, optional
        Cap on the Krylov dimension (default 500; memory ``max_dim * n * 8``
        bytes per column). Reaching it issues a RuntimeWarning.
    block_bytes : int
        Row-block memory for array kernels (see `as_operator`).

    Returns
    -------
    ndarray
        `(T, n[, m])` for an array `t`, `(n[, m])` for a scalar.
    """
    op, vb, vec, times, scalar, eta, ridge, tol, max_dim = _krylov_setup(
        k, v, learning_rate, ridge, tol, max_dim, block_bytes, t
    )
    st = eta * times
    (out,) = _lanczos_functions(op, vb, [lambda th: _exp_values(th, st)], [np.isinf(st)], shift=ridge, tol=tol,
                                max_dim=max_dim)
    return _shape_out(out, scalar, vec)


def phi_multiply(
    k: KernelLike,
    v: Any,
    t: Any,
    *,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    tol: float = 1e-10,
    max_dim: Optional[int] = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    cg_options: Optional[dict] = None,
) -> np.ndarray:
    """``A^{-1} (I - exp(-eta t A)) v`` with ``A = K + ridge I``, by Lanczos.

    The function is evaluated on the Ritz values as ``-expm1(-eta t theta) /
    theta`` (``eta t`` at ``theta = 0``), so a singular kernel is fine at finite
    `t`. ``t = inf`` is the solve ``A^{-1} v``: mixed with finite times it is
    ``1 / theta`` in the same Lanczos basis (unpreconditioned, equivalent to CG);
    when every time is ``inf`` it is delegated to `cg_solve` with its Nystrom
    preconditioner (tolerance `tol` on the residual), which is much faster on
    ill-conditioned kernels.

    Parameters
    ----------
    k, v, t, learning_rate, ridge, tol, max_dim, block_bytes
        As in `expm_multiply`.
    cg_options : dict, optional
        Extra keyword arguments for `cg_solve` in the all-``inf`` case (e.g.
        ``rank``, ``maxiter``); a non-converged solve warns.

    Returns
    -------
    ndarray
        `(T, n[, m])` for an array `t`, `(n[, m])` for a scalar.
    """
    op, vb, vec, times, scalar, eta, ridge, tol, max_dim = _krylov_setup(
        k, v, learning_rate, ridge, tol, max_dim, block_bytes, t
    )
    out = _phi_core(op, vb, eta * times, ridge, tol, max_dim, cg_options)
    return _shape_out(out, scalar, vec)


def _phi_core(op, vb, st, ridge, tol, max_dim, cg_options) -> np.ndarray:
    if np.isinf(st).all():
        res = cg_solve(op, vb, ridge, **{"tol": tol, **(cg_options or {})})
        if not res.converged:
            warnings.warn(
                f"cg_solve did not reach tol={tol:.1e} (relative residual {res.relative_residual.max():.1e} "
                f"after {res.iterations} iterations)",
                RuntimeWarning,
                stacklevel=3,
            )
        return np.broadcast_to(res.x, (st.size,) + res.x.shape).copy()
    (out,) = _lanczos_functions(op, vb, [lambda th: _phi_values(th, st)], [st == 0], shift=ridge, tol=tol,
                                max_dim=max_dim)
    return out


class MsePrediction(NamedTuple):
    """Outputs of `mse_dynamics_iterative` (unpacks as ``train, test``).

    Attributes
    ----------
    train : ndarray
        `(T, n[, m])` or `(n[, m])`: ``y + exp(-eta t A) (f0 - y)``.
    test : ndarray or None
        `(T, n_test[, m])` or `(n_test[, m])`: ``f0(x) + Theta(x, X) phi_t(A) (y - f0)``;
        None without `k_test_train`.
    """

    train: np.ndarray
    test: Optional[np.ndarray]


def mse_dynamics_iterative(
    k_train_train: KernelLike,
    y_train: Any,
    t: Any,
    *,
    k_test_train: Any = None,
    f0_train: Any = None,
    f0_test: Any = None,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    tol: float = 1e-10,
    max_dim: Optional[int] = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    cg_options: Optional[dict] = None,
) -> MsePrediction:
    """Mean outputs of gradient flow under MSE, without an eigendecomposition.

    With ``A = Theta + ridge I`` (Theta the train-train NTK), residual
    ``r = y - f0(X)`` and ``phi_t(l) = (1 - exp(-eta t l)) / l``:

    * train: ``f_t(X) = y - exp(-eta t A) r``;
    * test: ``f_t(x) = f0(x) + Theta(x, X) phi_t(A) r``.

    Both come from one Lanczos basis per column of `r` (`expm_multiply` and
    `phi_multiply` in one pass); ``t = inf`` gives ``f(X) = y`` and kernel ridge
    regression ``Theta(x, X) A^{-1} r`` (by `cg_solve` when every time is inf).
    These are the formulas of `ntkx.dynamics`, for N too large for its dense
    eigendecomposition.

    Parameters
    ----------
    k_train_train : ndarray, memmap, LinearOperator or callable
        Symmetric PSD `(n, n)` NTK on the training points.
    y_train : array_like
        `(n,)` or `(n, m)` targets.
    t : float or array_like
        Time(s) >= 0; ``inf`` allowed.
    k_test_train : array_like or LinearOperator, optional
        `(n_test, n)` NTK between test and training points.
    f0_train, f0_test : array_like, optional
        Outputs at initialization, shaped like `y_train` / `(n_test[, m])`
        (default 0, the mean over initializations).
    learning_rate, ridge, tol, max_dim, block_bytes, cg_options
        As in `expm_multiply` / `phi_multiply`.

    Returns
    -------
    MsePrediction
        ``(train, test)``, each `(T, ., [m])` for an array `t` and without the
        time axis for a scalar; `test` is None without `k_test_train`.
    """
    op, yb, vec, times, scalar, eta, ridge, tol, max_dim = _krylov_setup(
        k_train_train, y_train, learning_rate, ridge, tol, max_dim, block_bytes, t, name="y_train"
    )
    n, m = yb.shape
    f0 = np.zeros_like(yb) if f0_train is None else _as_rhs(f0_train, "f0_train", n, m)[0]
    op_test = None
    if k_test_train is not None:
        op_test = _as_rect_operator(k_test_train, (None, n), "k_test_train")
        n_test = op_test.shape[0]
        f0t = np.zeros((n_test, m)) if f0_test is None else _as_rhs(f0_test, "f0_test", n_test, m)[0]
    elif f0_test is not None:
        raise ValueError("f0_test was given without k_test_train")
    r = yb - f0
    st = eta * times
    if np.isinf(st).all():
        ex = np.zeros((st.size, n, m))
        ph = _phi_core(op, r, st, ridge, tol, max_dim, cg_options) if op_test is not None else None
    else:
        ex, ph = _lanczos_functions(
            op,
            r,
            [lambda th: _exp_values(th, st), lambda th: _phi_values(th, st)],
            [np.isinf(st), st == 0],
            shift=ridge,
            tol=tol,
            max_dim=max_dim,
        )
    train = yb[None] - ex
    test = None
    if op_test is not None:
        n_t = st.size
        stacked = np.ascontiguousarray(ph.transpose(1, 0, 2).reshape(n, n_t * m))  # `(n, T m)`
        kv = np.asarray(op_test.matmat(stacked), dtype=np.float64).reshape(n_test, n_t, m)
        if not np.isfinite(kv).all():
            raise FloatingPointError("the test-train kernel operator returned NaN or Inf")
        test = f0t[None] + kv.transpose(1, 0, 2)
    return MsePrediction(
        _shape_out(train, scalar, vec), None if test is None else _shape_out(test, scalar, vec)
    )


# ----------------------------------------------------------------------------
# Leading eigenpairs
# ----------------------------------------------------------------------------


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

    Parameters
    ----------
    k : ndarray, memmap, LinearOperator or callable
        Symmetric `(n, n)` kernel (a callable needs `n`).
    k_top : int
        Number of eigenpairs, ``1 <= k_top < n``.
    method : {'eigsh', 'randomized'}
        ``'eigsh'`` (default): ARPACK's implicitly restarted Lanczos on the
        operator (one matvec at a time), to relative accuracy `tol`.
        ``'randomized'``: Halko, Martinsson & Tropp (2011),
        https://arxiv.org/abs/0909.4061, Algorithms 4.4 and 5.3: a Gaussian
        sketch of ``k_top + oversample`` columns, `power_iter` power iterations
        (re-orthonormalized each time), then Rayleigh-Ritz; ``power_iter + 2``
        block products, accuracy set by the spectral gap (not by `tol`).
    tol : float
        ARPACK's relative accuracy of the Ritz values (> 0).
    seed : int or numpy.random.Generator
        ARPACK's start vector / the Gaussian sketch.
    n : int, optional
        Kernel size; required for a callable.
    oversample, power_iter : int
        Randomized method only (``power_iter`` may be 0).
    block_bytes : int
        Row-block memory for array kernels (see `as_operator`).

    Returns
    -------
    eigenvalues : ndarray
        `(k_top,)`, descending.
    eigenvectors : ndarray
        `(n, k_top)`, orthonormal columns, in the same order.
    """
    op = as_operator(k, n, block_bytes=block_bytes)
    n = op.shape[0]
    k_top = _check_count(k_top, "k_top")
    if k_top >= n:
        raise ValueError(f"k_top must be < n = {n} (use scipy.linalg.eigh for the full spectrum), got {k_top}")
    tol = validate.check_nonneg(tol, "tol", strict=True)
    rng = _rng(seed)
    if method == "eigsh":
        ncv = min(n, max(2 * k_top + 1, 20))
        w, u = eigsh(op, k=k_top, which="LA", tol=tol, v0=rng.standard_normal(n), ncv=ncv)
    elif method == "randomized":
        oversample = _check_count(oversample, "oversample")
        if isinstance(power_iter, (bool, np.bool_)) or not isinstance(power_iter, (numbers.Integral, np.integer)):
            raise TypeError(f"power_iter must be an integer >= 0, got {power_iter!r}")
        if power_iter < 0:
            raise ValueError(f"power_iter must be >= 0, got {power_iter}")
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
