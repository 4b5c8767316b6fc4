"""``ntkx.predict``: neural-tangents' ``predict`` API (signatures and outputs), on `ntkx.dynamics`.

The closed forms are those of `MSEDynamics` and `GPDynamics` (one implementation);
this module adapts the call patterns of ``neural_tangents.predict``:

* `gradient_descent_mse_ensemble` takes a ``kernel_fn`` and the training inputs,
  computes ``kernel_fn(x_train, None, get)`` once (lazily, only the kernels a call
  needs) and the test kernels per call;
* `gp_inference` is the ``t = inf`` posterior on precomputed kernels;
* `gradient_descent_mse` and `max_learning_rate` take a precomputed NTK.

Time is neural-tangents': gradient descent on the mean loss ``1/(2 y.size) |f - y|^2``,
``t=None`` meaning ``t = inf``; ``diag_reg`` is relative to the kernel's mean diagonal
unless ``diag_reg_absolute_scale``. Inputs may be numpy or jax arrays or any array-like
(read through ``np.asarray``); outputs are numpy arrays. Only ``trace_axes=(-1,)``
(the kernel is ``Theta (x) I`` over the last axis of the targets, neural-tangents'
default) is supported.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.linalg

from ntkx._src import validate
from ntkx._src.flow import nt_compat
from ntkx._src.flow.gp import Gaussian

Get = Any
_GETS = ("nngp", "ntk")


def _trace_axes(trace_axes: Any, y: np.ndarray) -> None:
    axes = (trace_axes,) if isinstance(trace_axes, (int, np.integer)) else tuple(trace_axes)
    if y.ndim < 1 or [a % y.ndim for a in axes] != [y.ndim - 1] or y.ndim > 2:
        raise NotImplementedError(
            f"trace_axes={trace_axes!r} with y_train of shape {y.shape}: ntkx's predict supports targets of "
            "shape (n,) or (n, k) with trace_axes=(-1,) (the kernel acts as Theta (x) I over the outputs)")


def _gets(get: Get) -> Tuple[str, ...]:
    gets = _GETS if get is None else ((get,) if isinstance(get, str) else tuple(get))
    for g in gets:
        if g not in _GETS:
            raise NotImplementedError(f"get={get!r}: ntkx's predict gives 'nngp' and 'ntk' predictions "
                                      "(neural-tangents' 'ntkgp' is not supported)")
    return gets


def _dependency(gets: Sequence[str], compute_cov: bool) -> Tuple[str, ...]:
    """The kernels a prediction needs (neural-tangents' rule: the NTK covariance needs the NNGP)."""
    out: Tuple[str, ...] = ()
    if "nngp" in gets or ("ntk" in gets and compute_cov):
        out += ("nngp",)
    if "ntk" in gets:
        out += ("ntk",)
    return out


def _attr(k: Any, g: str, name: str) -> Optional[np.ndarray]:
    """Kernel `g` of `k`: its attribute (a Kernels tuple, neural-tangents' Kernel) or `k` itself (an array)."""
    if k is None:
        return None
    if hasattr(k, "nngp") or hasattr(k, "ntk"):
        v = getattr(k, g, None)
        if v is None:
            raise ValueError(f"{name} has no {g!r} kernel, which this prediction needs")
        return np.asarray(v)
    return np.asarray(k)


def _ensemble(k_dd: Any, y: np.ndarray, learning_rate: float, diag_reg: float, absolute: bool,
              gets: Sequence[str]) -> Callable[..., Any]:
    """`nt_compat.gradient_descent_mse_ensemble` on the kernels of `k_dd` that `gets` needs."""
    ntk = _attr(k_dd, "ntk", "k_train_train") if "ntk" in gets else None
    nngp = _attr(k_dd, "nngp", "k_train_train") if "nngp" in gets else None
    # a mean of one kind alone never reads the other kernel: the one given stands in for it
    ntk, nngp = (nngp if ntk is None else ntk), (ntk if nngp is None else nngp)
    return nt_compat.gradient_descent_mse_ensemble(ntk, nngp, y, learning_rate, diag_reg, "neural_tangents",
                                                   diag_reg_absolute_scale=absolute)


def gp_inference(k_train_train: Any, y_train: Any, diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False,
                 trace_axes: Any = (-1,)) -> Callable[..., Any]:
    """The ``t = inf`` posterior of the NNGP and NTK ensembles (``neural_tangents.predict.gp_inference``).

    Args:
      k_train_train: the train-train kernel: an `(n, n)` array (the same matrix for
        every `get`), or a tuple with ``nngp`` and/or ``ntk`` attributes (ntkx's
        ``Kernels``, neural-tangents' ``Kernel``); the NTK covariance needs both.
      y_train: `(n,)` or `(n, k)` targets.
      diag_reg: ridge added to the kernel's diagonal: ``diag_reg * trace(K) / n``, or
        ``diag_reg`` itself with ``diag_reg_absolute_scale=True``.
      trace_axes: ``(-1,)`` only.

    Returns:
      ``predict_fn(get=None, k_test_train=None, k_test_test=None)``: the posterior mean
      on the test points of `k_test_train` (`(m, n)`), or a `Gaussian` ``(mean,
      covariance)`` when `k_test_test` (`(m, m)`, the NNGP) is given; ``k_test_train=None``
      means the training points, whose outputs are ``N(y_train, 0)``. A string `get`
      returns one value, a tuple (None: both) a ``Gaussians`` namedtuple.
    """
    y = validate.finite_float_array(y_train, "y_train")
    _trace_axes(trace_axes, y)
    cache: Dict[Tuple[str, ...], Callable[..., Any]] = {}

    def predict_fn(get: Get = None, k_test_train: Any = None, k_test_test: Any = None) -> Any:
        """The posterior at t = inf; see `gp_inference`."""
        gets = _gets(get)
        cov = k_test_test is not None
        values: Dict[str, Any] = {}
        for g in gets:
            if k_test_train is None:  # the training points: N(y_train, 0), unregularized
                k = _attr(k_train_train, g, "k_train_train")
                values[g] = Gaussian(y.copy(), np.zeros_like(k)) if cov else y.copy()
                continue
            need = _dependency((g,), cov)
            if need not in cache:
                cache[need] = _ensemble(k_train_train, y, 1.0, diag_reg, diag_reg_absolute_scale, need)
            tt = _attr(k_test_test, "nngp", "k_test_test") if cov else None
            values[g] = cache[need](None, g, cov, _attr(k_test_train, "ntk", "k_test_train") if g == "ntk" else None,
                                   _attr(k_test_train, "nngp", "k_test_train") if "nngp" in need else None, tt)
        return nt_compat.gaussians(gets, get, values)

    return predict_fn


def gradient_descent_mse_ensemble(kernel_fn: Callable[..., Any], x_train: Any, y_train: Any,
                                  learning_rate: float = 1.0, diag_reg: float = 0.0,
                                  diag_reg_absolute_scale: bool = False, trace_axes: Any = (-1,),
                                  **kernel_fn_train_train_kwargs: Any) -> Callable[..., Any]:
    """Mean and covariance of an infinite ensemble trained by gradient descent on MSE
    (``neural_tangents.predict.gradient_descent_mse_ensemble``).

    Args:
      kernel_fn: ``kernel_fn(x1, x2, get, **kwargs)`` returning the kernels (an
        ``ntkx.stax`` network's, neural-tangents', or any with ``nngp`` / ``ntk``
        attributes for a tuple `get`).
      x_train: the training inputs (any array-like, jax arrays included).
      y_train: `(n,)` or `(n, k)` targets.
      learning_rate: the step size; time is ``learning_rate * t / y_train.size``.
      diag_reg, diag_reg_absolute_scale: the ridge (see `gp_inference`).
      trace_axes: ``(-1,)`` only.
      **kernel_fn_train_train_kwargs: passed to every `kernel_fn` call (e.g. ntkx's
        ``memory_budget``, ``threads``).

    Returns:
      ``predict_fn(t=None, x_test=None, get=None, compute_cov=False)``: the mean (or a
      `Gaussian` with `compute_cov`) of the outputs on `x_test` (None: the training
      inputs) at time[s] `t` (None: infinity; leading axes follow ``np.shape(t)``), for
      a string `get`, or a ``Gaussians`` namedtuple for a tuple (None: both). The
      train-train kernels are computed on first use and kept; the eigendecompositions
      are cached as in `ntkx.dynamics.GPDynamics`.
    """
    if not callable(kernel_fn):
        raise TypeError(f"kernel_fn must be callable, got {type(kernel_fn).__name__}")
    y = validate.finite_float_array(y_train, "y_train")
    _trace_axes(trace_axes, y)
    x_train = np.asarray(x_train)
    k_dd: Dict[str, np.ndarray] = {}
    fns: Dict[Tuple[str, ...], Callable[..., Any]] = {}

    def kernels(x1: Any, x2: Any, need: Tuple[str, ...], kwargs: Dict[str, Any]) -> Dict[str, np.ndarray]:
        if len(need) == 1:
            return {need[0]: np.asarray(kernel_fn(x1, x2, need[0], **kwargs))}
        k = kernel_fn(x1, x2, need, **kwargs)
        return {g: np.asarray(getattr(k, g)) for g in need}

    def train(need: Tuple[str, ...]) -> Any:
        missing = tuple(g for g in need if g not in k_dd)
        if missing:
            k_dd.update(kernels(x_train, None, missing, kernel_fn_train_train_kwargs))
        return collections.namedtuple("Kernel", need)(*(k_dd[g] for g in need))

    def predict_fn(t: Any = None, x_test: Any = None, get: Get = None, compute_cov: bool = False,
                   **kernel_fn_test_test_kwargs: Any) -> Any:
        """The ensemble's outputs at time[s] `t`; see `gradient_descent_mse_ensemble`."""
        gets = _gets(get)
        need = _dependency(gets, compute_cov)
        kw = {**kernel_fn_train_train_kwargs, **kernel_fn_test_test_kwargs}
        k_train = train(need)
        if t is None and x_test is None:  # neural-tangents: the unregularized training outputs N(y_train, 0)
            return gp_inference(k_train, y, diag_reg, diag_reg_absolute_scale)(get, None, compute_cov or None)
        if need not in fns:
            fns[need] = _ensemble(k_train, y, learning_rate, diag_reg, diag_reg_absolute_scale, need)
        tt = np.inf if t is None else np.asarray(t, dtype=np.float64)
        if x_test is None:
            args: Tuple[Any, Any, Any] = (None, None, None)
        else:
            x_test = np.asarray(x_test)
            k_td = kernels(x_test, x_train, need, kw)
            nngp_tt = np.asarray(kernel_fn(x_test, None, "nngp", **kw)) if compute_cov else None
            args = (k_td.get("ntk"), k_td.get("nngp"), nngp_tt)
        values = {g: fns[need](tt, g, compute_cov, *args) for g in gets}
        return nt_compat.gaussians(gets, get, values)

    return predict_fn


def gradient_descent_mse(k_train_train: Any, y_train: Any, learning_rate: float = 1.0, diag_reg: float = 0.0,
                         diag_reg_absolute_scale: bool = False, trace_axes: Any = (-1,)) -> Callable[..., Any]:
    """Outputs of a network linearized around its initialization, trained by gradient descent
    on MSE (``neural_tangents.predict.gradient_descent_mse``).

    Returns:
      ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``: see
      `ntkx.dynamics.gradient_descent_mse` (the same function, neural-tangents' time).
    """
    y = validate.finite_float_array(y_train, "y_train")
    _trace_axes(trace_axes, y)
    return nt_compat.gradient_descent_mse(np.asarray(k_train_train), y, learning_rate, diag_reg, "neural_tangents",
                                          diag_reg_absolute_scale=diag_reg_absolute_scale)


def max_learning_rate(ntk_train_train: Any, y_train_size: Optional[int] = None, momentum: float = 0.0,
                      eps: float = 1e-12) -> float:
    """The largest learning rate at which gradient descent on MSE converges
    (``neural_tangents.predict.max_learning_rate``): ``2 (1 + momentum) y_train_size / (lambda_max + eps)``.

    Args:
      ntk_train_train: the `(n, n)` NTK.
      y_train_size: ``y_train.size`` (default n, one output).
      momentum: of a momentum optimizer, ``>= 0``.
      eps: keeps the divisor positive.
    """
    k = validate.check_kernel(ntk_train_train, "ntk_train_train")
    n = k.shape[0]
    size = n if y_train_size is None else validate.check_count(y_train_size, "y_train_size")
    momentum = validate.check_real_nonneg(momentum, "momentum")
    top = float(scipy.linalg.eigh(k, eigvals_only=True, subset_by_index=(n - 1, n - 1))[-1])
    return 2.0 * (1.0 + momentum) * size / (top + eps)
