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
    if out.strides[0] != out.shape[1] * out.itemsize:
        # numpy calls a one-row array C-contiguous whatever its row stride (even
        # negative); BLAS reads that stride as the leading dimension.
        out = out.copy()
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


#: Relative tolerance of `check_psd`: a symmetric matrix counts as positive
#: semi-definite when its smallest eigenvalue is >= ``-PSD_TOL * max|eigenvalue|``.
#: The value is the one `ntkx.dynamics` has always used. Round-off in a PSD kernel
#: assembled in float64 gives negative eigenvalues of order ``n * eps * max|λ|``
#: (1e-13 relative for n = 500), and a float32 kernel ones of order
#: ``eps32 * max|λ| / sqrt(n)``: both far inside it.
PSD_TOL = 1e-6


def check_psd(a: Any, name: str, *, tol: float = PSD_TOL, eigenvalues: bool = False, suffix: str = "") -> None:
    """Raises ValueError unless a symmetric matrix is positive semi-definite within `tol`.

    The rule, the same for every caller: the smallest eigenvalue must be
    ``>= -tol * max|eigenvalue|`` (a zero matrix passes).

    With ``eigenvalues=True``, `a` holds the eigenvalues (from a decomposition the
    caller computes anyway) and the test is that inequality, O(n). Otherwise `a`
    is the ``(n, n)`` matrix itself and no eigendecomposition is computed when it
    passes: with ``s_lo <= max|eigenvalue|`` a cheap lower bound (the largest
    column norm and three power-iteration steps from the all-ones vector, O(n^2)),
    a Cholesky factorization of ``a + tol * s_lo * I`` (n^3 / 3 flops) that
    succeeds proves the rule. Only when it fails are the eigenvalues computed
    (``eigvalsh``), to decide exactly and to report them.

    Args:
        a: A symmetric ``(n, n)`` float array (only its values are read; it is
            not modified), or its eigenvalues (any order) with ``eigenvalues=True``.
        name: The matrix as the message names it, e.g. ``"k_train_train"``.
        tol: The relative tolerance (default `PSD_TOL`).
        eigenvalues: Whether `a` holds eigenvalues instead of the matrix.
        suffix: Appended to the message, e.g. ``"; gradient flow on it diverges"``.

    Raises:
        ValueError: ``"{name} is not positive semi-definite: smallest eigenvalue
            ..., largest ..."`` followed by the tolerance and `suffix`.
    """
    if not eigenvalues:
        import scipy.linalg

        m = np.asarray(a, dtype=np.float64)
        n = m.shape[0]
        if n == 0:
            return
        s_lo = float(np.sqrt(np.max(np.einsum("ij,ij->j", m, m))))
        u = np.full(n, 1.0 / np.sqrt(n))
        for _ in range(3):
            v = m @ u
            nv = float(np.linalg.norm(v))
            if not nv > 0:
                break
            s_lo = max(s_lo, nv)
            u = v / nv
        if s_lo == 0.0:
            return  # the zero matrix
        b = m.copy()
        b.flat[:: n + 1] += tol * s_lo
        try:
            scipy.linalg.cholesky(b, lower=True, overwrite_a=True, check_finite=False)
            return
        except np.linalg.LinAlgError:
            pass
        del b
        a = scipy.linalg.eigvalsh(m, check_finite=False)
    w = np.asarray(a, dtype=np.float64).reshape(-1)
    if w.size == 0:
        return
    lo, hi = float(np.min(w)), float(np.max(w))
    scale = max(abs(lo), abs(hi))
    if lo < -tol * scale:
        raise ValueError(
            f"{name} is not positive semi-definite: smallest eigenvalue {lo:.6g}, largest {hi:.6g} "
            f"(tolerance: smallest >= -{tol:g} * max|eigenvalue| = {-tol * scale:.3g}){suffix}")


#: Absolute tolerance of `check_probability_rows` for float64 targets.
PROB_TOL = 1e-8


def check_probability_rows(y: Any, name: str, tol: Any = None) -> None:
    """Raises ValueError unless every row of a 2-D array is a probability vector.

    Each row must have entries in ``[-tol, 1 + tol]`` and sum to 1 within `tol`
    (one-hot rows and soft labels both pass). The default tolerance is
    ``max(PROB_TOL, k * eps)`` with ``eps`` the machine epsilon of `y`'s dtype
    (exact rows for integer and boolean arrays): float32 probability rows over k
    classes sum to 1 only within about ``k * eps32``.

    Args:
        y: A finite ``(n, k)`` array (any real or boolean dtype).
        name: The array as the message names it.
        tol: The tolerance; None for the default above.

    Raises:
        ValueError: naming the first bad row and what is wrong with it.
    """
    arr = np.asarray(y)
    if tol is None:
        eps = float(np.finfo(arr.dtype).eps) if np.issubdtype(arr.dtype, np.floating) else 0.0
        tol = max(PROB_TOL, arr.shape[-1] * eps)
    p = arr.astype(np.float64)
    out_of_range = (p < -tol) | (p > 1.0 + tol)
    sums = p.sum(axis=1)
    bad_sum = np.abs(sums - 1.0) > tol
    bad = out_of_range.any(axis=1) | bad_sum
    if not bad.any():
        return
    i = int(np.argmax(bad))
    what = "one-hot or probability rows (entries in [0, 1], each row summing to 1)"
    if out_of_range[i].any():
        j = int(np.argmax(out_of_range[i]))
        raise ValueError(
            f"{name} row {i} is not a probability row: entry {p[i, j]:.6g} in column {j} is outside [0, 1] "
            f"(tolerance {tol:g}); targets must be {what}")
    raise ValueError(
        f"{name} row {i} is not a probability row: it sums to {sums[i]:.6g}, not 1 (tolerance {tol:g}); "
        f"targets must be {what}")


