"""scikit-learn estimators: kernel regression and classification with infinitely wide networks.

Example:
    >>> import numpy as np
    >>> from ntkx.estimators import NTKClassifier
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((40, 4)); y = (x[:, 0] > 0).astype(int)
    >>> clf = NTKClassifier('fc', depth=2).fit(x[:30], y[:30])
    >>> clf.predict(x[30:]).shape
    (10,)
"""
from ntkx._src.estimators import NTKClassifier, NTKRegressor

__all__ = ["NTKClassifier", "NTKRegressor"]
