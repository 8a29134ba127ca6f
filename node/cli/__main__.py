"""`python -m coopfed.node.cli`: the same entry point as the `coopfed` console script."""

import sys

from coopfed.node.cli import main

sys.exit(main())
