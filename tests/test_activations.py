"""The activation kinds and constructors (ntkx._src.activations): one enum, reprs pinned."""

import json
import pickle

import pytest

import ntkx
from ntkx import stax
from ntkx._src import activations as A
from ntkx._src.activations import Activation, ActivationKind


def test_kind_behaves_as_its_string():
    """A kind equals, hashes, formats and reprs as its value, so string callers and reprs are unchanged."""
    for kind in ActivationKind:
        assert kind == kind.value and hash(kind) == hash(kind.value)
        assert repr(kind) == repr(kind.value) and str(kind) == f"{kind}" == kind.value
        assert json.dumps(kind) == json.dumps(kind.value)
    act = Activation("erf", 1.0, 2.0, 0.5)
    assert act.kind is ActivationKind.ERF
    assert pickle.loads(pickle.dumps(act)) == act
    assert {"erf": 1}[act.kind] == 1


def test_core_names_and_degrees():
    assert [Activation(k).core_kind() for k in ("abrelu", "arccos0", "arccos2")] == [
        ntkx._core.Act.ABRelu, ntkx._core.Act.ArcCos0, ntkx._core.Act.ArcCos2]
    assert Activation("erf", 1.0).core_kind() == ntkx._core.Act.Erf
    assert [k.degree for k in ActivationKind] == [1, 0, 2] + [None] * (len(ActivationKind) - 3)


# The reprs are part of every snapshot key and of a precompute store's identity: pinned.
PINNED = [
    (A.relu(), "Activation(kind='abrelu', a=0.0, b=1.0, c=0.0, name='Relu')"),
    (A.abs_(), "Activation(kind='abrelu', a=-1.0, b=1.0, c=0.0, name='Abs')"),
    (A.abrelu(1, 2), "Activation(kind='abrelu', a=1.0, b=2.0, c=0.0, name='ABRelu(1.0, 2.0)')"),
    (A.leaky_relu(0.1), "Activation(kind='abrelu', a=0.1, b=1.0, c=0.0, name='ABRelu(0.1, 1.0)')"),
    (A.rectified_monomial(0), "Activation(kind='arccos0', a=0.0, b=1.0, c=0.0, name='RectifiedMonomial(0)')"),
    (A.rectified_monomial(1), "Activation(kind='abrelu', a=0.0, b=1.0, c=0.0, name='ABRelu(0.0, 1.0)')"),
    (A.rectified_monomial(2), "Activation(kind='arccos2', a=0.0, b=1.0, c=0.0, name='RectifiedMonomial(2)')"),
    (A.erf(), "Activation(kind='erf', a=1.0, b=1.0, c=0.0, name='Erf(1.0, 1.0, 0.0)')"),
    (A.NAMED["step"], "Activation(kind='arccos0', a=0.0, b=0.0, c=0.0, name='RectifiedMonomial(0)')"),
    (A.NAMED["requ"], "Activation(kind='arccos2', a=0.0, b=0.0, c=0.0, name='RectifiedMonomial(2)')"),
    (A.NAMED["erf"], "Activation(kind='erf', a=1.0, b=1.0, c=0.0, name='Erf')"),
    (ntkx.FcSpec(1).activation, "Activation(kind='abrelu', a=0.0, b=1.0, c=0.0, name='Relu')"),
    (ntkx.CntkSpec((ntkx.ConvLayer(),)).activation, "Activation(kind='abrelu', a=0.0, b=1.0, c=0.0, name='Relu')"),
]


@pytest.mark.parametrize("act, text", PINNED)
def test_reprs_pinned(act, text):
    assert repr(act) == text


def test_stax_layers_use_the_constructors():
    pairs = [(stax.Relu(), A.abrelu(0, 1)), (stax.Abs(), A.abrelu(-1, 1)), (stax.LeakyRelu(0.2), A.leaky_relu(0.2)),
             (stax.ABRelu(0.5, 2), A.abrelu(0.5, 2)), (stax.RectifiedMonomial(0), A.rectified_monomial(0)),
             (stax.ArcCosine(2), A.rectified_monomial(2)), (stax.Erf(2, 3, 1), A.erf(2, 3, 1))]
    for layer, act in pairs:
        assert repr(layer.ops[0].act) == repr(act)


def test_named_table_is_the_architecture_strings_table():
    """precompute's architecture strings and the estimators name the same objects."""
    from ntkx._src.precompute import kernel

    assert {k: repr(v) for k, v in kernel.ACTIVATIONS.items()} == {k: repr(v) for k, v in A.NAMED.items()}


def test_constructor_errors():
    with pytest.raises(TypeError, match="ABRelu: a must be a number"):
        A.abrelu("x", 1)
    with pytest.raises(TypeError, match="Erf: c must be a number"):
        A.erf(1, 1, None)
    for bad in (-1, 16):
        with pytest.raises(NotImplementedError, match="RectifiedMonomial"):
            A.rectified_monomial(bad)
        with pytest.raises(NotImplementedError, match="Monomial"):
            A.monomial(bad)
        with pytest.raises(NotImplementedError, match="Hermite"):
            A.hermite(bad)
    with pytest.raises(TypeError, match="degree must be an integer"):
        A.monomial(2.5)
    assert A.monomial(2.0) == A.monomial(2)  # an integral float, as neural-tangents takes it
    with pytest.raises(NotImplementedError, match="degree 3 to 15"):
        Activation("arccosn", 2.0)  # degree 2 has its own kind
    with pytest.raises(ValueError, match=r"one of \[.*'abrelu'.*'erf'.*\], got 'relu'"):
        Activation("relu")
    with pytest.raises(ValueError, match="zero function"):
        A.sin(0.0, 1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        A.rbf(-1.0)
    with pytest.raises(ValueError, match="at most"):
        A.exp(1.0, 1e200)
