"""Independent, deliberately naive reference implementations used by the ntkx tests."""
