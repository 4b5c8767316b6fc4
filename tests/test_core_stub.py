"""python/ntkx/_core.pyi matches the compiled module: the same public names, the same
class members, and the argument names (and which have defaults) of every function
whose pybind11 docstring gives its signature."""

import ast
import pathlib
import re

import pytest

from ntkx import _core

STUB = pathlib.Path(_core.__file__).resolve().parent / "_core.pyi"
if not STUB.exists():  # an installed, non-editable build: the stub beside the sources
    STUB = pathlib.Path(__file__).resolve().parents[1] / "python" / "ntkx" / "_core.pyi"


def _stub():
    return {n.name if not isinstance(n, ast.AnnAssign) else n.target.id: n
            for n in ast.parse(STUB.read_text()).body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AnnAssign))}


def _split_top(s):
    """Splits `s` at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += ch in "[(" and 1 or (ch in "])" and -1 or 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in parts + [cur] if p.strip()]


def _doc_args(fn, name):
    """[(argument, has default)] of pybind11's `name(a: T, b: T = v) -> R` docstring line."""
    first = (fn.__doc__ or "").strip().splitlines()[0]
    m = re.match(rf"{name}\((.*)\) ->", first)
    assert m, first
    return [(p.split(":")[0].strip(), "=" in p) for p in _split_top(m.group(1)) if not p.startswith("self")]


def _stub_args(node):
    a = node.args
    names = [x.arg for x in a.args if x.arg != "self"]
    defaults = [False] * (len(names) - len(a.defaults)) + [True] * len(a.defaults)
    return list(zip(names, defaults))


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_same_public_names():
    assert set(_stub()) == _public(_core)


@pytest.mark.parametrize("name", sorted(n for n in _public(_core) if callable(getattr(_core, n))
                                        and not isinstance(getattr(_core, n), type)))
def test_function_arguments_match(name):
    assert _stub_args(_stub()[name]) == _doc_args(getattr(_core, name), name)


@pytest.mark.parametrize("name", sorted(n for n in _public(_core) if isinstance(getattr(_core, n), type)))
def test_class_members_match(name):
    cls, node = getattr(_core, name), _stub()[name]
    members = {(n.name if isinstance(n, ast.FunctionDef) else n.target.id): n for n in node.body
               if isinstance(n, (ast.FunctionDef, ast.AnnAssign))}
    if hasattr(cls, "__members__"):  # a pybind11 enum: its values
        assert set(members) == set(cls.__members__)
        return
    assert set(members) - {"__init__"} == {n for n in vars(cls) if not n.startswith("_")}
    assert _stub_args(members["__init__"]) == _doc_args(cls.__init__, "__init__")
