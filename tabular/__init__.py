"""Verified tabular core: preference games, exact equilibria, the shared losses, the algorithms.

Public API (see each module's docstring):

- games (:mod:`tabular.game`): ``validate_game``, families (``bradley_terry``, ``cyclic``,
  ``random_game``, ``annotator_majority``, ``perturbed_rps``, ``biased_rps``, ...), ``make_game``
  -> ``Game(P, scores)``, ``load_matrix``, policy helpers (``softmax``, ``kl_log``,
  ``mixture_policy``, ``win_rate``).
- solvers (:mod:`tabular.solvers`, which re-exports the solver's public names):
  ``solve_equilibrium`` (:mod:`tabular.equilibrium`) -> ``Equilibrium`` (pi, gap, residual) or
  ``EquilibriumBatch`` (:mod:`tabular.solver_results`); one game at tau > 0: :mod:`tabular.newton`;
  batches of games: :mod:`tabular.solver_batch`; tau = 0, the zero-sum game: :mod:`tabular.zero_sum`.
- certificates (:mod:`tabular.certificates`): ``duality_gap``, ``exploitability``,
  ``fixed_point_map``, ``fixed_point_residual``.
- limits (:mod:`tabular.limits`): the closed-form limits ``mixture_fixed_point`` ->
  ``MixtureFixedPoint`` (SPEC Eq. 13) and ``rlhf_optimum`` -> ``RLHFOptimum``; ``limit_point``,
  each algorithm's known limit.
- losses (:mod:`tabular.losses`): ``ipo_loss``, ``dpo_loss``, ``slic_loss``, ``make_labels``,
  ``policy_gradient_loss`` — the single definitions, also used by ``llm``.
- methods (:mod:`tabular.methods`): ``METHODS``, the one table of methods (frozen ``Method``:
  kind, loss, where ``y`` and ``y'`` are drawn), also read by ``llm``.
- algorithms (:mod:`tabular.algorithms`): ``AlgorithmConfig``, ``make_state``, ``step``, ``run``
  -> frozen ``RunResult``; one pair weighting ``pairs`` (exact: every pair weighted
  ``q(y) q'(y')``; sampled: K draws weighted 1/K) feeding one pairwise and one policy-gradient
  objective, one ``P_times`` estimator for ``nash_md_step`` and ``extragradient_step``;
  ``limit_point`` (from :mod:`tabular.limits`). Metrics in :mod:`tabular.metrics`.
"""

from .algorithms import (
    AlgorithmConfig,
    RunResult,
    extragradient_step,
    make_state,
    nash_md_step,
    run,
    step,
)
from .certificates import duality_gap, exploitability, fixed_point_map, fixed_point_residual
from .game import (
    Game,
    annotator_majority,
    biased_rps,
    bradley_terry,
    bradley_terry_random,
    cyclic,
    intransitive_blend,
    kl_log,
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
from .limits import MixtureFixedPoint, RLHFOptimum, limit_point, mixture_fixed_point, rlhf_optimum
from .losses import dpo_loss, ipo_loss, make_labels, policy_gradient_loss, slic_loss
from .methods import METHODS, Method
from .metrics import policy_metrics
from .solvers import Equilibrium, EquilibriumBatch, solve_equilibrium

__all__ = [
    "AlgorithmConfig", "RunResult", "extragradient_step", "limit_point", "make_state",
    "nash_md_step", "run", "step",
    "Game", "annotator_majority", "biased_rps", "bradley_terry", "bradley_terry_random",
    "cyclic", "intransitive_blend", "kl_log", "load_matrix", "make_game", "mixture_policy",
    "perturbed_rps", "random_game", "rock_paper_scissors", "softmax", "uniform", "validate_game",
    "win_rate",
    "dpo_loss", "ipo_loss", "make_labels", "policy_gradient_loss", "slic_loss",
    "METHODS", "Method",
    "policy_metrics",
    "Equilibrium", "EquilibriumBatch", "MixtureFixedPoint", "RLHFOptimum",
    "duality_gap", "exploitability", "fixed_point_map", "fixed_point_residual",
    "mixture_fixed_point", "rlhf_optimum", "solve_equilibrium",
]
