"""The pairwise preference losses and the policy-gradient surrogate: one definition each.

These pure torch functions are the single source of every loss in the project: the tabular
sandbox (``tabular.algorithms``) and the transformer code (``llm``) both import them unchanged.

A pairwise loss takes the margin ``h = h_pi(y, y') = r_pi(y) - r_pi(y')`` with
``r_pi = log pi - log mu`` and a label ``p`` (the probability that ``y`` beats ``y'``; soft by
default) and returns, per pair (the caller reduces),

    loss(h, p) = p * l(h) + (1 - p) * l(-h)                                (SPEC §3)

| loss | l(h)                         | minimiser in h            |
|------|------------------------------|---------------------------|
| IPO  | (h - 1/(2 tau))^2            | (p - 1/2) / tau           |
| DPO  | -log sigmoid(tau * scale h)  | logit(p) / (tau * scale)  |
| SLiC | max(0, margin - tau*scale h) | sign(p - 1/2) margin/(tau scale) |

The labels a loss sees: :func:`make_labels` (soft, Bernoulli or hard, SPEC §3) and their expectation
over a pair, :func:`label_matrix` (the game the exact updates follow).

Naming: the paper's ``tau`` is TRL's ``beta``; the paper's ``beta`` (mixture) is TRL's
``mixture_coef``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "ipo_loss",
    "ipo_regression_loss",
    "dpo_loss",
    "slic_loss",
    "pairwise_loss",
    "PAIRWISE_LOSSES",
    "LABEL_TYPES",
    "make_labels",
    "policy_gradient_loss",
]


def ipo_loss(margin: torch.Tensor, p: torch.Tensor, tau: float) -> torch.Tensor:
    """IPO loss ``p (h - 1/(2 tau))^2 + (1 - p) (-h - 1/(2 tau))^2`` per pair.

    Azar et al. 2023 (arXiv 2310.12036), Eq. 17, with the soft label ``p`` of Calandriello et al.
    2024 (arXiv 2403.08635), Eq. 6. Minimised at ``h = (p - 1/2) / tau``; equals
    :func:`ipo_regression_loss` plus ``p (1 - p) / tau^2``, a constant in ``h``.

    Args:
      margin: (...,) ``h = r_pi(y) - r_pi(y')``. p: (...,) labels in [0, 1]. tau: > 0.
    Returns:
      (...,) per-pair losses.
    """
    target = 0.5 / tau
    return p * (margin - target) ** 2 + (1 - p) * (margin + target) ** 2


def ipo_regression_loss(margin: torch.Tensor, p: torch.Tensor, tau: float) -> torch.Tensor:
    """IPO as least squares ``(h - (p - 1/2)/tau)^2`` (same gradient in ``h`` as :func:`ipo_loss`)."""
    return (margin - (p - 0.5) / tau) ** 2


def dpo_loss(margin: torch.Tensor, p: torch.Tensor, tau: float, scale: float = 1.0) -> torch.Tensor:
    """DPO loss ``-p log sigmoid(tau s h) - (1 - p) log sigmoid(-tau s h)`` per pair.

    Rafailov et al. 2023 (arXiv 2305.18290), Eq. 7, soft-label form. ``scale`` (``s``, default 1)
    is SPEC §3's **[open]** choice of the paper's exact scale: the minimiser is
    ``h = logit(p) / (tau s)``.

    Args/Returns: as :func:`ipo_loss`.
    """
    z = tau * scale * margin
    # -log sigmoid(z) as torch's log_sigmoid, min(z, 0) - log1p(exp(-|z|)): exact to round-off at
    # every z, with the analytic gradient sigmoid(z) - 1. F.softplus is not: above its threshold
    # (20) it returns z itself and drops log1p(exp(-z)) ~ 2e-9 (TRL's sigmoid loss keeps it).
    return -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z))


def slic_loss(margin: torch.Tensor, p: torch.Tensor, tau: float, scale: float = 1.0,
              hinge_margin: float = 1.0) -> torch.Tensor:
    """SLiC-HF calibration loss ``p max(0, d - tau s h) + (1 - p) max(0, d + tau s h)`` per pair.

    Zhao et al. 2023 (arXiv 2305.10425), Eq. 2, on the reference-normalised margin ``h``
    (SPEC §3, **[open]**: ``scale`` s = 1 and ``hinge_margin`` d = 1 by default; no SFT term).
    Minimised at ``h = d / (tau s)`` if p > 1/2, ``-d / (tau s)`` if p < 1/2, anywhere in between
    if p = 1/2.
    """
    z = tau * scale * margin
    return p * F.relu(hinge_margin - z) + (1 - p) * F.relu(hinge_margin + z)


PAIRWISE_LOSSES = {"ipo": ipo_loss, "dpo": dpo_loss, "slic": slic_loss}


def pairwise_loss(name: str, margin: torch.Tensor, p: torch.Tensor, tau: float) -> torch.Tensor:
    """Dispatch to one of :data:`PAIRWISE_LOSSES` by name (``"ipo"``, ``"dpo"``, ``"slic"``)."""
    try:
        fn = PAIRWISE_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(PAIRWISE_LOSSES)}") from None
    return fn(margin, p, tau)


LABEL_TYPES = ("soft", "bernoulli", "hard")


def make_labels(p: torch.Tensor, label_type: str = "soft",
                generator: torch.Generator | None = None, tie_tol: float = 1e-12) -> torch.Tensor:
    """Turn preference probabilities into the labels a loss sees (SPEC §3).

    ``soft``: ``p`` itself (the paper's choice; lowest variance). ``bernoulli``: ``1[y wins]`` drawn
    with probability ``p``. ``hard``: ``1[p > 1/2]``, with ties ``|p - 1/2| <= tie_tol`` kept at 1/2.
    ``tie_tol`` defaults to the tolerance to which a game satisfies ``P + P.T = 1``
    (``tabular.game.validate_game``): an exact comparison with 1/2 would call ``P[y, y'] = 1/2`` a
    tie but ``P[y', y] = 1/2 - 1e-17`` a loss, and the hard-label game would not be antisymmetric.
    """
    if label_type == "soft":
        return p
    if label_type == "bernoulli":
        u = torch.rand(p.shape, dtype=p.dtype, device=p.device, generator=generator)
        return (u < p).to(p.dtype)
    if label_type == "hard":
        return torch.where((p - 0.5).abs() <= tie_tol, torch.full_like(p, 0.5), (p > 0.5).to(p.dtype))
    raise ValueError(f"unknown label type {label_type!r}; choose from {', '.join(LABEL_TYPES)}")


def label_matrix(P: torch.Tensor, label_type: str) -> torch.Tensor:
    """The expected label of every pair: ``P`` for soft and Bernoulli labels (the losses and the
    mirror-descent updates are linear in the label), ``1[P > 1/2]`` (ties 1/2) for hard labels.
    Every exact form uses it, so exact and sampled forms follow the same game."""
    return make_labels(P, "hard") if label_type == "hard" else P


def policy_gradient_loss(logp: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """REINFORCE surrogate ``-stopgrad(A) * log pi(y)`` per sample (or per token).

    Its gradient is ``-A grad log pi(y)``: minimising it ascends ``E[A grad log pi]``. Used by
    Nash-MD-PG with ``A = P(y, y') - 1/2 - tau r_pi(y)`` (Munos et al. 2023, arXiv 2312.00886,
    Sec. 7; SPEC §4) and by the RL baseline with ``A = r(y) - tau r_pi(y)``. For an exact
    expectation pass ``logp`` weighted by the (detached) probabilities of ``y``.
    """
    return -advantage.detach() * logp
