"""Input checks at the Python boundary: every public entry point validates here once.

Errors name the argument and what was expected, and suggest the route that works
(``out=`` memmaps, ``device='cpu'``) where one exists.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: Largest depth accepted; the recursion itself is exact far beyond it, but a
#: larger value is almost certainly a mistake (it would run for hours per pair).
MAX_DEPTH = 10**7


def numeric_array(x: Any, name: str, expect: str = "an array") -> np.ndarray:
    """`x` as a real numeric (or boolean) ndarray without copying, or a clear TypeError.

    `expect` completes "{name} must be {expect}, got None".
    """
    if x is None:
        raise TypeError(f"{name} must be {expect}, got None")
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to a numeric array: {e}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    return arr


def check_finite(arr: np.ndarray, what: str, suffix: str = "") -> None:
    """Raises "{what} contains k NaN or Inf value(s){suffix}" unless every entry is finite."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        raise ValueError(f"{what} contains {bad} NaN or Inf value(s){suffix}")


def as_points(x: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """Returns `x` as a C-contiguous ``(N, d)`` array of `dtype`, or raises.

    Accepts anything numpy can convert (lists, memmaps, float32/float64,
    non-contiguous or read-only arrays); the input is never modified.
    """
    arr = numeric_array(x, name, "an array of shape (N, d)")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one point and one feature, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    check_finite(out, name, "; the kernel is undefined there")
    return out


def check_depth(depth: Any) -> int:
    """Validates a depth L (number of activation -> Dense blocks)."""
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"depth must be an integer, got {depth!r}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if depth > MAX_DEPTH:
        raise ValueError(f"depth {depth} exceeds the supported maximum {MAX_DEPTH}")
    return int(depth)


def check_nonneg(value: Any, name: str, strict: bool = False) -> float:
    """A finite number >= 0 (> 0 with `strict`), or a clear TypeError / ValueError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or (v <= 0 if strict else v < 0):
        raise ValueError(f"{name} must be finite and {'>' if strict else '>='} 0, got {value!r}")
    return v


def check_std(value: Any, name: str) -> float:
    """A finite, nonnegative standard deviation (None means 0)."""
    return 0.0 if value is None else check_nonneg(value, name)


def available_memory() -> int:
    """Bytes of physical memory currently available (best effort)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_output_fits(n1: int, n2: int, count: int, itemsize: int) -> None:
    """Raises MemoryError before allocating outputs that cannot fit in memory."""
    need = n1 * n2 * count * itemsize
    have = available_memory()
    if need > 0.9 * have:
        raise MemoryError(
            f"the {n1} x {n2} kernel output needs {need / 2**30:.1f} GiB but only "
            f"{have / 2**30:.1f} GiB is available; pass out= with preallocated arrays "
            f"(e.g. numpy.lib.format.open_memmap) to write it to disk tile by tile"
        )
