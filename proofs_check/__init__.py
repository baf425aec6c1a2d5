"""proofs_check: every proposition of Calandriello et al. 2024 (SPEC §5) as an executable check.

Run ``python -m proofs_check`` (full, about 1-2 minutes on 2 cores), ``--quick`` (8 instances per
row, about 20 s), ``--json`` (the rows as a JSON list on stdout), ``--seed N`` (another reproducible
instance set), ``--only NAME`` (checks whose function name contains NAME). It prints a ledger, one
row per result: name, method (symbolic / autodiff / simulation / exact), instances, worst error,
tolerance, PASS/FAIL, seconds, and a one-line statement (findings and measured numbers go there);
the exit code is 1 if any row fails.

What is under test is the shared code in :mod:`tabular` (losses, ``pairwise_objective``,
``method_loss``, ``duality_gap``, ``nash_md_step``, ``run``, ``mixture_fixed_point``); what it is
compared against is written here from the formulas (:mod:`proofs_check.reference`: closed-form
gradients with the softmax score ``e_y - pi``, an independent Newton solver of Eq. 13, the game value
from its definition) or proved with sympy (:mod:`proofs_check.symbolic`).

Reproducibility: instances (every game family of :mod:`tabular.game`, n from 2 to 20, random mu,
tau log-uniform in [0.01, 10], beta in [0, 1], random logits) come from Hypothesis strategies run
under ``@hypothesis.seed(seed + per-check offset)``, without an example database, generate phase
only, and with Hypothesis's pool of constants harvested from loaded modules switched off
(:mod:`proofs_check.instances`), so a given ``--seed`` always yields the same instances and ledger.

Findings recorded in the ledger:

- IPO-MD gradient for beta > 0: the natural analogue of Prop. 4.2 with pairs from
  ``m = mix_beta(pi)``, ``-(4/tau) E_{y~m}[s_pi(y)(P(y>m) - 1/2 - tau r_pi(y))]``, is *not* the
  gradient: it differs from autodiff by exactly ``4 E_m[r_pi] (m - pi)``, and it does not vanish at
  the IPO-MD fixed point. The correct closed form centres the log-ratio under ``m``:
  ``-(4/tau) E_{y~m}[s_pi(y)(P(y>m) - 1/2 - tau (r_pi(y) - E_m r_pi))]`` (checked by autodiff and,
  for any detached q, symbolically). For beta = 0 the centring term vanishes (Prop. 4.2).
- App. D: the condition ``E[s(y).s(y') f^2] >= 0`` fails on most random instances (for y != y',
  ``s(y).s(y') = |pi|^2 - pi_y - pi_y' < 0`` unless pi is concentrated); there the contrastive
  estimator's variance is above half the non-contrastive one, by the exact identity
  ``Var_c = Var_nc/2 - E[s(y).s(y') f^2]/2 - |g|^2/2``.
- Online SLiC (hinge) settles neither at pi* nor at the tau = 0 Nash equilibrium; margins pile up at
  the hinge kinks (measured).

Public API: :func:`run_ledger`, :data:`CHECKS`, :class:`Row`, :class:`Variant` (deliberately wrong
constants, used by the tests to show that rows can FAIL), :func:`format_table`, :func:`to_json`.
"""

from .checks import CHECKS, run_ledger
from .ledger import Row, Variant, format_table, to_json

__all__ = ["CHECKS", "run_ledger", "Row", "Variant", "format_table", "to_json"]
