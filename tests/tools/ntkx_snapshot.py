"""pytest plugin: records a fingerprint of every value ntkx's public kernels and
dynamics return during a test run, to show a refactor changed no bit.

Usage (from the repository root)::

    NTKX_SNAPSHOT=before.json PYTHONPATH=tests/tools python -m pytest -p ntkx_snapshot -m "not slow"
    # ... change the code ...
    NTKX_SNAPSHOT=after.json PYTHONPATH=tests/tools python -m pytest -p ntkx_snapshot -m "not slow"
    python tests/tools/ntkx_snapshot.py before.json after.json

Each call is keyed by the function's public name and a sha256 of its arguments
(arrays by dtype, shape and bytes; other values by ``repr``, callables by type), and
its value by a sha256 of every array it returns (after the call, so ``out=`` arrays
count). A key that gave two different values within one run (two objects whose
methods got the same arguments, or random inputs) is dropped as ambiguous. The
compare step reports how many keys both runs share and every one whose value differs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys

import numpy as np

#: Public names whose calls are fingerprinted: the kernels and the dynamics.
FUNCTIONS = ("ntkx.fc_kernels", "ntkx.cntk_kernels", "ntkx.arora_cntk")
DYNAMICS_FUNCTIONS = ("cross_entropy_flow", "gradient_descent_mse", "gradient_descent_mse_ensemble", "cg_solve",
                      "expm_multiply", "mse_dynamics_iterative", "phi_multiply", "top_eigenpairs")
DYNAMICS_CLASSES = ("MSEDynamics", "GPDynamics", "CrossEntropyFlow")

_record: dict[str, set] = {}


def _feed(h, value, depth=0) -> None:
    if depth > 6:
        h.update(b"<deep>")
        return
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"nd{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif isinstance(value, (np.generic, int, float, complex, bool, str, bytes, type(None))):
        h.update(repr(value).encode())
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}[".encode())
        for v in value:
            _feed(h, v, depth + 1)
        h.update(b"]")
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _feed(h, value[k], depth + 1)
        h.update(b"}")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(type(value).__name__.encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode())
            _feed(h, getattr(value, f.name), depth + 1)
    elif isinstance(value, np.memmap) or hasattr(value, "__array__") and hasattr(value, "shape"):
        _feed(h, np.asarray(value), depth + 1)
    elif callable(value):
        h.update(f"<callable {type(value).__name__}>".encode())
    else:
        h.update(f"<{type(value).__name__}>".encode())


def _digest(*values) -> str:
    h = hashlib.sha256()
    for v in values:
        _feed(h, v)
    return h.hexdigest()[:24]


def _wrap(name, fn, method=False):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        try:
            key_args = args[1:] if method else args
            key = name + ":" + _digest(key_args, kwargs)
            _record.setdefault(key, set()).add(_digest(out))
        except Exception:  # never let the recorder break a test
            pass
        return out

    wrapper.__ntkx_snapshot__ = True
    return wrapper


def _install() -> None:
    import ntkx
    import ntkx.dynamics as dyn

    targets = {}
    for full in FUNCTIONS:
        targets[getattr(ntkx, full.split(".")[1])] = full
    for n in DYNAMICS_FUNCTIONS:
        if hasattr(dyn, n):
            targets[getattr(dyn, n)] = "ntkx.dynamics." + n
    # Replace every module-level reference to a target inside ntkx.
    for modname, mod in list(sys.modules.items()):
        if not (modname == "ntkx" or modname.startswith("ntkx.")) or mod is None:
            continue
        for attr, val in list(vars(mod).items()):
            if callable(val) and not isinstance(val, type) and val in targets:
                setattr(mod, attr, _wrap(targets[val], val))
    for cname in DYNAMICS_CLASSES:
        cls = getattr(dyn, cname, None)
        if cls is None:
            continue
        for attr, val in list(vars(cls).items()):
            if attr.startswith("_") or not callable(val) or isinstance(val, (staticmethod, classmethod, type)):
                continue
            setattr(cls, attr, _wrap(f"ntkx.dynamics.{cname}.{attr}", val, method=True))


def pytest_configure(config):
    if os.environ.get("NTKX_SNAPSHOT"):
        # Import everything that may bind the targets by name before patching.
        import importlib
        import pkgutil

        import ntkx

        for m in pkgutil.walk_packages(ntkx.__path__, "ntkx."):
            if m.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(m.name)
            except Exception:
                pass
        _install()


def pytest_unconfigure(config):
    path = os.environ.get("NTKX_SNAPSHOT")
    if path:
        clean = {k: sorted(v)[0] for k, v in _record.items() if len(v) == 1}
        with open(path, "w") as f:
            json.dump({"calls": len(_record), "ambiguous": len(_record) - len(clean), "values": clean}, f, indent=0)


def compare(before: str, after: str) -> int:
    a, b = (json.load(open(p))["values"] for p in (before, after))
    shared = sorted(set(a) & set(b))
    differ = [k for k in shared if a[k] != b[k]]
    by_fn = {}
    for k in shared:
        fn = k.split(":")[0]
        n, d = by_fn.get(fn, (0, 0))
        by_fn[fn] = (n + 1, d + (a[k] != b[k]))
    print(f"before: {len(a)} keys, after: {len(b)} keys, shared: {len(shared)}, differing: {len(differ)}")
    for fn, (n, d) in sorted(by_fn.items()):
        print(f"  {fn}: {n} shared, {d} differ")
    for k in differ[:50]:
        print("DIFFERS", k)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(compare(sys.argv[1], sys.argv[2]))
