"""``ntkx.predict``, ``ntkx.batch`` and ``ntkx.empirical_kernel_fn`` against neural-tangents 0.6.5.

neural-tangents' README examples for fully-connected networks run here with only the
imports changed (``from ntkx import stax, predict``) and agree with neural-tangents run
on the same inputs (float64) to ``TOL['nt_dynamics']``.
"""

from __future__ import annotations

import numpy as np
import pytest

import ntkx
from conftest import HAS_NT, TOL, rel_err
from ntkx import dynamics
from ntkx import predict as npredict
from ntkx import stax as nstax

if HAS_NT:
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    from jax import random
    from neural_tangents import stax as ntstax

needs_nt = pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")


def _readme_net(stax):
    """neural-tangents' README network."""
    return stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(512), stax.Relu(), stax.Dense(1))


def _erf_net(stax):
    """The README's Erf network with W_std = 1.5, b_std = 0.05."""
    return stax.serial(stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
                       stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(), stax.Dense(1, W_std=1.5, b_std=0.05))


def _readme_data():
    key1, key2 = random.split(random.PRNGKey(1))
    x1 = random.normal(key1, (10, 100))
    x2 = random.normal(key2, (20, 100))
    y = random.uniform(key1, shape=(10, 1))
    return x1, x2, y


def _close(ours, theirs, tol):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert rel_err(ours, theirs) <= tol


@needs_nt
@pytest.mark.nt
@pytest.mark.parametrize("net", [_readme_net, _erf_net])
def test_readme_ensemble_example(net):
    """The README's ``gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, diag_reg=1e-4)`` calls,
    inputs as jax arrays for both libraries: end to end (each library's own kernels) to
    ``TOL['nt_predict_e2e']`` (neural-tangents' NTK diagonal), and on shared kernels (ntkx's, handed to
    neural-tangents' predict through a kernel_fn) to ``TOL['nt_dynamics']``."""
    x_train, x_test, y_train = _readme_data()
    kf = net(nstax)[2]
    ours = npredict.gradient_descent_mse_ensemble(kf, x_train, y_train, diag_reg=1e-4)
    theirs = nt.predict.gradient_descent_mse_ensemble(net(ntstax)[2], x_train, y_train, diag_reg=1e-4)
    shared = nt.predict.gradient_descent_mse_ensemble(
        lambda a, b, get, **kw: kf(np.asarray(a), None if b is None else np.asarray(b), get), x_train, y_train,
        diag_reg=1e-4)
    for other, tol in ((theirs, TOL["nt_predict_e2e"]), (shared, TOL["nt_dynamics"])):
        _close(ours(x_test=x_test, get="nngp"), other(x_test=x_test, get="nngp"), tol)
        _close(ours(x_test=x_test, get="ntk"), other(x_test=x_test, get="ntk"), tol)
        m, c = ours(x_test=x_test, get="ntk", compute_cov=True)
        tm, tc = other(x_test=x_test, get="ntk", compute_cov=True)
        _close(m, tm, tol)
        _close(c, tc, tol)
        assert m.shape == (20, 1) and c.shape == (20, 20)


@needs_nt
@pytest.mark.nt
@pytest.mark.parametrize("compute_cov", [False, True])
@pytest.mark.parametrize("x_test_given", [True, False])
def test_ensemble_times_and_gets(compute_cov, x_test_given):
    """Finite times of any shape, t=None, both gets at once, and the training set (x_test=None)."""
    x_train, x_test, _ = _readme_data()
    y_train = np.asarray(random.normal(random.PRNGKey(3), (10, 2)))
    x_test = x_test if x_test_given else None
    ours = npredict.gradient_descent_mse_ensemble(_erf_net(nstax)[2], x_train, y_train, learning_rate=0.7,
                                                  diag_reg=1e-3)
    theirs = nt.predict.gradient_descent_mse_ensemble(_erf_net(ntstax)[2], x_train, y_train, learning_rate=0.7,
                                                      diag_reg=1e-3)
    for t in (None, 2.0, np.array([[0.0, 1.0], [10.0, 1e3]])):
        a = ours(t, x_test, None, compute_cov)
        b = theirs(t, x_test, None, compute_cov)
        assert type(a).__name__ == "Gaussians" and a._fields == ("nngp", "ntk")
        for g in ("nngp", "ntk"):
            ag, bg = getattr(a, g), getattr(b, g)
            if compute_cov:
                _close(ag.mean, bg.mean, TOL["nt_dynamics"])
                # covariances of the training outputs at t -> inf go to 0: judged against the prior's scale
                scale = float(np.max(np.abs(np.asarray(ours(0.0, x_test, g, True).covariance))))
                assert np.max(np.abs(np.asarray(ag.covariance) - np.asarray(bg.covariance))) <= TOL["nt_dynamics"] * scale
            else:
                _close(ag, bg, TOL["nt_dynamics"])


