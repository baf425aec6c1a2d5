"""Verified tabular core: preference games, exact equilibria, the shared losses, the algorithms.

Public API (see each module's docstring):

- games (:mod:`tabular.game`): ``validate_game``, families (``bradley_terry``, ``cyclic``,
  ``random_game``, ``annotator_majority``, ``perturbed_rps``, ``biased_rps``, ...), ``make_game``,
  ``load_matrix``, policy helpers (``softmax``, ``kl``, ``mixture_policy``, ``best_response``,
  ``win_rate``).
- solvers (:mod:`tabular.solvers`): ``solve_equilibrium`` -> ``Equilibrium`` (pi, gap, residual),
  ``duality_gap``, ``exploitability``, ``fixed_point_residual``, ``mixture_fixed_point``.
- losses (:mod:`tabular.losses`): ``ipo_loss``, ``dpo_loss``, ``slic_loss``, ``make_labels``,
  ``policy_gradient_loss`` — the single definitions, also used by ``llm``.
- algorithms (:mod:`tabular.algorithms`): ``AlgorithmConfig``, ``make_state``, ``step``, ``run``,
  ``nash_md_step``, ``extragradient_step``, ``limit_point``; metrics in :mod:`tabular.metrics`.
"""

from .algorithms import (
    ALGORITHMS,
    AlgorithmConfig,
    RunResult,
    extragradient_step,
    limit_point,
    make_state,
    nash_md_step,
    run,
    step,
)
from .game import (
    annotator_majority,
    best_response,
    biased_rps,
    bradley_terry,
    bradley_terry_random,
    cyclic,
    intransitive_blend,
    kl,
    load_matrix,
    make_game,
    mixture_policy,
    perturbed_rps,
    random_game,
    rock_paper_scissors,
    softmax,
    uniform,
    validate_game,
    win_rate,
)
from .losses import dpo_loss, ipo_loss, make_labels, policy_gradient_loss, slic_loss
from .metrics import policy_metrics
from .solvers import (
    Equilibrium,
    EquilibriumBatch,
    duality_gap,
    exploitability,
    fixed_point_residual,
    mixture_fixed_point,
    solve_equilibrium,
)

__all__ = [
    "ALGORITHMS", "AlgorithmConfig", "RunResult", "extragradient_step", "limit_point", "make_state",
    "nash_md_step", "run", "step",
    "annotator_majority", "best_response", "biased_rps", "bradley_terry", "bradley_terry_random",
    "cyclic", "intransitive_blend", "kl", "load_matrix", "make_game", "mixture_policy",
    "perturbed_rps", "random_game", "rock_paper_scissors", "softmax", "uniform", "validate_game",
    "win_rate",
    "dpo_loss", "ipo_loss", "make_labels", "policy_gradient_loss", "slic_loss",
    "policy_metrics",
    "Equilibrium", "EquilibriumBatch",
    "duality_gap", "exploitability", "fixed_point_residual", "mixture_fixed_point",
    "solve_equilibrium",
]
