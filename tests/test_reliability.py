"""Issue 12's reproductions: each call that once returned a wrong or NaN result without a
word now gives the right answer or a clear error.

Setup as in the issue: ``spec0 = FcSpec(3, 1.5, 0.0)``, `X` 6 x 5 standard normal, `IM`
4 images 8 x 8 x 2, `cspec` two 3 x 3 SAME conv layers with W_std = sqrt 2, GAP, no bias.
Bias-free ReLU networks are positively homogeneous of degree 1 in each argument,
K(s x, t x') = s t K(x, x'), so the kernel of a scaled input is checked against the
kernel at scale 1 (computed on ordinary magnitudes) times s t.
"""

import numpy as np
import pytest

import ntkx
from ntkx import stax
from ntkx._src import validate
from ntkx._src.fc import MAX_ERF_T

from conftest import TOL
from reference import fc as ref

S2 = float(np.sqrt(2.0))
SPEC0 = ntkx.FcSpec(3, 1.5, 0.0)
CSPEC = ntkx.CntkSpec((ntkx.ConvLayer(S2, 0.0, 3), ntkx.ConvLayer(S2, 0.0, 3)), readout="gap")


@pytest.fixture
def X():
    return np.random.default_rng(12).standard_normal((6, 5))


@pytest.fixture
def IM():
    return np.random.default_rng(13).standard_normal((4, 8, 8, 2))


def rel(a, b):
    return float(np.max(np.abs(a - b) / np.abs(b), initial=0.0))


# ----------------------------------------------------------------------------- 1. extreme input scale


@pytest.mark.parametrize("s", [1e100, 1e78, 1e-85, 1e150, 1e-150])
def test_cntk_extreme_scale_is_homogeneous(IM, s):
    """Was 1.41x off at 1e100 (diagonal included), also at 1e78 and 1e-85."""
    k = ntkx.cntk_kernels(IM, None, CSPEC, "ntk")
    ks = ntkx.cntk_kernels(IM * s, None, CSPEC, "ntk")
    # s^2 itself may not be a normal number (1e-300): compare in two steps.
    assert rel(ks / s / s, k) <= TOL["homogeneity"]


@pytest.mark.parametrize("readout", ["gap", "vanilla"])
def test_cntk_one_layer_and_one_image_scaled(IM, readout):
    spec = ntkx.CntkSpec((ntkx.ConvLayer(S2, 0.0, 3),), readout=readout)
    k = ntkx.cntk_kernels(IM, None, spec)
    sc = np.array([1.0, 1e120, 1e-90, 1.0])
    ks = ntkx.cntk_kernels(IM * sc[:, None, None, None], None, spec)
    for a, b in zip(ks, k):
        assert rel(a / sc[:, None] / sc[None, :], b) <= TOL["homogeneity"]


def test_cntk_overflow_is_inf_not_nan(IM):
    ks = ntkx.cntk_kernels(IM * 1e200, None, CSPEC, "ntk")  # 1e400: beyond float64
    assert np.isposinf(np.diag(ks)).all() and not np.isnan(ks).any()


def test_cntk_bias_or_erf_refuse_scales_they_cannot_rescale(IM):
    spec = ntkx.CntkSpec((ntkx.ConvLayer(1.0, 0.1, 3),))
    with pytest.raises(ValueError, match="not scale-homogeneous"):
        ntkx.cntk_kernels(IM * 1e100, None, spec)
    ntkx.cntk_kernels(IM * 1e10, None, spec)  # within range: computed


@pytest.mark.parametrize("s", [1e300, 1e154, 1e100, 1e-150, 1e-300])
def test_fc_extreme_scale(X, s):
    """Was all NaN at 1e300 and NaN where finite values exist at 1e154."""
    k = ntkx.fc_kernels(X, None, SPEC0, "ntk")
    ks = ntkx.fc_kernels(X * s, None, SPEC0, "ntk")
    assert not np.isnan(ks).any()
    with np.errstate(over="ignore", under="ignore"):
        want = k * s * s  # inf or 0 exactly where the true kernel leaves float64
    fin = np.isfinite(want) & (np.abs(want) > 1e-290)
    assert np.array_equal(np.isinf(ks), np.isinf(want))
    assert rel(ks[fin], want[fin]) <= TOL["homogeneity"]


