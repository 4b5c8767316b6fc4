"""Bad input gets a clear Python exception (or a correct result), never a crash or NaN."""

import numpy as np
import pytest

import ntkx
from conftest import TOL
from ntkx import stax
from ntkx._src import validate


@pytest.fixture
def kernel_fn():
    return stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))[2]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(kernel_fn, bad):
    x = np.ones((4, 3))
    x[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        kernel_fn(x)
    with pytest.raises(ValueError, match="x2 contains 1 NaN or Inf"):
        kernel_fn(np.ones((2, 3)), x)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_wrong_ndim(kernel_fn, shape):
    with pytest.raises(ValueError, match=r"must be 2-D \(N, d\)"):
        kernel_fn(np.ones(shape))


def test_mismatched_features(kernel_fn):
    with pytest.raises(ValueError, match="same feature size, got 3 and 4"):
        kernel_fn(np.ones((2, 3)), np.ones((2, 4)))


@pytest.mark.parametrize("x", [np.array([["a", "b"]]), np.array([[1 + 2j, 0]]), [[1.0, 2.0], [3.0]],
                               np.array([[None, 1.0]], dtype=object)])
def test_non_numeric(kernel_fn, x):
    with pytest.raises(TypeError):
        kernel_fn(x)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0)])
def test_empty(kernel_fn, shape):
    with pytest.raises(ValueError, match="at least one point and one feature"):
        kernel_fn(np.ones(shape))


@pytest.mark.parametrize("depth, err", [(-1, ValueError), (10**9, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_depth(depth, err):
    with pytest.raises(err, match="depth"):
        ntkx.fc_kernels(np.ones((2, 2)), None, ntkx.FcSpec(depth))


@pytest.mark.parametrize("w, b", [(-1.0, 0.0), (np.nan, 0.0), (1.0, np.inf)])
def test_bad_std(w, b):
    with pytest.raises(ValueError, match="std"):
        stax.Dense(4, W_std=w, b_std=b)
    with pytest.raises(ValueError, match="std"):
        ntkx.fc_kernels(np.ones((2, 2)), None, ntkx.FcSpec(1, w, b))


def test_bad_get_device_dtype(kernel_fn):
    x = np.ones((2, 2))
    with pytest.raises(ValueError, match="get must be"):
        kernel_fn(x, None, "cov")
    with pytest.raises(ValueError, match="device must be"):
        kernel_fn(x, None, device="tpu")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        kernel_fn(x, None, dtype=np.int32)


def test_cuda_without_device_is_a_clear_error(kernel_fn):
    if ntkx.build_info()["cuda_devices"] > 0:
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="device='cuda'"):
        kernel_fn(np.ones((2, 2)), None, device="cuda")


def test_output_too_large_is_refused_before_allocating(monkeypatch, kernel_fn):
    monkeypatch.setattr(validate, "available_memory", lambda: 1 << 20)
    with pytest.raises(MemoryError, match="out="):
        kernel_fn(np.ones((1000, 2)))


def test_bad_out_arrays(kernel_fn):
    x = np.ones((3, 2))
    with pytest.raises(ValueError, match="shape"):
        kernel_fn(x, None, "ntk", out=np.empty((3, 4)))
    ro = np.empty((3, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        kernel_fn(x, None, "ntk", out=ro)
    with pytest.raises(ValueError, match="unit column stride|contiguous rows"):
        kernel_fn(x, None, "ntk", out=np.empty((3, 6))[:, ::2])
    with pytest.raises(ValueError, match="map each requested"):
        kernel_fn(x, None, ("nngp", "ntk"), out={"ntk": np.empty((3, 3))})


def test_unsupported_compositions_name_what_is_supported():
    x = np.ones((2, 2))
    # What neural-tangents refuses too: an activation of a non-Gaussian input.
    for layer in (stax.Relu(),                                                       # no leading Dense
                  stax.serial(stax.Dense(2), stax.Relu(), stax.Relu(), stax.Dense(1))):  # two in a row
        with pytest.raises(ValueError, match="input to an activation must be Gaussian"):
            layer[2](x)
    with pytest.raises(NotImplementedError, match="supports serial"):  # Flatten after a Dense: a readout
        stax.serial(stax.Dense(2), stax.Flatten(), stax.Dense(1))[2](x)
    with pytest.raises(NotImplementedError, match="up to degree 15"):
        stax.RectifiedMonomial(16)


def test_accepts_any_array_like(kernel_fn, rng):
    x = rng.standard_normal((6, 4))
    ref = kernel_fn(x, None, "ntk")
    ro = x.copy()
    ro.flags.writeable = False
    for v in [x.tolist(), np.asfortranarray(x), ro, np.repeat(x, 2, axis=1)[:, ::2]]:
        np.testing.assert_allclose(kernel_fn(v, None, "ntk"), ref, rtol=TOL["route"])
    x32 = x.astype(np.float32)  # float32 input, float64 computation of exactly those values
    np.testing.assert_allclose(kernel_fn(x32, None, "ntk"), kernel_fn(x32.astype(np.float64), None, "ntk"),
                               rtol=TOL["route"])
    xi = np.arange(12).reshape(4, 3)  # integers are converted
    assert np.all(np.isfinite(kernel_fn(xi, None, "ntk")))


def test_memmap_input_and_output(tmp_path, kernel_fn, rng):
    x = rng.standard_normal((50, 3))
    xm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=x.shape)
    xm[...] = x
    xm.flush()
    xr = np.load(tmp_path / "x.npy", mmap_mode="r")  # read-only memmap
    out = np.lib.format.open_memmap(tmp_path / "k.npy", mode="w+", dtype=np.float64, shape=(50, 50))
    res = kernel_fn(xr, None, "ntk", out=out, memory_budget=2000)
    assert res is out
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), kernel_fn(x, None, "ntk"), rtol=TOL["route"])


def test_colinear_and_duplicate_points_are_finite(kernel_fn, rng):
    x = rng.standard_normal((3, 4))
    x = np.vstack([x, 3 * x[0], x[1], -x[2], np.zeros(4)])
    k = kernel_fn(x)
    assert np.all(np.isfinite(k.ntk)) and np.all(np.isfinite(k.nngp))
