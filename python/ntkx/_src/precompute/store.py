"""The Zarr layout of a kernel store, its identity, and the durable tile write.

Layout of ``K.zarr/`` (zarr 3, format v3, a LocalStore directory):

* ``zarr.json``: the group; its attribute ``ntkx`` is `StoreMeta` (what made it);
* ``nngp/``, ``ntk/``: one ``(N1, N2)`` array per kernel asked for, chunks
  ``(tile, tile)``, no compression (kernel values barely compress and raw chunks
  keep the write cheap), fill value NaN (a tile never computed reads as NaN);
* ``manifest/``: the completion records (`manifest`).

For ``x2=None`` only chunks with ``j >= i`` are written; the reader mirrors.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ntkx._src import durable
from ntkx._src.precompute import manifest

#: Version of this layout; a store of another format version is refused.
FORMAT = 1
ATTR = "ntkx"


def zarr_module() -> Any:
    """The zarr package, or an ImportError saying how to install it."""
    try:
        import zarr
    except ImportError:
        raise ImportError("ntkx.precompute needs zarr >= 3.1: pip install 'ntkx[distributed]'") from None
    return zarr


def ntkx_version() -> str:
    from ntkx import __version__

    return __version__


@dataclasses.dataclass(frozen=True)
class StoreMeta:
    """What a store holds and what made it; compared field by field on resume.

    Attributes:
      kernel: the architecture's description (`kernel.TileKernel.description`).
      get: the kernels stored, in order.
      dtype: ``'float32'`` or ``'float64'``.
      tile: the tile (chunk) side.
      shape: ``(N1, N2)``.
      symmetric: x2 was None (only tiles on and above the diagonal are stored).
      fingerprint: sha256 of x1 and of x2 (None when symmetric).
      version: the ntkx version that made it.
      format: the layout version (`FORMAT`).
    """

    kernel: Dict[str, Any]
    get: Tuple[str, ...]
    dtype: str
    tile: int
    shape: Tuple[int, int]
    symmetric: bool
    fingerprint: Dict[str, Optional[str]]
    version: str
    format: int = FORMAT

    def to_attrs(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["get"], d["shape"] = list(self.get), list(self.shape)
        return d

    @staticmethod
    def from_attrs(d: Dict[str, Any]) -> "StoreMeta":
        fields = {f.name for f in dataclasses.fields(StoreMeta)}
        d = {k: v for k, v in d.items() if k in fields}
        return StoreMeta(**{**d, "get": tuple(d["get"]), "shape": tuple(int(s) for s in d["shape"])})

    def differences(self, other: "StoreMeta") -> List[str]:
        """Human-readable ``field: stored X, given Y`` for each field that differs."""
        mine, theirs = self.to_attrs(), other.to_attrs()
        return [f"{k}: stored {mine[k]!r}, given {theirs[k]!r}" for k in mine if mine[k] != theirs.get(k)]

    @property
    def grid(self) -> Tuple[int, int]:
        """Number of tiles along each axis (the last ones may be partial)."""
        return (-(-self.shape[0] // self.tile), -(-self.shape[1] // self.tile))

    def tiles(self) -> List[Tuple[int, int]]:
        """Every tile to compute, row-major; only ``j >= i`` when symmetric."""
        g0, g1 = self.grid
        return [(i, j) for i in range(g0) for j in range(g1) if not self.symmetric or j >= i]

    def bounds(self, i: int, j: int) -> Tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)`` of tile ``(i, j)``."""
        t = self.tile
        return i * t, min((i + 1) * t, self.shape[0]), j * t, min((j + 1) * t, self.shape[1])


def read_meta(path: str) -> StoreMeta:
    """The `StoreMeta` of the store at `path`, or a clear ValueError / FileNotFoundError."""
    zarr = zarr_module()

    if not os.path.isfile(os.path.join(path, "zarr.json")):
        raise FileNotFoundError(
            f"{path!r} is not a kernel store (no zarr.json); make one with ntkx.precompute.precompute")
    group = zarr.open_group(path, mode="r", zarr_format=3)
    attrs = dict(group.attrs)
    if ATTR not in attrs:
        raise ValueError(
            f"{path!r} is a Zarr group but not an ntkx kernel store (no {ATTR!r} attribute); "
            f"use another store path")
    d = attrs[ATTR]
    if d.get("format") != FORMAT:
        raise ValueError(f"{path!r} has store format {d.get('format')!r}; this ntkx reads format {FORMAT}")
    return StoreMeta.from_attrs(d)


