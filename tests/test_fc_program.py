"""General FC compositions (the register program of csrc/ntkx/math/fc_program.h):
per-layer activations, residual and multi-branch blocks, FanInConcat.

Checked against the literal per-pair interpreter of tests/reference/fc.py
(`graph_kernels`), against the homogeneous fused path where both apply, against the
finite network at large width, and for the inputs and networks it must refuse.
neural-tangents' agreement is in test_stax_compat.py (its NETWORKS)."""

from __future__ import annotations

import numpy as np
import pytest

import ntkx
from ntkx import stax
from ntkx._src.fc_program import LAYER, SUM, compile_program
from conftest import TOL, finite_nngp, rel_err
from reference import activations as ref_act
from reference import fc as ref

RELU, ERF = ref.Relu(), ref.Erf()


def _block(s, act, w, b, width=6):
    """A residual block in ntkx's stax, and the same block as reference ops."""
    layer = s.serial(s.FanOut(2), s.parallel(s.serial(act[0], s.Dense(width, W_std=w, b_std=b)), s.Identity()),
                     s.FanInSum())
    ops = [("fanout", 2), ("parallel", [[("act", act[1]), ("dense", w, b, width)], []]), ("sum",)]
    return layer, ops


def _residual(n_blocks, w=1.3, b=0.2, width=6):
    layers, ops = [stax.Dense(width, W_std=1.1, b_std=b)], [("dense", 1.1, b, width)]
    for k in range(n_blocks):
        act = (stax.Relu(), RELU) if k % 2 == 0 else (stax.Erf(0.8, 1.2, 0.1), ref.Erf(0.8, 1.2, 0.1))
        layer, o = _block(stax, act, w, b, width)
        layers.append(layer)
        ops += o
    layers += [stax.Relu(), stax.Dense(1, W_std=0.9, b_std=b)]
    ops += [("act", RELU), ("dense", 0.9, b, 1)]
    return stax.serial(*layers), ops


NETS = {
    "mixed": (stax.serial(stax.Dense(6, W_std=1.4, b_std=0.3), stax.Relu(), stax.Dense(6, W_std=0.8),
                          stax.Erf(1.3, 0.7, 0.2), stax.Dense(6, b_std=0.5), stax.ABRelu(-0.3, 1.7),
                          stax.Dense(6, W_std=1.2), stax.RectifiedMonomial(2), stax.Dense(1, W_std=1.1)),
              [("dense", 1.4, 0.3, 6), ("act", RELU), ("dense", 0.8, 0.0, 6), ("act", ref.Erf(1.3, 0.7, 0.2)),
               ("dense", 1.0, 0.5, 6), ("act", ref.ABRelu(-0.3, 1.7)), ("dense", 1.2, 0.0, 6),
               ("act", ref.RectifiedMonomial(2)), ("dense", 1.1, 0.0, 1)]),
    "residual": _residual(4),
    "residual_bias_free": _residual(3, b=0.0),
    "concat_unequal": (
        stax.serial(stax.Dense(6, W_std=1.1, b_std=0.3), stax.FanOut(3),
                    stax.parallel(stax.serial(stax.Relu(), stax.Dense(4, W_std=1.3)),
                                  stax.serial(stax.Erf(), stax.Dense(12, b_std=0.5)), stax.Identity()),
                    stax.FanInConcat(), stax.Dense(1, W_std=1.2, b_std=0.1)),
        [("dense", 1.1, 0.3, 6), ("fanout", 3),
         ("parallel", [[("act", RELU), ("dense", 1.3, 0.0, 4)], [("act", ERF), ("dense", 1.0, 0.5, 12)], []]),
         ("concat",), ("dense", 1.2, 0.1, 1)]),
    "nested_ends_in_act": (
        stax.serial(stax.Dense(6, W_std=1.5), stax.FanOut(2),
                    stax.parallel(stax.serial(stax.Abs(), stax.Dense(6), stax.FanOut(3),
                                              stax.parallel(stax.Identity(),
                                                            stax.serial(stax.Relu(), stax.Dense(6, b_std=0.4)),
                                                            stax.serial(stax.Erf(), stax.Dense(6, W_std=0.7))),
                                              stax.FanInSum()),
                                  stax.Dense(6, W_std=0.6, b_std=0.2)),
                    stax.FanInSum(), stax.LeakyRelu(0.1)),
        [("dense", 1.5, 0.0, 6), ("fanout", 2),
         ("parallel", [[("act", ref.Abs()), ("dense", 1.0, 0.0, 6), ("fanout", 3),
                        ("parallel", [[], [("act", RELU), ("dense", 1.0, 0.4, 6)],
                                      [("act", ERF), ("dense", 0.7, 0.0, 6)]]), ("sum",)],
                       [("dense", 0.6, 0.2, 6)]]),
         ("sum",), ("act", ref.LeakyRelu(0.1))]),
    "step_branch_after_concat": (
        stax.serial(stax.Dense(6, b_std=0.1), stax.FanOut(2),
                    stax.parallel(stax.serial(stax.RectifiedMonomial(0), stax.Dense(6)), stax.Dense(6, W_std=2.0)),
                    stax.FanInConcat(), stax.Dense(6, W_std=1.2, b_std=0.2), stax.Relu()),
        [("dense", 1.0, 0.1, 6), ("fanout", 2),
         ("parallel", [[("act", ref.RectifiedMonomial(0)), ("dense", 1.0, 0.0, 6)], [("dense", 2.0, 0.0, 6)]]),
         ("concat",), ("dense", 1.2, 0.2, 6), ("act", RELU)]),
}


