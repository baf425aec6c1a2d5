"""Exact equilibria of the KL-regularised preference game, with certificates: the solver's public
names in one place.

The game (SPEC §2): ``V(pi, pi') = pi @ P @ pi' - tau KL(pi || mu) + tau KL(pi' || mu)``. Its unique
Nash equilibrium is the fixed point ``pi* = T(pi*)``, ``T(pi) = softmax(log mu + P @ pi / tau)``.

The solver lives in modules of its own, one concept each, whose public names this module holds
(as it did before the split) by re-export only; none of them imports this module:

- :func:`solve_equilibrium`, the entry point, in :mod:`tabular.equilibrium`; its results
  :class:`Equilibrium` and :class:`EquilibriumBatch` in :mod:`tabular.solver_results`;
- the single-game solver at tau > 0 (fixed-point stage, Newton, continuation; the method is
  described there), :class:`SolverOptions` and the tuning constants in :mod:`tabular.newton`;
- batches of games in :mod:`tabular.solver_batch`; tau == 0 (:func:`solve_zero_sum`) in
  :mod:`tabular.zero_sum`;
- the certificates (:func:`duality_gap`, :func:`fixed_point_residual`, ...) in
  :mod:`tabular.certificates`;
- the closed-form limits (:func:`mixture_fixed_point` -> :class:`MixtureFixedPoint`,
  :func:`rlhf_optimum` -> :class:`RLHFOptimum`) in :mod:`tabular.limits`.
"""

from __future__ import annotations

from .certificates import SIMPLEX_TOL as SIMPLEX_TOL
from .certificates import (
    duality_gap,
    duality_gap_closed_form,
    duality_gap_unchecked,
    exploitability,
    fixed_point_map,
    fixed_point_residual,
)
from .equilibrium import solve_equilibrium
from .limits import MixtureFixedPoint, RLHFOptimum, mixture_fixed_point, rlhf_optimum
from .newton import DENSE_FALLBACK_MAX_N as DENSE_FALLBACK_MAX_N
from .newton import DENSE_MAX_N as DENSE_MAX_N
from .newton import FP_WARM_GAIN as FP_WARM_GAIN
from .newton import MAX_PATH_STAGES as MAX_PATH_STAGES
from .newton import NEWTON_TOL as NEWTON_TOL
from .newton import TAU_FROM_ZERO as TAU_FROM_ZERO
from .newton import SolverOptions as SolverOptions
from .newton import check_path_length as check_path_length
from .newton import solve_one as solve_one
from .newton import uses_dense_lu as uses_dense_lu
from .solver_batch import BATCH_MEMORY as BATCH_MEMORY
from .solver_batch import STACK_CACHE as STACK_CACHE
from .solver_results import Equilibrium, EquilibriumBatch
from .zero_sum import SUPPORT_TOL as SUPPORT_TOL
from .zero_sum import solve_zero_sum
from .zero_sum import solve_zero_sum_lp as solve_zero_sum_lp

__all__ = [
    "Equilibrium",
    "EquilibriumBatch",
    "duality_gap",
    "duality_gap_unchecked",
    "duality_gap_closed_form",
    "exploitability",
    "fixed_point_map",
    "fixed_point_residual",
    "solve_equilibrium",
    "solve_zero_sum",
    "mixture_fixed_point",
    "MixtureFixedPoint",
    "rlhf_optimum",
    "RLHFOptimum",
]

_solve_zero_sum_lp = solve_zero_sum_lp  # its name here before the split (test_solvers_scale.py)
