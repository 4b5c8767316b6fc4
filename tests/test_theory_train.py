"""Finite-width training (`ntkx.theory.train`): gradients, Jacobian-vector products and the
empirical NTK against central finite differences, and the linearized network against the
closed-form `ntkx.dynamics` with the same (empirical) kernel.

Tolerances (conftest's TOL): central differences with eps = 1e-6 carry O(eps^2) truncation
and O(eps_machine / eps) ~ 1e-10 rounding, so TOL['finite_diff'] (the issue's bar) holds with
room; the one-step check inherits that 1e-10 gradient error per entry (TOL['finite_diff_step']);
the linearized run and the closed form are one linear recursion in two summation orders,
30 steps of (I - eta Theta) with ||eta Theta|| <= 1 (TOL['linearized'], TOL['linearized_scaled']
at 100x output scale, where F = a f amplifies rounding)."""

import numpy as np
import pytest

from ntkx import dynamics, stax
from ntkx._src import network
from ntkx._src.theory.train import loss_and_grad, train
from conftest import TOL
from reference import finite_diff


def _fc(par, width=5, k=2):
    return stax.serial(stax.Dense(width, W_std=1.4, b_std=0.3, parameterization=par), stax.Erf(),
                       stax.Dense(width, W_std=1.2, b_std=0.2, parameterization=par), stax.Relu(),
                       stax.Dense(k, W_std=1.1, b_std=0.1, parameterization=par))


def _cnn(par, width=3, k=2):
    return stax.serial(stax.Conv(width, (3, 3), padding="SAME", W_std=1.5, b_std=0.1, parameterization=par),
                       stax.Relu(),
                       stax.Conv(width, (3, 3), padding="SAME", W_std=1.3, parameterization=par), stax.Erf(),
                       stax.GlobalAvgPool(), stax.Dense(k, W_std=1.5, b_std=0.1, parameterization=par))


def _data(kind, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)) if kind == "fc" else rng.standard_normal((n, 4, 3, 2))


NETS = {f"{kind}_{par}": (kind, (_fc if kind == "fc" else _cnn)(par)) for kind in ("fc", "cnn")
        for par in ("ntk", "standard")}


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("name", NETS)
def test_empirical_ntk_matches_finite_differences(name):
    kind, net = NETS[name]
    x1, x2 = _data(kind, 3, 1), _data(kind, 2, 2)
    _, params = net[0](3, x1.shape)
    fd = finite_diff.ntk(net[1], params, x1, x2)
    assert _rel(stax.empirical_kernels(net, params, x1, x2).ntk, fd) <= TOL["finite_diff"]
    fd_sym = finite_diff.ntk(net[1], params, x1, x1)
    assert _rel(stax.empirical_kernels(net, params, x1).ntk, fd_sym) <= TOL["finite_diff"]


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("name", NETS)
def test_loss_gradients_match_finite_differences(name, loss):
    """`network.vjp` of dL/df is the gradient of the training loss, every parameter."""
    kind, net = NETS[name]
    x = _data(kind, 4, 3)
    rng = np.random.default_rng(4)
    y = rng.dirichlet(np.ones(2), size=4) if loss == "xent" else rng.standard_normal((4, 2))
    _, params = net[0](5, x.shape)
    ops = list(network.expand(net.ops))
    run = network.forward(ops, params, x)
    grads = network.vjp(ops, params, run, loss_and_grad(loss, run.out, y)[1])
    fd = finite_diff.gradient(lambda p: loss_and_grad(loss, net[1](p, x), y)[0], params)
    flat = lambda g: np.concatenate([a.ravel() for p in g for a in p if a is not None])  # noqa: E731
    assert _rel(flat(grads), flat(fd)) <= TOL["finite_diff"]


@pytest.mark.parametrize("name", NETS)
def test_jvp_matches_finite_differences(name):
    kind, net = NETS[name]
    x = _data(kind, 3, 6)
    _, params = net[0](7, x.shape)
    rng = np.random.default_rng(8)
    v = [tuple(None if a is None else rng.standard_normal(a.shape) for a in p) for p in params]
    ops = list(network.expand(net.ops))
    got = network.jvp(ops, params, network.forward(ops, params, x), v)
    eps = 1e-6
    shift = lambda s: [tuple(None if a is None else a + s * b for a, b in zip(p, q)) for p, q in zip(params, v)]  # noqa
    fd = (net[1](shift(eps), x) - net[1](shift(-eps), x)) / (2 * eps)
    assert _rel(got, fd) <= TOL["finite_diff"]


