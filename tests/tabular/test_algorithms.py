"""Algorithms (SPEC §4-5): limits of the exact forms, statistics of the sampled forms, batching.

Every expected value is derived by hand or computed here with numpy, independently of the code
under test (the solver is trusted only through its certificate, checked in test_solvers.py).
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
from tabular_helpers import fixed_point_map, random_preference, random_reference

from tabular import AlgorithmConfig, make_game, make_state, run, solve_equilibrium, step
from tabular.algorithms import (
    P_times,
    method_loss,
    pairs,
    pairwise_objective,
    policy_gradient_objective,
    sampling_log_policy,
)


def ipo_objective(theta, log_mu, P, tau, log_q, label_type="soft", batch=None, generator=None):
    """The shared pairwise objective with IPO's loss, ``y, y' ~ q`` i.i.d.: every pair (exact)
    or ``batch`` draws (sampled)."""
    pr = pairs(P, log_q, None, label_type, batch, generator)
    return pairwise_objective(pr, torch.log_softmax(theta, -1) - log_mu, "ipo", tau)


def game_with_mu(spec, seed=0, spread=0.5):
    """A family game with a non-uniform mu (with uniform mu, cyclic games have pi* = mu = pi_0)."""
    P, scores = make_game(spec)
    return P, random_reference(P.shape[0], np.random.default_rng(seed), spread), scores


def mixture(pi, mu, beta):
    m = pi ** (1 - beta) * mu ** beta
    return m / m.sum()


def max_abs(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# ---------------------------------------------------------------------------------------------
# Exact forms: limits.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["cyclic:5", "rps", "random:6:1", "bt:6:2", "majority:5:3:0"])
@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_exact_online_ipo_converges_to_pi_star(spec, tau):
    """Prop. 4.1: online IPO's population loss, sampled from pi itself, is minimised at pi*."""
    P, mu, _ = game_with_mu(spec)
    eq = solve_equilibrium(P, mu, tau)
    res = run(AlgorithmConfig("online_ipo", tau=tau), P, mu, steps=1500, record_every=1500,
              pi_star=eq.pi)
    pi = res.final_pi[0]
    assert float(res.metrics["gap"][-1, 0]) <= 1e-10
    # The limit satisfies the fixed point pi = T(pi), with our own T.
    assert max_abs(pi, fixed_point_map(P, mu, tau, pi)) <= 1e-10


def test_offline_ipo_converges_to_mu_exp_P_mu():
    """Prop. 4.1, offline: sampling from mu, the minimiser is pi ∝ mu exp(P mu / tau)."""
    P, mu, _ = game_with_mu("random:5:4")
    tau = 0.5
    res = run(AlgorithmConfig("offline_ipo", tau=tau), P, mu, steps=1500, record_every=1500)
    assert max_abs(res.final_pi[0], fixed_point_map(P, mu, tau, mu)) <= 1e-10


def test_decaying_nash_md_obeys_kl_bound_and_approaches_pi_star():
    """Munos et al. Thm 1: eta_t = 2 / (tau (t+2)) gives KL(pi* || pi_T) <= 8 / (tau^2 (T+1))."""
    for spec, tau in [("perturbed_rps", 0.2), ("random:6:0", 0.5), ("bt:5:1", 1.0)]:
        P, mu, _ = game_with_mu(spec)
        eq = solve_equilibrium(P, mu, tau)
        res = run(AlgorithmConfig("nash_md", tau=tau), P, mu, steps=2000, record_every=1,
                  pi_star=eq.pi)
        T = res.steps
        kl = res.metrics["kl_to_opt"][:, 0]
        # Our own KL(pi* || pi_T) at the end agrees with the recorded metric.
        pi_T = res.final_pi[0]
        assert kl[-1] == pytest.approx(np.sum(eq.pi * np.log(eq.pi / pi_T)), rel=1e-6, abs=1e-15)
        assert np.all(kl <= 8 / (tau**2 * (T + 1)))
        # Approaches pi*: non-increasing after the first step (the first step, eta_0 tau = 1,
        # jumps to BR(mu) and may overshoot) and far below its start.
        assert np.all(np.diff(kl[1:]) <= 1e-15)
        assert kl[-1] <= 1e-6 * max(kl[0], 1e-3)


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
def test_ipo_md_converges_to_the_mixture_fixed_point(beta):
    """SPEC Eq. 13: the limit satisfies pi ∝ mu exp(P mix_beta(pi) / tau) (checked here)."""
    P, mu, _ = game_with_mu("random:5:2")
    tau = 0.5
    res = run(AlgorithmConfig("ipo_md", tau=tau, beta=beta), P, mu, steps=2000,
              record_every=2000)
    pi = res.final_pi[0]
    assert max_abs(pi, fixed_point_map(P, mu, tau, mixture(pi, mu, beta))) <= 1e-10
    # Prop. 5.2: mix_beta(pi) is the equilibrium at temperature tau / (1 - beta).
    m = mixture(pi, mu, beta)
    assert max_abs(m, fixed_point_map(P, mu, tau / (1 - beta), m)) <= 1e-10


