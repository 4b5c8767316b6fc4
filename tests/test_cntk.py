"""The convolutional NTK against the literal 4-D references, across backends, and on bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ntkx
from ntkx import _core, stax
from ntkx._src.cntk import CntkSpec, ConvLayer
from ntkx._src.fc import Activation

from conftest import TOL, rel_err
from reference import cntk as ref

#: literal [P,Q,P,Q] reference vs the slice recursion: the same formulas, other order
#: of the patch sums and of the readout sum.
TOL_REF = 1e-13

ACTS = {
    "relu": (Activation("abrelu", 0.0, 1.0, 0.0, "Relu"), "relu"),
    "leaky": (Activation("abrelu", 0.1, 1.0, 0.0, "LeakyRelu"), {"name": "abrelu", "a": 0.1, "b": 1.0}),
    "abs": (Activation("abrelu", -1.0, 1.0, 0.0, "Abs"), {"name": "abrelu", "a": -1.0, "b": 1.0}),
    "erf": (Activation("erf", 0.8, 1.3, 0.1, "Erf"), {"name": "erf", "a": 0.8, "b": 1.3, "c": 0.1}),
    "step": (Activation("arccos0", name="step"), {"name": "rectified_monomial", "degree": 0}),
    "requ": (Activation("arccos2", name="requ"), {"name": "rectified_monomial", "degree": 2}),
}


def reference_grams(x1, x2, spec: CntkSpec, ref_act):
    convs = [(c.w_std, c.b_std, c.filt) for c in spec.convs]
    n = np.zeros((len(x1), len(x2)))
    t = np.zeros_like(n)
    for i in range(len(x1)):
        for j in range(len(x2)):
            n[i, j], t[i, j] = ref.nt_cntk(x1[i], x2[j], ref_act, convs, spec.final_act, spec.readout,
                                           spec.out_w_std, spec.out_b_std, spec.train_first, spec.train_last)
    return n, t


def make_spec(act="relu", readout="gap", depth=2, q=3, bias=0.0, final_act=True, **kw):
    convs = tuple(ConvLayer(1.2 + 0.1 * l, bias, q) for l in range(depth))
    return CntkSpec(convs, ACTS[act][0], final_act, readout, 1.1, bias, **kw)


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("readout", ["gap", "vanilla"])
def test_activations_against_literal_reference(act, readout, rng):
    x = rng.standard_normal((3, 4, 3, 2))
    spec = make_spec(act, readout, depth=2, bias=0.2)
    got = ntkx.cntk_kernels(x, None, spec)
    want = reference_grams(x, x, spec, ACTS[act][1])
    assert rel_err(got.nngp, want[0]) <= TOL_REF
    assert rel_err(got.ntk, want[1]) <= TOL_REF


@pytest.mark.parametrize("readout", ["gap", "vanilla"])
@pytest.mark.parametrize("shape,q,depth,bias,final_act", [
    ((4, 4, 1), 1, 1, 0.0, True),
    ((5, 3, 3), 3, 3, 0.0, True),
    ((3, 6, 2), 5, 2, 0.3, True),
    ((4, 5, 1), 3, 3, 0.1, False),
    ((2, 2, 4), 3, 1, 0.0, False),
    ((3, 3, 2), 3, 1, 0.2, True),
    ((1, 5, 2), 3, 2, 0.0, True),
])
def test_geometries_against_literal_reference(readout, shape, q, depth, bias, final_act, rng):
    x1 = rng.standard_normal((2,) + shape)
    x2 = rng.standard_normal((3,) + shape)
    spec = make_spec("relu", readout, depth, q, bias, final_act)
    got = ntkx.cntk_kernels(x1, x2, spec)
    want = reference_grams(x1, x2, spec, "relu")
    assert rel_err(got.nngp, want[0]) <= TOL_REF
    assert rel_err(got.ntk, want[1]) <= TOL_REF


@pytest.mark.parametrize("train_first,train_last", [(False, True), (True, False), (False, False)])
def test_untrained_first_or_last_layer(train_first, train_last, rng):
    x = rng.standard_normal((3, 4, 4, 2))
    spec = make_spec("relu", "gap", 3, train_first=train_first, train_last=train_last)
    got = ntkx.cntk_kernels(x, None, spec, "ntk")
    assert rel_err(got, reference_grams(x, x, spec, "relu")[1]) <= TOL_REF


@pytest.mark.parametrize("readout", ["gap", "vanilla"])
@pytest.mark.parametrize("fix", [False, True])
@pytest.mark.parametrize("depth", [2, 4])
def test_arora_constants(readout, fix, depth, rng):
    """ntkx.arora_cntk reproduces a literal transcription of Arora et al.'s formulas,
    i.e. Theta_Arora = C P Q Theta_NT (vanilla) and C Theta_NT (GAP) for their network."""
    x = rng.standard_normal((3, 4, 5, 3))
    got = ntkx.arora_cntk(x, None, depth=depth, readout=readout, fix=fix)
    want = np.array([[ref.arora_cntk(a, b, depth, readout, 3, fix) for b in x] for a in x])
    assert rel_err(got, want) <= TOL_REF
    # The same through NCHW input, as their code lays images out.
    got2 = ntkx.arora_cntk(x.transpose(0, 3, 1, 2), None, depth=depth, readout=readout, fix=fix, layout="NCHW")
    assert rel_err(got2, want) <= TOL_REF


def test_identical_colinear_and_zero_images(rng):
    """An identical pair has correlation exactly 1 at every position (its maps come from
    the same code), a power-of-two scaled image is exactly colinear, and a zero image
    gives a zero row without bias: all match the reference, nothing is NaN."""
    x = rng.standard_normal((1, 5, 4, 2))
    imgs = np.concatenate([x, x, 2.0 * x, np.zeros_like(x), rng.standard_normal((1, 5, 4, 2))])
    imgs[4, :2] = 0.0  # a partly blank image: zero patches next to nonzero ones
    for readout in ("gap", "vanilla"):
        spec = make_spec("relu", readout, depth=3)
        got = ntkx.cntk_kernels(imgs, None, spec)
        want = reference_grams(imgs, imgs, spec, "relu")
        assert np.all(np.isfinite(got.ntk)) and np.all(np.isfinite(got.nngp))
        assert rel_err(got.nngp, want[0]) <= TOL_REF
        assert rel_err(got.ntk, want[1]) <= TOL_REF
        assert np.all(got.ntk[3] == 0.0) and np.all(got.nngp[:, 3] == 0.0)
        # Bias-free ReLU is positively homogeneous of degree 1 in each argument.
        assert got.ntk[0, 2] == pytest.approx(2.0 * got.ntk[0, 0], rel=1e-15)


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("readout", ["gap", "vanilla"])
def test_emulated_cuda_matches_openmp(act, readout, rng):
    x1 = rng.standard_normal((3, 5, 4, 2))
    x2 = rng.standard_normal((2, 5, 4, 2))
    spec = make_spec(act, readout, depth=3, bias=0.1, final_act=act != "step")
    params = spec.to_core(5, 4, 2)
    cpu = ntkx.cntk_kernels(x1, x2, spec, device="cpu")
    for reverse in (False, True):
        n = np.empty((3, 2))
        t = np.empty((3, 2))
        _core.cntk(params, x1, x2, n, t, False, _core.RunOptions(_core.Backend.emulate, reverse=reverse))
        assert rel_err(n, cpu.nngp) <= TOL["emulator"]
        assert rel_err(t, cpu.ntk) <= TOL["emulator"]
    sym = ntkx.cntk_kernels(x1, None, spec, device="emulate")
    cpu_sym = ntkx.cntk_kernels(x1, None, spec, device="cpu")
    assert rel_err(sym.ntk, cpu_sym.ntk) <= TOL["emulator"]
    assert np.array_equal(sym.ntk, sym.ntk.T)


@pytest.mark.parametrize("act", ["relu", "erf"])
@pytest.mark.parametrize("readout", ["gap", "vanilla"])
def test_standard_parameterization_on_every_backend(act, readout, rng):
    """parameterization='standard' conv stacks (math::conv_theta, the standard readout): the
    fused ReLU 3x3 path, the general rows and the emulated CUDA tiles agree, a net of NTK layers
    given as a CntkStandard of no standard layer is the NTK net, and the standard NTK differs."""
    from ntkx._src.cntk import CntkStandard
    x1 = rng.standard_normal((3, 5, 4, 2))
    x2 = rng.standard_normal((2, 5, 4, 2))
    base = make_spec(act, readout, depth=3, bias=0.1, final_act=True)
    n = len(base.convs)
    std = dataclasses.replace(base, standard=CntkStandard((True,) * n, (6,) * n, (True, False, True), True, False))
    cpu = ntkx.cntk_kernels(x1, x2, std, device="cpu")
    emu = ntkx.cntk_kernels(x1, x2, std, device="emulate")
    assert rel_err(emu.ntk, cpu.ntk) <= TOL["emulator"] and rel_err(emu.nngp, cpu.nngp) <= TOL["emulator"]
    ntk = ntkx.cntk_kernels(x1, x2, base, device="cpu")
    assert np.array_equal(cpu.nngp, ntk.nngp)  # the NNGP does not depend on the parameterization
    assert rel_err(cpu.ntk, ntk.ntk) > 0.5
    assert "standard" not in repr(base)  # a precompute store records the repr: old stores keep it
    none = dataclasses.replace(base, standard=CntkStandard((False,) * n, (6,) * n, (True,) * n, False, True))
    assert rel_err(ntkx.cntk_kernels(x1, x2, none, device="cpu").ntk, ntk.ntk) <= TOL["route"]


def test_packed_pairs_match_the_emulator(rng):
    """GAP packs the pairs that would leave SIMD lanes idle (the diagonal 8 x 8 blocks
    of a symmetric Gram, a last partial batch of 8 columns) 8 to a work item with both
    sides gathered lane by lane; every entry must still be its own pair's kernel.
    19 images: two full batches and a partial one; rows given as a prefix of the
    columns (which the backend accepts) and as a cross call."""
    x = rng.standard_normal((19, 4, 3, 2))
    spec = make_spec("relu", "gap", depth=3, bias=0.1)
    params = spec.to_core(4, 3, 2)
    emu = ntkx.cntk_kernels(x, None, spec, device="emulate")
    cpu = ntkx.cntk_kernels(x, None, spec, device="cpu")
    assert rel_err(cpu.ntk, emu.ntk) <= TOL["emulator"]
    assert rel_err(cpu.nngp, emu.nngp) <= TOL["emulator"]
    for r0, r1 in ((0, 11), (5, 13), (8, 19)):
        n = np.full((19 - r0, 19 - r0), np.nan)
        t = np.full((19 - r0, 19 - r0), np.nan)
        _core.cntk(params, x[r0:r1], x[r0:], n, t, True, _core.RunOptions())
        rows = r1 - r0
        upper = np.triu(np.ones((rows, 19 - r0), dtype=bool))
        for got, want in ((t, emu.ntk), (n, emu.nngp)):
            want = want[r0:r1, r0:]
            assert rel_err(np.where(upper, got[:rows], want), want) <= TOL["emulator"]
            assert np.array_equal(got[:, :rows].T[upper], got[:rows][upper])  # mirrored
    cross = np.empty((7, 19)), np.empty((7, 19))
    _core.cntk(params, x[3:10], x, cross[0], cross[1], False, _core.RunOptions())
    assert rel_err(cross[1], emu.ntk[3:10]) <= TOL["emulator"]
    assert rel_err(cross[0], emu.nngp[3:10]) <= TOL["emulator"]


def test_emulated_cuda_on_32x32_vanilla_and_tiles(rng):
    """The real image size of the CUDA kernel's shared buffers (P Q = 1024), and the
    emulator's bound: larger images are refused with a pointer to device='cpu'."""
    x = rng.standard_normal((2, 32, 32, 3))
    spec = make_spec("relu", "vanilla", depth=2)
    emu = ntkx.cntk_kernels(x, None, spec, device="emulate")
    cpu = ntkx.cntk_kernels(x, None, spec, device="cpu")
    assert rel_err(emu.ntk, cpu.ntk) <= TOL["emulator"]
    with pytest.raises(Exception, match="1024 pixels"):
        ntkx.cntk_kernels(rng.standard_normal((1, 33, 32, 1)), None, spec, device="emulate")


