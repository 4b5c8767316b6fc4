"""Input checks at the Python boundary: every public entry point validates here once.

Errors name the argument and what was expected, and suggest the route that works
(``out=`` memmaps, ``device='cpu'``) where one exists.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Optional, Tuple

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


def check_degree(degree: Any, what: str, max_degree: int) -> int:
    """An activation's degree: an int in [0, max_degree]. Out of range is NotImplementedError, as
    neural-tangents raises for degrees it has no closed form of; not an int is TypeError."""
    if isinstance(degree, (float, np.floating)) and float(degree).is_integer():
        degree = int(degree)  # 2.0 is 2, as neural-tangents takes it
    if isinstance(degree, (bool, np.bool_)) or not isinstance(degree, (int, np.integer)):
        raise TypeError(f"{what}: degree must be an integer, got {degree!r}")
    if degree < 0:
        raise NotImplementedError(f"{what}: `degree` must be a non-negative integer, got {degree!r}")
    if degree > max_degree:
        raise NotImplementedError(f"{what}({degree}): ntkx has closed forms up to degree {max_degree}")
    return int(degree)


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


# ----------------------------------------------------------------------------- dynamics and solvers
# The arguments of ntkx.dynamics: the closed forms (kernels, targets, times) and the
# iterative solvers (operators, right-hand sides, counts, seeds).

#: Relative asymmetry ``max|K - K^T| / max|K|`` that `check_kernel` tolerates (and
#: symmetrizes away): float32 kernels and kernels assembled from tiles differ by round-off.
SYM_TOL = 1e-6

#: The time conventions of the dynamics (see `ntkx._src.dynamics`).
CONVENTIONS = ("ntkx", "neural_tangents")


def finite_float_array(x: Any, name: str) -> np.ndarray:
    """`x` as a finite float64 ndarray (a copy only when needed), or a clear error."""
    arr = np.asarray(numeric_array(x, name), dtype=np.float64)
    check_finite(arr, f"{name} of shape {arr.shape}")
    return arr


def check_kernel(k: Any, name: str, n: Optional[int] = None) -> np.ndarray:
    """A finite, square, symmetric ``(n, n)`` matrix (any n >= 1 when `n` is None), symmetrized.

    Raises:
        ValueError: on another shape, an empty matrix, NaN or Inf, or ``max|K - K^T| > SYM_TOL * max|K|``.
    """
    k = finite_float_array(k, name)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square matrix (n, n), got shape {k.shape}")
    if k.shape[0] == 0:
        raise ValueError(f"{name} must have at least one training point, got shape {k.shape}")
    if n is not None and k.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, {n}) like the other training kernel, got {k.shape}")
    scale = float(np.max(np.abs(k)))
    asym = float(np.max(np.abs(k - k.T)))
    if asym > SYM_TOL * scale:
        raise ValueError(
            f"{name} of shape {k.shape} must be symmetric: max |K - K^T| = {asym:.3g} "
            f"against max |K| = {scale:.3g} (tolerance {SYM_TOL:g} relative)")
    return 0.5 * (k + k.T)


def check_targets(y: Any, n: int, name: str) -> np.ndarray:
    """Finite float64 targets of shape ``(n,)`` or ``(n, k)``, or a clear ValueError."""
    y = finite_float_array(y, name)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, k) to match the {n} training points, "
                         f"got {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} must have at least one output, got shape {y.shape}")
    return y


def check_cross(k: Any, n: int, name: str) -> np.ndarray:
    """A finite float64 test-train kernel of shape ``(m, n)``, or a clear ValueError."""
    k = finite_float_array(k, name)
    if k.ndim != 2 or k.shape[1] != n:
        raise ValueError(f"{name} must have shape (m, {n}) (test points x {n} training points), got {k.shape}")
    return k


def check_outputs(f: Any, shape: Tuple[int, ...], name: str) -> np.ndarray:
    """Initial outputs: None (zeros), a scalar (filled) or a finite array of exactly `shape`."""
    if f is None:
        return np.zeros(shape)
    f = finite_float_array(f, name)
    if f.ndim == 0:
        return np.full(shape, float(f))
    if f.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {f.shape}")
    return f


def check_real_nonneg(x: Any, name: str, strict: bool = False) -> float:
    """A real scalar (not a bool, not an array), finite and >= 0 (> 0 with `strict`).

    Stricter in type than `check_nonneg` (which takes anything ``float()`` takes).

    Raises:
        TypeError: unless `x` is a ``numbers.Real`` other than a bool.
        ValueError: ``"{name} must be finite"``, ``"... must be > 0"`` or ``"... >= 0"``.
    """
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {x!r}")
    v = float(x)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    if v <= 0 if strict else v < 0:
        raise ValueError(f"{name} must be {'>' if strict else '>='} 0, got {x!r}")
    return v


def check_convention(c: Any) -> str:
    """One of `CONVENTIONS`, or a ValueError listing them."""
    if c not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {c!r}")
    return c


def check_times(t: Any, name: str = "t", *, max_ndim: Optional[int] = None,
                nonempty: bool = False) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """Times ``>= 0`` (``inf`` allowed) as a flat float64 array and the caller's shape.

    Args:
        t: A real number or an array of them.
        name: The argument as messages name it.
        max_ndim: With 1: a scalar or a 1-D array only. None: any shape.
        nonempty: Reject an empty array.

    Raises:
        TypeError: None, or not real numbers (booleans included).
        ValueError: a shape or size refused above, NaN, or a negative time.
    """
    arr = numeric_array(t, name, "a time or an array of times >= 0 (np.inf allowed)")
    if arr.dtype == np.bool_:
        raise TypeError(f"{name} must be real times, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if max_ndim is not None and arr.ndim > max_ndim:
        raise ValueError(f"{name} must be a scalar or 1-D, got shape {arr.shape}")
    if nonempty and arr.size == 0:
        raise ValueError(f"{name} must contain at least one time, got an empty array")
    if np.isnan(arr).any():
        raise ValueError(f"{name} of shape {arr.shape} contains NaN")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0, got minimum {arr.min()!r} (shape {arr.shape})")
    return arr.reshape(-1), arr.shape


def check_steps(steps: Any) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """Numbers of gradient-descent steps (integers >= 0) as a flat int64 array and their shape."""
    arr = np.asarray(steps)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"steps must be an integer or an array of integers, got {steps!r}")
    if (arr < 0).any():
        raise ValueError(f"steps must be >= 0, got minimum {arr.min()} (shape {arr.shape})")
    return arr.reshape(-1).astype(np.int64), arr.shape


def check_probability_targets(y: Any, n: int, name: str) -> np.ndarray:
    """`y` (targets for `n` training points) as a float64 ``(n, k)`` array of probability rows.

    Raises:
        ValueError: on a shape other than ``(n, k)`` (for a 1-D vector, the advice
            to one-hot encode class indices), NaN or Inf, or a row that is not a
            probability vector (`check_probability_rows`).
    """
    arr = numeric_array(y, name, f"an array of shape ({n}, k)")
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
        hint = ""
        if arr.ndim == 1:
            kind = "class indices" if np.issubdtype(arr.dtype, np.integer) else "class labels"
            hint = (f": {kind} must be one-hot encoded first, e.g. np.eye(k)[labels] "
                    "(one probability row per training point)")
        raise ValueError(f"{name} must have shape ({n}, k), got {arr.shape}{hint}")
    out = np.asarray(arr, dtype=np.float64)
    check_finite(out, f"{name} of shape {out.shape}")
    check_probability_rows(arr, name)
    return out


def check_variances(d: np.ndarray, name: str, suffix: str = "") -> None:
    """Raises ValueError (naming the first) unless every variance in `d` is ``>= -PSD_TOL * max|variance|``.

    `d` is the diagonal of a covariance matrix: the tolerance is that of `check_psd`
    (the entries of ``diag(d)`` are its eigenvalues). `suffix` ends the message.
    """
    if d.size == 0:
        return
    bad = d < -PSD_TOL * float(np.max(np.abs(d)))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} (the test variances) must be >= 0: entry {i} is {d[i]:.6g} "
                         f"(tolerance -{PSD_TOL:g} * max|variance|){suffix}")


def check_array_kernel(k: Any, name: str) -> None:
    """Raises unless `k` is a 2-D real array-like with ``shape``, ``dtype`` and slicing."""
    shape, dtype = getattr(k, "shape", None), getattr(k, "dtype", None)
    if shape is None or dtype is None or not hasattr(k, "__getitem__"):
        raise TypeError(
            f"{name} must be an ndarray/memmap, a scipy LinearOperator or a callable matmat(V) -> K @ V, "
            f"got {type(k).__name__}"
        )
    dtype = np.dtype(dtype)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {dtype}")
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(shape)}")


def check_count(value: Any, name: str, allow_none: bool = False, minimum: int = 1) -> Optional[int]:
    """An integer >= `minimum` (1: "a positive integer"), or None when `allow_none`."""
    if value is None and allow_none:
        return None
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {'a positive integer' if minimum == 1 else f'>= {minimum}'}, got {value}")
    return int(value)


def as_rhs(y: Any, name: str, n: Optional[int], m: Optional[int] = None) -> Tuple[np.ndarray, bool]:
    """Right-hand sides `y`, ``(n,)`` or ``(n, m)``, as a finite float64 ``(n, m)`` array and whether it was 1-D.

    A copy only when needed; `n` and `m`, when not None, are the required rows and columns.
    """
    arr = numeric_array(y, name, "an array of shape (n,) or (n, m)")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (n,) or (n, m), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows to match the kernel, got shape {arr.shape}")
    if arr.shape[0] == 0 or (arr.ndim == 2 and arr.shape[1] == 0):
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    vec = arr.ndim == 1
    arr = arr.reshape(arr.shape[0], -1).astype(np.float64, copy=False)
    if m is not None and arr.shape[1] != m:
        raise ValueError(f"{name} must have {m} column(s), got shape {np.shape(y)}")
    check_finite(arr, name, f", shape {np.shape(y)}")
    return arr, vec


def rng(seed: Any) -> np.random.Generator:
    """A numpy Generator from an integer seed, None (fresh entropy) or a Generator (as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    is_int = isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, (bool, np.bool_))
    if seed is not None and not is_int:
        raise TypeError(f"seed must be an integer, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)
