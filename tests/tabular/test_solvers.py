"""Exact solver: certificates, fixed point, equivariance, the tau = 0 LP, mixture fixed point."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from tabular_helpers import fixed_point_map, payoff, random_preference, random_reference

from tabular import (
    duality_gap,
    exploitability,
    fixed_point_residual,
    make_game,
    mixture_fixed_point,
    solve_equilibrium,
)
from tabular.solvers import duality_gap_closed_form


@st.composite
def games(draw, n_min=2, n_max=30):
    """Valid (P, mu, tau): n in [2, 30], random P and mu, tau log-uniform in [1e-2, 10]."""
    n = draw(st.integers(n_min, n_max))
    seed = draw(st.integers(0, 2**32 - 1))
    spread = draw(st.sampled_from([0.0, 0.5, 2.0]))  # uniform mu, mild, very uneven
    log10_tau = draw(st.floats(-2.0, 1.0))
    rng = np.random.default_rng(seed)
    return random_preference(n, rng), random_reference(n, rng, spread), 10.0 ** log10_tau


def gap_reference(P, mu, tau, pi):
    """SPEC §2 closed form, written out with logsumexp (independent of tabular.solvers)."""
    kl_pi_mu = float(np.sum(pi * (np.log(pi) - np.log(mu))))
    return 2 * (tau * logsumexp(np.log(mu) + P @ pi / tau) + tau * kl_pi_mu) - 1


@settings(max_examples=60, deadline=None)
@given(games())
def test_equilibrium_is_the_fixed_point_with_zero_gap(game):
    P, mu, tau = game
    eq = solve_equilibrium(P, mu, tau)
    assert eq.converged and eq.gap <= 1e-12
    assert abs(eq.pi.sum() - 1) <= 1e-13 and np.all(eq.pi >= 0)
    # Fixed point pi = T(pi), checked in log space with our own T (relative error per action).
    T = fixed_point_map(P, mu, tau, eq.pi)
    np.testing.assert_allclose(eq.pi, T, rtol=1e-9, atol=1e-300)
    # Independent closed-form gap: round-off of O(1) terms cancelling, so ~1e-15 absolute.
    assert abs(gap_reference(P, mu, tau, eq.pi)) <= 1e-12
    assert eq.residual <= 1e-9


@settings(max_examples=30, deadline=None)
@given(games(n_max=12), st.randoms(use_true_random=False))
def test_permuting_actions_permutes_the_solution(game, random):
    P, mu, tau = game
    perm = np.array(random.sample(range(P.shape[0]), P.shape[0]))
    pi = solve_equilibrium(P, mu, tau).pi
    pi_perm = solve_equilibrium(P[np.ix_(perm, perm)], mu[perm], tau).pi
    np.testing.assert_allclose(pi_perm, pi[perm], rtol=1e-9, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(games(n_max=10), st.integers(0, 2**32 - 1))
def test_duality_gap_is_best_response_value_difference(game, seed):
    """gap(pi) = max_a V(a, pi) - min_b V(pi, b), maxima attained at BR(pi) (Gibbs principle):
    evaluated with our own payoff V, and no random policy does better than BR."""
    P, mu, tau = game
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(P.shape[0]))
    br = fixed_point_map(P, mu, tau, pi)
    # b minimising V(pi, b) = 1 - V(b, pi) is also BR(pi) (P + P.T = 1).
    expected = payoff(P, mu, tau, br, pi) - payoff(P, mu, tau, pi, br)
    assert duality_gap(P, mu, tau, pi) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert duality_gap_closed_form(P, mu, tau, pi) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    for _ in range(5):
        a = rng.dirichlet(np.ones(P.shape[0]))
        assert payoff(P, mu, tau, a, pi) <= payoff(P, mu, tau, br, pi) + 1e-12
    assert duality_gap(P, mu, tau, pi) >= 0


def test_gap_vanishes_only_at_the_equilibrium(rng):
    P, mu, tau = random_preference(6, rng), random_reference(6, rng), 0.3
    eq = solve_equilibrium(P, mu, tau)
    moved = eq.pi + 1e-3 * np.array([1, -1, 0, 0, 0, 0])
    assert duality_gap(P, mu, tau, moved) > 1e-8


def test_batched_gap_matches_per_game(rng):
    P = np.stack([random_preference(4, rng) for _ in range(3)])
    mu = np.stack([random_reference(4, rng) for _ in range(3)])
    pi = rng.dirichlet(np.ones(4), size=3)
    batched = duality_gap(P, mu, 0.5, pi)
    single = [duality_gap(P[b], mu[b], 0.5, pi[b]) for b in range(3)]
    np.testing.assert_allclose(batched, single, rtol=1e-14)


@pytest.mark.parametrize("spec", ["bt:20:1", "cyclic:9", "random:25:3", "majority:15:5:2",
                                  "biased_rps"])
@pytest.mark.parametrize("tau", [1e-3, 1e-2, 1.0, 10.0])
def test_every_family_reaches_round_off(spec, tau):
    P = make_game(spec).P
    mu = random_reference(P.shape[0], np.random.default_rng(0), 0.5)
    eq = solve_equilibrium(P, mu, tau)
    assert eq.converged and abs(eq.gap) <= 1e-12  # may be -1e-15: round-off of a zero
    assert fixed_point_residual(P, mu, tau, eq.pi, log_pi=eq.log_pi) <= 1e-8


def test_agrees_with_damped_fixed_point_iteration(rng):
    """An independent solver: pi <- (pi + T(pi)) / 2 converges for large tau (T contracts)."""
    P, mu, tau = random_preference(8, rng), random_reference(8, rng), 5.0
    pi = mu.copy()
    for _ in range(500):
        pi = 0.5 * (pi + fixed_point_map(P, mu, tau, pi))
    np.testing.assert_allclose(solve_equilibrium(P, mu, tau).pi, pi, rtol=1e-12)


def test_two_actions_by_hand():
    """n = 2, mu uniform: pi*(0) / pi*(1) = exp((P pi)_0 - (P pi)_1) / tau) = exp((p - 1/2) / tau)
    (the (p - 1/2)(pi0 + pi1) of the derivation in test_algorithms), so pi*(0) = sigmoid((p-1/2)/tau)."""
    p, tau = 0.8, 0.25
    P = np.array([[0.5, p], [1 - p, 0.5]])
    pi = solve_equilibrium(P, None, tau).pi
    expected = 1 / (1 + np.exp(-(p - 0.5) / tau))
    assert pi[0] == pytest.approx(expected, abs=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["random:1000:0", "bt:1000:0"])
@pytest.mark.parametrize("tau", [1e-3, 1.0])
def test_n_1000(spec, tau):
    P = make_game(spec).P
    eq = solve_equilibrium(P, None, tau)
    assert eq.converged and eq.gap <= 1e-12


def test_non_convergence_warns_and_names_the_remedy():
    P = make_game("random:30:0").P
    with pytest.warns(RuntimeWarning, match="increase max_iter"):
        eq = solve_equilibrium(P, None, 1e-3, max_iter=1)
    assert not eq.converged


def test_solver_validates_its_input():
    with pytest.raises(ValueError, match="tau"):
        solve_equilibrium(np.array([[0.5, 0.6], [0.4, 0.5]]), None, -1.0)
    with pytest.raises(ValueError, match="P \\+ P.T"):
        solve_equilibrium(np.array([[0.5, 0.6], [0.6, 0.5]]), None, 1.0)


# ---------------------------------------------------------------------------------------------
# tau = 0: the zero-sum LP.
# ---------------------------------------------------------------------------------------------
def test_lp_perturbed_rps():
    """P = (A + 3) / 6, A = [[0,-3,3],[3,0,-1],[-3,1,0]]. An interior equilibrium of the symmetric
    zero-sum game with payoff A makes every action indifferent, A pi = 0:
    row 0: -3 p1 + 3 p2 = 0 -> p1 = p2; row 1: 3 p0 - p2 = 0 -> p2 = 3 p0;
    with p0 + p1 + p2 = 1: 7 p0 = 1, so pi = (1, 3, 3) / 7. (Row 2, -3 p0 + p1 = 0, then holds.)
    It is the unique equilibrium: A's null space is one-dimensional."""
    P = make_game("perturbed_rps").P
    eq = solve_equilibrium(P, None, 0.0)
    np.testing.assert_allclose(eq.pi, np.array([1, 3, 3]) / 7, atol=1e-9)
    assert exploitability(P, eq.pi) <= 1e-12 and eq.method == "support" and eq.converged


