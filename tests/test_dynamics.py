"""Closed-form training dynamics (ntkx._src.dynamics) against direct integration,
literal gradient-descent iteration, dense linear algebra, mpmath and neural-tangents."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import ntkx
from conftest import HAS_NT, TOL, rel_err
from ntkx._src import dynamics as dyn

CONVENTIONS = ("ntkx", "neural_tangents")


def close(actual, desired, scale=None) -> float:
    """max |actual - desired| / max |desired| (or / `scale` when given)."""
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    assert np.all(np.isfinite(actual)), "non-finite values"
    s = float(np.max(np.abs(desired))) if scale is None else scale
    return float(np.max(np.abs(actual - desired)) / max(s, 1e-300))


SPEC = ntkx.FcSpec(depth=2, w_std=1.3, b_std=0.1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    x, xt = rng.standard_normal((24, 6)), rng.standard_normal((9, 6))
    k = ntkx.fc_kernels(x, None, SPEC, get=("nngp", "ntk"))
    ktx = ntkx.fc_kernels(xt, x, SPEC, get=("nngp", "ntk"))
    ktt = ntkx.fc_kernels(xt, None, SPEC, get=("nngp", "ntk"))
    return dict(x=x, xt=xt, k=k, ktx=ktx, ktt=ktt, y=rng.standard_normal((24, 2)),
                f0=rng.standard_normal((24, 2)), f0t=rng.standard_normal((9, 2)),
                lmax=float(np.linalg.eigvalsh(k.ntk)[-1]))


def _eta(d, convention, y, factor=1.0):
    """A learning rate with rate * lambda_max = factor."""
    return factor / d["lmax"] * (y.size if convention == "neural_tangents" else 1)


def _rate(eta, convention, y):
    return eta / y.size if convention == "neural_tangents" else eta


# ---------------------------------------------------------------------------- MSE flow


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("ridge", [0.0, 0.3])
@pytest.mark.parametrize("multi", [True, False])
def test_flow_matches_ode(data, convention, ridge, multi):
    """Closed form = solve_ivp (DOP853, rtol 1e-13) on df/dt = -a (Θ + rI)(f - Y), and the test update."""
    y = data["y"] if multi else data["y"][:, 0]
    f0 = data["f0"] if multi else data["f0"][:, 0]
    f0t = data["f0t"] if multi else data["f0t"][:, 0]
    theta, ktx, n = data["k"].ntk, data["ktx"].ntk, len(y)
    eta = _eta(data, convention, y)
    a = _rate(eta, convention, y)
    A = theta + ridge * np.eye(n)
    m = dyn.MSEDynamics(theta, y, learning_rate=eta, ridge=ridge, convention=convention)
    times = np.array([0.0, 0.5, 3.0, 15.0])
    shape = y.shape

    def rhs(_, s):
        f = s[: y.size].reshape(shape)
        g = -a * (A @ (f - y).reshape(n, -1))
        gt = -a * (ktx @ (f - y).reshape(n, -1))
        return np.concatenate([g.ravel(), gt.ravel()])

    sol = scipy.integrate.solve_ivp(rhs, (0, times[-1]), np.concatenate([f0.ravel(), f0t.ravel()]),
                                    method="DOP853", t_eval=times, rtol=1e-13, atol=1e-14)
    ref_train = sol.y[: y.size].T.reshape((len(times),) + shape)
    ref_test = sol.y[y.size:].T.reshape((len(times),) + f0t.shape)
    got_train = m.train_outputs(times, f0)
    got_test = m.test_mean(times, ktx, f0, f0t)
    assert got_train.shape == ref_train.shape and got_test.shape == ref_test.shape
    assert close(got_train, ref_train) < TOL["ode"]
    assert close(got_test, ref_test) < TOL["ode"]
    assert np.array_equal(got_train[0], f0) and np.array_equal(got_test[0], f0t)
    # scalar t: no leading axis
    assert m.train_outputs(3.0, f0).shape == shape
    assert close(m.test_mean(3.0, ktx, f0, f0t), ref_test[2]) < TOL["ode"]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_discrete_matches_iteration(data, convention):
    """(I - aA)^k closed form = literally iterating f <- f - a A (f - Y) (and the test update)."""
    y, f0, f0t = data["y"], data["f0"], data["f0t"]
    theta, ktx = data["k"].ntk, data["ktx"].ntk
    ridge = 0.1
    A = theta + ridge * np.eye(len(y))
    eta = _eta(data, convention, y, factor=1.9)  # near the limit: the top mode oscillates
    a = _rate(eta, convention, y)
    m = dyn.MSEDynamics(theta, y, learning_rate=eta, ridge=ridge, convention=convention)
    steps = np.array([0, 1, 7, 60, 300])
    f, ft, ref, ref_t = f0.copy(), f0t.copy(), {}, {}
    for k in range(steps[-1] + 1):
        if k in steps:
            ref[k], ref_t[k] = f.copy(), ft.copy()
        r = f - y
        f, ft = f - a * A @ r, ft - a * ktx @ r
    got = m.train_outputs(f0_train=f0, steps=steps)
    got_t = m.test_mean(None, ktx, f0, f0t, steps=steps)
    assert close(got, np.stack([ref[k] for k in steps])) < TOL["gd_iteration"]
    assert close(got_t, np.stack([ref_t[k] for k in steps])) < TOL["gd_iteration"]
    assert m.train_outputs(steps=7, f0_train=f0).shape == y.shape


@pytest.mark.parametrize("ridge", [0.0, 0.05])
def test_t_inf_is_a_direct_solve(data, ridge):
    y, f0, f0t = data["y"], data["f0"], data["f0t"]
    theta, ktx = data["k"].ntk, data["ktx"].ntk
    A = theta + ridge * np.eye(len(y))
    ref = f0t + ktx @ np.linalg.solve(A, y - f0)
    fresh = dyn.MSEDynamics(theta, y, ridge=ridge, learning_rate=0.01)  # Cholesky path
    assert close(fresh.test_mean(np.inf, ktx, f0, f0t), ref) <= TOL["reference"]
    assert close(fresh.train_outputs(np.inf, f0), y) < TOL["roundoff"]
    assert not fresh._spec.has_eig
    both = fresh.test_mean([1.0, np.inf], ktx, f0, f0t)  # eigendecomposition path
    assert fresh._spec.has_eig
    assert close(both[1], ref) < TOL["eig_inf"]
    assert close(fresh.train_outputs(np.inf, f0), y) < TOL["interpolation"]
    assert close(fresh.projection(np.inf), np.linalg.inv(A)) < TOL["eig_inf"]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_projection(data, convention):
    """T_t = A^{-1}(I - e^{-a t A}) (scipy expm) and its eigenvalues (1 - e^{-a t λ})/λ."""
    theta, y = data["k"].ntk, data["y"]
    eta = _eta(data, convention, y, 0.7)
    a = _rate(eta, convention, y)
    m = dyn.MSEDynamics(theta, y, learning_rate=eta, convention=convention)
    times = np.array([0.0, 0.4, 6.0])
    p = m.projection(times)
    for i, t in enumerate(times):
        ref = np.linalg.solve(theta, np.eye(len(y)) - scipy.linalg.expm(-a * t * theta))
        assert rel_err(p[i], ref) < TOL["solve"]
        assert np.array_equal(p[i], p[i].T)
    lam = m.eigenvalues
    assert np.all(np.diff(lam) <= 0)
    ev = m.projection_eigenvalues(times)
    assert ev.shape == (3, len(y))
    assert close(ev[1], -np.expm1(-a * 0.4 * lam) / lam) < TOL["ulp"]
    assert close(np.sort(ev[2]), np.linalg.eigvalsh(p[2])) <= TOL["reference"]
    assert np.all(ev[0] == 0)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_max_learning_rate(data, convention):
    theta, y = data["k"].ntk, data["y"]
    m = dyn.MSEDynamics(theta, y, learning_rate=1e-3, convention=convention)
    lr_max = m.max_learning_rate
    assert close(lr_max, 2 / data["lmax"] * (y.size if convention == "neural_tangents" else 1)) <= TOL["reference"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = dyn.MSEDynamics(theta, y, learning_rate=0.999 * lr_max, convention=convention)
    assert close(ok.train_outputs(steps=20000), y) < 1e-8  # converges (slowly in the top mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # flow at any rate is fine: no warning at construction
        bad = dyn.MSEDynamics(theta, y, learning_rate=1.001 * lr_max, convention=convention)
    with pytest.raises(ValueError, match="allow_unstable"):
        bad.train_outputs(steps=10)
    with pytest.raises(ValueError, match="allow_unstable"):
        bad.test_mean(None, data["ktx"].ntk, steps=10)
    with pytest.warns(dyn.UnstableLearningRateWarning, match="max_learning_rate"):
        diverged = bad.train_outputs(steps=20000, allow_unstable=True)
    assert np.max(np.abs(diverged - y)) > 1e3
    assert close(bad.train_outputs(1e4), y) < 1e-8  # the flow does not care


# ---------------------------------------------------------------------------- singular kernels


def _mp_projection_apply(theta, r, a_t, dps=40, terms=160):
    """T_t r = sum_{j>=1} (-1)^{j+1} (a t)^j / j! Θ^{j-1} r in mpmath (no inverse needed)."""
    import mpmath

    with mpmath.workdps(dps):
        th = mpmath.matrix(theta.tolist())
        v = mpmath.matrix(r.tolist())
        term = v * mpmath.mpf(a_t)
        acc = term.copy()
        for j in range(2, terms):
            term = (th * term) * (-mpmath.mpf(a_t) / j)
            acc += term
        return np.array(acc.tolist(), dtype=np.float64)


def test_singular_kernel_duplicates():
    """Duplicate training points with different targets: finite, exact at finite t, no warnings."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 5))
    x[7] = x[2]
    x[9] = x[2]
    k = ntkx.fc_kernels(x, None, SPEC, get="ntk")
    for j in (7, 9):  # make the duplicates exact (also on the diagonal)
        k[j, :], k[:, j] = k[2, :], k[:, 2]
    xt = rng.standard_normal((4, 5))
    ktx = ntkx.fc_kernels(xt, x, SPEC, get="ntk")
    y = rng.standard_normal((10, 2))
    lmax = np.linalg.eigvalsh(k)[-1]
    eta = 1.0 / lmax
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = dyn.MSEDynamics(k, y, learning_rate=eta)
        assert np.count_nonzero(m.eigenvalues == 0) == 2
        for t in (0.5, 4.0):
            ref = _mp_projection_apply(k, y, eta * t)
            assert close(m.projection(t) @ y, ref) < TOL["solve"]
            assert close(m.test_mean(t, ktx), ktx @ ref) < TOL["solve"]
            assert close(m.train_outputs(t), k @ ref) < TOL["solve"]
        # t = inf: the duplicates settle on their mean target, the rest interpolates
        fresh = dyn.MSEDynamics(k, y, learning_rate=eta)
        f_inf = fresh.train_outputs(np.inf)
        want = y.copy()
        want[[2, 7, 9]] = y[[2, 7, 9]].mean(axis=0)
        assert close(f_inf, want) < TOL["singular"]
        fresh = dyn.MSEDynamics(k, y, learning_rate=eta)
        assert close(fresh.test_mean(np.inf, ktx), ktx @ np.linalg.pinv(k, rcond=1e-10) @ y) < TOL["singular"]
        g = dyn.GPDynamics(k, k, y, learning_rate=eta).predict([1.0, np.inf], k[:3], k[:3], k[:3, :3])
        assert np.all(np.isfinite(g.mean)) and np.all(np.isfinite(g.covariance))


