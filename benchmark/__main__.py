"""``python -m benchmark``: the same as the ``benchmark`` command."""

import sys

from benchmark.cli import main

sys.exit(main())
