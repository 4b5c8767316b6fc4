"""Theorem checks of finite deep ReLU networks (issue 13, "Depth"): the separation probability of
a neuron (Proposition 7) and per-neuron against aggregate deviation in training (Proposition 4).

Conventions and the paper: `ntkx._src.theory.depth`.
"""

from __future__ import annotations

import math

import numpy as np

from ntkx._src.fc import fc_kernels
from ntkx._src.theory import data
from ntkx._src.theory.depth import (
    D_IN, SOURCE, W_HE, depth_grid, normalized_kernels, relu_preacts_pair, relu_spec, train_deviation)
from ntkx._src.theory.registry import register
from ntkx._src.theory.result import FAILS, HOLDS, CheckResult, combine_verdicts, exponent_verdict, fit_power_law


# ----------------------------------------------------------------------------- 8. separation probability (Prop. 7)


def _plot_separation(res: CheckResult, fig) -> None:
    m = res.measured
    ax = fig.add_subplot(1, 2, 1)
    ll = np.array(m["layers"])
    ax.plot(ll, m["finite_p_hat"], "o", ms=3, label=f"finite width {m['finite_width']} (MC)")
    ax.plot(ll, m["finite_p_exact"], "k-", lw=1, label="arccos(rho_(l-1))/pi (engine)")
    ax.plot(ll, m["finite_bound"], "k--", lw=1, label="bound sqrt(2(1 - rho))/pi")
    ax.set_xlabel("hidden layer l")
    ax.set_ylabel("P(neuron separates x, x')")
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    d = np.array(m["deep_L"], dtype=float)
    ax2.semilogx(d, m["any_hat"], "o", ms=4, label=f"MC: some of n = {m['layer_width']} separates")
    ax2.semilogx(d, m["any_exact"], "k-", lw=1, label="1 - (1 - p_L)^n")
    ax2.semilogx(d, m["any_bound"], "k--", lw=1, label="bound 1 - exp(-n sqrt(2(1 - rho))/pi)")
    ax2.set_xlabel("depth L")
    ax2.legend(fontsize=7)