# ---------------------------------------------------------------------------- modes, early stopping


def test_modes_and_time_to_residual(data):
    theta, y, f0 = data["k"].ntk, data["y"], data["f0"]
    m = dyn.MSEDynamics(theta, y, learning_rate=0.05)
    md = m.modes(f0)
    assert np.all(np.diff(md.eigenvalues) <= 0)
    _, v = np.linalg.eigh(theta)
    assert close(np.abs(md.projections), np.abs(v[:, ::-1].T @ (y - f0))) < TOL["solve"]
    eps = 1e-2
    tt = md.time_to_residual(eps)
    norms = np.linalg.norm(md.projections, axis=1)
    assert np.all((tt == 0) == (norms <= eps))
    i = int(np.argmax(tt))
    vi = m._spec.eig()[1][:, i]
    resid = vi @ (y - m.train_outputs(tt[i], f0))
    assert abs(np.linalg.norm(resid) - eps) < TOL["time_to_residual"] * eps
    z = dyn.MSEModes(np.array([1.0, 0.0, 0.0]), np.array([0.5, 0.5, 1e-3]), 2.0)
    assert np.array_equal(z.time_to_residual(0.01), [np.log(50) / 2, np.inf, 0.0])


def test_early_stopping_time(data):
    theta, ktx, y = data["k"].ntk, data["ktx"].ntk, data["y"]
    yv = ktx @ np.linalg.solve(theta, y) * 0.7  # a target the t = inf fit overshoots
    m = dyn.MSEDynamics(theta, y, learning_rate=1.0 / data["lmax"])
    times = np.array([0.0, 1.0, 3.0, 10.0, 100.0, np.inf])
    res = m.early_stopping_time(ktx, yv, times)
    curve = [np.mean((m.test_mean(t, ktx) - yv) ** 2) for t in times]
    assert close(res.mse, curve) <= TOL["reference"]
    assert res.time == times[int(np.argmin(curve))]
    assert 0 < res.time < np.inf


