"""ntkx.precompute: tiled Zarr stores, crash-safe resume, the out-of-core reader.

Every test is small (tens of points, tiles of a few rows) so the suite stays fast;
the fault tests compare whole store directories byte for byte.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("zarr")

import ntkx  # noqa: E402
from conftest import TOL, rel_err  # noqa: E402
from ntkx import CntkSpec, ConvLayer, FcSpec  # noqa: E402
from ntkx import precompute as P  # noqa: E402
from ntkx._src.precompute import manifest, schedule, store as store_mod  # noqa: E402

SPEC = FcSpec(2, w_std=1.3, b_std=0.2)
#: A float32 store holds the float64 kernel rounded once: within eps32 of it.
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((23, 4))


@pytest.fixture
def x2():
    return np.random.default_rng(1).standard_normal((17, 4))


def tree(path: str) -> dict:
    """Every file of a store (relative path -> bytes), temporaries excluded."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            if not f.startswith("."):
                full = os.path.join(root, f)
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, path)] = fh.read()
    return out


def run(kernel, x1, x2=None, path=None, **kw):
    kw.setdefault("tile", 5)
    kw.setdefault("dtype", np.float64)
    return P.precompute(kernel, x1, x2, store=str(path), progress=False, **kw)


# ----------------------------------------------------------------------------- correctness

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_x2", [False, True])
def test_matches_fc_kernels_in_memory(tmp_path, x, x2, dtype, with_x2):
    other = x2 if with_x2 else None
    res = run(SPEC, x, other, tmp_path / "K.zarr", dtype=dtype)
    assert res.computed == res.total == (5 * 4 if with_x2 else 15) and not res.resumed
    ref = ntkx.fc_kernels(x, other, SPEC)
    for g in ("nngp", "ntk"):
        k = P.open(tmp_path / "K.zarr", g)
        assert k.shape == ref.ntk.shape and k.dtype == dtype
        got = k.block(0, k.shape[0], 0, k.shape[1])
        rtol = TOL["route"] if dtype == np.float64 else EPS32
        np.testing.assert_allclose(got, getattr(ref, g), rtol=rtol, atol=0)
        if not with_x2:
            assert np.array_equal(got, got.T)  # mirrored, exactly symmetric


def test_partial_tiles_and_tile_larger_than_n(tmp_path, x, x2):
    for tile in (7, 64):  # 23 = 3 * 7 + 2; one partial tile holding everything
        run(SPEC, x, x2, tmp_path / f"K{tile}.zarr", tile=tile, get="ntk")
        got = P.open(tmp_path / f"K{tile}.zarr").rows(0, 23)
        np.testing.assert_allclose(got, ntkx.fc_kernels(x, x2, SPEC, "ntk"), rtol=TOL["route"], atol=0)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_matches_cntk_kernels_in_memory(tmp_path, layout):
    imgs = np.random.default_rng(2).standard_normal((7, 5, 5, 2))
    spec = CntkSpec((ConvLayer(1.2, 0.1), ConvLayer()), readout="gap")
    given = imgs if layout == "NHWC" else imgs.transpose(0, 3, 1, 2)
    run(spec, given, None, tmp_path / "C.zarr", tile=3, layout=layout)
    ref = ntkx.cntk_kernels(imgs, None, spec)
    for g in ("nngp", "ntk"):
        np.testing.assert_allclose(P.open(tmp_path / "C.zarr", g)[:, :], getattr(ref, g), rtol=TOL["route"], atol=0)
    assert P.status(tmp_path / "C.zarr").meta.kernel["layout"] == layout


def test_stax_kernel_fn_records_its_spec(tmp_path, x):
    from ntkx import stax

    kernel_fn = stax.serial(stax.Dense(8, 1.3, 0.2), stax.Relu(), stax.Dense(8, 1.3, 0.2), stax.Relu(),
                            stax.Dense(8, 1.3, 0.2))[2]
    run(kernel_fn, x, None, tmp_path / "K.zarr", get="ntk")
    meta = P.status(tmp_path / "K.zarr").meta
    assert meta.kernel["kind"] == "kernel_fn" and meta.kernel["spec_type"] == "FcSpec"
    np.testing.assert_allclose(P.open(tmp_path / "K.zarr")[:], kernel_fn(x, None, "ntk"), rtol=TOL["route"], atol=0)


