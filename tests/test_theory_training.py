"""The training theorem checks in quick mode: their measured numbers, fitted rates and verdicts.

Bands are two-sided: wide enough for 3 seeds at widths 64..1024 (quick-mode values in
the comments, 95% CIs about +-0.1..0.3) and narrow enough that a wrong rate (m^0 where
-1/2 is expected, or -1/2 where -1 is measured) fails.
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
    assert -1.2 < f["sup_ntk_change"].exponent < -0.7  # measured -0.96: the NTK moves like 1/m
    assert -0.9 < f["sup_lin"].exponent < -0.35  # measured -0.56
    assert res.verdict in ("holds", "inconclusive")  # sup_lin's CI straddles the -0.4 edge in quick mode


def test_infinite_width_agreement(quick_check):
    res = quick_check("infinite_width_agreement")
    f = res.fits
    assert -0.9 < f["mse"].exponent < -0.35 and -0.9 < f["xent"].exponent < -0.35  # measured -0.57, -0.47
    assert f["init_ntk_error"].exponent == pytest.approx(-0.5, abs=0.2)  # CLT rate, beats Arora's -1/4
    assert -0.6 < f["kappa_f0zero"].exponent < -0.1  # measured -0.25: falling towards the O(kappa) floor
    # the f0 = 0 comparison at kappa = 1 keeps the GP fluctuation of f0 (it does not shrink with m)
    assert np.all(res.measured["agree_f0zero_kappa1"] > 0.1)
    assert np.all(res.measured["xent_ode_gap"] < 1e-2)
    assert res.verdict != "does not hold"  # quick: 3 widths leave the xent CI near the bound's edge


def test_exponential_convergence(quick_check):
    res = quick_check("exponential_convergence")
    assert res.measured["bound_ratio_infinite"].max() <= 1 + 1e-12
    assert res.measured["bound_ratio_finite"].max() <= 1 + 1e-12
    assert -0.9 < res.fits["mode_dev"].exponent < -0.3  # measured -0.56
    assert res.verdict != "does not hold"


def test_lazy_regime(quick_check):
    res = quick_check("lazy_regime")
    f = res.fits
    assert f["rel_weight_vs_m"].exponent == pytest.approx(-0.5, abs=0.1)
    assert f["rel_weight_vs_alpha"].exponent == pytest.approx(-1.0, abs=0.05)
    assert f["misalign_vs_alpha"].exponent == pytest.approx(-1.0, abs=0.2)  # ReLU flips: alpha^-1, not alpha^-2
    assert res.verdict == "holds"
