"""Per-tile completion records: one small JSON file per finished tile.

A tile counts as done only when ``manifest/{i}_{j}.json`` exists in the store
folder; it is written (atomically, see `durable.atomic_write`) after the tile's
chunk files were fsynced, and records the crc32 of each kernel's tile bytes so a
rerun can verify the data before skipping it. Chunk existence is never used as a
marker (zarr 3 skips chunks equal to the fill value; its writes are not atomic).
One file per tile keeps each record's write independent of every other (no
append to a shared log that a crash could tear).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from typing import Dict, Tuple

import numpy as np

from ntkx._src import durable

DIRNAME = "manifest"


@dataclasses.dataclass(frozen=True)
class TileRecord:
    """A finished tile: its grid position and the crc32 of each kernel's bytes."""

    i: int
    j: int
    crc32: Tuple[Tuple[str, int], ...]

    def to_json(self) -> bytes:
        return json.dumps({"i": self.i, "j": self.j, "crc32": dict(self.crc32)}, sort_keys=True).encode()

    @staticmethod
    def from_json(data: bytes) -> "TileRecord":
        d = json.loads(data)
        return TileRecord(int(d["i"]), int(d["j"]), tuple(sorted((str(k), int(v)) for k, v in d["crc32"].items())))


def checksum(block: np.ndarray) -> int:
    """crc32 of a tile's bytes in C order (the stored dtype)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(block)).cast("B"))


def directory(store_path: str) -> str:
    return os.path.join(store_path, DIRNAME)


def _entry(store_path: str, i: int, j: int) -> str:
    return os.path.join(directory(store_path), f"{i}_{j}.json")


def write(store_path: str, record: TileRecord) -> None:
    """Marks a tile done. Call only after its data is durable."""
    durable.atomic_write(_entry(store_path, record.i, record.j), record.to_json())


def remove(store_path: str, i: int, j: int) -> None:
    """Unmarks a tile (its data failed verification); durable before returning."""
    try:
        os.remove(_entry(store_path, i, j))
    except FileNotFoundError:
        return
    durable.fsync_path(directory(store_path))


def clean_temporaries(store_path: str) -> int:
    """Removes temporary files that interrupted writes left behind; returns how many:
    record temporaries in the manifest and the ``*.partial`` files of chunk writes that
    zarr's LocalStore renames into place (a kill mid-write leaves one). Called before a
    resume runs, while no writer is active."""
    d = directory(store_path)
    stale = [os.path.join(d, n) for n in os.listdir(d) if n.startswith(".") and n.endswith(".tmp")] \
        if os.path.isdir(d) else []
    for root, _, files in os.walk(store_path):
        if os.path.abspath(root) != os.path.abspath(d):
            stale += [os.path.join(root, n) for n in files if n.endswith(".partial")]
    for f in stale:
        os.remove(f)
    return len(stale)


def read(store_path: str) -> Dict[Tuple[int, int], TileRecord]:
    """Every tile marked done, by ``(i, j)`` grid position."""
    out: Dict[Tuple[int, int], TileRecord] = {}
    d = directory(store_path)
    if not os.path.isdir(d):
        return out
    for name in os.listdir(d):
        if name.startswith(".") or not name.endswith(".json"):
            continue  # temporary files of an interrupted write
        with open(os.path.join(d, name), "rb") as f:
            rec = TileRecord.from_json(f.read())
        out[(rec.i, rec.j)] = rec
    return out