@pytest.mark.parametrize("arch, spec", [
    ("fc depth=2 w_std=1.3 b_std=0.2 act=relu", SPEC),
    ("fc", ntkx.FcSpec(3, 2**0.5, 0.0)),
    ("cnn-gap depth=2", CntkSpec((ConvLayer(2**0.5, 0.0, 3),) * 2, readout="gap", out_w_std=2**0.5)),
    ("cnn-vanilla depth=1 filter=1 act=erf w_std=1.1 b_std=0.3",
     CntkSpec((ConvLayer(1.1, 0.3, 1),), ntkx.Activation("erf", 1.0, 1.0, 0.0, "Erf"), readout="vanilla",
              out_w_std=1.1, out_b_std=0.3)),
])
def test_architecture_strings_name_their_spec(tmp_path, x, arch, spec):
    from ntkx._src.precompute.kernel import parse_architecture, spec_from_description

    assert parse_architecture(arch) == spec
    if isinstance(spec, FcSpec):
        res = run(arch, x, None, tmp_path / "K.zarr", get="ntk")
        np.testing.assert_allclose(res.open()[:, :], ntkx.fc_kernels(x, None, spec, "ntk"), rtol=TOL["route"], atol=0)
        # The string and the spec are the same computation: the spec resumes the string's store.
        assert run(spec, x, None, tmp_path / "K.zarr", get="ntk").skipped == res.total
    meta_kernel = ntkx._src.precompute.kernel.resolve_kernel(arch, {}).description()
    assert spec_from_description(meta_kernel) == spec


@pytest.mark.parametrize("arch, words", [
    ("mlp depth=3", ["'mlp'", "fc, cnn-gap, cnn-vanilla"]),
    ("fc depht=3", ["'depht'", "depth, w_std, b_std, act"]),
    ("fc filter=3", ["'filter'", "depth, w_std, b_std, act"]),
    ("fc act=tanh", ["'tanh'", "relu, abs, step, requ, erf"]),
    ("fc depth=x", ["depth='x'", "integer"]),
    ("cnn-gap depth=0", ["depth='0'", ">= 1"]),
    ("fc w_std=-1", ["w_std='-1'", "> 0"]),
    ("fc b_std=nan", ["b_std='nan'", ">= 0"]),
    ("fc depth", ["'depth'", "key=value"]),
    ("fc depth=2 depth=3", ["'depth' given twice"]),
    ("", ["empty"]),
])
def test_bad_architecture_strings_list_the_valid_ones(tmp_path, x, arch, words):
    with pytest.raises(ValueError) as e:
        P.precompute(arch, x, store=tmp_path / "K.zarr", progress=False)
    for w in words:
        assert w in str(e.value), str(e.value)
    assert not (tmp_path / "K.zarr").exists()


def test_file_inputs_share_the_fingerprint(tmp_path, x):
    import zarr

    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    zarr.create_array(str(tmp_path / "x_zarr"), data=x, chunks=(5, 4))
    first = run(SPEC, str(tmp_path / "x.npy"), None, tmp_path / "K.zarr")
    assert first.computed == first.total
    for given in (x, str(tmp_path / "x.npz"), str(tmp_path / "x_zarr"), np.load(tmp_path / "x.npy", mmap_mode="r")):
        again = run(SPEC, given, None, tmp_path / "K.zarr")  # same bytes: a resume with nothing to do
        assert again.resumed and again.computed == 0 and again.skipped == first.total


# ----------------------------------------------------------------------------- refusals

