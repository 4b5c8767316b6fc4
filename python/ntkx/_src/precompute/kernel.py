"""The architecture of a precompute as a per-tile function and a description.

An architecture is also a string (`parse_architecture`), the form the command
line takes: ``"fc depth=3 w_std=1.4 b_std=0.1 act=relu"``, ``"cnn-gap depth=6"``,
``"cnn-vanilla depth=2 filter=3"``. The same builder (`build_spec`) makes the
specs of the scikit-learn estimators' ``kernel='fc'`` / ``'cnn'``.

`TileKernel` is picklable (a Dask task carries it) and computes one tile
``K(a, b)`` (``b`` None: ``K(a, a)``, one triangle computed and mirrored, as
`ntkx.fc_kernels` does) straight into preallocated outputs of the store's dtype
through the ``out=`` argument of `ntkx.fc_kernels` / `ntkx.cntk_kernels`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ntkx._src.activations import NAMED
from ntkx._src.cntk import CntkSpec, ConvLayer, cntk_kernels
from ntkx._src.fc import Activation, FcSpec, fc_kernels

#: Keyword arguments passed through to the kernel functions; ``layout`` changes
#: what the input bytes mean, so it is part of the store's identity.
PASSTHROUGH = ("device", "memory_budget", "threads", "layout")


#: The activations an architecture string (``act=``) and the estimators (``activation=``) name.
ACTIVATIONS: Dict[str, Activation] = NAMED

#: Architecture families of a string, and the readout each CNN family means.
FAMILIES: Dict[str, Optional[str]] = {"fc": None, "cnn-gap": "gap", "cnn-vanilla": "vanilla"}
#: The keys of an architecture string, what each means and its default.
ARCH_KEYS: Dict[str, str] = {
    "depth": "hidden layers (fc, default 3) or conv layers (cnn-*, default 3), an integer",
    "w_std": "weight std of every layer, a number > 0 (default sqrt(2))",
    "b_std": "bias std of every layer, a number >= 0 (default 0)",
    "act": f"activation, one of {', '.join(ACTIVATIONS)} (default relu)",
    "filter": "conv filter side q (cnn-* only), an integer >= 1 (default 3)",
}


def build_spec(kind: str, depth: Any = 3, w_std: Any = 2**0.5, b_std: Any = 0.0, activation: str = "relu",
               filter_size: Any = 3, readout: str = "gap") -> Any:
    """The `FcSpec` (``kind='fc'``) or `CntkSpec` (``kind='cnn'``) of the standard networks.

    * ``'fc'``: Dense -> [activation -> Dense] x `depth`;
    * ``'cnn'``: Conv(q x q) -> [activation -> Conv] x (`depth` - 1) -> activation ->
      GlobalAvgPool (``readout='gap'``) or Flatten (``'vanilla'``) -> Dense, every layer
      with `w_std` and `b_std`.

    Raises ValueError (naming the value and the valid ones) for an unknown kind,
    activation or readout, or a depth / filter size out of range.
    """
    if kind not in ("fc", "cnn"):
        raise ValueError(f"kind must be 'fc' or 'cnn', got {kind!r}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    act = ACTIVATIONS[activation]
    lo = 1 if kind == "cnn" else 0
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < lo:
        raise ValueError(f"depth must be an integer >= {lo} for {kind!r}, got {depth!r}")
    if kind == "fc":
        return FcSpec(int(depth), float(w_std), float(b_std), act)
    if readout not in ("gap", "vanilla"):
        raise ValueError(f"readout must be 'gap' or 'vanilla', got {readout!r}")
    if isinstance(filter_size, bool) or not isinstance(filter_size, numbers.Integral) or filter_size < 1:
        raise ValueError(f"filter size must be an integer >= 1, got {filter_size!r}")
    conv = ConvLayer(float(w_std), float(b_std), int(filter_size))
    return CntkSpec((conv,) * int(depth), act, True, readout, float(w_std), float(b_std))


def _arch_number(key: str, text: str, positive: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise ValueError(f"architecture key {key}={text!r}: must be a finite number {'>' if positive else '>='} 0")
    return v


def _arch_int(key: str, text: str, lo: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"architecture key {key}={text!r}: must be an integer >= {lo}") from None
    if v < lo:
        raise ValueError(f"architecture key {key}={text!r}: must be an integer >= {lo}")
    return v


def parse_architecture(text: str) -> Any:
    """An architecture string as the `FcSpec` / `CntkSpec` it names (via `build_spec`).

    Grammar: a family (``fc``, ``cnn-gap``, ``cnn-vanilla``) then ``key=value``
    words separated by spaces, each key at most once: ``depth``, ``w_std``,
    ``b_std``, ``act`` and, for the CNN families, ``filter`` (`ARCH_KEYS`).

    >>> parse_architecture("fc depth=3 w_std=1.4 b_std=0.1 act=relu")  # doctest: +ELLIPSIS
    FcSpec(depth=3, w_std=1.4, b_std=0.1, ...)

    Raises ValueError naming the bad word and listing the valid families, keys
    or values; every spec value is then validated (`FcSpec.to_core` and the
    CNTK's own checks run on the first tile, or now through `resolve_kernel`).
    """
    if not isinstance(text, str):
        raise TypeError(f"an architecture string must be a str, got {type(text).__name__}")
    words = text.split()
    if not words:
        raise ValueError(f"empty architecture string; it starts with one of {', '.join(FAMILIES)}, "
                         f"e.g. 'fc depth=3' or 'cnn-gap depth=6'")
    family, pairs = words[0].lower(), words[1:]
    if family not in FAMILIES:
        raise ValueError(f"unknown architecture {words[0]!r} in {text!r}; valid: {', '.join(FAMILIES)}")
    valid = [k for k in ARCH_KEYS if family != "fc" or k != "filter"]
    seen: Dict[str, str] = {}
    for w in pairs:
        key, eq, value = w.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"architecture word {w!r} in {text!r} is not key=value; keys: {', '.join(valid)}")
        if key not in valid:
            raise ValueError(f"unknown architecture key {key!r} in {text!r}; valid keys for {family}: "
                             f"{', '.join(valid)}")
        if key in seen:
            raise ValueError(f"architecture key {key!r} given twice in {text!r}")
        seen[key] = value
    kw: Dict[str, Any] = {}
    if "depth" in seen:
        from ntkx._src.cntk import _MAX_CONV
        from ntkx._src.validate import MAX_DEPTH

        hi = MAX_DEPTH if family == "fc" else _MAX_CONV
        kw["depth"] = _arch_int("depth", seen["depth"], 1 if family != "fc" else 0)
        if kw["depth"] > hi:
            raise ValueError(f"architecture key depth={seen['depth']!r}: at most {hi} for {family}")
    if "w_std" in seen:
        kw["w_std"] = _arch_number("w_std", seen["w_std"], positive=True)
    if "b_std" in seen:
        kw["b_std"] = _arch_number("b_std", seen["b_std"], positive=False)
    if "act" in seen:
        if seen["act"].lower() not in ACTIVATIONS:
            raise ValueError(f"unknown activation act={seen['act']!r} in {text!r}; valid: {', '.join(ACTIVATIONS)}")
        kw["activation"] = seen["act"].lower()
    if "filter" in seen:
        kw["filter_size"] = _arch_int("filter", seen["filter"], 1)
    if family == "fc":
        return build_spec("fc", **kw)
    return build_spec("cnn", readout=FAMILIES[family], **kw)


def spec_from_description(d: Dict[str, Any]) -> Any:
    """The `FcSpec` / `CntkSpec` a store's kernel description (`TileKernel.description`) records.

    Raises ValueError when the store was made by a stax ``kernel_fn`` whose
    architecture could not be recovered (nothing to rebuild it from).
    """
    kind, spec = d.get("spec_type"), d.get("spec")
    if spec is None or kind not in ("FcSpec", "CntkSpec"):
        raise ValueError(f"the store's kernel ({d.get('function', d.get('kind'))}) records no FcSpec/CntkSpec "
                         f"to rebuild it from")
    if kind == "FcSpec":
        layers = {k: tuple(spec[k]) for k in ("w_layers", "b_layers") if spec.get(k) is not None}
        return FcSpec(spec["depth"], spec["w_std"], spec["b_std"], Activation(**spec["activation"]), **layers)
    fields = dict(spec)
    fields["convs"] = tuple(ConvLayer(**c) for c in spec["convs"])
    fields["activation"] = Activation(**spec["activation"])
    return CntkSpec(**fields)


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
    d = dataclasses.asdict(spec)
    for name in getattr(spec, "IDENTITY_OPTIONAL", ()):  # fields newer than the stores: absent at default
        if d.get(name) is None:
            d.pop(name, None)
    return json.loads(json.dumps(d, sort_keys=True, default=repr))


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
                out: Dict[str, np.ndarray], cancel: Any = None) -> None:
        """Writes ``K(a, b)`` (``b`` None: ``K(a, a)``) for each of `names` into `out`.

        `cancel`: an optional ``threading.Event``; once set, the backend's next progress
        report raises `TileCancelled` and the call stops (a tile runs in a worker thread,
        where Ctrl-C itself is not delivered).
        """
        opts = dict(self.options)
        if cancel is not None:
            def stop_if_cancelled(done: int, total: int) -> None:
                if cancel.is_set():
                    raise TileCancelled("tile cancelled")

            opts["progress"] = stop_if_cancelled
        if self.kind == "fc":
            fc_kernels(a, b, self.spec, names, dtype=next(iter(out.values())).dtype, out=out, **opts)
        elif self.kind == "cntk":
            cntk_kernels(a, b, self.spec, names, dtype=next(iter(out.values())).dtype, out=out, **opts)
        else:
            self.fn(a, b, names, dtype=next(iter(out.values())).dtype, out=out, **opts)


class TileCancelled(Exception):
    """A tile stopped before it finished (its data is not recorded; a resume redoes it)."""


def resolve_kernel(kernel: Any, options: Dict[str, Any]) -> TileKernel:
    """`kernel` (stax ``kernel_fn``, ``FcSpec``, ``CntkSpec`` or an architecture string,
    see `parse_architecture`) as a `TileKernel`, or a TypeError / ValueError."""
    unknown = set(options) - set(PASSTHROUGH)
    if unknown:
        raise TypeError(f"precompute got unexpected keyword argument(s) {sorted(unknown)}; "
                        f"the kernel options it passes on are {PASSTHROUGH}")
    if isinstance(kernel, str):
        kernel = parse_architecture(kernel)
    if isinstance(kernel, FcSpec):
        if "layout" in options:
            raise ValueError("layout= applies to CNN kernels (CntkSpec) only")
        kernel.to_core()  # validates the spec now, before any work
        return TileKernel("fc", kernel, None, tuple(sorted(options.items())))
    if isinstance(kernel, CntkSpec):
        return TileKernel("cntk", kernel, None, tuple(sorted(options.items())))
    if callable(kernel):
        return TileKernel("kernel_fn", _spec_of_kernel_fn(kernel), kernel, tuple(sorted(options.items())))
    raise TypeError(f"kernel must be a stax kernel_fn, an ntkx.FcSpec, an ntkx.CntkSpec or an architecture string "
                    f"such as 'fc depth=3', got {type(kernel).__name__}")
