"""The training theorem checks in quick mode: their measured numbers, fitted rates and verdicts.

Tolerances are wide enough for 3 seeds at widths 64..1024 (measured spreads in the
comments) and narrow enough that a wrong rate (e.g. m^0 or m^-1 where -1/2 is expected)
fails.
"""

import json

import numpy as np
import pytest

TRAINING = ["ntk_constancy", "lee_linearization", "infinite_width_agreement", "exponential_convergence", "lazy_regime"]


@pytest.mark.parametrize("name", TRAINING)
def test_result_is_complete_and_serializable(quick_check, name):
    res = quick_check(name)
    assert res.claim and res.source and res.rule and res.summary
    d = json.loads(json.dumps(res.to_dict()))
    assert d["verdict"] == res.verdict and d["params"]["steps"] == 200
    fig = res.figure()
    assert len(fig.axes) >= 1 and all(ax.has_data() for ax in fig.axes)


def test_ntk_constancy(quick_check):
    res = quick_check("ntk_constancy")
    d = res.measured["delta_ntk"]
    assert d.shape == (3, 3) and np.all(np.diff(d.mean(axis=0)) < 0)
    # measured -0.95 [-1.14, -0.76] at t = 1.2: faster than the O(m^-1/2) bound (Dyer & Gur-Ari's 1/m)
    assert -1.3 < res.fits["delta_ntk"].exponent < -0.6
    assert res.verdict == "holds"
    assert res.fits["review"].exponent == pytest.approx(-0.645, abs=0.01)  # the review's own slope


def test_lee_linearization_rates(quick_check):
    res = quick_check("lee_linearization")
    f = res.fits
    assert f["sup_dist_over_sqrt_m"].exponent == pytest.approx(-0.5, abs=0.1)  # ||dtheta|| = O(1)
    assert f["sup_ntk_change"].exponent < -0.4 and f["sup_lin"].exponent < -0.4
    assert res.verdict in ("holds", "inconclusive")


def test_infinite_width_agreement(quick_check):
    res = quick_check("infinite_width_agreement")
    f = res.fits
    assert f["mse"].exponent < -0.4 and f["xent"].exponent < -0.4
    assert f["init_ntk_error"].exponent == pytest.approx(-0.5, abs=0.2)  # CLT rate, beats Arora's -1/4
    assert f["kappa_f0zero"].exponent < 0
    # the f0 = 0 comparison at kappa = 1 keeps the GP fluctuation of f0 (it does not shrink with m)
    assert np.all(res.measured["agree_f0zero_kappa1"] > 0.1)
    assert np.all(res.measured["xent_ode_gap"] < 1e-2)
    assert res.verdict != "does not hold"  # quick: 3 widths leave the xent CI near the bound's edge


def test_exponential_convergence(quick_check):
    res = quick_check("exponential_convergence")
    assert res.measured["bound_ratio_infinite"].max() <= 1 + 1e-12
    assert res.measured["bound_ratio_finite"].max() <= 1 + 1e-12
    assert res.fits["mode_dev"].exponent < -0.3
    assert res.verdict != "does not hold"


def test_lazy_regime(quick_check):
    res = quick_check("lazy_regime")
    f = res.fits
    assert f["rel_weight_vs_m"].exponent == pytest.approx(-0.5, abs=0.1)
    assert f["rel_weight_vs_alpha"].exponent == pytest.approx(-1.0, abs=0.05)
    assert f["misalign_vs_alpha"].exponent == pytest.approx(-1.0, abs=0.2)  # ReLU flips: alpha^-1, not alpha^-2
    assert res.verdict == "holds"
