"""Tests of ntkx._src.iterative: CG, Lanczos matrix functions and top eigenpairs.

The oracle is the dense route on the same NTK: ``scipy.linalg.solve`` and one
``scipy.linalg.eigh``. The bar is the issue's: 1e-8 relative (Frobenius) error.
The dense reference itself is good to about cond(K) * eps ~ 1e-12 here
(cond ~ 2e3 at N = 1000), so 1e-8 leaves room only for the iterative error,
which the solvers drive to ~1e-12 (CG tol 1e-12, Lanczos tol 1e-10).
"""

from __future__ import annotations

import os
import resource
import time
import tracemalloc

import numpy as np
import pytest
import scipy.linalg
from scipy.sparse.linalg import aslinearoperator
from threadpoolctl import threadpool_limits

import ntkx
from conftest import TOL
from ntkx._src import iterative as it


SPEC = ntkx.FcSpec(depth=2, w_std=2**0.5, b_std=0.1, activation=ntkx.Activation("abrelu", 0.0, 1.0))
N, N_TEST, D = 1000, 120, 32


def rel(a, b) -> float:
    """Relative Frobenius error of `a` against the reference `b`."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.isfinite(a))
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def ntk_problem(n: int, n_test: int, seed: int):
    """FC ReLU NTK on Gaussian inputs: train-train `(n, n)` and test-train `(n_test, n)`."""
    x = np.random.default_rng(seed).normal(size=(n + n_test, D))
    k_all = ntkx.fc_kernels(x, None, SPEC, get="ntk")
    return np.ascontiguousarray(k_all[:n, :n]), np.ascontiguousarray(k_all[n:, :n])


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """One BLAS thread for the small default problems.

    At N = 1000 the QR/SVD of the (N, 200) sketch and the dense eigh gain nothing
    from threads, and on a loaded 2-core machine OpenBLAS's threads made them up to
    50x slower (3 s for one QR). The slow tests restore all cores.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def all_blas_threads():
    return threadpool_limits(limits=os.cpu_count() or 1, user_api="blas")


@pytest.fixture(scope="module")
def prob():
    k, k_test = ntk_problem(N, N_TEST, seed=11)
    w, u = scipy.linalg.eigh(k)  # ascending
    rng = np.random.default_rng(5)
    return {
        "k": k,
        "k_test": k_test,
        "w": w,
        "u": u,
        "y": rng.normal(size=(N, 4)),
        "ridge": 1e-6 * float(np.mean(np.diag(k))),
    }


@pytest.fixture(scope="module")
def memmap_k(prob, tmp_path_factory):
    path = tmp_path_factory.mktemp("kernel") / "k.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=prob["k"].shape)
    mm[:] = prob["k"]
    mm.flush()
    return np.lib.format.open_memmap(path, mode="r")


def dense_fn(prob, fn, v, ridge=0.0):
    """``u f(w + ridge) u^T v`` from the dense eigendecomposition."""
    u = prob["u"]
    return u @ (fn(prob["w"] + ridge)[:, None] * (u.T @ v))


def all_forms(k, memmap_k):
    return {
        "ndarray": k,
        "ndarray_small_blocks": it.as_operator(k, block_bytes=37 * 8 * k.shape[0]),  # 27 uneven blocks
        "memmap": memmap_k,
        "linear_operator": aslinearoperator(k),
        "callable": lambda v: k @ v,
    }


# ----------------------------------------------------------------------------
# Operators
# ----------------------------------------------------------------------------


def test_as_operator_forms_agree(prob, memmap_k):
    k = prob["k"]
    v = np.random.default_rng(1).normal(size=(N, 3))
    ref = k @ v
    for name, form in all_forms(k, memmap_k).items():
        op = it.as_operator(form, n=N)
        assert op.shape == (N, N), name
        assert rel(op.matmat(v), ref) < TOL["reference"], name
        assert rel(op.matvec(v[:, 0]), ref[:, 0]) < TOL["reference"], name
    # The memmap and the ndarray are kept by reference, never copied.
    assert it.as_operator(memmap_k).matrix is memmap_k
    assert it.as_operator(k).matrix is k
    # float32 kernels are converted block by block.
    k32 = k.astype(np.float32)
    assert rel(it.as_operator(k32).matmat(v), k32.astype(np.float64) @ v) < TOL["reference"]
    # Rectangular adjoint through row blocks.
    op_t = it.as_operator(k, block_bytes=100 * 8 * N)
    assert rel(op_t.rmatmat(v), k.T @ v) < TOL["reference"]