def test_resume_with_anything_different_names_it(tmp_path, x, x2):
    path = tmp_path / "K.zarr"
    run(SPEC, x, None, path)
    cases = [
        (dict(kernel=FcSpec(3)), "kernel"),
        (dict(x1=x + 1e-9), "fingerprint"),
        (dict(x2=x), "symmetric"),
        (dict(tile=6), "tile"),
        (dict(dtype=np.float32), "dtype"),
        (dict(get="ntk"), "get"),
    ]
    before = tree(str(path))
    for change, field in cases:
        args = {**dict(kernel=SPEC, x1=x, x2=None, tile=5, dtype=np.float64, get=("nngp", "ntk")), **change}
        with pytest.raises(ValueError, match=f"differing: .*{field}: stored"):
            P.precompute(args.pop("kernel"), args.pop("x1"), args.pop("x2"), store=str(path), progress=False, **args)
    assert tree(str(path)) == before  # nothing touched


def test_nan_input_refused_before_any_work(tmp_path, x, x2):
    bad = x2.copy()
    bad[11, 2] = np.inf
    with pytest.raises(ValueError, match=r"x2 contains 1 NaN or Inf value\(s\) \(in rows 0:17\)"):
        run(SPEC, x, bad, tmp_path / "K.zarr")
    assert not (tmp_path / "K.zarr").exists()


