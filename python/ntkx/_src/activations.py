"""The closed-form activations of the FC and CNTK engines: their kinds, `Activation`
and the one set of constructors every front end builds them with.

`ActivationKind` names the families ``ntkx::Act`` computes (csrc/ntkx/math/); an
`Activation` is one member of a family with its parameters and a display name. The
constructors (`abrelu`, `relu`, `leaky_relu`, `abs_`, `rectified_monomial`, `erf`)
are used by `ntkx.stax`'s layers, and `NAMED` holds the activations that strings name
(architecture strings' ``act=``, the estimators' ``activation=``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, Dict, Optional

from ntkx import _core

#: Largest |a|, |b| of an ABRelu and |a|, |c| of an Erf: their squares and sums of
#: squares must stay finite in float64.
MAX_ACT_PARAM = 1e150


class ActivationKind(str, enum.Enum):
    """A family of closed-form activations (mirrors ``ntkx::Act``).

    A `str` enum: a kind equals, hashes, prints and reprs as its value (``'abrelu'``),
    so ``Activation('abrelu', ...)`` and ``kind == 'erf'`` keep working and the repr of
    an `Activation` is that of the plain string.
    """

    ABRELU = "abrelu"  #: a min(x, 0) + b max(x, 0)
    ARCCOS0 = "arccos0"  #: the step max(x, 0)^0 (arc-cosine kernel of order 0)
    ARCCOS2 = "arccos2"  #: ReQU max(x, 0)^2 (arc-cosine kernel of order 2)
    ERF = "erf"  #: a erf(b x) + c

    def __repr__(self) -> str:
        return repr(self.value)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def core_name(self) -> str:
        """The name of the compiled backend's ``Act`` member."""
        return _CORE_NAME[self]

    @property
    def degree(self) -> Optional[int]:
        """The degree of positive homogeneity, phi(s x) = s^degree phi(x) for s > 0, or None."""
        return _DEGREE.get(self)


_CORE_NAME = {ActivationKind.ABRELU: "ABRelu", ActivationKind.ARCCOS0: "ArcCos0",
              ActivationKind.ARCCOS2: "ArcCos2", ActivationKind.ERF: "Erf"}
_DEGREE = {ActivationKind.ABRELU: 1, ActivationKind.ARCCOS0: 0, ActivationKind.ARCCOS2: 2}
#: The parameters of each kind that are amplitudes (bounded by MAX_ACT_PARAM, not both 0).
_AMPLITUDES = {ActivationKind.ABRELU: "ab", ActivationKind.ERF: "ac"}


@dataclasses.dataclass(frozen=True)
class Activation:
    """A closed-form activation of the FC and CNTK engines (mirrors ``ntkx::Act``).

    Attributes:
      kind: an `ActivationKind` or its value: ``'abrelu'`` (a min(x,0) + b max(x,0)),
        ``'arccos0'`` (step), ``'arccos2'`` (ReQU) or ``'erf'`` (a erf(b x) + c).
        Stored as the `ActivationKind`.
      a, b, c: the family's parameters (see `kind`): finite; the amplitudes (ABRelu's
        a and b, Erf's a and c) at most 1e150 in magnitude, Erf's input scale b any
        finite number (b -> inf is erf(b x) -> sign(x), handled exactly).
      name: how error messages and reprs call it.

    Raises:
      ValueError: unknown `kind`, a parameter NaN, infinite or out of range, or
        ABRelu(0, 0) (the zero function).
    """

    kind: ActivationKind
    a: float = 0.0
    b: float = 1.0
    c: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        try:
            kind = ActivationKind(self.kind)
        except ValueError:
            raise ValueError(f"Activation kind must be one of {sorted(ActivationKind)}, got {self.kind!r}") from None
        object.__setattr__(self, "kind", kind)
        label = self.name or kind
        for field in ("a", "b", "c"):
            v = getattr(self, field)
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"{label}: parameter {field} must be a number, got {v!r}") from None
            if not math.isfinite(f):
                raise ValueError(f"{label}: parameter {field} must be finite, got {v!r}")
            if field in _AMPLITUDES.get(kind, "") and abs(f) > MAX_ACT_PARAM:
                raise ValueError(f"{label}: |{field}| must be at most {MAX_ACT_PARAM:g} (its square must stay "
                                 f"finite in float64), got {v!r}")
            object.__setattr__(self, field, f)
        if kind in _AMPLITUDES:
            big = max(abs(getattr(self, p)) for p in _AMPLITUDES[kind])
            if big == 0.0:
                raise ValueError(f"{label} is the zero function; its kernels are identically 0"
                                 if kind is ActivationKind.ERF else
                                 "ABRelu(a=0, b=0) is the zero function; its kernels are identically 0")
            if big < 1.0 / MAX_ACT_PARAM:
                raise ValueError(f"{label}: the larger amplitude must be at least {1.0 / MAX_ACT_PARAM:g} in magnitude "
                                 f"(the sum of squares must not underflow float64), got {big!r}")

    def core_kind(self) -> "_core.Act":
        """The compiled backend's activation enum."""
        return getattr(_core.Act, self.kind.core_name)


