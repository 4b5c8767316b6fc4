"""Cross-checks of the convolutional NTK against neural-tangents (float64), when it is installed.

Networks are ``Conv(q x q, SAME) -> [act -> Conv] ... -> [act] -> Flatten | GlobalAvgPool
-> Dense``, built with the same constructor calls in both libraries; the inputs are
random normal NHWC images (general position).

Error metric (``_entry_errors``): entry by entry, ``|ours_ij - nt_ij| / scale_ij`` with
``scale_ij = max(|nt_ij|, sqrt(max_k |nt_ik| * max_k |nt_kj|))``, i.e. conftest.rel_err's
metric kept as a matrix so that the diagonal of a symmetric Gram can be bounded apart.
Every entry of ``kfn(x1, x2)`` and every off-diagonal entry of ``kfn(x, None)`` must be
within ``TOL = 1e-11`` (the issue's bar; measured: <= 3e-14, typically 1e-15).

Where neural-tangents' own angle is ill-conditioned the bound is ``NEAR_COLINEAR_TOL``:

* the diagonal of ``kfn(x, None)``: every covariance entry at equal pixels of one image
  has correlation 1 exactly, which NT evaluates as ``arccos(c / sqrt(q q'))`` of a cosine
  a few ulps below 1, i.e. an angle ~ sqrt(2 * 1e-16) ~ 1.5e-8 instead of 0. The arc-cosine
  derivative kernels (Relu, LeakyRelu, Abs, ABRelu) are linear in that angle, so NT's NTK
  there is off by ~1e-8 per layer (measured up to 5e-8 at depth 8 for Abs, 7.5e-9 for
  Relu); ``test_diagonal_against_literal_reference`` shows that it is NT, not ntkx, that
  is off: ntkx's diagonal matches tests/reference/cntk.py's literal ``nt_cntk`` to 1e-11.
* one channel with 1 x 1 filters and no bias: the first-layer covariance of every pixel
  pair is the product ``w^2 x_p x'_p'``, so every correlation is +-1 up to one rounding,
  for every pair of images. That is not general position: NT, ntkx and the literal
  reference each evaluate the arccos of a rounded +-1 and disagree pairwise by ~1e-9
  (measured <= 2e-8 at depth 8); ``test_pixelwise_colinear_first_layer`` covers it.

neural-tangents 0.6.5's ``RectifiedMonomial`` evaluates ``(pi - t) / sin(t) * sin(t)`` at
``t = 0``: NaN on the diagonal of a symmetric call; with GlobalAvgPool its per-image 4-D
covariance holds equal-pixel entries, so from the second activation on NaN reaches every
entry (Flatten tracks only the pixel variances and stays finite). Those entries are not
compared with NT; ntkx's values there are checked against the literal reference.
"""

import numpy as np
import pytest

from conftest import HAS_NT