@pytest.mark.parametrize("eta", [0.1, 0.5, 2.0])
def test_constant_eta_nash_md_reaches_the_ipo_md_point(eta):
    """SPEC §5.5: Nash-MD with constant eta has the IPO-MD fixed point with beta = eta tau."""
    P, mu, _ = game_with_mu("cyclic:5")
    tau = 0.4
    beta = eta * tau
    res = run(AlgorithmConfig("nash_md", tau=tau, eta=eta), P, mu, steps=int(40 / beta) + 50,
              record_every=10_000)
    pi = res.final_pi[0]
    assert max_abs(pi, fixed_point_map(P, mu, tau, mixture(pi, mu, beta))) <= 1e-10
    # and it is not pi* (the O(eta) bias), which it approaches as eta -> 0:
    assert max_abs(pi, solve_equilibrium(P, mu, tau).pi) > 1e-6


def test_online_dpo_misses_pi_star_with_two_actions():
    """App. F, by hand. With two actions and pair weights detached, online DPO's population loss is
    2 pi0 pi1 dpo(h, p) in the single margin h = r(0) - r(1), minimised at h = logit(p) / tau.
    pi* instead has h = ((P pi)_0 - (P pi)_1) / tau = (p - 1/2)(pi0 + pi1) / tau = (p - 1/2) / tau.
    They agree only when p = 1/2."""
    p, tau = 0.8, 0.5
    P = np.array([[0.5, p], [1 - p, 0.5]])
    mu = np.array([0.3, 0.7])
    res = run(AlgorithmConfig("online_dpo", tau=tau), P, mu, steps=3000, record_every=3000)
    pi = res.final_pi[0]
    margin = math.log(pi[0] / pi[1]) - math.log(mu[0] / mu[1])
    assert margin == pytest.approx(math.log(p / (1 - p)) / tau, abs=1e-8)
    pi_star = solve_equilibrium(P, mu, tau).pi
    assert math.log(pi_star[0] / pi_star[1]) - math.log(mu[0] / mu[1]) == pytest.approx(
        (p - 0.5) / tau, abs=1e-12)
    assert max_abs(pi, pi_star) > 0.1


def test_online_dpo_reaches_pi_star_when_p_is_half():
    P = np.full((2, 2), 0.5)
    mu = np.array([0.3, 0.7])
    res = run(AlgorithmConfig("online_dpo", tau=0.5), P, mu, steps=10, record_every=10)
    assert max_abs(res.final_pi[0], mu) <= 1e-15  # pi_0 = mu = pi* is stationary


def test_rl_converges_to_the_rlhf_solution():
    """Entropy-regularised policy gradient on scores s: the optimum is pi ∝ mu exp(s / tau)."""
    P, mu, scores = game_with_mu("bt:4:0")
    tau = 0.5
    res = run(AlgorithmConfig("rl", tau=tau), P, mu, steps=3000, record_every=3000,
              scores=scores)
    target = mu * np.exp(scores / tau)
    assert max_abs(res.final_pi[0], target / target.sum()) <= 1e-10


@pytest.mark.parametrize("name", ["extragradient", "self_play"])
def test_other_exact_methods_reach_pi_star(name):
    P, mu, _ = game_with_mu("majority:5:3:1")
    tau = 0.5
    res = run(AlgorithmConfig(name, tau=tau), P, mu, steps=2000, record_every=2000)
    pi = res.final_pi[0]
    assert max_abs(pi, fixed_point_map(P, mu, tau, pi)) <= 1e-10


