"""The closed-form activations of the FC and CNTK engines: their kinds, `Activation`
and the one set of constructors every front end builds them with.

`ActivationKind` names the families ``ntkx::Act`` computes (csrc/ntkx/math/); an
`Activation` is one member of a family with its parameters and a display name. The
constructors (`abrelu`, `relu`, `leaky_relu`, `abs_`, `rectified_monomial`, `erf`, `sign`,
`monomial`, `hermite`, `exp_normalized`, `gelu`, `sin`, `rbf`, `exp`, `gaussian`) are used by `ntkx.stax`'s layers, and `NAMED` holds the activations that strings name
(architecture strings' ``act=``, the estimators' ``activation=``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, Dict, Optional, Sequence, Tuple

from ntkx import _core
from ntkx._src import validate

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
    SIGN = "sign"  #: sign(x)
    ARCCOSN = "arccosn"  #: max(x, 0)^n, n = a >= 3 (Cho & Saul's J_n)
    MONOMIAL = "monomial"  #: x^n, n = a
    HERMITE = "hermite"  #: neural-tangents' Hermite(n), n = a (He_n / sqrt(n!), unit-variance inputs)
    EXP_NORMALIZED = "expnormalized"  #: neural-tangents' ExpNormalized(gamma = a, shift = b)
    GELU = "gelu"  #: x Phi(x)
    SIN = "sin"  #: a sin(b x + c)
    RBF = "rbf"  #: sqrt(2) sin(sqrt(2 gamma) x + pi/4), gamma = a
    EXP = "exp"  #: a exp(b x)
    GAUSSIAN = "gaussian"  #: a exp(b x^2)
    POLYNOMIAL = "polynomial"  #: sum_k coef_k x^k (`PolynomialActivation`; a = the number of coefficients)

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
              ActivationKind.ARCCOS2: "ArcCos2", ActivationKind.ERF: "Erf", ActivationKind.SIGN: "Sign",
              ActivationKind.ARCCOSN: "ArcCosN", ActivationKind.MONOMIAL: "Monomial",
              ActivationKind.HERMITE: "Hermite", ActivationKind.EXP_NORMALIZED: "ExpNormalized",
              ActivationKind.GELU: "Gelu", ActivationKind.SIN: "Sin", ActivationKind.RBF: "Rbf",
              ActivationKind.EXP: "Exp", ActivationKind.GAUSSIAN: "Gaussian",
              ActivationKind.POLYNOMIAL: "Polynomial"}
#: The kinds whose bias-free networks the engines rescale exactly (fc.homogeneous_degree);
#: the others carry the inputs' scales in logs.
_DEGREE = {ActivationKind.ABRELU: 1, ActivationKind.ARCCOS0: 0, ActivationKind.ARCCOS2: 2}
#: The parameters of each kind that are amplitudes (bounded by MAX_ACT_PARAM, not both 0).
_AMPLITUDES = {ActivationKind.ABRELU: "ab", ActivationKind.ERF: "ac", ActivationKind.SIN: "a",
               ActivationKind.EXP: "a", ActivationKind.GAUSSIAN: "a"}
#: Other parameters bounded by MAX_ACT_PARAM in magnitude (their squares stay finite).
_BOUNDED = {ActivationKind.SIN: "b", ActivationKind.EXP: "b", ActivationKind.GAUSSIAN: "b",
            ActivationKind.RBF: "a", ActivationKind.EXP_NORMALIZED: "a"}
#: Parameters that must be >= 0.
_NONNEGATIVE = {ActivationKind.RBF: "a", ActivationKind.EXP_NORMALIZED: "a"}
#: Kinds whose a is an integer degree, and its range (csrc/ntkx/math/fc.h's kMaxDegree).
MAX_DEGREE = 15
_DEGREES = {ActivationKind.ARCCOSN: range(3, MAX_DEGREE + 1), ActivationKind.MONOMIAL: range(0, MAX_DEGREE + 1),
            ActivationKind.HERMITE: range(0, MAX_DEGREE + 1)}
#: The kinds the CNTK engine computes (csrc/ntkx/math/cntk.h).
CNTK_KINDS = frozenset({ActivationKind.ABRELU, ActivationKind.ARCCOS0, ActivationKind.ARCCOS2,
                        ActivationKind.ERF})


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
            if field in _AMPLITUDES.get(kind, "") + _BOUNDED.get(kind, "") and abs(f) > MAX_ACT_PARAM:
                raise ValueError(f"{label}: |{field}| must be at most {MAX_ACT_PARAM:g} (its square must stay "
                                 f"finite in float64), got {v!r}")
            if field in _NONNEGATIVE.get(kind, "") and f < 0:
                raise ValueError(f"{label}: parameter {field} must be >= 0, got {v!r}")
            object.__setattr__(self, field, f)
        if kind in _DEGREES and (self.a != int(self.a) or int(self.a) not in _DEGREES[kind]):
            span = _DEGREES[kind]
            raise NotImplementedError(f"{label}: ntkx has closed forms for degree {span.start} to {span.stop - 1}, "
                                      f"got {self.a!r}")
        if kind in _AMPLITUDES:
            big = max(abs(getattr(self, p)) for p in _AMPLITUDES[kind])
            if big == 0.0:
                raise ValueError(f"{label} is the zero function; its kernels are identically 0"
                                 if kind is not ActivationKind.ABRELU else
                                 "ABRelu(a=0, b=0) is the zero function; its kernels are identically 0")
            if big < 1.0 / MAX_ACT_PARAM:
                raise ValueError(f"{label}: the larger amplitude must be at least {1.0 / MAX_ACT_PARAM:g} in magnitude "
                                 f"(the sum of squares must not underflow float64), got {big!r}")

    def core_kind(self) -> "_core.Act":
        """The compiled backend's activation enum."""
        return getattr(_core.Act, self.kind.core_name)