# ---------------------------------------------------------------------------- GP dynamics


def _psd_ok(c):
    for ci in np.reshape(c, (-1,) + c.shape[-2:]):
        assert np.array_equal(ci, ci.T)
        w = np.linalg.eigvalsh(ci)
        assert w[0] >= -TOL["solve"] * max(w[-1], 1e-300), (w[0], w[-1])  # within the covariances' bar of a PSD one


def _gp_reference(theta, k, ktx_ntk, ktx, ktt, y, a, t, ridge=0.0):
    """Dense closed forms (expm, solve): NTK and NNGP mean and covariance."""
    n = len(y)
    out = {}
    for g, D, Dtx in (("ntk", theta, ktx_ntk), ("nngp", k, ktx)):
        A = D + ridge * np.eye(n)
        e = scipy.linalg.expm(-a * t * A) if np.isfinite(t) else np.zeros((n, n))
        T = np.linalg.solve(A, np.eye(n) - e)
        M = Dtx @ T
        mean = M @ y
        if g == "ntk":
            cov = ktt + M @ k @ M.T - M @ ktx.T - ktx @ M.T
        else:
            e2 = scipy.linalg.expm(-2 * a * t * A) if np.isfinite(t) else np.zeros((n, n))
            cov = ktt - ktx @ np.linalg.solve(A, np.eye(n) - e2) @ ktx.T
        out[g] = (mean, cov)
    return out


