"""Per-step metrics of a batch of policies; every algorithm is judged by the same functions.

``kl_to_opt`` = KL(pi* || pi) (the quantity of Munos et al.'s bound), ``gap`` = the closed-form
duality gap (:func:`tabular.solvers.duality_gap`), ``winrate_vs_mu`` = ``pi @ P @ mu``,
``kl_to_ref`` = KL(pi || mu).
"""

from __future__ import annotations

import numpy as np

from .game import win_rate
from .solvers import duality_gap_unchecked as duality_gap  # inputs validated by run()

__all__ = ["policy_metrics", "kl_log"]


def kl_log(log_p, log_q) -> np.ndarray:
    """KL(p || q) from log-probabilities (exact where p or q underflow)."""
    p = np.exp(log_p)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (log_p - log_q), 0.0)
    return terms.sum(-1)


def policy_metrics(P, mu, tau, log_pi, pi_star) -> dict[str, np.ndarray]:
    """Metrics for policies ``exp(log_pi)`` (B, n) against ``pi_star`` (B, n); each value (B,)."""
    pi = np.exp(log_pi)
    with np.errstate(divide="ignore"):
        log_pi_star = np.log(pi_star)
    return {
        "kl_to_opt": kl_log(log_pi_star, log_pi),
        "gap": duality_gap(P, mu, tau, pi),
        "winrate_vs_mu": win_rate(P, pi, mu),
        "kl_to_ref": kl_log(log_pi, np.log(mu)),
    }
