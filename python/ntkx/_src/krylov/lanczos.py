"""Lanczos matrix functions of a kernel: `expm_multiply`, `phi_multiply`, `mse_dynamics_iterative`.

One Krylov basis per column, with full reorthogonalization, serves every time; the
functions of the Ritz values are those of the dense dynamics (`ntkx._src.flow.phi`).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, List, NamedTuple, Optional, Sequence

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator

from ntkx._src import validate
from ntkx._src.flow import phi
from ntkx._src.krylov.cg import cg_solve
from ntkx._src.krylov.operators import DEFAULT_BLOCK_BYTES, KernelLike, as_rect_operator, as_operator

#: Default cap on the Krylov dimension of `expm_multiply` and friends. The basis
#: costs ``max_dim * n * 8`` bytes per right-hand side (80 MB at n = 20,000).
DEFAULT_MAX_KRYLOV_DIM = 500


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
    max_dim = validate.check_count(max_dim, "max_dim", allow_none=True) or DEFAULT_MAX_KRYLOV_DIM
    times, tshape = validate.check_times(t, max_ndim=1, nonempty=True)
    scalar = tshape == ()
    if isinstance(k, LinearOperator) or not callable(k) or hasattr(k, "shape"):
        op = as_operator(k, block_bytes=block_bytes)
    else:
        op = as_operator(k, np.shape(v)[0] if np.ndim(v) >= 1 else None, block_bytes=block_bytes)
    vb, vec = validate.as_rhs(v, name, op.shape[0])
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

    Args:
        k (ndarray, memmap, LinearOperator or callable): Symmetric PSD `(n, n)` kernel (a callable gets `n` from
            `v`).
        v (array_like): `(n,)` or `(n, m)`, finite.
        t (float or array_like): Time(s) >= 0, scalar or `(T,)`; ``inf`` allowed.
        learning_rate (float): ``eta`` > 0.
        ridge (float): Diagonal shift >= 0.
        tol (float): Relative change at which the Krylov dimension stops growing.
        max_dim (int, optional): Cap on the Krylov dimension (default 500; memory ``max_dim * n * 8`` bytes per
            column). Reaching it issues a RuntimeWarning.
        block_bytes (int): Row-block memory for array kernels (see `as_operator`).

    Returns:
        ndarray: `(T, n[, m])` for an array `t`, `(n[, m])` for a scalar.
    """
    op, vb, vec, times, scalar, eta, ridge, tol, max_dim = _krylov_setup(
        k, v, learning_rate, ridge, tol, max_dim, block_bytes, t
    )
    st = eta * times
    (out,) = _lanczos_functions(op, vb, [lambda th: phi.decay(th, st[:, None])], [np.isinf(st)], shift=ridge, tol=tol,
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

    Args:
        k, v, t, learning_rate, ridge, tol, max_dim, block_bytes: As in `expm_multiply`.
        cg_options (dict, optional): Extra keyword arguments for `cg_solve` in the all-``inf`` case (e.g.
            ``rank``, ``maxiter``); a non-converged solve warns.

    Returns:
        ndarray: `(T, n[, m])` for an array `t`, `(n[, m])` for a scalar.
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
    (out,) = _lanczos_functions(op, vb, [lambda th: phi.phi(th, st[:, None], scaled=True)], [st == 0],
                                shift=ridge, tol=tol, max_dim=max_dim)
    return out


class MsePrediction(NamedTuple):
    """Outputs of `mse_dynamics_iterative` (unpacks as ``train, test``).

    Attributes:
        train (ndarray): `(T, n[, m])` or `(n[, m])`: ``y + exp(-eta t A) (f0 - y)``.
        test (ndarray or None): `(T, n_test[, m])` or `(n_test[, m])`: ``f0(x) + Theta(x, X) phi_t(A) (y -
            f0)``; None without `k_test_train`.
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

    Args:
        k_train_train (ndarray, memmap, LinearOperator or callable): Symmetric PSD `(n, n)` NTK on the training
            points.
        y_train (array_like): `(n,)` or `(n, m)` targets.
        t (float or array_like): Time(s) >= 0; ``inf`` allowed.
        k_test_train (array_like or LinearOperator, optional): `(n_test, n)` NTK between test and training
            points.
        f0_train, f0_test (array_like, optional): Outputs at initialization, shaped like `y_train` / `(n_test[,
            m])` (default 0, the mean over initializations).
        learning_rate, ridge, tol, max_dim, block_bytes, cg_options: As in `expm_multiply` / `phi_multiply`.

    Returns:
        MsePrediction: ``(train, test)``, each `(T, ., [m])` for an array `t` and without the time axis for a
            scalar; `test` is None without `k_test_train`.
    """
    op, yb, vec, times, scalar, eta, ridge, tol, max_dim = _krylov_setup(
        k_train_train, y_train, learning_rate, ridge, tol, max_dim, block_bytes, t, name="y_train"
    )
    n, m = yb.shape
    f0 = np.zeros_like(yb) if f0_train is None else validate.as_rhs(f0_train, "f0_train", n, m)[0]
    op_test = None
    if k_test_train is not None:
        op_test = as_rect_operator(k_test_train, (None, n), "k_test_train")
        n_test = op_test.shape[0]
        f0t = np.zeros((n_test, m)) if f0_test is None else validate.as_rhs(f0_test, "f0_test", n_test, m)[0]
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
            [lambda th: phi.decay(th, st[:, None]), lambda th: phi.phi(th, st[:, None], scaled=True)],
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
