"""ntkx's FC kernels against independent references: the literal numpy loops, 2-D
Gauss-Hermite quadrature and Monte Carlo of the dual activations, mpmath at 50
digits (identical, colinear and very deep cases) and finite-width networks."""

import numpy as np
import pytest

import ntkx
from ntkx import stax
from conftest import TOL, rel_err
from reference import duals
from reference import fc as ref
from reference import mp as mpref

# (ntkx activation, reference activation)
PAIRS = {
    "relu": (ntkx.Activation("abrelu", 0.0, 1.0), ref.Relu()),
    "leaky": (ntkx.Activation("abrelu", 0.1, 1.0), ref.LeakyRelu(0.1)),
    "abs": (ntkx.Activation("abrelu", -1.0, 1.0), ref.Abs()),
    "abrelu": (ntkx.Activation("abrelu", -0.3, 1.7), ref.ABRelu(-0.3, 1.7)),
    "step": (ntkx.Activation("arccos0"), ref.RectifiedMonomial(0)),
    "requ": (ntkx.Activation("arccos2"), ref.RectifiedMonomial(2)),
    "erf": (ntkx.Activation("erf", 1.0, 1.0, 0.0), ref.Erf()),
    "erf_abc": (ntkx.Activation("erf", 1.3, 0.7, 0.2), ref.Erf(1.3, 0.7, 0.2)),
}


def _kernels(x1, x2, depth, w, b, act, **kw):
    k = ntkx.fc_kernels(x1, x2, ntkx.FcSpec(depth, w, b, act), **kw)
    return k.nngp, k.ntk


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("bias", [0.0, 0.3])
def test_matches_literal_reference(rng, name, bias):
    ours, theirs = PAIRS[name]
    x1 = rng.standard_normal((6, 5))
    x1[2] = 0.0  # a zero vector
    x2 = rng.standard_normal((4, 5))
    # Bias-free ReQU squares the scale every layer: at depth 9 the value itself overflows.
    for depth in (0, 1, 2, 5) if name == "requ" else (0, 1, 2, 5, 9):
        for b in (x2, None):
            want = ref.fc_kernels(x1, b, depth, 1.4, bias, theirs)
            got = _kernels(x1, b, depth, 1.4, bias, ours)
            for g, r in zip(got, want):
                assert rel_err(g, r) <= TOL["reference"], (depth, b is None)


@pytest.mark.parametrize("name, tol", [("erf", 1e-12), ("requ", 3e-5), ("relu", 3e-3)])
def test_one_layer_matches_quadrature(name, tol):
    """Sigma^1 = w^2 E[phi(u) phi(v)] + b^2 by 2-D Gauss-Hermite quadrature (n = 256).
    Quadrature converges like n^-2 / n^-1 for the ReQU / ReLU kinks (measured), spectrally for erf."""
    ours, theirs = PAIRS[name]
    x = np.array([[1.0, 0.2, -0.5], [0.3, -1.1, 0.4], [-0.8, 0.1, 0.9]])
    w, b = 1.3, 0.2
    nngp = _kernels(x, None, 1, w, b, ours)[0]
    for i in range(3):
        for j in range(3):
            q, qp, c = (w**2 * x[k] @ x[m] / 3 + b**2 for k, m in ((i, i), (j, j), (i, j)))
            t = duals.dual_quadrature(theirs.phi, q, qp, c, n=256)
            scale = np.sqrt(nngp[i, i] * nngp[j, j])
            assert abs(w**2 * t + b**2 - nngp[i, j]) <= tol * scale


def test_one_layer_ntk_matches_monte_carlo():
    """Theta^1 = w^2 E[phi'(u) phi'(v)] Theta^0 + Sigma^1 with 10^6 seeded samples: within 5 standard errors."""
    x = np.array([[1.0, 0.2, -0.5], [0.3, -1.1, 0.4]])
    w = 1.2
    for name in ("relu", "erf", "abrelu", "requ"):
        ours, theirs = PAIRS[name]
        nngp, ntk = _kernels(x, None, 1, w, 0.0, ours)
        q, qp, c = (w**2 * x[k] @ x[m] / 3 for k, m in ((0, 0), (1, 1), (0, 1)))
        tdot, se = duals.dual_monte_carlo(theirs.dphi, q, qp, c, n_samples=10**6, seed=3, return_stderr=True)
        want = w**2 * tdot * c + nngp[0, 1]
        assert abs(ntk[0, 1] - want) <= 5 * w**2 * abs(c) * se + 1e-12, name