def test_memmap_product_memory_is_bounded(memmap_k):
    """A blocked product with a memmap allocates its output and one block, not N x N."""
    op = it.as_operator(memmap_k, block_bytes=64 * 8 * N)
    v = np.ones((N, 2))
    tracemalloc.start()
    try:
        op.matmat(v)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * N * N * 8, peak


# ----------------------------------------------------------------------------
# Conjugate gradients
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("preconditioner", ["none", "nystrom"])
@pytest.mark.parametrize("with_ridge", [False, True])
def test_cg_matches_dense_solve(prob, preconditioner, with_ridge):
    k, y = prob["k"], prob["y"]
    ridge = prob["ridge"] if with_ridge else 0.0
    ref = scipy.linalg.solve(k + ridge * np.eye(N), y, assume_a="pos")
    res = it.cg_solve(k, y, ridge, tol=1e-12, preconditioner=preconditioner)
    assert res.converged and res.column_converged.all()
    assert res.x.shape == y.shape
    assert rel(res.x, ref) < TOL["iterative"]
    # The reported residual is the true one (recomputed here independently).
    true = np.linalg.norm(y - k @ res.x - ridge * res.x, axis=0) / np.linalg.norm(y, axis=0)
    np.testing.assert_allclose(res.relative_residual, true, rtol=1e-3, atol=1e-15)
    assert (res.relative_residual <= 1e-12).all()
    assert len(res.residual_history) == 4 and res.residual_history[0][0] == 1.0
    assert res.iterations == res.column_iterations.max()
    assert res.preconditioner_rank == (200 if preconditioner == "nystrom" else 0)


def test_cg_nystrom_reduces_iterations(prob):
    k, y, ridge = prob["k"], prob["y"], prob["ridge"]
    plain = it.cg_solve(k, y, ridge, tol=1e-10, preconditioner="none")
    nys = it.cg_solve(k, y, ridge, tol=1e-10, preconditioner="nystrom")
    assert plain.converged and nys.converged
    # Measured at N = 1000: 100+ iterations without, about 40 with rank 200.
    assert nys.iterations < 0.6 * plain.iterations, (nys.iterations, plain.iterations)
    # Even counting the sketch as one extra product.
    assert nys.operator_products < plain.operator_products


def test_cg_single_rhs_zero_column_x0_and_callable_preconditioner(prob):
    k, y = prob["k"], prob["y"]
    ref = scipy.linalg.solve(k, y, assume_a="pos")
    res = it.cg_solve(k, y[:, 0], tol=1e-12)
    assert res.x.shape == (N,) and rel(res.x, ref[:, 0]) < TOL["iterative"]
    # A zero column is solved by zero and counts as converged; the others are unaffected.
    y0 = y.copy()
    y0[:, 1] = 0.0
    res = it.cg_solve(k, y0, tol=1e-12)
    assert res.converged and np.all(res.x[:, 1] == 0) and res.column_iterations[1] == 0
    assert rel(res.x[:, [0, 2, 3]], ref[:, [0, 2, 3]]) < TOL["iterative"]
    # A warm start at the solution needs no iteration; x0 is not modified.
    x0 = ref.copy()
    res = it.cg_solve(k, y, x0=x0, tol=1e-10, preconditioner="none")
    assert res.iterations == 0 and res.converged and np.array_equal(x0, ref)
    # A user preconditioner (Jacobi) is applied as given.
    diag = np.diag(k).copy()
    calls = []

    def jacobi(r):
        calls.append(r.shape)
        return r / diag[:, None]

    res = it.cg_solve(k, y, tol=1e-12, preconditioner=jacobi)
    assert res.converged and rel(res.x, ref) < TOL["iterative"] and calls and res.preconditioner_rank == 0


