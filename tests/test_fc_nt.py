"""Cross-checks against neural-tangents (float64), when it is installed.

neural-tangents is a test extra (``pip install .[nt]``), never a runtime dependency.
"""

import numpy as np
import pytest

from conftest import HAS_NT, TOL, rel_err

pytestmark = [pytest.mark.nt, pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")]

if HAS_NT:
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax as nt_stax

from ntkx import stax

# (ntkx layer, neural-tangents layer) for every activation both support.
ACTIVATIONS = {
    "Relu": (lambda: stax.Relu(), lambda: nt_stax.Relu()),
    "LeakyRelu": (lambda: stax.LeakyRelu(0.1), lambda: nt_stax.LeakyRelu(0.1)),
    "ABRelu": (lambda: stax.ABRelu(-0.3, 0.7), lambda: nt_stax.ABRelu(-0.3, 0.7)),
    "Abs": (lambda: stax.Abs(), lambda: nt_stax.Abs()),
    "Erf": (lambda: stax.Erf(), lambda: nt_stax.Erf()),
    "Erf(a,b,c)": (lambda: stax.Erf(0.7, 1.3, 0.2), lambda: nt_stax.Erf(0.7, 1.3, 0.2)),
    "RectifiedMonomial(0)": (lambda: stax.RectifiedMonomial(0), lambda: nt_stax.RectifiedMonomial(0)),
    "RectifiedMonomial(2)": (lambda: stax.RectifiedMonomial(2), lambda: nt_stax.RectifiedMonomial(2)),
}


def _net(lib, act, depth, w, b):
    return lib.serial(lib.Dense(64, W_std=w, b_std=b), *[act(), lib.Dense(64, W_std=w, b_std=b)] * depth)


# Eager neural-tangents costs ~0.07 s per layer and call: the default suite checks a
# Fibonacci-spaced subset of depths (every code path of the recursion, 4x less time),
# `-m slow` every depth 0..20.
DEPTHS = (0, 1, 2, 3, 5, 8, 13, 20)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("bias", [None, 0.2])
def test_fc_matches_neural_tangents(name, bias):
    """Inputs in general position, L in DEPTHS: relative error <= 1e-12."""
    _compare_with_nt(name, bias, DEPTHS)


@pytest.mark.slow
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("bias", [None, 0.2])
def test_fc_matches_neural_tangents_every_depth(name, bias):
    """Inputs in general position, every L = 0..20: relative error <= 1e-12."""
    _compare_with_nt(name, bias, range(21))


def _compare_with_nt(name, bias, all_depths):
    rng = np.random.default_rng(7)
    x1, x2 = rng.standard_normal((9, 6)), rng.standard_normal((5, 6))
    ours_act, nt_act = ACTIVATIONS[name]
    w = 1.2
    worst = 0.0
    # neural-tangents 0.6.5's RectifiedMonomial evaluates (pi - t)/sin(t) * sin(t) at
    # t = 0 on its own diagonal: NaN there and, from depth 2 on, everywhere. Deeper
    # arc-cosine kernels are checked against the literal and mpmath references.
    depths = [d for d in all_depths if d < 2] if name.startswith("RectifiedMonomial") else all_depths
    for depth in depths:
        ours = _net(stax, ours_act, depth, w, bias)[2]
        theirs = _net(nt_stax, nt_act, depth, w, bias)[2]
        for a, b in ((x1, x2), (x1, None)):
            ref = theirs(a, b, ("nngp", "ntk"))
            got = ours(a, b, ("nngp", "ntk"))
            for g, r in ((got.nngp, ref.nngp), (got.ntk, ref.ntk)):
                r = np.asarray(r)
                if b is None:  # NT's diagonal angle is ill-conditioned (see test_fc_reference)
                    g, r = g[~np.eye(len(a), dtype=bool)], r[~np.eye(len(a), dtype=bool)]
                    g, r = g[None], r[None]
                worst = max(worst, rel_err(g, r))
    assert worst <= TOL["nt"], worst


def test_relu_helper_names_match_neural_tangents_signatures():
    """The same constructor calls work in both libraries (one-import switch)."""
    for lib in (stax, nt_stax):
        init_fn, apply_fn, kernel_fn = lib.serial(lib.Dense(16, W_std=1.5, b_std=0.1), lib.Relu(),
                                                  lib.Dense(1, W_std=1.5, b_std=0.1))
        k = kernel_fn(np.eye(3), None, "ntk")
        assert np.asarray(k).shape == (3, 3)


@pytest.mark.parametrize("name", ["Relu", "Abs", "LeakyRelu"])
def test_large_bias_free_calls_match_neural_tangents(name):
    """Large bias-free calls take the tabulated-angle path; still <= 1e-12 off the diagonal."""
    rng = np.random.default_rng(8)
    x1, x2 = rng.standard_normal((300, 10)), rng.standard_normal((200, 10))
    ours_act, nt_act = ACTIVATIONS[name]
    for depth in (3, 10, 25):
        got = _net(stax, ours_act, depth, 1.4, None)[2](x1, x2, ("nngp", "ntk"))
        ref = _net(nt_stax, nt_act, depth, 1.4, None)[2](x1, x2, ("nngp", "ntk"))
        assert rel_err(got.nngp, np.asarray(ref.nngp)) <= TOL["nt"]
        assert rel_err(got.ntk, np.asarray(ref.ntk)) <= TOL["nt"]
