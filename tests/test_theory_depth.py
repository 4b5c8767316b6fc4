"""The depth checks of ``ntkx check`` (issue 13): each quick run once, its numbers asserted against the
derived asymptotics and the literal references of ``tests/reference/depth.py``."""

from __future__ import annotations

import io
import json
import math

import matplotlib
import numpy as np
import pytest

import ntkx
from ntkx._src.theory import depth as cd
from ntkx._src.theory import data
from ntkx.theory.checks import CHECKS  # importing registers every check
from ntkx._src.theory.result import FAILS, HOLDS
from conftest import TOL
from reference import depth as ref

matplotlib.use("Agg")

NAMES = ("depth_nngp_correlation", "depth_ntk_limit", "depth_ntk_bias", "depth_prop5_recurrence",
         "depth_prop6_eigenvalues", "depth_gram_min_eig", "depth_stopping_time", "depth_separation",
         "depth_width_deviation")


@pytest.fixture(scope="module")
def results(quick_check):
    """Every depth check's quick run (seed 0), from the session's one quick run of all checks."""
    return {name: quick_check(name) for name in NAMES}


def test_registered():
    depth = [n for n in CHECKS if n.startswith("depth_")]
    assert sorted(depth) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_result_serializes_and_draws(results, name):
    res = results[name]
    assert res.name == name
    d = json.loads(json.dumps(res.to_dict()))
    assert d["verdict"] == res.verdict and d["claim"] and d["source"] and d["rule"] and d["notes"]
    fig = res.figure()
    assert fig.axes
    fig.set_layout_engine("none")  # render every artist; the constrained layout alone costs ~1.5 s a figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=30)
    assert buf.tell() > 1000


# ----------------------------------------------------------------------------- 1. NNGP correlation


def test_nngp_correlation(results):
    res = results["depth_nngp_correlation"]
    fit = res.fits["one_minus_rho"]
    assert abs(fit.exponent + 2.0) < 0.1
    assert abs(fit.exponent + 2.0) < 0.02  # D >= 10^3: the ln(D)/D correction is below 0.02 there
    m = res.measured
    last = int(np.flatnonzero(m["fitted"])[-1])
    assert m["depths"][last] >= 10 ** 5
    assert m["d2_one_minus_rho"][last] == pytest.approx(ref.NNGP_CONST, rel=0.01)
    assert m["decreases"] == 0
    assert res.verdict == HOLDS


def test_nngp_one_minus_rho_against_mp():
    # the engine's 1 - rho_D against the recurrence in mpmath: good to the output floor D 2^-53
    x = data.sphere(2, cd.D_IN, 3)
    rho1 = float(x[0] @ x[1] / cd.D_IN)
    for depth in (10, 300, 3000):
        rho, _ = cd.normalized_kernels(x, depth)
        want = ref.prop5_mp_one_minus_rho(rho1, depth + 1)
        assert abs((1.0 - rho[0, 1]) - want) <= max(4 * cd.output_floor(depth), 1e-15)


# ----------------------------------------------------------------------------- 2. normalized NTK, no bias


def test_ntk_limit_is_a_quarter(results):
    res = results["depth_ntk_limit"]
    lf = res.measured["limit_fit"]
    assert abs(lf["limit"] - ref.NTK_LIMIT) < 0.02
    assert abs(lf["limit"] - ref.NTK_LIMIT) < 1e-4
    assert lf["limit_ci95"][1] < 0.98  # far from the paper's 1
    assert abs(lf["log_coef"] - ref.NTK_LOG_COEF) < 0.05
    k_last = np.asarray(res.measured["k_at_max_depth"])
    big = res.measured["L"][-1]
    assert np.all(np.abs(k_last - (ref.NTK_LIMIT + ref.NTK_LOG_COEF * math.log(big) / big)) < 10.0 / big)
    assert res.measured["decreases"] > 0  # not monotone
    assert res.measured["agrees_with_derivation"]
    assert res.verdict == FAILS


def test_ntk_normalization_map():
    # Definition 4 on the unit sphere: Theta_paper^(L) n0 2^(L-1)/L equals Theta^(L-1)/(L q0) here; the
    # engine's diagonal is (D + 1) q0 exactly
    x = data.sphere(3, cd.D_IN, 1)
    for depth in (0, 1, 7, 1000):
        ker = ntkx.fc_kernels(x, None, cd.relu_spec(depth), get=("nngp", "ntk"))
        q0 = 2.0 * np.sum(x * x, axis=1) / cd.D_IN
        np.testing.assert_allclose(np.diag(ker.ntk), (depth + 1) * q0, rtol=TOL["analytic"])  # scale carried in logs
        np.testing.assert_allclose(np.diag(ker.nngp), q0, rtol=TOL["analytic"])