def test_cg_not_converged_is_reported_and_progress_is_called(prob):
    seen = []
    res = it.cg_solve(prob["k"], prob["y"], tol=1e-12, maxiter=3, preconditioner="none",
                      progress=lambda i, r: seen.append((i, r)))
    assert not res.converged and res.iterations == 3
    assert [i for i, _ in seen] == [1, 2, 3]
    assert all(r > 1e-12 for _, r in seen)
    assert (res.relative_residual > 1e-12).all()


def test_cg_nystrom_full_rank_and_singular_kernel():
    # rank >= n makes the preconditioner exact up to scaling: a couple of iterations.
    k, _ = ntk_problem(150, 0, seed=3)
    y = np.random.default_rng(0).normal(size=150)
    res = it.cg_solve(k, y, rank=500, tol=1e-12)
    assert res.converged and res.iterations <= 3 and res.preconditioner_rank <= 150
    # A rank-deficient PSD kernel with a ridge (zero Nystrom eigenvalues are handled).
    f = np.random.default_rng(1).normal(size=(150, 20))
    ks = f @ f.T
    ref = scipy.linalg.solve(ks + 0.1 * np.eye(150), y, assume_a="pos")
    res = it.cg_solve(ks, y, 0.1, tol=1e-12, rank=40)
    assert res.converged and rel(res.x, ref) < TOL["iterative"]
    # No ridge and a consistent right-hand side: the zero Ritz values are dropped.
    res = it.cg_solve(ks, ks @ y, tol=1e-10, rank=40)
    assert res.converged


# ----------------------------------------------------------------------------
# Lanczos matrix functions
# ----------------------------------------------------------------------------


def times_for(prob, eta):
    """eta t lambda_max = 0, 0.1 (small), 10 (moderate), 1e3 and 1e5 (large)."""
    return np.array([0.0, 0.1, 10.0, 1e3, 1e5]) / (eta * prob["w"][-1])


@pytest.mark.parametrize("eta,with_ridge", [(1.0, False), (0.5, True)])
def test_expm_multiply_matches_dense(prob, eta, with_ridge):
    k, y = prob["k"], prob["y"]
    ridge = prob["ridge"] if with_ridge else 0.0
    ts = times_for(prob, eta)
    out = it.expm_multiply(k, y, ts, learning_rate=eta, ridge=ridge)
    assert out.shape == (ts.size, N, 4)
    for i, t in enumerate(ts):
        ref = dense_fn(prob, lambda lam: np.exp(-eta * t * lam), y, ridge)
        assert rel(out[i], ref) < TOL["iterative"], (t * eta * prob["w"][-1], rel(out[i], ref))
    # Scalar t and a 1-D vector drop those axes and give the same numbers.
    one = it.expm_multiply(k, y[:, 2], ts[2], learning_rate=eta, ridge=ridge)
    assert one.shape == (N,) and rel(one, out[2][:, 2]) < 1e-9
    # t = inf: the residual is gone (K positive definite).
    assert np.abs(it.expm_multiply(k, y, np.inf)).max() == 0.0


@pytest.mark.parametrize("eta,with_ridge", [(1.0, False), (0.5, True)])
def test_phi_multiply_matches_dense(prob, eta, with_ridge):
    k, y = prob["k"], prob["y"]
    ridge = prob["ridge"] if with_ridge else 0.0
    ts = np.append(times_for(prob, eta), np.inf)
    out = it.phi_multiply(k, y, ts, learning_rate=eta, ridge=ridge)
    assert out.shape == (ts.size, N, 4)
    assert np.all(out[0] == 0)  # phi_0 = 0
    for i, t in enumerate(ts[1:], start=1):
        if np.isinf(t):
            ref = scipy.linalg.solve(k + ridge * np.eye(N), y, assume_a="pos")
        else:
            ref = dense_fn(prob, lambda lam: -np.expm1(-eta * t * lam) / lam, y, ridge)
        assert rel(out[i], ref) < TOL["iterative"], (t, rel(out[i], ref))
    # All times infinite: delegated to cg_solve, same answer.
    inf_only = it.phi_multiply(k, y, np.inf, learning_rate=eta, ridge=ridge)
    assert inf_only.shape == (N, 4) and rel(inf_only, out[-1]) < TOL["iterative"]