# ----------------------------------------------------------------------------- constructors


def _number(x: Any, what: str) -> float:
    """`x` as a float, or TypeError naming `what`."""
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {x!r}") from None


def abrelu(a: float, b: float, name: Optional[str] = None) -> Activation:
    """``a * min(x, 0) + b * max(x, 0)``, named ``ABRelu(a, b)`` unless `name` is given."""
    a, b = _number(a, "ABRelu: a"), _number(b, "ABRelu: b")
    return Activation(ActivationKind.ABRELU, a, b, 0.0, f"ABRelu({a}, {b})" if name is None else name)


def relu() -> Activation:
    """``max(x, 0)``, named ``Relu`` (the default activation of `FcSpec` and `CntkSpec`)."""
    return abrelu(0.0, 1.0, "Relu")


def leaky_relu(alpha: float) -> Activation:
    """``max(x, alpha x)`` = ``abrelu(alpha, 1)`` (named as that)."""
    return abrelu(alpha, 1.0)


def abs_() -> Activation:
    """``|x|`` = ``abrelu(-1, 1)``, named ``Abs``."""
    return abrelu(-1.0, 1.0, "Abs")


def rectified_monomial(degree: int) -> Activation:
    """``max(x, 0) ** degree`` for degree 0 (step), 1 (ReLU, = ``abrelu(0, 1)``) or 2 (ReQU):
    the arc-cosine family of Cho & Saul (2009).

    Raises:
      NotImplementedError: another degree (ntkx has no closed form for it).
    """
    if degree not in (0, 1, 2):
        raise NotImplementedError(f"RectifiedMonomial({degree!r}): ntkx has closed forms for degree 0, 1, 2")
    if degree == 1:
        return abrelu(0.0, 1.0)
    kind = ActivationKind.ARCCOS0 if degree == 0 else ActivationKind.ARCCOS2
    return Activation(kind, name=f"RectifiedMonomial({degree})")


def erf(a: float = 1.0, b: float = 1.0, c: float = 0.0, name: Optional[str] = None) -> Activation:
    """``a * erf(b x) + c``, named ``Erf(a, b, c)`` unless `name` is given."""
    a, b, c = _number(a, "Erf: a"), _number(b, "Erf: b"), _number(c, "Erf: c")
    return Activation(ActivationKind.ERF, a, b, c, f"Erf({a}, {b}, {c})" if name is None else name)


#: The activations strings name: an architecture string's ``act=`` and the estimators'
#: ``activation=``. These objects are part of a precompute store's identity, so their
#: fields stay as first written: the parameterless kinds carry zeros here (where
#: `rectified_monomial` leaves the dataclass defaults).
NAMED: Dict[str, Activation] = {
    "relu": relu(),
    "abs": abs_(),
    "step": Activation(ActivationKind.ARCCOS0, 0.0, 0.0, 0.0, "RectifiedMonomial(0)"),
    "requ": Activation(ActivationKind.ARCCOS2, 0.0, 0.0, 0.0, "RectifiedMonomial(2)"),
    "erf": erf(name="Erf"),
}
