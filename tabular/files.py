"""Moved to :mod:`opo_toolkit.files` (issue 20). This alias keeps ``tabular.files`` importing
the same module until the processes started before the move have finished; then it goes."""

import sys

import opo_toolkit.files

sys.modules[__name__] = opo_toolkit.files
