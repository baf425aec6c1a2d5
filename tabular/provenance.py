"""Moved to :mod:`opo_toolkit.provenance` (issue 20). This alias keeps ``tabular.provenance`` importing
the same module until the processes started before the move have finished; then it goes."""

import sys

import opo_toolkit.provenance

sys.modules[__name__] = opo_toolkit.provenance
