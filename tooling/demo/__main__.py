"""`python -m tooling.demo`: the demo's entry point."""

import sys

from tooling.demo.cli import main

sys.exit(main())
