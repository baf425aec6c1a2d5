"""Shared setup for the tabular tests: one torch thread (CI has 2 shared cores)."""

import os
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the CLI subprocesses
torch.set_num_threads(1)
# pytest runs with --import-mode=importlib (test files in different folders share base names), so
# the folder of this conftest is not on sys.path by itself: put it there for tabular_helpers.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