@pytest.mark.parametrize("name", ["relu", "abs", "leaky", "requ", "step", "erf"])
@pytest.mark.parametrize("bias", [0.0, 0.3])
def test_identical_and_colinear_inputs_match_mpmath(name, bias):
    """Where neural-tangents' own float64 angle loses 1e-9..3e-8, ntkx stays within 1e-13."""
    ours, theirs = PAIRS[name]
    rng = np.random.default_rng(11)
    base = rng.standard_normal(7)
    # Exactly colinear in floating point (power-of-two factors), antiparallel,
    # identical, and 1e-9 apart.
    x = np.stack([base, 2.0 * base, 0.5 * base, -base, base + 1e-9 * rng.standard_normal(7)])
    if name == "step" and bias:
        # The step kernel's angle map is theta -> ~sqrt(theta): a 1e-9 angle enters
        # through per-point bias weights whose difference keeps ~1e-7 relative
        # accuracy, amplified to ~1e-12 by depth 3. Exact colinearity stays exact.
        x = x[:4]
    for depth in (1, 3, 5) if name == "requ" else (1, 3, 20):
        want = mpref.mp_fc_kernels(x, None, depth, 1.4, bias, theirs, dps=50)
        got = _kernels(x, None, depth, 1.4, bias, ours)
        for g, r in zip(got, want):
            assert rel_err(g, r) <= TOL["mp_colinear"], depth


@pytest.mark.parametrize("name", ["relu"])
def test_depth_1e5_matches_mpmath(name):
    """L = 10^5 (a naive float64 arccos recursion is 0.44% off here): <= 1e-10."""
    ours, theirs = PAIRS[name]
    rng = np.random.default_rng(5)
    a = rng.standard_normal(4)
    x = np.stack([a, 3.0 * a, rng.standard_normal(4)])
    w = np.sqrt(2.0)
    got = _kernels(x, None, 10**5, w, 0.0, ours)
    for i, j in ((0, 0), (0, 1), (0, 2)):
        want = mpref.mp_fc_kernels(x[i:i + 1], x[j:j + 1], 10**5, w, 0.0, theirs, dps=40)
        for g, r in zip(got, want):
            assert abs(g[i, j] - r[0, 0]) <= TOL["mp_deep"] * abs(r[0, 0]), (i, j)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["abs", "erf", "requ", "step"])
@pytest.mark.parametrize("bias", [0.0, 0.1])
def test_depth_1e5_other_activations_match_mpmath(name, bias):
    ours, theirs = PAIRS[name]
    if name == "requ" and bias == 0.0:
        pytest.skip("bias-free ReQU squares the scale each layer: the value itself overflows")
    rng = np.random.default_rng(6)
    a = rng.standard_normal(4)
    x = np.stack([a, rng.standard_normal(4)])
    # Scale-preserving weights: abs with W_std = sqrt 2 doubles Q per layer, and erf with
    # W_std >= 1 is chaotic (its NTK grows like chi^L): both would overflow for real.
    w = {"requ": 0.5, "erf": 0.7, "abs": 1.0}.get(name, np.sqrt(2.0))
    got = _kernels(x, None, 10**5, w, bias, ours)
    want = mpref.mp_fc_kernels(x, None, 10**5, w, bias, theirs, dps=40)
    for g, r in zip(got, want):
        assert rel_err(g, r) <= TOL["mp_deep"]


def test_depth_1e6_stays_finite_and_consistent():
    """No underflow/overflow of the scale: with W_std = sqrt 2 the NNGP diagonal is
    exactly preserved and the NTK grows like L; with W_std = 1 the scale 2^-L is
    carried in logs (the value itself underflows to an exact 0 in float64, never NaN)."""
    x = np.array([[1.0, 2.0, -0.5], [0.3, -1.0, 2.0], [2.0, 4.0, -1.0]])
    nngp, ntk = _kernels(x, None, 10**6, np.sqrt(2.0), 0.0, PAIRS["relu"][0])
    q = 2.0 * np.sum(x**2, axis=1) / 3
    np.testing.assert_allclose(np.diag(nngp), q, rtol=TOL["analytic"])
    np.testing.assert_allclose(np.diag(ntk), (10**6 + 1) * q, rtol=TOL["analytic"])
    assert np.all(np.isfinite(ntk)) and np.all(ntk > 0)
    # 1/4 of the way from the diagonal: deep ReLU correlations approach 1 like 1 - O(1/L^2).
    assert 0.999 < nngp[0, 1] / np.sqrt(q[0] * q[1]) < 1.0
    n1, t1 = _kernels(x, None, 10**6, 1.0, 0.0, PAIRS["relu"][0])
    assert np.all(n1 == 0.0) and np.all(t1 == 0.0)
    # The same depth with a scale-preserving bias stays O(1).
    nb, tb = _kernels(x, None, 10**6, 1.0, 0.1, PAIRS["relu"][0])
    assert np.all(np.isfinite(tb)) and np.all(nb > 0)