@dataclasses.dataclass(frozen=True)
class PolynomialActivation(Activation):
    """``sum_k coef[k] x^k`` (neural-tangents' ``stax.Polynomial``): an `Activation` of kind
    ``'polynomial'`` whose `a` is ``len(coef)``. Its dual needs one per-point slot per
    degree, so it runs in the FC register program (CPU backend).

    Raises:
      ValueError: no coefficient, all zero, a non-finite one, one beyond 1e150 in magnitude,
        or more than 16 (degree 15).
    """

    coef: Tuple[float, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        label = self.name or "Polynomial"
        try:
            coef = tuple(float(c) for c in self.coef)
        except (TypeError, ValueError):
            raise TypeError(f"{label}: coef must be a sequence of numbers, got {self.coef!r}") from None
        if not coef or not any(coef):
            raise ValueError(f"{label} is the zero function; its kernels are identically 0")
        if len(coef) > MAX_DEGREE + 1:
            raise NotImplementedError(f"{label}: ntkx has closed forms up to degree {MAX_DEGREE} "
                                      f"({MAX_DEGREE + 1} coefficients), got {len(coef)}")
        if not all(math.isfinite(c) and abs(c) <= MAX_ACT_PARAM for c in coef):
            raise ValueError(f"{label}: coefficients must be finite and at most {MAX_ACT_PARAM:g} in magnitude")
        object.__setattr__(self, "coef", coef)
        object.__setattr__(self, "a", float(len(coef)))


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


def _degree(degree: Any, what: str) -> int:
    return validate.check_degree(degree, what, MAX_DEGREE)


def rectified_monomial(degree: int) -> Activation:
    """``max(x, 0) ** degree``, degree 0 to 15: the arc-cosine family of Cho & Saul (2009);
    degree 0 is the step, 1 ReLU (= ``abrelu(0, 1)``), 2 ReQU, higher ones J_n's recursion.

    Raises:
      NotImplementedError: a negative degree or one above 15.
    """
    degree = _degree(degree, "RectifiedMonomial")
    if degree == 1:
        return abrelu(0.0, 1.0)
    if degree > 2:
        return Activation(ActivationKind.ARCCOSN, float(degree), 0.0, 0.0, f"RectifiedMonomial({degree})")
    kind = ActivationKind.ARCCOS0 if degree == 0 else ActivationKind.ARCCOS2
    return Activation(kind, name=f"RectifiedMonomial({degree})")


def sign() -> Activation:
    """``sign(x)``; its derivative is taken as 0 (as neural-tangents)."""
    return Activation(ActivationKind.SIGN, 0.0, 0.0, 0.0, "Sign")


def monomial(degree: int) -> Activation:
    """``x ** degree``, degree 0 to 15 (neural-tangents: 0 to 5)."""
    degree = _degree(degree, "Monomial")
    return Activation(ActivationKind.MONOMIAL, float(degree), 0.0, 0.0, f"Monomial({degree})")


def hermite(degree: int) -> Activation:
    """neural-tangents' ``Hermite(degree)``: the Hermite polynomial He_n / sqrt(n!), whose
    kernel K' = K^n (and Theta' = n K^(n-1) Theta) holds for unit-variance inputs (as there)."""
    degree = _degree(degree, "Hermite")
    return Activation(ActivationKind.HERMITE, float(degree), 0.0, 0.0, f"Hermite({degree})")


def exp_normalized(gamma: float = 1.0, shift: float = -1.0) -> Activation:
    """neural-tangents' ``ExpNormalized(gamma, shift)``: K' = sqrt(q q') exp(gamma (rho + shift)),
    Theta' = gamma exp(gamma (rho + shift)) Theta (a kernel map; it has no finite network)."""
    g, sh = _number(gamma, "ExpNormalized: gamma"), _number(shift, "ExpNormalized: shift")
    return Activation(ActivationKind.EXP_NORMALIZED, g, sh, 0.0, f"ExpNormalized({g}, {sh})")


def gelu() -> Activation:
    """``x Phi(x)`` (the exact Gelu)."""
    return Activation(ActivationKind.GELU, 0.0, 0.0, 0.0, "Gelu")


def sin(a: float = 1.0, b: float = 1.0, c: float = 0.0, name: Optional[str] = None) -> Activation:
    """``a * sin(b x + c)``, named ``Sin(a, b, c)`` unless `name` is given."""
    a, b, c = _number(a, "Sin: a"), _number(b, "Sin: b"), _number(c, "Sin: c")
    return Activation(ActivationKind.SIN, a, b, c, f"Sin({a}, {b}, {c})" if name is None else name)


def rbf(gamma: float = 1.0) -> Activation:
    """``sqrt(2) sin(sqrt(2 gamma) x + pi/4)``, whose kernel is exp(-gamma |x - x'|^2)-like:
    K' = exp(-gamma (q + q' - 2 K))."""
    g = _number(gamma, "Rbf: gamma")
    return Activation(ActivationKind.RBF, g, 0.0, 0.0, f"Rbf({g})")


def exp(a: float = 1.0, b: float = 1.0) -> Activation:
    """``a * exp(b x)``."""
    a, b = _number(a, "Exp: a"), _number(b, "Exp: b")
    return Activation(ActivationKind.EXP, a, b, 0.0, f"Exp({a}, {b})")


def gaussian(a: float = 1.0, b: float = -1.0) -> Activation:
    """``a * exp(b x^2)`` (b q < 1/4 on every input of variance q, else E[phi^2] is infinite)."""
    a, b = _number(a, "Gaussian: a"), _number(b, "Gaussian: b")
    return Activation(ActivationKind.GAUSSIAN, a, b, 0.0, f"Gaussian({a}, {b})")


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


def polynomial(coef: Sequence[float]) -> PolynomialActivation:
    """``coef[0] + coef[1] x + ... + coef[n] x^n`` (neural-tangents' coefficient order), n <= 15."""
    try:
        coef = tuple(float(c) for c in coef)
    except TypeError:
        raise TypeError(f"Polynomial: coef must be a sequence of numbers, got {coef!r}") from None
    return PolynomialActivation(ActivationKind.POLYNOMIAL, float(len(coef)), 0.0, 0.0, f"Polynomial({list(coef)})",
                                coef)