@pytest.mark.parametrize("ridge", [0.0, 0.2])
def test_gp_closed_forms(data, ridge):
    k, kx, kt, y = data["k"], data["ktx"], data["ktt"], data["y"]
    eta = 1.0 / data["lmax"]
    gp = dyn.GPDynamics(k.ntk, k.nngp, y, learning_rate=eta, ridge=ridge)
    times = np.array([0.0, 0.5, 4.0, np.inf])
    for g in ("ntk", "nngp"):
        full = gp.predict(times, kx.ntk, kx.nngp, kt.nngp, get=g)
        assert full.mean.shape == (4, 9, 2) and full.covariance.shape == (4, 9, 9)
        _psd_ok(full.covariance)
        assert np.all(full.mean[0] == 0) and rel_err(full.covariance[0], kt.nngp) < TOL["roundoff"]
        for i, t in enumerate(times):
            mean, cov = _gp_reference(k.ntk, k.nngp, kx.ntk, kx.nngp, kt.nngp, y, eta, t, ridge)[g]
            assert close(full.mean[i], mean) < TOL["solve"], (g, t)
            assert close(full.covariance[i], cov, np.max(np.abs(kt.nngp))) < TOL["solve"], (g, t)
        diag = gp.predict(times, kx.ntk, kx.nngp, np.diag(kt.nngp), get=g, diag_only=True)
        assert close(diag.covariance, np.diagonal(full.covariance, axis1=1, axis2=2)) <= TOL["reference"]
        assert close(diag.mean, full.mean) < TOL["roundoff"]
        # t = inf alone: the Cholesky path
        fresh = dyn.GPDynamics(k.ntk, k.nngp, y, learning_rate=eta, ridge=ridge)
        inf = fresh.predict(np.inf, kx.ntk, kx.nngp, kt.nngp, get=g)
        assert not fresh._spec[g].has_eig
        assert close(inf.mean, full.mean[-1]) < TOL["solve"]
        assert close(inf.covariance, full.covariance[-1], np.max(np.abs(kt.nngp))) < TOL["solve"]
        _psd_ok(inf.covariance)
        inf_d = fresh.predict(np.inf, kx.ntk, kx.nngp, np.diag(kt.nngp), get=g, diag_only=True)
        assert close(inf_d.covariance, np.diag(inf.covariance), np.max(kt.nngp)) <= TOL["reference"]
        nocov = gp.predict(2.0, kx.ntk, kx.nngp, get=g, compute_cov=False)
        assert nocov.covariance is None and nocov.mean.shape == (9, 2)


def test_gp_on_training_points(data):
    """No test arguments = the training points as test points (no ridge)."""
    k, y = data["k"], data["y"]
    gp = dyn.GPDynamics(k.ntk, k.nngp, y, learning_rate=1.0 / data["lmax"])
    times = np.array([0.0, 0.7, 5.0, np.inf])
    for g in ("ntk", "nngp"):
        on_train = gp.predict(times, get=g)
        as_test = gp.predict(times, k.ntk, k.nngp, k.nngp, get=g)
        scale = np.max(np.abs(k.nngp))
        assert close(on_train.mean, as_test.mean) < TOL["solve"]
        assert close(on_train.covariance, as_test.covariance, scale) < TOL["solve"]
        _psd_ok(on_train.covariance)
        assert close(on_train.mean[-1], y) < TOL["solve"]
        assert np.max(np.abs(on_train.covariance[-1])) < TOL["solve"] * scale
        d = gp.predict(times, get=g, diag_only=True).covariance
        assert close(d, np.diagonal(on_train.covariance, axis1=1, axis2=2), scale) <= TOL["reference"]


def test_gp_monte_carlo(data):
    """The covariance formula is the covariance of f0(x) + Θ(x,X) T_t (Y - f0(X)), f0 ~ GP(0, K)."""
    k, kx, kt, y = data["k"], data["ktx"], data["ktt"], data["y"][:, :1]
    n, m, eta, t = 24, 9, 1.0 / data["lmax"], 2.0
    joint = np.block([[k.nngp, kx.nngp.T], [kx.nngp, kt.nngp]])
    rng = np.random.default_rng(5)
    f = rng.multivariate_normal(np.zeros(n + m), joint, size=40000, method="eigh").T
    T = dyn.MSEDynamics(k.ntk, y, learning_rate=eta).projection(t)
    out = f[n:] + kx.ntk @ T @ (y - f[:n])
    pred = dyn.GPDynamics(k.ntk, k.nngp, y, learning_rate=eta).predict(t, kx.ntk, kx.nngp, kt.nngp)
    scale = np.max(np.abs(kt.nngp))
    assert close(np.cov(out), pred.covariance, scale) < 0.04
    assert close(out.mean(axis=1), pred.mean[:, 0], scale) < 0.04


# ---------------------------------------------------------------------------- neural-tangents


@pytest.fixture(scope="module")
def nt_modules():
    if not HAS_NT:
        pytest.skip("neural-tangents is not installed")
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    from neural_tangents import stax as nt_stax

    return nt, nt_stax


def _fixed_kernel_fn(data):
    """A neural-tangents kernel_fn that returns ntkx's matrices (the SAME numbers on both sides)."""
    from collections import namedtuple

    K = namedtuple("Kernel", "nngp ntk")
    x, xt = data["x"], data["xt"]

    def pick(a, b):
        if b is None:
            src = data["k"] if a.shape == x.shape and np.array_equal(a, x) else data["ktt"]
        else:
            assert np.array_equal(b, x)
            src = data["k"] if np.array_equal(a, x) else data["ktx"]
        return src

    def kernel_fn(a, b=None, get=None, **kwargs):
        src = pick(np.asarray(a), None if b is None else np.asarray(b))
        if isinstance(get, str):
            return getattr(src, get)
        get = ("nngp", "ntk") if get is None else tuple(get)
        return K(*(getattr(src, g) if g in get else None for g in K._fields))

    return kernel_fn


