"""Datasets and random streams of the checks: scikit-learn's digits (shipped offline), points on the
sphere, and one seeding convention (`rng`, `stream_seed`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def rng(seed: int, *key: int) -> np.random.Generator:
    """The random stream of a check's `seed` and a `key` naming one use of it.

    Every check draws its randomness here: ``rng(seed, *key)`` is
    ``np.random.default_rng([seed, *key])``, i.e. PCG64 seeded by
    ``SeedSequence([seed, *key])``, so distinct keys give independent streams, and
    ``rng(seed)`` draws what ``np.random.default_rng(seed)`` draws (numpy seeds an
    integer and the list holding it alike).

    Args:
      seed: the check's seed (a non-negative integer).
      *key: non-negative integers naming the draw (a sweep's indices, a width, ...).

    Returns:
      A fresh generator.
    """
    return np.random.default_rng([seed, *key])


def stream_seed(seed: int, *key: int) -> int:
    """One integer seed from ``(seed, *key)``, for helpers that take an int (`digits`, `sphere`).

    Args:
      seed: the check's seed; *key: as in `rng`.

    Returns:
      The first 32-bit word of ``SeedSequence([seed, *key])``'s state.
    """
    return int(np.random.SeedSequence([seed, *key]).generate_state(1)[0])


class Split(NamedTuple):
    x_train: np.ndarray  # (n, 64), each row of norm sqrt(64)
    y_train: np.ndarray  # (n, 10) one-hot minus 1/10 (zero-mean targets)
    x_test: np.ndarray
    y_test: np.ndarray
    labels_train: np.ndarray  # (n,) int
    labels_test: np.ndarray


def digits(n_train: int, n_test: int, seed: int = 0) -> Split:
    """A random split of scikit-learn's digits, rows scaled to ``|x|^2 = d``.

    With rows of norm sqrt(d) the first layer's ``W_std^2 x.x'/d`` has diagonal
    ``W_std^2`` at every point, the scale the NTK theorems assume. Targets are one-hot
    minus 1/10, so the constant mode carries no target and the MSE dynamics are not
    dominated by it.

    Raises:
      ImportError: scikit-learn is not installed (``pip install ntkx[theory]``).
      ValueError: n_train + n_test exceeds the 1797 images.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError("the digits checks need scikit-learn: pip install 'ntkx[theory]'") from e
    x, labels = load_digits(return_X_y=True)
    if n_train < 1 or n_test < 0 or n_train + n_test > len(x):
        raise ValueError(f"digits: need 1 <= n_train and n_train + n_test <= {len(x)}, got {n_train}, {n_test}")
    idx = rng(seed).permutation(len(x))[:n_train + n_test]
    x = x[idx].astype(np.float64)
    x *= np.sqrt(x.shape[1]) / np.linalg.norm(x, axis=1, keepdims=True)
    labels = labels[idx]
    y = np.eye(10)[labels] - 0.1
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:], labels[:n_train], labels[n_train:])


def digit_images(n: int, seed: int = 0) -> np.ndarray:
    """`n` digits as NHWC 8x8x1 images, each scaled to ``|x|^2 = 64``."""
    return digits(n, 0, seed).x_train.reshape(n, 8, 8, 1)


def sphere(n: int, d: int, seed: int = 0) -> np.ndarray:
    """`n` points uniform on the sphere of radius sqrt(d) in R^d."""
    x = rng(seed).standard_normal((n, d))
    return x * (np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True))


def blas_threads(n: int):
    """A context limiting BLAS to `n` threads (threadpoolctl, which scikit-learn brings),
    or doing nothing without it. Small GEMMs run faster on one thread, and BLAS threads
    that spin next to busy OpenMP threads stall each other."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(n, user_api="blas")
