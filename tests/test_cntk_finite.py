"""Finite-width CNNs: the empirical NTK/NNGP of `stax.empirical_kernels` against finite
differences of `apply_fn`, and their convergence to the analytic CNTK of `kernel_fn`."""

import numpy as np
import pytest

from conftest import TOL
from ntkx import stax
from reference import finite_diff


def _cnn(width, readout, w_std=1.5, b_std=0.1, depth=2, act=stax.Relu):
    convs = []
    for _ in range(depth):
        convs += [stax.Conv(width, (3, 3), padding="SAME", W_std=w_std, b_std=b_std), act()]
    return stax.serial(*convs, readout(), stax.Dense(1, W_std=1.5, b_std=0.1))


NETS = {
    # ReLU, GAP readout, two outputs.
    "relu_gap": stax.serial(stax.Conv(3, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), stax.Relu(),
                            stax.Conv(4, (3, 3), padding="SAME", W_std=1.3, b_std=0.2), stax.Relu(),
                            stax.GlobalAvgPool(), stax.Dense(2, W_std=1.5, b_std=0.1)),
    # Erf, a bias-free conv, a 1x1 conv, no activation before Flatten.
    "erf_flatten": stax.serial(stax.Conv(3, (3, 3), padding="SAME", W_std=1.5), stax.Erf(),
                               stax.Conv(2, (1, 1), padding="SAME", W_std=1.3, b_std=0.2), stax.Erf(),
                               stax.Conv(2, (3, 3), padding="SAME", W_std=1.1, b_std=0.3),
                               stax.Flatten(), stax.Dense(2, W_std=1.5, b_std=0.1)),
}


@pytest.mark.parametrize("name", NETS)
def test_backprop_matches_finite_differences(name):
    """Every parameter's gradient, through conv transposes, activations and readouts."""
    net = NETS[name]
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((3, 5, 4, 2)), rng.standard_normal((2, 5, 4, 2))
    _, params = net[0](1, x1.shape)
    fd = finite_diff.ntk(net[1], params, x1, x2)
    cross = stax.empirical_kernels(net, params, x1, x2).ntk
    assert np.abs(cross - fd).max() <= TOL["finite_diff"] * np.abs(fd).max()
    sym = stax.empirical_kernels(net, params, x1).ntk
    assert np.abs(sym - finite_diff.ntk(net[1], params, x1, x1)).max() <= TOL["finite_diff"] * np.abs(sym).max()
    np.testing.assert_allclose(sym, sym.T, rtol=0, atol=TOL["route"] * np.abs(sym).max())  # J J^T: one GEMM


def _mean_errors(x, readout, width, seeds, kernel):
    """Relative Frobenius errors (NTK, NNGP) of the empirical kernels, averaged over seeds."""
    net = _cnn(width, readout)
    errs = []
    for s in range(seeds):
        _, params = net[0](s, x.shape)
        e = stax.empirical_kernels(net, params, x)
        errs.append([np.linalg.norm(e.ntk - kernel.ntk) / np.linalg.norm(kernel.ntk),
                     np.linalg.norm(e.nngp - kernel.nngp) / np.linalg.norm(kernel.nngp)])
    return np.mean(errs, axis=0)


# (readout, image shape): measured mean error * sqrt(width) is flat in the width,
# about 1.25 (NTK) / 1.3 (NNGP) for GAP and 0.9 / 1.2 for Flatten.
CASES = {"gap": (stax.GlobalAvgPool, (3, 4, 4, 2)), "flatten": (stax.Flatten, (3, 5, 4, 1))}


@pytest.mark.parametrize("case", CASES)
def test_empirical_cntk_of_wide_cnns_approaches_the_kernel(case):
    """Errors shrink like 1/sqrt(width): a wrong analytic kernel would leave a floor
    (W_std off by 10% gives ~50% error at every width)."""
    readout, shape = CASES[case]
    x = np.random.default_rng(3).standard_normal(shape)
    kernel = _cnn(1, readout)[2](x)
    widths, seeds = (64, 256, 1024), (12, 12, 8)
    errs = {n: _mean_errors(x, readout, n, s, kernel) for n, s in zip(widths, seeds)}
    for n, e in errs.items():
        assert np.all(e * np.sqrt(n) < 2.5), (n, e)
    assert np.all(errs[1024] < 0.06), errs
    assert np.all(errs[64] > 0.06), errs  # the tolerance is one the narrow network fails
    assert np.all(errs[64] > 2.0 * errs[1024]), errs


@pytest.mark.slow
@pytest.mark.parametrize("act", [stax.Relu, stax.Erf])
def test_deeper_wider_cnn_approaches_the_kernel(act):
    """Three conv layers, width 2048: error * sqrt(width) stays at the width-128 level."""
    x = np.random.default_rng(4).standard_normal((3, 4, 4, 2))

    def errs(width, seeds):
        net = _cnn(width, stax.GlobalAvgPool, w_std=1.4, b_std=0.2, depth=3, act=act)
        kernel = _cnn(1, stax.GlobalAvgPool, w_std=1.4, b_std=0.2, depth=3, act=act)[2](x)
        out = []
        for s in range(seeds):
            e = stax.empirical_kernels(net, net[0](s, x.shape)[1], x)
            out.append([np.linalg.norm(e.ntk - kernel.ntk) / np.linalg.norm(kernel.ntk),
                        np.linalg.norm(e.nngp - kernel.nngp) / np.linalg.norm(kernel.nngp)])
        return np.mean(out, axis=0)

    small, large = errs(128, 12), errs(2048, 3)  # measured ~0.04 / ~0.03 (Relu / Erf) at 2048
    assert np.all(large < 0.07), large
    assert np.all(large < small / 2.0), (small, large)


def test_unsupported_networks_are_named():
    net = stax.serial(stax.Conv(2, (3, 3), padding="SAME"), stax.Relu(), stax.GlobalAvgPool())
    x = np.zeros((1, 3, 3, 1))
    with pytest.raises(NotImplementedError, match="Dense readout"):
        stax.empirical_kernels(net, net[0](0, x.shape)[1], x)
    net = stax.serial(stax.Conv(2, (3, 3), padding="SAME"), stax.Relu(), stax.Dense(1))
    with pytest.raises(NotImplementedError, match=r"\(N, k\)"):
        stax.empirical_kernels(net, net[0](0, x.shape)[1], x)