@pytest.mark.parametrize("net", sorted(NETS))
def test_matches_literal_reference(rng, net):
    layer, ops = NETS[net]
    x1 = rng.standard_normal((5, 4))
    x1[1] = 0.0  # a zero row: every variance of the bias-free path is 0 there
    x2 = rng.standard_normal((3, 4)) * np.array([[1.0], [30.0], [0.02]])
    for a, b in ((x1, x2), (x1, None)):
        k = layer[2](a, b, ("nngp", "ntk"))
        nngp, ntk = ref.graph_kernels(a, b, ops)
        assert rel_err(k.nngp, nngp) <= TOL["reference"], net
        assert rel_err(k.ntk, ntk) <= TOL["reference"], net
        if b is None:
            assert np.array_equal(k.ntk, k.ntk.T)
    # one kernel alone, and float32 output
    got = layer[2](x1, x2, "ntk", dtype=np.float32)
    assert got.dtype == np.float32 and rel_err(got, ref.graph_kernels(x1, x2, ops)[1]) <= TOL["float32"]


def test_program_is_small_and_fused():
    """A deep residual network needs a handful of registers, and each activation that
    feeds one Dense is one LAYER op (one pass over the chunk)."""
    layer, _ = _residual(50)
    prog = compile_program(layer_ops(layer), 4)
    kinds = prog.ops_i[:, 0]
    assert prog.nreg <= 3
    assert int(np.sum(kinds == LAYER)) == 51  # 50 blocks and the readout
    assert int(np.sum(kinds == SUM)) == 50


def layer_ops(layer):
    from ntkx._src.stax import Layer

    assert isinstance(layer, Layer)
    return list(layer.ops)


def test_program_path_matches_homogeneous_path_on_tiled_inputs(rng):
    """A plain net run through the program (compiled directly) equals the fused
    homogeneous recursion on enough rows for several tiles and column chunks."""
    x1, x2 = rng.standard_normal((700, 20)), rng.standard_normal((300, 20))
    net = stax.serial(stax.Dense(8, W_std=1.3, b_std=0.2), stax.repeat(stax.serial(stax.Relu(),
                                                                                  stax.Dense(8, W_std=1.3,
                                                                                             b_std=0.2)), 4))
    prog = compile_program(layer_ops(net), 20)
    spec = ntkx.FcSpec(4, 1.3, 0.2)
    for a, b in ((x1, x2), (x1, None)):
        want = ntkx.fc_kernels(a, b, spec, device="cpu")
        for kw in ({}, {"threads": 1}, {"memory_budget": 1 << 20}):
            got = ntkx.fc_kernels(a, b, prog, device="cpu", **kw)
            assert rel_err(got.nngp, want.nngp) <= TOL["route"]
            assert rel_err(got.ntk, want.ntk) <= TOL["route"]


