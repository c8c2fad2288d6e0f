"""`python -m runner.cli`: the `visionyard` command."""

import sys

from runner.cli.commands import main

sys.exit(main())
