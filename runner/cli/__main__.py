"""`python -m runner.cli`: the `visionyard` command."""

import sys

from runner.cli import main

sys.exit(main())
