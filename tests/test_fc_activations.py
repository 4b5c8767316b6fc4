"""The closed-form activations beyond the ReLU family and Erf (issue 17, step 2).

Each dual (csrc/ntkx/math/fc.h: ``dual<K>``, ``act_moments``, ``act_point``; Polynomial's
``poly_point`` / ``poly_pair``) is checked
against a dual computed without its closed form (tests/reference/activations.py:
Gauss-Hermite quadrature of the literal phi, polar quadrature for the homogeneous
non-smooth ones, neural-tangents' documented formula for its kernel maps), through
both FC engines (the fused recursion of a plain net and the register program of a
mixed one), on inputs with a zero row and an (anti)colinear pair; then the finite
network's phi' against finite differences and its kernel at large width, and the
inputs they must refuse. neural-tangents itself: tests/test_stax_compat.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TOL, finite_nngp, rel_err
from ntkx import stax
from reference import activations as ref
from reference.fc import graph_kernels

#: name: (ntkx layer, reference dual). Parameters keep the quadrature at round-off.
CASES = {
    "gelu": (lambda: stax.Gelu(), ref.gelu()),
    "sin": (lambda: stax.Sin(1.2, 0.7, 0.3), ref.sin(1.2, 0.7, 0.3)),
    "cos": (lambda: stax.Cos(0.9, 1.1, -0.2), ref.sin(0.9, 1.1, -0.2 + np.pi / 2)),
    "rbf": (lambda: stax.Rbf(0.6), ref.rbf(0.6)),
    "exp": (lambda: stax.Exp(0.8, 0.4), ref.exp(0.8, 0.4)),
    "gaussian": (lambda: stax.Gaussian(1.1, -0.7), ref.gaussian(1.1, -0.7)),
    "gaussian_pos": (lambda: stax.Gaussian(0.7, 0.05), ref.gaussian(0.7, 0.05)),
    "sign": (lambda: stax.Sign(), ref.sign()),
    "monomial0": (lambda: stax.Monomial(0), ref.monomial(0)),
    "monomial3": (lambda: stax.Monomial(3), ref.monomial(3)),
    "monomial4": (lambda: stax.Monomial(4), ref.monomial(4)),
    "monomial7": (lambda: stax.Monomial(7), ref.monomial(7)),
    "hermite3": (lambda: stax.Hermite(3), ref.HermiteNT(3)),
    "hermite0": (lambda: stax.Hermite(0), ref.HermiteNT(0)),
    "rectified3": (lambda: stax.RectifiedMonomial(3), ref.rectified_monomial(3)),
    "rectified5": (lambda: stax.RectifiedMonomial(5), ref.rectified_monomial(5)),
    "exp_normalized": (lambda: stax.ExpNormalized(1.3, -0.5), ref.ExpNormalizedNT(1.3, -0.5)),
    "polynomial": (lambda: stax.Polynomial([0.2, -0.5, 0.7, 0.1]), ref.polynomial([0.2, -0.5, 0.7, 0.1])),
    "polynomial_odd": (lambda: stax.Polynomial([0.0, 1.0, 0.0, -0.3, 0.0, 0.05]),
                       ref.polynomial([0.0, 1.0, 0.0, -0.3, 0.0, 0.05])),
}


def _inputs(rng):
    """Generic rows, a zero row, a row colinear with row 0 and one anticolinear to row 1,
    scaled so the first layer's variances stay near 1 (the quadrature's comfort zone)."""
    x = rng.standard_normal((5, 4))
    x = np.vstack([x, np.zeros(4), 0.6 * x[0], -1.3 * x[1]])
    return x / np.sqrt((x * x).sum(1).max() / 4)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("engine", ["fused", "program"])
def test_duals_match_the_reference(name, engine, rng):
    """Dense -> act -> Dense -> act -> Dense against the numerical dual, pair by pair."""
    layer, dual = CASES[name]
    w2 = 1.1 if engine == "fused" else 0.8  # unequal stds per layer run the register program
    net = stax.serial(stax.Dense(8, W_std=1.2, b_std=0.3), layer(), stax.Dense(8, W_std=w2, b_std=0.3), layer(),
                      stax.Dense(1, W_std=1.1, b_std=0.1))
    ops = [("dense", 1.2, 0.3, 8), ("act", dual), ("dense", w2, 0.3, 8), ("act", dual), ("dense", 1.1, 0.1, 1)]
    x = _inputs(rng)
    nngp_ref, ntk_ref = graph_kernels(x, None, ops)
    k = net[2](x, None, ("nngp", "ntk"))
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    assert rel_err(k.nngp, nngp_ref) <= TOL["quadrature"], name
    assert rel_err(k.ntk, ntk_ref) <= TOL["quadrature"], name
    cross = net[2](x[:5], x[3:], ("nngp", "ntk"))
    assert rel_err(cross.nngp, nngp_ref[:5, 3:]) <= TOL["quadrature"], name
    assert rel_err(cross.ntk, ntk_ref[:5, 3:]) <= TOL["quadrature"], name


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_hermite_kernel_is_the_true_dual_at_unit_variance(n, rng):
    """neural-tangents' Hermite map K^n is E[h_n(u) h_n(v)] for unit-variance inputs: the
    quadrature of He_n / sqrt(n!) itself, on rows of norm sqrt(d)."""
    x = rng.standard_normal((5, 6))
    x *= np.sqrt(6) / np.linalg.norm(x, axis=1, keepdims=True)
    k = stax.serial(stax.Dense(8), stax.Hermite(n), stax.Dense(1))[2](x, None, ("nngp", "ntk"))
    nngp_ref, ntk_ref = graph_kernels(x, None, [("dense", 1.0, 0.0, 8), ("act", ref.hermite_function(n)),
                                                ("dense", 1.0, 0.0, 1)])
    assert rel_err(k.nngp, nngp_ref) <= TOL["quadrature"]
    assert rel_err(k.ntk, ntk_ref) <= TOL["quadrature"]


@pytest.mark.parametrize("name", ["gelu", "sin", "gaussian", "rbf", "exp", "rectified3", "monomial3"])
def test_identical_points_have_correlation_one(name, rng):
    """A point against a copy of itself gives its own variance (the pair code forms V as the
    per-point pass does), deep into the net: no NaN, no drift of the diagonal."""
    layer, _ = CASES[name]
    net = stax.serial(stax.Dense(8, W_std=1.1, b_std=0.2), stax.repeat(stax.serial(layer(), stax.Dense(8, b_std=0.2)), 6))
    x = rng.standard_normal((3, 5)) / 2
    xx = np.vstack([x, x])
    k = net[2](xx, None, ("nngp", "ntk"))
    for g in (k.nngp, k.ntk):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g[:3, 3:], g[:3, :3], rtol=4e-16 * 50, atol=0)


def test_finite_network_derivatives_match_finite_differences(rng):
    """apply_fn's phi and the empirical NTK's phi' agree (central differences, h = 1e-6)."""
    x = rng.standard_normal(50) * 0.8
    h = 1e-6
    layers = [stax.Gelu(), stax.Gelu(approximate=True), stax.Sin(1.2, 0.7, 0.3), stax.Cos(), stax.Rbf(0.6),
              stax.Exp(0.8, 0.4), stax.Gaussian(1.1, -0.7), stax.Monomial(3), stax.Hermite(4),
              stax.RectifiedMonomial(3), stax.Sigmoid_like(), stax.Polynomial([0.3, -1.0, 0.5, 0.2])]
    for layer in layers:
        op = layer.ops[0]
        fd = (op.phi(x + h) - op.phi(x - h)) / (2 * h)
        np.testing.assert_allclose(op.dphi(x), fd, rtol=1e-6, atol=1e-7, err_msg=op.act.name)
    sign = stax.Sign().ops[0]
    assert np.array_equal(sign.phi(np.array([-2.0, 0.0, 3.0])), [-1.0, 0.0, 1.0])
    assert not np.any(sign.dphi(x))  # taken as 0, as neural-tangents
    herm = stax.Hermite(3).ops[0]
    np.testing.assert_allclose(herm.phi(x), (x ** 3 - 3 * x) / np.sqrt(6), rtol=1e-14, atol=1e-14)