def test_matches_finite_network_at_large_width(rng):
    """The NNGP of a residual net with an unequal-width concat is the per-channel
    covariance of the finite network's outputs: width 512, 1024 outputs, 32 draws
    (measured 1.6-4.7% max error over six seed sets; dropping the skip moves the
    kernel by 41%, weighting the concat's branches equally by 30%)."""
    width = 512
    net = stax.serial(stax.Dense(width, W_std=1.2, b_std=0.1), stax.FanOut(2),
                      stax.parallel(stax.serial(stax.Relu(), stax.Dense(width, W_std=1.4, b_std=0.2)),
                                    stax.Identity()),
                      stax.FanInSum(), stax.FanOut(2),
                      stax.parallel(stax.serial(stax.Erf(), stax.Dense(width)), stax.Dense(width // 2)),
                      stax.FanInConcat(), stax.Dense(width, W_std=1.3), stax.Relu(), stax.Dense(1024, W_std=1.1))
    x = rng.standard_normal((4, 6))
    assert net[0](0, x.shape)[0] == (4, 1024)
    emp = finite_nngp(net, x, 32)
    k = net[2](x, None, "nngp")
    assert np.max(np.abs(emp - k)) / np.max(np.abs(k)) <= 0.1


def test_finite_forward_of_a_block_is_the_literal_computation(rng):
    net = stax.serial(stax.Dense(5, W_std=1.3, b_std=0.4), stax.FanOut(2),
                      stax.parallel(stax.serial(stax.Relu(), stax.Dense(5)), stax.Identity()), stax.FanInSum(),
                      stax.FanOut(2), stax.parallel(stax.Dense(3), stax.Dense(2, b_std=0.0)), stax.FanInConcat())
    init_fn, apply_fn, _ = net
    x = rng.standard_normal((7, 4))
    shape, params = init_fn(3, (-1, 4))
    assert shape == (-1, 5)
    (w0, b0), _, branches, _, _, heads, _ = params
    h = x @ w0 * (1.3 / np.sqrt(4)) + 0.4 * b0
    (_, (w1, b1)), ident = branches
    assert ident == []
    assert b1 is None
    h = h + np.maximum(h, 0) @ w1 / np.sqrt(5)
    (((w2, b2),), ((w3, b3),)) = heads
    assert b2 is None and b3 is not None
    want = np.concatenate([h @ w2 / np.sqrt(5), h @ w3 / np.sqrt(5)], axis=-1)
    np.testing.assert_allclose(apply_fn(params, x), want, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="one parameter list per branch"):
        apply_fn(params[:2] + [branches[:1]] + params[3:], x)
    # params of another network whose entries fit: apply_fn checks the structure itself
    # (it summed the rows of the one array a FanInSum got, and zip truncated branches)
    _, serial_params = stax.serial(stax.Dense(4), stax.Relu())[0](0, x.shape)
    with pytest.raises(ValueError, match="needs a list of inputs"):
        stax.serial(stax.Dense(4), stax.FanInSum())[1](serial_params, x)
    readout = stax.serial(net, stax.Dense(1))
    with pytest.raises(NotImplementedError, match="serial networks"):
        stax.empirical_kernels(readout, readout[0](0, x.shape)[1], x)


def test_scales_are_carried_in_logs(rng):
    """Rows of scale 1e150 and 1e-150: a bias-free ReLU residual net is 2-homogeneous,
    so its kernels scale exactly; no overflow to inf or NaN in the program's pass."""
    net = stax.serial(stax.Dense(6), stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Dense(6)),
                                                                  stax.Identity()),
                      stax.FanInSum(), stax.Relu(), stax.Dense(1))
    x = rng.standard_normal((4, 3))
    base = net[2](x, None, ("nngp", "ntk"))
    for s in (1e150, 1e-150):
        k = net[2](x * s, x, ("nngp", "ntk"))
        cross = net[2](x, x, ("nngp", "ntk"))
        assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
        assert rel_err(k.nngp, s * cross.nngp) <= TOL["homogeneity"]
        assert rel_err(k.ntk, s * cross.ntk) <= TOL["homogeneity"]
    assert rel_err(cross.ntk, base.ntk) <= TOL["route"]


