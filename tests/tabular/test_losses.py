"""Shared losses (SPEC §3): minimisers against a brute-force grid, regression form, gradients."""

import math

import numpy as np
import pytest
import torch

from tabular.losses import (
    dpo_loss,
    ipo_loss,
    ipo_regression_loss,
    make_labels,
    pairwise_loss,
    policy_gradient_loss,
    slic_loss,
)

GRID = torch.linspace(-60.0, 60.0, 1_200_001, dtype=torch.float64)  # spacing 1e-4
SPACING = float(GRID[1] - GRID[0])
CASES = [(p, tau) for p in (0.05, 0.3, 0.5, 0.8, 0.99) for tau in (0.1, 0.5, 1.0, 3.0)]


def grid_argmin(loss, p, tau):
    values = loss(GRID, torch.full_like(GRID, p), tau)
    return float(GRID[torch.argmin(values)])


@pytest.mark.parametrize("p, tau", CASES)
def test_ipo_minimiser_is_p_minus_half_over_tau(p, tau):
    assert grid_argmin(ipo_loss, p, tau) == pytest.approx((p - 0.5) / tau, abs=SPACING)


@pytest.mark.parametrize("p, tau", CASES)
def test_dpo_minimiser_is_logit_p_over_tau(p, tau):
    expected = math.log(p / (1 - p)) / tau
    assert grid_argmin(dpo_loss, p, tau) == pytest.approx(expected, abs=SPACING)


@pytest.mark.parametrize("p, tau", [c for c in CASES if c[0] != 0.5])
def test_slic_minimiser_is_plus_minus_one_over_tau(p, tau):
    """On [-1/tau, 1/tau] the loss is 1 + tau h (1 - 2p): linear, decreasing iff p > 1/2; outside,
    one hinge grows. So the minimiser is sign(p - 1/2) / tau."""
    expected = math.copysign(1.0, p - 0.5) / tau
    assert grid_argmin(slic_loss, p, tau) == pytest.approx(expected, abs=SPACING)


def test_slic_at_p_half_is_flat_between_the_hinges():
    tau = 0.5
    h = torch.linspace(-1 / tau, 1 / tau, 11, dtype=torch.float64)
    np.testing.assert_allclose(slic_loss(h, torch.full_like(h, 0.5), tau).numpy(), 1.0)


def test_soft_ipo_equals_regression_up_to_a_constant():
    """p (h - c)^2 + (1-p) (h + c)^2 = (h - (2p-1) c)^2 + c^2 (1 - (2p-1)^2), c = 1/(2 tau);
    (2p-1) c = (p - 1/2)/tau and c^2 (1 - (2p-1)^2) = 4 p (1-p) c^2 = p (1 - p) / tau^2."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(1000, dtype=torch.float64, generator=gen) * 5
    p = torch.rand(1000, dtype=torch.float64, generator=gen)
    for tau in (0.1, 1.0, 7.0):
        diff = ipo_loss(h, p, tau) - ipo_regression_loss(h, p, tau)
        torch.testing.assert_close(diff, p * (1 - p) / tau**2, rtol=1e-12, atol=1e-9)


def closed_form_gradients(h, p, tau):
    """d loss / d h written out by hand (sigma = sigmoid):
    IPO: 2p(h - c) + 2(1-p)(h + c) = 2 (h - (2p - 1) c), c = 1/(2 tau);
    DPO: -p tau sigma(-tau h) + (1 - p) tau sigma(tau h);
    SLiC: -p tau 1[tau h < 1] + (1 - p) tau 1[tau h > -1] (almost everywhere)."""
    c = 0.5 / tau
    sig = torch.sigmoid
    return {
        "ipo": 2 * (h - (2 * p - 1) * c),
        "dpo": -p * tau * sig(-tau * h) + (1 - p) * tau * sig(tau * h),
        "slic": -p * tau * (tau * h < 1).double() + (1 - p) * tau * (tau * h > -1).double(),
    }


@pytest.mark.parametrize("name", ["ipo", "dpo", "slic"])
def test_autodiff_matches_closed_form_gradient(name):
    gen = torch.Generator().manual_seed(1)
    h = (torch.randn(500, dtype=torch.float64, generator=gen) * 4).requires_grad_(True)
    p = torch.rand(500, dtype=torch.float64, generator=gen)
    tau = 0.7
    pairwise_loss(name, h, p, tau).sum().backward()
    expected = closed_form_gradients(h.detach(), p, tau)[name]
    torch.testing.assert_close(h.grad, expected, rtol=1e-12, atol=1e-12)


def test_dpo_is_stable_at_large_margins():
    h = torch.tensor([-1e4, 1e4], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([1.0, 1.0], dtype=torch.float64)
    loss = dpo_loss(h, p, 1.0)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(h.grad).all()
    loss = loss.detach()
    assert float(loss[0]) == pytest.approx(1e4) and float(loss[1]) == pytest.approx(0.0, abs=1e-300)


def test_labels():
    p = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    assert torch.equal(make_labels(p, "soft"), p)
    assert torch.equal(make_labels(p, "hard"), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="label type"):
        make_labels(p, "fuzzy")


def test_bernoulli_labels_have_mean_p():
    """Mean of N = 200000 draws within z = 5 standard errors sqrt(p(1-p)/N): a false failure
    has probability < 6e-7 per entry (and the seed is fixed)."""
    N = 200_000
    p = torch.tensor([0.05, 0.3, 0.5, 0.77], dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    draws = make_labels(p.expand(N, -1), "bernoulli", gen)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    se = torch.sqrt(p * (1 - p) / N)
    assert torch.all((draws.mean(0) - p).abs() <= 5 * se)


def test_policy_gradient_surrogate_gradient():
    logp = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([0.5, -3.0], dtype=torch.float64, requires_grad=True)
    policy_gradient_loss(logp, adv).sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([-0.5, 3.0], dtype=torch.float64))
    assert adv.grad is None  # the advantage is a stop-gradient


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        pairwise_loss("kto", torch.zeros(1), torch.zeros(1), 1.0)


def exact_minus_log_sigmoid(z: float) -> float:
    """-log sigmoid(z) = log(1 + exp(-z)) in 60-digit decimal arithmetic (z as the exact binary
    value of the float), rounded once to float64: an evaluation independent of torch."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        return float((1 + (-Decimal(z)).exp()).ln())


