"""Full-batch gradient descent of finite `ntkx.stax` networks and of their linearization.

The network's gradients are `ntkx._src.network.vjp` (the backward pass the empirical
NTK uses); the linearized network ``f_lin(theta) = f(theta_0) + J_0 (theta - theta_0)``
is trained alongside in parameter space with the same initial Jacobian ``J_0``
(`network.jvp` forward, `network.vjp` at ``theta_0`` backward), so both see the same
data, learning rate and steps.

Losses follow `ntkx.dynamics` (sums over training points, no 1/N), so that at infinite
width ``k`` steps of rate eta here are ``MSEDynamics(Theta, y, learning_rate=eta)``'s
``steps=k`` and ``t = eta k`` of its gradient flow:
  - ``'mse'``: ``L = 1/2 sum (f - y)^2``, ``dL/df = f - y``;
  - ``'xent'``: ``L = -sum y log softmax(f)``, ``dL/df = softmax(f) - y`` (y probability rows).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, List, Optional, Sequence

import numpy as np
from scipy import special

from ntkx._src import network, validate
from ntkx._src.progress import Progress, ProgressArg

LOSSES = ("mse", "xent")


def loss_and_grad(kind: str, f: np.ndarray, y: np.ndarray):
    """``(L, dL/df)`` of the summed loss `kind` (module docstring)."""
    if kind == "mse":
        r = f - y
        return 0.5 * float(np.sum(r * r)), r
    logp = special.log_softmax(f, axis=1)
    return -float(np.sum(y * logp)), np.exp(logp) - y


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """What `train` recorded. ``T`` recorded steps, ``S`` NTK steps, N train / M test points, k outputs.

    Attributes:
      steps: `(T,)` step counts (0 = initialization).
      learning_rate, loss_kind: as given.
      train, test: `(T, N, k)`, `(T, M, k)` outputs F of the model (test None without x_test).
      lin_train, lin_test: the same for the linearized network (None if not trained).
      loss, lin_loss: `(T,)` training loss.
      param_distance, lin_param_distance: `(T,)` ``||theta_t - theta_0||`` (all parameters).
      ntk_steps: `(S,)`; ntk: `(S, N, N)` empirical NTK of f (not F) on the training points.
      alignment: `(S,)` ``<J_t, J_0> / (|J_t| |J_0|)`` over the training points (Frobenius).
      n_params: the number of trained parameters.
      params: the parameters after the last step.
    """

    steps: np.ndarray
    learning_rate: float
    loss_kind: str
    train: np.ndarray
    test: Optional[np.ndarray]
    lin_train: Optional[np.ndarray]
    lin_test: Optional[np.ndarray]
    loss: np.ndarray
    lin_loss: Optional[np.ndarray]
    param_distance: np.ndarray
    lin_param_distance: Optional[np.ndarray]
    ntk_steps: np.ndarray
    ntk: np.ndarray
    alignment: np.ndarray
    n_params: int
    params: List[Any] = dataclasses.field(repr=False)

    @property
    def times(self) -> np.ndarray:
        """``learning_rate * steps``, the gradient-flow time of each recorded step."""
        return self.learning_rate * self.steps


def _copy(params: Sequence[Any]) -> List[Any]:
    return [tuple(None if a is None else np.array(a, dtype=np.float64) for a in p) for p in params]


def _zeros_like(params: Sequence[Any]) -> List[Any]:
    return [tuple(None if a is None else np.zeros_like(a) for a in p) for p in params]


def _axpy(alpha: float, x: Sequence[Any], y: List[Any]) -> None:
    """``y += alpha x`` in place, entry by entry."""
    for px, py in zip(x, y):
        for a, b in zip(px, py):
            if a is not None:
                b += alpha * a


def _sqdist(a: Sequence[Any], b: Sequence[Any]) -> float:
    return float(sum(np.sum((u - v) ** 2) for pa, pb in zip(a, b) for u, v in zip(pa, pb) if u is not None))


def _sqnorm(a: Sequence[Any]) -> float:
    return float(sum(np.sum(u * u) for p in a for u in p if u is not None))


def parameter_norm(params: Sequence[Any]) -> float:
    """``||theta||``, the Euclidean norm over every parameter array."""
    return math.sqrt(_sqnorm(params))


def _check_steps(values: Any, steps: int, name: str) -> np.ndarray:
    raw = np.asarray(values if values is not None else [], dtype=np.float64).ravel()
    if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
        raise ValueError(f"{name} must be integer step counts, got {values!r}")
    arr = np.unique(raw.astype(np.int64))
    if arr.size and (arr[0] < 0 or arr[-1] > steps):
        raise ValueError(f"{name} must lie in [0, steps={steps}], got {arr.min()}..{arr.max()}")
    return arr


def record_grid(steps: int, n: int = 40) -> np.ndarray:
    """0, then about `n` steps spaced geometrically up to `steps`."""
    if steps <= 0:
        return np.zeros(1, dtype=np.int64)
    return np.unique(np.concatenate([[0], np.round(np.geomspace(1, steps, n)).astype(np.int64)]))


def train(layer: Any, params: Sequence[Any], x_train: Any, y_train: Any, *, learning_rate: float, steps: int,
          x_test: Any = None, loss: str = "mse", record: Any = None, ntk_at: Any = (), linearized: bool = True,
          output_scale: float = 1.0, center: bool = False, progress: ProgressArg = False) -> Trajectory:
    """Trains a finite network by full-batch gradient descent, with its linearization alongside.

    Args:
      layer: an `ntkx.stax` network ending in Dense (FC or conv; either parameterization).
      params: its initial parameters (from ``init_fn``); not modified.
      x_train: `(N, d)` or NHWC images; y_train: `(N, k)` targets (probability rows for ``'xent'``).
      learning_rate: eta > 0. Stable for MSE below ``2 / lambda_max`` of the full (N k x N k)
        empirical NTK (about that of `empirical_kernels`' output average at large width).
      steps: the number of gradient steps.
      x_test: optional test inputs whose outputs are recorded.
      loss: ``'mse'`` or ``'xent'`` (module docstring).
      record: steps to record outputs and distances at (default `record_grid`); 0 and
        `steps` are always included.
      ntk_at: steps at which to compute the empirical NTK on `x_train` and the gradient alignment.
      linearized: also train ``f_lin`` (costs about twice the network's work per step).
      output_scale, center: the model trained is ``F = a (f(theta) - c f(theta_0))`` with
        ``a = output_scale``, ``c = 1`` if `center` else 0, on the loss ``L(F) / a^2``
        (Chizat et al. 2019's lazy scaling; Arora et al. 2019's small output scale kappa
        without centering). The function-space dynamics at initialization are then the
        same for every a (``dF/dt = -eta Theta dL/dF``); recorded outputs are F's.
      progress: ``True`` for a tqdm bar on stderr, a callable ``f(done, total)``, or False.

    Returns:
      A `Trajectory`.

    Raises:
      ValueError: bad shapes, non-finite data, a bad loss or steps, or a diverging run
        (the loss became NaN/Inf: the message gives the step and says to lower the rate).
    """
    ops = list(network.expand(layer.ops))
    if not ops or not isinstance(ops[-1], network.DenseOp):
        raise NotImplementedError("train: the network must end with a Dense readout layer")
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"train: params must be the list init_fn returns, got {type(params).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"train: loss must be one of {LOSSES}, got {loss!r}")
    x = validate.numeric_array(x_train, "x_train").astype(np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"train: x_train must be (N, d) rows or (N, H, W, C) images with N >= 1, got {x.shape}")
    validate.check_finite(x, "x_train")
    network.check_params(ops, list(params), "train", x.shape, finite=True)
    y = validate.numeric_array(y_train, "y_train").astype(np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"train: y_train must be (N, k) with N = {x.shape[0]} rows of x_train, got {y.shape}")
    validate.check_finite(y, "y_train")
    if loss == "xent":
        validate.check_probability_rows(y, "y_train")
    xt = None
    if x_test is not None:
        xt = validate.numeric_array(x_test, "x_test").astype(np.float64)
        validate.check_finite(xt, "x_test")
        if xt.shape[1:] != x.shape[1:]:
            raise ValueError(f"train: x_test rows {xt.shape[1:]} differ from x_train rows {x.shape[1:]}")
    lr = validate.check_nonneg(learning_rate, "learning_rate", strict=True)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"train: steps must be an integer >= 0, got {steps!r}")
    steps = int(steps)
    rec = np.union1d(_check_steps(record if record is not None else record_grid(steps), steps, "record"),
                     [0, steps]).astype(np.int64)
    ntk_steps = _check_steps(ntk_at, steps, "ntk_at")
    progress = validate.check_progress(progress)
    alpha = validate.check_nonneg(output_scale, "output_scale", strict=True)
    step = lr / alpha  # d/dtheta of L(F)/a^2 is (1/a) J^T dL/dF

    theta0 = _copy(params)
    theta = _copy(params)
    run0 = network.forward(ops, theta0, x)
    if run0.out.ndim != 2:
        raise ValueError(f"train: the network's outputs have shape {run0.out.shape}, not (N, k): a Dense network "
                         "given images applies per pixel; end a conv network with GlobalAvgPool() or Flatten()")
    if run0.out.shape[1] != y.shape[1]:
        raise ValueError(f"train: the network has {run0.out.shape[1]} outputs, y_train has {y.shape[1]} columns")
    run0_test = network.forward(ops, theta0, xt) if xt is not None else None
    c = 1.0 if center else 0.0
    F0 = alpha * (1.0 - c) * run0.out  # F at theta_0 on the training points
    F0_test = alpha * (1.0 - c) * run0_test.out if run0_test is not None else None
    delta = _zeros_like(theta0) if linearized else None

    T = rec.size
    out = {"train": np.empty((T,) + y.shape), "loss": np.empty(T), "dist": np.empty(T)}
    if xt is not None:
        out["test"] = np.empty((T, xt.shape[0], y.shape[1]))
    if linearized:
        out["lin_train"], out["lin_loss"], out["lin_dist"] = np.empty((T,) + y.shape), np.empty(T), np.empty(T)
        if xt is not None:
            out["lin_test"] = np.empty((T, xt.shape[0], y.shape[1]))
    ntks, aligns = [], []
    tr0: Optional[float] = None  # tr of the initial empirical NTK, for the alignment
    j = 0
    # a diverging run overflows on its way to the non-finite loss that stops it with a clear error
    with Progress("train", steps, progress, unit="step") as bar, np.errstate(over="ignore", invalid="ignore"):
        for s in range(steps + 1):
            run = run0 if s == 0 else network.forward(ops, theta, x)
            F = alpha * (run.out - c * run0.out)
            L, g = loss_and_grad(loss, F, y)
            if not math.isfinite(L):
                raise ValueError(f"train: the loss is {L} at step {s} (learning_rate={lr:g} diverges): lower the "
                                 "learning rate, below 2 / lambda_max of the empirical NTK for MSE")
            if linearized:
                flin = F0 + alpha * network.jvp(ops, theta0, run0, delta)
                Llin, glin = loss_and_grad(loss, flin, y)
                if not math.isfinite(Llin):
                    raise ValueError(f"train: the linearized loss is {Llin} at step {s}: lower the learning rate")
            if j < T and rec[j] == s:
                out["train"][j], out["loss"][j], out["dist"][j] = F, L, math.sqrt(_sqdist(theta, theta0))
                if xt is not None:
                    out["test"][j] = alpha * (network.forward(ops, theta, xt, keep=False).out - c * run0_test.out)
                if linearized:
                    out["lin_train"][j], out["lin_loss"][j], out["lin_dist"][j] = flin, Llin, math.sqrt(_sqnorm(delta))
                    if xt is not None:
                        out["lin_test"][j] = F0_test + alpha * network.jvp(ops, theta0, run0_test, delta)
                j += 1
            if s in ntk_steps:
                ntk_t, _, _ = network.empirical_ntk(ops, theta, x)
                ntks.append(ntk_t)
                if tr0 is None:
                    tr0 = float(np.trace(ntk_t)) if s == 0 else float(np.trace(network.empirical_ntk(ops, theta0, x)[0]))
                if s == 0:
                    aligns.append(1.0)
                else:
                    cross, _, _ = network.empirical_ntk(ops, theta, x, x, params2=theta0)
                    aligns.append(float(np.trace(cross)) / math.sqrt(float(np.trace(ntk_t)) * tr0))
            if s == steps:
                break
            _axpy(-step, network.vjp(ops, theta, run, g), theta)
            if linearized:
                _axpy(-step, network.vjp(ops, theta0, run0, glin), delta)
            bar.advance(1)
    n_params = sum(a.size for p in theta0 for a in p if a is not None)
    N = x.shape[0]
    return Trajectory(
        steps=rec, learning_rate=lr, loss_kind=loss, train=out["train"], test=out.get("test"),
        lin_train=out.get("lin_train"), lin_test=out.get("lin_test"), loss=out["loss"], lin_loss=out.get("lin_loss"),
        param_distance=out["dist"], lin_param_distance=out.get("lin_dist"), ntk_steps=ntk_steps,
        ntk=np.array(ntks) if ntks else np.empty((0, N, N)), alignment=np.array(aligns), n_params=int(n_params),
        params=theta)

