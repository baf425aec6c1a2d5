"""Online DPO's limit (tabular.pairwise_limits): certified, and checked by three independent routes.

1. Bradley-Terry: the closed form mu exp(s / tau) (SPEC §5.6), computed here.
2. The certificate is recomputed here by autodiff of the shared ``dpo_loss`` (not Eq. (1) of the
   module): the population gradient divided by ``2 tau pi_a``.
3. The exact-form online DPO of ``tabular.algorithms`` run to convergence lands on it.
"""

import numpy as np
import pytest
import torch
from tabular_helpers import random_preference, random_reference

from tabular import AlgorithmConfig, bradley_terry, limit_point, run, solve_equilibrium
from tabular.losses import dpo_loss
from tabular.pairwise_limits import PairwiseLimit, online_dpo_limit, online_dpo_residual


def autodiff_relative_gradient(P, mu, tau, pi):
    """max_a |d/dz_a E_{y,y'~pi} dpo_loss| / (2 tau pi_a), sampling held fixed, by torch autograd."""
    z = torch.tensor(np.log(pi), dtype=torch.float64, requires_grad=True)
    log_pi = torch.log_softmax(z, -1)
    q = torch.softmax(z, -1).detach()
    r = log_pi - torch.as_tensor(np.log(mu))
    h = r[..., :, None] - r[..., None, :]
    total = (q[..., :, None] * q[..., None, :] * dpo_loss(h, torch.as_tensor(P), tau)).sum()
    (g,) = torch.autograd.grad(total, z)
    return float(np.abs(g.numpy() / (2 * tau * pi)).max())


def interior_games(n, B, seed):
    rng = np.random.default_rng(seed)
    P = np.stack([random_preference(n, rng) for _ in range(B)])
    P = np.clip(P, 0.02, 0.98)  # strictly inside (0, 1): DPO's target margin is logit(P)
    mu = np.stack([random_reference(n, rng, 1.0) for _ in range(B)])
    return P, mu


@pytest.mark.parametrize("tau", [1.0, 0.1, 0.01])
def test_bradley_terry_limit_is_the_rlhf_optimum(tau):
    s = np.array([0.0, 1.5, -0.7, 2.2, 0.3])
    P = bradley_terry(s)
    mu = random_reference(5, np.random.default_rng(3))
    lim = online_dpo_limit(P, mu, tau)
    expected = np.log(mu) + s / tau
    expected -= np.logaddexp.reduce(expected)
    assert lim.converged and np.abs(lim.log_pi - expected).max() <= 1e-11


@pytest.mark.parametrize("n,tau", [(3, 1.0), (6, 0.1), (20, 0.1), (20, 0.01), (60, 0.03)])
def test_limit_is_certified_and_the_autodiff_gradient_agrees(n, tau):
    P, mu = interior_games(n, 12, seed=n)
    lim = online_dpo_limit(P, mu, tau)
    assert lim.converged.all() and lim.residual.max() <= 1e-12
    assert np.allclose(lim.pi.sum(-1), 1.0, atol=1e-14) and (lim.pi > 0).all()
    assert np.array_equal(online_dpo_residual(P, mu, tau, lim.pi) <= 1e-12, np.ones(12, bool))
    for b in range(3):
        assert autodiff_relative_gradient(P[b], mu[b], tau, lim.pi[b]) <= 1e-11
    # the certificate can fail: the starting point (the BT fit) is far from stationary here
    start = mu * np.exp(np.log(P / (1 - P)).mean(-1) / tau)
    start /= start.sum(-1, keepdims=True)
    assert online_dpo_residual(P, mu, tau, start).max() > 1e-3


def test_exact_online_dpo_lands_on_the_limit_and_not_on_pi_star():
    """App. F: online DPO's limit is not pi* on a non-BT game; the sandbox's exact form finds it."""
    tau = 1.0
    P, mu = interior_games(5, 6, seed=11)
    lim = online_dpo_limit(P, mu, tau)
    res = run(AlgorithmConfig("online_dpo", tau=tau), P, mu, steps=40000, record_every=40000)
    log_ratio = np.log(res.final_pi) - lim.log_pi
    assert np.abs(log_ratio - log_ratio.mean(-1, keepdims=True)).max() <= 1e-9
    pi_star = solve_equilibrium(P, mu, tau).pi
    assert np.abs(np.log(pi_star) - lim.log_pi).max() > 1e-2


def test_limit_point_dispatch():
    P, mu = interior_games(4, 1, seed=5)
    point = limit_point(AlgorithmConfig("online_dpo", tau=0.5), P[0], mu[0])
    assert isinstance(point, PairwiseLimit) and point.converged
    assert limit_point(AlgorithmConfig("online_dpo", tau=0.5, label_type="hard"), P[0], mu[0]) is None
    assert limit_point(AlgorithmConfig("online_slic", tau=0.5), P[0], mu[0]) is None


def test_bad_input_is_refused():
    P, mu = interior_games(3, 1, seed=0)
    with pytest.raises(ValueError, match="0 < P < 1"):
        online_dpo_limit(np.where(P[0] > 0.5, 1.0, P[0]), mu[0], 0.1)
    with pytest.raises(ValueError, match="tau"):
        online_dpo_limit(P[0], mu[0], 0.0)