def test_phi_multiply_singular_kernel_finite_t():
    """A rank-deficient kernel: phi = eta t on the null space, no division by zero."""
    f = np.random.default_rng(2).normal(size=(80, 10))
    ks = f @ f.T
    v = np.random.default_rng(3).normal(size=80)
    w, u = scipy.linalg.eigh(ks)
    w = np.where(w < 1e-9 * w[-1], 0.0, w)
    t = 0.3
    phi = np.where(w == 0, t, -np.expm1(-t * w) / np.where(w == 0, 1, w))
    ref = u @ (phi * (u.T @ v))
    assert rel(it.phi_multiply(ks, v, t), ref) < TOL["iterative"]


def test_mse_dynamics_iterative_matches_dense(prob):
    k, k_test, w, u = prob["k"], prob["k_test"], prob["w"], prob["u"]
    rng = np.random.default_rng(9)
    y = prob["y"][:, :2]
    f0, f0_test = 0.1 * rng.normal(size=(N, 2)), 0.1 * rng.normal(size=(N_TEST, 2))
    eta, ridge = 0.7, prob["ridge"]
    ts = np.append(times_for(prob, eta)[:4], np.inf)
    train, test = it.mse_dynamics_iterative(
        k, y, ts, k_test_train=k_test, f0_train=f0, f0_test=f0_test, learning_rate=eta, ridge=ridge
    )
    assert train.shape == (ts.size, N, 2) and test.shape == (ts.size, N_TEST, 2)
    wr = w + ridge
    for i, t in enumerate(ts):
        decay = np.zeros_like(wr) if np.isinf(t) else np.exp(-eta * t * wr)
        phi = 1 / wr if np.isinf(t) else -np.expm1(-eta * t * wr) / wr
        ref_train = y + u @ (decay[:, None] * (u.T @ (f0 - y)))
        ref_test = f0_test + k_test @ (u @ (phi[:, None] * (u.T @ (y - f0))))
        assert rel(train[i], ref_train) < TOL["iterative"], (i, rel(train[i], ref_train))
        assert rel(test[i], ref_test) < TOL["iterative"], (i, rel(test[i], ref_test))
    # Scalar t, 1-D targets, no test points, t = inf only (the CG route).
    tr, te = it.mse_dynamics_iterative(k, y[:, 0], ts[2], learning_rate=eta, ridge=ridge)
    ref = y[:, 0] - u @ (np.exp(-eta * ts[2] * wr) * (u.T @ y[:, 0]))
    assert te is None and tr.shape == (N,) and rel(tr, ref) < TOL["iterative"]
    tr, te = it.mse_dynamics_iterative(k, y, np.inf, k_test_train=k_test, ridge=ridge)
    ref = k_test @ scipy.linalg.solve(k + ridge * np.eye(N), y, assume_a="pos")
    assert np.array_equal(tr, y) and rel(te, ref) < TOL["iterative"]


def test_lanczos_max_dim_warns(prob):
    with pytest.warns(RuntimeWarning, match="max_dim"):
        it.expm_multiply(prob["k"], prob["y"][:, 0], 1e3 / prob["w"][-1], max_dim=5)


# ----------------------------------------------------------------------------
# Top eigenpairs
# ----------------------------------------------------------------------------


def test_top_eigenpairs_eigsh_matches_dense(prob):
    k, w, u = prob["k"], prob["w"], prob["u"]
    vals, vecs = it.top_eigenpairs(k, 20)
    ref = w[::-1][:20]
    assert vals.shape == (20,) and vecs.shape == (N, 20)
    assert np.all(np.diff(vals) <= 0)
    assert np.max(np.abs(vals - ref) / ref) < TOL["iterative"]
    # Eigenvectors up to sign (the top 20 are simple here): |<u, u_ref>| = 1.
    overlap = np.abs(np.sum(vecs * u[:, ::-1][:, :20], axis=0))
    assert np.max(np.abs(overlap - 1)) < 1e-6


