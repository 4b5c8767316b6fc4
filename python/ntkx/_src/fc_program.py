"""General fully-connected compositions compiled to the compiled core's register program.

A stax network that is not one `FcSpec` (different activations per layer, residual
branches from ``FanOut`` / ``parallel`` / ``FanInSum``, ``FanInConcat``, any nesting)
compiles here into the ops of ``csrc/ntkx/math/fc_program.h``: DENSE, ACT, LAYER (an
activation and the Dense that consumes it, one pass) and SUM, on registers allocated
by liveness, so a residual net needs a handful of registers whatever its depth. The
OpenMP backend interprets the ops per 256-column chunk inside its fused Gram tiles;
the math (and its derivation) is in the header.

neural-tangents' rules are kept (arXiv:1912.02803; ``stax`` 0.6.5): an activation
needs a Gaussian input (a Dense before it, possibly through FanOut / Identity /
FanInSum); FanInSum needs Gaussian inputs of one width; FanInConcat along the
channel axis gives the width-weighted mean of its inputs' kernels (the plain mean
for equal widths) and a non-Gaussian output that only a Dense may follow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ntkx._src.activations import Activation, ActivationKind
from ntkx._src.network import ActOp, DenseOp, FanInOp, FanOutOp, ParallelOp, ReadoutOp, RepeatOp

# Op kinds of math/fc_program.h (OpKind).
DENSE, ACT, LAYER, SUM, DENSE_STD, LAYER_STD = 0, 1, 2, 3, 4, 5

#: Longest program (ops after repeats are unrolled); its per-point arrays are one
#: allocation per call, so the bound keeps a typo from asking for terabytes.
MAX_PROGRAM_OPS = 1_000_000

@dataclasses.dataclass(frozen=True)
class Value:
    """A symbolic value while compiling: an SSA id, whether it is Gaussian (the output
    of an affine layer, neural-tangents' ``is_gaussian``) and its width."""

    ssa: int
    gaussian: bool
    width: int


@dataclasses.dataclass(frozen=True)
class FcProgram:
    """A compiled FC network: the core's ops, one row per op.

    Attributes:
      ops_i: `(nops, 5)` int32: kind, dst, src, nsrc, activation kind.
      ops_f: `(nops, 7)` float64: activation a, b, c; Dense W_std, b_std; and in the standard
        parameterization the Dense's input width and 1 where it has a bias (else 0, and 0 0 for NTK).
      srcs, src_logc: SUM sources (registers) and the log of each one's weight.
      nreg: registers (0 is the input).
      out: the register read out.
      activations: the program's activations (for the scale rules of `fc_kernels`).
      poly: the Polynomial activations' coefficients (an ACT op's a, b: count, offset).
    """

    ops_i: np.ndarray
    ops_f: np.ndarray
    srcs: np.ndarray
    src_logc: np.ndarray
    nreg: int
    out: int
    activations: Tuple[Activation, ...]
    poly: np.ndarray

    @property
    def n_ops(self) -> int:
        return int(self.ops_i.shape[0])

    def to_core(self, max_erf_t: float, want_ntk: bool) -> tuple:
        """The tuple ``_core.fc(program=...)`` takes."""
        return (self.ops_i, self.ops_f, self.srcs, self.src_logc, self.nreg, self.out, float(max_erf_t),
                bool(want_ntk), self.poly)


class _Builder:
    """SSA ops while walking the network; `finish` fuses and allocates registers."""

    def __init__(self) -> None:
        self.ops: List[Tuple[int, int, Tuple[int, ...], Tuple[float, ...], Any, Tuple[float, ...]]] = []
        self.n_ssa = 1  # 0: the input

    def emit(self, kind: int, srcs: Sequence[int], act: Optional[Activation] = None, w: float = 1.0,
             b: float = 0.0, logc: Sequence[float] = (), std: Tuple[float, float] = (0.0, 0.0)) -> int:
        if len(self.ops) >= MAX_PROGRAM_OPS:
            raise NotImplementedError(f"the network unrolls to more than {MAX_PROGRAM_OPS} ops")
        dst = self.n_ssa
        self.n_ssa += 1
        self.ops.append((kind, dst, tuple(srcs), (w, b) + tuple(std), act, tuple(logc)))
        return dst

    def finish(self, out: int) -> FcProgram:
        ops = self.ops
        uses: Dict[int, int] = {out: 1}
        for _, _, srcs, _, _, _ in ops:
            for s in srcs:
                uses[s] = uses.get(s, 0) + 1
        # Fuse ACT -> DENSE when the activation's value feeds that Dense only.
        fused: List[Any] = []
        t = 0
        while t < len(ops):
            op = ops[t]
            if (op[0] == ACT and t + 1 < len(ops) and ops[t + 1][0] == DENSE and ops[t + 1][2] == (op[1],)
                    and uses.get(op[1], 0) == 1 and op[4].kind is not ActivationKind.POLYNOMIAL):
                nxt = ops[t + 1]
                fused.append((LAYER, nxt[1], op[2], nxt[3], op[4], ()))
                t += 2
                continue
            fused.append(op)
            t += 1
        # Registers by liveness: a value's register is free after its last use.
        last: Dict[int, int] = {out: len(fused)}
        for t, (_, _, srcs, _, _, _) in enumerate(fused):
            for s in srcs:
                last[s] = max(last.get(s, -1), t)
        reg: Dict[int, int] = {0: 0}
        free: List[int] = []
        nreg = 1
        if last.get(0, -1) < 0:
            free.append(0)
        rows_i, rows_f, srcs_all, logc_all, poly = [], [], [], [], []
        for t, (kind, dst, srcs, (w, b, n_in, beta), act, logc) in enumerate(fused):
            src_regs = [reg[s] for s in srcs]
            for s in set(srcs):  # sources dying here may be overwritten by this op
                if last[s] == t:
                    free.append(reg.pop(s))
            if last.get(dst, -1) < 0:  # written, never read: dead code (cannot happen from stax)
                continue
            if free:
                r = free.pop()
            else:
                r = nreg
                nreg += 1
            reg[dst] = r
            a = (act.a, act.b, act.c) if act is not None else (0.0, 1.0, 0.0)
            if act is not None and act.kind is ActivationKind.POLYNOMIAL:  # (count, offset) of its coefficients
                a = (float(len(act.coef)), float(len(poly)), 0.0)
                poly.extend(act.coef)
            code = int(act.core_kind().value) if act is not None else 0
            if kind == SUM:
                rows_i.append((SUM, r, len(srcs_all), len(src_regs), 0))
                srcs_all.extend(src_regs)
                logc_all.extend(logc if logc else [0.0] * len(src_regs))
            else:
                if n_in > 0:  # the standard parameterization's variants of DENSE / LAYER
                    kind = DENSE_STD if kind == DENSE else LAYER_STD
                rows_i.append((kind, r, src_regs[0], 1, code))
            rows_f.append(a + (w, b, n_in, beta))
        acts = tuple(op[4] for op in fused if op[4] is not None)
        return FcProgram(
            np.asarray(rows_i, dtype=np.int32).reshape(-1, 5), np.asarray(rows_f, dtype=np.float64).reshape(-1, 7),
            np.asarray(srcs_all, dtype=np.int32), np.asarray(logc_all, dtype=np.float64), nreg, reg[out], acts,
            np.asarray(poly, dtype=np.float64))


def compile_program(ops: Sequence[Any], d: int) -> FcProgram:
    """The FcProgram of a stax layer description on `d`-dimensional rows.

    Raises:
      NotImplementedError: a layer outside the FC family (its message says what runs).
      ValueError: what neural-tangents refuses too (an activation on a non-Gaussian
        input, FanInSum of inputs of different widths, a layer given a list).
    """
    bld = _Builder()
    out = _walk(ops, Value(0, False, int(d)), bld)
    if isinstance(out, list):
        raise NotImplementedError(f"the network ends in {len(out)} branches: neural-tangents returns a list of "
                                  f"kernels there; ntkx needs one output (end with FanInSum() or FanInConcat())")
    return bld.finish(out.ssa)


def _walk(ops: Sequence[Any], v: Any, bld: _Builder) -> Any:
    for op in ops:
        if isinstance(op, RepeatOp):
            for _ in range(op.n):
                v = _walk(op.body, v, bld)
        else:
            v = _step(op, v, bld)
    return v


def _one(v: Any, what: str) -> Value:
    if isinstance(v, list):
        raise ValueError(f"{what} needs one input, got {len(v)} branches (end them with FanInSum() or "
                         f"FanInConcat(), or give each its layer with parallel)")
    return v


def _step(op: Any, v: Any, bld: _Builder) -> Any:
    from ntkx._src.stax import SUPPORTED  # the one statement of what the FC family runs

    if isinstance(op, DenseOp):
        v = _one(v, "Dense")
        # standard: neural-tangents' Theta' = w^2 Theta + n_in K + [bias] with n_in the input width
        std = (float(v.width), 0.0 if op.b_std is None else 1.0) if op.parameterization == "standard" else (0.0, 0.0)
        return Value(bld.emit(DENSE, [v.ssa], w=op.W_std, b=op.b_std or 0.0, std=std), True, op.out_dim)
    if isinstance(op, ActOp):
        v = _one(v, op.act.name or "an activation")
        if not v.gaussian:
            raise ValueError(f"{op.act.name or 'the activation'}: the input to an activation must be Gaussian, "
                             f"i.e. a Dense layer is required before it (as in neural-tangents)")
        return Value(bld.emit(ACT, [v.ssa], act=op.act), False, v.width)
    if isinstance(op, FanOutOp):
        return [_one(v, f"FanOut({op.n})")] * op.n
    if isinstance(op, ParallelOp):
        if not isinstance(v, list) or len(v) != len(op.branches):
            n = len(v) if isinstance(v, list) else 1
            raise ValueError(f"parallel has {len(op.branches)} layers for {n} inputs (FanOut({len(op.branches)}) "
                             f"first)")
        return [_walk(b, vb, bld) for b, vb in zip(op.branches, v)]
    if isinstance(op, FanInOp):
        if not isinstance(v, list):
            v = [v]
        vs = [_one(x, "a FanIn input") for x in v]
        if len(vs) == 1 and op.kind == "sum":
            return vs[0]
        if op.kind == "sum":
            if not all(x.gaussian for x in vs):
                raise NotImplementedError("FanInSum needs Gaussian inputs (each branch ending in Dense, or Identity "
                                          "on a Dense output), as in neural-tangents")
            if len({x.width for x in vs}) > 1:
                raise ValueError(f"FanInSum needs inputs of one width, got {[x.width for x in vs]}")
            return Value(bld.emit(SUM, [x.ssa for x in vs]), True, vs[0].width)
        if op.axis not in (-1, 1):
            raise NotImplementedError(f"FanInConcat(axis={op.axis}): ntkx's FC kernels concatenate along the "
                                      f"channel axis (-1) only")
        if len(vs) == 1:  # neural-tangents marks a channel concat non-Gaussian even of one input
            return dataclasses.replace(vs[0], gaussian=False)
        widths = [x.width for x in vs]
        if len(set(widths)) == 1:
            widths = [1] * len(widths)
        total = float(sum(widths))
        logc = [math.log(w / total) for w in widths]
        return Value(bld.emit(SUM, [x.ssa for x in vs], logc=logc), False, sum(x.width for x in vs))
    if isinstance(op, ReadoutOp):
        raise NotImplementedError(f"{'Flatten()' if op.kind == 'flatten' else 'GlobalAvgPool()'} inside an FC "
                                  f"network: Flatten() runs first only. {SUPPORTED}")
    raise NotImplementedError(f"cannot compile {type(op).__name__} in an FC network. {SUPPORTED}")
