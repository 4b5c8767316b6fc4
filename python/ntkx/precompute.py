"""Tiled, resumable kernel matrices on disk (Zarr), local or on a Dask cluster.

>>> from ntkx import FcSpec, precompute                      # doctest: +SKIP
>>> precompute.precompute(FcSpec(3), "x_train.npy", store="K.zarr", get="ntk")  # doctest: +SKIP
>>> k = precompute.open("K.zarr")                            # doctest: +SKIP
>>> ntkx.dynamics.cg_solve(k.as_operator(), y, ridge=1e-3)   # doctest: +SKIP

A store is a directory (zarr 3, format v3) with one ``(N1, N2)`` array per kernel,
chunked by tile, and a manifest of finished tiles: a tile counts as done only once
its record is there, written after its data was fsynced (`ntkx._src.precompute`
describes the layout). Rerunning the same call resumes: finished tiles are verified
(crc32) and skipped. zarr and dask come with the optional ``distributed`` extra
(``pip install 'ntkx[distributed]'``); importing ntkx does not need them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Optional

import numpy as np

from ntkx._src import validate
from ntkx._src.precompute import manifest, schedule, store as _store
from ntkx._src.precompute.inputs import as_source, fingerprint
from ntkx._src.precompute.kernel import resolve_kernel
from ntkx._src.precompute.reader import StoredKernel
from ntkx._src.precompute.store import StoreMeta
from ntkx._src.progress import Progress, ProgressArg

__all__ = ["DEFAULT_TILE", "PrecomputeResult", "StoreStatus", "StoredKernel", "open", "precompute", "status"]

#: Default tile side: a 2048 x 2048 float32 tile is 16 MiB per kernel, large enough
#: for the backend to run at full speed and small enough that a lost tile is cheap.
DEFAULT_TILE = 2048


@dataclasses.dataclass(frozen=True)
class PrecomputeResult:
    """What a `precompute` call did.

    Attributes:
      path: the store's directory.
      total: tiles in the store (``j >= i`` only when symmetric).
      computed: tiles computed by this call.
      skipped: tiles found done and verified.
      recomputed: tiles marked done whose bytes failed verification (recomputed).
      resumed: whether the store existed before the call.
      seconds: wall time of the call.
    """

    path: str
    total: int
    computed: int
    skipped: int
    recomputed: int
    resumed: bool
    seconds: float

    def open(self, kernel: Optional[str] = None) -> StoredKernel:
        """The store's reader for `kernel` (default: ``'ntk'`` when stored)."""
        return StoredKernel(self.path, kernel)


@dataclasses.dataclass(frozen=True)
class StoreStatus:
    """Progress of a store: `done` of `total` tiles, and what made it (`meta`)."""

    path: str
    done: int
    total: int
    meta: StoreMeta

    @property
    def complete(self) -> bool:
        return self.done == self.total


def _check_tile(tile: Any) -> int:
    if isinstance(tile, (bool, np.bool_)) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    return int(tile)


