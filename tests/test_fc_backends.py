"""The emulated CUDA kernel against the OpenMP backend, and backend-independent properties."""

import numpy as np
import pytest

import ntkx
from ntkx._src import activations as A
from ntkx import _core
from conftest import TOL, rel_err
from reference import fc as ref

ACTS = {
    "relu": ntkx.Activation("abrelu", 0.0, 1.0),
    "leaky": ntkx.Activation("abrelu", 0.1, 1.0),
    "abs": ntkx.Activation("abrelu", -1.0, 1.0),
    "abrelu": ntkx.Activation("abrelu", -0.4, 0.9),
    "step": ntkx.Activation("arccos0"),
    "requ": ntkx.Activation("arccos2"),
    "erf": ntkx.Activation("erf", 0.8, 1.3, 0.1),
    # issue 17's closed forms: the CUDA kernel instantiates the same dual<K>
    "gelu": A.gelu(), "sin": A.sin(1.1, 0.8, 0.3), "rbf": A.rbf(0.7), "exp": A.exp(0.8, 0.3),
    "gaussian": A.gaussian(1.1, -0.6), "sign": A.sign(), "monomial": A.monomial(2), "hermite": A.hermite(3),
    "rectified": A.rectified_monomial(3), "exp_normalized": A.exp_normalized(1.2, -0.4),
}


def _points(rng, n, d, colinear=True):
    x = rng.standard_normal((n, d))
    if colinear:
        x[1] = 0.0            # zero vector
        x[3] = 2.0 * x[2]     # colinear (exact in floating point)
        x[4] = -x[2]          # antiparallel
        x[5] = x[2]           # duplicate
    return x


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("bias", [0.0, 0.3])
@pytest.mark.parametrize("symmetric", [True, False])
def test_emulated_cuda_equals_openmp(rng, name, bias, symmetric):
    x1 = _points(rng, 37, 21)
    x2 = None if symmetric else _points(rng, 19, 21)
    spec = ntkx.FcSpec(4, 1.3, bias, ACTS[name])
    cpu = ntkx.fc_kernels(x1, x2, spec, device="cpu")
    for reverse in (False, True):
        nngp, ntk = np.empty_like(cpu.nngp), np.empty_like(cpu.ntk)
        sq = [None if x is None else np.einsum("ij,ij->i", x, x) for x in (x1, x2)]
        _core.fc(spec.to_core(), x1, x2, sq[0], sq[1], nngp, ntk, _core.RunOptions(_core.Backend.emulate, reverse=reverse))
        assert rel_err(nngp, cpu.nngp) <= TOL["emulator"]
        assert rel_err(ntk, cpu.ntk) <= TOL["emulator"]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_emulated_cuda_tiles_to_the_budget_into_out(rng, tmp_path, symmetric, dtype):
    """A small memory_budget splits the CUDA path into row panels (one progress call
    each) that are written in place into `out` (a memmap and a strided view here);
    the values equal the one-panel result bit for bit and the CPU backend within
    TOL['emulator']."""
    x1 = _points(rng, 53, 11)
    x2 = None if symmetric else _points(rng, 29, 11)
    n2 = 53 if symmetric else 29
    spec = ntkx.FcSpec(3, 1.2, 0.2, ACTS["erf"])
    whole_calls = []
    whole = ntkx.fc_kernels(x1, x2, spec, device="emulate", dtype=dtype, memory_budget=2**40,
                            progress=lambda d, t: whole_calls.append((d, t)))
    assert len(whole_calls) == 1
    cpu = ntkx.fc_kernels(x1, x2, spec, device="cpu", dtype=dtype)
    tol = TOL["emulator"] if dtype == np.float64 else TOL["float32_outputs"]
    assert rel_err(whole.nngp, cpu.nngp) <= tol and rel_err(whole.ntk, cpu.ntk) <= tol
    # Rows with a longer stride than n2 (the outputs must share it): an array and a memmap.
    wide = np.full((53, n2 + 7), np.nan, dtype)
    mm = np.lib.format.open_memmap(tmp_path / "ntk.npy", mode="w+", dtype=dtype, shape=(53, n2 + 7))
    mm[...] = np.nan
    out = {"nngp": wide[:, :n2], "ntk": mm[:, :n2]}
    calls = []
    # 2 outputs x n2 entries per row: the budget holds 16 rows (one block side), so
    # 53 rows take 4 panels.
    budget = 2 * n2 * np.dtype(dtype).itemsize * 16
    tiled = ntkx.fc_kernels(x1, x2, spec, device="emulate", dtype=dtype, out=out, memory_budget=budget,
                            progress=lambda d, t: calls.append((d, t)))
    assert tiled.nngp is out["nngp"] and tiled.ntk is out["ntk"]
    assert len(calls) == 4 and calls[-1][0] == calls[-1][1]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    np.testing.assert_array_equal(wide[:, :n2], whole.nngp)
    mm.flush()
    on_disk = np.load(tmp_path / "ntk.npy")
    np.testing.assert_array_equal(on_disk[:, :n2], whole.ntk)
    assert np.isnan(wide[:, n2:]).all() and np.isnan(on_disk[:, n2:]).all()  # nothing past n2 written