def test_refusals_name_what_runs(rng):
    x = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match="must be Gaussian"):  # as neural-tangents
        stax.serial(stax.FanOut(2), stax.parallel(stax.Relu(), stax.Identity()), stax.FanInSum())[2](x)
    with pytest.raises(ValueError, match="must be Gaussian"):  # a concat is followed by a Dense only
        stax.serial(stax.Dense(4), stax.FanOut(2), stax.FanInConcat(), stax.Relu())[2](x)
    with pytest.raises(ValueError, match="must be Gaussian"):  # even a concat of one input (as neural-tangents)
        stax.serial(stax.Dense(4), stax.FanOut(1), stax.parallel(stax.Identity()), stax.FanInConcat(),
                    stax.Relu())[2](x)
    with pytest.raises(ValueError, match="one width"):
        stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Dense(3), stax.Dense(5)),
                    stax.FanInSum())[2](x)
    with pytest.raises(NotImplementedError, match="ends in 2 branches"):
        stax.serial(stax.Dense(4), stax.FanOut(2))[2](x)
    with pytest.raises(ValueError, match="parallel has 3 layers for 2 inputs"):
        stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Identity(), stax.Identity(),
                                                                 stax.Identity()), stax.FanInSum())[2](x)
    with pytest.raises(NotImplementedError, match="channel axis"):
        stax.serial(stax.Dense(4), stax.FanOut(2), stax.FanInConcat(axis=0), stax.Dense(1))[2](x)
    residual = NETS["residual"][0]
    with pytest.raises(NotImplementedError, match="CPU backend only"):
        residual[2](x, None, "ntk", device="cuda")
    with pytest.raises(ValueError, match="NaN|finite"):
        residual[2](np.where(np.eye(3, 4) > 0, np.nan, x), None, "ntk")
    for bad in (0, -1, 2.5, True):
        with pytest.raises((ValueError, TypeError)):
            stax.FanOut(bad)
    with pytest.raises(TypeError, match="not an ntkx.stax layer"):
        stax.parallel(stax.Dense(2), lambda x: x)


def test_erf_limits_are_checked_per_point(rng):
    """Erf's float64 limits are refused by the program's per-point pass, as by the
    homogeneous path: an input variance that underflows, and an NTK past MAX_ERF_T."""
    x = rng.standard_normal((3, 4))
    tiny = stax.serial(stax.Dense(4, W_std=1e-200), stax.Erf(), stax.Dense(4), stax.Relu(), stax.Dense(1))
    with pytest.raises(ValueError, match="underflows float64"):
        tiny[2](x, None, "nngp")
    huge = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(4, W_std=1e6), stax.Erf(), stax.Dense(1))
    with pytest.raises(ValueError, match="loses float64 accuracy"):
        huge[2](x, None, "ntk")
    k = huge[2](x, None, "nngp")  # the NNGP is exact there
    assert np.all(np.isfinite(k))


