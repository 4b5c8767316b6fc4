"""Numerical checks of the NTK theorems, one per claim, each returning a `CheckResult`.

Every check measures, fits rates with 95% confidence intervals over several seeds, and
decides ``'holds'``, ``'does not hold'`` or ``'inconclusive'`` from the numbers by the
rule it states. `CHECKS` maps each name to its `CheckSpec` (``CHECKS[name].run(quick=True)``);
`run_checks` runs a selection and writes the report (also ``ntkx check``).
"""
from ntkx._src.theory import checks_depth, checks_kernel, checks_training  # importing registers the checks
from ntkx._src.theory.registry import CHECKS, CheckSpec, order_by_module
from ntkx._src.theory.report import CheckRunError, run_checks, verdict_table, write_report
from ntkx._src.theory.result import (
    FAILS, HOLDS, INCONCLUSIVE, CheckResult, ConfidenceInterval, PowerLawFit, exponent_verdict, fit_power_law)

# The report's order: the kernel at initialization, training, then depth.
order_by_module([checks_kernel.__name__, checks_training.__name__, checks_depth.__name__])

__all__ = [
    "CHECKS", "CheckResult", "CheckRunError", "CheckSpec", "ConfidenceInterval", "FAILS", "HOLDS", "INCONCLUSIVE", "PowerLawFit",
    "exponent_verdict", "fit_power_law", "run_checks", "verdict_table", "write_report",
]