def test_top_eigenpairs_randomized(prob):
    k, w = prob["k"], prob["w"]
    ref = w[::-1][:5]
    # Accuracy is set by the gap lam_{k+p} / lam_j (~0.7 here: a flat NTK spectrum).
    vals, vecs = it.top_eigenpairs(k, 5, method="randomized", oversample=40, power_iter=8)
    assert np.max(np.abs(vals - ref) / ref) < 1e-6
    assert np.allclose(vecs.T @ vecs, np.eye(5), atol=1e-12)
    # The dominant (constant-mode) eigenvalue is resolved by a small sketch.
    vals, _ = it.top_eigenpairs(k, 1, method="randomized", oversample=5, power_iter=4)
    assert abs(vals[0] - ref[0]) / ref[0] < 1e-10


# ----------------------------------------------------------------------------
# Operator forms give the same results
# ----------------------------------------------------------------------------


def test_operator_forms_give_identical_results(prob, memmap_k):
    """Same iterates whatever the form: only the products' rounding differs.

    CG stopped at tol 1e-8 amplifies a 1e-16 difference in the products to ~2e-10
    in the iterate (measured), so "identical" is checked at 1e-9, 10x below tol.
    """
    k, y = prob["k"], prob["y"][:, :2]
    t = [0.0, 5.0 / prob["w"][-1]]
    base_cg = it.cg_solve(k, y, tol=1e-8, rank=50).x
    base_exp = it.expm_multiply(k, y, t, tol=1e-8)
    base_eig = it.top_eigenpairs(k, 3, tol=1e-10)[0]
    for name, form in all_forms(k, memmap_k).items():
        if name == "ndarray":
            continue
        assert rel(it.cg_solve(form, y, tol=1e-8, rank=50).x, base_cg) < 1e-9, name
        assert rel(it.expm_multiply(form, y, t, tol=1e-8), base_exp) < 1e-10, name
        n = N if name == "callable" else None
        assert rel(it.top_eigenpairs(form, 3, tol=1e-10, n=n)[0], base_eig) <= TOL["reference"], name
    # ndarray and memmap use the same row blocks: bitwise identical.
    assert np.array_equal(it.cg_solve(memmap_k, y, tol=1e-8, rank=50).x, base_cg)


# ----------------------------------------------------------------------------
# Bad input and interruption
# ----------------------------------------------------------------------------


