"""neural-tangents-style layers: ``from ntkx import stax`` in place of ``from neural_tangents import stax``.

Example:
    >>> import numpy as np
    >>> from ntkx import stax
    >>> init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(1))
    >>> x = np.random.default_rng(0).standard_normal((4, 3))
    >>> kernel_fn(x, None, 'ntk').shape
    (4, 4)
"""
from ntkx._src.stax import (
    ABRelu,
    Abs,
    ArcCosine,
    Conv,
    Cos,
    Dense,
    Erf,
    Exp,
    ExpNormalized,
    FanInConcat,
    FanInSum,
    FanOut,
    Flatten,
    Gaussian,
    Gelu,
    GlobalAvgPool,
    Hermite,
    Identity,
    Layer,
    LeakyRelu,
    Monomial,
    Polynomial,
    Rbf,
    RectifiedMonomial,
    Relu,
    Sigmoid_like,
    Sign,
    Sin,
    empirical_kernels,
    parallel,
    repeat,
    serial,
)

__all__ = [
    "ABRelu", "Abs", "ArcCosine", "Conv", "Cos", "Dense", "Erf", "Exp", "ExpNormalized",
    "FanInConcat", "FanInSum", "FanOut", "Flatten", "Gaussian", "Gelu", "GlobalAvgPool", "Hermite",
    "Identity", "Layer", "LeakyRelu", "Monomial", "Polynomial", "Rbf", "RectifiedMonomial", "Relu",
    "Sigmoid_like", "Sign", "Sin", "empirical_kernels", "parallel", "repeat", "serial",
]


def __getattr__(name: str):
    """neural-tangents' other stax names: stand-ins that raise NotImplementedError saying
    what ntkx supports (see `ntkx._src.coverage`, README's coverage table)."""
    from ntkx._src import coverage

    entry = coverage.COVERAGE.get(name)
    if entry is None or entry.status == "supported":
        raise AttributeError(f"module 'ntkx.stax' has no attribute {name!r}")
    return coverage.Unsupported(name)


def __dir__():
    from ntkx._src import coverage

    return sorted(set(__all__) | {n for n, e in coverage.COVERAGE.items() if e.status != "supported"})
