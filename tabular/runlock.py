"""Moved to :mod:`opo_toolkit.runlock` (issue 20). This alias keeps ``tabular.runlock`` importing
the same module until the processes started before the move have finished; then it goes."""

import sys

import opo_toolkit.runlock

sys.modules[__name__] = opo_toolkit.runlock
