"""Confidence intervals shared by every report (torch-free, so ``llm report`` and ``figures`` stay light)."""

from __future__ import annotations

import numpy as np

__all__ = ["t_halfwidth"]


def t_halfwidth(values, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean: ``t_{(1+level)/2, n-1} s / sqrt(n)``,
    ``s`` the sample standard deviation (ddof = 1); nan for fewer than two values (no interval)."""
    from scipy.stats import t

    v = np.asarray(values, np.float64)
    if v.size < 2:
        return float("nan")
    return float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
