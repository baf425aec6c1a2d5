"""Confidence intervals shared by every report (torch-free, so ``llm report`` and ``figures`` stay light)."""

from __future__ import annotations

import numpy as np

__all__ = ["t_halfwidth", "t_pvalue", "holm_adjust"]


def t_halfwidth(values, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean: ``t_{(1+level)/2, n-1} s / sqrt(n)``,
    ``s`` the sample standard deviation (ddof = 1); nan for fewer than two values (no interval)."""
    from scipy.stats import t

    v = np.asarray(values, np.float64)
    if v.size < 2:
        return float("nan")
    return float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))


def t_pvalue(values, null: float = 0.0) -> float:
    """Two-sided p-value of the one-sample t-test of ``mean(values) == null`` (a paired test when
    ``values`` are within-chain differences); nan for fewer than two values, 0 or 1 when every value
    is equal (no spread: the mean is known exactly)."""
    from scipy.stats import t

    v = np.asarray(values, np.float64)
    if v.size < 2:
        return float("nan")
    sd = v.std(ddof=1)
    diff = v.mean() - null
    if sd == 0:
        return 0.0 if diff != 0 else 1.0
    return float(2 * t.sf(abs(diff) / (sd / np.sqrt(v.size)), v.size - 1))


def holm_adjust(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate at
    any level, under any dependence): ``p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j))`` in
    increasing order. nan entries stay nan and do not count in ``m``."""
    p = np.asarray(pvalues, np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[k]))
        out[k] = running
    return out