@pytest.mark.parametrize("case", ["relu_residual", "mixed_degrees_in_a_sum", "relu_requ_serial"])
def test_angle_table_of_bias_free_programs(rng, case):
    """With many pairs, a bias-free program whose per-point weights are the same at every
    point runs as a table of the input angle (cpu/angle_table.h); where a SUM mixes
    homogeneity degrees (ReQU against a skip) the weights differ per point and the ops
    are interpreted. Either way the values are the interpreter's: compared with calls
    too small for the table (600 x 60 < AngleTable::pays), with a zero row and rows
    scaled by 1e3 and 1e-3."""
    width = 8
    relu_block = stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Dense(width, W_std=1.4),
                                                                        stax.Relu(), stax.Dense(width)),
                                                            stax.Identity()), stax.FanInSum())
    nets = {
        "relu_residual": stax.serial(stax.Dense(width), stax.repeat(relu_block, 4), stax.Relu(), stax.Dense(1)),
        "mixed_degrees_in_a_sum": stax.serial(stax.Dense(width), stax.FanOut(2),
                                              stax.parallel(stax.serial(stax.RectifiedMonomial(2), stax.Dense(width)),
                                                            stax.Identity()),
                                              stax.FanInSum(), stax.Relu(), stax.Dense(width), stax.Relu(),
                                              stax.Dense(1)),
        "relu_requ_serial": stax.serial(stax.Dense(width), stax.Relu(), stax.Dense(width, W_std=1.3),
                                        stax.RectifiedMonomial(2), stax.Dense(width), stax.LeakyRelu(0.2),
                                        stax.Dense(width), stax.Abs(), stax.Dense(1)),
    }
    x = rng.standard_normal((600, 10))
    x[7] = 0.0
    x[11] *= 1e3
    x[13] *= 1e-3
    kernel_fn = nets[case][2]
    full = kernel_fn(x, None, ("nngp", "ntk"))
    part = kernel_fn(x, x[:60], ("nngp", "ntk"))
    for g in ("nngp", "ntk"):
        assert rel_err(getattr(full, g)[:, :60], getattr(part, g)) <= TOL["reference"], g
        assert np.all(getattr(full, g)[7] == 0.0)
    cross = kernel_fn(x, x[::-1], "ntk")  # the cross path (two sides' slots checked)
    assert rel_err(cross, full.ntk[:, ::-1]) <= TOL["reference"]


def test_a_leading_flatten_is_found_through_repeats(rng):
    """Flatten() first counts where the network expands to it first: not inside a repeat of
    0 (whose layers are not in the network), and after repeats that expand to nothing."""
    x = rng.standard_normal((4, 6))
    body = [stax.Dense(8, W_std=2.0), stax.Dense(8), stax.Relu(), stax.Dense(8), stax.Erf(), stax.Dense(1)]
    ref = stax.serial(*body)[2](x, None, ("nngp", "ntk"))
    got = stax.serial(stax.repeat(stax.Flatten(), 0), *body)[2](x, None, ("nngp", "ntk"))
    assert rel_err(got.ntk, ref.ntk) <= TOL["route"] and rel_err(got.nngp, ref.nngp) <= TOL["route"]
    images = x.reshape(4, 2, 3, 1)
    got = stax.serial(stax.repeat(stax.Identity(), 2), stax.Flatten(), *body)[2](images, None, ("nngp", "ntk"))
    assert rel_err(got.ntk, ref.ntk) <= TOL["route"] and rel_err(got.nngp, ref.nngp) <= TOL["route"]
    got = stax.serial(stax.repeat(stax.serial(stax.Flatten(), stax.Dense(8, W_std=2.0)), 1), *body[1:])[2](
        images, None, ("nngp", "ntk"))
    assert rel_err(got.ntk, ref.ntk) <= TOL["route"]