def test_fc_one_huge_row_keeps_the_others(X):
    """One row scaled by 1e200 turned its row and column NaN."""
    k = ntkx.fc_kernels(X, None, SPEC0)
    for scale in (1e200, 1e100, 1e-200):
        y = X.copy()
        y[2] *= scale
        ks = ntkx.fc_kernels(y, None, SPEC0)
        sc = np.ones(6)
        sc[2] = scale
        for a, b in zip(ks, k):
            assert not np.isnan(a).any()
            with np.errstate(over="ignore", under="ignore"):
                want = b * sc[:, None] * sc[None, :]
            fin = np.isfinite(want) & (np.abs(want) > 1e-290)
            assert rel(a[fin], want[fin]) <= TOL["homogeneity"]


@pytest.mark.parametrize("s", [1e80, 1e120, 1e-80, 1e-120])
def test_fc_near_colinear_pairs_at_extreme_norms(X, s):
    """Near-colinear pairs with norms of 1e80 and more were up to 61% off (the exact
    colinear recomputation squares products of entries and norms)."""
    z = np.vstack([X[0], X[0] + 1e-9 * X[1], X[0] * 3.0, -X[0]])
    k = ntkx.fc_kernels(z, None, SPEC0)
    ks = ntkx.fc_kernels(z * s, None, SPEC0)
    for a, b in zip(ks, k):
        nz = b != 0
        assert rel(a[nz] / s / s, b[nz]) <= TOL["homogeneity"]
        assert np.all(a[~nz] == 0)


def test_fc_extreme_scale_matches_literal_reference(X):
    """The literal numpy reference at scale 1, times s^2, against ntkx at scale s."""
    want = ref.fc_kernels(X, None, SPEC0.depth, SPEC0.w_std, SPEC0.b_std, ref.Relu())
    ks = ntkx.fc_kernels(X * 1e150, None, SPEC0)
    assert rel(ks.ntk / 1e150 / 1e150, want[1]) <= TOL["reference"]
    assert rel(ks.nngp / 1e150 / 1e150, want[0]) <= TOL["reference"]


def test_fc_biased_and_erf_extreme_scale_finite(X):
    """Non-homogeneous nets: the scale is carried in logs (no rescaling identity), so
    the check is that huge inputs give the large-input limit, not NaN."""
    spec = ntkx.FcSpec(2, 1.2, 0.3)
    assert np.isposinf(np.diag(ntkx.fc_kernels(X * 1e200, None, spec, "nngp"))).all()  # 1e400
    ks = ntkx.fc_kernels(X * 1e150, None, spec, "nngp")
    # Bias negligible against 1e300: the bias-free kernel of the same inputs.
    k0 = ntkx.fc_kernels(X, None, ntkx.FcSpec(2, 1.2, 0.0), "nngp")
    assert np.isfinite(ks).all() and rel(ks / 1e150 / 1e150, k0) <= TOL["homogeneity"]
    erf = ntkx.FcSpec(2, 1.0, 0.1, ntkx.Activation("erf", 1.0, 1.0, 0.0))
    ke = ntkx.fc_kernels(X * 1e300, None, erf, "nngp")  # bounded after the first erf
    assert np.isfinite(ke).all()


def test_fc_w_std_overflow_is_inf(X):
    """W_std = 1e200 at depth 3 was all NaN."""
    k = ntkx.fc_kernels(X, None, ntkx.FcSpec(3, 1e200, 0.0))
    assert np.isposinf(k.ntk).all() and np.isposinf(k.nngp).all()
    k1 = ntkx.fc_kernels(X, None, ntkx.FcSpec(1, 1e100, 0.0), "nngp")  # 1e400 x O(1)
    assert np.isposinf(np.diag(k1)).all() and not np.isnan(k1).any()


