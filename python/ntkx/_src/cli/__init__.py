"""Internals of the command line `ntkx.cli`: one module per command (`demos`, `theory`, `precompute`),
the argparse types of the options (`options`) and the build banner (`common`)."""