def test_symmetric_tiles_and_cross_calls_agree(rng):
    """The symmetric path (one triangle, mirrored; several tiles when the memory budget
    is small) equals the x1-vs-x2 path bit for bit up to summation order."""
    x = rng.standard_normal((21, 4, 4, 2))
    spec = make_spec("relu", "gap", depth=2, bias=0.1)
    whole = ntkx.cntk_kernels(x, None, spec)
    tiled = ntkx.cntk_kernels(x, None, spec, memory_budget=60_000)
    cross = ntkx.cntk_kernels(x, x.copy(), spec)
    assert np.array_equal(whole.ntk, whole.ntk.T)
    assert np.array_equal(tiled.ntk, tiled.ntk.T)
    assert rel_err(tiled.ntk, whole.ntk) <= 1e-15
    assert rel_err(cross.ntk, whole.ntk) <= 1e-15
    assert rel_err(cross.nngp, whole.nngp) <= 1e-15
    # Positive semi-definite (to round-off).
    assert np.linalg.eigvalsh(whole.ntk).min() > -1e-12 * np.abs(whole.ntk).max()


def test_stax_front_end_and_layouts(rng):
    x = rng.standard_normal((3, 4, 5, 2))
    _, _, kfn = stax.serial(stax.Conv(16, (3, 3), padding="SAME", W_std=1.3, b_std=0.2), stax.Relu(),
                            stax.Conv(16, (1, 1), padding="SAME", W_std=1.1), stax.Flatten(), stax.Dense(1, W_std=1.2, b_std=0.3))
    got = kfn(x, None, ("nngp", "ntk"))
    spec = CntkSpec((ConvLayer(1.3, 0.2, 3), ConvLayer(1.1, 0.0, 1)), ACTS["relu"][0], False, "vanilla", 1.2, 0.3)
    want = reference_grams(x, x, spec, "relu")
    assert rel_err(got.ntk, want[1]) <= TOL_REF and rel_err(got.nngp, want[0]) <= TOL_REF
    nchw = kfn(x.transpose(0, 3, 1, 2), None, "ntk", layout="NCHW")
    assert np.array_equal(nchw, got.ntk)
    # any array-like: lists, float32, non-contiguous and read-only views
    ro = np.asfortranarray(x.astype(np.float32))
    ro.setflags(write=False)
    assert rel_err(kfn(ro, None, "ntk"), kfn(x.astype(np.float32).astype(np.float64), None, "ntk")) == 0.0
    assert kfn(x.tolist(), None, "ntk").shape == (3, 3)


