"""Moved to :mod:`opo_toolkit.progress` (issue 20). This alias keeps ``tabular.progress`` importing
the same module until the processes started before the move have finished; then it goes."""

import sys

import opo_toolkit.progress

sys.modules[__name__] = opo_toolkit.progress