def test_ipo_gradient_is_minus_four_over_tau_self_play_gradient():
    """Prop. 4.2 by autodiff: grad of the online-IPO population loss (both pair orders summed)
    equals -(4/tau) times the self-play gradient g_j = pi_j (A_j - E_pi A),
    A(y) = (P pi)(y) - 1/2 - tau r(y), which is written out here in numpy."""
    rng = np.random.default_rng(5)
    n, tau = 6, 0.3
    P, mu = random_preference(n, rng), random_reference(n, rng)
    theta = torch.tensor(rng.normal(size=(1, n)), dtype=torch.float64, requires_grad=True)
    log_mu = torch.log(torch.tensor(mu))[None]
    log_q = sampling_log_policy(torch.log_softmax(theta, -1), log_mu, 0.0)
    loss = ipo_objective(theta, log_mu, torch.tensor(P)[None], tau, log_q)
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    pi = np.exp(theta.detach().numpy()[0]) / np.exp(theta.detach().numpy()[0]).sum()
    A = P @ pi - 0.5 - tau * (np.log(pi) - np.log(mu))
    self_play = pi * (A - pi @ A)
    np.testing.assert_allclose(grad.numpy()[0], -(4 / tau) * self_play, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Sampled forms approach the exact ones.
# ---------------------------------------------------------------------------------------------
def _gradients(loss_fn, theta0, B):
    theta = theta0.expand(B, -1).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(theta).sum(), theta)
    return g  # (B, n): one independent estimate per batch element


def _sampled_and_exact(kind, K, B=4000, seed=0):
    rng = np.random.default_rng(8)
    n, tau, beta = 5, 0.5, 0.3
    P, mu = random_preference(n, rng), random_reference(n, rng)
    theta0 = torch.tensor(rng.normal(size=(1, n)), dtype=torch.float64)
    Pb = torch.tensor(P).expand(B, n, n)
    log_mu = torch.log(torch.tensor(mu)).expand(B, n)
    gen = torch.Generator().manual_seed(seed)

    def log_q(theta):
        return sampling_log_policy(torch.log_softmax(theta, -1), log_mu[: theta.shape[0]], beta)

    if kind == "ipo_md":
        sampled = _gradients(lambda th: ipo_objective(th, log_mu, Pb, tau, log_q(th), batch=K,
                                                      generator=gen), theta0, B)
        exact = _gradients(lambda th: ipo_objective(th, log_mu[:1], Pb[:1], tau, log_q(th)), theta0, 1)
    else:  # nash_md_pg with Bernoulli labels: the noisiest estimator
        cfg = AlgorithmConfig("nash_md_pg", tau=tau, beta=beta, sampled=True, batch=K,
                              label_type="bernoulli")
        cfg_exact = dataclasses.replace(cfg, sampled=False)
        sampled = _gradients(lambda th: method_loss(cfg, th, log_mu, Pb, generator=gen), theta0, B)
        exact = _gradients(lambda th: method_loss(cfg_exact, th, log_mu[:1], Pb[:1]), theta0, 1)
    return sampled, exact[0]


@pytest.mark.parametrize("kind", ["ipo_md", "nash_md_pg"])
def test_sampled_gradient_is_unbiased_within_a_clt_bound(kind):
    """B = 4000 independent batch-K gradient estimates; each coordinate's mean is within z = 5
    standard errors of the exact gradient. Under the CLT a false failure has probability
    < 2 * n * Phi(-5) ~ 3e-6 (n = 5 coordinates); the seed is fixed, so the test is deterministic."""
    sampled, exact = _sampled_and_exact(kind, K=8)
    mean = sampled.mean(0)
    se = sampled.std(0) / math.sqrt(sampled.shape[0])
    assert torch.all((mean - exact).abs() <= 5 * se + 1e-15)


@pytest.mark.parametrize("kind", ["ipo_md", "nash_md_pg"])
def test_sampled_gradient_error_shrinks_like_one_over_sqrt_batch(kind):
    """i.i.d. pairs: E||g_K - g||^2 = c / K exactly, so K * MSE(K) is the same for every K.
    MSE is estimated from B = 4000 replicates (relative standard error a few %), so a 35% band
    is > 5 standard errors wide (false-failure rate < 1e-6 under the CLT; fixed seed)."""
    scaled = []
    for K in (4, 16, 64):
        sampled, exact = _sampled_and_exact(kind, K=K, seed=K)
        scaled.append(K * float(((sampled - exact) ** 2).sum(1).mean()))
    assert max(scaled) / min(scaled) <= 1.35, scaled


