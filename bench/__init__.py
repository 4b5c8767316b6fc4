"""ntkx benchmarks (a package so its conftest does not shadow tests/conftest.py)."""
