"""Moved to :mod:`opo_toolkit.cliargs` (issue 20). This alias keeps ``tabular.cliargs`` importing
the same module until the processes started before the move have finished; then it goes."""

import sys

import opo_toolkit.cliargs

sys.modules[__name__] = opo_toolkit.cliargs
