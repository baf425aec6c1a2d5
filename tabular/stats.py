"""Moved to :mod:`opo_toolkit.stats` (issue 20). This alias keeps ``tabular.stats`` importing
the same module until the processes started before the move have finished; then it goes."""

import sys

import opo_toolkit.stats

sys.modules[__name__] = opo_toolkit.stats