pytestmark = [pytest.mark.nt, pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")]

if HAS_NT:
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax as nt_stax

from ntkx import stax
from reference import cntk as cntk_ref
from reference import fc as fc_ref

#: The issue's bar for inputs in general position.
TOL = 1e-11
#: NT's angle at a correlation that is exactly +-1 (see the module docstring).
NEAR_COLINEAR_TOL = 1e-6

SQUARE = [(4, 4), (6, 6)]
NON_SQUARE = [(5, 3), (3, 5)]
SHAPES = [SQUARE[0], NON_SQUARE[0], SQUARE[1], NON_SQUARE[1]]

# name -> (ntkx layer, neural-tangents layer, literal reference activation)
ACTIVATIONS = {
    "Relu": (lambda: stax.Relu(), lambda: nt_stax.Relu(), fc_ref.Relu()),
    "Erf(0.7,1.3,0.2)": (lambda: stax.Erf(0.7, 1.3, 0.2), lambda: nt_stax.Erf(0.7, 1.3, 0.2),
                         fc_ref.Erf(0.7, 1.3, 0.2)),
    "LeakyRelu(0.1)": (lambda: stax.LeakyRelu(0.1), lambda: nt_stax.LeakyRelu(0.1), fc_ref.LeakyRelu(0.1)),
    "Abs": (lambda: stax.Abs(), lambda: nt_stax.Abs(), fc_ref.Abs()),
    "ABRelu(-0.3,0.7)": (lambda: stax.ABRelu(-0.3, 0.7), lambda: nt_stax.ABRelu(-0.3, 0.7),
                         fc_ref.ABRelu(-0.3, 0.7)),
    "RectifiedMonomial(2)": (lambda: stax.RectifiedMonomial(2), lambda: nt_stax.RectifiedMonomial(2),
                             fc_ref.RectifiedMonomial(2)),
    "RectifiedMonomial(0)": (lambda: stax.RectifiedMonomial(0), lambda: nt_stax.RectifiedMonomial(0),
                             fc_ref.RectifiedMonomial(0)),
}

W_STD, W_OUT = 1.4, 1.3


def _net(lib, act, depth, q, b, readout, final_act=True, w=W_STD):
    """``depth`` convs (an activation after each but the last, and after the last too
    when `final_act`), the readout, then ``Dense(1)``; `b` on every conv and the Dense."""
    layers = []
    for i in range(depth):
        layers.append(lib.Conv(1, (q, q), padding="SAME", W_std=w, b_std=b))
        if i < depth - 1 or final_act:
            layers.append(act())
    layers.append(lib.GlobalAvgPool() if readout == "gap" else lib.Flatten())
    layers.append(lib.Dense(1, W_std=W_OUT, b_std=b))
    return lib.serial(*layers)[2]


def _images(seed, n, shape, C):
    return np.random.default_rng(seed).standard_normal((n, *shape, C))


def _entry_errors(got, ref):
    """conftest.rel_err's metric as a matrix (see the module docstring)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.all(np.isfinite(got)), "ntkx returned non-finite values"
    mag = np.abs(ref)
    scale = np.maximum(mag, np.sqrt(mag.max(axis=1, keepdims=True) * mag.max(axis=0, keepdims=True)))
    return np.abs(got - ref) / np.maximum(scale, 1e-300)


def _compare(ours, theirs, x1, x2, diag=True, tol=TOL, diag_tol=NEAR_COLINEAR_TOL):
    """Asserts ntkx's NNGP and NTK against NT's for one call; returns the worst errors
    ``(general, diagonal)`` (the diagonal of a symmetric call is bounded by `diag_tol`,
    or not compared when `diag` is False)."""
    got = ours(x1, x2, ("nngp", "ntk"))
    ref = theirs(x1, x2, ("nngp", "ntk"))
    worst, worst_diag = 0.0, 0.0
    for name in ("nngp", "ntk"):
        g, r = getattr(got, name), np.asarray(getattr(ref, name))
        if x2 is None:
            on = np.eye(len(x1), dtype=bool)
            assert np.all(np.isfinite(r[~on])), f"neural-tangents {name}: non-finite off the diagonal"
            err = _entry_errors(g, np.where(on, np.where(np.isfinite(r), r, 0.0), r))
            worst = max(worst, float(err[~on].max()))
            if diag:
                assert np.all(np.isfinite(r[on])), f"neural-tangents {name}: non-finite diagonal"
                worst_diag = max(worst_diag, float(err[on].max()))
        else:
            assert np.all(np.isfinite(r)), f"neural-tangents {name}: non-finite values"
            worst = max(worst, float(_entry_errors(g, r).max()))
    assert worst <= tol, (worst, tol)
    assert worst_diag <= diag_tol, (worst_diag, diag_tol)
    return worst, worst_diag


def _grid_case(depth, q, bias):
    """Channels and image shape for a (depth, q, bias) cell: rotated so that C in {1, 3}
    and the square / non-square shapes each meet every depth, filter size and bias."""
    k = depth + q // 2
    C = (1, 3)[k % 2]
    if C == 1 and q == 1 and bias is None:
        C = 3  # pixelwise colinear first layer, not general position: its own test below
    shape = SHAPES[(k + (bias is not None)) % len(SHAPES)]
    return C, shape


@pytest.mark.parametrize("bias", [None, 0.1], ids=["no_bias", "bias"])
@pytest.mark.parametrize("depth", range(1, 9))
def test_relu_cntk_matches_neural_tangents(depth, bias):
    """Relu after every conv, q in {1, 3, 5}, vanilla and GAP, x1 vs x2 and x vs itself."""
    ours_act, nt_act, _ = ACTIVATIONS["Relu"]
    for q in (1, 3, 5):
        C, shape = _grid_case(depth, q, bias)
        x1 = _images(100 * depth + q, 3, shape, C)
        x2 = _images(100 * depth + q + 50, 2, shape, C)
        for readout in ("flatten", "gap"):
            ours = _net(stax, ours_act, depth, q, bias, readout)
            theirs = _net(nt_stax, nt_act, depth, q, bias, readout)
            _compare(ours, theirs, x1, x2)
            _compare(ours, theirs, x1, None)


@pytest.mark.parametrize("readout", ["flatten", "gap"])
@pytest.mark.parametrize("depth, q, C, shape, bias", [
    (1, 3, 3, (5, 3), None),  # no activation at all: a linear network
    (2, 5, 1, (4, 4), 0.1),
    (5, 3, 3, (3, 5), None),
])
def test_no_activation_after_last_conv(depth, q, C, shape, bias, readout):
    ours_act, nt_act, _ = ACTIVATIONS["Relu"]
    x1, x2 = _images(depth, 3, shape, C), _images(depth + 1, 2, shape, C)
    ours = _net(stax, ours_act, depth, q, bias, readout, final_act=False)
    theirs = _net(nt_stax, nt_act, depth, q, bias, readout, final_act=False)
    _compare(ours, theirs, x1, x2)
    _compare(ours, theirs, x1, None)


# (depth, q, final_act): one to three activations, every filter size.
ACT_DEPTHS = [(1, 3, True), (2, 5, False), (3, 1, True)]


@pytest.mark.parametrize("bias", [None, 0.1], ids=["no_bias", "bias"])
@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "Relu"])
def test_activations_match_neural_tangents(name, bias):
    """Every other activation at small depth, C = 3, one non-square and one square shape."""
    ours_act, nt_act, _ = ACTIVATIONS[name]
    monomial = name.startswith("RectifiedMonomial")
    for shape in ((5, 3), (4, 4)):
        x1, x2 = _images(1, 3, shape, 3), _images(2, 2, shape, 3)
        for depth, q, final_act in ACT_DEPTHS:
            n_act = depth - 1 + final_act
            for readout in ("flatten", "gap"):
                ours = _net(stax, ours_act, depth, q, bias, readout, final_act)
                theirs = _net(nt_stax, nt_act, depth, q, bias, readout, final_act)
                if monomial and readout == "gap" and n_act >= 2:
                    continue  # NT is NaN everywhere (module docstring); see the reference test
                _compare(ours, theirs, x1, x2)
                _compare(ours, theirs, x1, None, diag=not monomial)


@pytest.mark.parametrize("name, depth, q, C, shape, bias, readout", [
    ("Relu", 3, 3, 3, (5, 3), None, "flatten"),
    ("Relu", 8, 3, 3, (3, 5), 0.1, "flatten"),
    ("Abs", 4, 3, 1, (4, 4), None, "flatten"),
    ("LeakyRelu(0.1)", 4, 5, 3, (4, 4), None, "gap"),
    ("ABRelu(-0.3,0.7)", 2, 3, 3, (5, 3), 0.1, "gap"),
    ("RectifiedMonomial(2)", 2, 3, 3, (3, 5), 0.1, "gap"),
    ("RectifiedMonomial(0)", 3, 3, 1, (4, 4), None, "gap"),
])
def test_diagonal_against_literal_reference(name, depth, q, C, shape, bias, readout):
    """ntkx's diagonal (identical images) matches the literal 4-D reference to TOL; NT's,
    where finite, is within NEAR_COLINEAR_TOL of it (the justification of that bound)."""
    ours_act, nt_act, ref_act = ACTIVATIONS[name]
    x = _images(7 * depth + q, 2, shape, C)
    ref = np.array([[cntk_ref.nt_cntk(xi, xj, ref_act, [(W_STD, bias or 0.0, q)] * depth, True,
                                      "gap" if readout == "gap" else "vanilla", W_OUT, bias or 0.0)
                     for xj in x] for xi in x])
    got = _net(stax, ours_act, depth, q, bias, readout)(x, None, ("nngp", "ntk"))
    nt = _net(nt_stax, nt_act, depth, q, bias, readout)(x, None, ("nngp", "ntk"))
    for k, name_k in enumerate(("nngp", "ntk")):
        r = ref[:, :, k]
        assert _entry_errors(getattr(got, name_k), r).max() <= TOL
        n = np.asarray(getattr(nt, name_k))
        finite = np.isfinite(n)
        if finite.any():
            assert _entry_errors(np.where(finite, n, r), r).max() <= NEAR_COLINEAR_TOL


@pytest.mark.parametrize("readout", ["flatten", "gap"])
def test_pixelwise_colinear_first_layer(readout):
    """C = 1, q = 1, no bias: every first-layer correlation is +-1 up to a rounding, so
    NT and ntkx agree to NEAR_COLINEAR_TOL only (module docstring), everywhere."""
    ours_act, nt_act, _ = ACTIVATIONS["Relu"]
    for depth, shape in ((1, (4, 4)), (4, (5, 3)), (8, (4, 4))):
        x1, x2 = _images(depth, 3, shape, 1), _images(depth + 1, 2, shape, 1)
        ours = _net(stax, ours_act, depth, 1, None, readout)
        theirs = _net(nt_stax, nt_act, depth, 1, None, readout)
        _compare(ours, theirs, x1, x2, tol=NEAR_COLINEAR_TOL)
        _compare(ours, theirs, x1, None, tol=NEAR_COLINEAR_TOL)


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["flatten", "gap"])
@pytest.mark.parametrize("bias", [None, 0.1], ids=["no_bias", "bias"])
@pytest.mark.parametrize("depth", range(1, 9))
def test_relu_full_grid(depth, bias, readout):
    """The full Cartesian product of q, C and shape (square and non-square) at each depth."""
    ours_act, nt_act, _ = ACTIVATIONS["Relu"]
    for q in (1, 3, 5):
        ours = _net(stax, ours_act, depth, q, bias, readout)
        theirs = _net(nt_stax, nt_act, depth, q, bias, readout)
        for C in (1, 3):
            tol = NEAR_COLINEAR_TOL if (C == 1 and q == 1 and bias is None) else TOL
            for shape in SQUARE + NON_SQUARE:
                x1, x2 = _images(depth + q + C, 4, shape, C), _images(depth + q + C + 1, 3, shape, C)
                _compare(ours, theirs, x1, x2, tol=tol)
                _compare(ours, theirs, x1, None, tol=tol)


@pytest.mark.slow
@pytest.mark.parametrize("bias", [None, 0.1], ids=["no_bias", "bias"])
@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "Relu"])
def test_activations_deep(name, bias):
    """Every activation at depths 1..8, q in {1, 3, 5}, both readouts, with and without
    an activation after the last conv."""
    ours_act, nt_act, _ = ACTIVATIONS[name]
    monomial = name.startswith("RectifiedMonomial")
    x1, x2 = _images(3, 3, (5, 3), 3), _images(4, 2, (5, 3), 3)
    for depth in range(1, 9):
        for final_act in (True, False):
            n_act = depth - 1 + final_act
            q = (1, 3, 5)[depth % 3]
            for readout in ("flatten", "gap"):
                if monomial and readout == "gap" and n_act >= 2:
                    continue  # NT is NaN everywhere (module docstring)
                ours = _net(stax, ours_act, depth, q, bias, readout, final_act)
                theirs = _net(nt_stax, nt_act, depth, q, bias, readout, final_act)
                _compare(ours, theirs, x1, x2)
                _compare(ours, theirs, x1, None, diag=not monomial)
