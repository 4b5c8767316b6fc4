"""The neural-tangents compatibility suite: every public name of ``neural_tangents.stax``.

Each name is either supported (ntkx's kernels agree with neural-tangents 0.6.5 in float64
on inputs in general position, to ``TOL['nt']``) or raises NotImplementedError saying what
ntkx supports; `ntkx._src.coverage.COVERAGE` says which, and README.md's coverage table is
generated from it. A neural-tangents name missing from that list fails here.
"""

from __future__ import annotations

import pathlib
import types

import numpy as np
import pytest

from conftest import HAS_NT, TOL, rel_err
import ntkx
from ntkx import stax as nstax
from ntkx._src import coverage

if HAS_NT:
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax as ntstax

needs_nt = pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

#: Networks that exercise every supported name, built the same way in both libraries;
#: (builder, input kind). Each supported name must appear in at least one (checked below).
NETWORKS = {
    "relu_mlp": (lambda s: s.serial(s.Dense(8, W_std=1.3, b_std=0.2), s.Relu(), s.Dense(8, W_std=1.3, b_std=0.2),
                                    s.Relu(), s.Dense(1, W_std=1.3, b_std=0.2)), "points"),
    "identity": (lambda s: s.serial(s.Dense(8, W_std=1.1), s.Identity(), s.Relu(), s.Identity(),
                                    s.Dense(1, W_std=1.1)), "points"),
    "leaky_repeat": (lambda s: s.serial(s.Dense(8, W_std=1.2, b_std=0.1),
                                        s.repeat(s.serial(s.LeakyRelu(0.1), s.Dense(8, W_std=1.2, b_std=0.1)), 4)),
                     "points"),
    "abrelu": (lambda s: s.serial(s.Dense(8, W_std=1.4), s.ABRelu(-0.3, 0.8), s.Dense(1, W_std=1.4)), "points"),
    "abs": (lambda s: s.serial(s.Dense(8, b_std=0.3), s.Abs(), s.Dense(8, b_std=0.3), s.Abs(), s.Dense(1, b_std=0.3)),
            "points"),
    "erf": (lambda s: s.serial(s.Dense(8, W_std=1.5, b_std=0.05), s.Erf(), s.Dense(1, W_std=1.5, b_std=0.05)),
            "points"),
    "requ": (lambda s: s.serial(s.Dense(8, b_std=0.2), s.RectifiedMonomial(2), s.Dense(1, b_std=0.2)), "points"),
    "step": (lambda s: s.serial(s.Dense(8), s.RectifiedMonomial(0), s.Dense(1)), "points"),
    "per_layer_stds": (lambda s: s.serial(s.Dense(8, W_std=1.1, b_std=0.3), s.Relu(), s.Dense(8, W_std=2.0),
                                          s.Relu(), s.Dense(8, W_std=0.7, b_std=0.5), s.Relu(),
                                          s.Dense(1, W_std=1.4, b_std=0.05)), "points"),
    "erf_per_layer": (lambda s: s.serial(s.Dense(8, W_std=1.5, b_std=0.05), s.Erf(), s.Dense(8, W_std=0.8, b_std=0.4),
                                         s.Erf(), s.Dense(1, W_std=2.0)), "points"),
    "ends_in_relu": (lambda s: s.serial(s.Dense(8, W_std=1.3, b_std=0.1), s.Relu(), s.Dense(8, W_std=1.3, b_std=0.1),
                                        s.Relu()), "points"),
    "ends_in_erf": (lambda s: s.serial(s.Dense(8, W_std=0.9, b_std=0.2), s.Erf()), "points"),
    "ends_in_leaky_repeat": (lambda s: s.serial(s.Dense(8, b_std=0.1), s.repeat(s.serial(s.LeakyRelu(0.2),
                                                                                          s.Dense(8, b_std=0.1)), 3),
                                                s.LeakyRelu(0.2)), "points"),
    "flatten_mlp": (lambda s: s.serial(s.Flatten(), s.Dense(8, W_std=1.2, b_std=0.1), s.Relu(), s.Dense(1, W_std=0.9)),
                    "images"),
    "mixed_activations": (lambda s: s.serial(s.Dense(8, W_std=1.3, b_std=0.2), s.Relu(), s.Dense(8, W_std=0.9),
                                             s.Erf(0.7, 1.3, 0.1), s.Dense(8, W_std=1.6, b_std=0.3), s.LeakyRelu(0.2),
                                             s.Dense(1, W_std=1.1)), "points"),
    "residual": (lambda s: s.serial(
        s.Dense(8, W_std=1.2, b_std=0.1),
        s.repeat(s.serial(s.FanOut(2), s.parallel(s.serial(s.Relu(), s.Dense(8, W_std=1.4, b_std=0.2)), s.Identity()),
                          s.FanInSum()), 3),
        s.Erf(), s.Dense(1, W_std=0.8)), "points"),
    "concat_unequal": (lambda s: s.serial(
        s.Dense(8, W_std=1.1, b_std=0.3), s.FanOut(3),
        s.parallel(s.serial(s.Relu(), s.Dense(16, W_std=1.3)), s.serial(s.Erf(), s.Dense(32, b_std=0.5)), s.Identity()),
        s.FanInConcat(), s.Dense(1, W_std=1.2, b_std=0.1)), "points"),
    "nested_branches": (lambda s: s.serial(
        s.Dense(8, W_std=1.5), s.FanOut(2),
        s.parallel(s.serial(s.Abs(), s.Dense(8), s.FanOut(3),
                            s.parallel(s.Identity(), s.serial(s.Relu(), s.Dense(8, b_std=0.4)),
                                       s.serial(s.Erf(), s.Dense(8, W_std=0.7))), s.FanInSum()),
                   s.Dense(8, W_std=0.6, b_std=0.2)),
        s.FanInSum(), s.Relu()), "points"),
    "flatten_residual": (lambda s: s.serial(
        s.Flatten(), s.Dense(8, W_std=1.2, b_std=0.1), s.FanOut(2),
        s.parallel(s.serial(s.Relu(), s.Dense(8, W_std=1.3)), s.Identity()), s.FanInSum(), s.Relu(),
        s.Dense(1)), "images"),
    # the closed-form activations of issue 17's step 2 (homogeneous path, two layers, biases)
    "gelu": (lambda s: s.serial(s.Dense(8, W_std=1.3, b_std=0.2), s.Gelu(), s.Dense(8, W_std=1.3, b_std=0.2),
                                s.Gelu(approximate=True), s.Dense(1, W_std=1.3, b_std=0.2)), "points"),
    "sin_cos": (lambda s: s.serial(s.Dense(8, W_std=1.2, b_std=0.3), s.Sin(1.2, 0.7, 0.3), s.Dense(8, W_std=1.1),
                                   s.Cos(0.9, 1.4, -0.2), s.Dense(1, W_std=1.3, b_std=0.1)), "points"),
    "rbf_exp": (lambda s: s.serial(s.Dense(8, W_std=1.1, b_std=0.2), s.Rbf(0.6), s.Dense(8, W_std=0.9, b_std=0.1),
                                   s.Exp(0.8, 0.4), s.Dense(1, W_std=1.2)), "points"),
    "gaussian": (lambda s: s.serial(s.Dense(8, W_std=1.1, b_std=0.2), s.Gaussian(1.1, -0.7), s.Dense(8, b_std=0.3),
                                    s.Gaussian(), s.Dense(1, W_std=1.2)), "points"),
    "exp_normalized": (lambda s: s.serial(s.Dense(8, W_std=1.3, b_std=0.2), s.ExpNormalized(1.3, -0.5),
                                          s.Dense(8, W_std=1.1), s.ExpNormalized(), s.Dense(1, b_std=0.1)), "points"),
    "sigmoid_sign": (lambda s: s.serial(s.Dense(8, W_std=1.3, b_std=0.2), s.Sigmoid_like(), s.Dense(8, W_std=1.5),
                                        s.Sign(), s.Dense(1, W_std=1.1, b_std=0.2)), "points"),
    "monomials": (lambda s: s.serial(s.Dense(8, W_std=1.1, b_std=0.2), s.Monomial(3), s.Dense(8, W_std=0.8, b_std=0.1),
                                     s.Monomial(2), s.Dense(8), s.Monomial(5), s.Dense(1, W_std=1.2)), "points"),
    "hermite": (lambda s: s.serial(s.Dense(8, b_std=0.2), s.Hermite(3), s.Dense(8, W_std=0.9), s.Hermite(2),
                                   s.Dense(1, b_std=0.1)), "points"),
    "polynomial": (lambda s: s.serial(s.Dense(8, W_std=1.1, b_std=0.2), s.Polynomial([0.2, -0.5, 0.7]),
                                      s.Dense(8, W_std=0.9, b_std=0.1), s.Polynomial([0.0, 1.0, 0.0, 0.3]),
                                      s.Dense(1)), "points"),
    "rectified_cubic": (lambda s: s.serial(s.Dense(8, W_std=1.3, b_std=0.2), s.RectifiedMonomial(3),
                                           s.Dense(1, W_std=0.9, b_std=0.1)), "points"),
    "rectified_quartic": (lambda s: s.serial(s.Dense(8, W_std=1.1), s.RectifiedMonomial(4), s.Dense(1)), "points"),
    "residual_smooth": (lambda s: s.serial(
        s.Dense(8, W_std=1.2, b_std=0.1),
        s.repeat(s.serial(s.FanOut(2), s.parallel(s.serial(s.Gelu(), s.Dense(8, W_std=1.4, b_std=0.2)),
                                                   s.serial(s.Sin(), s.Dense(8, W_std=0.7))), s.FanInSum()), 2),
        s.Monomial(2), s.Dense(1, W_std=0.8)), "points"),
    # parameterization='standard' (neural-tangents' Sohl-Dickstein et al. 2020 NTK: the widths enter)
    "standard_mlp": (lambda s: s.serial(s.Dense(16, W_std=1.3, b_std=0.2, parameterization="standard"), s.Relu(),
                                        s.Dense(32, W_std=1.1, b_std=0.0, parameterization="standard"), s.Erf(),
                                        s.Dense(1, W_std=0.9, parameterization="standard")), "points"),
    "standard_mixed": (lambda s: s.serial(
        s.Flatten(), s.Dense(8, W_std=1.2, b_std=0.1, parameterization="standard"), s.FanOut(2),
        s.parallel(s.serial(s.Gelu(), s.Dense(8, W_std=1.4, parameterization="standard")), s.Identity()),
        s.FanInSum(), s.FanOut(2), s.parallel(s.serial(s.Relu(), s.Dense(24, b_std=0.3)),
                                               s.Dense(8, parameterization="standard")),
        s.FanInConcat(), s.Dense(4, parameterization="standard"), s.Relu(), s.Dense(1, parameterization="standard")),
        "images"),
    "cnn_gap": (lambda s: s.serial(s.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), s.Relu(),
                                   s.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), s.Relu(),
                                   s.GlobalAvgPool(), s.Dense(1, W_std=1.2)), "images"),
    "cnn_standard": (lambda s: s.serial(
        s.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1, parameterization="standard"), s.Relu(),
        s.Conv(6, (3, 3), padding="SAME", W_std=1.3, b_std=0.2), s.Relu(),
        s.GlobalAvgPool(), s.Dense(1, W_std=1.2, b_std=0.1, parameterization="standard")), "images"),
    "cnn_standard_flatten": (lambda s: s.serial(
        s.Conv(8, (3, 3), padding="SAME", W_std=1.4, parameterization="standard"), s.Erf(),
        s.Conv(4, (5, 5), padding="SAME", W_std=1.1, b_std=0.0, parameterization="standard"), s.Flatten(),
        s.Dense(1, parameterization="standard")), "images"),
    "cnn_standard_small_w": (lambda s: s.serial(  # fan_in K next to a much larger b^2: no 1/w^2 rebuild
        s.Conv(4, (3, 3), padding="SAME", W_std=1e-4, b_std=1.0, parameterization="standard"), s.Relu(),
        s.GlobalAvgPool(), s.Dense(1, W_std=1e-3, b_std=2.0, parameterization="standard")), "images"),
    "cnn_flatten": (lambda s: s.serial(s.Conv(8, (3, 3), padding="SAME"), s.Erf(), s.Flatten(), s.Dense(1)),
                    "images"),
}


