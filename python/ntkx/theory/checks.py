"""Numerical checks of the NTK theorems, one per claim, each returning a `CheckResult`.

Every check measures, fits rates with 95% confidence intervals over several seeds, and
decides ``'holds'``, ``'does not hold'`` or ``'inconclusive'`` from the numbers by the
rule it states. `CHECKS` maps each name to its `CheckSpec` (``CHECKS[name].run(quick=True)``);
`run_checks` runs a selection and writes the report (also ``ntkx check``).
"""
from ntkx._src.theory import (  # importing registers the checks
    checks_depth_finite, checks_depth_limits, checks_depth_spectrum, checks_generalization, checks_kernel, checks_training)
from ntkx._src.theory.registry import CHECKS, CheckSpec, order_by_module
from ntkx._src.theory.report import CheckRunError, run_checks, verdict_table, write_report
from ntkx._src.theory.result import (
    FAILS, HOLDS, INCONCLUSIVE, CheckResult, ConfidenceInterval, PowerLawFit, exponent_verdict, fit_power_law)

# The report's order: the kernel at initialization, generalization, training, then depth.
order_by_module([m.__name__ for m in (checks_kernel, checks_generalization, checks_training, checks_depth_limits,
                                      checks_depth_spectrum, checks_depth_finite)])

__all__ = [
    "CHECKS", "CheckResult", "CheckRunError", "CheckSpec", "ConfidenceInterval", "FAILS", "HOLDS", "INCONCLUSIVE", "PowerLawFit",
    "exponent_verdict", "fit_power_law", "run_checks", "verdict_table", "write_report",
]
