"""Numerical checks of the NTK theorems, one per claim, each returning a `CheckResult`.

Every check measures, fits rates with 95% confidence intervals over several seeds, and
decides ``'holds'``, ``'does not hold'`` or ``'inconclusive'`` from the numbers by the
rule it states. `CHECKS` maps each name to its `CheckSpec` (``CHECKS[name].run(quick=True)``);
`run_checks` runs a selection and writes the report (also ``ntkx check``).
"""
from ntkx._src.theory import checks_depth, checks_kernel, checks_training  # noqa: F401  (register)
from ntkx._src.theory.registry import CHECKS, CheckSpec
from ntkx._src.theory.report import CheckRunError, run_checks, verdict_table, write_report
from ntkx._src.theory.result import (
    FAILS, HOLDS, INCONCLUSIVE, CheckResult, ConfidenceInterval, PowerLawFit, exponent_verdict, fit_power_law)

__all__ = [
    "CHECKS", "CheckResult", "CheckRunError", "CheckSpec", "ConfidenceInterval", "FAILS", "HOLDS", "INCONCLUSIVE", "PowerLawFit",
    "exponent_verdict", "fit_power_law", "run_checks", "verdict_table", "write_report",
]
