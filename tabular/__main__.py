"""``python -m tabular``: see :mod:`tabular.cli`."""

import sys

from .cli import main

sys.exit(main())
