"""Cross-checks of the convolutional NTK against neural-tangents (float64), when it is installed.

Networks are ``Conv(q x q, SAME) -> [act -> Conv] ... -> [act] -> Flatten | GlobalAvgPool
-> Dense``, built with the same constructor calls in both libraries; the inputs are
random normal NHWC images (general position).

Error metric (``_entry_errors``): entry by entry, ``|ours_ij - nt_ij| / scale_ij`` with
``scale_ij = max(|nt_ij|, sqrt(max_k |nt_ik| * max_k |nt_kj|))``, i.e. conftest.rel_err's
metric kept as a matrix so that the diagonal of a symmetric Gram can be bounded apart.
Every entry of ``kfn(x1, x2)`` and every off-diagonal entry of ``kfn(x, None)`` must be
within ``TOL["nt_cntk"]`` = 1e-11 (the issue's bar; measured: <= 2e-14 on the default grid, 4e-13 in the slow sweep,
typically 1e-15).

Where neural-tangents' own angle is ill-conditioned the bound is ``TOL["nt_colinear"]`` (1e-6):

* the diagonal of ``kfn(x, None)``: every covariance entry at equal pixels of one image
  has correlation 1 exactly. NT 0.6.5's ABRelu family (Relu, LeakyRelu, Abs, ABRelu) takes
  the angle as ``arctan2(sqrt(q q' - c^2), c)``; there ``q q' - c^2`` is a rounding residue
  of order 1e-16 q^2, so the angle comes out ~ sqrt(1e-16) ~ 1e-8 instead of 0, and the
  derivative kernel, linear in the angle, is off by ~1e-9..1e-8 per layer (measured: up to
  7.8e-9 on this file's default grid, 3.2e-8 in the slow sweep).
  ``test_against_literal_reference`` shows that NT, not ntkx, is off there: ntkx's
  diagonal matches tests/reference/cntk.py's literal ``nt_cntk`` (exact angle 0) to ``TOL["nt_cntk"]``.
  Erf has no angle (measured 1e-15 on the diagonal) but shares the bound.
* one channel with 1 x 1 filters and no bias: the first-layer covariance of every pixel
  pair is the product ``w^2 x_p x'_p'``, so every correlation is +-1 up to one rounding,
  for every pair of images, and with 1 x 1 filters it stays exactly +-1 or 0 after every
  ReLU layer. That is not general position: ntkx and the literal reference take exact
  layer-0 angles (NT is ~1e-9 off at depth 1), but from depth 2 on all three take the
  angle of a correlation rounded off +-1 and disagree pairwise by ~1e-9 (measured
  <= 2e-8 at depth 8); ``test_pixelwise_colinear_first_layer``.

neural-tangents 0.6.5's ``RectifiedMonomial`` evaluates ``(pi - t) / sin(t) * sin(t)`` at
``t = 0``: NaN on the diagonal of a symmetric call; with GlobalAvgPool its per-image 4-D
covariance holds equal-pixel entries, so from the second activation on NaN reaches every
entry (Flatten tracks only the pixel variances and stays finite). Those entries are not
compared with NT; ntkx's values there are checked against the literal reference.
"""

import numpy as np
import pytest

from conftest import HAS_NT, TOL

