"""``python -m ntkx``: the command line of ntkx.cli."""
import sys

from ntkx.cli import main

sys.exit(main())