def test_not_a_store_refused(tmp_path, x):
    (tmp_path / "K.zarr").mkdir()
    (tmp_path / "K.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(FileNotFoundError, match="not a kernel store"):
        run(SPEC, x, None, tmp_path / "K.zarr")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_target_refused(tmp_path, x):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            run(SPEC, x, None, ro / "K.zarr")
    finally:
        ro.chmod(0o755)
    path = tmp_path / "K.zarr"  # an existing store made read-only
    run(SPEC, x, None, path, get="ntk")
    os.remove(os.path.join(path, manifest.DIRNAME, "0_0.json"))
    (path / manifest.DIRNAME).chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            run(SPEC, x, None, path, get="ntk")
    finally:
        (path / manifest.DIRNAME).chmod(0o755)


# ----------------------------------------------------------------------------- faults

class Boom(RuntimeError):
    pass


def _fail_after(monkeypatch, module, name, k):
    """Patches module.name to raise Boom on its (k+1)-th call."""
    real, calls = getattr(module, name), [0]

    def patched(*a, **kw):
        calls[0] += 1
        if calls[0] > k:
            raise Boom(f"injected after {k}")
        return real(*a, **kw)

    monkeypatch.setattr(module, name, patched)


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_and_resumed_is_bit_identical(tmp_path, x, x2, monkeypatch, workers):
    ref, path = tmp_path / "ref.zarr", tmp_path / "K.zarr"
    run(SPEC, x, x2, ref)
    rounds = 0
    while True:
        with monkeypatch.context() as m:
            _fail_after(m, schedule, "compute_tile", 3)
            try:
                res = run(SPEC, x, x2, path, workers=workers)
                break
            except Boom:
                rounds += 1
                done = P.status(path).done
                assert done == min(3 * rounds, 20)
    assert rounds == 6 and res.computed == 2
    assert tree(str(path)) == tree(str(ref))


def test_fault_between_data_and_manifest_leaves_tile_undone(tmp_path, x, monkeypatch):
    ref, path = tmp_path / "ref.zarr", tmp_path / "K.zarr"
    run(SPEC, x, None, ref)
    with monkeypatch.context() as m:
        _fail_after(m, manifest, "write", 2)
        with pytest.raises(Boom):
            run(SPEC, x, None, path)
    # the third tile (0, 2) has its data on disk but is not marked done
    assert os.path.exists(store_mod.chunk_file(str(path), "ntk", 0, 2))
    assert set(manifest.read(str(path))) == {(0, 0), (0, 1)}
    with pytest.raises(ValueError, match="incomplete: 13 of 15"):
        P.open(path)
    partial = P.open(path, allow_incomplete=True)
    assert np.isnan(partial.block(15, 20, 15, 20)).all()  # never computed: the fill value
    res = run(SPEC, x, None, path)
    assert res.computed == 13 and res.skipped == 2
    assert tree(str(path)) == tree(str(ref))


def test_corrupted_tile_is_recomputed(tmp_path, x):
    ref, path = tmp_path / "ref.zarr", tmp_path / "K.zarr"
    run(SPEC, x, None, ref)
    run(SPEC, x, None, path)
    with open(store_mod.chunk_file(str(path), "nngp", 1, 3), "r+b") as f:
        f.seek(8)
        f.write(b"\x01\x02\x03")
    res = run(SPEC, x, None, path)
    assert (res.computed, res.recomputed, res.skipped) == (1, 1, 14)
    assert tree(str(path)) == tree(str(ref))


_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from ntkx import FcSpec, precompute as P
    from ntkx._src.precompute import schedule
    real = schedule.compute_tile
    def slow(*a):
        time.sleep(0.01)
        return real(*a)
    schedule.compute_tile = slow
    x = np.load(sys.argv[1])
    print("start", flush=True)
    P.precompute(FcSpec(2, w_std=1.3, b_std=0.2), x, store=sys.argv[2], tile=4, dtype=np.float64,
                 progress=False, workers=2)
""")


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    xs = np.random.default_rng(3).standard_normal((64, 4))  # 16 x 16 grid: 136 tiles
    np.save(tmp_path / "x.npy", xs)
    ref, path = tmp_path / "ref.zarr", tmp_path / "K.zarr"
    run(SPEC, xs, None, ref, tile=4)
    rnd = random.Random(14)
    kills = 0
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "x.npy"), str(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "start", child.stderr.read()
        time.sleep(rnd.uniform(0.05, 0.6))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert kills >= 1
    # On a loaded machine every kill can land before the child made the store (its
    # imports take longer than the sleep): the rerun then starts from nothing.
    done_before = P.status(path).done if (path / "zarr.json").exists() else 0
    res = run(SPEC, xs, None, path, tile=4)
    assert res.skipped == done_before and res.computed + res.skipped == 136
    assert tree(str(path)) == tree(str(ref))


def test_a_creation_killed_midway_leaves_no_store_and_the_rerun_makes_it(tmp_path, monkeypatch, x):
    """The store is made in a sibling directory and renamed into place: a kill during its
    creation (here an error in its fsync) leaves no half-made group at the path, and the
    leftovers of dead creators are removed by the next run."""
    path = tmp_path / "K.zarr"
    stale = tmp_path / "K.zarr.creating-999999999"  # a pid no process has
    stale.mkdir()

    def fail(paths):
        raise OSError("killed here")

    monkeypatch.setattr(store_mod.durable, "fsync_paths", fail)
    with pytest.raises(OSError, match="killed here"):
        run(SPEC, x, None, path, tile=8)
    assert not path.exists() and not stale.exists()
    monkeypatch.undo()
    res = run(SPEC, x, None, path, tile=8)
    assert res.skipped == 0 and res.computed > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["K.zarr"]
    np.testing.assert_allclose(P.open(path, "ntk")[:], ntkx.fc_kernels(x, None, SPEC, "ntk"), rtol=TOL["route"], atol=0)


# ----------------------------------------------------------------------------- reader

def test_reader_blocks_rows_diagonal_products(tmp_path, x, x2):
    run(SPEC, x, None, tmp_path / "S.zarr")
    run(SPEC, x, x2, tmp_path / "R.zarr")
    s, r = P.open(tmp_path / "S.zarr"), P.open(tmp_path / "R.zarr", "nngp")
    # The readers' slices are checked bit for bit against the whole stored matrix, which
    # matches one call to TOL['route'] (tiles are cross calls; a symmetric call's rows
    # start at the diagonal, and vector lanes and remainders may round differently).
    ks, kr = s[:], r[:]
    np.testing.assert_allclose(ks, ntkx.fc_kernels(x, None, SPEC, "ntk"), rtol=TOL["route"], atol=0)
    np.testing.assert_allclose(kr, ntkx.fc_kernels(x, x2, SPEC, "nngp"), rtol=TOL["route"], atol=0)
    np.testing.assert_array_equal(s.block(3, 19, 2, 13), ks[3:19, 2:13])  # crosses the diagonal
    np.testing.assert_array_equal(s.rows(21, 23), ks[21:23])
    np.testing.assert_array_equal(s[4:9], ks[4:9])
    np.testing.assert_array_equal(s.diagonal(), np.diag(ks))
    np.testing.assert_array_equal(r.block(0, 23, 6, 17), kr[:, 6:])
    v = np.random.default_rng(4).standard_normal((23, 3))
    w = np.random.default_rng(5).standard_normal((17, 2))
    np.testing.assert_allclose(s @ v, ks @ v, rtol=TOL["reference"], atol=TOL["reference"])
    np.testing.assert_allclose(s.matmat(v[:, 0]), ks @ v[:, 0], rtol=TOL["reference"], atol=TOL["reference"])
    np.testing.assert_allclose(r.matmat(w), kr @ w, rtol=TOL["reference"], atol=TOL["reference"])
    np.testing.assert_allclose(r.rmatmat(v), kr.T @ v, rtol=TOL["reference"], atol=TOL["reference"])
    np.testing.assert_allclose(r.as_operator().rmatmat(v), kr.T @ v, rtol=TOL["reference"], atol=TOL["reference"])
    with pytest.raises(ValueError, match="holds"):
        P.open(tmp_path / "R.zarr", "other")


def test_solvers_accept_a_stored_kernel(tmp_path):
    from ntkx import dynamics

    xs = np.random.default_rng(6).standard_normal((40, 5))
    y = np.random.default_rng(7).standard_normal((40, 2))
    run(SPEC, xs, None, tmp_path / "K.zarr", tile=9, get="ntk")
    k = P.open(tmp_path / "K.zarr")
    dense = ntkx.fc_kernels(xs, None, SPEC, "ntk")
    want = np.linalg.solve(dense + 1e-2 * np.eye(40), y)
    for given in (k.as_operator(), k):  # the streamed operator, and the reader as an array kernel
        sol = dynamics.cg_solve(given, y, ridge=1e-2, tol=1e-12)
        assert rel_err(sol.x, want) <= TOL["iterative"]
    vals, _ = dynamics.top_eigenpairs(k.as_operator(), 3)
    np.testing.assert_allclose(np.sort(vals)[::-1], np.linalg.eigvalsh(dense)[::-1][:3], rtol=TOL["iterative"])


def test_ctrl_c_cancels_tiles_in_flight_within_a_second(tmp_path):
    """A tile runs in a worker thread, where SIGINT is not delivered: Ctrl-C sets the
    runner's cancel event and the backend's next progress report stops the tile. Nothing
    half-done is recorded, and the resume completes the same store."""
    from conftest import interrupt_latency

    x = np.random.default_rng(5).standard_normal((600, 8, 8, 1))
    path = tmp_path / "K.zarr"
    lat = interrupt_latency(lambda: P.precompute("cnn-gap depth=3", x, store=path, get="ntk", tile=600,
                                                 progress=False), delay=1.0)
    assert lat < 1.0, f"Ctrl-C took {lat:.2f} s to stop the tile in flight"
    assert P.status(path).done == 0  # the cancelled tile is not marked done


def test_per_layer_spec_round_trips_through_the_store(tmp_path, x):
    """An FcSpec with per-layer stds is recorded whole: rebuilt from the store's description, it resumes it."""
    from ntkx._src.precompute.kernel import resolve_kernel, spec_from_description

    spec = ntkx.FcSpec(2, activation=ntkx.Activation("erf", 1.0, 1.0, 0.0), w_layers=(1.3, 0.7, 2.0),
                       b_layers=(0.1, 0.0, 0.4))
    rebuilt = spec_from_description(resolve_kernel(spec, {}).description())
    assert rebuilt == spec and rebuilt.w_layers == (1.3, 0.7, 2.0)
    res = run(spec, x, None, tmp_path / "K.zarr", get="ntk")
    np.testing.assert_allclose(res.open()[:, :], ntkx.fc_kernels(x, None, spec, "ntk"), rtol=TOL["route"], atol=0)
    assert run(rebuilt, x, None, tmp_path / "K.zarr", get="ntk").skipped == res.total