def create_or_resume(path: str, meta: StoreMeta) -> bool:
    """Makes the store for `meta` at `path`, or checks that the one there is for `meta`.

    Returns True when an existing store is resumed. Raises, before any work:
    ValueError naming every field that differs (another kernel, inputs, dtype,
    tile ...), or when `path` holds something else; PermissionError when the
    target is not writable.
    """
    zarr = zarr_module()

    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"store path {path!r} exists and is not a directory")
    if os.path.isdir(path) and os.listdir(path):
        stored = read_meta(path)
        diff = stored.differences(meta)
        if diff:
            raise ValueError(
                f"the store {path!r} was made for another computation; differing: " + "; ".join(diff)
                + ". Use a new store path, or delete this one to start over")
        durable.check_writable(manifest.directory(path), "the store's manifest directory")
        return True
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"the store's parent directory {parent!r} does not exist")
    durable.check_writable(path if os.path.isdir(path) else parent, "the store's directory")
    # Made whole in a sibling directory and renamed into place, so a kill at any moment
    # leaves either no store or a complete one (never a group a resume must refuse).
    _remove_stale_creations(path)
    tmp = f"{path}.creating-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    group = zarr.open_group(tmp, mode="w", zarr_format=3)
    for name in meta.get:
        group.create_array(
            name, shape=meta.shape, chunks=(meta.tile, meta.tile), dtype=meta.dtype, fill_value=np.nan,
            compressors=None, chunk_key_encoding={"name": "default", "separator": "/"})
    os.makedirs(manifest.directory(tmp), exist_ok=True)
    group.attrs[ATTR] = meta.to_attrs()
    durable.fsync_paths([os.path.join(tmp, n, "zarr.json") for n in meta.get]
                        + [os.path.join(tmp, n) for n in meta.get]
                        + [manifest.directory(tmp), os.path.join(tmp, "zarr.json"), tmp])
    os.rename(tmp, path)  # atomic; replaces an empty directory at `path`
    durable.fsync_paths([path, parent])
    return False


def _remove_stale_creations(path: str) -> None:
    """Removes the ``PATH.creating-PID`` directories that killed creations left behind."""
    for tmp in glob.glob(glob.escape(path) + ".creating-*"):
        try:
            pid = int(tmp.rsplit("-", 1)[1])
            os.kill(pid, 0)  # still running: another process is making this store
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


_arrays: Dict[Tuple[str, str, str], Any] = {}
_arrays_lock = threading.Lock()


def array(path: str, name: str, mode: str = "r+") -> Any:
    """The Zarr array `name` of the store at `path`, opened once per process and mode."""
    zarr = zarr_module()

    key = (os.path.abspath(path), name, mode)
    with _arrays_lock:
        if key not in _arrays:
            _arrays[key] = zarr.open_array(os.path.join(key[0], name), mode=mode, zarr_format=3)
        return _arrays[key]


def chunk_file(path: str, name: str, i: int, j: int) -> str:
    """Where the LocalStore keeps chunk ``(i, j)`` of array `name` (the ``/`` key encoding)."""
    return os.path.join(path, name, "c", str(i), str(j))


def write_tile(path: str, meta: StoreMeta, i: int, j: int, blocks: Dict[str, np.ndarray]) -> manifest.TileRecord:
    """Writes tile ``(i, j)`` of each kernel and makes it durable (chunk files and their
    directories fsynced); returns the record to put in the manifest (not written here)."""
    r0, r1, c0, c1 = meta.bounds(i, j)
    crcs = []
    for name in meta.get:
        block = blocks[name]
        array(path, name)[r0:r1, c0:c1] = block
        f = chunk_file(path, name, i, j)
        durable.fsync_paths([f, os.path.dirname(f), os.path.dirname(os.path.dirname(f)), os.path.join(path, name)])
        crcs.append((name, manifest.checksum(block)))
    return manifest.TileRecord(i, j, tuple(sorted(crcs)))


def read_tile(path: str, meta: StoreMeta, name: str, i: int, j: int) -> np.ndarray:
    """Tile ``(i, j)`` of kernel `name` as stored (its dtype, partial at the edges)."""
    r0, r1, c0, c1 = meta.bounds(i, j)
    return np.asarray(array(path, name, "r")[r0:r1, c0:c1])


def verify_tile(path: str, meta: StoreMeta, record: manifest.TileRecord) -> bool:
    """Whether the stored bytes of a tile marked done still match its record's crc32."""
    want = dict(record.crc32)
    if set(want) != set(meta.get):
        return False
    return all(manifest.checksum(read_tile(path, meta, n, record.i, record.j)) == want[n] for n in meta.get)
