"""Intervals, paired p-values and Holm's adjustment (opo_toolkit.stats), checked by simulation."""

from __future__ import annotations

import numpy as np

from opo_toolkit.stats import holm_adjust, t_pvalue


def test_holm_by_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, max(0.06, 0.04 * 1) = 0.06
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = holm_adjust([0.5, np.nan, 0.01])  # nan does not count in m = 2
    assert np.isnan(out[1]) and np.allclose(out[[0, 2]], [0.5, 0.02])
    assert (holm_adjust([0.9, 0.8]) == 1.0).all() and holm_adjust([1.0])[0] == 1.0  # 0.8 * 2 caps at 1


def test_t_pvalue_edges():
    assert np.isnan(t_pvalue([0.3]))
    assert t_pvalue([0.25, 0.25, 0.25]) == 0.0 and t_pvalue([0.5, 0.5], null=0.5) == 1.0
    assert abs(t_pvalue([-1.0, 1.0]) - 1.0) < 1e-12


def _families(rng, n_families, m, chains, effect):
    """(n_families, m) p-values of paired t-tests on ``chains`` normal differences; test 0 has mean
    ``effect`` (in sd units), the others 0."""
    x = rng.normal(size=(n_families, m, chains))
    x[:, 0] += effect
    return np.array([[t_pvalue(row) for row in fam] for fam in x])


def test_holm_controls_the_familywise_error_under_the_null():
    """2000 families of 10 null tests on 5 chains. Holm: P(any rejection) <= 0.05 (binomial
    standard error 0.005, bound checked at 0.05 + 3 se); unadjusted testing rejects ~40 % of the
    time, so this test would fail without the adjustment."""
    p = _families(np.random.default_rng(0), 2000, 10, 5, 0.0)
    raw = (p < 0.05).any(1).mean()
    holm = (np.array([holm_adjust(f) for f in p]) < 0.05).any(1).mean()
    assert raw > 0.3
    assert holm <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2000)


def test_holm_keeps_power_for_a_planted_effect():
    """One effect of 2 sd among 10 tests on 10 chains is found after adjustment in > 80 % of
    families (500 families), and the nine nulls are rarely rejected."""
    p = _families(np.random.default_rng(1), 500, 10, 10, 2.0)
    adj = np.array([holm_adjust(f) for f in p])
    assert (adj[:, 0] < 0.05).mean() > 0.8
    assert (adj[:, 1:] < 0.05).any(1).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 500)
