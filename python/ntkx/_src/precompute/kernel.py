"""The architecture of a precompute as a per-tile function and a description.

`TileKernel` is picklable (a Dask task carries it) and computes one tile
``K(a, b)`` (``b`` None: ``K(a, a)``, one triangle computed and mirrored, as
`ntkx.fc_kernels` does) straight into preallocated outputs of the store's dtype
through the ``out=`` argument of `ntkx.fc_kernels` / `ntkx.cntk_kernels`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ntkx._src.cntk import CntkSpec, cntk_kernels
from ntkx._src.fc import FcSpec, fc_kernels

#: Keyword arguments passed through to the kernel functions; ``layout`` changes
#: what the input bytes mean, so it is part of the store's identity.
PASSTHROUGH = ("device", "memory_budget", "threads", "layout")


def _spec_of_kernel_fn(fn: Callable) -> Optional[Any]:
    """The FcSpec / CntkSpec a stax ``kernel_fn`` runs, when it can be recovered from its closure."""
    from ntkx._src import stax

    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
    if code is None or not cells or "ops" not in code.co_freevars:
        return None
    ops = cells[code.co_freevars.index("ops")].cell_contents
    try:
        return stax.compile_cnn(ops) if stax.is_cnn(ops) else stax.compile_fc(ops)
    except Exception:  # the kernel_fn itself raises the clear error on its first tile
        return None


def describe_spec(spec: Any) -> Dict[str, Any]:
    """A JSON-able description of an FcSpec / CntkSpec (its dataclass fields, recursively)."""
    return json.loads(json.dumps(dataclasses.asdict(spec), sort_keys=True, default=repr))


@dataclasses.dataclass(frozen=True)
class TileKernel:
    """What computes a tile.

    Attributes:
      kind: ``'fc'``, ``'cntk'`` or ``'kernel_fn'``.
      spec: the FcSpec / CntkSpec (None for a kernel_fn whose architecture is unknown).
      fn: the stax ``kernel_fn`` for ``kind == 'kernel_fn'``, else None.
      options: keyword arguments for the kernel function (`PASSTHROUGH`).
    """

    kind: str
    spec: Any
    fn: Optional[Callable] = None
    options: Tuple[Tuple[str, Any], ...] = ()

    def description(self) -> Dict[str, Any]:
        """What the store records and compares on resume (JSON-able)."""
        d: Dict[str, Any] = {"kind": self.kind}
        if self.spec is not None:
            d["spec_type"] = type(self.spec).__name__
            d["spec"] = describe_spec(self.spec)
            d["repr"] = repr(self.spec)
        else:
            d["function"] = f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', repr(self.fn))}"
        d["layout"] = dict(self.options).get("layout", "NHWC" if self.is_cnn() else None)
        return d

    def is_cnn(self) -> bool:
        return isinstance(self.spec, CntkSpec)

    def compute(self, a: np.ndarray, b: Optional[np.ndarray], names: Tuple[str, ...],
                out: Dict[str, np.ndarray]) -> None:
        """Writes ``K(a, b)`` (``b`` None: ``K(a, a)``) for each of `names` into `out`."""
        opts = dict(self.options)
        if self.kind == "fc":
            fc_kernels(a, b, self.spec, names, dtype=next(iter(out.values())).dtype, out=out, **opts)
        elif self.kind == "cntk":
            cntk_kernels(a, b, self.spec, names, dtype=next(iter(out.values())).dtype, out=out, **opts)
        else:
            self.fn(a, b, names, dtype=next(iter(out.values())).dtype, out=out, **opts)


def resolve_kernel(kernel: Any, options: Dict[str, Any]) -> TileKernel:
    """`kernel` (stax ``kernel_fn``, ``FcSpec`` or ``CntkSpec``) as a `TileKernel`, or a TypeError."""
    unknown = set(options) - set(PASSTHROUGH)
    if unknown:
        raise TypeError(f"precompute got unexpected keyword argument(s) {sorted(unknown)}; "
                        f"the kernel options it passes on are {PASSTHROUGH}")
    if isinstance(kernel, FcSpec):
        if "layout" in options:
            raise ValueError("layout= applies to CNN kernels (CntkSpec) only")
        kernel.to_core()  # validates the spec now, before any work
        return TileKernel("fc", kernel, None, tuple(sorted(options.items())))
    if isinstance(kernel, CntkSpec):
        return TileKernel("cntk", kernel, None, tuple(sorted(options.items())))
    if callable(kernel):
        return TileKernel("kernel_fn", _spec_of_kernel_fn(kernel), kernel, tuple(sorted(options.items())))
    raise TypeError(f"kernel must be a stax kernel_fn, an ntkx.FcSpec or an ntkx.CntkSpec, got {type(kernel).__name__}")