def test_sampled_online_ipo_run_approaches_exact_as_batch_grows():
    """After 200 SGD steps the sampled iterate sits in a noise ball of radius ~ sqrt(lr / K)
    around pi*: a 64x larger batch must shrink the mean distance (over 64 seeds) at least 3x
    (the expected ratio is 8)."""
    P, mu, _ = game_with_mu("random:4:3")
    tau = 0.5
    eq = solve_equilibrium(P, mu, tau)
    distances = []
    for K in (16, 1024):
        res = run(AlgorithmConfig("online_ipo", tau=tau, sampled=True, batch=K),
                  np.repeat(P[None], 64, 0), mu, steps=200, record_every=200, pi_star=eq.pi,
                  seed=1)
        distances.append(np.abs(res.final_pi - eq.pi).max(1).mean())
    assert distances[1] * 3 <= distances[0], distances


def test_sampled_nash_md_step_is_unbiased():
    """The sampled P @ mix estimate (Bernoulli labels) averages to the exact Nash-MD input."""
    P, mu, _ = game_with_mu("perturbed_rps")
    B, K, tau, eta = 20000, 4, 0.5, 0.5
    cfg = AlgorithmConfig("nash_md", tau=tau, eta=eta, sampled=True, batch=K,
                          label_type="bernoulli")
    state = make_state(cfg, np.repeat(P[None], B, 0), mu, seed=2)
    # start away from mu, so that the mixture (and a wrong beta = eta tau) would show
    pi0 = np.array([0.6, 0.1, 0.3])
    state.theta = torch.log(torch.tensor(pi0)).repeat(B, 1)
    log_mix = sampling_log_policy(state.theta, state.log_mu, eta * tau)
    est = P_times(state.P, log_mix, cfg.label_type, cfg.batch, state.generator).numpy()  # (B, n)
    exact = P @ mixture(pi0, mu, eta * tau)
    assert np.abs(exact - P @ pi0).max() > 1e-2 and np.abs(exact - P @ mu).max() > 1e-2
    se = est.std(0) / math.sqrt(B)
    assert np.all(np.abs(est.mean(0) - exact) <= 5 * se)


# ---------------------------------------------------------------------------------------------
# Vectorisation and reproducibility.
# ---------------------------------------------------------------------------------------------
def test_thousand_seeds_run_as_one_batch():
    P, mu, _ = game_with_mu("random:5:1")
    eq = solve_equilibrium(P, mu, 0.5)
    cfg = AlgorithmConfig("online_ipo", tau=0.5, sampled=True, batch=16)
    res = run(cfg, np.repeat(P[None], 1000, 0), mu, steps=20, record_every=10, pi_star=eq.pi,
              seed=7)
    assert res.final_pi.shape == (1000, 5) and res.metrics["gap"].shape == (3, 1000)
    # every seed sees its own samples ...
    assert len({tuple(np.round(r, 12)) for r in res.final_pi}) == 1000
    # ... and the whole batch is reproducible from the seed, and changes with it.
    again = run(cfg, np.repeat(P[None], 1000, 0), mu, steps=20, record_every=10, pi_star=eq.pi,
                seed=7)
    np.testing.assert_array_equal(res.final_pi, again.final_pi)
    other = run(cfg, np.repeat(P[None], 1000, 0), mu, steps=20, record_every=10, pi_star=eq.pi,
                seed=8)
    assert not np.array_equal(res.final_pi, other.final_pi)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", ["online_ipo", "ipo_md", "nash_md_pg", "nash_md"])
def test_batch_elements_are_independent(name, optimizer):
    """A batch of different games gives, element by element, the runs of each game alone."""
    rng = np.random.default_rng(3)
    games = [(random_preference(4, rng), random_reference(4, rng)) for _ in range(3)]
    cfg = AlgorithmConfig(name, tau=0.5, beta=0.2, optimizer=optimizer)
    P = np.stack([g[0] for g in games])
    mu = np.stack([g[1] for g in games])
    batched = run(cfg, P, mu, steps=50, record_every=50).final_pi
    for b, (Pb, mub) in enumerate(games):
        alone = run(cfg, Pb, mub, steps=50, record_every=50).final_pi[0]
        np.testing.assert_allclose(batched[b], alone, rtol=1e-12, atol=1e-15)


def test_step_advances_in_place():
    P, mu, _ = game_with_mu("rps")
    state = make_state(AlgorithmConfig("online_ipo", tau=1.0), P, mu)
    before = state.log_pi.clone()
    step(state)
    assert state.t == 1 and not torch.equal(before, state.log_pi)


