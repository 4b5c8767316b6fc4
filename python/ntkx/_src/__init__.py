"""Private implementation of ntkx; the public surface is re-exported by ``ntkx``."""
