"""Per-step metrics of a batch of policies; every algorithm is judged by the same functions.

``kl_to_opt`` = KL(pi* || pi) (the quantity of Munos et al.'s bound; only when pi* is given),
``gap`` = the closed-form
duality gap (:func:`tabular.certificates.duality_gap`), ``winrate_vs_mu`` = ``pi @ P @ mu``,
``kl_to_ref`` = KL(pi || mu).
"""

from __future__ import annotations

import numpy as np

from .certificates import duality_gap_unchecked as duality_gap  # inputs validated by run()
from .game import kl_log, win_rate

__all__ = ["policy_metrics", "kl_log"]


def policy_metrics(P, mu, tau, log_pi, pi_star=None) -> dict[str, np.ndarray]:
    """Metrics for policies ``exp(log_pi)`` (B, n) against ``pi_star`` (B, n); each value (B,).
    Without ``pi_star`` there is no ``kl_to_opt``."""
    pi = np.exp(log_pi)
    metrics = {}
    if pi_star is not None:
        with np.errstate(divide="ignore"):
            metrics["kl_to_opt"] = kl_log(np.log(pi_star), log_pi)
    return metrics | {
        "gap": duality_gap(P, mu, tau, pi),
        "winrate_vs_mu": win_rate(P, pi, mu),
        "kl_to_ref": kl_log(log_pi, np.log(mu)),
    }