def test_emulated_cuda_out_makes_no_full_size_copy(rng):
    """With `out` given, the CUDA path allocates nothing of the outputs' size on the
    host (numpy allocations are traced by tracemalloc)."""
    import tracemalloc

    x = _points(rng, 160, 4)
    spec = ntkx.FcSpec(1)
    out = {"nngp": np.empty((160, 160)), "ntk": np.empty((160, 160))}
    fc_kernels = getattr(ntkx.fc_kernels, "__wrapped__", ntkx.fc_kernels)  # not the snapshot recorder's copy
    fc_kernels(x, None, spec, device="emulate", out=out)  # warm-up (imports, caches)
    tracemalloc.start()
    try:
        fc_kernels(x, None, spec, device="emulate", out=out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < out["ntk"].nbytes // 4, peak


def test_emulate_device_needs_the_test_switch(rng, monkeypatch):
    from ntkx._src import backend

    monkeypatch.setattr(backend, "ALLOW_EMULATE", False)
    with pytest.raises(ValueError, match="reserved to ntkx's test suite"):
        ntkx.fc_kernels(rng.standard_normal((4, 3)), device="emulate")
    with pytest.raises(ValueError, match="reserved to ntkx's test suite"):
        ntkx.cntk_kernels(rng.standard_normal((2, 4, 4, 1)), device="emulate")


def test_device_emulate_path_and_float32(rng):
    x = _points(rng, 20, 5)
    spec = ntkx.FcSpec(3, 1.1, 0.2)
    a = ntkx.fc_kernels(x, None, spec, device="emulate", dtype=np.float32)
    b = ntkx.fc_kernels(x, None, spec, device="cpu", dtype=np.float32)
    assert a.ntk.dtype == np.float32
    assert rel_err(a.ntk, b.ntk) <= TOL["float32_outputs"]


def test_symmetric_path_equals_cross_path(rng):
    x = _points(rng, 300, 7)
    spec = ntkx.FcSpec(6, 1.4, 0.1)
    sym = ntkx.fc_kernels(x, None, spec, device="cpu")
    cross = ntkx.fc_kernels(x, x.copy(), spec, device="cpu")
    assert rel_err(sym.nngp, cross.nngp) <= TOL["route"]
    assert rel_err(sym.ntk, cross.ntk) <= TOL["route"]
    np.testing.assert_array_equal(sym.ntk, sym.ntk.T)


def test_panels_and_layer_blocks_do_not_change_results(rng):
    """Tiny memory budgets force many panels and, for depth 3000, layer blocks."""
    x = _points(rng, 70, 9)
    y = rng.standard_normal((33, 9))
    for depth in (5, 3000):
        spec = ntkx.FcSpec(depth, 1.0, 0.05)
        for x2 in (None, y):
            whole = ntkx.fc_kernels(x, x2, spec, device="cpu")
            tiled = ntkx.fc_kernels(x, x2, spec, device="cpu", memory_budget=4096)
            assert rel_err(tiled.ntk, whole.ntk) <= TOL["ulp"]
            assert rel_err(tiled.nngp, whole.nngp) <= TOL["ulp"]


def test_threads_agree(rng):
    x = _points(rng, 200, 6)
    spec = ntkx.FcSpec(5)
    one = ntkx.fc_kernels(x, None, spec, device="cpu", threads=1)
    two = ntkx.fc_kernels(x, None, spec, device="cpu", threads=2)
    np.testing.assert_array_equal(one.ntk, two.ntk)


@pytest.mark.parametrize("name", ["relu", "erf", "requ", "abs"])
def test_psd_and_symmetric(rng, name):
    x = rng.standard_normal((120, 4))
    k = ntkx.fc_kernels(x, None, ntkx.FcSpec(3, 1.2, 0.1, ACTS[name]))
    for m in (k.nngp, k.ntk):
        np.testing.assert_array_equal(m, m.T)
        ev = np.linalg.eigvalsh(m)
        assert ev.min() >= -TOL["psd_roundoff"] * ev.max()


def test_homogeneity_bias_free_relu(rng):
    """Bias-free ReLU kernels are positively homogeneous: K(a x, b y) = a b K(x, y)."""
    x, y = rng.standard_normal((10, 5)), rng.standard_normal((8, 5))
    spec = ntkx.FcSpec(7, 1.3, 0.0)
    base = ntkx.fc_kernels(x, y, spec)
    scaled = ntkx.fc_kernels(3.0 * x, 0.25 * y, spec)
    assert rel_err(scaled.ntk, 0.75 * base.ntk) <= TOL["roundoff"]
    assert rel_err(scaled.nngp, 0.75 * base.nngp) <= TOL["roundoff"]


def test_zero_vectors_give_zero_rows(rng):
    x = rng.standard_normal((6, 3))
    x[2] = 0.0
    k = ntkx.fc_kernels(x, None, ntkx.FcSpec(4))
    assert np.all(k.ntk[2] == 0.0) and np.all(k.nngp[:, 2] == 0.0)
    nngp, ntk = ref.fc_kernels(x, None, 4, 1.0, 0.0, ref.Relu())
    assert rel_err(k.nngp, nngp) <= TOL["reference"] and rel_err(k.ntk, ntk) <= TOL["reference"]
    # With a bias the zero row is the kernel of the bias alone, against the literal recursion.
    kb = ntkx.fc_kernels(x, None, ntkx.FcSpec(4, 1.0, 0.5))
    nngp, ntk = ref.fc_kernels(x, None, 4, 1.0, 0.5, ref.Relu())
    assert rel_err(kb.nngp, nngp) <= TOL["reference"] and rel_err(kb.ntk, ntk) <= TOL["reference"]
    assert kb.ntk[2, 2] > 0


def test_build_info_reports_backends():
    import os

    info = ntkx.build_info()
    assert set(info) == {"openmp", "openmp_threads", "cuda_built", "cuda_devices"}
    assert all(type(info[k]) is bool for k in ("openmp", "cuda_built"))
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if not info["openmp"]:
        assert info["openmp_threads"] == 1
    elif omp.isdigit():
        assert info["openmp_threads"] == int(omp)
    elif omp == "" and hasattr(os, "sched_getaffinity"):
        # OpenMP's default team: the CPUs this process may run on.
        assert info["openmp_threads"] == len(os.sched_getaffinity(0))
    if not info["cuda_built"]:
        assert info["cuda_devices"] == 0
    else:
        assert info["cuda_devices"] >= 0


@pytest.mark.gpu
@pytest.mark.skipif(_core.cuda_device_count() == 0, reason="no CUDA device")
def test_cuda_equals_openmp(rng):  # pragma: no cover - needs a GPU
    x = _points(rng, 300, 33)
    for name, act in ACTS.items():
        spec = ntkx.FcSpec(5, 1.2, 0.1, act)
        gpu = ntkx.fc_kernels(x, None, spec, device="cuda")
        cpu = ntkx.fc_kernels(x, None, spec, device="cpu")
        assert rel_err(gpu.ntk, cpu.ntk) <= TOL["cuda"], name


def test_ctrl_c_interrupts_a_long_computation(rng):
    """SIGINT during the compiled loop raises KeyboardInterrupt promptly: the backend
    polls every 50 ms, inside deep rows and the angle-table build too. The latency is
    measured from the signal (not from the start), so a loaded machine that is slow to
    reach the loop does not fail the test; 2 s bounds it with room for such load."""
    from conftest import interrupt_latency

    x = rng.standard_normal((3000, 8))
    latency = interrupt_latency(lambda: ntkx.fc_kernels(x, None, ntkx.FcSpec(20000), get="ntk"), 0.3)
    assert latency < 2.0


def test_ctrl_c_interrupts_a_deep_biased_row(rng):
    """No angle table (bias): one row of a tile is 256 pairs x 10^6 layers, seconds long."""
    from conftest import interrupt_latency

    x = rng.standard_normal((300, 8))
    latency = interrupt_latency(lambda: ntkx.fc_kernels(x, None, ntkx.FcSpec(10**6, 1.0, 0.1), get="ntk"), 0.3)
    assert latency < 2.0


def test_progress_callback_reaches_total(rng):
    seen = []
    x = rng.standard_normal((2100, 3))
    ntkx.fc_kernels(x, None, ntkx.FcSpec(1), get="ntk", progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] == 2100 * 2101 // 2


@pytest.mark.parametrize("name", ["relu", "leaky", "abs", "abrelu", "requ"])
def test_angle_table_equals_exact_recursion(rng, name):
    """Calls with many bias-free pairs use the tabulated depth-L response of the input
    angle (cpu/angle_table.h); the CUDA kernel (emulated here) always runs the exact
    recursion. They must agree, colinear, identical and zero rows included."""
    x = _points(rng, 400, 6)
    y = rng.standard_normal((150, 6))
    y[:4] = x[2:6]
    for depth in (3, 10, 30, 60) if name != "requ" else (3, 4):
        spec = ntkx.FcSpec(depth, 1.0 if name == "requ" else 1.3, 0.0, ACTS[name])
        table = ntkx.fc_kernels(x, y, spec, device="cpu")  # 60,000 pairs in one call
        exact = ntkx.fc_kernels(x, y, spec, device="emulate")
        assert rel_err(table.nngp, exact.nngp) <= TOL["angle_table"], depth
        assert rel_err(table.ntk, exact.ntk) <= TOL["angle_table"], depth


def test_fused_symmetric_tiles_write_both_triangles(rng):
    """A symmetric call writes each tile's rows and their mirror from the tile (no
    second pass): sizes off the tile grid, a second row panel (N > 2048) and the
    angle table (bias-free ReLU) must give the cross path's values in both triangles."""
    x = _points(rng, 2333, 5)
    spec = ntkx.FcSpec(4)
    sym = ntkx.fc_kernels(x, None, spec, device="cpu")
    cross = ntkx.fc_kernels(x, x.copy(), spec, device="cpu")
    for a, b in ((sym.nngp, cross.nngp), (sym.ntk, cross.ntk)):
        np.testing.assert_array_equal(a, a.T)
        assert rel_err(a, b) <= TOL["route"]
    # float32 outputs take the same route (no streaming stores).
    f32 = ntkx.fc_kernels(x, None, spec, device="cpu", dtype=np.float32, get="ntk")
    np.testing.assert_array_equal(f32, f32.T)
    assert rel_err(f32, sym.ntk) <= TOL["float32_outputs"]