pytestmark = [pytest.mark.nt, pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")]

if HAS_NT:
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax as nt_stax

from ntkx import stax
from reference import cntk as cntk_ref
from reference import fc as fc_ref

#: Image shapes (P, Q) of the default tests: two square, one non-square. Few on purpose:
#: NT's first call at a new shape compiles (seconds), later calls take ~0.1 s.
SHAPES = [(4, 4), (5, 3), (6, 6)]
#: 3 images against 2 (NT sees the 5 stacked).
N1, N2 = 3, 2

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


def _compare(ours, theirs, x1, x2, diag=True, tol=TOL["nt_cntk"], diag_tol=TOL["nt_colinear"]):
    """Asserts ``ours(x1, x2)`` and ``ours(x1, None)`` (NNGP and NTK) against the blocks of
    NT's symmetric Gram of ``[x1; x2]`` (one NT call, one batch shape: JAX compiles per
    shape, which dominates this file's runtime). Returns the worst errors ``(general,
    diagonal)``; the diagonal of ``ours(x1, None)`` is bounded by `diag_tol`, or not
    compared when `diag` is False."""
    n1 = len(x1)
    ref = theirs(np.concatenate([x1, x2]), None, ("nngp", "ntk"))
    got12 = ours(x1, x2, ("nngp", "ntk"))
    got11 = ours(x1, None, ("nngp", "ntk"))
    on = np.eye(n1, dtype=bool)
    worst, worst_diag = 0.0, 0.0
    for name in ("nngp", "ntk"):
        r = np.asarray(getattr(ref, name))
        r12, r11 = r[:n1, n1:], r[:n1, :n1]
        assert np.all(np.isfinite(r12)) and np.all(np.isfinite(r11[~on])), f"neural-tangents {name}: non-finite"
        worst = max(worst, float(_entry_errors(getattr(got12, name), r12).max()))
        err11 = _entry_errors(getattr(got11, name), np.where(on & ~np.isfinite(r11), 0.0, r11))
        worst = max(worst, float(err11[~on].max()))
        if diag:
            assert np.all(np.isfinite(r11[on])), f"neural-tangents {name}: non-finite diagonal"
            worst_diag = max(worst_diag, float(err11[on].max()))
    assert worst <= tol, (worst, tol)
    assert worst_diag <= diag_tol, (worst_diag, diag_tol)
    return worst, worst_diag


def _grid_case(depth, q, bias):
    """Channels and image shape for a (depth, q, bias) cell, rotated so that C in {1, 3}
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
        x1, x2 = _images(100 * depth + q, N1, shape, C), _images(100 * depth + q + 50, N2, shape, C)
        for readout in ("flatten", "gap"):
            _compare(_net(stax, ours_act, depth, q, bias, readout),
                     _net(nt_stax, nt_act, depth, q, bias, readout), x1, x2)


@pytest.mark.parametrize("readout", ["flatten", "gap"])
@pytest.mark.parametrize("depth, q, C, shape, bias", [
    (1, 3, 3, (5, 3), None),  # no activation at all: a linear network
    (2, 5, 1, (4, 4), 0.1),
    (5, 3, 3, (6, 6), None),
])
def test_no_activation_after_last_conv(depth, q, C, shape, bias, readout):
    ours_act, nt_act, _ = ACTIVATIONS["Relu"]
    x1, x2 = _images(depth, N1, shape, C), _images(depth + 1, N2, shape, C)
    _compare(_net(stax, ours_act, depth, q, bias, readout, final_act=False),
             _net(nt_stax, nt_act, depth, q, bias, readout, final_act=False), x1, x2)


def _nt_all_nan(name, readout, n_act):
    """NT's RectifiedMonomial with GlobalAvgPool is NaN everywhere from the second
    activation on (module docstring): nothing to compare with."""
    return name.startswith("RectifiedMonomial") and readout == "gap" and n_act >= 2


#: (depth, q, final_act) of the activation tests: one to three activations, every q.
ACT_DEPTHS = [(1, 3, True), (2, 5, False), (3, 1, True)]


@pytest.mark.parametrize("bias", [None, 0.1], ids=["no_bias", "bias"])
@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "Relu"])
def test_activations_match_neural_tangents(name, bias):
    """Every other activation at small depth, vanilla and GAP (5 x 3 images, C = 3)."""
    ours_act, nt_act, _ = ACTIVATIONS[name]
    x1, x2 = _images(1, N1, (5, 3), 3), _images(2, N2, (5, 3), 3)
    for depth, q, final_act in ACT_DEPTHS:
        for readout in ("flatten", "gap"):
            if _nt_all_nan(name, readout, depth - 1 + final_act):
                continue  # checked against the literal reference below
            _compare(_net(stax, ours_act, depth, q, bias, readout, final_act),
                     _net(nt_stax, nt_act, depth, q, bias, readout, final_act), x1, x2,
                     diag=not name.startswith("RectifiedMonomial"))


@pytest.mark.parametrize("name, depth, q, C, shape, bias, readout", [
    ("Relu", 3, 3, 3, (5, 3), None, "flatten"),
    ("Relu", 8, 3, 3, (5, 3), 0.1, "flatten"),
    ("Relu", 5, 5, 1, (4, 4), None, "gap"),
    ("Abs", 4, 3, 1, (4, 4), None, "flatten"),
    ("LeakyRelu(0.1)", 4, 5, 3, (4, 4), None, "gap"),
    ("ABRelu(-0.3,0.7)", 2, 3, 3, (5, 3), 0.1, "gap"),
    ("Erf(0.7,1.3,0.2)", 3, 3, 3, (5, 3), None, "flatten"),
    ("RectifiedMonomial(2)", 2, 3, 3, (5, 3), 0.1, "gap"),
    ("RectifiedMonomial(2)", 3, 1, 3, (5, 3), None, "flatten"),
    ("RectifiedMonomial(0)", 3, 3, 1, (4, 4), None, "gap"),
])
def test_against_literal_reference(name, depth, q, C, shape, bias, readout):
    """ntkx's diagonal (identical images) and one off-diagonal pair match the literal 4-D
    reference to TOL["nt_cntk"]; NT's diagonal, where finite, is within TOL["nt_colinear"] of it (the
    justification of that bound), its off-diagonal pair within TOL["nt_cntk"]. Also covers what NT
    cannot compute (RectifiedMonomial's NaNs)."""
    ours_act, nt_act, ref_act = ACTIVATIONS[name]
    x = _images(7 * depth + q, N1 + N2, shape, C)
    pairs = [(i, i) for i in range(len(x))] + [(0, 1)]
    ref = {(i, j): cntk_ref.nt_cntk(x[i], x[j], ref_act, [(W_STD, bias or 0.0, q)] * depth, True,
                                    "gap" if readout == "gap" else "vanilla", W_OUT, bias or 0.0)
           for i, j in pairs}
    got = _net(stax, ours_act, depth, q, bias, readout)(x, None, ("nngp", "ntk"))
    nt = _net(nt_stax, nt_act, depth, q, bias, readout)(x, None, ("nngp", "ntk"))
    for k, kind in enumerate(("nngp", "ntk")):
        g, n = getattr(got, kind), np.asarray(getattr(nt, kind))
        for (i, j), r in ref.items():
            # Entries are positive here (a variance, or an NTK / NNGP of positive kernels).
            assert abs(g[i, j] - r[k]) <= TOL["nt_cntk"] * abs(r[k]), (kind, i, j, g[i, j], r[k])
            if np.isfinite(n[i, j]):
                bound = TOL["nt_colinear"] if i == j else TOL["nt_cntk"]
                assert abs(n[i, j] - r[k]) <= bound * abs(r[k]), (kind, i, j, n[i, j], r[k])


@pytest.mark.parametrize("readout", ["flatten", "gap"])
def test_pixelwise_colinear_first_layer(readout):
    """C = 1, q = 1, no bias: every first-layer correlation is +-1 up to a rounding, so
    NT and ntkx agree to TOL["nt_colinear"] only (module docstring), everywhere."""
    ours_act, nt_act, _ = ACTIVATIONS["Relu"]
    for depth, shape in ((1, (4, 4)), (4, (5, 3)), (8, (6, 6))):
        x1, x2 = _images(depth, N1, shape, 1), _images(depth + 1, N2, shape, 1)
        _compare(_net(stax, ours_act, depth, 1, None, readout),
                 _net(nt_stax, nt_act, depth, 1, None, readout), x1, x2, tol=TOL["nt_colinear"])


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["flatten", "gap"])
@pytest.mark.parametrize("bias", [None, 0.1], ids=["no_bias", "bias"])
@pytest.mark.parametrize("depth", range(1, 9))
def test_relu_full_grid(depth, bias, readout):
    """The full product of q, C and shapes (two square, two non-square) at each depth."""
    ours_act, nt_act, _ = ACTIVATIONS["Relu"]
    for q in (1, 3, 5):
        ours = _net(stax, ours_act, depth, q, bias, readout)
        theirs = _net(nt_stax, nt_act, depth, q, bias, readout)
        for C in (1, 3):
            tol = TOL["nt_colinear"] if (C == 1 and q == 1 and bias is None) else TOL["nt_cntk"]
            for shape in SHAPES + [(3, 5)]:
                x1, x2 = _images(depth + q + C, N1, shape, C), _images(depth + q + C + 1, N2, shape, C)
                _compare(ours, theirs, x1, x2, tol=tol)


@pytest.mark.slow
@pytest.mark.parametrize("bias", [None, 0.1], ids=["no_bias", "bias"])
@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "Relu"])
def test_activations_deep(name, bias):
    """Every activation at depths 1..8 with and without an activation after the last
    conv, q rotating through {1, 3, 5}, both readouts, square and non-square images."""
    ours_act, nt_act, _ = ACTIVATIONS[name]
    for shape in ((5, 3), (4, 4)):
        x1, x2 = _images(3, N1, shape, 3), _images(4, N2, shape, 3)
        for depth in range(1, 9):
            for final_act in (True, False):
                q = (1, 3, 5)[depth % 3]
                for readout in ("flatten", "gap"):
                    if _nt_all_nan(name, readout, depth - 1 + final_act):
                        continue
                    _compare(_net(stax, ours_act, depth, q, bias, readout, final_act),
                             _net(nt_stax, nt_act, depth, q, bias, readout, final_act), x1, x2,
                             diag=not name.startswith("RectifiedMonomial"))