def test_one_training_step_is_the_finite_difference_gradient_step():
    _, net = NETS["fc_ntk"]
    x = _data("fc", 5, 9)
    y = np.random.default_rng(10).standard_normal((5, 2))
    _, params = net[0](11, x.shape)
    lr = 0.05
    traj = train(net, params, x, y, learning_rate=lr, steps=1, linearized=False)
    fd = finite_diff.gradient(lambda p: loss_and_grad("mse", net[1](p, x), y)[0], params)
    stepped = [tuple(None if a is None else a - lr * g for a, g in zip(p, q)) for p, q in zip(params, fd)]
    np.testing.assert_allclose(traj.train[-1], net[1](stepped, x), rtol=TOL["finite_diff_step"],
                               atol=TOL["finite_diff_step_abs"])
    assert traj.param_distance[0] == 0 and traj.param_distance[-1] > 0


@pytest.mark.parametrize("kind", ["fc", "cnn"])
def test_linearized_network_is_the_closed_form_with_the_empirical_ntk(kind):
    """With one output the linearized network's GD is exactly ``MSEDynamics(Theta_0)``'s steps."""
    net = (_fc if kind == "fc" else _cnn)("ntk", width=6, k=1)
    x, xt = _data(kind, 6, 12), _data(kind, 3, 13)
    y = np.random.default_rng(14).standard_normal((6, 1))
    _, params = net[0](15, x.shape)
    k0 = stax.empirical_kernels(net, params, x).ntk
    kt0 = stax.empirical_kernels(net, params, xt, x).ntk
    lr = 0.5 / np.linalg.eigvalsh(k0)[-1]
    traj = train(net, params, x, y, x_test=xt, learning_rate=lr, steps=30, record=[0, 7, 30], ntk_at=[0, 30])
    f0, ft0 = net[1](params, x), net[1](params, xt)
    m = dynamics.MSEDynamics(k0, y, learning_rate=lr)
    np.testing.assert_allclose(traj.lin_train, m.train_outputs(f0_train=f0, steps=traj.steps), rtol=TOL["linearized"],
                               atol=TOL["linearized"])
    np.testing.assert_allclose(traj.lin_test, m.test_mean(None, kt0, f0, ft0, steps=traj.steps), rtol=TOL["linearized"],
                               atol=TOL["linearized"])
    np.testing.assert_allclose(traj.ntk[0], k0, rtol=TOL["route"])  # the same formulas: measured bit-equal
    # the gradient alignment <J_t, J_0> / (|J_t| |J_0|), by finite differences
    j0, jt = finite_diff.jacobian(net[1], params, x), finite_diff.jacobian(net[1], traj.params, x)
    want = np.sum(jt * j0) / np.sqrt(np.sum(jt * jt) * np.sum(j0 * j0))
    assert traj.alignment[0] == 1.0 and abs(traj.alignment[1] - want) <= TOL["finite_diff"]
    np.testing.assert_allclose(traj.ntk[1], stax.empirical_kernels(net, traj.params, x).ntk, rtol=TOL["route"])
    assert traj.loss[-1] < traj.loss[0]


