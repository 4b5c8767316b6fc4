"""Kernels as linear operators: arrays and memmaps by row blocks, LinearOperators, callables."""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ntkx._src import validate

#: Working memory of one row block of an array kernel, in bytes. 64 MB keeps a
#: block well inside the last-level cache's neighbourhood of main memory while
#: each block's GEMM is still large enough (>= 400 rows at N = 20,000) to run at
#: full BLAS speed; for a memmap it bounds the pages touched per step, not the
#: page cache (which the OS may reclaim).
DEFAULT_BLOCK_BYTES = 64 * 2**20

KernelLike = Union[np.ndarray, LinearOperator, Callable[[np.ndarray], np.ndarray], Any]


class _RowBlockOperator(LinearOperator):
    """``A @ V`` for an array-like `A` by row blocks of at most `block_bytes`.

    Each block ``A[s:e]`` is a view for a float64 ndarray or memmap (other dtypes
    are converted one block at a time), so no N x N temporary is ever created.
    """

    def __init__(self, a: Any, block_bytes: int):
        self.matrix = a  # `(n_rows, n_cols)`, kept by reference
        super().__init__(dtype=np.dtype(np.float64), shape=tuple(int(s) for s in a.shape))
        self.rows_per_block = max(1, int(block_bytes) // (8 * max(self.shape[1], 1)))

    def _blocks(self):
        n_rows, rb = self.shape[0], self.rows_per_block
        for s in range(0, n_rows, rb):
            e = min(s + rb, n_rows)
            yield s, e, np.asarray(self.matrix[s:e], dtype=np.float64)

    def _matmat(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)  # `(n_cols, m)`
        out = np.empty((self.shape[0], v.shape[1]))
        for s, e, blk in self._blocks():
            np.matmul(blk, v, out=out[s:e])
        return out

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(v, (-1, 1))).reshape(-1)

    def _rmatmat(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)  # `(n_rows, m)`
        out = np.zeros((self.shape[1], v.shape[1]))
        for s, e, blk in self._blocks():
            out += blk.T @ v[s:e]
        return out

    def _rmatvec(self, v: np.ndarray) -> np.ndarray:
        return self._rmatmat(np.reshape(v, (-1, 1))).reshape(-1)


class _CallableOperator(LinearOperator):
    """A symmetric operator from ``matmat(V) -> K @ V``; checks what it returns."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], n: int):
        self.fn = fn
        super().__init__(dtype=np.dtype(np.float64), shape=(n, n))

    def _matmat(self, v: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(v, dtype=np.float64)
        out = np.asarray(self.fn(v), dtype=np.float64)
        if out.size != v.size:
            raise ValueError(
                f"the kernel callable must return K @ V of shape {v.shape} for V of shape {v.shape}, "
                f"got shape {out.shape}"
            )
        return out.reshape(v.shape)

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(v, (-1, 1))).reshape(-1)

    _rmatmat = _matmat  # symmetric
    _rmatvec = _matvec


def as_operator(k: KernelLike, n: Optional[int] = None, *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> LinearOperator:
    """Wraps a symmetric kernel as a ``scipy.sparse.linalg.LinearOperator``.

    Args:
        k (ndarray, memmap, array-like, LinearOperator or callable): The `(n, n)` kernel. Arrays (including
            ``numpy.memmap`` and any object with ``shape``, ``dtype`` and row slicing) are kept by reference,
            never copied, and multiplied in row blocks of at most `block_bytes` bytes. A ``LinearOperator`` is
            returned as is. A callable is taken as ``matmat(V) -> K @ V`` for ``V`` of shape `(n, m)`.
        n (int, optional): The kernel's size; required for a callable, checked otherwise.
        block_bytes (int): Working memory of one row block (default 64 MB): the product then needs
            ``block_bytes`` plus its output, whatever the kernel's size.

    Returns:
        LinearOperator: A float64 operator of shape `(n, n)`, symmetric by assumption.

    Examples:
        >>> k = np.lib.format.open_memmap("ntk.npy", mode="r")  # doctest: +SKIP
        >>> op = as_operator(k)                                  # doctest: +SKIP
        >>> y = op.matmat(v)                                     # doctest: +SKIP
    """
    n = validate.check_count(n, "n", allow_none=True)
    block_bytes = validate.check_count(block_bytes, "block_bytes")
    if isinstance(k, LinearOperator):
        op = k
    elif callable(k) and not hasattr(k, "shape"):
        if n is None:
            raise TypeError("n must be given when the kernel is a callable matmat(V) -> K @ V")
        return _CallableOperator(k, n)
    else:
        if not hasattr(k, "shape"):
            try:
                k = np.asarray(k)
            except Exception as e:  # ragged lists and the like
                raise TypeError(f"k could not be converted to a numeric array: {e}") from None
        validate.check_array_kernel(k, "k")
        op = _RowBlockOperator(k, block_bytes)
    shape = tuple(op.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"k must be square (n, n), got shape {shape}")
    if n is not None and shape[0] != n:
        raise ValueError(f"k has shape {shape} but n = {n}")
    return op


def as_rect_operator(k: Any, shape: Tuple[Optional[int], int], name: str) -> LinearOperator:
    """An `(n_rows, n_cols)` operator (e.g. the test-train kernel); n_rows None: any."""
    if isinstance(k, LinearOperator):
        op = k
    elif callable(k) and not hasattr(k, "shape"):
        raise TypeError(
            f"{name} must be an array or a scipy LinearOperator of shape (n_test, {shape[1]}); wrap a callable "
            f"as scipy.sparse.linalg.LinearOperator((n_test, {shape[1]}), matmat=f)"
        )
    else:
        if not hasattr(k, "shape"):
            k = np.asarray(k)
        validate.check_array_kernel(k, name)
        op = _RowBlockOperator(k, DEFAULT_BLOCK_BYTES)
    got = tuple(op.shape)
    if len(got) != 2 or got[1] != shape[1] or (shape[0] is not None and got[0] != shape[0]):
        want = f"(n_test, {shape[1]})" if shape[0] is None else str(shape)
        raise ValueError(f"{name} must have shape {want}, got {got}")
    return op
