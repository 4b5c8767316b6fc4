"""neural-tangents' top-level helpers around stax: `batch` and `empirical_kernel_fn`."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import numpy as np

from ntkx._src import network, validate
from ntkx._src.fc import result

#: Output kernels a batched call holds at once (NNGP and NTK), each in float64.
_OUTPUTS, _ITEM = 2, 8


def batch(kernel_fn: Callable[..., Any], batch_size: int = 0, device_count: int = -1,
          store_on_device: bool = True) -> Callable[..., Any]:
    """`kernel_fn` with its working memory bounded by `batch_size` (``neural_tangents.batch``).

    neural-tangents computes the kernel in ``batch_size x batch_size`` blocks (and needs
    N divisible by it). ntkx tiles every call itself, so here `batch_size` is honoured
    as a memory bound instead: the call gets ``memory_budget`` = the bytes of one
    block of both kernels in float64 (``2 * 8 * batch_size**2``), with no divisibility
    rule. ``batch_size=0`` (neural-tangents' "no batching") leaves ntkx's default.

    Args:
      kernel_fn: an ``ntkx.stax`` kernel function (it takes ``memory_budget=``).
      batch_size: the block side, ``>= 0``.
      device_count: accepted for compatibility: ntkx uses one device per call
        (``device=`` picks it).
      store_on_device: accepted for compatibility: ntkx writes every tile into
        host memory (the caller's array) as it is done, so nothing accumulates on
        the device.

    Returns:
      ``kernel_fn(x1, x2=None, get=None, **kwargs)`` with the bound applied (an explicit
      ``memory_budget=`` in a call wins).
    """
    if not callable(kernel_fn):
        raise TypeError(f"kernel_fn must be callable, got {type(kernel_fn).__name__}")
    size = validate.check_count(batch_size, "batch_size", minimum=0)
    validate.check_count(device_count, "device_count", minimum=-1)
    if size == 0:
        return kernel_fn
    budget = _OUTPUTS * _ITEM * size * size

    @functools.wraps(kernel_fn)
    def batched(x1: Any, x2: Any = None, get: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("memory_budget", budget)
        return kernel_fn(x1, x2, get, **kwargs)

    return batched


def empirical_kernel_fn(f: Callable[..., Any], trace_axes: Any = (-1,), diagonal_axes: Any = (),
                        vmap_axes: Any = None, implementation: Any = None) -> Callable[..., Any]:
    """The kernels of one finite network draw (``neural_tangents.empirical_kernel_fn``).

    Definitions are neural-tangents', averaged over the output axis (``trace_axes=(-1,)``):
    the NNGP ``f(x1) f(x2)^T / k`` and the NTK ``(1/k) sum_o J_o(x1) J_o(x2)^T`` over all
    parameters, by ntkx's hand-written backprop (no jax).

    Args:
      f: the ``apply_fn`` of an ``ntkx.stax`` network (it carries the layer
        description the backprop needs).
      trace_axes: ``(-1,)`` only; `diagonal_axes` ``()`` only; `vmap_axes` and
        `implementation` (jax strategies) are accepted and unused.

    Returns:
      ``kernel_fn(x1, x2, get, params)``: an array for a string `get`, else the kernels
      as a named tuple in `get`'s order (x2 None: x1 against itself).
    """
    ops = getattr(f, "ntkx_ops", None)
    if ops is None:
        raise TypeError("empirical_kernel_fn needs the apply_fn of an ntkx.stax network (ntkx computes the "
                        "Jacobians by its own backprop, not by differentiating an arbitrary function)")
    if tuple(np.atleast_1d(trace_axes)) != (-1,) or tuple(diagonal_axes) != ():
        raise NotImplementedError(f"empirical_kernel_fn(trace_axes={trace_axes!r}, diagonal_axes={diagonal_axes!r})"
                                  ": ntkx supports trace_axes=(-1,), diagonal_axes=() only")

    def kernel_fn(x1: Any, x2: Any = None, get: Any = None, params: Optional[Any] = None, **kwargs: Any) -> Any:
        """Empirical NNGP and/or NTK at `params`; see `empirical_kernel_fn`."""
        if params is None:
            raise TypeError("kernel_fn: params (from init_fn) is required")
        names, single = validate.check_get(get)
        flat = list(network.expand(ops))
        network.check_params(flat, params, "empirical_kernel_fn")
        xa = np.asarray(x1, dtype=np.float64)
        xb = None if x2 is None else np.asarray(x2, dtype=np.float64)
        outs = {}
        if "ntk" in names:
            outs["ntk"] = network.empirical_ntk(flat, params, xa, xb)[0]
        if "nngp" in names:
            fa = network.forward(flat, params, xa, keep=False).out
            fb = fa if xb is None else network.forward(flat, params, xb, keep=False).out
            outs["nngp"] = (fa @ fb.T) / fa.shape[-1]
        return result(outs, names, single)

    return kernel_fn