def _bad_calls(k, y):
    ynan = y.copy()
    ynan[3, 0] = np.nan
    yinf = y.copy()
    yinf[0, 1] = np.inf
    return [
        (ValueError, r"y contains 1 NaN or Inf", lambda: it.cg_solve(k, ynan)),
        (ValueError, r"y contains 1 NaN or Inf", lambda: it.cg_solve(k, yinf)),
        (ValueError, r"y must have 40 rows.*\(39, 2\)", lambda: it.cg_solve(k, y[:39])),
        (ValueError, r"y must have shape \(n,\) or \(n, m\)", lambda: it.cg_solve(k, y[:, :, None])),
        (TypeError, r"y must be numeric", lambda: it.cg_solve(k, np.array([["a"]] * 40))),
        (ValueError, r"ridge must be finite and >= 0", lambda: it.cg_solve(k, y, -1e-3)),
        (ValueError, r"tol must be finite and > 0", lambda: it.cg_solve(k, y, tol=0.0)),
        (ValueError, r"tol must be finite and > 0", lambda: it.cg_solve(k, y, tol=-1.0)),
        (ValueError, r"maxiter must be a positive integer", lambda: it.cg_solve(k, y, maxiter=0)),
        (TypeError, r"maxiter must be a positive integer", lambda: it.cg_solve(k, y, maxiter=2.5)),
        (ValueError, r"rank must be a positive integer", lambda: it.cg_solve(k, y, rank=0)),
        (ValueError, r"preconditioner must be", lambda: it.cg_solve(k, y, preconditioner="jacobi")),
        (TypeError, r"preconditioner must be", lambda: it.cg_solve(k, y, preconditioner=3)),
        (ValueError, r"x0 must have 2 column", lambda: it.cg_solve(k, y, x0=np.zeros((40, 3)))),
        (ValueError, r"x0 contains", lambda: it.cg_solve(k, y, x0=ynan)),
        (TypeError, r"progress must be", lambda: it.cg_solve(k, y, progress=1)),
        (TypeError, r"seed must be an integer", lambda: it.cg_solve(k, y, seed="a")),
        (ValueError, r"power_iter must be >= 0",
         lambda: it.top_eigenpairs(k, 3, method="randomized", power_iter=-1)),
        (ValueError, r"k must be square \(n, n\), got shape \(40, 39\)", lambda: it.cg_solve(k[:, :39], y)),
        (ValueError, r"k must be 2-D", lambda: it.cg_solve(k[0], y)),
        (TypeError, r"k must be a real numeric array", lambda: it.as_operator(k.astype(complex))),
        (TypeError, r"n must be given", lambda: it.as_operator(lambda v: k @ v)),
        (ValueError, r"k has shape \(40, 40\) but n = 41", lambda: it.as_operator(k, n=41)),
        (TypeError, r"n must be given", lambda: it.top_eigenpairs(lambda v: k @ v, 3)),
        (ValueError, r"k_top must be < n = 40", lambda: it.top_eigenpairs(k, 40)),
        (ValueError, r"k_top must be a positive integer", lambda: it.top_eigenpairs(k, 0)),
        (ValueError, r"method must be", lambda: it.top_eigenpairs(k, 3, method="lobpcg")),
        (ValueError, r"t must be >= 0", lambda: it.expm_multiply(k, y, -1.0)),
        (ValueError, r"t of shape \(2,\) contains NaN", lambda: it.expm_multiply(k, y, [1.0, np.nan])),
        (ValueError, r"t must be a scalar or 1-D", lambda: it.phi_multiply(k, y, np.ones((2, 2)))),
        (ValueError, r"learning_rate must be finite and > 0", lambda: it.expm_multiply(k, y, 1.0, learning_rate=0)),
        (ValueError, r"ridge must be finite and >= 0", lambda: it.phi_multiply(k, y, 1.0, ridge=-1)),
        (ValueError, r"max_dim must be a positive integer", lambda: it.expm_multiply(k, y, 1.0, max_dim=0)),
        (ValueError, r"v contains 1 NaN or Inf", lambda: it.phi_multiply(k, ynan, 1.0)),
        (ValueError, r"y_train must have 40 rows",
         lambda: it.mse_dynamics_iterative(k, np.zeros((41, 2)), 1.0)),
        (ValueError, r"k_test_train must have shape \(n_test, 40\), got \(5, 39\)",
         lambda: it.mse_dynamics_iterative(k, y, 1.0, k_test_train=np.zeros((5, 39)))),
        (ValueError, r"f0_train must have 2 column",
         lambda: it.mse_dynamics_iterative(k, y, 1.0, f0_train=np.zeros((40, 3)))),
        (ValueError, r"f0_test must have 5 rows",
         lambda: it.mse_dynamics_iterative(k, y, 1.0, k_test_train=k[:5], f0_test=np.zeros((6, 2)))),
        (ValueError, r"f0_test was given without k_test_train",
         lambda: it.mse_dynamics_iterative(k, y, 1.0, f0_test=np.zeros((6, 2)))),
        (TypeError, r"k_test_train must be an array or a scipy LinearOperator",
         lambda: it.mse_dynamics_iterative(k, y, 1.0, k_test_train=lambda v: v)),
    ]


def test_bad_inputs_raise_clear_errors():
    k, _ = ntk_problem(40, 0, seed=1)
    y = np.random.default_rng(0).normal(size=(40, 2))
    y_before = y.copy()
    for exc, match, call in _bad_calls(k, y):
        with pytest.raises(exc, match=match):
            call()
    assert np.array_equal(y, y_before)