# ----------------------------------------------------------------------------- 3. with a bias


def test_ntk_bias(results):
    res = results["depth_ntk_bias"]
    u, h = res.measured["unit"], res.measured["he"]
    for slope in u["slope_per_layer"]:
        assert slope == pytest.approx(ref.UNIT_BIAS_SLOPE, abs=0.02)
    assert all(d == 0 for d in u["decreases"])
    assert all(v <= 1e-9 for v in u["k_at_max_depth"])
    for c in h["limit"]:
        assert abs(c - ref.BIAS_NTK_LIMIT) < 0.01
    for key, fit in res.fits.items():
        if key.endswith("abs_k_minus_4/7"):
            assert abs(fit.exponent + 0.5) < 0.15
        if key.endswith("one_minus_rho"):
            assert abs(fit.exponent + 2.0) < 0.1
    for c in h["d2_one_minus_rho"]:
        assert c == pytest.approx(ref.BIAS_NNGP_CONST, rel=0.03)
    assert res.verdict == HOLDS


# ----------------------------------------------------------------------------- 4. Proposition 5


def test_prop5(results):
    res = results["depth_prop5_recurrence"]
    m = res.measured
    small = np.asarray(m["L_literal"]) <= 100
    assert np.max(np.asarray(m["literal_k_err"])[small]) <= TOL["reference"]  # literal recurrence vs engine
    assert np.max(m["stable_k_err"]) <= TOL["deep_recurrence"]
    assert m["L_stable"][-1] == 10 ** 6
    assert m["stable_k"][-1] == pytest.approx(ref.NTK_LIMIT + ref.NTK_LOG_COEF * math.log(1e6) / 1e6, abs=5e-6)
    assert m["L_stable"][-1] ** 2 * m["stable_one_minus_rho"][-1] == pytest.approx(ref.NNGP_CONST, rel=1e-4)
    assert m["diagonal_map_err"] <= TOL["roundoff"]
    assert res.verdict == HOLDS


def test_prop5_recurrences_against_mp_and_engine():
    x = data.sphere(3, cd.D_IN, 4)
    rho1 = cd.offdiag(x @ x.T / cd.D_IN)
    keep = (1, 2, 5, 50, 1500)
    lit = cd.prop5_recurrence(rho1, keep[-1], keep)
    for j, r in enumerate(rho1):
        mp = ref.prop5_mp(float(r), keep[-1], keep)
        st = cd.prop5_stable(float(r), keep[-1], keep)
        for big in keep:
            assert abs(st[big][1] - mp[big][1]) <= TOL["mp_recurrence"]
            assert abs((1.0 - st[big][0]) - mp[big][0]) <= TOL["mp_one_minus_rho"]
            if big <= 50:
                assert abs(lit[big][1][j] - mp[big][1]) <= TOL["mp_recurrence"]
            _, k = cd.normalized_kernels(x, big - 1)
            assert abs(cd.offdiag(k)[j] - mp[big][1]) <= TOL["mp_engine"]
    # the literal float64 form drifts with depth (cancellation in arccos near 1); the check must see it
    assert max(abs(lit[1500][1][j] - ref.prop5_mp(float(r), 1500, [1500])[1500][1]) for j, r in enumerate(rho1)) > 1e-14


# ----------------------------------------------------------------------------- 5. Proposition 6


def test_prop6(results):
    res = results["depth_prop6_eigenvalues"]
    assert res.measured["worst_structure_err"] <= TOL["prop6_structure"]
    assert res.measured["worst_step_err"] <= TOL["prop6_step"]
    sx = res.measured["sets"]["simplex"]
    assert sx["L"][-1] == 10 ** 6
    assert sx["ntk_lambda_perp"][-1] == pytest.approx(1.0 - ref.NTK_LIMIT, abs=1e-3)
    assert sx["nngp_lambda_perp"][-1] < 1e-9
    assert max(sx["offdiag_spread"]) <= TOL["roundoff"]
    assert res.verdict == HOLDS


def test_equicorrelated_points():
    for n in (4, 8):
        for c, want in (("simplex", -1.0 / (n - 1)), ("half", 0.5)):
            x = cd.equicorrelated(n, c)
            g = x @ x.T / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
            np.testing.assert_allclose(cd.offdiag(g), want, rtol=0, atol=TOL["ulp"])
    with pytest.raises(ValueError):
        cd.equicorrelated(4, "other")


# ----------------------------------------------------------------------------- 6. Fig. 7