def test_fc_w_std_large_but_representable(X):
    k = ntkx.fc_kernels(X, None, ntkx.FcSpec(1, 1.0, 0.0), "nngp")
    kb = ntkx.fc_kernels(X, None, ntkx.FcSpec(1, 1e50, 0.0), "nngp")  # 1e200 x k
    assert rel(kb / 1e200, k) <= TOL["homogeneity"]


def test_fc_antiparallel_zero_entries_stay_zero_on_overflow(X):
    """An exact 0 of the normalized kernel (ReLU NNGP of an antiparallel pair at depth 1)
    times an overflowed scale was inf * 0 = NaN."""
    z = np.vstack([X[0], -X[0]]) * 1e200
    k = ntkx.fc_kernels(z, None, ntkx.FcSpec(1, 1.0, 0.0), "nngp")
    assert k[0, 1] == 0.0 and k[1, 0] == 0.0 and np.isposinf(k[0, 0])


def test_cpu_and_emulated_cuda_agree_at_extreme_scale(X):
    for s in (1e200, 1e-200):
        a = ntkx.fc_kernels(X * s, None, SPEC0, device="cpu")
        b = ntkx.fc_kernels(X * s, None, SPEC0, device="emulate")
        for u, v in zip(a, b):
            fin = np.isfinite(u) & (u != 0)
            assert np.array_equal(np.isinf(u), np.isinf(v))
            assert rel(v[fin], u[fin]) <= TOL["emulator"]


# ----------------------------------------------------------------------------- 2. parameters


@pytest.mark.parametrize("make,match", [
    (lambda: stax.Erf(a=np.nan), "finite"),
    (lambda: stax.Erf(a=np.inf), "finite"),
    (lambda: stax.Erf(c=1e200), "at most"),
    (lambda: stax.LeakyRelu(np.nan), "finite"),
    (lambda: stax.ABRelu(1e300, 1.0), "at most"),
    (lambda: stax.Erf(a="x"), "number"),
    (lambda: ntkx.Activation("tanh"), "kind must be one of"),
    (lambda: ntkx.Activation("abrelu", 0.0, 0.0), "zero function"),
])
def test_activation_parameters_validated(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_erf_huge_b_nngp_is_the_sign_limit(X):
    """Erf(b=1e300) gave all zeros; erf(b x) -> sign(x), kernel -> (2/pi) asin(rho)."""
    _, _, kfn = stax.serial(stax.Dense(1), stax.Erf(b=1e300), stax.Dense(1))
    k = kfn(X, None, "nngp")
    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    c = np.clip(xn @ xn.T, -1, 1)
    np.fill_diagonal(c, 1.0)  # the reference's own rounding would cost sqrt(eps) there
    want = (2 / np.pi) * np.arcsin(c)
    assert np.max(np.abs(k - want)) < 1e-14  # one-off: |K| <= 1, a few ulps of the closed form's asin


def test_erf_ntk_beyond_float64_accuracy_is_refused(X):
    _, _, kfn = stax.serial(stax.Dense(1), stax.Erf(b=1e300), stax.Dense(1))
    with pytest.raises(ValueError, match="1/sqrt"):
        kfn(X, None, "ntk")
    b_ok = np.sqrt(MAX_ERF_T / 2 / 10)  # 2 b^2 q = MAX_ERF_T / 10 for q ~ |x|^2 / d <= 10
    _, _, kfn = stax.serial(stax.Dense(1), stax.Erf(b=b_ok), stax.Dense(1))
    assert np.isfinite(kfn(X / np.abs(X).max(), None, "ntk")).all()


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(get=5), TypeError, "get must be"),
    (dict(get=("ntk", "ntk")), ValueError, "twice"),
    (dict(get=()), ValueError, "at least one"),
    (dict(threads=1.5), TypeError, "threads"),
    (dict(threads=-1), ValueError, "threads"),
    (dict(threads=0), ValueError, "threads"),
    (dict(threads=10**6), ValueError, "threads"),
    (dict(progress="yes"), TypeError, "progress"),
    (dict(dtype="int8"), ValueError, "dtype"),
    (dict(dtype="nonsense"), TypeError, "dtype"),
    (dict(device="gpu"), ValueError, "device"),
    (dict(memory_budget=True), ValueError, "memory_budget"),
])
def test_call_options_validated(X, IM, kwargs, err, match):
    with pytest.raises(err, match=match):
        ntkx.fc_kernels(X, None, SPEC0, **kwargs)
    with pytest.raises(err, match=match):
        ntkx.cntk_kernels(IM, None, CSPEC, **kwargs)


