"""Closed-form limits of the algorithms, each with its own result type, and :func:`limit_point`.

Besides the equilibrium (:func:`~tabular.solvers.solve_equilibrium`), closed-form limits, each
with its own result type: :func:`mixture_fixed_point` -> :class:`MixtureFixedPoint` (SPEC Eq. 13,
the limit of IPO-MD(beta) / Nash-MD-PG(beta)) and :func:`rlhf_optimum` -> :class:`RLHFOptimum`
(``mu exp(s / tau)``, the limit of RL on Bradley-Terry scores).

:func:`limit_point` gives each method of :data:`tabular.methods.METHODS` its known limit (these,
the equilibrium of :func:`~tabular.solvers.solve_equilibrium`, or the online DPO point of
:mod:`tabular.pairwise_limits`), or None where theory gives none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import log_softmax

from .certificates import duality_gap
from .equilibrium import solve_equilibrium
from .fixed_point import log_normalise_logaddexp
from .game import validate_beta, validate_game, validate_tau
from .losses import label_matrix
from .pairwise_limits import online_dpo_limit

__all__ = ["MixtureFixedPoint", "mixture_fixed_point", "RLHFOptimum", "rlhf_optimum", "limit_point"]


@dataclass(frozen=True)
class MixtureFixedPoint:
    """Result of :func:`mixture_fixed_point`: the solution of SPEC Eq. 13,
    ``pi ∝ mu exp(P @ mix_beta(pi) / tau)`` (the limit of IPO-MD(beta) and Nash-MD-PG(beta)).

    pi, log_pi: the point (n,). tau, beta: the equation's parameters. residual: its certificate,
    ``max |log pi - log(mu exp(P mix_beta(pi) / tau))|`` (normalised). mixture_gap: the duality
    gap of ``m = mix_beta(pi)`` in the game at temperature ``tau / (1 - beta)``, of which ``m`` is
    the equilibrium (Prop. 5.2; 0 at beta = 1, where ``m = mu``). converged: residual <= 1e-12.
    """

    pi: np.ndarray
    log_pi: np.ndarray
    tau: float
    beta: float
    residual: float
    mixture_gap: float
    converged: bool


def mixture_fixed_point(P, mu, tau: float, beta: float, **kwargs) -> MixtureFixedPoint:
    """Fixed point of IPO-MD(beta) / Nash-MD-PG(beta): ``pi ∝ mu exp(P @ mix_beta(pi) / tau)``.

    By Prop. 5.2 (SPEC §5.4), ``m = mix_beta(pi)`` is the equilibrium at temperature
    ``tau / (1 - beta)``, so ``pi ∝ mu exp(P @ m / tau)`` with ``m`` from :func:`solve_equilibrium`
    (``kwargs`` go to it). This function computes it that way; proofs_check verifies the identity
    independently. ``beta == 1``: ``m = mu`` (offline IPO point). beta must lie in [0, 1] (a
    one-line ValueError otherwise).
    """
    P, mu = validate_game(P, mu)
    tau = validate_tau(tau)
    beta = validate_beta(beta)
    if beta == 1.0:
        m = mu
        gap = 0.0
    else:
        eq = solve_equilibrium(P, mu, tau / (1.0 - beta), **kwargs)
        m, gap = eq.pi, eq.gap
    if beta == 0.0:
        # Eq. 13 at beta = 0 is (NE) itself: pi = m. Recomputing pi = T(m) would amplify m's
        # round-off by 1 / tau (measured: residual 2.7e-11 at tau = 1e-3 on RPS, from 6.6e-14).
        log_pi = eq.log_pi
    else:
        log_pi = log_softmax(np.log(mu) + P @ m / tau)
    pi = np.exp(log_pi)
    log_m = log_softmax((1 - beta) * log_pi + beta * np.log(mu))
    residual = float(np.abs(log_pi - log_softmax(np.log(mu) + P @ np.exp(log_m) / tau)).max())
    return MixtureFixedPoint(pi, log_pi, tau, beta, residual, float(gap), residual <= 1e-12)


@dataclass(frozen=True)
class RLHFOptimum:
    """Result of :func:`rlhf_optimum`: ``argmax_pi E_pi[s] - tau KL(pi || mu) = mu exp(s / tau)``
    normalised (closed form; the limit of ``rl``).

    pi, log_pi: the policy (n,). tau: the regularisation. gap: its duality gap in the preference
    game ``P`` (how far the reward optimum is from the Nash equilibrium; not a solver error).
    """

    pi: np.ndarray
    log_pi: np.ndarray
    tau: float
    gap: float


def rlhf_optimum(P, mu, tau: float, scores) -> RLHFOptimum:
    """The KL-regularised reward maximiser ``mu exp(s / tau)`` normalised, for Bradley-Terry
    ``scores`` (n,), with its duality gap in ``P``."""
    P, mu = validate_game(P, mu)
    tau = validate_tau(tau)
    log_pi = np.log(mu) + np.asarray(scores, np.float64) / tau
    log_pi = log_normalise_logaddexp(log_pi)
    pi = np.exp(log_pi)
    return RLHFOptimum(pi, log_pi, tau, float(duality_gap(P, mu, tau, pi)))


def limit_point(cfg, P, mu, scores=None):
    """The known limit of an algorithm on one game, or None where theory gives none (online SLiC,
    offline DPO / SLiC, online DPO with hard labels, rl without scores).

    ``cfg``: an :class:`~tabular.algorithms.AlgorithmConfig` (read for its ``method``, ``name``,
    ``tau``, ``beta``, ``eta`` and ``label_type``; its class is not needed here).

    - online_ipo, self_play, nash_md with decaying step, extragradient: ``pi*``, an
      :class:`~tabular.solvers.Equilibrium`.
    - ipo_md and nash_md_pg(beta): ``pi ∝ mu exp(P mix_beta(pi) / tau)`` (SPEC Eq. 13), a
      :class:`MixtureFixedPoint`; offline_ipo: beta = 1; nash_md with constant eta: beta = eta tau
      (SPEC §5.5).
    - rl: ``mu exp(s / tau)`` normalised, an :class:`RLHFOptimum`.
    - online_dpo (soft or Bernoulli labels): the stationary point of its population loss, a
      :class:`~tabular.pairwise_limits.PairwiseLimit` (no closed form; solved and certified).

    With hard labels every limit is that of the game ``1[P > 1/2]``
    (:func:`~tabular.losses.label_matrix`), which is what the updates then follow.
    """
    P, mu = validate_game(P, mu)
    if cfg.label_type == "hard":
        P = label_matrix(torch.as_tensor(P), "hard").numpy()
    m = cfg.method
    if m.kind == "rl":
        return None if scores is None else rlhf_optimum(P, mu, cfg.tau, scores)
    if m.kind == "md":
        if cfg.name == "nash_md" and cfg.eta is not None:
            return mixture_fixed_point(P, mu, cfg.tau, cfg.eta * cfg.tau)
        return solve_equilibrium(P, mu, cfg.tau)
    if m.loss == "dpo" and m.beta_y == m.beta_y_prime == "pi":
        if not ((P > 0) & (P < 1)).all():
            return None  # hard labels: every margin is driven to infinity
        return online_dpo_limit(P, mu, cfg.tau)
    if m.loss not in (None, "ipo"):
        return None
    if m.beta_y_prime == "pi":  # online_ipo, self_play
        return solve_equilibrium(P, mu, cfg.tau)
    return mixture_fixed_point(P, mu, cfg.tau, m.betas(cfg.beta)[1])  # ipo_md, nash_md_pg, offline