@pytest.mark.nt
@pytest.mark.parametrize("diag_reg", [0.0, 1e-2])
def test_matches_neural_tangents(data, nt_modules, diag_reg):
    nt, nt_stax = nt_modules
    y, f0, f0t = data["y"], data["f0"], data["f0t"]
    k, kx, kt = data["k"], data["ktx"], data["ktt"]
    lr = 3.0
    times = [0.0, 0.7, 40.0, np.inf, None]

    theirs = nt.predict.gradient_descent_mse(k.ntk, y, learning_rate=lr, diag_reg=diag_reg)
    ours = dyn.gradient_descent_mse(k.ntk, y, learning_rate=lr, diag_reg=diag_reg)
    for t in times:
        a, b = theirs(t, f0, f0t, kx.ntk), ours(t, f0, f0t, kx.ntk)
        assert close(b[0], np.asarray(a[0])) < TOL["nt_dynamics"] and close(b[1], np.asarray(a[1])) < TOL["nt_dynamics"], t
        assert close(ours(t, None, f0t, kx.ntk), np.asarray(theirs(t, None, f0t, kx.ntk))) < TOL["nt_dynamics"]
    tarr = np.array([[0.5, 2.0], [9.0, np.inf]])
    assert close(ours(tarr), np.asarray(theirs(tarr))) < TOL["nt_dynamics"]

    theirs = nt.predict.gradient_descent_mse_ensemble(_fixed_kernel_fn(data), data["x"], y, learning_rate=lr,
                                                      diag_reg=diag_reg)
    ours = dyn.gradient_descent_mse_ensemble(k.ntk, k.nngp, y, learning_rate=lr, diag_reg=diag_reg)
    scale = np.max(np.abs(kt.nngp))
    for g in ("ntk", "nngp"):
        for t in times:
            a = theirs(t, data["xt"], g, compute_cov=True)
            b = ours(t, g, True, kx.ntk, kx.nngp, kt.nngp)
            assert close(b.mean, np.asarray(a.mean), scale) < TOL["nt_dynamics"], (g, t)
            assert close(b.covariance, np.asarray(a.covariance), scale) < TOL["nt_dynamics"], (g, t)
            a, b = theirs(t, None, g, compute_cov=True), ours(t, g, True)
            assert close(b.mean, np.asarray(a.mean), scale) < TOL["nt_dynamics"], (g, t)
            assert close(b.covariance, np.asarray(a.covariance), scale) < TOL["nt_dynamics"], (g, t)
    both = ours(2.0, None, False, kx.ntk, kx.nngp)
    assert both._fields == ("nngp", "ntk")
    a = theirs(2.0, data["xt"], None)
    assert close(both.ntk, np.asarray(a.ntk)) < TOL["nt_dynamics"] and close(both.nngp, np.asarray(a.nngp)) < TOL["nt_dynamics"]

    # neural-tangents' own stax kernels of the same network: its diagonal angles are only
    # accurate to ~1e-9 (see test_fc_reference), so the agreement is that of the kernels:
    # TOL['nt_colinear'], neural-tangents' angle at a correlation of exactly 1.
    net = nt_stax.serial(nt_stax.Dense(64, W_std=1.3, b_std=0.1), nt_stax.Relu(),
                         nt_stax.Dense(64, W_std=1.3, b_std=0.1), nt_stax.Relu(),
                         nt_stax.Dense(64, W_std=1.3, b_std=0.1))
    theirs = nt.predict.gradient_descent_mse_ensemble(net[2], data["x"], y, learning_rate=lr, diag_reg=diag_reg)
    a, b = theirs(5.0, data["xt"], "ntk", compute_cov=True), ours(5.0, "ntk", True, kx.ntk, kx.nngp, kt.nngp)
    assert close(b.mean, np.asarray(a.mean)) < TOL["nt_colinear"]
    assert close(b.covariance, np.asarray(a.covariance), scale) < TOL["nt_colinear"]


# ---------------------------------------------------------------------------- cross-entropy


def _ce_setup(data, classes=3):
    rng = np.random.default_rng(8)
    n = len(data["y"])
    y = np.eye(classes)[rng.integers(0, classes, n)]
    return data["k"].ntk, y, 0.3 * rng.standard_normal((n, classes))


def test_cross_entropy_against_rk4(data):
    theta, y, f0 = _ce_setup(data)
    eta = 1.0 / data["lmax"]
    times = np.array([2.0, 0.0, 0.5, 4.0])  # any order
    res = dyn.cross_entropy_flow(theta, y, times, learning_rate=eta, f0_train=f0)
    assert res.train.shape == (4,) + y.shape and res.test is None and res.loss.shape == (4,)

    def g(f):
        z = np.exp(f - f.max(axis=1, keepdims=True))
        return -eta * theta @ (z / z.sum(axis=1, keepdims=True) - y)

    f, h, ref = f0.copy(), 1e-3, {0.0: f0.copy()}
    for i in range(1, 4001):
        k1 = g(f)
        k2 = g(f + h / 2 * k1)
        k3 = g(f + h / 2 * k2)
        k4 = g(f + h * k3)
        f = f + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i in (500, 2000, 4000):
            ref[i * h] = f.copy()
    for j, t in enumerate(times):
        key = min(ref, key=lambda s: abs(s - t))
        assert close(res.train[j], ref[key]) < TOL["ode"], t
    assert np.array_equal(res.train[1], f0)


