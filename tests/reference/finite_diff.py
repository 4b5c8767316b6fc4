"""Central finite differences of a finite network's `apply_fn`, entry by entry (slow, obvious)."""

import numpy as np


def jacobian(apply_fn, params, x, eps=1e-6):
    """`(n_params, N, k)`: d apply_fn(params, x) / d theta_p by central differences, in
    the order of params' arrays (None entries skipped)."""
    rows = []
    for p in params:
        for arr in p:
            if arr is None:
                continue
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + eps
                plus = apply_fn(params, x)
                arr[idx] = old - eps
                minus = apply_fn(params, x)
                arr[idx] = old
                rows.append((plus - minus) / (2 * eps))
    return np.array(rows)


def ntk(apply_fn, params, x1, x2, eps=1e-6):
    """``(1/k) sum_o J_o(x1) J_o(x2)^T`` with every Jacobian entry a central difference."""
    j1, j2 = jacobian(apply_fn, params, x1, eps), jacobian(apply_fn, params, x2, eps)
    return np.einsum("pio,pjo->ij", j1, j2) / j1.shape[2]


def gradient(fun, params, eps=1e-6):
    """d fun(params) / d theta for a scalar `fun`, as a list shaped like params."""
    out = []
    for p in params:
        g = []
        for arr in p:
            if arr is None:
                g.append(None)
                continue
            ga = np.empty_like(arr)
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + eps
                plus = fun(params)
                arr[idx] = old - eps
                minus = fun(params)
                arr[idx] = old
                ga[idx] = (plus - minus) / (2 * eps)
            g.append(ga)
        out.append(tuple(g))
    return out
