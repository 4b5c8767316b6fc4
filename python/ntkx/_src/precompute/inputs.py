"""The inputs x1 / x2 of a precompute: where the rows come from, their fingerprint.

A `Source` reads row blocks ``x[i0:i1]`` of an ``(N, ...)`` array without loading
the rest: numpy arrays and memmaps, ``.npy`` files (memory-mapped), ``.npz`` files
(one array, loaded: numpy cannot map a zip member), Zarr arrays or paths, and any
array-like with ``shape``, ``dtype`` and row slicing (h5py datasets). Sources are
picklable, so Dask workers can read a file-backed source themselves; an in-memory
one travels once (scattered).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional, Tuple

import numpy as np

from ntkx._src import validate

#: Bytes of input read per step when fingerprinting and checking an input.
FINGERPRINT_BLOCK_BYTES = 64 * 2**20


class Source:
    """Row access to one input array; subclasses say where the rows live."""

    shape: Tuple[int, ...]
    dtype: np.dtype

    def rows(self, i0: int, i1: int) -> np.ndarray:
        """``x[i0:i1]`` as an ndarray (a view for in-memory arrays and memmaps)."""
        return np.asarray(self._array()[i0:i1])

    def _array(self) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """How the store's attributes name this input (not part of the fingerprint)."""
        return type(self).__name__


class ArraySource(Source):
    """An array in memory (or a numpy memmap, kept by reference)."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape, self.dtype = tuple(array.shape), array.dtype

    def _array(self) -> Any:
        return self.array

    def describe(self) -> str:
        return "memmap" if isinstance(self.array, np.memmap) else "array"


class NpySource(Source):
    """A ``.npy`` file, memory-mapped read-only on first use in each process."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._mm: Optional[np.ndarray] = None
        arr = self._array()
        self.shape, self.dtype = tuple(arr.shape), arr.dtype

    def _array(self) -> np.ndarray:
        if self._mm is None:
            self._mm = np.load(self.path, mmap_mode="r")
        return self._mm

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mm": None}  # workers map the file themselves

    def describe(self) -> str:
        return f"npy:{self.path}"


class ArrayLikeSource(Source):
    """A Zarr array or any array-like with ``shape``, ``dtype`` and row slicing."""

    def __init__(self, array: Any, label: str = "array-like"):
        self.array, self.label = array, label
        self.shape, self.dtype = tuple(int(s) for s in array.shape), np.dtype(array.dtype)

    def _array(self) -> Any:
        return self.array

    def describe(self) -> str:
        return self.label


def as_source(x: Any, name: str) -> Source:
    """`x` as a `Source`, or a TypeError / ValueError naming `name`.

    Paths: ``*.npy`` (memory-mapped), ``*.npz`` (its only array), a Zarr array's
    directory. Anything else must be an array or array-like.
    """
    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: no such file or directory {path!r}")
        if path.endswith(".npy"):
            src: Source = NpySource(path)
        elif path.endswith(".npz"):
            with np.load(path) as z:
                keys = list(z.keys())
                if len(keys) != 1:
                    raise ValueError(f"{name}: {path!r} holds {len(keys)} arrays {keys}; pass np.load(path)[key]")
                src = ArraySource(z[keys[0]])
        elif os.path.isdir(path):
            from ntkx._src.precompute.store import zarr_module

            src = ArrayLikeSource(zarr_module().open_array(path, mode="r"), f"zarr:{os.path.abspath(path)}")
        else:
            raise ValueError(f"{name}: {path!r} is not a .npy, .npz or Zarr array path")
    elif isinstance(x, np.ndarray):
        src = ArraySource(x)
    elif hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__"):
        src = ArrayLikeSource(x, type(x).__module__.split(".")[0])
    else:
        src = ArraySource(validate.numeric_array(x, name))
    if len(src.shape) < 2 or min(src.shape) == 0:
        raise ValueError(f"{name} must be (N, d) points or (N, H, W, C) images with N >= 1, got shape {src.shape}")
    validate.numeric_array(np.empty(0, dtype=src.dtype), name)  # the dtype checks and their messages
    return src


def fingerprint(src: Source, name: str, block_bytes: int = FINGERPRINT_BLOCK_BYTES) -> str:
    """sha256 of `src`'s shape, dtype and bytes (C order), streamed in row blocks.

    Each block is also checked: NaN or Inf anywhere raises ValueError naming the
    input and the rows, so a precompute refuses bad data before its first tile.
    """
    h = hashlib.sha256(f"ntkx-input|{src.shape}|{src.dtype.str}|".encode())
    n = src.shape[0]
    row_bytes = max(1, int(np.prod(src.shape[1:])) * src.dtype.itemsize)
    step = max(1, block_bytes // row_bytes)
    for s in range(0, n, step):
        e = min(s + step, n)
        blk = np.ascontiguousarray(src.rows(s, e))
        if np.issubdtype(blk.dtype, np.floating):
            validate.check_finite(blk, name, f" (in rows {s}:{e}); the kernel is undefined there, nothing was computed")
        h.update(memoryview(blk).cast("B"))
    return h.hexdigest()