#: Networks whose symmetric diagonal neural-tangents 0.6.5 returns as NaN (measured).
NT_NAN_DIAGONAL = ("requ", "step", "rectified_cubic", "rectified_quartic")


def _inputs(kind: str):
    rng = np.random.default_rng(11)
    if kind == "points":
        return rng.standard_normal((6, 5)), rng.standard_normal((4, 5))
    return rng.standard_normal((3, 5, 5, 2)), rng.standard_normal((2, 5, 5, 2))


def _nt_public_names():
    return sorted(n for n in dir(ntstax) if not n.startswith("_") and not isinstance(getattr(ntstax, n), types.ModuleType))


@needs_nt
@pytest.mark.nt
def test_every_neural_tangents_stax_name_is_listed():
    names = _nt_public_names()
    missing = [n for n in names if n not in coverage.COVERAGE]
    stale = [n for n in coverage.COVERAGE if n not in names]
    assert not missing, f"neural-tangents stax names with no status in ntkx._src.coverage: {missing}"
    assert not stale, f"ntkx._src.coverage lists names neural-tangents' stax does not have: {stale}"


def test_every_name_exists_and_unsupported_ones_refuse():
    for name, entry in coverage.COVERAGE.items():
        obj = getattr(nstax, name)  # every name exists in ntkx.stax
        if entry.status == "supported":
            assert not isinstance(obj, coverage.Unsupported), name
            continue
        assert isinstance(obj, coverage.Unsupported), name
        for use in (lambda: obj(), lambda: obj(1, 2, key=3), lambda: obj[1:2], lambda: obj.SAME):
            with pytest.raises(NotImplementedError, match=f"ntkx.stax.{name} is {entry.status}.*supports"):
                use()
    with pytest.raises(AttributeError):
        nstax.NoSuchLayer
    assert set(coverage.supported()) <= set(dir(nstax))


