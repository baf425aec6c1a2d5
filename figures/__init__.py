"""Regenerate the paper's figures and the tabular evidence with one command: ``python -m figures``.

Figures (each PNG + PDF + CSV of the numbers plotted, captions in ``OUT/README.md``):

1. ``fig1_simplex``: exact trajectories on the 2-simplex (cyclic preferences, tau = 0.1).
2. ``fig2_convergence_tau{0.1,0.01}``: duality gap and KL(pi* || pi_t) vs iterations, every algorithm,
   exact and sampled, on BT / cyclic / random / annotator-majority games.
3. ``fig3_equivalence``: online IPO -> pi*; Nash-MD's bound; IPO-MD(beta) = Nash-MD(eta = beta/tau).
4. ``fig4_dpo_not_nash``: online DPO / SLiC limits stay away from pi*; online IPO's does not.
5. ``fig5_mixture_bias``: the IPO-MD limit's gap vs beta; Prop. 5.2's tau/(1-beta) equilibrium.
6. ``fig6*_llm_*``: from ``python -m llm pipeline`` results (skipped, with the reason, when absent).

Public API: :func:`figures.cli.main` (the CLI), :mod:`figures.tabular_figures`,
:mod:`figures.llm_figures`, :class:`figures.common.Sizes`.
"""

from .cli import main

__all__ = ["main"]