def test_float32_outputs_memmap_and_progress(tmp_path, rng):
    x = rng.standard_normal((10, 4, 4, 1))
    spec = make_spec("relu", "gap", depth=2)
    f64 = ntkx.cntk_kernels(x, None, spec, "ntk")
    f32 = ntkx.cntk_kernels(x, None, spec, "ntk", dtype=np.float32)
    assert f32.dtype == np.float32 and rel_err(f32, f64) <= 1e-7
    mm = np.lib.format.open_memmap(tmp_path / "k.npy", mode="w+", dtype=np.float64, shape=(10, 10))
    seen = []
    res = ntkx.cntk_kernels(x, None, spec, "ntk", out=mm, progress=lambda d, t: seen.append((d, t)))
    assert res is mm and np.array_equal(np.asarray(mm), f64)
    assert seen[-1] == (55, 55)


def test_progress_is_reported_inside_a_call_and_its_errors_stop_it(rng):
    """The driver hands a whole tile to one backend call, which reports finished pairs
    as it goes: several increasing reports before the last. A callback that raises
    stops the computation, and its exception reaches the caller."""
    import time

    x = rng.standard_normal((40, 16, 16, 1))  # 820 pairs, about 1 s on 2 cores
    spec = make_spec("relu", "gap", depth=3)
    seen = []
    t0 = time.perf_counter()
    ntkx.cntk_kernels(x, None, spec, "ntk", progress=lambda d, t: seen.append((d, t)))
    whole = time.perf_counter() - t0
    done = [d for d, _ in seen]
    assert seen[-1] == (820, 820)
    assert len([d for d in done if 0 < d < 820]) >= 3, seen
    assert all(a <= b for a, b in zip(done, done[1:]))

    calls = []

    def fail(d, t):
        calls.append(d)
        if d > 0:
            raise RuntimeError("stop here")

    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="stop here"):
        ntkx.cntk_kernels(x, None, spec, "ntk", progress=fail)
    assert 0 < calls[-1] < 820 and time.perf_counter() - t0 < 0.5 * whole
    with pytest.raises(ValueError, match="progress must be None or callable"):
        _core.cntk(spec.to_core(16, 16, 1), x[:2], x[:2], np.empty((2, 2)), None, True, _core.RunOptions(),
                   progress=3)


