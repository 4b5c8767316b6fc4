"""`StoredKernel`: a kernel store read out of core, tile by tile.

Nothing here loads a stored matrix whole: blocks and rows are assembled from
the tiles they touch (mirrored from the upper triangle for a symmetric store),
and products ``K @ V`` stream every stored tile once, so their memory is one
tile plus ``V`` and the result.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional, Tuple

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ntkx._src.precompute import manifest, store


class StoredKernel:
    """One kernel (``'nngp'`` or ``'ntk'``) of a store made by `ntkx.precompute.precompute`.

    Attributes:
      path: the store's directory.
      name: the kernel read.
      meta: what made the store (`StoreMeta`: architecture, dtype, tile, fingerprint ...).
      shape: ``(N1, N2)``.
      dtype: the stored dtype.

    It has ``shape``, ``dtype`` and row slicing ``K[i0:i1]``, so the solvers of
    `ntkx.dynamics` accept it as an array kernel; `as_operator` gives the faster
    route (each stored tile read once per product; half the reads when symmetric).
    """

    ndim = 2

    def __init__(self, path: str, name: Optional[str] = None, allow_incomplete: bool = False):
        self.path = os.path.abspath(path)
        self.meta = store.read_meta(self.path)
        if name is None:
            name = "ntk" if "ntk" in self.meta.get else self.meta.get[0]
        if name not in self.meta.get:
            raise ValueError(f"the store {self.path!r} holds {list(self.meta.get)}, not {name!r}")
        self.name = name
        self.shape: Tuple[int, int] = self.meta.shape
        self.dtype = np.dtype(self.meta.dtype)
        done = manifest.read(self.path)
        self.missing = [t for t in self.meta.tiles() if t not in done]
        if self.missing and not allow_incomplete:
            raise ValueError(
                f"the store {self.path!r} is incomplete: {len(self.missing)} of {len(self.meta.tiles())} tiles are "
                f"not done; resume it by calling precompute again with the same arguments "
                f"(or open it with allow_incomplete=True: missing tiles read as NaN)")
        self._array = store.array(self.path, name, "r")

    def __repr__(self) -> str:
        return (f"StoredKernel({self.path!r}, {self.name!r}, shape={self.shape}, dtype={self.dtype}, "
                f"tile={self.meta.tile}, symmetric={self.meta.symmetric})")

    @property
    def complete(self) -> bool:
        """Whether every tile was marked done when the store was opened."""
        return not self.missing

    def _tiles_in(self, i0: int, i1: int, j0: int, j1: int) -> Iterator[Tuple[int, int, int, int]]:
        t = self.meta.tile
        for r0 in range((i0 // t) * t, i1, t):
            for c0 in range((j0 // t) * t, j1, t):
                yield max(r0, i0), min(r0 + t, i1), max(c0, j0), min(c0 + t, j1)

    def block(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """``K[i0:i1, j0:j1]`` in the stored dtype (mirrored below the diagonal when symmetric)."""
        n1, n2 = self.shape
        if not (0 <= i0 <= i1 <= n1 and 0 <= j0 <= j1 <= n2):
            raise IndexError(f"block [{i0}:{i1}, {j0}:{j1}] is outside the kernel's shape {self.shape}")
        out = np.empty((i1 - i0, j1 - j0), dtype=self.dtype)
        t = self.meta.tile
        for r0, r1, c0, c1 in self._tiles_in(i0, i1, j0, j1):
            if self.meta.symmetric and c0 // t < r0 // t:
                part = np.asarray(self._array[c0:c1, r0:r1]).T
            else:
                part = np.asarray(self._array[r0:r1, c0:c1])
            out[r0 - i0:r1 - i0, c0 - j0:c1 - j0] = part
        return out

    def rows(self, i0: int, i1: int) -> np.ndarray:
        """``K[i0:i1, :]``."""
        return self.block(i0, i1, 0, self.shape[1])

    def __getitem__(self, key: Any) -> np.ndarray:
        """Basic slicing with step 1: ``K[i0:i1]`` or ``K[i0:i1, j0:j1]``."""
        if not isinstance(key, tuple):
            key = (key, slice(None))
        if len(key) != 2 or not all(isinstance(k, slice) for k in key):
            raise TypeError("a StoredKernel supports K[i0:i1] and K[i0:i1, j0:j1] (use block() for more)")
        (i0, i1, si), (j0, j1, sj) = (k.indices(n) for k, n in zip(key, self.shape))
        if si != 1 or sj != 1:
            raise TypeError("a StoredKernel supports slices with step 1 only")
        return self.block(i0, max(i0, i1), j0, max(j0, j1))

    def diagonal(self) -> np.ndarray:
        """The diagonal ``K[k, k]``, k < min(N1, N2), read from the diagonal tiles only."""
        n = min(self.shape)
        out = np.empty(n, dtype=self.dtype)
        t = self.meta.tile
        for s in range(0, n, t):
            e = min(s + t, n)
            out[s:e] = np.diagonal(np.asarray(self._array[s:e, s:e]))
        return out

    def _products(self, v: np.ndarray, transpose: bool) -> np.ndarray:
        n_in, n_out = (self.shape[0], self.shape[1]) if transpose else (self.shape[1], self.shape[0])
        v = np.asarray(v, dtype=np.float64)
        vec = v.ndim == 1
        v = v.reshape(n_in, -1) if v.shape[0] == n_in else None
        if v is None:
            raise ValueError(f"V must have {n_in} rows for a kernel of shape {self.shape}")
        out = np.zeros((n_out, v.shape[1]))
        for i, j in self.meta.tiles():
            r0, r1, c0, c1 = self.meta.bounds(i, j)
            blk = np.asarray(self._array[r0:r1, c0:c1], dtype=np.float64)
            if transpose:
                out[c0:c1] += blk.T @ v[r0:r1]
            else:
                out[r0:r1] += blk @ v[c0:c1]
            if self.meta.symmetric and j > i:  # the mirrored tile below the diagonal, K[c, r] = blk.T
                if transpose:
                    out[r0:r1] += blk @ v[c0:c1]
                else:
                    out[c0:c1] += blk.T @ v[r0:r1]
        return out[:, 0] if vec else out

    def matmat(self, v: Any) -> np.ndarray:
        """``K @ V`` in float64 (V of shape ``(N2,)`` or ``(N2, m)``), streaming every stored tile once."""
        return self._products(v, transpose=False)

    def rmatmat(self, v: Any) -> np.ndarray:
        """``K.T @ V`` in float64 (V of shape ``(N1,)`` or ``(N1, m)``)."""
        return self._products(v, transpose=True)

    def __matmul__(self, v: Any) -> np.ndarray:
        return self.matmat(v)

    def as_operator(self) -> LinearOperator:
        """A float64 ``scipy.sparse.linalg.LinearOperator`` whose products stream the tiles.

        Pass it as the kernel to `ntkx.dynamics.cg_solve`, `mse_dynamics_iterative`
        (also as ``k_test_train`` for a store of x_test against x_train) and
        `top_eigenpairs`.
        """
        return LinearOperator(self.shape, matvec=self.matmat, matmat=self.matmat, rmatvec=self.rmatmat,
                              rmatmat=self.rmatmat, dtype=np.float64)