def test_operator_returning_nan_or_wrong_shape_is_reported():
    k, _ = ntk_problem(40, 0, seed=1)
    y = np.ones(40)
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        it.cg_solve(lambda v: np.full(v.shape, np.nan), y, preconditioner="none")
    with pytest.raises(ValueError, match="must return K @ V of shape"):
        it.cg_solve(lambda v: k @ v[:, :1], np.ones((40, 2)), preconditioner="none")
    with pytest.raises(ValueError, match="not positive definite"):
        it.cg_solve(-k, y, preconditioner="none")


class _Interrupt:
    """A callable kernel that raises KeyboardInterrupt on its `after`-th product."""

    def __init__(self, k, after):
        self.k, self.after, self.calls = k, after, 0

    def __call__(self, v):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return self.k @ v


def test_keyboard_interrupt_propagates(prob):
    k, y = prob["k"], prob["y"]
    y_before = y.copy()
    x0 = np.zeros_like(y)
    for call in (
        lambda op: it.cg_solve(op, y, x0=x0),
        lambda op: it.cg_solve(op, y, preconditioner="none"),
        lambda op: it.expm_multiply(op, y, [1.0, 2.0]),
        lambda op: it.mse_dynamics_iterative(op, y, 1.0, k_test_train=prob["k_test"]),
        lambda op: it.top_eigenpairs(op, 3, n=N),
    ):
        op = _Interrupt(k, after=3)
        with pytest.raises(KeyboardInterrupt):
            call(op)
        assert op.calls == 3
    # From the progress callback too.
    def stop(i, r):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        it.cg_solve(k, y, progress=stop)
    # Inputs untouched and nothing left behind: the next call is normal.
    assert np.array_equal(y, y_before) and not x0.any()
    assert it.cg_solve(k, y, tol=1e-10).converged


# ----------------------------------------------------------------------------
# Acceptance checks at scale (slow)
# ----------------------------------------------------------------------------


@pytest.mark.slow
def test_acceptance_n5000_against_dense():
    with all_blas_threads():
        _acceptance_n5000()


def _acceptance_n5000():
    n = 5000
    k, _ = ntk_problem(n, 0, seed=21)
    y = np.random.default_rng(0).normal(size=(n, 3))
    ridge = 1e-6 * float(np.mean(np.diag(k)))
    t0 = time.perf_counter()
    res = it.cg_solve(k, y, ridge, tol=1e-12)
    t_cg = time.perf_counter() - t0
    ref = scipy.linalg.solve(k + ridge * np.eye(n), y, assume_a="pos")
    err_cg = rel(res.x, ref)
    t0 = time.perf_counter()
    w, u = scipy.linalg.eigh(k)
    t_eigh = time.perf_counter() - t0
    ts = np.array([0.1, 10.0, 1e3, 1e5]) / w[-1]
    t0 = time.perf_counter()
    out = it.expm_multiply(k, y, ts)
    t_exp = time.perf_counter() - t0
    err_exp = max(rel(out[i], u @ (np.exp(-t * w)[:, None] * (u.T @ y))) for i, t in enumerate(ts))
    t0 = time.perf_counter()
    vals, _ = it.top_eigenpairs(k, 20)
    t_top = time.perf_counter() - t0
    err_top = float(np.max(np.abs(vals - w[::-1][:20]) / w[::-1][:20]))
    print(
        f"\nN={n}: CG {res.iterations} it {t_cg:.1f}s err {err_cg:.1e} resid {res.relative_residual.max():.1e}; "
        f"expm {t_exp:.1f}s err {err_exp:.1e}; top-20 {t_top:.1f}s err {err_top:.1e}; dense eigh {t_eigh:.1f}s"
    )
    assert res.converged and err_cg < TOL["iterative"] and err_exp < TOL["iterative"] and err_top < TOL["iterative"]


def _vm_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.slow
def test_acceptance_n20000_cg_memory():
    with all_blas_threads():
        _acceptance_n20000()


