"""Which of neural-tangents' stax names ntkx runs, and what the others do.

`COVERAGE` is the one list: every public name of ``neural_tangents.stax`` (0.6.5)
with its status in ``ntkx.stax``:

* ``supported``: computed by ntkx, checked against neural-tangents in
  tests/test_stax_compat.py (to ``TOL['nt']``, or refused with a NotImplementedError
  for the arguments named in its note);
* ``planned``: the name exists in ``ntkx.stax`` and raises NotImplementedError saying
  what is supported; the note says what is in the way (issue 17's later steps);
* ``refused``: likewise, for names outside ntkx's scope (no closed-form kernel, or
  neural-tangents' machinery for defining layers).

README.md's coverage table is generated from it (`markdown`), and the test suite
fails when neural-tangents has a public stax name that is not listed here.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple


class Entry(NamedTuple):
    status: str  # 'supported' | 'planned' | 'refused'
    note: str


_FC_ONLY = "FC networks (the CNTK computes ReLU-family, step, ReQU and Erf)"
_CONV_LATER = "the convolutional family beyond SAME padding / stride 1 is a later step"
_PROGRAM = "FC networks; run by the per-layer register program (csrc/ntkx/math/fc_program.h), CPU backend"
_NO_KERNEL = "no closed-form infinite-width kernel in ntkx's scope"
_MACHINERY = "neural-tangents' machinery for defining new layers (jax-based); ntkx layers are its own"

COVERAGE: Dict[str, Entry] = {
    # combinators
    "serial": Entry("supported", "any sequence of supported layers"),
    "repeat": Entry("supported", "stored compactly (depth 10^6 needs no list of layers)"),
    "parallel": Entry("supported", "between FanOut and FanIn*, any nesting; " + _PROGRAM),
    # fully connected and readouts
    "Dense": Entry("supported", "any W_std / b_std and activation per layer, a network may end in an activation; "
                                "parameterization='ntk' or 'standard' (s=(1, 1))"),
    "Identity": Entry("supported", "anywhere in a supported network"),
    "Flatten": Entry("supported", "first, on images (an MLP on images), or as a CNN readout (vanilla CNTK)"),
    "GlobalAvgPool": Entry("supported", "as the CNN readout (CNTK-GAP)"),
    "Conv": Entry("supported", "padding='SAME', stride 1, odd square filters, parameterization='ntk' or "
                               "'standard' (s=(1, 1)); " + _CONV_LATER),
    # activations
    "Relu": Entry("supported", "exact arc-cosine recursion"),
    "LeakyRelu": Entry("supported", "as ABRelu(alpha, 1)"),
    "ABRelu": Entry("supported", "finite a, b"),
    "Abs": Entry("supported", "as ABRelu(-1, 1)"),
    "Erf": Entry("supported", "a * erf(b x) + c"),
    "RectifiedMonomial": Entry("supported", "degree 0 to 15: exact arc-cosine forms for 0, 1, 2, Cho & Saul's J_n "
                                             "recursion above"),
    "Gelu": Entry("supported", "exact Gelu kernel (`approximate` only changes apply_fn, as in neural-tangents); " + _FC_ONLY),
    "Sin": Entry("supported", "a sin(b x + c); " + _FC_ONLY),
    "Cos": Entry("supported", "as Sin(a, b, c + pi/2); " + _FC_ONLY),
    "Rbf": Entry("supported", _FC_ONLY),
    "Gaussian": Entry("supported", "a exp(b x^2), b q < 1/4 on every input; " + _FC_ONLY),
    "Exp": Entry("supported", _FC_ONLY),
    "ExpNormalized": Entry("supported", "gamma >= 0; a kernel map, apply_fn raises (as neural-tangents); " + _FC_ONLY),
    "Sigmoid_like": Entry("supported", "as Erf(0.5, 1/2.4020563531719796, 0.5)"),
    "Sign": Entry("supported", "derivative taken as 0, as neural-tangents; " + _FC_ONLY),
    "Monomial": Entry("supported", "degree 0 to 15 (neural-tangents: 0 to 5); " + _FC_ONLY),
    "Polynomial": Entry("supported", "degree <= 15; one per-point slot per degree, so FC networks on the "
                                     "register program (CPU backend)"),
    "Hermite": Entry("supported", "degree 0 to 15; neural-tangents' kernel K^n, exact for unit-variance inputs; " + _FC_ONLY),
    "Gabor": Entry("refused", _NO_KERNEL + " (neural-tangents itself computes it numerically)"),
    "Elementwise": Entry("refused", "an arbitrary jax function with a user-given dual; ntkx's duals are compiled"),
    "ElementwiseNumerical": Entry("refused", _NO_KERNEL + ": a numerical (quadrature) dual of any function"),
    # branching
    "FanOut": Entry("supported", _PROGRAM),
    "FanInSum": Entry("supported", "of Gaussian branches of equal width (as neural-tangents); " + _PROGRAM),
    "FanInConcat": Entry("supported", "on the channel axis (-1); " + _PROGRAM),
    "FanInProd": Entry("planned", "a product of branch kernels: a SUM-like op of the per-layer program"),
    # convolutional and other linear layers
    "AvgPool": Entry("planned", _CONV_LATER),
    "SumPool": Entry("planned", _CONV_LATER),
    "GlobalSumPool": Entry("planned", _CONV_LATER),
    "ConvLocal": Entry("planned", _CONV_LATER),
    "ConvTranspose": Entry("planned", _CONV_LATER),
    "ImageResize": Entry("planned", _CONV_LATER),
    "Index": Entry("planned", _CONV_LATER),
    "Slice": Entry("planned", "the index helper of Index (" + _CONV_LATER + ")"),
    "Padding": Entry("planned", "the padding enum of Conv and pooling; pass padding='SAME' as a string"),
    "Dropout": Entry("refused", "a regularizer of finite networks; ntkx's kernels are those of the "
                                "deterministic network"),
    "LayerNorm": Entry("planned", "a normalization op of the per-layer program (rescales q to 1)"),
    "Aggregate": Entry("refused", _NO_KERNEL + " (graph aggregation)"),
    "AggregateImplementation": Entry("refused", "the implementation enum of Aggregate"),
    "DotGeneral": Entry("refused", _NO_KERNEL + " (a general tensor contraction layer)"),
    "GlobalSelfAttention": Entry("refused", _NO_KERNEL + " (attention)"),
    "AttentionMechanism": Entry("refused", "the enum of GlobalSelfAttention"),
    "PositionalEmbedding": Entry("refused", "the enum of GlobalSelfAttention"),
    # neural-tangents' layer-definition machinery
    "layer": Entry("refused", _MACHINERY),
    "requires": Entry("refused", _MACHINERY),
    "supports_masking": Entry("refused", _MACHINERY),
    "Bool": Entry("refused", _MACHINERY),
    "Diagonal": Entry("refused", _MACHINERY),
    "MaskedArray": Entry("refused", _MACHINERY + " (masked inputs)"),
    "unmask_fn": Entry("refused", _MACHINERY + " (masked inputs)"),
}

STATUSES = ("supported", "planned", "refused")


def supported() -> List[str]:
    """The neural-tangents stax names ntkx computes."""
    return [n for n, e in COVERAGE.items() if e.status == "supported"]


class Unsupported:
    """The ``ntkx.stax`` stand-in of a name ntkx does not run: calling it, indexing it
    (``Slice[...]``) or reading a member (``Padding.SAME``) raises NotImplementedError
    with the name's status, its note and what ntkx supports."""

    def __init__(self, name: str):
        entry = COVERAGE[name]
        self.__name__ = self.__qualname__ = name
        self.__doc__ = (f"neural-tangents' ``stax.{name}``: {entry.status} in ntkx ({entry.note}); "
                        "using it raises NotImplementedError.")
        self._message = (f"ntkx.stax.{name} is {entry.status} in ntkx ({entry.note}). ntkx.stax supports "
                         f"{', '.join(supported())} (README.md's coverage table has every name)")

    def _refuse(self) -> NotImplementedError:
        return NotImplementedError(self._message)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse()

    def __getitem__(self, item: Any) -> Any:
        raise self._refuse()

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise self._refuse()

    def __repr__(self) -> str:
        return f"<ntkx.stax.{self.__name__}: not supported>"


def markdown() -> str:
    """README.md's coverage table: every public name of neural-tangents' stax and its status in ntkx."""
    lines: List[str] = ["| status | count | neural-tangents stax names |", "|---|---:|---|"]
    for status in STATUSES:
        names = sorted((n for n, e in COVERAGE.items() if e.status == status), key=str.lower)
        lines.append(f"| {status} | {len(names)} | {', '.join(f'`{n}`' for n in names)} |")
    lines += ["", "| name | status | note |", "|---|---|---|"]
    for name, e in COVERAGE.items():
        lines.append(f"| `{name}` | {e.status} | {e.note} |")
    return "\n".join(lines)
