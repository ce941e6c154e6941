"""``python -m mlops_assets.cli``: how ``mlops up``, the tests and the benchmarks start a command as a process."""

import sys

from mlops_assets.cli import main

sys.exit(main())