# ----------------------------------------------------------------------------- call options
# The keyword options shared by fc_kernels and cntk_kernels, checked in one place.

KINDS = ("nngp", "ntk")


def check_get(get: Any) -> "tuple[tuple[str, ...], bool]":
    """`get` as ``(names, single)``: the kernels asked for, in the order asked, and
    whether one name was given as a string (then one array is returned).

    ``None`` means both, ``('nngp', 'ntk')``.
    """
    if get is None:
        return KINDS, False
    if isinstance(get, str):
        names, single = (get,), True
    elif isinstance(get, (tuple, list)):
        names, single = tuple(get), False
    else:
        raise TypeError(f"get must be None, 'nngp', 'ntk' or a tuple of them, got {get!r}")
    for g in names:
        if not isinstance(g, str) or g not in KINDS:
            raise ValueError(f"get must be None, 'nngp', 'ntk' or a tuple of them; got {get!r}")
    if not names:
        raise ValueError("get must name at least one of 'nngp', 'ntk'")
    if len(set(names)) != len(names):
        raise ValueError(f"get names a kernel twice: {get!r}")
    return names, single


def check_dtype(dtype: Any) -> np.dtype:
    """float32 or float64 as a numpy dtype, or a clear error."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def max_threads() -> int:
    """Largest ``threads=`` accepted: 4 x the CPUs (at least 64); more is a mistake."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_threads(threads: Any) -> int:
    """``threads=``: None (0 for the backend: all of OpenMP's) or an int in 1..max_threads()."""
    if threads is None:
        return 0
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be None or an integer, got {threads!r}")
    if not 1 <= threads <= max_threads():
        raise ValueError(f"threads must be None or between 1 and {max_threads()}, got {threads}")
    return int(threads)


def check_progress(progress: Any) -> Any:
    """``progress=``: True/False/None or a callable ``f(done, total)``."""
    if progress is None or isinstance(progress, (bool, np.bool_)) or callable(progress):
        return bool(progress) if isinstance(progress, np.bool_) else progress
    raise TypeError(f"progress must be True, False, None or a callable f(done, total), got {progress!r}")


def check_memory_budget(budget: Any) -> int:
    """``memory_budget=``: a positive integer number of bytes."""
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {budget!r}")
    return int(budget)


#: ``device=`` values; 'emulate' (testing only) runs the CUDA kernels' phase bodies
#: on the CPU with the kernels' grid and block geometry (DESIGN.md section 3).
DEVICES = ("auto", "cpu", "cuda", "emulate")


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except Exception:  # numpy's TooHardError (pathological strides): assume the worst
        return True


def check_out_arrays(out: dict, n1: int, n2: int, dtype: np.dtype, inputs: "tuple[np.ndarray, ...]") -> None:
    """Checks user-given outputs ``{name: array}`` for an ``(n1, n2)`` kernel of `dtype`.

    Each must be a writable numpy array (memmaps included) of that shape and dtype with
    contiguous rows (unit column stride) and a positive row stride (no zero-stride
    broadcast views, no reversed rows); all must share their row stride, and none may
    overlap another output or an input (`inputs`, the arrays the kernel reads).
    """
    for g, a in out.items():
        if not isinstance(a, np.ndarray):
            raise TypeError(f"out[{g!r}] must be a numpy array (or memmap), got {type(a).__name__}")
        if a.shape != (n1, n2) or a.dtype != dtype:
            raise ValueError(f"out[{g!r}] must have shape {(n1, n2)} and dtype {dtype}, got {a.shape} {a.dtype}")
        if not a.flags.writeable:
            raise ValueError(f"out[{g!r}] is read-only")
        if n2 > 1 and a.strides[1] != a.itemsize:
            raise ValueError(f"out[{g!r}] needs contiguous rows (unit column stride), got strides {a.strides}")
        if n1 > 1 and a.strides[0] < n2 * a.itemsize:
            raise ValueError(
                f"out[{g!r}] rows must not overlap or run backwards (row stride {a.strides[0]} bytes for rows of "
                f"{n2 * a.itemsize} bytes); pass a fresh array, e.g. numpy.empty or numpy.lib.format.open_memmap")
    names = list(out)
    for i, g in enumerate(names):
        for h in names[i + 1:]:
            if _overlaps(out[g], out[h]):
                raise ValueError(f"out[{g!r}] and out[{h!r}] share memory; each kernel needs its own array")
        for x in inputs:
            if _overlaps(out[g], x):
                raise ValueError(f"out[{g!r}] shares memory with an input; the kernel would overwrite what it reads")
    if len({out[g].strides[0] for g in names}) > 1:
        raise ValueError("the out arrays must share their row stride")
