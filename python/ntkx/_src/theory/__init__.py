"""Internals of `ntkx.theory`: finite-width training, check results, the checks, the report."""