@needs_nt
@pytest.mark.nt
def test_gp_inference_and_gradient_descent_mse_on_kernels():
    x_train, x_test, y_train = _readme_data()
    kf = _erf_net(nstax)[2]
    k_dd = kf(x_train, None, ("nngp", "ntk"))
    k_td = kf(x_test, x_train, ("nngp", "ntk"))
    k_tt = kf(x_test, None, "nngp")
    ours = npredict.gp_inference(k_dd, y_train, diag_reg=1e-3)
    theirs = nt.predict.gp_inference(k_dd, y_train, diag_reg=1e-3)
    for get in ("nngp", "ntk"):
        _close(ours(get, k_td), theirs(get, k_td), TOL["nt_dynamics"])
        a, b = ours(get, k_td, k_tt), theirs(get, k_td, k_tt)
        _close(a.mean, b.mean, TOL["nt_dynamics"])
        _close(a.covariance, b.covariance, TOL["nt_dynamics"])
    train = ours("ntk", None, True)  # the training points: N(y_train, 0), as neural-tangents
    assert np.array_equal(train.mean, np.asarray(y_train)) and not np.any(train.covariance)

    y2 = np.asarray(random.normal(random.PRNGKey(5), (10, 3)))
    mo = npredict.gradient_descent_mse(k_dd.ntk, y2, learning_rate=0.5, diag_reg=1e-4)
    mt = nt.predict.gradient_descent_mse(k_dd.ntk, y2, learning_rate=0.5, diag_reg=1e-4)
    f0_train = np.asarray(random.normal(random.PRNGKey(6), (10, 3)))
    f0_test = np.asarray(random.normal(random.PRNGKey(7), (20, 3)))
    for t in (None, 3.0, np.array([0.5, 50.0])):
        a = mo(t, f0_train, f0_test, k_td.ntk)
        b = mt(t, f0_train, f0_test, k_td.ntk)
        _close(a[0], b[0], TOL["nt_dynamics"])
        _close(a[1], b[1], TOL["nt_dynamics"])
    # neural-tangents 0.6.5's own max_learning_rate calls scipy's eigvalsh(eigvals=...), which scipy
    # >= 1.14 no longer has (TypeError); its formula, 2 (1 + momentum) size / (lambda_max + eps):
    top = float(np.linalg.eigvalsh(np.asarray(k_dd.ntk))[-1])
    for m in (0.0, 0.9):
        assert npredict.max_learning_rate(k_dd.ntk, 30, m) == pytest.approx(2 * (1 + m) * 30 / (top + 1e-12),
                                                                            rel=TOL["solve"])
    assert npredict.max_learning_rate(k_dd.ntk) == pytest.approx(2 * 10 / (top + 1e-12), rel=TOL["solve"])


def test_predict_refuses_what_it_does_not_support():
    x = np.random.default_rng(0).standard_normal((6, 3))
    y = np.ones((6, 2))
    kf = _readme_net(nstax)[2]
    with pytest.raises(NotImplementedError, match="trace_axes"):
        npredict.gradient_descent_mse_ensemble(kf, x, y, trace_axes=())
    with pytest.raises(NotImplementedError, match="ntkgp"):
        npredict.gradient_descent_mse_ensemble(kf, x, y)(x_test=x, get="ntkgp")
    with pytest.raises(TypeError, match="callable"):
        npredict.gradient_descent_mse_ensemble(np.eye(6), x, y)
    with pytest.raises(ValueError, match="NaN or Inf"):
        npredict.gradient_descent_mse_ensemble(kf, x, np.full((6, 2), np.nan))
    with pytest.raises(ValueError, match="nngp"):  # the NTK covariance needs the NNGP kernels
        npredict.gp_inference(ntkx.Kernels(None, np.eye(6)), y)("ntk", ntkx.Kernels(None, np.ones((2, 6))),
                                                                np.eye(2))