def test_cross_entropy_properties(data):
    theta, y, f0 = _ce_setup(data)
    eta = 1.0 / data["lmax"]
    times = np.linspace(0, 20, 41)
    res = dyn.cross_entropy_flow(theta, y, times, learning_rate=eta, f0_train=f0,
                                 k_test_train=theta[:5], f0_test=f0[:5])
    assert np.all(np.diff(res.loss) < 0)
    assert close(res.test, res.train[:, :5]) < TOL["flow_test_rows"]
    # first order at small t: f(t) = f0 - t η Θ (softmax(f0) - Y) + O(t^2)
    z = np.exp(f0 - f0.max(axis=1, keepdims=True))
    slope = -eta * theta @ (z / z.sum(axis=1, keepdims=True) - y)
    for t in (1e-3, 1e-4):
        f = dyn.cross_entropy_flow(theta, y, t, learning_rate=eta, f0_train=f0).train
        assert f.shape == y.shape
        assert np.max(np.abs(f - f0 - t * slope)) < 10 * t ** 2 * np.max(np.abs(slope))


# ---------------------------------------------------------------------------- bad inputs


def test_bad_inputs(data):
    k, y, ktx = data["k"].ntk, data["y"], data["ktx"].ntk
    M = dyn.MSEDynamics
    bad_k = k.copy()
    bad_k[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"k_train_train of shape \(24, 24\) contains 1 NaN"):
        M(bad_k, y)
    with pytest.raises(ValueError, match=r"square.*\(24, 23\)"):
        M(k[:, :-1], y)
    asym = k.copy()
    asym[0, 1] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        M(asym, y)
    with pytest.raises(ValueError, match=r"y_train must have shape \(24,\) or \(24, k\).*\(23, 2\)"):
        M(k, y[:-1])
    with pytest.raises(ValueError, match="y_train.*Inf"):
        M(k, np.where(y > 1, np.inf, y))
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        M(k, y, ridge=-1e-3)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        M(k, y, learning_rate=0.0)
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        M(k, y, learning_rate="fast")
    with pytest.raises(ValueError, match="convention"):
        M(k, y, convention="nt")
    with pytest.raises(ValueError, match="not positive semi-definite"):
        M(-k, y, learning_rate=1e-3).train_outputs(1.0)
    m = M(k, y, learning_rate=1e-3)
    with pytest.raises(ValueError, match="t must be >= 0"):
        m.train_outputs([1.0, -0.5])
    with pytest.raises(ValueError, match="NaN"):
        m.train_outputs(np.nan)
    with pytest.raises(TypeError, match="t .* or steps"):
        m.train_outputs()
    with pytest.raises(ValueError, match="not both"):
        m.train_outputs(1.0, steps=3)
    with pytest.raises(TypeError, match="steps must be an integer"):
        m.train_outputs(steps=2.5)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        m.train_outputs(steps=-1)
    with pytest.raises(ValueError, match=r"f0_train must have shape \(24, 2\), got \(24,\)"):
        m.train_outputs(1.0, y[:, 0])
    with pytest.raises(ValueError, match=r"k_test_train must have shape \(m, 24\).*\(24, 9\)"):
        m.test_mean(1.0, ktx.T)
    with pytest.raises(ValueError, match=r"f0_test must have shape \(9, 2\)"):
        m.test_mean(1.0, ktx, f0_test=np.zeros(9))
    with pytest.raises(ValueError, match="eps must be > 0"):
        m.modes().time_to_residual(0.0)
    gp = dyn.GPDynamics(k, data["k"].nngp, y)
    with pytest.raises(ValueError, match=r"nngp_train_train must have shape \(24, 24\)"):
        dyn.GPDynamics(k, data["k"].nngp[:5, :5], y)
    with pytest.raises(ValueError, match="get must be"):
        gp.predict(1.0, get="both")
    with pytest.raises(ValueError, match="needs ntk_test_train"):
        gp.predict(1.0, nngp_test_train=data["ktx"].nngp)
    with pytest.raises(ValueError, match="needs nngp_test_test"):
        gp.predict(1.0, ktx, data["ktx"].nngp)
    with pytest.raises(ValueError, match=r"nngp_test_test must have shape \(9, 9\)"):
        gp.predict(1.0, ktx, data["ktx"].nngp, np.ones(9))
    with pytest.raises(ValueError, match="finite"):
        dyn.cross_entropy_flow(k, np.eye(2)[np.arange(24) % 2], np.inf)
    with pytest.raises(ValueError, match=r"y_train_onehot must have shape \(24, k\)"):
        dyn.cross_entropy_flow(k, np.ones(24), 1.0)
    with pytest.raises(ValueError, match="fx_test_0 was given without k_test_train"):
        dyn.gradient_descent_mse(k, y)(1.0, 0.0, np.zeros((9, 2)))


def test_t_inf_does_not_depend_on_what_ran_before():
    """An all-inf call gives the same answer before and after the eigendecomposition is cached."""
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    k = (q * np.geomspace(100, 1e-12, 100)) @ q.T
    k = 0.5 * (k + k.T)
    y = rng.standard_normal((100, 2))
    d = dyn.MSEDynamics(k, y)
    before = d.train_outputs(np.inf)
    d.eigenvalues
    assert np.array_equal(d.train_outputs(np.inf), before)


# ---------------------------------------------------------------------------- PSD kernels and targets (issue 12)

