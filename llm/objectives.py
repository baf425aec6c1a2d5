"""The alignment losses of the llm methods (SPEC §4).

Which methods exist, where each draws ``y`` and ``y'`` and which loss it feeds is the one table
:data:`tabular.methods.METHODS` (the llm runs its ``sampled_methods()``); the method's
hyperparameters travel as one :class:`llm.config.MethodParams`. Every loss here is a thin wrapper
that computes margins or advantages from log-probs and calls the single definitions in
:mod:`tabular.losses` (``pairwise_loss``, ``policy_gradient_loss``). How the llm draws and scores
each method's responses (:func:`llm.align.alignment_loss`):

| method        | y ~       | y' ~             | loss                                                |
|---------------|-----------|------------------|-----------------------------------------------------|
| online_ipo    | pi        | pi               | IPO on margin ``h = r_pi(y) - r_pi(y')``, label p   |
| online_dpo    | pi        | pi               | DPO                                                  |
| online_slic   | pi        | pi               | SLiC                                                 |
| ipo_md        | mix_beta  | mix_beta         | IPO, margins under pi (not the mixture)              |
| offline_*     | mu        | mu               | IPO / DPO / SLiC on fresh samples of mu (= the SFT model) |
| nash_md_pg    | pi        | mix_beta         | REINFORCE, advantage ``p - 1/2 - tau KL-to-go``, only y |
| self_play     | pi        | pi               | nash_md_pg with beta = 0                             |
| rl            | pi        | pi (baseline)    | REINFORCE on the BT reward, leave-one-out baseline   |

``p = P(y > y' | x)`` comes from the preference model (soft label by default; ``make_labels`` gives
Bernoulli or hard labels). ``r_pi = log pi - log mu`` uses per-sequence summed log-probs by default.

KL term of the policy-gradient methods, per token with reward-to-go: token ``t`` of ``y`` is
weighted by ``sum_{s >= t} (log pi(y_s | .) - log mu(y_s | .))``. Since
``grad KL(pi || mu) = E[sum_t grad log pi(y_t|.) sum_{s>=t} log(pi/mu)(y_s|.)]`` (earlier terms
have zero mean given the prefix), this is an unbiased estimator of the sequence-level KL gradient,
unlike weighting each token by its own log-ratio only (TRL ``NashMDTrainer``).
"""

from __future__ import annotations

import torch

from tabular.losses import make_labels, pairwise_loss, policy_gradient_loss

__all__ = ["pairwise_method_loss", "nash_md_pg_loss", "rl_loss", "kl_to_go"]


def pairwise_method_loss(loss: str, logp_y, logp_y_prime, ref_logp_y, ref_logp_y_prime, p, tau: float,
                         label_type: str = "soft", generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-pair loss of IPO / DPO / SLiC from sequence log-probs. All inputs (B,); returns (B,).

    ``margin = (logp_y - ref_logp_y) - (logp_y_prime - ref_logp_y_prime)`` = h_pi(y, y').
    """
    margin = (logp_y - ref_logp_y) - (logp_y_prime - ref_logp_y_prime)  # (B,)
    labels = make_labels(p.detach(), label_type, generator)  # (B,)
    return pairwise_loss(loss, margin, labels, tau)


def kl_to_go(tok_logp: torch.Tensor, tok_ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reward-to-go of the log-ratio: ``sum_{s >= t} (log pi - log mu)(y_s)``, detached. (B, T) -> (B, T)."""
    ratio = ((tok_logp - tok_ref_logp) * mask).detach()  # (B, T)
    return ratio.flip(-1).cumsum(-1).flip(-1) * mask


def nash_md_pg_loss(tok_logp_y, tok_ref_logp_y, mask_y, p, tau: float) -> torch.Tensor:
    """Nash-MD-PG per-sample surrogate; its gradient is ``-grad`` of ``E[P(y > y')] - tau KL(pi||mu)``.

    Args: tok_logp_y, tok_ref_logp_y, mask_y: (B, T) for ``y ~ pi``; p: (B,) ``P(y > y')`` with
    ``y' ~ mix_beta``. Returns (B,) (sum over tokens of ``-A_t log pi(y_t|.)``,
    ``A_t = p - 1/2 - tau * kl_to_go_t``).
    """
    advantage = (p.detach() - 0.5)[:, None] - tau * kl_to_go(tok_logp_y, tok_ref_logp_y, mask_y)  # (B, T)
    return (policy_gradient_loss(tok_logp_y, advantage) * mask_y).sum(-1)


def rl_loss(tok_logp, tok_ref_logp, mask, reward, tau: float) -> torch.Tensor:
    """RL baseline: REINFORCE on ``r(y) - tau KL`` with a leave-one-out baseline (pairs, unbiased).

    Args: (2B, T) tensors for the pairs ``[y; y']`` of the same prompts, reward (2B,).
    Returns (2B,). ``A(y) = r(y) - r(y')`` (the other sample of the same prompt is the baseline).
    """
    B = reward.shape[0] // 2
    baseline = torch.cat([reward[B:], reward[:B]])  # (2B,)
    advantage = (reward - baseline).detach()[:, None] - tau * kl_to_go(tok_logp, tok_ref_logp, mask)
    return (policy_gradient_loss(tok_logp, advantage) * mask).sum(-1)