@register("depth_separation", "Separation probability of a ReLU neuron vs depth (Proposition 7)")
def depth_separation(*, quick: bool, seed: int) -> CheckResult:
    """Monte Carlo separation of two inputs by ReLU neurons, finite nets and deep i.i.d. layers, against the bound."""
    rng = data.rng(seed)
    x = data.sphere(2, D_IN, seed + 5)
    width, n_layers, seeds = (4096, 16, 16) if quick else (16384, 64, 32)
    frac = np.zeros((seeds, n_layers))
    for s in range(seeds):
        h = relu_preacts_pair(x, width, n_layers, rng)
        frac[s] = np.mean((h[:, 0] > 0) != (h[:, 1] > 0), axis=1)
    p_hat = frac.mean(axis=0)
    layers = np.arange(1, n_layers + 1)
    rho_prev = np.array([normalized_kernels(x, int(l) - 1)[0][0, 1] for l in layers])
    p_exact = np.arccos(rho_prev) / np.pi
    bound = np.sqrt(2.0 * (1.0 - rho_prev)) / np.pi
    # standard error: binomial over neurons, or the spread over seeds when larger (at finite width the layer's
    # correlation itself fluctuates from net to net, by O(1/sqrt(width)))
    sigma = np.maximum(np.sqrt(p_exact * (1.0 - p_exact) / (width * seeds)), frac.std(axis=0, ddof=1) / math.sqrt(seeds))
    z_finite = (p_hat - p_exact) / sigma
    # deep layers: i.i.d. neurons with the engine's NNGP correlation at depth L
    deep = depth_grid(10, 10 ** 6, 1)
    n_layer, reps = 1000, (1000 if quick else 4000)
    any_hat, any_exact, any_bound, p_deep, z_any = [], [], [], [], []
    for big in deep:
        rho = normalized_kernels(x, int(big))[0][0, 1]
        omr = 1.0 - rho
        z1 = rng.standard_normal((reps, n_layer))
        v = rho * z1 + math.sqrt(omr * (1.0 + rho)) * rng.standard_normal((reps, n_layer))
        sep = (z1 > 0) != (v > 0)
        p = math.acos(rho) / math.pi
        a_hat = float(np.mean(sep.any(axis=1)))
        a_ex = 1.0 - (1.0 - p) ** n_layer
        any_hat.append(a_hat)
        any_exact.append(a_ex)
        any_bound.append(1.0 - math.exp(-n_layer * math.sqrt(2.0 * omr) / math.pi))
        p_deep.append(p)
        s = math.sqrt(max(a_ex * (1.0 - a_ex), 1e-300) / reps)
        z_any.append((a_hat - a_ex) / s if s > 1e-150 else 0.0)
    z_any = np.array(z_any)
    below_bound = int(np.sum(np.array(any_hat) < np.array(any_bound) - 4.0 * np.sqrt(
        np.maximum(np.array(any_exact) * (1.0 - np.array(any_exact)), 1e-300) / reps)))
    fit_p = fit_power_law(deep[deep >= 100], np.array(p_deep)[deep >= 100])
    ok = np.max(np.abs(z_finite)) <= 4.0 and np.max(np.abs(z_any)) <= 4.0 and below_bound == 0
    verdict = HOLDS if ok else FAILS
    rule = ("holds if every Monte Carlo estimate is within 4 standard errors of the exact infinite-width probability "
            "(finite nets: per-layer separating fraction against arccos(rho_(l-1))/pi; deep i.i.d. layers: P(some of n "
            "neurons separates) against 1 - (1 - p_L)^n) and none lies more than 4 standard errors below the lower "
            "bound; else does not hold.")
    notes = f"""\
**Reading of Proposition 7.** A hidden ReLU neuron with pre-activations (u, v) at two inputs, jointly Gaussian with
correlation rho (the NNGP correlation of the layer below, in the infinite-width limit), separates them (is active on
exactly one) with probability P(sign u != sign v) = arccos(rho)/pi >= sqrt(2 (1 - rho))/pi > 0 (Sheppard; the bound is
arccos(r) >= sqrt(2 (1 - r))). A layer of n such neurons, independent in the limit, therefore separates two distinct
inputs with probability 1 - (1 - p)^n >= 1 - exp(-n sqrt(2 (1 - rho))/pi) -> 1 as the width grows: the activation
pattern of the last hidden layer is not constant across inputs, with probability one in the limit.

**What was measured.** (i) Finite networks: width {width}, {seeds} seeds, layers 1..{n_layers} (sampled exactly layer by
layer from the two inputs' 2 x 2 activation Gram, `relu_preacts_pair`): the fraction of neurons separating the pair
against arccos(rho_(l-1))/pi from the engine: largest |z| = {np.max(np.abs(z_finite)):.2f}
(p from {p_exact[0]:.4f} at layer 1 to {p_exact[-1]:.4f} at layer {n_layers}). (ii) Deep layers, L = 10..10^6: {reps}
layers of n = {n_layer} i.i.d. neurons per depth with the engine's rho_L: P(some neuron separates) =
{', '.join(f'{a:.3f}' for a in any_hat)} against exact {', '.join(f'{a:.3f}' for a in any_exact)} (largest |z| =
{np.max(np.abs(z_any)):.2f}) and the bound {', '.join(f'{a:.3f}' for a in any_bound)}; {below_bound} estimates below
the bound.

**Depth.** p_L = theta_L/pi ~ L^{fit_p.summary(3)} (derived: theta_L ~ 3 pi/L, p_L ~ 3/L): at depth L a layer
of width n separates two inputs with probability ~ 1 - exp(-3 n/L), so the statement needs n >> L; at L = 10^6 and
n = {n_layer} it is {any_exact[-1]:.4f}.
"""
    return CheckResult(
        name="depth_separation", title="Separation probability vs depth (Proposition 7)",
        claim=("(Reading of Proposition 7.) A ReLU neuron separates two distinct inputs with probability "
               "arccos(rho)/pi >= sqrt(2(1 - rho))/pi > 0, so the last hidden layer of width n separates them with "
               "probability >= 1 - exp(-n sqrt(2(1 - rho))/pi) -> 1 as n -> infinity."),
        source=SOURCE + ", Proposition 7 (v2 abstract: the last hidden layer's activations do not remain constant with "
                        "probability 1)",
        params={"finite_width": width, "finite_layers": n_layers, "finite_seeds": seeds, "layer_width": n_layer,
                "reps": reps, "deep_L": deep, "d": D_IN, "seed": seed},
        measured={"layers": layers, "finite_width": width, "finite_p_hat": p_hat, "finite_p_exact": p_exact,
                  "finite_bound": bound, "finite_z": z_finite, "deep_L": deep, "layer_width": n_layer,
                  "p_deep": p_deep, "any_hat": any_hat, "any_exact": any_exact, "any_bound": any_bound, "any_z": z_any,
                  "below_bound": below_bound},
        fits={"p_vs_depth": fit_p},
        expected="MC = arccos(rho)/pi within sampling error, above sqrt(2(1-rho))/pi; p_L ~ 3/L",
        summary=(f"max |z| finite {np.max(np.abs(z_finite)):.2f}, deep {np.max(np.abs(z_any)):.2f}; {below_bound} below "
                 f"the bound; p_L ~ L^{fit_p.exponent:.3f}"),
        verdict=verdict, rule=rule, notes=notes, plotter=_plot_separation)