def test_lp_biased_rps():
    """P = 1/2 + B, B = [[0,-.25,.5],[.25,0,-.05],[-.5,.05,0]]. Indifference B pi = 0:
    row 0: -p1/4 + p2/2 = 0 -> p1 = 2 p2; row 1: p0/4 - p2/20 = 0 -> p2 = 5 p0;
    so pi ∝ (1, 10, 5), pi = (1, 10, 5) / 16 (row 2: -p0/2 + p1/20 = -1/2 + 1/2 = 0).
    Matches OpenSpiel's lp_solver_test.py."""
    P = make_game("biased_rps").P
    eq = solve_equilibrium(P, None, 0.0)
    np.testing.assert_allclose(eq.pi, np.array([1, 10, 5]) / 16, atol=1e-9)
    assert exploitability(P, eq.pi) <= 1e-9


def test_small_tau_approaches_the_lp_solution():
    # perturbed RPS has a unique tau = 0 equilibrium, so pi*_tau -> (1,3,3)/7 as tau -> 0.
    P = make_game("perturbed_rps").P
    pi = solve_equilibrium(P, None, 1e-3).pi
    assert np.abs(pi - np.array([1, 3, 3]) / 7).max() < 1e-2


@settings(max_examples=20, deadline=None)
@given(games(n_max=15))
def test_lp_exploitability(game):
    P, _, _ = game
    eq = solve_equilibrium(P, None, 0.0)
    # Exploitability with our own arithmetic: the best pure reply gains at most 1e-9.
    assert (P @ eq.pi).max() - 0.5 <= 1e-9
    assert abs(eq.pi.sum() - 1) <= 1e-12 and np.all(eq.pi >= 0)


