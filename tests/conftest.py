"""Shared test configuration: one tolerance table, optional peers, markers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ntkx._src import backend

# The suite runs the CUDA kernels' phase bodies on the CPU (device='emulate'),
# which ntkx refuses outside its tests.
backend.ALLOW_EMULATE = True

#: Relative tolerances by what is compared; each with its reason.
TOL = {
    # neural-tangents float64 on inputs in general position (the bar).
    "nt": 1e-12,
    # neural-tangents' CNTK on images in general position (the CNTK issue's bar; measured
    # <= 2e-14 on test_cntk_nt's default grid, 4e-13 in its slow sweep).
    "nt_cntk": 1e-11,
    # neural-tangents' CNTK where its own angle is ill-conditioned (a correlation exactly
    # +-1: arctan2 of a rounding residue, ~1e-8 off per layer; measured <= 3.2e-8).
    "nt_colinear": 1e-6,
    # literal numpy reference: same formulas, different evaluation order.
    "reference": 1e-12,
    # numerical duals (tests/reference/activations.py): 2-D Gauss-Hermite quadrature at 200
    # nodes of the smooth activations, adaptive polar quadrature of the homogeneous ones,
    # through a two-activation recursion (measured <= 2.9e-14, Monomial(7)).
    "quadrature": 1e-12,
    # mpmath at 50 digits on (anti)colinear and identical inputs.
    "mp_colinear": 1e-13,
    # mpmath at depth 1e5 (1e5 roundings accumulate).
    "mp_deep": 1e-10,
    # emulated CUDA kernel vs OpenMP: same math, other summation order of the Gram.
    "emulator": 1e-13,
    # float32 mode against float64 (float32 Gram, float64 recursion).
    "float32": 1e-5,
    # ntkx against itself by another route to the same kernel: another memory layout or dtype
    # holding the same values, a panel / tile / memory-budget split, a precompute store's
    # tiles, the x2=None triangle against the cross path (inputs in general position).
    # Same formulas on the same rows; only the Gram's BLAS blocking may differ (~1e-15 seen).
    "route": 1e-14,
    # a bias-free (positively homogeneous) kernel at input or W_std scale s against s^e times
    # the kernel at scale 1: the scaled call rounds inputs, Gram and log-scales differently
    # (measured <= 1.5e-15 bias-free, 1.2e-13 for a biased net whose bias is negligible).
    "homogeneity": 1e-12,
    # a closed form of the dynamics or estimators (eigendecomposition, Cholesky) against a
    # direct dense solve or inverse of the same kernel: its conditioning (to ~1e6) times eps.
    "solve": 1e-10,
    # a closed form of the dynamics against a numerical ODE integration of the same flow
    # (solve_ivp DOP853 at rtol 1e-13, or RK4 with a small step): the integrator's error.
    "ode": 1e-8,
    # ntkx's dynamics against neural-tangents' predict functions on the same kernels: the
    # same closed forms by another linear-algebra route (their eigh/solve, jax float64).
    "nt_dynamics": 1e-10,
    # ntkx.predict end to end (ntkx's kernels) against neural-tangents' predict end to end (its own
    # kernels): its NTK diagonal on identical inputs is off by ~7e-9 relative (the arctan2 angle of
    # TOL['nt_colinear']), which the regularized solve passes to the test mean (measured 1.0e-9 on its
    # README ReLU example at diag_reg=1e-4; 2.7e-15 for Erf; 1e-16 on shared kernels, TOL['nt_dynamics']).
    "nt_predict_e2e": 1e-8,
    # an iterative solver (CG, Lanczos, top eigenpairs) at its tolerance against a dense
    # direct solve (the dynamics' bar).
    "iterative": 1e-8,
    # gradients and empirical NTKs against central finite differences: O(h^2) truncation
    # plus eps / h rounding.
    "finite_diff": 1e-6,
    # a kernel against a value known in closed form (the diagonal q and (L + 1) q of a
    # scale-preserving ReLU net at any depth, its scale carried in logs): rounding only.
    "analytic": 1e-12,
    # a few float64 operations more or fewer on O(1) values (a few ulps): a CPU call split by
    # memory_budget into panels / layer blocks against one call (the same tiles' arithmetic),
    # a formula restated in the test, an equicorrelated construction.
    "ulp": 1e-15,
    # ntkx outputs that differ only by the rounding of a short chain of operations (no
    # ill-conditioned solve, no long recursion): the GP prior at t = 0, a mean with or without
    # its covariance, a Cholesky fit's train outputs against the targets it interpolates,
    # a bias-free kernel at exactly scaled inputs, a check's rounding-level self-consistency.
    "roundoff": 1e-14,
    # float32 outputs against float64, or two float32 routes (the CUDA path, emulated,
    # also rounds its inputs to float32): 2^-24 per rounding, a few roundings.
    "float32_outputs": 1e-6,
    # the CPU backend's tabulated depth-L response of the input angle (cpu/angle_table.h, many
    # bias-free pairs) against the exact recursion (the CUDA kernel, emulated): the table's error.
    "angle_table": 1e-13,
    # the CUDA kernel on a device against OpenMP: other summation order and the device's
    # fused multiply-adds through the recursion.
    "cuda": 1e-12,
    # the smallest eigenvalue (or variance) of a computed PSD matrix relative to its largest:
    # eigvalsh's backward error and cancellation, about N eps.
    "psd_roundoff": 1e-12,
    # a closed form of discrete gradient descent against literally iterating its update
    # f <- f - a A (f - Y), 300 steps at 1.9 / lambda_max (the top mode oscillates).
    "gd_iteration": 1e-8,
    # a finite network's linearized GD run (train.py) against MSEDynamics' closed form with the
    # same empirical NTK: one linear recursion in two summation orders, 30 steps with
    # ||eta Theta|| <= 1 (rtol and atol).
    "linearized": 1e-10,
    # the same at output scale 100, where F = a f amplifies the rounding of f.
    "linearized_scaled": 1e-9,
    # one GD step against the step with finite-difference gradients: the 1e-10 gradient error
    # per entry times the learning rate and the output's sensitivity (rtol).
    "finite_diff_step": 1e-7,
    # its absolute floor for outputs near 0 (the outputs are O(1)).
    "finite_diff_step_abs": 1e-9,
    # the t = inf limit by the eigendecomposition against a dense solve or inverse of the
    # well-conditioned 24-point fixture kernel (no expm in the reference, unlike 'solve').
    "eig_inf": 1e-11,
    # the t = inf train outputs by the eigendecomposition against the targets they interpolate.
    "interpolation": 1e-12,
    # closed forms on an exactly singular kernel (duplicated points) at t = inf against the
    # pseudo-inverse limit: the null space's rounding residue over the smallest kept eigenvalue.
    "singular": 1e-9,
    # a mode's time_to_residual(eps) played back through train_outputs: the residual against
    # eps (relative): log / exp rounding amplified by a t lambda.
    "time_to_residual": 1e-7,
    # the cross-entropy flow's test rows against its train rows when the test points are
    # training points (the test update integrated beside the flow).
    "flow_test_rows": 1e-13,
    # Proposition 5's recurrence in float64 (stable or literal, depth <= 1500) against mpmath:
    # absolute, on correlations and normalized kernels in [-1, 1].
    "mp_recurrence": 1e-13,
    # ... and its 1 - rho, which the stable form carries directly (absolute).
    "mp_one_minus_rho": 1e-15,
    # the engine's normalized kernels against the recurrence in mpmath at depth <= 1500:
    # absolute, rounding over the layers.
    "mp_engine": 1e-12,
    # Proposition 5's stable float64 form against the engine to depth 10^6: another evaluation
    # of the same recurrence, roundings accumulating over the layers.
    "deep_recurrence": 1e-10,
    # eigvalsh of the engine's normalized equicorrelated Grams against Proposition 6's
    # eigenvalue formula (of lambda_max), and the one-step map L -> L + 1 read from them.
    "prop6_structure": 1e-13,
    "prop6_step": 1e-12,
    # a 2-norm of a gradient-flow operator projected off the mean (more cancellation than the
    # full operator's, which meets 'solve') against the dense reference.
    "solve_projected": 1e-9,
    # scipy's multivariate_normal.cdf as a reference: Genz's integration at its default
    # absolute error 1e-5.
    "mvn_cdf": 1e-5,
    # a least-squares fit on exact synthetic data recovers its limit (absolute) ...
    "fit_exact": 1e-12,
    # ... and its ln(L)/L coefficient, less well determined on L in [1e3, 1e6] (absolute).
    "fit_exact_coef": 1e-8,
}

HAS_NT = importlib.util.find_spec("neural_tangents") is not None


def finite_nngp(net, x, draws: int) -> np.ndarray:
    """The output covariance f(x) f(x)^T / k of a stax network's finite draws (seeds 0..draws-1),
    averaged: its NNGP estimate at the network's widths."""
    init_fn, apply_fn, _ = net
    emp = np.zeros((len(x), len(x)))
    for seed in range(draws):
        _, params = init_fn(seed, x.shape)
        f = apply_fn(params, x)
        emp += f @ f.T / f.shape[1] / draws
    return emp