def test_every_supported_name_is_exercised():
    built = set()
    for build, _ in NETWORKS.values():
        class Spy:
            def __getattr__(self, name):
                built.add(name)
                return getattr(nstax, name)
        build(Spy())
    assert set(coverage.supported()) <= built, set(coverage.supported()) - built


@needs_nt
@pytest.mark.nt
@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_supported_networks_agree_with_neural_tangents(net):
    build, kind = NETWORKS[net]
    x1, x2 = _inputs(kind)
    ours, theirs = build(nstax)[2], build(ntstax)[2]
    for a, b in ((x1, x2), (x1, None)):
        k = ours(a, b, ("nngp", "ntk"))
        t = theirs(a, b, ("nngp", "ntk"))
        for g in ("nngp", "ntk"):
            ref = np.asarray(getattr(t, g))
            got = np.asarray(getattr(k, g))
            if b is None:  # neural-tangents' own angle on identical inputs: bounded separately (TOL['nt_colinear'])
                diag = np.eye(len(ref), dtype=bool)
                assert rel_err(got, np.where(diag, got, ref)) <= TOL["nt"], (net, g)  # off the diagonal
                d_ours, d_nt = np.diag(got), np.diag(ref)
                assert np.all(np.isfinite(d_ours)) and np.all(d_ours > 0), (net, g)
                # neural-tangents 0.6.5 returns NaN on this diagonal for RectifiedMonomial(n), n != 1
                # (its angle of a point with itself); judged where it has a value
                fin = np.isfinite(d_nt)
                assert fin.any() or net in NT_NAN_DIAGONAL, (net, g)
                if fin.any():
                    assert np.max(np.abs(d_ours[fin] - d_nt[fin]) / np.abs(d_nt[fin])) <= TOL["nt_colinear"], (net, g)
            else:
                assert rel_err(got, ref) <= TOL["nt"], (net, g)


