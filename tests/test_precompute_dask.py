"""ntkx.precompute on a dask.distributed LocalCluster of two worker processes."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

import ntkx  # noqa: E402
from conftest import TOL  # noqa: E402
from ntkx import FcSpec  # noqa: E402
from ntkx import precompute as P  # noqa: E402
from ntkx._src.precompute import manifest  # noqa: E402

SPEC = FcSpec(2, w_std=1.3, b_std=0.2)


def _tree(path):
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            if not f.startswith("."):
                with open(os.path.join(root, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(root, f), path)] = fh.read()
    return out


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                       worker_dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_dask_store_equals_local_store(tmp_path, client):
    x = np.random.default_rng(0).standard_normal((23, 4))
    x2 = np.random.default_rng(1).standard_normal((11, 4))
    np.save(tmp_path / "x.npy", x)
    for other in (None, x2):
        local, remote = tmp_path / "local.zarr", tmp_path / "dask.zarr"
        for p in (local, remote):
            if p.exists():
                import shutil
                shutil.rmtree(p)
        P.precompute(SPEC, x, other, store=str(local), tile=5, dtype=np.float64, progress=False)
        # the in-memory x2 is scattered once; x1 travels as its .npy path
        res = P.precompute(SPEC, str(tmp_path / "x.npy"), other, store=str(remote), tile=5, dtype=np.float64,
                           progress=False, scheduler=client)
        assert res.computed == res.total
        assert _tree(str(remote)) == _tree(str(local))
        np.testing.assert_allclose(P.open(remote).rows(0, 23), ntkx.fc_kernels(x, other, SPEC, "ntk"),
                                   rtol=TOL["route"], atol=0)


def test_dask_address_and_resume(tmp_path, client):
    x = np.random.default_rng(2).standard_normal((14, 3))
    path = tmp_path / "K.zarr"
    P.precompute(SPEC, x, None, store=str(path), tile=4, get="ntk", dtype=np.float32, progress=False,
                 scheduler=client.scheduler.address)
    os.remove(os.path.join(path, manifest.DIRNAME, "1_2.json"))
    res = P.precompute(SPEC, x, None, store=str(path), tile=4, get="ntk", dtype=np.float32, progress=False,
                       scheduler=client)
    assert (res.computed, res.skipped) == (1, 9)


def _killer_tile(job, i, j):
    """The tile task, except that the first attempt at tile (0, 1) kills its worker process."""
    from ntkx._src.precompute import schedule, store

    flag = os.path.join(job.path, ".killed-once")
    if (i, j) == (0, 1) and not os.path.exists(flag):
        open(flag, "w").close()
        os._exit(1)
    return store.write_tile(job.path, job.meta, i, j, schedule.compute_tile(job, i, j))


def _with_tile_task(tmp_path, client, monkeypatch, tile_task, seed):
    """Precomputes a 12 x 12 store on `client` with `tile_task` as the workers' tile task,
    and locally without it: ``(result, path, reference path)``."""
    import sys

    import cloudpickle

    from ntkx._src.precompute import schedule

    x = np.random.default_rng(seed).standard_normal((12, 3))
    ref, path = tmp_path / "ref.zarr", tmp_path / "K.zarr"
    P.precompute(SPEC, x, None, store=str(ref), tile=4, dtype=np.float64, progress=False)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    monkeypatch.setattr(schedule, "run_tile", tile_task)
    res = P.precompute(SPEC, x, None, store=str(path), tile=4, dtype=np.float64, progress=False, scheduler=client)
    return res, path, ref


def test_worker_killed_mid_run_is_recovered(tmp_path, client, monkeypatch):
    t0 = time.perf_counter()
    _, path, ref = _with_tile_task(tmp_path, client, monkeypatch, _killer_tile, 3)
    assert os.path.exists(path / ".killed-once")
    assert _tree(str(path)) == _tree(str(ref))
    assert time.perf_counter() - t0 < 60


def _self_cancelling_tile(job, i, j):
    """The tile task, except that the first attempt at tile (0, 1) has the scheduler cancel it
    (what happens to the tiles of a scattered job whose last replica died with a worker)."""
    from distributed import Future, get_client, get_worker

    from ntkx._src.precompute import schedule, store

    flag = os.path.join(job.path, ".cancelled-once")
    if (i, j) == (0, 1) and not os.path.exists(flag):
        open(flag, "w").close()
        client = get_client()
        client.cancel([Future(get_worker().get_current_task(), client=client)], force=True)
        time.sleep(2)
    return store.write_tile(job.path, job.meta, i, j, schedule.compute_tile(job, i, j))


def test_tiles_the_scheduler_cancels_are_rerun(tmp_path, client, monkeypatch):
    res, path, ref = _with_tile_task(tmp_path, client, monkeypatch, _self_cancelling_tile, 4)
    assert os.path.exists(path / ".cancelled-once")
    assert res.computed == 6
    assert _tree(str(path)) == _tree(str(ref))
