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
    Dense,
    Erf,
    Flatten,
    GlobalAvgPool,
    Layer,
    LeakyRelu,
    RectifiedMonomial,
    Relu,
    empirical_kernels,
    repeat,
    serial,
)

__all__ = [
    "ABRelu", "Abs", "ArcCosine", "Conv", "Dense", "Erf", "Flatten", "GlobalAvgPool", "Layer", "LeakyRelu",
    "RectifiedMonomial", "Relu",
    "empirical_kernels", "repeat", "serial",
]