def test_readme_coverage_table_is_generated():
    text = README.read_text()
    begin, end = "<!-- coverage: generated from ntkx._src.coverage -->", "<!-- end of coverage -->"
    assert begin in text and end in text
    body = text[text.index(begin) + len(begin):text.index(end)].strip()
    assert body == coverage.markdown().strip()


@needs_nt
@pytest.mark.nt
@pytest.mark.parametrize("net", ["relu_mlp", "residual", "ends_in_erf", "cnn_gap"])
def test_get_none_is_neural_tangents_kernel_object(net):
    """``kernel_fn(x1, x2)`` returns neural-tangents' fields: nngp, ntk, the NNGP
    diagonals cov1 / cov2 (cov2 None for x2=None), x1_is_x2 and the output shapes."""
    build, kind = NETWORKS[net]
    x1, x2 = _inputs(kind)
    ours, theirs = build(nstax)[2], build(ntstax)[2]
    for b in (x2, None):
        k, t = ours(x1, b), theirs(x1, b)
        assert isinstance(k, ntkx.Kernel)
        assert k.x1_is_x2 == t.x1_is_x2 == (b is None)
        assert k.shape1 == tuple(t.shape1) and k.shape2 == tuple(t.shape2)
        diag = np.eye(len(x1), dtype=bool) if b is None else np.zeros((len(x1), len(b)), dtype=bool)
        for g in ("nngp", "ntk"):
            ref = np.asarray(getattr(t, g))
            assert rel_err(getattr(k, g), np.where(diag, getattr(k, g), ref)) <= TOL["nt"], (net, g)
        # neural-tangents' diagonal carries its own ~1e-9 angle error on identical inputs
        def vec_err(a, b):
            return float(np.max(np.abs(a - np.asarray(b)) / np.abs(np.asarray(b))))

        assert vec_err(k.cov1, t.cov1) <= TOL["nt_colinear"]
        assert np.array_equal(k.cov1, np.diagonal(ours(x1, None, "nngp")))
        if b is None:
            assert k.cov2 is None and t.cov2 is None
        else:
            assert vec_err(k.cov2, t.cov2) <= TOL["nt_colinear"]


@needs_nt
@pytest.mark.nt
def test_init_fn_takes_a_jax_key():
    net = nstax.serial(nstax.Dense(4), nstax.Relu(), nstax.Dense(2))
    shape, p1 = net[0](jax.random.PRNGKey(3), (5, 3))
    _, p2 = net[0](jax.random.PRNGKey(3), (5, 3))
    _, p3 = net[0](jax.random.PRNGKey(4), (5, 3))
    _, p4 = net[0](jax.random.key(3), (5, 3))
    assert shape == (5, 2)
    assert np.array_equal(p1[0][0], p2[0][0]) and np.array_equal(p1[0][0], p4[0][0])
    assert not np.array_equal(p1[0][0], p3[0][0])
    x = jax.numpy.asarray(np.random.default_rng(0).standard_normal((5, 3)))
    assert net[1](p1, x).shape == (5, 2)  # jax arrays in, numpy out
    with pytest.raises(TypeError, match="integers"):
        net[0](jax.numpy.ones(2), (5, 3))