# ---------------------------------------------------------------------------------------------
# Mixture fixed point (SPEC Eq. 13, Prop. 5.2).
# ---------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(games(n_max=12), st.floats(0.0, 1.0))
def test_mixture_fixed_point_solves_its_equation(game, beta):
    """pi ∝ mu exp(P mix_beta(pi) / tau), checked with our own mixture and T."""
    P, mu, tau = game
    pi = mixture_fixed_point(P, mu, tau, beta).pi
    mix = pi ** (1 - beta) * mu ** beta
    mix /= mix.sum()
    np.testing.assert_allclose(pi, fixed_point_map(P, mu, tau, mix), rtol=1e-9)


def test_mixture_fixed_point_endpoints(rng):
    P, mu, tau = random_preference(5, rng), random_reference(5, rng), 0.5
    # beta = 0: online IPO's point pi*. beta = 1: offline IPO's point mu exp(P mu / tau).
    np.testing.assert_allclose(mixture_fixed_point(P, mu, tau, 0.0).pi,
                               solve_equilibrium(P, mu, tau).pi, rtol=1e-12)
    np.testing.assert_allclose(mixture_fixed_point(P, mu, tau, 1.0).pi,
                               fixed_point_map(P, mu, tau, mu), rtol=1e-12)


def test_direct_newton_cut_short_while_converging_goes_on_to_round_off():
    """Regression (found by the thorough property profile): at tau < 1e-2 the direct Newton attempt
    is capped at 30 steps; on this game it met gap_tol there (the gap is quadratic in the residual)
    with a log residual of 2e-7 left, so online IPO's gradient at the returned pi* was 1e-7, not
    round-off. The residual is recomputed here from the fixed-point map written out in the test."""
    from tabular import make_game

    P = make_game("random:24:1").P
    mu = np.array([0.03785722] * 20 + [0.07571445] * 3 + [0.01571217])
    mu /= mu.sum()
    tau = 0.001539926526059492
    eq = solve_equilibrium(P, mu, tau)
    T = fixed_point_map(P, mu, tau, eq.pi)
    assert eq.converged and eq.gap <= 1e-25
    assert np.abs(np.log(T) - eq.log_pi).max() <= 1e-12 and eq.residual <= 1e-12


def test_mixture_fixed_point_at_beta_zero_is_the_equilibrium_itself():
    """Regression (thorough profile): at beta = 0 Eq. 13 is (NE); recomputing pi = T(m) from the
    equilibrium m amplified its round-off by 1/tau (residual 2.7e-11 at tau = 1e-3, rps), so the
    point failed its own 1e-12 certificate."""
    from tabular import make_game, mixture_fixed_point

    P = make_game("rps").P
    mu = np.array([0.35406907, 0.35406907, 0.29186186])
    mu /= mu.sum()
    point = mixture_fixed_point(P, mu, 1e-3, 0.0)
    eq = solve_equilibrium(P, mu, 1e-3)
    assert point.converged and point.residual <= 1e-12
    assert np.array_equal(point.log_pi, eq.log_pi)