def test_spec_type_validated(X, IM):
    with pytest.raises(TypeError, match="FcSpec"):
        ntkx.fc_kernels(X, None, 3)
    with pytest.raises(TypeError, match="CntkSpec"):
        ntkx.cntk_kernels(IM, None, 3)
    with pytest.raises(TypeError, match="Activation"):
        ntkx.fc_kernels(X, None, ntkx.FcSpec(1, activation="relu"))


def test_cntk_variance_range_refused(IM):
    """W_std = 1e200 in a conv layer: variances 1e400, products beyond float64."""
    with pytest.raises(ValueError, match="W_std"):
        ntkx.cntk_kernels(IM, None, ntkx.CntkSpec((ntkx.ConvLayer(1e200, 0.0, 3),)))
    with pytest.raises(ValueError, match="W_std"):
        ntkx.cntk_kernels(IM, None, ntkx.CntkSpec((ntkx.ConvLayer(1e-200, 0.0, 3),)))


# ----------------------------------------------------------------------------- 3. out= aliasing


def test_out_arrays_that_overlap_are_refused(X, IM):
    o = np.empty((6, 6))
    with pytest.raises(ValueError, match="share memory"):
        ntkx.fc_kernels(X, None, SPEC0, None, out={"nngp": o, "ntk": o})
    big = np.empty((6, 12))
    with pytest.raises(ValueError, match="share memory|overlap"):
        ntkx.fc_kernels(X, None, SPEC0, None, out={"nngp": big[:, :6], "ntk": big[:, 3:9]})
    zero = np.lib.stride_tricks.as_strided(np.empty(6), (6, 6), (0, 8), writeable=True)
    with pytest.raises(ValueError, match="overlap or run backwards"):
        ntkx.fc_kernels(X, None, SPEC0, "ntk", out=zero)
    rev = np.empty((4, 4))[::-1]
    with pytest.raises(ValueError, match="overlap or run backwards"):
        ntkx.cntk_kernels(IM, None, CSPEC, "ntk", out=rev)
    xx = np.random.default_rng(0).standard_normal((6, 6))
    with pytest.raises(ValueError, match="input"):
        ntkx.fc_kernels(xx, None, SPEC0, "ntk", out=xx)


def test_distinct_outputs_in_one_buffer_are_fine(X):
    big = np.empty((6, 12))
    k = ntkx.fc_kernels(X, None, SPEC0, None, out={"nngp": big[:, :6], "ntk": big[:, 6:]})
    want = ntkx.fc_kernels(X, None, SPEC0)
    assert np.array_equal(k.nngp, want.nngp) and np.array_equal(k.ntk, want.ntk)


# ----------------------------------------------------------------------------- 4. neural-tangents meaning


def test_conv_without_padding_is_refused():
    """neural-tangents' Conv defaults to VALID; ntkx used SAME without a word."""
    with pytest.raises(TypeError):
        stax.Conv(8)  # filter_shape is required, as in neural-tangents
    with pytest.raises(NotImplementedError, match="pass padding='SAME'"):
        stax.Conv(8, (3, 3))
    stax.Conv(8, (3, 3), padding="SAME")


