"""Running the tiles: the work of one tile, the local thread pool, and Dask.

Whatever the scheduler, one process (the caller's) writes the manifest, one
record per tile, after the tile's data was made durable by whoever computed it:
a tile counts once, and a crash or a lost worker at any moment leaves only
complete tiles marked done.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import dataclasses
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ntkx._src.precompute import manifest, store
from ntkx._src.precompute.inputs import Source
from ntkx._src.precompute.kernel import TileKernel

Tile = Tuple[int, int]
OnDone = Callable[[manifest.TileRecord], None]


@dataclasses.dataclass(frozen=True)
class TileJob:
    """Everything a tile needs, picklable: the store, what it holds, the kernel, the inputs."""

    path: str
    meta: store.StoreMeta
    kernel: TileKernel
    x1: Source
    x2: Optional[Source]  # None: x1 against itself


def compute_tile(job: TileJob, i: int, j: int, cancel: Any = None) -> Dict[str, np.ndarray]:
    """The blocks of tile ``(i, j)`` of every kernel, in the store's dtype."""
    r0, r1, c0, c1 = job.meta.bounds(i, j)
    dtype = np.dtype(job.meta.dtype)
    out = {g: np.empty((r1 - r0, c1 - c0), dtype=dtype) for g in job.meta.get}
    a = job.x1.rows(r0, r1)
    if job.meta.symmetric and i == j:
        b = None  # a diagonal tile: one triangle computed and mirrored, exactly symmetric
    else:
        b = (job.x1 if job.x2 is None else job.x2).rows(c0, c1)
    job.kernel.compute(a, b, job.meta.get, out, cancel=cancel)
    return out


def run_tile(job: TileJob, i: int, j: int, cancel: Any = None) -> manifest.TileRecord:
    """Computes tile ``(i, j)`` and writes it durably; returns its manifest record
    (the caller writes it). The body of a local task and of a Dask task alike;
    `cancel` (a ``threading.Event``, local runs) stops the computation early."""
    return store.write_tile(job.path, job.meta, i, j, compute_tile(job, i, j, cancel))


def run_local(job: TileJob, todo: List[Tile], on_done: OnDone, workers: int = 1) -> None:
    """Runs `todo` on a pool of `workers` threads, at most one tile in flight per worker.

    The compiled backend already uses every core for one tile; a second worker
    overlaps one tile's write with the next one's computation. An exception (or
    KeyboardInterrupt) stops new tiles; an exception lets those in flight finish and
    records them, Ctrl-C cancels them at the backend's next progress report (well under
    a second: their data is not recorded, so a resume redoes them), then it propagates.
    """
    cancel = threading.Event()
    pending = iter(todo)
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ntkx-tile") as pool:
        running: Dict[cf.Future, Tile] = {}
        error: Optional[BaseException] = None
        try:
            for t in pending:
                running[pool.submit(run_tile, job, *t, cancel)] = t
                if len(running) >= workers:
                    break
            while running:
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    running.pop(fut)
                    if fut.exception() is not None:
                        error = error or fut.exception()
                        continue
                    on_done(fut.result())
                    if error is None:
                        nxt = next(pending, None)
                        if nxt is not None:
                            running[pool.submit(run_tile, job, *nxt, cancel)] = nxt
        except BaseException as e:  # KeyboardInterrupt: cancel what is in flight, record what finished
            error = e
            if isinstance(e, KeyboardInterrupt):
                cancel.set()
            for fut in cf.as_completed(list(running)):
                if fut.exception() is None:
                    on_done(fut.result())
            raise
        if error is not None:
            raise error


def _client(scheduler: Any) -> Tuple[Any, bool]:
    """A ``distributed.Client`` for `scheduler` (a Client or an address) and whether we own it."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("scheduler= needs dask.distributed: pip install 'ntkx[distributed]'") from None
    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, str):
        return Client(scheduler), True
    raise TypeError(f"scheduler must be None, a dask.distributed.Client or a scheduler address, got {scheduler!r}")


def run_dask(job: TileJob, todo: List[Tile], on_done: OnDone, scheduler: Any, retries: int = 3) -> None:
    """Runs `todo` as Dask tasks, one per tile, with explicit keys and `retries`.

    The job (inputs included when they are in memory; a file-backed input travels
    as its path) is scattered to every worker once. Each task writes its tile to
    the store (on storage the workers share) and returns only its record, which
    this process puts in the manifest as results arrive. A worker lost mid-task is
    handled by the scheduler (the task reruns elsewhere, up to
    ``distributed.scheduler.allowed-failures``); a task that raises is retried up
    to `retries` times. On failure the tiles already finished stay recorded.
    """
    from distributed import as_completed

    client, own = _client(scheduler)
    try:
        remaining = list(todo)
        for _ in range(retries + 1):
            token = uuid.uuid4().hex[:12]
            job_future = client.scatter(job, broadcast=True, hash=False)
            keys = [f"ntkx-tile-{i}-{j}-{token}" for i, j in remaining]
            futures = client.map(run_tile, [job_future] * len(remaining), [t[0] for t in remaining],
                                 [t[1] for t in remaining], key=keys, retries=retries, pure=False)
            tiles = dict(zip(keys, remaining))
            lost: List[Tile] = []
            try:
                for fut in as_completed(futures):
                    # A worker that dies holding the scattered job can take its last replica
                    # with it ("lose scattered data, which can't be recovered"); the scheduler
                    # then cancels the tiles that need it. They rerun on a fresh scatter.
                    if fut.cancelled():
                        lost.append(tiles[fut.key])
                        continue
                    on_done(fut.result())
            except BaseException:
                client.cancel(futures)
                raise
            if not lost:
                return
            remaining = lost
        raise RuntimeError(f"the Dask scheduler cancelled {len(remaining)} tiles {retries + 1} times (workers lost "
                           f"the scattered job); the finished tiles are recorded: rerun to resume")
    finally:
        if own:
            client.close()