def test_predict_matches_dynamics():
    """One implementation: ntkx.predict's ensemble is ntkx.dynamics.GPDynamics in neural-tangents' time."""
    rng = np.random.default_rng(1)
    x, xt, y = rng.standard_normal((12, 4)), rng.standard_normal((5, 4)), rng.standard_normal((12, 2))
    kf = _erf_net(nstax)[2]
    pf = npredict.gradient_descent_mse_ensemble(kf, x, y, learning_rate=2.0, diag_reg=1e-3,
                                                diag_reg_absolute_scale=True)
    k_dd, k_td, k_tt = kf(x, None), kf(xt, x), kf(xt, None, "nngp")
    gp = dynamics.GPDynamics(k_dd.ntk, k_dd.nngp, y, learning_rate=2.0, ridge=1e-3,
                                  convention="neural_tangents")
    t = np.array([0.0, 1.0, 7.0])
    ref = gp.predict(t, k_td.ntk, k_td.nngp, k_tt, get="ntk")
    got = pf(t, xt, "ntk", compute_cov=True)
    assert rel_err(got.mean, ref.mean) <= TOL["route"]
    assert rel_err(got.covariance, ref.covariance) <= TOL["route"]


def test_batch_is_a_memory_bound():
    """ntkx.batch bounds the working memory and needs no divisibility: the same values."""
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((37, 5)), rng.standard_normal((23, 5))
    kf = _readme_net(nstax)[2]
    full = kf(x1, x2)
    seen = []

    def spy(a, b=None, get=None, **kw):
        seen.append(kw.get("memory_budget"))
        return kf(a, b, get, **kw)

    for bs in (1, 7, 16):
        got = ntkx.batch(spy, batch_size=bs, store_on_device=False)(x1, x2)
        assert seen[-1] == 2 * 8 * bs * bs
        assert rel_err(got.nngp, full.nngp) <= TOL["route"] and rel_err(got.ntk, full.ntk) <= TOL["route"]
    assert ntkx.batch(kf, batch_size=0) is kf
    with pytest.raises(ValueError, match="batch_size"):
        ntkx.batch(kf, batch_size=-1)


def test_empirical_kernel_fn():
    """neural-tangents' definitions: NNGP f f^T / k, NTK the mean over outputs of J J^T."""
    init_fn, apply_fn, _ = nstax.serial(nstax.Dense(64), nstax.Relu(), nstax.Dense(3))
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((5, 4)), rng.standard_normal((6, 4))
    _, params = init_fn(rng, x1.shape)
    kfn = ntkx.empirical_kernel_fn(apply_fn)
    k = kfn(x1, x2, None, params)
    f1, f2 = apply_fn(params, x1), apply_fn(params, x2)
    assert rel_err(k.nngp, f1 @ f2.T / 3) <= TOL["route"]
    ref = nstax.empirical_kernels(nstax.serial(nstax.Dense(64), nstax.Relu(), nstax.Dense(3)), params, x1, x2)
    assert rel_err(k.ntk, ref.ntk) <= TOL["route"]
    assert kfn(x1, None, "ntk", params).shape == (5, 5)
    with pytest.raises(TypeError, match="ntkx.stax"):
        ntkx.empirical_kernel_fn(lambda p, x: x)
    with pytest.raises(TypeError, match="params"):
        kfn(x1, x2, "ntk")


@needs_nt
@pytest.mark.nt
def test_empirical_kernel_fn_against_neural_tangents():
    """The same finite network in both libraries (ntkx's parameters copied into neural-tangents' layout)."""
    init_fn, apply_fn, _ = nstax.serial(nstax.Dense(32, b_std=0.1), nstax.Erf(), nstax.Dense(2, b_std=0.1))
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    _, params = init_fn(rng, x1.shape)
    nt_init, nt_apply, _ = ntstax.serial(ntstax.Dense(32, b_std=0.1), ntstax.Erf(), ntstax.Dense(2, b_std=0.1))
    _, nt_params = nt_init(random.PRNGKey(0), x1.shape)
    dense = iter([p for p in params if p])
    nt_params = [tuple(np.asarray(v).reshape(np.shape(t)) for v, t in zip(next(dense), p)) if p else p
                 for p in nt_params]
    assert rel_err(np.asarray(nt_apply(nt_params, x1)), apply_fn(params, x1)) <= TOL["route"]
    ours = ntkx.empirical_kernel_fn(apply_fn)(x1, x2, ("nngp", "ntk"), params)
    theirs = nt.empirical_kernel_fn(nt_apply)(x1, x2, ("nngp", "ntk"), nt_params)
    assert rel_err(ours.nngp, np.asarray(theirs.nngp)) <= TOL["nt"]
    assert rel_err(ours.ntk, np.asarray(theirs.ntk)) <= TOL["nt"]