# ---------------------------------------------------------------------------------------------
# Configuration errors.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(name="nosuch"), "unknown algorithm"),
    (dict(name="online_ipo", tau=0.0), "tau"),
    (dict(name="ipo_md", beta=1.5), "beta"),
    (dict(name="nash_md", eta=-1.0), "eta"),
    (dict(name="nash_md", tau=1.0, eta=2.0), "eta \\* tau <= 1"),
    (dict(name="online_ipo", lr=0.0), "lr"),
    (dict(name="online_ipo", optimizer="rmsprop"), "optimizer"),
    (dict(name="online_ipo", batch=0), "batch"),
    (dict(name="online_ipo", label_type="fuzzy"), "label type"),
])
def test_invalid_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlgorithmConfig(**kwargs)


def test_rl_needs_scores():
    P = make_game("random:4").P
    with pytest.raises(ValueError, match="Bradley-Terry"):
        make_state(AlgorithmConfig("rl", tau=1.0), P)


# ---------------------------------------------------------------------------------------------
# Hard labels: every exact form follows the game H = 1[P > 1/2] (ties 1/2), like the sampled forms.
# ---------------------------------------------------------------------------------------------
def hard_matrix(P):
    """Built here with numpy, independently of tabular.losses.make_labels."""
    return np.where(P == 0.5, 0.5, (P > 0.5).astype(float))


def test_hard_labels_prop_4_2_holds_for_exact_ipo_and_self_play():
    """With hard labels, grad online-IPO = -(4/tau) grad self-play still holds (both on H)."""
    P, mu, _ = game_with_mu("random:5:1")
    tau = 0.5
    theta = torch.tensor(np.log(mu) + np.random.default_rng(3).normal(size=5), requires_grad=True)
    log_mu = torch.tensor(np.log(mu))[None]
    Pt = torch.tensor(P)[None]
    th = theta[None]
    log_q = sampling_log_policy(torch.log_softmax(th, -1), log_mu, 0.0)
    (g_ipo,) = torch.autograd.grad(
        ipo_objective(th, log_mu, Pt, tau, log_q, "hard").sum(), theta)
    cfg = AlgorithmConfig("self_play", tau=tau, label_type="hard")
    (g_sp,) = torch.autograd.grad(method_loss(cfg, th, log_mu, Pt).sum(), theta)
    np.testing.assert_allclose(g_ipo.numpy(), (4 / tau) * g_sp.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["online_ipo", "self_play", "extragradient"])
def test_hard_labels_exact_forms_converge_to_equilibrium_of_hard_game(name):
    P, mu, _ = game_with_mu("random:5:1")
    tau = 0.5
    H = hard_matrix(P)
    target = solve_equilibrium(H, mu, tau)  # trusted through its certificate
    assert target.gap <= 1e-12
    assert max_abs(target.pi, solve_equilibrium(P, mu, tau).pi) > 1e-2  # the two games differ
    res = run(AlgorithmConfig(name, tau=tau, label_type="hard"), P, mu, steps=3000, record_every=3000)
    assert max_abs(res.final_pi[0], target.pi) <= 1e-10