def _standard_net(s, std="standard"):
    """A standard-parameterization residual net (layers and literal ops), one Dense in NTK form."""
    layers = s.serial(s.Dense(16, W_std=1.3, b_std=0.2, parameterization=std), s.FanOut(2),
                      s.parallel(s.serial(s.Relu(), s.Dense(16, W_std=1.4, b_std=0.0, parameterization=std)),
                                 s.Identity()),
                      s.FanInSum(), s.Gelu(), s.Dense(8, W_std=0.9), s.Erf(), s.Dense(1, parameterization=std))
    ops = [("dense", 1.3, 0.2, 16, std), ("fanout", 2),
           ("parallel", [[("act", ref.Relu()), ("dense", 1.4, 0.0, 16, std)], []]), ("sum",),
           ("act", ref_act.gelu()), ("dense", 0.9, None, 8), ("act", ref.Erf()), ("dense", 1.0, None, 1, std)]
    return layers, ops


def test_standard_parameterization_matches_the_reference(rng):
    """parameterization='standard' (Theta' = w^2 Theta + n_in K + 1[bias]) against the literal
    recursion, cross and symmetric, including a zero row (no bias on it: b_std=None)."""
    layers, ops = _standard_net(stax)
    x = rng.standard_normal((5, 6)) * 0.6  # Gelu's quadrature (the reference) is at round-off for q <~ 4
    k = layers[2](x, None, ("nngp", "ntk"))
    nngp_ref, ntk_ref = ref.graph_kernels(x, None, ops)
    assert rel_err(k.nngp, nngp_ref) <= TOL["quadrature"]
    assert rel_err(k.ntk, ntk_ref) <= TOL["quadrature"]
    cross = layers[2](x[:2], x[1:], "ntk")
    assert rel_err(cross, ntk_ref[:2, 1:]) <= TOL["quadrature"]
    ntk_form = stax.serial(stax.Dense(16, W_std=1.3, b_std=0.2), stax.FanOut(2),
                           stax.parallel(stax.serial(stax.Relu(), stax.Dense(16, W_std=1.4, b_std=0.0)), stax.Identity()),
                           stax.FanInSum(), stax.Gelu(), stax.Dense(8, W_std=0.9), stax.Erf(), stax.Dense(1))
    assert np.array_equal(ntk_form[2](x, None, "nngp"), k.nngp)  # the NNGP does not depend on it
    assert rel_err(ntk_form[2](x, None, "ntk"), k.ntk) > 0.5  # the NTK does (n_in = 6 and 16)
    zero = np.vstack([x, np.zeros(6)])
    plain = stax.serial(stax.Dense(8, W_std=1.2, parameterization="standard"), stax.Relu(),
                        stax.Dense(1, parameterization="standard"))
    kz = plain[2](zero, None, "ntk")
    ref_z = ref.graph_kernels(zero, None, [("dense", 1.2, None, 8, "standard"), ("act", ref.Relu()),
                                       ("dense", 1.0, None, 1, "standard")])[1]
    assert np.all(np.isfinite(kz)) and rel_err(kz, ref_z) <= TOL["reference"]
    with pytest.raises(ValueError, match="b_std = 0"):  # Theta = 1 over K = 0 at the zero row
        stax.serial(stax.Dense(8, b_std=0.0, parameterization="standard"), stax.Relu(), stax.Dense(1))[2](
            zero, None, "ntk")


def test_standard_parameterization_matches_the_finite_network(rng):
    """The analytic standard-parameterization NTK is the empirical NTK of the finite network at its
    widths (width 512, 6 draws averaged, within 10%: it grows with the width, so a kernel that
    ignored n_in would be off by orders of magnitude)."""
    width = 512
    net = stax.serial(stax.Dense(width, W_std=1.3, b_std=0.2, parameterization="standard"), stax.Relu(),
                      stax.Dense(width, W_std=1.2, b_std=0.1, parameterization="standard"), stax.Erf(),
                      stax.Dense(1, W_std=1.1, parameterization="standard"))
    x = rng.standard_normal((3, 5))
    emp = np.zeros((3, 3))
    for seed in range(6):
        _, params = net[0](seed, x.shape)
        emp += stax.empirical_kernels(net, params, x).ntk / 6
    k = net[2](x, None, "ntk")
    assert np.max(np.abs(emp - k)) / np.max(np.abs(k)) <= 0.1