def precompute(
    kernel: Any,
    x1: Any,
    x2: Any = None,
    store: Any = None,
    get: Any = ("nngp", "ntk"),
    tile: int = DEFAULT_TILE,
    dtype: Any = np.float32,
    scheduler: Any = None,
    progress: ProgressArg = True,
    *,
    workers: int = 2,
    verify: bool = True,
    retries: int = 3,
    **kernel_options: Any,
) -> PrecomputeResult:
    """Computes the kernel(s) of `kernel` between `x1` and `x2` into a store on disk, tile by tile.

    Args:
      kernel: a stax ``kernel_fn`` (``ntkx.stax.serial(...)[2]``), an `ntkx.FcSpec`, an
        `ntkx.CntkSpec`, or an architecture string such as ``"fc depth=3 w_std=1.4
        b_std=0.1 act=relu"`` or ``"cnn-gap depth=6"`` (`ntkx._src.precompute.kernel`).
      x1: ``(N1, d)`` points or ``(N1, H, W, C)`` images: an array, a numpy memmap, a
        ``.npy`` path (memory-mapped, never loaded whole), a ``.npz`` path (its one
        array), a Zarr array or the path of one.
      x2: likewise, or None for `x1` against itself: only tiles on and above the
        diagonal are computed and stored; the reader mirrors them.
      store: the store's directory (created; or resumed when it holds a store of the
        same computation).
      get: ``'nngp'``, ``'ntk'`` or a tuple of them.
      tile: the tile (and chunk) side; any N works, the last tiles may be partial.
      dtype: the stored dtype, float32 (default: half the disk) or float64.
      scheduler: None to run here; a ``dask.distributed.Client`` or a scheduler
        address (``'tcp://host:8786'``) to run one task per tile on that cluster
        (the workers must see `store`, and any input given as a path, at the same path).
      progress: True for a tqdm bar on stderr (tiles), False, or ``f(done, total)``.
      workers: local threads, one tile in flight each (default 2: the backend
        already uses every core for one tile, a second overlaps one tile's
        write and fsync with the next tile's compute;
        measured at N = 4,000 float32 on 2 cores: 1.15x the time of
        ``fc_kernels(..., out=memmap)``, against 1.7x with 1 worker).
      verify: check the crc32 of every tile found done before skipping it.
      retries: Dask retries of a tile whose task raised.
      **kernel_options: ``device``, ``threads``, ``memory_budget``, and for CNNs
        ``layout='NHWC'|'NCHW'``, passed to `ntkx.fc_kernels` / `ntkx.cntk_kernels`.

    Returns:
      A `PrecomputeResult`; ``.open()`` gives the reader.

    Raises, before the first tile: ValueError for NaN/Inf inputs, mismatched inputs,
    or a store at `store` made by another computation (naming what differs);
    PermissionError for a read-only target. A failure during the run leaves every
    tile finished so far recorded; call again to resume.
    """
    t0 = time.perf_counter()
    if store is None:
        raise TypeError("store= must name the store's directory, e.g. store='K.zarr'")
    path = os.path.abspath(os.fspath(store))
    names, _ = validate.check_get(get)
    dt = validate.check_dtype(dtype)
    tile = _check_tile(tile)
    progress = validate.check_progress(progress)
    if isinstance(workers, (bool, np.bool_)) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    tk = resolve_kernel(kernel, kernel_options)
    src1 = as_source(x1, "x1")
    src2 = None if x2 is None else as_source(x2, "x2")
    want_ndim = {"fc": 2, "cntk": 4}.get(tk.kind)
    for name, s in (("x1", src1), ("x2", src2)):
        if s is not None and want_ndim is not None and len(s.shape) != want_ndim:
            raise ValueError(f"{name} must be {'(N, d) points' if want_ndim == 2 else '(N, H, W, C) images'} "
                             f"for this kernel, got shape {s.shape}")
    if src2 is not None and src2.shape[1:] != src1.shape[1:]:
        raise ValueError(f"x1 and x2 must have the same shape past the first axis, got {src1.shape} and {src2.shape}")
    meta = StoreMeta(
        kernel=tk.description(), get=names, dtype=dt.name, tile=tile,
        shape=(src1.shape[0], (src2 or src1).shape[0]), symmetric=src2 is None,
        fingerprint={"x1": fingerprint(src1, "x1"), "x2": None if src2 is None else fingerprint(src2, "x2")},
        version=_store.ntkx_version())
    resumed = _store.create_or_resume(path, meta)

    job = schedule.TileJob(path, meta, tk, src1, src2)
    tiles = meta.tiles()
    if resumed:
        manifest.clean_temporaries(path)
    done = manifest.read(path)
    recomputed = 0
    for t, rec in list(done.items()):
        if t not in set(tiles) or (verify and not _store.verify_tile(path, meta, rec)):
            manifest.remove(path, *t)
            del done[t]
            recomputed += t in set(tiles)
    todo = [t for t in tiles if t not in done]
    bar = Progress(f"precompute {os.path.basename(path)}", len(tiles), progress, unit="tile")
    computed = [0]

    def on_done(record: manifest.TileRecord) -> None:
        manifest.write(path, record)
        computed[0] += 1
        bar.advance(1)

    with bar:
        if done:
            bar.advance(len(done))
        if todo:
            if scheduler is None:
                schedule.run_local(job, todo, on_done, workers=int(workers))
            else:
                schedule.run_dask(job, todo, on_done, scheduler, retries=retries)
    return PrecomputeResult(path, len(tiles), computed[0], len(done), recomputed, resumed, time.perf_counter() - t0)


def open(store: Any, kernel: Optional[str] = None, *, allow_incomplete: bool = False) -> StoredKernel:  # noqa: A001
    """The reader of kernel `kernel` (default: ``'ntk'`` when stored) of a store.

    Raises ValueError for an incomplete store unless `allow_incomplete` (then tiles
    not done read as NaN).
    """
    return StoredKernel(os.fspath(store), kernel, allow_incomplete=allow_incomplete)


def status(store: Any) -> StoreStatus:
    """How far a store is: tiles done (per the manifest) of the total, and its metadata."""
    path = os.path.abspath(os.fspath(store))
    meta = _store.read_meta(path)
    tiles = set(meta.tiles())
    return StoreStatus(path, sum(t in tiles for t in manifest.read(path)), len(tiles), meta)
