"""The finite networks of `ntkx.stax` in numpy: parameters, forward pass, one backward pass.

One forward (`forward`) and one backward (`backward`) serve every consumer: the
empirical NTK (`empirical_kernels`, a Gram of per-output parameter gradients), the
gradient of a loss (`vjp`, used by `ntkx.theory`'s training loop) and, with the forward
tangent `jvp`, the linearized network ``f_lin(theta) = f(theta_0) + J(theta_0)(theta - theta_0)``.

Parameterizations (neural-tangents' conventions, arXiv:1912.02803):
  - ``'ntk'``: weights and biases are N(0, 1); a layer computes
    ``W_std / sqrt(fan_in) * f @ w + b_std * b``.
  - ``'standard'``: weights are drawn N(0, W_std^2 / fan_in) and biases N(0, b_std^2);
    a layer computes ``f @ w + b``. The forward function at initialization has the same
    distribution, but the gradients (hence the NTK and the training dynamics) differ.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ntkx._src.fc import Activation, Kernels

Shape = Tuple[int, ...]
Params = Any
PARAMETERIZATIONS = ("ntk", "standard")


@dataclasses.dataclass(frozen=True)
class DenseOp:
    out_dim: int
    W_std: float
    b_std: Optional[float]
    parameterization: str = "ntk"


@dataclasses.dataclass(frozen=True)
class ActOp:
    act: Activation
    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]

    def __eq__(self, other: object) -> bool:  # the closed form decides, not the lambdas
        return isinstance(other, ActOp) and other.act == self.act

    def __hash__(self) -> int:
        return hash(self.act)


@dataclasses.dataclass(frozen=True)
class ConvOp:
    out_chan: int
    filt: int
    W_std: float
    b_std: Optional[float]
    parameterization: str = "ntk"


@dataclasses.dataclass(frozen=True)
class ReadoutOp:
    kind: str  # 'gap' or 'flatten'


@dataclasses.dataclass(frozen=True)
class RepeatOp:
    body: Tuple[Any, ...]
    n: int


@dataclasses.dataclass(frozen=True)
class FanOutOp:
    """One input to `n` identical copies (neural-tangents' ``stax.FanOut``)."""

    n: int


@dataclasses.dataclass(frozen=True)
class ParallelOp:
    """Branch k of the input list through ``branches[k]`` (``stax.parallel``)."""

    branches: Tuple[Tuple[Any, ...], ...]


@dataclasses.dataclass(frozen=True)
class FanInOp:
    """A list of inputs to one: their sum (``'sum'``, ``stax.FanInSum``) or their
    concatenation along `axis` (``'concat'``, ``stax.FanInConcat``)."""

    kind: str
    axis: int = -1


Affine = (DenseOp, ConvOp)
Branching = (FanOutOp, ParallelOp, FanInOp)


def expand(ops: Sequence[Any]) -> Iterator[Any]:
    """Yields the elementary ops of a description, repeats unrolled, in order."""
    for op in ops:
        if isinstance(op, RepeatOp):
            for _ in range(op.n):
                yield from expand(op.body)
        else:
            yield op


def _rng(rng: Any) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed, or a jax PRNG key (legacy
    ``jax.random.PRNGKey`` or typed ``jax.random.key``: its key data seed numpy's
    SeedSequence, so one key gives one draw; it is not the draw neural-tangents makes)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if type(rng).__module__.startswith(("jax", "jaxlib")):
        import jax  # only reached with a jax array in hand

        if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
            rng = jax.random.key_data(rng)
        key = np.asarray(rng)
        if key.dtype.kind not in "ui":
            raise TypeError(f"init_fn: a jax array used as the PRNG key must hold integers, got {key.dtype}")
        return np.random.default_rng(key.astype(np.uint64).ravel())
    return np.random.default_rng(rng)


def _fan_in(op: Any, in_chan: int) -> int:
    return in_chan * op.filt * op.filt if isinstance(op, ConvOp) else in_chan


def scales(op: Any, fan_in: int) -> Tuple[float, float]:
    """The forward multipliers ``(of w, of b)`` of a Dense/Conv layer (module docstring)."""
    if op.parameterization == "standard":
        return 1.0, 1.0
    return op.W_std / math.sqrt(fan_in), (op.b_std if op.b_std is not None else 0.0)


def param_shapes(ops: Sequence[Any], input_shape: Shape) -> Tuple[Shape, List[Any]]:
    """``(output_shape, shapes)``: per elementary op ``(w shape, b shape or None)`` for
    Dense/Conv (Conv weights HWIO), ``()`` otherwise; nothing is allocated."""
    shape: Any = tuple(input_shape)
    shapes: List[Any] = []
    for op in expand(ops):
        if isinstance(op, Branching):
            shape, sub = _branch_shapes(op, shape)
            shapes.append(sub)
            continue
        if isinstance(shape, list):
            raise ValueError(f"{type(op).__name__} needs one input, got {len(shape)} branches (end them with "
                             f"FanInSum() or FanInConcat())")
        if isinstance(op, Affine):
            if isinstance(op, ConvOp) and len(shape) != 4:
                raise ValueError(f"a Conv layer needs NHWC images (N, H, W, C), got input shape {shape}")
            wshape = ((op.filt, op.filt, shape[-1], op.out_chan) if isinstance(op, ConvOp)
                      else (shape[-1], op.out_dim))
            shapes.append((wshape, (wshape[-1],) if op.b_std is not None else None))
            shape = shape[:-1] + (wshape[-1],)
        elif isinstance(op, ReadoutOp):
            if len(shape) != 4:
                raise ValueError(f"GlobalAvgPool/Flatten need NHWC images (N, H, W, C), got shape {shape}")
            shape = (shape[0], shape[-1]) if op.kind == "gap" else (shape[0], int(np.prod(shape[1:])))
            shapes.append(())
        else:
            shapes.append(())
    return shape, shapes


def _branch_shapes(op: Any, shape: Any) -> Tuple[Any, Any]:
    """``(output shape(s), per-branch parameter shapes)`` of a branching op; a list of
    shapes stands for a list of inputs (neural-tangents' convention)."""
    if isinstance(op, FanOutOp):
        if isinstance(shape, list):
            raise ValueError(f"FanOut({op.n}) needs one input, got {len(shape)} branches")
        return [shape] * op.n, ()
    if not isinstance(shape, list):
        raise ValueError(f"{'parallel' if isinstance(op, ParallelOp) else 'FanIn'} needs a list of inputs "
                         f"(after FanOut), got one of shape {shape}")
    if isinstance(op, ParallelOp):
        if len(shape) != len(op.branches):
            raise ValueError(f"parallel has {len(op.branches)} layers for {len(shape)} inputs")
        outs = [param_shapes(b, s) for b, s in zip(op.branches, shape)]
        return [o for o, _ in outs], tuple(sh for _, sh in outs)
    if op.kind == "sum":
        if any(s != shape[0] for s in shape):
            raise ValueError(f"FanInSum needs inputs of one shape, got {shape}")
        return shape[0], ()
    axis = op.axis % len(shape[0])
    if any(len(s) != len(shape[0]) or s[:axis] + s[axis + 1:] != shape[0][:axis] + shape[0][axis + 1:]
           for s in shape):
        raise ValueError(f"FanInConcat(axis={op.axis}) needs inputs that agree off that axis, got {shape}")
    return shape[0][:axis] + (sum(s[axis] for s in shape),) + shape[0][axis + 1:], ()


def init_params(ops: Sequence[Any], rng: Any, input_shape: Shape) -> Tuple[Shape, List[Params]]:
    """``(output_shape, params)``: one entry per elementary op, ``(w, b)`` for Dense/Conv
    (Conv weights HWIO; ``b`` None without a bias), ``()`` otherwise."""
    gen = _rng(rng)
    out_shape, shapes = param_shapes(ops, input_shape)
    return out_shape, _draw(list(expand(ops)), shapes, gen)


def _draw(ops: Sequence[Any], shapes: Sequence[Any], gen: np.random.Generator) -> List[Params]:
    """Parameters of elementary `ops` with `shapes` (param_shapes'): a parallel's entry
    is the list of its branches' parameter lists."""
    params: List[Params] = []
    for op, sh in zip(ops, shapes):
        if isinstance(op, ParallelOp):
            params.append([_draw(list(expand(b)), s, gen) for b, s in zip(op.branches, sh)])
            continue
        if not sh:
            params.append(())
            continue
        w = gen.standard_normal(sh[0])
        b = gen.standard_normal(sh[1]) if sh[1] is not None else None
        if op.parameterization == "standard":
            w *= op.W_std / math.sqrt(_fan_in(op, sh[0][-2]))
            if b is not None:
                b *= op.b_std
        params.append((w, b))
    return params


# ----------------------------------------------------------------------------- convolutions


def patches(h: np.ndarray, q: int) -> np.ndarray:
    """SAME zero-padded q x q patches of NHWC `h`: ``(N, H, W, q, q, C)``."""
    r = q // 2
    N, H, W, C = h.shape
    hp = np.zeros((N, H + 2 * r, W + 2 * r, C))
    hp[:, r:r + H, r:r + W] = h
    out = np.empty((N, H, W, q, q, C))
    for a in range(q):
        for b in range(q):
            out[:, :, :, a, b] = hp[:, a:a + H, b:b + W]
    return out


def conv_same(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Stride-1 SAME convolution (cross-correlation) of NHWC `h` with HWIO `w`, unscaled."""
    q = w.shape[0]
    return np.einsum("nijabc,abco->nijo", patches(h, q), w, optimize=True)


def _col2im(g: np.ndarray) -> np.ndarray:
    """The adjoint of `patches`: scatter-adds `(N, H, W, q, q, *rest)` patch gradients
    back onto the image, `(N, H, W, *rest)` (padding entries dropped)."""
    N, H, W, q = g.shape[:4]
    r = q // 2
    hp = np.zeros((N, H + 2 * r, W + 2 * r) + g.shape[5:])
    for a in range(q):
        for b in range(q):
            hp[:, a:a + H, b:b + W] += g[:, :, :, a, b]
    return hp[:, r:r + H, r:r + W]


def features(op: Any, h: np.ndarray) -> np.ndarray:
    """What a Dense or Conv layer multiplies by its weights: `(N, S, F)` rows over S
    positions (S = 1 for a Dense on `(N, n)`; the H W patches of size q q C for a Conv)."""
    if isinstance(op, ConvOp):
        f = patches(h, op.filt)
        return f.reshape(h.shape[0], h.shape[1] * h.shape[2], -1)
    return h.reshape(h.shape[0], -1, h.shape[-1])


# ----------------------------------------------------------------------------- forward / backward


class Run(NamedTuple):
    """A forward pass: the input of every op, the features of every Dense/Conv input, the
    outputs, and ``phi'`` of every activation's input once a backward pass needed it."""

    ins: List[np.ndarray]
    feats: Dict[int, np.ndarray]
    out: np.ndarray
    dphi: Dict[int, np.ndarray]


def _dphi(op: ActOp, run: Run, t: int) -> np.ndarray:
    """``phi'`` at the input of op t, computed once per run (the linearized network
    reuses its initial run at every step)."""
    d = run.dphi.get(t)
    if d is None:
        d = run.dphi[t] = op.dphi(run.ins[t])
    return d


def _affine(op: Any, p: Params, f: np.ndarray, shape: Shape, with_bias: bool = True) -> np.ndarray:
    w, b = p
    ws, bs = scales(op, f.shape[-1])
    # one 2-D GEMM: a batched (N, 1, F) @ (F, n) would run N matrix-vector products
    z = (f.reshape(-1, f.shape[-1]) @ w.reshape(-1, w.shape[-1])).reshape(shape[:-1] + (w.shape[-1],))
    z *= ws
    if with_bias and b is not None:
        z = z + bs * b
    return z


def _readout(op: ReadoutOp, h: np.ndarray) -> np.ndarray:
    return h.mean(axis=(1, 2)) if op.kind == "gap" else h.reshape(h.shape[0], -1)


def forward(ops: Sequence[Any], params: List[Params], x: np.ndarray, keep: bool = True) -> Run:
    """Runs the network on `x` (float64), keeping what the backward pass needs when `keep`."""
    ins: List[np.ndarray] = []
    feats: Dict[int, np.ndarray] = {}
    h: Any = x
    for t, (op, p) in enumerate(zip(ops, params)):
        if keep:
            ins.append(h)
        if isinstance(op, Branching):
            if keep:
                raise NotImplementedError(
                    "the finite network's backward pass (empirical kernels, ntkx.theory's training) covers "
                    "serial networks; FanOut / parallel / FanIn networks run forward (apply_fn) and analytically "
                    "(kernel_fn)")
            h = _branch_forward(op, p, h)
        elif isinstance(op, Affine):
            f = features(op, h)
            if keep:
                feats[t] = f
            h = _affine(op, p, f, h.shape)
        elif isinstance(op, ReadoutOp):
            h = _readout(op, h)
        else:
            h = op.phi(h)
    return Run(ins, feats, h, {})


def _branch_forward(op: Any, p: Params, h: Any) -> Any:
    """One branching op of the forward pass (a list stands for a list of inputs)."""
    if isinstance(op, FanOutOp):
        return [h] * op.n
    if isinstance(op, ParallelOp):
        return [forward(list(expand(b)), pb, hb, keep=False).out for b, pb, hb in zip(op.branches, p, h)]
    if op.kind == "sum":
        return sum(h[1:], h[0])
    return np.concatenate(h, axis=op.axis)


def check_params(ops: Sequence[Any], params: List[Params], what: str, input_shape: Optional[Shape] = None,
                 finite: bool = False) -> None:
    """Raises ValueError unless `params` has one entry per op, a parallel's entry one
    list per branch (and, given the input shape, the shapes ``init_fn`` draws for it;
    with `finite`, no NaN/Inf)."""
    shapes = None if input_shape is None else param_shapes(ops, input_shape)[1]
    _check_entries(list(ops), params, shapes, what, finite, "")


def _check_entries(ops: Sequence[Any], params: Any, shapes: Optional[Sequence[Any]], what: str, finite: bool,
                   where: str) -> None:
    if not isinstance(params, (list, tuple)) or len(params) != len(ops):
        n = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
        raise ValueError(f"{what}: expected {len(ops)} parameter entries{where} (from init_fn), got {n}")
    for t, (op, p) in enumerate(zip(ops, params)):
        sh = None if shapes is None else shapes[t]
        if isinstance(op, ParallelOp):
            if not isinstance(p, (list, tuple)) or len(p) != len(op.branches):
                n = len(p) if isinstance(p, (list, tuple)) else type(p).__name__
                raise ValueError(f"{what}: op {t}{where} (parallel) needs one parameter list per branch "
                                 f"({len(op.branches)}), got {n}")
            for k, (branch, pb) in enumerate(zip(op.branches, p)):
                _check_entries(list(expand(branch)), pb, None if sh is None else sh[k], what, finite,
                               f" in branch {k} of op {t}{where}")
            continue
        if sh is None:
            continue
        got = tuple(None if a is None else np.shape(a) for a in p) if isinstance(p, (list, tuple)) else p
        want = tuple(sh) if sh else ()
        if got != want:
            raise ValueError(f"{what}: parameters of op {t}{where} ({type(op).__name__}) have shapes {got}, "
                             f"the network needs {want} (draw them with init_fn)")
        if finite:
            for a in p:
                if a is not None and not np.all(np.isfinite(a)):
                    raise ValueError(f"{what}: parameters of op {t}{where} contain NaN or Inf")


Visit = Callable[[int, Any, Sequence[Tuple[np.ndarray, np.ndarray]]], None]


def backward(ops: Sequence[Any], params_per_side: Sequence[List[Params]], runs: Sequence[Run],
             cotangents: Sequence[np.ndarray], visit: Visit) -> None:
    """The backward pass: carries cotangents from the outputs to the first Dense/Conv.

    Each side (one or two networks evaluated on their inputs) carries ``d`` of shape
    `(N, *shape, p)`: p cotangent directions of the op's output (the identity over the k
    outputs for Jacobians, the loss gradient with p = 1 for a vjp). At every Dense/Conv
    op t, ``visit(t, op, [(features, d) per side])`` receives the layer's input
    features `(N, S, F)` and output cotangents `(N, S, n_out, p)`; then the cotangent
    flows to the layer's input by the transpose (`_col2im` for a Conv), through an
    activation by ``phi'`` of its input, through GlobalAvgPool by spreading ``1/(H W)``.
    """
    ds = list(cotangents)
    first = min(t for t, op in enumerate(ops) if isinstance(op, Affine))
    for t in range(len(ops) - 1, first - 1, -1):
        op = ops[t]
        if isinstance(op, Affine):
            fs = [run.feats[t] for run in runs]
            ds = [d.reshape(f.shape[:2] + (d.shape[-2], d.shape[-1])) for d, f in zip(ds, fs)]
            visit(t, op, list(zip(fs, ds)))
            if t > first:
                nxt = []
                for d, f, prm, run in zip(ds, fs, params_per_side, runs):
                    w = prm[t][0]
                    ws = scales(op, f.shape[-1])[0]
                    if isinstance(op, ConvOp):
                        g = np.einsum("abco,nsop->nsabcp", w, d, optimize=True) * ws
                        h = run.ins[t]
                        nxt.append(_col2im(g.reshape(h.shape[:3] + g.shape[2:])))
                    else:
                        nxt.append(np.einsum("io,...op->...ip", w, d, optimize=True).reshape(
                            run.ins[t].shape + (d.shape[-1],)) * ws)
                ds = nxt
        elif isinstance(op, ReadoutOp):
            hs = [run.ins[t] for run in runs]
            if op.kind == "gap":
                ds = [np.broadcast_to(d[:, None, None] / (h.shape[1] * h.shape[2]), h.shape + d.shape[-1:])
                      for d, h in zip(ds, hs)]
            else:
                ds = [d.reshape(h.shape + d.shape[-1:]) for d, h in zip(ds, hs)]
        else:
            ds = [d * _dphi(op, run, t)[..., None] for d, run in zip(ds, runs)]


def vjp(ops: Sequence[Any], params: List[Params], run: Run, cotangent: np.ndarray) -> List[Params]:
    """``J(theta)^T g``: the gradient of ``sum(g * f)`` with respect to every parameter.

    Args:
      run: `forward(ops, params, x)` (kept).
      cotangent: `(N, k)`, e.g. ``dL/df`` of a loss.

    Returns:
      A parameter list shaped like `params` (``()`` for parameter-free ops).
    """
    grads: List[Params] = [() for _ in ops]

    def visit(t: int, op: Any, sides: Sequence[Tuple[np.ndarray, np.ndarray]]) -> None:
        (f, d), = sides
        w, b = params[t]
        ws, bs = scales(op, f.shape[-1])
        d2 = d.reshape(-1, d.shape[-2])
        gw = (f.reshape(-1, f.shape[-1]).T @ d2).reshape(w.shape) * ws
        grads[t] = (gw, None if b is None else d2.sum(axis=0) * bs)

    backward(ops, [params], [run], [np.asarray(cotangent, dtype=np.float64)[..., None]], visit)
    return grads


def jvp(ops: Sequence[Any], params: List[Params], run: Run, tangent: List[Params]) -> np.ndarray:
    """``J(theta) v``: the directional derivative of the outputs along the parameter direction `tangent`.

    Args:
      run: `forward(ops, params, x)` (kept).
      tangent: shaped like `params`.

    Returns:
      `(N, k)`.
    """
    dh: Optional[np.ndarray] = None  # the input does not move
    for t, (op, p, v) in enumerate(zip(ops, params, tangent)):
        h = run.ins[t]
        if isinstance(op, Affine):
            f = run.feats[t]
            dz = _affine(op, v, f, h.shape)  # the dw and db part
            if dh is not None:
                dz = dz + _affine(op, p, features(op, dh), h.shape, with_bias=False)
            dh = dz
        elif dh is None:
            continue
        elif isinstance(op, ReadoutOp):
            dh = _readout(op, dh)
        else:
            dh = _dphi(op, run, t) * dh
    assert dh is not None
    return dh


def _param_gram(f1: np.ndarray, f2: np.ndarray, d1: np.ndarray, d2: np.ndarray, ws: float,
                bs: Optional[float]) -> np.ndarray:
    """``sum_o <dz_o/dtheta (x1), dz_o/dtheta (x2)>`` over one Dense/Conv layer's parameters.

    The layer computes ``z[s, :] = ws * f[s, :] @ w + bs * b`` at every position s, so
    the weight term is ``ws^2 sum_{s, s'} <f1[s], f2[s']> <d1[s], d2[s']>`` and the bias
    term ``bs^2 <sum_s d1[s], sum_s' d2[s']>``, with d the backpropagated output gradients.
    Costs ``(N1 S)(N2 S)(F + n k)`` flops; rows of x1 are processed in chunks so the
    `(rows, S, N2, S)` products stay below 2^24 entries.

    Args:
      f1, f2: `(N1, S, F)`, `(N2, S, F)` layer inputs (patches for a Conv).
      d1, d2: `(N1, S, n, k)`, `(N2, S, n, k)` gradients of the k outputs w.r.t. the layer's output.
      ws, bs: the forward multipliers of the weights and of the bias (``None``: no bias).

    Returns:
      `(N1, N2)`, summed (not averaged) over the k outputs.
    """
    N1, S, _ = f1.shape
    N2 = f2.shape[0]
    F2 = f2.reshape(N2 * S, -1)
    D2 = d2.reshape(N2 * S, -1)
    out = np.empty((N1, N2))
    rows = max(1, 2**24 // (S * N2 * S))
    for i in range(0, N1, rows):
        g = f1[i:i + rows].reshape(-1, F2.shape[1]) @ F2.T  # (rows S, N2 S)
        g *= d1[i:i + rows].reshape(-1, D2.shape[1]) @ D2.T
        out[i:i + rows] = g.reshape(-1, S, N2, S).sum(axis=(1, 3))
    out *= ws**2
    if bs is not None:
        s1, s2 = d1.sum(axis=1), d2.sum(axis=1)  # (N, n, k)
        out += bs**2 * np.einsum("inp,jnp->ij", s1, s2)
    return out


def empirical_ntk(ops: Sequence[Any], params1: List[Params], x1: np.ndarray, x2: Optional[np.ndarray] = None,
                  params2: Optional[List[Params]] = None) -> Tuple[np.ndarray, Run, Run]:
    """``(1/k) sum_o <J_o(x1; theta_1), J_o(x2; theta_2)>`` and the two forward runs.

    With ``params2`` (default `params1`) the Gram pairs the Jacobians of two parameter
    values, e.g. at training time t and at initialization (gradient alignment).
    """
    params2 = params1 if params2 is None else params2
    same = x2 is None and params2 is params1
    ra = forward(ops, params1, x1)
    rb = ra if same else forward(ops, params2, x1 if x2 is None else x2)
    runs = [ra] if same else [ra, rb]
    if ra.out.ndim != 2:
        raise NotImplementedError(f"empirical kernels: the outputs must be (N, k), got shape {ra.out.shape}")
    k = ra.out.shape[1]
    eye = [np.broadcast_to(np.eye(k), (r.out.shape[0], k, k)) for r in runs]
    ntk = np.zeros((ra.out.shape[0], rb.out.shape[0]))

    def visit(t: int, op: Any, sides: Sequence[Tuple[np.ndarray, np.ndarray]]) -> None:
        (fa, da), (fb, db) = sides[0], sides[-1]
        ws, bs = scales(op, fa.shape[-1])
        ntk[...] += _param_gram(fa, fb, da, db, ws, bs if params1[t][1] is not None else None) / k

    backward(ops, [params1, params2][:len(runs)], runs, eye, visit)
    return ntk, ra, rb


def empirical_kernels(ops: Sequence[Any], params: List[Params], x1: Any, x2: Any = None) -> Kernels:
    """NNGP and NTK of one finite network draw (see `ntkx.stax.empirical_kernels`)."""
    ops = list(expand(ops))
    if not ops or not isinstance(ops[-1], DenseOp):
        raise NotImplementedError("empirical_kernels: the network must end with a Dense readout layer")
    check_params(ops, params, "empirical_kernels")
    xa = np.asarray(x1, dtype=np.float64)
    xb = None if x2 is None else np.asarray(x2, dtype=np.float64)
    ntk, ra, rb = empirical_ntk(ops, params, xa, xb)
    op, (w, b) = ops[-1], params[-1]
    ha, hb = ra.ins[-1], rb.ins[-1]
    nngp = op.W_std**2 / w.shape[0] * (ha @ hb.T)  # the same in both parameterizations
    if b is not None:
        nngp = nngp + op.b_std**2
    return Kernels(nngp, ntk)