from ntkx._src import validate  # noqa: E402

_NOT_PSD = "is not positive semi-definite"


def _spectral(n, eigenvalues, seed=3):
    """``Q diag(eigenvalues) Q^T`` for a random orthogonal Q (symmetric to the last bit)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    k = (q * np.asarray(eigenvalues, dtype=np.float64)) @ q.T
    return 0.5 * (k + k.T)


def _duplicated_gram(n=24, rank=5, seed=4):
    """A rank-deficient Gram matrix ``X X^T`` with duplicated rows: PSD, but its
    computed smallest eigenvalues are negative round-off."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n - 6, rank))
    x = np.vstack([x, x[:6]])
    g = x @ x.T
    return 0.5 * (g + g.T)


def _onehot(n, k=3):
    return np.eye(k)[np.arange(n) % k]


def test_gp_rejects_non_psd_covariances(data):
    """GPDynamics(K, -G, y).predict(1.0) used to return negative variances."""
    k, kx, kt, y = data["k"], data["ktx"], data["ktt"], data["y"]
    with pytest.raises(ValueError, match=r"nngp_train_train is not positive semi-definite: smallest eigenvalue -"):
        dyn.GPDynamics(k.ntk, -k.nngp, y).predict(1.0)
    with pytest.raises(ValueError, match="nngp_train_train " + _NOT_PSD):
        dyn.GPDynamics(k.ntk, -k.nngp, y, ridge=10 * float(np.max(k.nngp)))  # the prior has no ridge
    with pytest.raises(ValueError, match="nngp_train_train " + _NOT_PSD):
        dyn.gradient_descent_mse_ensemble(k.ntk, -k.nngp, y)
    # the NTK: checked on the eigenvalues (finite t) or by the failed Cholesky (t = inf)
    for t in (1.0, np.inf, [0.5, np.inf]):
        with pytest.raises(ValueError, match=r"ntk_train_train \+ ridge \* I " + _NOT_PSD):
            dyn.GPDynamics(-k.ntk, k.nngp, y).predict(t)
    with pytest.raises(ValueError, match="nngp_train_train " + _NOT_PSD):  # indefinite, not just negative
        dyn.GPDynamics(k.ntk, k.nngp - 0.5 * np.eye(24) * np.max(k.nngp), y)
    gp = dyn.GPDynamics(k.ntk, k.nngp, y)
    with pytest.raises(ValueError, match="nngp_test_test " + _NOT_PSD):
        gp.predict(1.0, kx.ntk, kx.nngp, -kt.nngp)
    bad = np.diag(kt.nngp).copy()
    bad[2] = -0.5
    with pytest.raises(ValueError, match=r"nngp_test_test \(the test variances\) must be >= 0: entry 2 is -0.5"):
        gp.predict(1.0, kx.ntk, kx.nngp, bad, diag_only=True)
    # valid inputs still work, and their variances are >= 0
    for g in ("ntk", "nngp"):
        var = gp.predict([0.0, 1.0, np.inf], kx.ntk, kx.nngp, np.diag(kt.nngp), get=g, diag_only=True).covariance
        assert np.all(var >= -TOL["psd_roundoff"] * np.max(kt.nngp))


def test_cross_entropy_rejects_non_psd_kernel(data):
    theta, y = data["k"].ntk, _onehot(24)
    with pytest.raises(ValueError, match="k_train_train " + _NOT_PSD + r".*cross-entropy flow on it diverges"):
        dyn.cross_entropy_flow(-theta, y, 1.0)
    indefinite = theta - 0.5 * float(np.linalg.eigvalsh(theta)[-1]) * np.eye(24)
    with pytest.raises(ValueError, match="k_train_train " + _NOT_PSD):
        dyn.cross_entropy_flow(indefinite, y, 1.0)


def test_cross_entropy_targets_are_probability_rows(data):
    theta = data["k"].ntk
    twice = _onehot(24)
    twice[3] = [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match=r"y_train_onehot row 3 is not a probability row: it sums to 2, not 1"):
        dyn.cross_entropy_flow(theta, twice, 1.0)
    neg = _onehot(24)
    neg[5] = [0.75, -0.5, 0.75]
    neg[7] = [-1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"y_train_onehot row 5 .* entry -0.5 in column 1 is outside \[0, 1\]"):
        dyn.cross_entropy_flow(theta, neg, 1.0)
    with pytest.raises(ValueError, match=r"y_train_onehot row 0 .* entry 2 in column 0 is outside \[0, 1\]"):
        dyn.cross_entropy_flow(theta, 2 * _onehot(24), 1.0)
    labels = np.arange(24) % 3
    with pytest.raises(ValueError, match=r"y_train_onehot must have shape \(24, k\), got \(24,\): class indices "
                                         r"must be one-hot encoded first, e\.g\. np\.eye\(k\)\[labels\]"):
        dyn.cross_entropy_flow(theta, labels, 1.0)
    with pytest.raises(ValueError, match=r"y_train_onehot of shape \(24, 3\) contains 1 NaN"):
        dyn.cross_entropy_flow(theta, np.where(np.arange(72).reshape(24, 3) == 4, np.nan, _onehot(24)), 1.0)
    # valid: one-hot (float, int, bool), soft labels, float32 softmax rows (within k * eps32), tiny round-off
    eta = 1.0 / data["lmax"]
    ref = dyn.cross_entropy_flow(theta, np.eye(3)[labels], 2.0, learning_rate=eta).train
    for y in (np.eye(3, dtype=np.int64)[labels], np.eye(3, dtype=bool)[labels]):
        assert np.array_equal(dyn.cross_entropy_flow(theta, y, 2.0, learning_rate=eta).train, ref)
    # rows off by 1e-12 (accepted as round-off) move the flow by about as much (3.7e-12 measured):
    # a bound on the flow's response to that perturbation, not a comparison's rounding bar
    assert close(dyn.cross_entropy_flow(theta, np.eye(3)[labels] * (1 + 1e-12), 2.0, learning_rate=eta).train,
                 ref) < 1e-9
    rng = np.random.default_rng(5)
    z = rng.standard_normal((24, 40)).astype(np.float32)
    soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert soft.dtype == np.float32
    res = dyn.cross_entropy_flow(theta, soft, [0.0, 1.0], learning_rate=eta)
    assert np.all(np.diff(res.loss) < 0)