@pytest.mark.parametrize("get", [("ntk", "nngp"), ("nngp", "ntk"), ("ntk",), ("nngp",), None])
def test_kernels_come_back_in_the_order_asked(X, IM, get):
    nets = [
        (stax.serial(stax.Dense(1, 1.5), stax.Relu(), stax.Dense(1, 1.5)), X),
        (stax.serial(stax.Conv(1, (3, 3), padding="SAME"), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1)), IM),
    ]
    for (_, _, kfn), x in nets:
        both = kfn(x, None, ("nngp", "ntk"))
        res = kfn(x, None, get)
        if get is None:  # neural-tangents' Kernel object (tests/test_stax_compat.py checks its fields)
            assert isinstance(res, ntkx.Kernel)
            assert np.array_equal(res.nngp, both.nngp) and np.array_equal(res.ntk, both.ntk)
            continue
        assert tuple(res._fields) == tuple(get)
        for i, g in enumerate(get):
            assert np.array_equal(res[i], getattr(both, g))
            assert np.array_equal(getattr(res, g), getattr(both, g))
    ntk, nngp = nets[0][0][2](X, None, ("ntk", "nngp"))
    assert np.array_equal(ntk, nets[0][0][2](X, None, "ntk"))


def test_results_pickle(X):
    import pickle

    for get in [("ntk", "nngp"), ("ntk",), None]:
        r = ntkx.fc_kernels(X, None, SPEC0, get)
        r2 = pickle.loads(pickle.dumps(r))
        assert type(r2) is type(r) and all(np.array_equal(a, b) for a, b in zip(r, r2))


@pytest.mark.nt
def test_stax_signatures_match_neural_tangents():
    """Every ntkx.stax layer that neural-tangents also has takes the same arguments,
    in the same order, with the same defaults."""
    import inspect

    nts = pytest.importorskip("neural_tangents.stax")
    for name in stax.__all__:
        if not hasattr(nts, name):
            continue
        ours, theirs = inspect.signature(getattr(stax, name)), inspect.signature(getattr(nts, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        for p in theirs.parameters.values():
            assert ours.parameters[p.name].default == p.default, (name, p.name)
            assert ours.parameters[p.name].kind == p.kind, (name, p.name)


@pytest.mark.parametrize("make,match", [
    (lambda: stax.Dense(1, batch_axis=1), "batch_axis"),
    (lambda: stax.Flatten(batch_axis_out=1), "batch_axis_out"),
    (lambda: stax.GlobalAvgPool(channel_axis=1), "channel_axis"),
    (lambda: stax.Conv(1, (3, 3), padding="SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")), "dimension"),
])
def test_neural_tangents_options_beyond_the_defaults_are_refused(make, match):
    with pytest.raises(NotImplementedError, match=match):
        make()


def test_neural_tangents_defaults_accepted(X):
    _, _, k1 = stax.serial(stax.Dense(4, 1.5, None, 0, -1, "ntk", (1, 1)), stax.Relu(do_stabilize=True),
                           stax.Dense(1, 1.5))
    _, _, k2 = stax.serial(stax.Dense(4, 1.5), stax.Relu(), stax.Dense(1, 1.5))
    assert np.array_equal(k1(X, None, "ntk"), k2(X, None, "ntk"))


# ----------------------------------------------------------------------------- 5. smaller ones


def test_cnn_repeat_refused_before_expanding(IM):
    import time

    body = stax.serial(stax.Relu(), stax.Conv(1, (3, 3), padding="SAME"))
    _, _, kfn = stax.serial(stax.Conv(1, (3, 3), padding="SAME"), stax.repeat(body, 10**6), stax.GlobalAvgPool(),
                            stax.Dense(1))
    t0 = time.perf_counter()
    with pytest.raises(NotImplementedError, match="1000001 conv layers"):
        kfn(IM)
    assert time.perf_counter() - t0 < 0.5


def test_emulate_device_is_reserved_to_the_tests():
    """'emulate' is a known device (so a user gets a clear refusal, not 'unknown
    device'), but the public docstring does not offer it as an option."""
    assert "emulate" in validate.DEVICES
    assert "reserved" in ntkx.fc_kernels.__doc__ and "'cpu'" in ntkx.fc_kernels.__doc__
