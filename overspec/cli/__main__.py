"""`python -m overspec.cli`: the `overspec` command without the installed entry point."""

import sys

from overspec.cli import main

sys.exit(main())