def test_gram_min_eig(results):
    res = results["depth_gram_min_eig"]
    m = res.measured
    for lam in m["ntk_lambda_min"]:
        assert 0.74 <= lam[-1] <= 0.75
        assert lam[-1] > lam[0]  # grows with depth
    for n in m["N"]:
        assert abs(res.fits[f"nngp_N{n}"].exponent + 2.0) < 0.1
    for c in m["nngp_L2_lambda_min"]:
        assert c == pytest.approx(ref.NNGP_CONST, rel=0.02)
    assert res.verdict == FAILS


# ----------------------------------------------------------------------------- 7. Theorem 3 / Fig. 6


def test_stopping_time(results):
    res = results["depth_stopping_time"]
    for s in ("1", "L", "inf"):
        assert abs(res.fits[f"perp_t_{s}"].exponent + 1.0) < 0.1
    assert abs(res.fits["perp_t_1/L"].exponent + 2.0) < 0.1
    assert res.measured["full_limit_rel_err"] < 1e-3
    assert res.fits["perp_vs_N"].exponent < 0.5 + 0.1  # at most the sqrt(N) of the bound
    assert res.verdict == FAILS


def test_projection_norms_against_reference():
    x = data.sphere(9, cd.D_IN, 2)
    _, k = cd.normalized_kernels(x, 20)
    kt, ks = k[:6, :6], k[6:, :6]
    for t in (0.3, 5.0, math.inf):
        p = ref.gradient_flow_operator(kt, ks, t)
        pi = np.eye(6) - 1.0 / 6
        full, perp = cd.projection_norms(kt, ks, t)
        assert full == pytest.approx(np.linalg.norm(p, 2), rel=TOL["solve"])
        assert perp == pytest.approx(np.linalg.norm(p @ pi, 2), rel=TOL["solve_projected"])


# ----------------------------------------------------------------------------- 8. Proposition 7


def test_separation(results):
    res = results["depth_separation"]
    m = res.measured
    assert np.max(np.abs(m["finite_z"])) <= 4.0
    assert np.max(np.abs(m["any_z"])) <= 4.0
    assert m["below_bound"] == 0
    assert np.all(np.asarray(m["finite_p_exact"]) >= np.asarray(m["finite_bound"]))
    assert abs(res.fits["p_vs_depth"].exponent + 1.0) < 0.05
    assert res.verdict == HOLDS


def test_sheppard_and_pair_sampler():
    for rho in (-0.6, 0.0, 0.3, 0.9):
        assert math.acos(rho) / math.pi == pytest.approx(ref.separation_probability(rho), abs=TOL["mvn_cdf"])
    x = data.sphere(2, cd.D_IN, 0)
    h = cd.relu_preacts_pair(x, 200_000, 2, np.random.default_rng(1))
    cov = h[0] @ h[0].T / h.shape[2]
    np.testing.assert_allclose(cov, 2.0 * x @ x.T / cd.D_IN, atol=0.02)
    rho1, _ = cd.normalized_kernels(x, 1)
    c2 = h[1] @ h[1].T / h.shape[2]
    assert c2[0, 1] / math.sqrt(c2[0, 0] * c2[1, 1]) == pytest.approx(rho1[0, 1], abs=0.01)


# ----------------------------------------------------------------------------- 9. Proposition 4 / Table 1


def test_width_deviation(results):
    res = results["depth_width_deviation"]
    assert abs(res.fits["aggregate"].exponent) < 0.15
    assert abs(res.fits["per_neuron_median"].exponent + 0.5) < 0.15
    assert res.fits["per_neuron_max"].exponent < -0.2
    assert np.all(np.asarray(res.measured["loss_ratio"]) < 1e-3)  # trained
    assert res.verdict == HOLDS


def test_fit_limit_recovers_known_coefficients():
    d = np.logspace(3, 6, 10)
    b = np.array([0.3, -1.2])
    v = 0.25 + 0.375 * np.log(d)[:, None] / d[:, None] + b / d[:, None]
    lf = cd.fit_limit(d, v)
    assert lf["limit"] == pytest.approx(0.25, abs=TOL["fit_exact"])
    assert lf["coef"]["lnL/L"] == pytest.approx(0.375, abs=TOL["fit_exact_coef"])
    v2 = 4 / 7 + np.array([0.5, -0.2]) / np.sqrt(d)[:, None] + 2.0 / d[:, None]
    lf2 = cd.fit_limit(d, v2, shared=(), per_pair=("1/sqrtL", "1/L"))
    assert lf2["limit"] == pytest.approx(4 / 7, abs=TOL["fit_exact"])


def test_count_decreases_and_grid():
    v = np.array([[0.0, 1.0], [1.0, 0.5], [0.5, 0.5 - 1e-13], [2.0, 0.0]])
    assert cd.count_decreases(v) == 3
    g = cd.depth_grid(10, 10 ** 6, 2)
    assert g[0] == 10 and g[-1] == 10 ** 6 and np.all(np.diff(g) > 0) and g.size == 11