def test_ctrl_c_interrupts_a_long_computation(rng):
    """Latency measured from the signal (see tests/conftest.py interrupt_latency)."""
    from conftest import interrupt_latency

    x = rng.standard_normal((64, 32, 32, 3))  # ~minutes of CNN-GAP pairs uninterrupted
    spec = make_spec("relu", "gap", depth=6)
    assert interrupt_latency(lambda: ntkx.cntk_kernels(x, None, spec, "ntk"), 0.5) < 2.0


@pytest.mark.parametrize("x,err,match", [
    (np.zeros((2, 4, 4)), ValueError, "4-D"),
    (np.zeros((0, 4, 4, 1)), ValueError, "at least one image"),
    (np.full((1, 3, 3, 1), np.nan), ValueError, "NaN"),
    (np.array([[[["a"]]]]), TypeError, "numeric"),
    (np.zeros((1, 3, 3, 1), dtype=complex), TypeError, "real"),
])
def test_bad_images(x, err, match):
    _, _, kfn = stax.serial(stax.Conv(1, (3, 3), padding="SAME"), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1))
    with pytest.raises(err, match=match):
        kfn(x)


def test_bad_shapes_and_options(rng):
    _, _, kfn = stax.serial(stax.Conv(1, (3, 3), padding="SAME"), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1))
    x = rng.standard_normal((2, 4, 4, 1))
    with pytest.raises(ValueError, match="same image shape"):
        kfn(x, rng.standard_normal((2, 4, 5, 1)))
    with pytest.raises(ValueError, match="layout"):
        kfn(x, layout="HWNC")
    with pytest.raises(ValueError, match="get"):
        kfn(x, get="kernel")
    with pytest.raises(ValueError, match="memory_budget"):
        kfn(x, memory_budget=0)
    with pytest.raises(ValueError, match="shape"):
        kfn(x, None, "ntk", out=np.empty((3, 3)))
    with pytest.raises(ValueError, match="depth"):
        ntkx.arora_cntk(x, depth=1)
    with pytest.raises(ValueError, match="at most 128"):
        ntkx.cntk_kernels(x, None, CntkSpec((ConvLayer(),) * 129))


