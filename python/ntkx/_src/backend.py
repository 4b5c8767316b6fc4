"""Backend choice, output allocation and access to the compiled core, shared by the
FC engine (`_src/fc.py`) and the CNTK engine (`_src/cntk.py`)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np

from ntkx import _core
from ntkx._src import validate

__all__ = ["ALLOW_EMULATE", "core", "cuda_unavailable", "device", "run_options", "empty_aligned", "outputs", "float64_work", "finish_work"]

#: The compiled module (csrc/bindings.cpp), for the engines' calls.
core = _core

#: Whether ``device='emulate'`` (the CUDA kernels' phase bodies run on the CPU with
#: their grid and block geometry, DESIGN.md section 3) is accepted: a test-suite
#: switch (tests/conftest.py sets it), off for everyone else.
ALLOW_EMULATE = False


def device(name: Any) -> str:
    """The backend a ``device=`` value selects: ``'cpu'``, ``'cuda'`` or (tests only)
    ``'emulate'``; ``'auto'`` is CUDA when a device is present.

    Raises:
      ValueError: not one of 'auto', 'cpu', 'cuda' (or 'emulate' while ALLOW_EMULATE
        is off).
      RuntimeError: 'cuda' without a CUDA build or device.
    """
    if not isinstance(name, str) or name not in validate.DEVICES:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "emulate" and not ALLOW_EMULATE:
        raise ValueError("device='emulate' (the CPU emulator of the CUDA kernels) is reserved to ntkx's test "
                         "suite; use 'auto', 'cpu' or 'cuda'")
    if name == "auto":
        return "cuda" if _core.cuda_device_count() > 0 else "cpu"
    if name == "cuda":
        why = cuda_unavailable()
        if why:
            raise RuntimeError(f"device='cuda': {why}; use device='cpu' or 'auto'")
    return name


def run_options(dev: str, threads: int = 0, budget: int = 0) -> "_core.RunOptions":
    """The compiled core's options for backend `dev` (a `device()` result), OpenMP
    `threads` (0: all) and a working-memory `budget` in bytes."""
    return _core.RunOptions(getattr(_core.Backend, dev), threads=threads, budget=budget)


def cuda_unavailable() -> Optional[str]:
    """Why ``device='cuda'`` cannot run in this process, or None when it can."""
    if not _core.has_cuda():
        return "this ntkx build has no CUDA backend (no nvcc at build time)"
    if _core.cuda_device_count() == 0:
        return "no CUDA device is available"
    return None


#: Alignment of the outputs ntkx allocates: one cache line, so that the CPU
#: backend's streaming stores cover whole lines (numpy's own large arrays start
#: 16 bytes into a line).
_OUT_ALIGN = 64


def empty_aligned(shape: Tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a cache line."""
    nbytes = shape[0] * shape[1] * dtype.itemsize
    raw = np.empty(nbytes + _OUT_ALIGN, dtype=np.uint8)
    skip = -raw.ctypes.data % _OUT_ALIGN
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


def outputs(out: Any, names: Sequence[str], single: bool, n1: int, n2: int, dtype: np.dtype,
            inputs: Tuple[np.ndarray, ...] = ()) -> dict:
    """The output arrays: fresh cache-line-aligned ones, or the user's `out` checked by
    validate.check_out_arrays (against each other and the `inputs` read)."""
    if out is None:
        validate.check_output_fits(n1, n2, len(names), dtype.itemsize)
        return {g: empty_aligned((n1, n2), dtype) for g in names}
    if single and not isinstance(out, Mapping):
        out = {names[0]: out}
    if not isinstance(out, Mapping) or set(out) != set(names):
        raise ValueError(f"out must map each requested kernel {tuple(names)} to an array")
    res = {g: out[g] for g in names}
    validate.check_out_arrays(res, n1, n2, dtype, inputs)
    return res


def float64_work(outs: Mapping[str, np.ndarray], needed: bool) -> dict:
    """The arrays a call computes into before `rescale`: `outs` themselves, or float64
    temporaries when `needed` and the outputs are float32 (a normalized float32 value
    could over- or underflow before the exact rescaling brings it back in range).
    Copy back with `finish_work`."""
    if not needed or all(o.dtype == np.float64 for o in outs.values()):
        return dict(outs)
    o = next(iter(outs.values()))
    validate.check_output_fits(o.shape[0], o.shape[1], len(outs), 8)
    return {g: empty_aligned(o.shape, np.dtype(np.float64)) for g in outs}


def finish_work(outs: Mapping[str, np.ndarray], work: Mapping[str, np.ndarray]) -> None:
    """Rounds float64_work's temporaries into the outputs (row by row)."""
    with np.errstate(over="ignore"):  # a value beyond float32 is inf, as the exact one rounds
        for g, o in outs.items():
            if work[g] is not o:
                for r in range(o.shape[0]):
                    o[r] = work[g][r]