def test_dpo_loss_is_exact_for_every_margin():
    """|z| in [0, 50], one label (p = 1: l(z) alone, p = 0: l(-z)) and a soft one: within 4 ulp of
    the 60-digit value. F.softplus (threshold 20) was off by up to 1e-10 relative (2e-9 absolute,
    -1.25e-9 at z = 20.5): this test fails with it."""
    z = torch.linspace(-50.0, 50.0, 4001, dtype=torch.float64)
    z = torch.cat([z, torch.tensor([20.5, -20.5, 1e-300, -1e-300, 0.0], dtype=torch.float64)])
    exact = torch.tensor([exact_minus_log_sigmoid(v) for v in z.tolist()], dtype=torch.float64)
    exact_neg = torch.tensor([exact_minus_log_sigmoid(-v) for v in z.tolist()], dtype=torch.float64)
    ulp = torch.finfo(torch.float64).eps
    for tau, scale in ((1.0, 1.0), (0.5, 2.0)):  # tau * scale = 1: the margin is z itself
        margin = z / (tau * scale)
        one = dpo_loss(margin, torch.ones_like(z), tau, scale)
        zero = dpo_loss(margin, torch.zeros_like(z), tau, scale)
        assert ((one - exact).abs() <= 4 * ulp * exact).all(), (one - exact).abs().max()
        assert ((zero - exact_neg).abs() <= 4 * ulp * exact_neg).all()
    p = torch.full_like(z, 0.3)
    mixed = dpo_loss(z, p, 1.0)
    reference = 0.3 * exact + 0.7 * exact_neg  # both terms positive: no cancellation
    assert ((mixed - reference).abs() <= 8 * ulp * reference).all()


def test_dpo_gradient_is_sigmoid_minus_label_everywhere():
    """d/dz [-p log s(z) - (1-p) log s(-z)] = s(z) - p, also at z = 0 and |z| = 50 (a |z|-based
    stable form would have a zero subgradient at 0)."""
    z = torch.tensor([-50.0, -20.5, -1.0, 0.0, 1.0, 20.5, 50.0], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0, 0.9, 0.4], dtype=torch.float64)
    dpo_loss(z, p, 1.0).sum().backward()
    torch.testing.assert_close(z.grad, torch.sigmoid(z.detach()) - p, rtol=1e-15, atol=1e-300)


def test_hard_labels_treat_round_off_from_one_half_as_a_tie():
    # 0.5 +- 6e-17 (below an ulp of 1/2 on one side) must get the same label as 0.5: otherwise the
    # hard-label game of a valid P (P + P.T = 1 to 1e-12) is not antisymmetric; 1e-9 is a real win.
    p = torch.tensor([0.5, 0.49999999999999994, 0.5 + 1e-13, 0.5 + 1e-9, 0.5 - 1e-9], dtype=torch.float64)
    assert make_labels(p, "hard").tolist() == [0.5, 0.5, 0.5, 1.0, 0.0]
    assert make_labels(p, "hard", tie_tol=0.0).tolist() == [0.5, 0.0, 1.0, 1.0, 0.0]