def _acceptance_n20000():
    n = 20000
    k, _ = ntk_problem(n, 0, seed=31)  # 3.2 GB, computed before measuring
    y = np.random.default_rng(0).normal(size=n)
    # RSS high-water mark of the solve alone: reset VmHWM (Linux >= 4.0) when allowed,
    # else fall back on ru_maxrss (then only an upper bound is meaningful if it grew).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    rss0 = _vm_kb("VmRSS")
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        res = it.cg_solve(k, y, tol=1e-10)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    rss_extra = (_vm_kb("VmHWM") - rss0) * 1024 if hwm_reset else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss0) * 1024
    # Independent check of the residual, here in the test (one more product).
    resid = float(np.linalg.norm(y - k @ res.x) / np.linalg.norm(y))
    print(
        f"\nN={n}: CG {res.iterations} it in {elapsed:.1f}s, residual {resid:.2e} (reported "
        f"{res.relative_residual[0]:.2e}), traced peak {traced_peak / 2**20:.0f} MiB, "
        f"RSS high-water above start {rss_extra / 2**20:.0f} MiB (reset={hwm_reset})"
    )
    assert res.converged and resid <= 1e-8
    assert traced_peak < 2**30 and rss_extra < 2**30


def test_agrees_with_dense_dynamics_module(prob):
    """The iterative path and ntkx.dynamics.MSEDynamics are the same dynamics (ridge, f0, t = inf)."""
    from ntkx import dynamics

    k, kt, y = prob["k"], prob["k_test"], prob["y"]
    rng = np.random.default_rng(3)
    f0, f0t = 0.1 * rng.standard_normal(y.shape), 0.1 * rng.standard_normal((kt.shape[0],) + y.shape[1:])
    ridge, eta = 1e-3 * np.mean(np.diag(k)), 0.7
    lmax = prob["w"][-1]
    times = np.array([0.0, 0.5 / lmax, 30.0 / lmax, np.inf])
    dense = dynamics.MSEDynamics(k, y, learning_rate=eta, ridge=ridge)
    got = it.mse_dynamics_iterative(k, y, times, k_test_train=kt, f0_train=f0, f0_test=f0t,
                                    learning_rate=eta, ridge=ridge)
    assert rel(got.train, dense.train_outputs(times, f0)) < 1e-8
    assert rel(got.test, dense.test_mean(times, kt, f0, f0t)) < 1e-8


def test_singular_kernel_t_inf_is_the_pseudo_inverse():
    """Mixed finite/inf times on a rank-2 kernel: the dense module's pseudo-inverse, not 1/round-off."""
    from ntkx import dynamics

    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2))
    k, kt, y = x @ x.T, rng.standard_normal((3, 2)) @ x.T, rng.standard_normal(6)
    got = it.mse_dynamics_iterative(k, y, np.array([1.0, np.inf]), k_test_train=kt)
    dense = dynamics.MSEDynamics(k, y)
    assert rel(got.test, dense.test_mean(np.array([1.0, np.inf]), kt)) < 1e-8
    assert rel(got.train, dense.train_outputs(np.array([1.0, np.inf]))) < 1e-8


def test_expm_underflow_does_not_stop_early():
    """exp(-t theta) of the first Ritz values underflows; the answer lives in a late, small eigenvalue."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    lam = np.r_[1.0, np.linspace(1e3, 2e3, 199)]
    k = (q * lam) @ q.T
    v = q @ np.r_[1e-3, rng.standard_normal(199) / 14]
    want = q @ (np.exp(-lam) * (q.T @ v))
    assert rel(it.expm_multiply(k, v, 1.0), want) < 1e-8


def test_phi_multiply_cg_options_tol_and_nan_test_kernel(prob):
    k, v = prob["k"], prob["y"][:, 0]
    x = it.phi_multiply(k, v, np.inf, ridge=prob["ridge"], cg_options={"tol": 1e-12, "maxiter": 5000})
    assert rel(x, scipy.linalg.solve(k + prob["ridge"] * np.eye(len(k)), v)) < 1e-8
    bad = prob["k_test"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="test-train"):
        it.mse_dynamics_iterative(k, v, 1.0 / prob["w"][-1], k_test_train=bad)