# ----------------------------------------------------------------------------- 9. per-neuron vs aggregate (Prop. 4)


def _plot_width(res: CheckResult, fig) -> None:
    m = res.measured
    ax = fig.add_subplot(1, 1, 1)
    w = np.array(m["widths"], dtype=float)
    ax.loglog(w, np.array(m["aggregate"]).T, "o", ms=3, color="C0")
    ax.loglog(w, np.array(m["aggregate"]).mean(axis=0), "-", color="C0", label="aggregate |delta alpha(x)|_2")
    ax.loglog(w, np.array(m["per_neuron_max"]).T, "s", ms=3, color="C1")
    ax.loglog(w, np.array(m["per_neuron_max"]).mean(axis=0), "-", color="C1", label="max_i |delta alpha_i(x)|")
    ax.loglog(w, np.array(m["per_neuron_median"]).T, "^", ms=3, color="C2")
    ax.loglog(w, np.array(m["per_neuron_median"]).mean(axis=0), "-", color="C2",
              label="median_i max_x |delta alpha_i(x)|")
    ax.set_xlabel("width n")
    ax.set_ylabel("deviation of the last hidden layer")
    ax.legend(fontsize=7)


@register("depth_width_deviation", "Per-neuron vs aggregate deviation of the last hidden layer (Proposition 4, Table 1)")
def depth_width_deviation(*, quick: bool, seed: int) -> CheckResult:
    """Trains finite ReLU networks of growing width and measures how the last hidden layer moves."""
    widths = (256, 1024, 4096, 16384) if quick else (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
    n_seeds = 4 if quick else 8
    n_train, steps = 8, 100
    x = data.sphere(n_train, D_IN, seed)
    y = np.sign(data.sphere(n_train, 1, seed + 1)[:, 0])
    theta = fc_kernels(x, None, relu_spec(1), get="ntk")
    lr = 1.0 / float(np.linalg.eigvalsh(theta)[-1])
    agg = np.zeros((n_seeds, len(widths)))
    mx = np.zeros((n_seeds, len(widths)))
    med = np.zeros((n_seeds, len(widths)))
    rel = np.zeros((n_seeds, len(widths)))
    loss_ratio = np.zeros((n_seeds, len(widths)))
    for s in range(n_seeds):
        for j, n in enumerate(widths):
            rng = data.rng(seed, s, n)
            with data.blas_threads(1):  # small GEMMs; BLAS threads stall next to the engine's OpenMP
                dev, lr_ratio = train_deviation(x, y, n, steps, lr, rng)
            agg[s, j] = float(np.mean(np.linalg.norm(dev, axis=1)))
            mx[s, j] = float(np.max(np.abs(dev)))
            med[s, j] = float(np.median(np.max(np.abs(dev), axis=0)))
            rel[s, j] = agg[s, j] / math.sqrt(n)
            loss_ratio[s, j] = lr_ratio
    fit_agg = fit_power_law(widths, agg)
    fit_max = fit_power_law(widths, mx)
    fit_med = fit_power_law(widths, med)
    v1, r1 = exponent_verdict(fit_agg, 0.0, 0.1)
    v2, r2 = exponent_verdict(fit_med, -0.5, 0.1)
    verdict = combine_verdicts([v1, v2])
    rule = (f"aggregate |delta alpha(x)|_2: {r1}; typical neuron (median over neurons of max_x |delta alpha_i(x)|): "
            f"{r2}; both must hold (any failing fails). The largest neuron's deviation is reported, not judged.")
    notes = f"""\
**Reading of Proposition 4 / Table 1.** Training a finite ReLU network in the NTK parameterization moves each hidden
neuron's activation by O(n^-1/2), so the largest per-neuron deviation vanishes as the width n grows, while the
aggregate deviation of the last hidden layer, |alpha(x; theta_T) - alpha(x; theta_0)|_2 over its n neurons, stays of
order one (n terms of size 1/n under the square root).

**What was measured.** Dense -> Relu -> Dense (one hidden layer, the last), w^2 = 2, no bias, {n_train} points on the sphere in
R^{D_IN} with +-1 targets, {steps} full-batch GD steps at learning rate 1/lambda_max(Theta) = {lr:.4f} (Theta: the
engine's infinite-width NTK), widths {list(widths)}, {n_seeds} seeds. Final/initial loss: {loss_ratio.mean():.2e} on
average. Aggregate deviation (mean over inputs of |delta alpha(x)|_2) ~ n^{fit_agg.summary(3)}:
{', '.join(f'{v:.4f}' for v in agg.mean(axis=0))}; a typical neuron's deviation (median over neurons of
max_x |delta alpha_i(x)|) ~ n^{fit_med.summary(3)}: {', '.join(f'{v:.2e}' for v in med.mean(axis=0))}; the largest
neuron's ~ n^{fit_max.summary(3)}: {', '.join(f'{v:.4f}' for v in mx.mean(axis=0))} (a maximum over n neurons of a
product of Gaussian factors grows like ln n, which lifts its exponent to about -1/2 + 1/ln n); relative deviation
|delta alpha|/|alpha| ~ n^-1/2 ({', '.join(f'{v:.2e}' for v in rel.mean(axis=0))}, |alpha| ~ sqrt n).

**Why.** In the NTK parameterization neuron i's incoming weights move by delta W_i = -eta sum_t (w/sqrt n) v_i
sum_x' e_t(x') 1[h_i(x') > 0] x' w/sqrt d, so delta h_i(x) = O(|v_i|/sqrt n) (v: the output weights); the sum of
n such squares, (1/n) sum_i v_i^2 (...)^2, tends by the law of large numbers to a deterministic O(1) limit. Both
statements hold together: the NTK's 'frozen features' are frozen per neuron, not in aggregate. (One hidden layer
keeps the widest runs cheap, 2^16 neurons; deeper nets move each layer the same way.)
"""
    return CheckResult(
        name="depth_width_deviation", title="Per-neuron vs aggregate deviation (Proposition 4, Table 1)",
        claim=("(Reading of Proposition 4 / Table 1.) As the width grows, the deviation of individual last-hidden-layer "
               "activations during training vanishes (~ n^-1/2) while the aggregate norm of the deviation does not "
               "(~ n^0)."),
        source=SOURCE + ", Proposition 4 and Table 1",
        params={"widths": list(widths), "seeds": n_seeds, "train": n_train, "steps": steps, "lr": lr, "d": D_IN,
                "w_std": W_HE, "hidden_layers": 1, "seed": seed},
        measured={"widths": list(widths), "aggregate": agg, "per_neuron_median": med, "per_neuron_max": mx,
                  "relative": rel, "loss_ratio": loss_ratio},
        fits={"aggregate": fit_agg, "per_neuron_median": fit_med, "per_neuron_max": fit_max},
        expected="aggregate exponent 0 (+-0.1); typical per-neuron exponent -1/2 (+-0.1)",
        summary=(f"aggregate ~ n^{fit_agg.summary(3)}, typical neuron ~ n^{fit_med.summary(3)}, largest ~ "
                 f"n^{fit_max.summary(2)}"),
        verdict=verdict, rule=rule, notes=notes, plotter=_plot_width)