def test_training_refuses_bad_input_and_diverging_rates():
    _, net = NETS["fc_ntk"]
    x = _data("fc", 5, 16)
    y = np.random.default_rng(17).standard_normal((5, 2))
    _, params = net[0](18, x.shape)
    with pytest.raises(ValueError, match="diverges"):
        train(net, params, x, y, learning_rate=1e6, steps=50, linearized=False)
    with pytest.raises(ValueError, match="rows of x_train"):
        train(net, params, x, y[:3], learning_rate=0.1, steps=1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        train(net, params, np.where(x > 1, np.nan, x), y, learning_rate=0.1, steps=1)
    with pytest.raises(ValueError, match="probability"):
        train(net, params, x, y, learning_rate=0.1, steps=1, loss="xent")
    with pytest.raises(ValueError, match="loss must be"):
        train(net, params, x, y, learning_rate=0.1, steps=1, loss="hinge")
    with pytest.raises(ValueError, match="steps"):
        train(net, params, x, y, learning_rate=0.1, steps=-1)
    with pytest.raises(ValueError, match="parameter entries"):
        train(net, params[:-1], x, y, learning_rate=0.1, steps=1)


def test_standard_parameterization_has_kernels():
    """Standard FC and conv networks have analytic kernels (checked against neural-tangents in
    tests/test_stax_compat.py), larger than the NTK parameterization's at these widths."""
    def cnn(par):  # one activation kind (the CNTK's rule)
        return stax.serial(stax.Conv(3, (3, 3), padding="SAME", W_std=1.5, b_std=0.1, parameterization=par),
                           stax.Relu(), stax.GlobalAvgPool(), stax.Dense(2, W_std=1.5, parameterization=par))

    for kind, net in (("fc", _fc), ("cnn", cnn)):
        x = _data(kind, 2)
        std, ntk = net("standard")[2](x, None, "ntk"), net("ntk")[2](x, None, "ntk")
        assert np.all(np.isfinite(std)) and np.trace(std) > np.trace(ntk)
    with pytest.raises(ValueError, match="parameterization"):
        stax.Dense(3, parameterization="mean_field")


def test_output_scale_keeps_the_function_space_dynamics():
    """``a (f - f0)`` on ``L / a^2``: the linearized run is MSEDynamics with f0 = 0 for every a,
    and the network's outputs approach it as a grows (Chizat et al.'s lazy limit)."""
    net = _fc("ntk", width=8, k=1)
    x = _data("fc", 6, 19)
    y = np.random.default_rng(20).standard_normal((6, 1))
    _, params = net[0](21, x.shape)
    k0 = stax.empirical_kernels(net, params, x).ntk
    lr = 0.5 / np.linalg.eigvalsh(k0)[-1]
    m = dynamics.MSEDynamics(k0, y, learning_rate=lr)
    gaps = []
    for a in (1.0, 10.0, 100.0):
        tr = train(net, params, x, y, learning_rate=lr, steps=20, record=[20], output_scale=a, center=True)
        np.testing.assert_allclose(tr.lin_train, m.train_outputs(steps=tr.steps), rtol=TOL["linearized_scaled"],
                                   atol=TOL["linearized"])
        assert tr.train[0] == pytest.approx(0.0, abs=TOL["roundoff"])
        gaps.append(np.abs(tr.train[-1] - tr.lin_train[-1]).max())
    # the gap of a (f - f0) to its linearization falls like 1/a (the second-order term is
    # a |dtheta|^2 with |dtheta| ~ 1/a): 10x per decade expected, 5x required
    assert gaps[2] < gaps[1] / 5 < gaps[0] / 25


def test_training_refuses_mismatched_parameters_and_shapes():
    _, net = NETS["fc_ntk"]
    x = _data("fc", 5, 22)
    y = np.random.default_rng(23).standard_normal((5, 2))
    _, params = net[0](24, x.shape)
    _, other = _fc("ntk", width=6)[0](24, x.shape)
    with pytest.raises(ValueError, match="needs"):
        train(net, other, x, y, learning_rate=0.1, steps=1)
    bad = [tuple(None if a is None else a.copy() for a in p) for p in params]
    bad[0][0][0, 0] = np.nan
    with pytest.raises(ValueError, match="parameters of op 0 contain NaN"):
        train(net, bad, x, y, learning_rate=0.1, steps=1)
    with pytest.raises(ValueError, match="integer step counts"):
        train(net, params, x, y, learning_rate=0.1, steps=3, record=[2.7])
    with pytest.raises(ValueError, match="N >= 1"):
        train(net, params, x[:0], y[:0], learning_rate=0.1, steps=1)
    with pytest.raises(ValueError, match="needs NHWC images"):
        train(_cnn("ntk"), _cnn("ntk")[0](0, (2, 4, 3, 2))[1], x, y, learning_rate=0.1, steps=1)