def test_kernel_matches_finite_network_at_large_width(rng):
    """The NNGP of a Gelu / Sin / Monomial(2) net is the output covariance of the finite
    network: width 512, 1024 outputs, 24 draws, within 10%."""
    width = 512
    net = stax.serial(stax.Dense(width, W_std=1.2, b_std=0.1), stax.Gelu(), stax.Dense(width, W_std=1.3),
                      stax.Sin(1.1, 0.9, 0.4), stax.Dense(width, b_std=0.2), stax.Monomial(2), stax.Dense(1024))
    x = rng.standard_normal((4, 6))
    emp = finite_nngp(net, x, 24)
    k = net[2](x, None, "nngp")
    assert np.max(np.abs(emp - k)) / np.max(np.abs(k)) <= 0.1


def test_refusals(rng):
    x = rng.standard_normal((4, 5))
    with pytest.raises(ValueError, match=r"Gaussian.*b q >= 1/4"):
        stax.serial(stax.Dense(8, W_std=3.0), stax.Gaussian(1.0, 0.5), stax.Dense(1))[2](x, None, "nngp")
    with pytest.raises(ValueError, match="Gelu: an activation input's variance overflows"):
        stax.serial(stax.Dense(8, W_std=1e200), stax.Gelu(), stax.Dense(1))[2](x * 1e200, None, "nngp")
    # finite variances whose closed-form products would overflow (q^4 for Gelu, b^2 q^2 for
    # Gaussian, b^2 q for Exp): refused, not a false correlation of 1, NaN or 0
    for net, scale in ((stax.serial(stax.Dense(8), stax.Gelu(), stax.Dense(1)), 1e39),
                       (stax.serial(stax.Dense(8), stax.Gaussian(1.0, -1e150), stax.Dense(1)), 1e2),
                       (stax.serial(stax.Dense(8), stax.Exp(1.0, 1e150), stax.Dense(1)), 1e5)):
        with pytest.raises(ValueError, match="beyond the range"):
            net[2](x * scale, None, "nngp")
    with pytest.raises(NotImplementedError, match="no finite network"):
        init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.ExpNormalized(), stax.Dense(1))
        apply_fn(init_fn(0, x.shape)[1], x)
    imgs = rng.standard_normal((2, 4, 4, 1))
    with pytest.raises(NotImplementedError, match="the CNTK has no Gelu"):
        stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Gelu(), stax.GlobalAvgPool(), stax.Dense(1))[2](
            imgs, None, "nngp")
    for bad in (lambda: stax.Monomial(16), lambda: stax.Hermite(-1), lambda: stax.RectifiedMonomial(16)):
        with pytest.raises(NotImplementedError, match="degree"):
            bad()
    with pytest.raises(ValueError, match="must be >= 0"):
        stax.ExpNormalized(-1.0)
    with pytest.raises(ValueError, match="zero function"):
        stax.Polynomial([0.0, 0.0])
    with pytest.raises(NotImplementedError, match="up to degree 15"):
        stax.Polynomial([1.0] * 17)
    with pytest.raises(NotImplementedError, match="the CNTK has no Polynomial"):
        stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Polynomial([0, 1, 1]), stax.GlobalAvgPool(),
                    stax.Dense(1))[2](imgs, None, "nngp")