def rel_err(actual, desired) -> float:
    """Max entrywise error relative to the kernel's size at that pair.

    The scale of entry (i, j) is the larger of |desired_ij| and the geometric mean
    of the largest |desired| in row i and in column j: kernel entries that pass
    through zero (an NTK with a linear first term can) are then judged against the
    kernel's magnitude at those points, not against a near-zero value.
    """
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    assert np.all(np.isfinite(actual)), "non-finite values"
    mag = np.abs(desired)
    scale = np.maximum(mag, np.sqrt(mag.max(axis=1, keepdims=True) * mag.max(axis=0, keepdims=True)))
    return float(np.max(np.abs(actual - desired) / np.maximum(scale, 1e-300)))


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def interrupt_latency(run, delay: float) -> float:
    """Sends SIGINT to this process `delay` s into `run()` and returns the seconds
    from the signal to the KeyboardInterrupt that `run` must raise.

    Measured from the signal, not from the start, so a loaded machine that is slow
    to reach the compiled loop does not count against the backend's polling.
    """
    import os
    import signal
    import threading
    import time

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # e.g. `nohup pytest &` from a script
        pytest.skip("SIGINT is ignored in this process (started as a background job), so Ctrl-C cannot be tested")
    sent = []

    def fire():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, fire)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run()
        done = time.perf_counter()
    finally:
        timer.cancel()
    assert sent, "run() finished before the signal"
    return done - sent[0]


# ----------------------------------------------------------------------------- theorem checks

@pytest.fixture(scope="session")
def quick_report(tmp_path_factory):
    """Every registered theorem check run once in quick mode (seed 0) through `run_checks`,
    the function behind ``ntkx check --quick``, with its report written: ``(results by
    name, errors by name, report folder, seconds)``."""
    import time

    import matplotlib

    matplotlib.use("Agg")  # figures in tests only; the package never picks a backend
    from ntkx.theory import checks

    out = tmp_path_factory.mktemp("quick_report")
    t0 = time.perf_counter()
    try:
        results, errors = checks.run_checks(quick=True, seed=0, out=out, progress=False), []
    except checks.CheckRunError as e:
        results, errors = e.results, e.errors
    return {r.name: r for r in results}, {e["name"]: e for e in errors}, out, time.perf_counter() - t0


@pytest.fixture(scope="session")
def quick_check(quick_report):
    """``quick_check(name)``: that check's quick-mode `CheckResult` from `quick_report`."""
    results, errors, _, _ = quick_report

    def get(name: str):
        if name in errors:
            raise AssertionError(f"check {name} raised in the quick run: {errors[name]}")
        return results[name]

    return get
