"""`python -m rxkube.controllers` runs the `rxkube` command line."""

import sys

from rxkube.controllers._cli import main

sys.exit(main())