def test_psd_tolerance_accepts_round_off(data):
    """A PSD kernel whose computed smallest eigenvalue is a tiny negative (round-off) is accepted everywhere."""
    g = _duplicated_gram()
    w = np.linalg.eigvalsh(g)
    assert w[0] < 0 and w[0] > -TOL["psd_roundoff"] * w[-1], w[[0, -1]]
    y = data["y"]
    validate.check_psd(g, "g")
    validate.check_psd(w, "g", eigenvalues=True)
    m = dyn.MSEDynamics(g, y)
    assert np.isfinite(m.max_learning_rate)
    for t in (1.0, np.inf, [0.0, 3.0, np.inf]):
        assert np.all(np.isfinite(m.train_outputs(t)))
    assert np.all(np.isfinite(dyn.gradient_descent_mse(g, y)(None, 0.0)))
    for g_ntk, g_nngp in ((g, g), (data["k"].ntk, g), (g, data["k"].nngp)):
        gp = dyn.GPDynamics(g_ntk, g_nngp, y)
        for get in ("ntk", "nngp"):
            for t in (2.0, np.inf):
                assert np.all(np.isfinite(gp.predict(t, get=get).covariance))
    ens = dyn.gradient_descent_mse_ensemble(g, g, y)(np.inf, None, compute_cov=True)
    assert np.all(np.isfinite(ens.ntk.covariance)) and np.all(np.isfinite(ens.nngp.covariance))
    res = dyn.cross_entropy_flow(g, _onehot(24), [0.0, 0.1, 1.0], learning_rate=1.0 / w[-1])
    assert np.all(np.diff(res.loss) < 0)
    assert np.all(np.isfinite(dyn.GPDynamics(data["k"].ntk, data["k"].nngp, y).predict(
        1.0, data["ktx"].ntk, data["ktx"].nngp, g[:9, :9]).covariance))


@pytest.mark.parametrize("n", [3, 40, 300])
def test_psd_rule(n):
    """``λ_min >= -1e-6 max|λ|``: the same decision from the eigenvalues and from the matrix (Cholesky path)."""
    lam = np.geomspace(5.0, 1e-3, n)
    lam[-1] = 0.0
    for frac, ok in ((0.0, True), (-1e-9, True), (-0.5e-6, True), (-2e-6, False), (-1e-3, False), (-1.0, False)):
        lam[-1] = frac * lam[0]
        k = _spectral(n, lam)
        for source, eig in ((k, False), (lam, True)):
            if ok:
                validate.check_psd(source, "K", eigenvalues=eig)
            else:
                with pytest.raises(ValueError, match=r"K is not positive semi-definite: smallest eigenvalue "
                                                     r".*tolerance: smallest >= -1e-06 \* max\|eigenvalue\|"):
                    validate.check_psd(source, "K", eigenvalues=eig)
    validate.check_psd(np.zeros((n, n)), "K")
    with pytest.raises(ValueError, match="K " + _NOT_PSD):
        validate.check_psd(-np.eye(n), "K")


def test_mse_psd_checked_on_every_route(data):
    """MSEDynamics checks on the eigenvalues it computes: eig, lambda_max and the failed-Cholesky fallback."""
    k, y = data["k"].ntk, data["y"]
    indefinite = k - 0.1 * data["lmax"] * np.eye(24)
    for call in (lambda m: m.max_learning_rate, lambda m: m.train_outputs(1.0), lambda m: m.train_outputs(np.inf),
                 lambda m: m.test_mean(np.inf, data["ktx"].ntk), lambda m: m.eigenvalues,
                 lambda m: m.train_outputs(steps=3)):
        with pytest.raises(ValueError, match="k_train_train " + _NOT_PSD + ".*; gradient flow on it diverges"):
            call(dyn.MSEDynamics(indefinite, y))
    with pytest.raises(ValueError, match=r"k_train_train \+ ridge \* I " + _NOT_PSD):
        dyn.MSEDynamics(k - data["lmax"] * np.eye(24), y, ridge=0.5 * data["lmax"]).train_outputs(1.0)
    # the ridge counts: Θ + r I is what the flow uses
    assert np.all(np.isfinite(dyn.MSEDynamics(indefinite, y, ridge=0.2 * data["lmax"]).train_outputs(1.0)))