@pytest.mark.parametrize("depth", [1, 10, 100])
def test_float32_within_1e5_of_float64(rng, depth):
    """float32 mode: float32 Gram and storage, float64 recursion; <= 1e-5 on every entry."""
    x = rng.standard_normal((300, 20)).astype(np.float32)
    x[5] = x[4]
    for bias in (0.0, 0.2):
        spec = ntkx.FcSpec(depth, 1.4, bias)
        k32 = ntkx.fc_kernels(x, None, spec, dtype=np.float32)
        k64 = ntkx.fc_kernels(x.astype(np.float64), None, spec)
        assert k32.ntk.dtype == np.float32
        for a, b in ((k32.nngp, k64.nngp), (k32.ntk, k64.ntk)):
            err = np.abs(a.astype(np.float64) - b) / np.abs(b)
            assert err.max() <= TOL["float32"], err.max()


def test_empirical_ntk_of_wide_networks_approaches_the_kernel():
    """Finite-width check: the relative error of one random network's empirical NTK
    shrinks like 1/sqrt(width) (measured: ~4x from width 64 to 2048, averaged over seeds)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4))
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    def err(width, seeds):
        net = stax.serial(stax.Dense(width, 1.5, 0.1), stax.Relu(), stax.Dense(width, 1.5, 0.1), stax.Relu(),
                          stax.Dense(1, 1.5, 0.1))
        k = net[2](x)
        out = []
        for s in range(seeds):
            _, params = net[0](s, x.shape)
            e = stax.empirical_kernels(net, params, x)
            out.append([np.linalg.norm(e.ntk - k.ntk) / np.linalg.norm(k.ntk),
                        np.linalg.norm(e.nngp - k.nngp) / np.linalg.norm(k.nngp)])
        return np.mean(out, axis=0)

    small, large = err(64, 8), err(2048, 8)
    assert np.all(large < 0.08), large
    assert np.all(large < small / 2.5), (small, large)


def test_stax_apply_fn_is_the_finite_network():
    """apply_fn in the NTK parameterization: outputs have the NNGP as covariance (Monte Carlo over draws)."""
    x = np.array([[1.0, 0.5], [-0.3, 0.8]])
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512, 1.2, 0.3), stax.Erf(), stax.Dense(1, 1.2, 0.3))
    outs = np.array([apply_fn(init_fn(s, x.shape)[1], x)[:, 0] for s in range(2000)])
    cov = outs.T @ outs / len(outs)
    nngp = kernel_fn(x, None, "nngp")
    assert np.abs(cov - nngp).max() <= 0.08 * np.abs(nngp).max()


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("biased", [False, True])
def test_per_layer_stds_match_literal_reference(rng, name, biased):
    """Dense layers with their own W_std / b_std (FcSpec.w_layers / b_layers) on the CPU and the
    emulated CUDA kernel, against the literal recursion with the same per-layer stds."""
    ours, theirs = PAIRS[name]
    x1 = rng.standard_normal((7, 5))
    x1[3] = 0.0
    x2 = rng.standard_normal((5, 5))
    depth = 4
    ws = (1.3, 0.6, 2.1, 1.0, 1.7)
    bs = (0.4, 0.0, 0.2, 0.9, 0.1) if biased else (0.0,) * 5
    spec = ntkx.FcSpec(depth, activation=ours, w_layers=ws, b_layers=bs)
    for b in (x2, None):
        want = ref.fc_kernels(x1, b, depth, ws, bs, theirs)
        for device in ("cpu", "emulate"):
            got = ntkx.fc_kernels(x1, b, spec, device=device)
            for g, r in zip(got, want):
                assert rel_err(g, r) <= TOL["reference"], (device, b is None)
    # one shared value as a per-layer list is the homogeneous network, bit for bit
    same = ntkx.FcSpec(depth, 1.3, 0.4, ours, w_layers=(1.3,) * 5, b_layers=(0.4,) * 5)
    assert all(np.array_equal(g, r) for g, r in zip(ntkx.fc_kernels(x1, x2, same),
                                                    ntkx.fc_kernels(x1, x2, ntkx.FcSpec(depth, 1.3, 0.4, ours))))


def test_per_layer_stds_are_checked():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="depth \\+ 1 = 3 entries"):
        ntkx.fc_kernels(x, spec=ntkx.FcSpec(2, w_layers=(1.0, 1.0)))
    with pytest.raises(ValueError, match="b_layers\\[1\\]"):
        ntkx.fc_kernels(x, spec=ntkx.FcSpec(2, b_layers=(0.0, np.nan, 0.0)))
    with pytest.raises(ValueError, match="w_layers\\[0\\]"):
        ntkx.fc_kernels(x, spec=ntkx.FcSpec(2, w_layers=(-1.0, 1.0, 1.0)))