@pytest.mark.parametrize("kwargs,match", [
    (dict(filter_shape=(2, 2)), "odd square"),
    (dict(filter_shape=(3, 5)), "odd square"),
    (dict(strides=(2, 2)), "stride 1"),
    (dict(padding="VALID"), "SAME"),
])
def test_unsupported_conv_options(kwargs, match):
    with pytest.raises(NotImplementedError, match=match):
        stax.Conv(1, **{"filter_shape": (3, 3), "padding": "SAME", **kwargs})


@pytest.mark.parametrize("layers", [
    lambda: (stax.Conv(1, (3, 3), padding="SAME"), stax.Relu(), stax.Dense(1)),
    lambda: (stax.Conv(1, (3, 3), padding="SAME"), stax.GlobalAvgPool()),
    lambda: (stax.Dense(1), stax.Conv(1, (3, 3), padding="SAME"), stax.GlobalAvgPool(), stax.Dense(1)),
    lambda: (stax.Conv(1, (3, 3), padding="SAME"), stax.Relu(), stax.Erf(), stax.GlobalAvgPool(), stax.Dense(1)),
    lambda: (stax.Conv(1, (3, 3), padding="SAME"), stax.Relu(), stax.Conv(1, (3, 3), padding="SAME"), stax.Abs(), stax.GlobalAvgPool(), stax.Dense(1)),
])
def test_unsupported_compositions_name_what_is_supported(layers, rng):
    _, _, kfn = stax.serial(*layers())
    with pytest.raises(NotImplementedError, match="CNTK supports"):
        kfn(rng.standard_normal((2, 3, 3, 1)))


def test_finite_network_shapes(rng):
    init_fn, apply_fn, _ = stax.serial(stax.Conv(7, (3, 3), padding="SAME", b_std=0.1), stax.Relu(), stax.Conv(5, (1, 1), padding="SAME"),
                                       stax.GlobalAvgPool(), stax.Dense(2))
    shape, params = init_fn(0, (-1, 4, 6, 3))
    assert shape == (-1, 2)
    assert apply_fn(params, rng.standard_normal((3, 4, 6, 3))).shape == (3, 2)