def test_hard_labels_sampled_self_play_gradient_is_unbiased_for_exact():
    """Sampled self-play with hard labels averages to the exact hard-label gradient (z <= 5)."""
    P, mu, _ = game_with_mu("random:5:1")
    tau, K, S = 0.5, 16, 4000
    cfg_exact = AlgorithmConfig("self_play", tau=tau, label_type="hard")
    cfg_sampled = AlgorithmConfig("self_play", tau=tau, label_type="hard", sampled=True, batch=K)
    theta0 = np.log(mu) + np.random.default_rng(4).normal(size=5)
    log_mu = torch.tensor(np.log(mu))[None].repeat(S, 1)
    Pt = torch.tensor(P)[None].repeat(S, 1, 1)
    theta = torch.tensor(np.tile(theta0, (S, 1)), requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    (g_s,) = torch.autograd.grad(method_loss(cfg_sampled, theta, log_mu, Pt, generator=gen).sum(), theta)
    theta1 = torch.tensor(theta0[None], requires_grad=True)
    (g_e,) = torch.autograd.grad(method_loss(cfg_exact, theta1, log_mu[:1], Pt[:1]).sum(), theta1)
    mean, se = g_s.numpy().mean(0), g_s.numpy().std(0, ddof=1) / math.sqrt(S)
    # 5 coordinates at |z| <= 5: false-failure rate < 5 * 5.7e-7.
    assert np.all(np.abs(mean - g_e.numpy()[0]) <= 5 * se + 1e-12)


def test_rl_converges_to_rlhf_solution():
    """RL baseline on a BT game: the limit is mu exp(s / tau) normalised (computed here)."""
    P, scores = make_game("bt:5:3")
    mu = random_reference(5, np.random.default_rng(0), 0.5)
    tau = 0.5
    expected = mu * np.exp(scores / tau)
    expected /= expected.sum()
    cfg = AlgorithmConfig("rl", tau=tau)
    res = run(cfg, P, mu, steps=3000, record_every=3000, scores=scores)
    assert max_abs(res.final_pi[0], expected) <= 1e-4
    from tabular import limit_point
    assert max_abs(limit_point(cfg, P, mu, scores=scores).pi, expected) <= 1e-14


def test_run_records_requested_steps_from_a_given_start():
    P, mu, _ = game_with_mu("random:4:1")
    start = np.log(np.array([0.7, 0.1, 0.1, 0.1]))
    res = run(AlgorithmConfig("nash_md", tau=0.5), P, mu, steps=8, record_at=[0, 3, 8], init=start)
    assert list(res.steps) == [0, 3, 8] and res.log_pi.shape == (3, 1, 4)
    np.testing.assert_allclose(res.log_pi[0, 0], start, atol=1e-15)  # pi_0 is the given start
    np.testing.assert_allclose(res.log_pi[-1], res.final_log_pi)
    # the default grid: 0, every record_every, and the last step
    assert list(run(AlgorithmConfig("nash_md", tau=0.5), P, mu, steps=7,
                    record_every=3).steps) == [0, 3, 6, 7]


# ---- issue 8: API input validation ----------------------------------------------------------
@pytest.mark.parametrize("tau", [1e-300, 1e-150, 1e-10, 0.1, 10.0, 1e150, 1e300])
@pytest.mark.parametrize("name", ["online_ipo", "online_dpo", "online_slic", "nash_md_pg"])
def test_default_lr_is_finite_or_refused_at_extreme_tau(name, tau):
    """No ZeroDivisionError / OverflowError: a finite positive lr, or one ValueError naming lr.
    Where both are representable it equals the documented formula min(0.5, 20 tau^2) x scale."""
    try:
        lr = AlgorithmConfig(name, tau=tau).effective_lr
    except ValueError as e:
        assert "pass lr" in str(e) and (tau <= 1e-150 or tau >= 1e150)
        return
    assert 0 < lr < math.inf
    if 1e-10 <= tau <= 10:
        base = min(0.5, 20 * tau**2)
        scale = {"online_ipo": 1, "online_dpo": 1 / (2 * tau**2), "online_slic": 1 / (2 * tau),
                 "nash_md_pg": 4 / tau}[name]
        assert lr == pytest.approx(base * scale, rel=1e-14)


@pytest.mark.parametrize("batch", [2.5, 0, -1, True, "8"])
def test_batch_must_be_a_positive_integer(batch):
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        AlgorithmConfig("online_ipo", sampled=True, batch=batch)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=-5), "steps must be an integer >= 0"),
    (dict(steps=2.5), "steps must be an integer"),
    (dict(record_every=0), "record_every"),
    (dict(init=[math.nan, 0.0, 0.0]), "nan"),
    (dict(init=[0.0, 0.0]), "shape"),
    (dict(seed=-1), "seed must lie"),
    (dict(seed=2**64), "seed must lie"),
])
def test_run_refuses_bad_arguments(kwargs, match):
    P = make_game("rps").P
    with pytest.raises(ValueError, match=match):
        run(AlgorithmConfig("online_ipo", tau=1.0), P, steps=kwargs.pop("steps", 3), **kwargs)


def test_run_with_zero_steps_records_the_start():
    res = run(AlgorithmConfig("online_ipo", tau=1.0), make_game("rps").P, steps=0)
    assert list(res.steps) == [0] and res.metrics["gap"].shape == (1, 1)


