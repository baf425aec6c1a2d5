"""Hypothesis profiles for the whole suite (select with ``--hypothesis-profile NAME``).

- ``ci`` (default): bounded and reproducible. ``derandomize=True`` makes every run draw the same
  examples (CI cannot flip between green and red on the same commit), no example database is read
  or written, and each property draws at most 25 examples with a 10 s deadline per example (the
  equivalence properties opt out of the deadline: the shared CI cores make timings noisy).
- ``thorough``: >= 2000 examples per property, random (a fresh seed each run; a failure prints
  the seed and the ``@reproduce_failure`` blob to replay it), no deadline.

``HYPOTHESIS_PROFILE=thorough`` selects a profile too. Tests that set their own ``@settings``
(e.g. ``max_examples`` in tests/tabular/test_solvers.py) keep those values under either profile.
"""

import os
from datetime import timedelta

from hypothesis import settings

settings.register_profile("ci", max_examples=25, deadline=timedelta(seconds=10), derandomize=True,
                          database=None, print_blob=True)
settings.register_profile("thorough", max_examples=2000, deadline=None, derandomize=False,
                          database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
