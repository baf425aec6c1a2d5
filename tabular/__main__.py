"""``python -m tabular``: see :mod:`tabular.cli`."""

import sys

from opo_toolkit.cliargs import main_status

from .cli import main

sys.exit(main_status(main))