# ---------------------------------------------------------------------------------------------
# One pair weighting; result types.
# ---------------------------------------------------------------------------------------------
def test_exact_pairs_are_the_full_grid_and_summing_y_prime_out_is_the_same_policy_gradient():
    """Exact pairs: weights q(y) q'(y') (sum 1), label P[y, y']. For the policy gradient (linear
    in the label) summing y' out gives the gradient of the full n x n grid, to round-off."""
    rng = np.random.default_rng(11)
    n, tau = 5, 0.4
    P = torch.tensor(random_preference(n, rng))[None]
    log_mu = torch.log(torch.tensor(random_reference(n, rng)))[None]
    theta = torch.tensor(rng.normal(size=(1, n)), requires_grad=True)
    log_pi = torch.log_softmax(theta, -1)
    log_m = sampling_log_policy(log_pi, log_mu, 0.3)
    grid = pairs(P, log_pi.detach(), log_m, "soft")
    pi, m = np.exp(log_pi.detach().numpy()[0]), np.exp(log_m.numpy()[0])
    np.testing.assert_allclose(grid.weight.numpy()[0], np.outer(pi, m), rtol=1e-15)
    assert grid.weight.sum().item() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_array_equal(grid.label.numpy()[0], P.numpy()[0])
    summed = pairs(P, log_pi.detach(), log_m, "soft", sum_out_y_prime=True)
    assert summed.weight.shape == (1, n, 1)
    np.testing.assert_allclose(summed.label.numpy()[0, :, 0], P.numpy()[0] @ m, rtol=1e-14)
    log_ratio = log_pi - log_mu

    def grad(pr):
        obj = policy_gradient_objective(pr, log_pi, log_ratio, pr.label - 0.5, tau)
        return torch.autograd.grad(obj.sum(), theta, retain_graph=True)[0].numpy()

    np.testing.assert_allclose(grad(summed), grad(grid), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("label_type", ["soft", "hard"])
@pytest.mark.parametrize("loss", ["ipo", "dpo", "slic"])
def test_one_sampler_pairs_are_the_full_grid_folded_onto_y_le_y_prime(loss, label_type):
    """y and y' from one q (log_q_prime None): the pairs y <= y' only, each off-diagonal
    pair counted twice. Objective and gradient equal the full n x n grid's (the same q passed
    as q' gives the grid), to round-off, for every pairwise loss and for hard labels
    with ties (the fold needs loss(-h, 1 - p) = loss(h, p) and an antisymmetric label)."""
    rng = np.random.default_rng(12)
    B, n, tau = 3, 6, 0.3
    P_np = np.stack([random_preference(n, rng) for _ in range(B)])
    P_np[:, 0, 1], P_np[:, 1, 0] = 0.5, 0.5  # a tie off the diagonal
    P = torch.tensor(P_np)
    log_mu = torch.log(torch.tensor(np.stack([random_reference(n, rng) for _ in range(B)])))
    theta = torch.tensor(rng.normal(size=(B, n)), requires_grad=True)
    log_q = torch.log_softmax(theta, -1).detach()
    folded = pairs(P, log_q, None, label_type)  # one sampler
    grid = pairs(P, log_q, log_q, label_type)  # two (equal) samplers: every pair
    assert folded.weight.shape == (B, n * (n + 1) // 2) and grid.weight.shape == (B, n, n)
    assert torch.allclose(folded.weight.sum(-1), torch.ones(B, dtype=torch.float64), atol=1e-15)
    log_ratio = torch.log_softmax(theta, -1) - log_mu

    def value_and_grad(pr):
        obj = pairwise_objective(pr, log_ratio, loss, tau)
        return obj.detach().numpy(), torch.autograd.grad(obj.sum(), theta, retain_graph=True)[0].numpy()

    (v_fold, g_fold), (v_grid, g_grid) = value_and_grad(folded), value_and_grad(grid)
    np.testing.assert_allclose(v_fold, v_grid, rtol=1e-13)
    np.testing.assert_allclose(g_fold, g_grid, rtol=1e-11, atol=1e-14)
    assert np.abs(g_grid).max() > 1e-3  # a gradient worth comparing


def test_sampled_pairs_weigh_each_draw_one_over_k():
    P = torch.tensor(random_preference(4, np.random.default_rng(0)))[None].repeat(3, 1, 1)
    log_q = torch.log(torch.full((3, 4), 0.25, dtype=torch.float64))
    pr = pairs(P, log_q, None, "hard", batch=6, generator=torch.Generator().manual_seed(0))
    assert pr.y.shape == pr.y_prime.shape == pr.weight.shape == pr.label.shape == (3, 6)
    assert torch.all(pr.weight == 1 / 6)
    expected = P[torch.arange(3)[:, None], pr.y, pr.y_prime]  # hard label of each drawn pair
    np.testing.assert_array_equal(pr.label.numpy(), np.where(expected == 0.5, 0.5, expected > 0.5))


def test_closed_form_methods_have_no_loss():
    P = torch.tensor(make_game("rps").P)[None]
    with pytest.raises(ValueError, match="closed-form"):
        method_loss(AlgorithmConfig("nash_md", tau=1.0), torch.zeros(1, 3), torch.zeros(1, 3), P)


def test_run_without_pi_star_records_no_kl_to_opt():
    P, mu, _ = game_with_mu("random:4:2")
    eq = solve_equilibrium(P, mu, 0.5)
    cfg = AlgorithmConfig("online_ipo", tau=0.5)
    without = run(cfg, P, mu, steps=5, record_every=5)
    with_star = run(cfg, P, mu, steps=5, record_every=5, pi_star=eq.pi)
    assert "kl_to_opt" not in without.metrics and without.pi_star is None
    assert set(with_star.metrics) - set(without.metrics) == {"kl_to_opt"}
    for name, values in without.metrics.items():  # the other metrics do not depend on pi*
        np.testing.assert_array_equal(values, with_star.metrics[name])
    pi = with_star.final_pi[0]  # KL(pi* || pi) written out here
    assert with_star.metrics["kl_to_opt"][-1, 0] == pytest.approx(np.sum(eq.pi * np.log(eq.pi / pi)),
                                                                   rel=1e-9)


def test_run_result_is_frozen_and_extended_by_copy():
    res = run(AlgorithmConfig("online_ipo", tau=1.0), make_game("rps").P, steps=2, extra={"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.final_pi = None
    with pytest.raises(TypeError):
        res.extra["limit_distance"] = 0.0
    more = res.with_extra(limit_distance=0.25)
    assert dict(more.extra) == {"a": 1, "limit_distance": 0.25} and dict(res.extra) == {"a": 1}
    assert more.final_pi is res.final_pi
    again = dataclasses.replace(res, extra={**res.extra, "b": 2})
    assert dict(again.extra) == {"a": 1, "b": 2}


def test_make_game_returns_a_named_game():
    game = make_game("bt:4:1")
    P, scores = game  # still unpacks
    assert game.P is P and game.scores is scores and scores.shape == (4,)
    assert make_game("rps").scores is None


def test_limit_points_have_their_own_result_types():
    """Eq. 13 points and the RLHF closed form are not equilibria: each has its own type."""
    from tabular import Equilibrium, MixtureFixedPoint, RLHFOptimum, duality_gap, limit_point
    P, mu, scores = game_with_mu("bt:4:2")
    tau, beta = 0.5, 0.25
    assert isinstance(limit_point(AlgorithmConfig("online_ipo", tau=tau), P, mu), Equilibrium)
    point = limit_point(AlgorithmConfig("ipo_md", tau=tau, beta=beta), P, mu)
    assert isinstance(point, MixtureFixedPoint) and (point.tau, point.beta) == (tau, beta)
    mix = point.pi ** (1 - beta) * mu ** beta
    mix /= mix.sum()  # the mixture is the equilibrium at tau / (1 - beta) (Prop. 5.2)
    assert point.mixture_gap == pytest.approx(float(duality_gap(P, mu, tau / (1 - beta), mix)),
                                              abs=1e-14)
    assert point.converged and point.residual <= 1e-12
    offline = limit_point(AlgorithmConfig("offline_ipo", tau=tau), P, mu)
    assert offline.beta == 1.0 and offline.mixture_gap == 0.0
    rl = limit_point(AlgorithmConfig("rl", tau=tau), P, mu, scores=scores)
    assert isinstance(rl, RLHFOptimum)
    assert rl.gap == pytest.approx(float(duality_gap(P, mu, tau, rl.pi)), rel=1e-12) and rl.gap > 1e-6


def test_above_fold_max_actions_one_sampler_takes_the_full_grid(monkeypatch):
    """The fold's margins cost O(n^3) per game: above FOLD_MAX_ACTIONS one sampler gets the grid,
    with the same objective to round-off."""
    import tabular.algorithms as algorithms

    rng = np.random.default_rng(3)
    B, n = 2, 6
    P = torch.tensor(np.stack([random_preference(n, rng) for _ in range(B)]))
    theta = torch.tensor(rng.normal(size=(B, n)))
    log_q, log_ratio = torch.log_softmax(theta, -1), torch.log_softmax(theta, -1) - 0.1
    folded = pairs(P, log_q, None, "soft")
    monkeypatch.setattr(algorithms, "FOLD_MAX_ACTIONS", n - 1)
    grid = pairs(P, log_q, None, "soft")
    assert folded.weight.shape == (B, n * (n + 1) // 2) and grid.weight.shape == (B, n, n)
    a, b = (pairwise_objective(pr, log_ratio, "dpo", 0.5) for pr in (folded, grid))
    assert torch.allclose(a, b, rtol=1e-13, atol=0)
