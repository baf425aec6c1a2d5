"""The llm losses are the tabular losses; a one-token "LLM" reproduces the exact expected gradient."""

import pytest
import torch

from llm.align import alignment_loss
from llm.config import MethodParams
from llm.judging import PromptBatch, TableJudge
from llm.models import new_causal_lm
from llm.objectives import kl_to_go, nash_md_pg_loss, pairwise_method_loss, rl_loss
from llm.sampling import Decoding
from tabular.losses import dpo_loss, ipo_loss, slic_loss


@pytest.mark.parametrize("name, fn", [("ipo", ipo_loss), ("dpo", dpo_loss), ("slic", slic_loss)])
def test_pairwise_method_loss_is_the_tabular_loss_on_the_same_margins(name, fn):
    g = torch.Generator().manual_seed(0)
    logp_y, logp_y_prime, ref_y, ref_y_prime = (-5 * torch.rand(16, generator=g) for _ in range(4))
    p = torch.rand(16, generator=g)
    margin = (logp_y - ref_y) - (logp_y_prime - ref_y_prime)  # h = r(y) - r(y')
    got = pairwise_method_loss(name, logp_y, logp_y_prime, ref_y, ref_y_prime, p, tau=0.3)
    torch.testing.assert_close(got, fn(margin, p, 0.3))


def test_ipo_value_by_hand():
    # h = (-1 - -2) - (-3 - -3) = 1, p = 0.75, tau = 0.5 -> target 1/(2 tau) = 1:
    # 0.75 (1 - 1)^2 + 0.25 (-1 - 1)^2 = 1.0
    got = pairwise_method_loss("ipo", torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]),
                               torch.tensor([-3.0]), torch.tensor([0.75]), tau=0.5)
    assert got.item() == pytest.approx(1.0)


def test_kl_to_go_is_the_reward_to_go_of_the_log_ratio():
    logp = torch.tensor([[-1.0, -2.0, -3.0, -9.0]])
    ref = torch.tensor([[-2.0, -2.5, -2.0, -1.0]])  # ratios 1, 0.5, -1, (masked)
    mask = torch.tensor([[1, 1, 1, 0]])
    # sums from t onward: 1 + 0.5 - 1 = 0.5, 0.5 - 1 = -0.5, -1, 0
    torch.testing.assert_close(kl_to_go(logp, ref, mask), torch.tensor([[0.5, -0.5, -1.0, 0.0]]))


def test_nash_md_pg_gradient_is_reward_to_go_weighted_score():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]])  # ratios 0.5, -1 -> to-go -0.5, -1
    loss = nash_md_pg_loss(logp, ref, torch.ones(1, 2), torch.tensor([0.9]), tau=0.2).sum()
    loss.backward()
    # d loss / d logp_t = -(p - 1/2 - tau * togo_t) = -(0.4 + 0.1), -(0.4 + 0.2)
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5, -0.6]]))


def test_rl_loss_uses_the_other_sample_as_baseline():
    logp = torch.zeros(2, 1, requires_grad=True)
    rl_loss(logp, torch.zeros(2, 1), torch.ones(2, 1), torch.tensor([2.0, 0.5]), tau=1.0).sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.5], [1.5]]))


# ---------- a one-token "LLM" over n actions: sampled gradient vs exact expected gradient ----------

N, TAU = 5, 0.5


def _one_token_models():
    torch.manual_seed(0)
    policy = new_causal_lm(N, n_layer=1, n_embd=16, n_head=2, n_positions=4).double()
    ref = new_causal_lm(N, n_layer=1, n_embd=16, n_head=2, n_positions=4).double()
    with torch.no_grad():  # make pi and mu clearly non-uniform and different
        policy.transformer.wte.weight.mul_(4.0)
        ref.transformer.wte.weight.mul_(4.0)
    return policy, ref


def _preference_matrix():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(N, N, generator=g, dtype=torch.float64)
    P = torch.triu(a, 1) + torch.tril(1 - a.T, -1) + 0.5 * torch.eye(N, dtype=torch.float64)
    assert torch.allclose(P + P.T, torch.ones_like(P))
    return P


def _exact_gradient(method, policy, ref, P, beta):
    """Enumerate the n actions: E over the sampling distribution, stop-gradient weights, same losses."""
    prompt = torch.tensor([[0]])
    # (N,) with grad; one token: no padding
    logp = torch.log_softmax(policy(input_ids=prompt).logits[0, -1], -1)
    with torch.no_grad():
        logmu = torch.log_softmax(ref(input_ids=prompt).logits[0, -1], -1)
    pi = logp.detach().exp()
    mix = torch.softmax((1 - beta) * logp.detach() + beta * logmu, -1)  # one token: exact mixture
    r = logp - logmu  # (N,) r_pi
    if method in ("online_ipo", "ipo_md", "online_dpo"):
        w = pi if method != "ipo_md" else mix
        h = r[:, None] - r[None, :]  # (N, N) margins h(y, y')
        fn = {"online_ipo": ipo_loss, "ipo_md": ipo_loss, "online_dpo": dpo_loss}[method]
        loss = (w[:, None] * w[None, :] * fn(h, P, TAU)).sum()
    else:  # nash_md_pg: y ~ pi, y' ~ mix; ascend E_y[grad log pi(y) (P(y > mix) - 1/2 - tau r(y))]
        advantage = (P @ mix - 0.5 - TAU * r).detach()
        loss = -(pi * advantage * logp).sum()
    return torch.autograd.grad(loss, list(policy.parameters()))


@pytest.mark.parametrize("method, beta", [("online_ipo", 0.0), ("ipo_md", 0.5), ("online_dpo", 0.0),
                                          ("nash_md_pg", 0.5)])
def test_sampled_gradient_averages_to_the_exact_gradient(method, beta):
    policy, ref = _one_token_models()
    P = _preference_matrix()
    exact = torch.cat([g.flatten() for g in _exact_gradient(method, policy, ref, P, beta)])

    judge = TableJudge(P)
    # 8 reps: with 2 the norm ratio had sd 0.010-0.014 over 12 other seeds and reached 1.031 (> the
    # 0.03 tolerance: ~3% false failures per method). With 8, over 12 seeds: sd 0.0055-0.0080,
    # |ratio - 1| <= 0.014, so 0.03 is >= 3.7 sd (<= 2e-4 per method, normal approximation); the
    # cosine was >= 0.9998 (threshold 0.995). The seed below is fixed: on CPU the outcome is too.
    B, reps = 8192, 8
    gen = torch.Generator().manual_seed(2)
    total = None
    for _ in range(reps):
        batch = PromptBatch(torch.zeros(B, 1, dtype=torch.long), torch.ones(B, 1, dtype=torch.long))
        loss, _ = alignment_loss(MethodParams(method, TAU, beta), policy, ref, batch, judge,
                                 Decoding(1, None, 0), generator=gen)
        grads = torch.autograd.grad(loss, list(policy.parameters()), allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                          for g, p in zip(grads, policy.parameters())])
        total = flat if total is None else total + flat
    sampled = total / reps
    cosine = torch.dot(sampled, exact) / (sampled.norm() * exact.norm())
    assert cosine > 0.995, f"cosine {cosine:.4f}"
    assert sampled.norm() / exact.norm() == pytest.approx(1.0, abs=0.03)
