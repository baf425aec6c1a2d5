"""The contraction-aware fixed-point stage (issue 22) and the batch contract (issues 19, 22):
every answer against the Newton-only solver and judged by its own certificate; the rate estimate
against the Jacobian's spectral radius; per-prompt batches with a shared P; bounded memory;
one-line refusals that name the bad game."""

import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tabular_helpers import random_preference, random_reference

import tabular.fixed_point as fixed_point_module
from tabular import (
    EquilibriumBatch,
    cyclic,
    duality_gap,
    fixed_point_residual,
    random_game,
    rock_paper_scissors,
    solve_equilibrium,
)
from tabular.fixed_point import FP_MIN_ITER, FP_WINDOW, anderson_fixed_point


@st.composite
def games(draw, n_min=2, n_max=40, log10_tau=(-2.0, 1.0)):
    n = draw(st.integers(n_min, n_max))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([0.0, 0.5, 2.0]))
    tau = 10.0 ** draw(st.floats(*log10_tau))
    return random_preference(n, rng), random_reference(n, rng, spread), tau


# ---------------------------------------------------------------------------------------------
# One game: the stage's answer is Newton's answer, with the same certificates.
# ---------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(games())
def test_fixed_point_stage_agrees_with_newton_only(game):
    P, mu, tau = game
    ours = solve_equilibrium(P, mu, tau)
    newton = solve_equilibrium(P, mu, tau, fixed_point=False)
    assert ours.converged and newton.converged
    assert float(duality_gap(P, mu, tau, ours.pi)) <= 1e-12
    assert float(fixed_point_residual(P, mu, tau, ours.pi, log_pi=ours.log_pi)) <= 1e-10
    np.testing.assert_allclose(ours.log_pi, newton.log_pi, rtol=0, atol=1e-9)
    assert newton.fixed_point_iterations == 0
    if ours.method == "fixed-point":  # no Newton step was taken
        assert ours.iterations == ours.fixed_point_iterations > 0


def test_a_contracting_game_needs_no_newton_step():
    # random_game at tau = 1 contracts by ~0.02 per iteration (measured): ~10 products with P.
    P = random_game(300, 0)
    mu = random_reference(300, np.random.default_rng(0), 0.5)
    eq = solve_equilibrium(P, mu, 1.0)
    assert eq.method == "fixed-point" and eq.converged
    assert 0 < eq.fixed_point_iterations == eq.iterations <= 20
    assert float(duality_gap(P, mu, 1.0, eq.pi)) <= 1e-25  # round-off, not merely gap_tol
    assert eq.residual <= 1e-13


def test_a_non_contracting_game_is_handed_to_newton_early():
    # cyclic(50) at tau = 0.01: T is far from a contraction (the rate estimate exceeds 1).
    P = cyclic(50)
    mu = random_reference(50, np.random.default_rng(1), 0.5)
    eq = solve_equilibrium(P, mu, 0.01)
    assert eq.method.startswith("newton") and eq.converged
    # Bounded waste: a plain check, then Anderson judged after FP_MIN_ITER, rounded up to checks.
    assert 1 <= eq.fixed_point_iterations <= FP_WINDOW * (2 + FP_MIN_ITER // FP_WINDOW + 1)
    assert eq.iterations > eq.fixed_point_iterations
    assert float(duality_gap(P, mu, 0.01, eq.pi)) <= 1e-12


def test_no_anderson_rescue_where_newton_is_dense():
    """Dense LU (n <= 250) makes Newton cheap: a game whose plain iteration makes no progress
    goes to Newton at the first rate check; with GMRES (linear="krylov") Anderson is tried."""
    P = cyclic(50)
    mu = random_reference(50, np.random.default_rng(1), 0.5)
    dense = solve_equilibrium(P, mu, 0.01)
    krylov = solve_equilibrium(P, mu, 0.01, linear="krylov")
    assert dense.fixed_point_iterations == FP_WINDOW + 1
    assert krylov.fixed_point_iterations > FP_WINDOW + 1
    np.testing.assert_allclose(dense.log_pi, krylov.log_pi, rtol=0, atol=1e-9)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_rate_estimate_is_the_spectral_radius_of_the_map(tau):
    """RPS with uniform mu: pi* = uniform and the Jacobian of z -> log T(exp z) there is
    ``(I - 11^T/3) A (I/3 - 11^T/9) / tau = A / (3 tau)`` on the centred subspace (A = P - 1/2
    has eigenvalues 0, +-i sqrt(3) / 2), so plain iteration contracts by
    ``|lambda| = (sqrt(3) / 2) / (3 tau) = 1 / (2 sqrt(3) tau)`` per step."""
    P = rock_paper_scissors()
    lam = 1.0 / (2.0 * np.sqrt(3.0) * tau)
    z0 = np.log(np.array([[0.5, 0.3, 0.2]]))
    run = anderson_fixed_point(P, np.log(np.full((1, 3), 1 / 3)), np.array([tau]), z0, depth=0)
    assert abs(run.rate[0] - lam) <= 0.1 * lam
    # tau = 0.5: ~50 iterations would remain, more than Newton costs: handed over, not converged.
    assert run.converged[0] == (tau > 0.5)


def test_the_stage_reports_what_it_did_not_reach():
    """Twin of the above: cut at 3 iterations, a contracting game is not 'converged'."""
    P = random_game(50, 0)
    log_mu = np.log(np.full((1, 50), 1 / 50))
    z0 = log_mu + np.linspace(0, 1, 50)
    z0 -= np.log(np.exp(z0).sum())
    run = anderson_fixed_point(P, log_mu, np.array([1.0]), z0, max_iter=3)
    assert not run.converged[0] and run.iterations[0] == 3 and run.residual[0] > 1e-10
    full = anderson_fixed_point(P, log_mu, np.array([1.0]), z0)
    assert full.converged[0] and full.residual[0] <= 1e-14


def _skew(n, seed):
    G = np.random.default_rng(seed).normal(size=(n, n))
    return 1.0 / (1.0 + np.exp(-(G - G.T)))


@pytest.mark.parametrize("n", [3, 30, 200, 600])
def test_the_one_game_loop_is_the_batched_loop_bit_for_bit(n, monkeypatch):
    """One game's plain phase runs in ``_plain_one_game`` (scalar bookkeeping, issue 22) and
    hands over to the batched loop's Anderson mixing: every field of the run, down to the last
    bit, must be what the batched loop alone gives, whichever way the game leaves (done, handed
    to Newton, handed to Anderson; all three are asserted to occur)."""
    exits = []
    one_game = fixed_point_module._plain_one_game

    def spy(*args):
        out = one_game(*args)
        exits.append(out[1])
        return out

    monkeypatch.setattr(fixed_point_module, "_plain_one_game", spy)
    rng = np.random.default_rng(n)
    for P in (random_game(n, 0), _skew(n, 1), cyclic(n)):
        log_mu = np.log(random_reference(n, rng, 0.5))[None]
        for tau in (1.0, 0.3, 0.1, 0.03, 0.01):
            for rescue in (True, False):
                args = (P, log_mu, np.array([tau]), log_mu.copy())
                fast = anderson_fixed_point(*args, rescue=rescue)
                monkeypatch.setattr(fixed_point_module, "ONE_GAME_LOOP", False)
                batched = anderson_fixed_point(*args, rescue=rescue)
                monkeypatch.setattr(fixed_point_module, "ONE_GAME_LOOP", True)
                for field in ("z", "residual", "iterations", "converged", "rate",
                              "start_residual", "P_pi"):
                    np.testing.assert_array_equal(getattr(fast, field), getattr(batched, field),
                                                  err_msg=f"{field}, tau {tau}, rescue {rescue}")
    if n >= 30:
        assert {"done", "slow", "mix"} <= set(exits)


def test_check_game_false_skips_only_the_preference_check():
    """``check_game=False`` (issue 22): the same answer on a valid game; a P that is no
    preference matrix is then not refused; shapes, mu and tau are checked regardless."""
    P = random_game(40, 0)
    mu = random_reference(40, np.random.default_rng(0), 0.5)
    for tau in (1.0, 0.01):
        a, b = solve_equilibrium(P, mu, tau), solve_equilibrium(P, mu, tau, check_game=False)
        np.testing.assert_array_equal(a.log_pi, b.log_pi)
    stack = np.stack([P, random_game(40, 1)])
    a = solve_equilibrium(stack, mu, 0.1)
    b = solve_equilibrium(stack, mu, 0.1, check_game=False)
    np.testing.assert_array_equal(a.log_pi, b.log_pi)
    bad = P.copy()
    bad[3, 7] += 1e-6
    with pytest.raises(ValueError, match=r"P \+ P\.T must equal 1"):
        solve_equilibrium(bad, mu, 0.1)
    with pytest.raises(ValueError, match=r"P \+ P\.T must equal 1"):
        solve_equilibrium(np.stack([P, bad]), mu, 0.1)
    assert solve_equilibrium(bad, mu, 0.1, check_game=False).pi.shape == (40,)
    for args, match in (((P[:, :5], mu, 0.1), "square"), ((P, mu[:5], 0.1), "mu"),
                        ((P, -mu, 0.1), "mu"), ((P, mu, -1.0), "tau")):
        with pytest.raises(ValueError, match=match):
            solve_equilibrium(*args, check_game=False)
    with pytest.raises(ValueError, match="check_game must be True or False"):
        solve_equilibrium(P, mu, 0.1, check_game=None)


# ---------------------------------------------------------------------------------------------
# Batches: per-game treatment, a P shared by the games, chunks, bounded memory.
# ---------------------------------------------------------------------------------------------
def test_batch_treats_each_game_on_its_own():
    rng = np.random.default_rng(3)
    P = np.stack([random_game(40, 1), cyclic(40), random_game(40, 2)])
    mu = np.stack([random_reference(40, rng, 0.5) for _ in range(3)])
    tau = np.array([1.0, 0.01, 0.0])
    batch = solve_equilibrium(P, mu, tau)
    assert batch.method[0] == "fixed-point" and batch.method[1] == "newton-batch"
    assert batch.method[2] in ("support", "lp+support", "lp")
    assert batch.fixed_point_iterations[0] == batch.iterations[0] > 0
    assert 0 < batch.fixed_point_iterations[1] < batch.iterations[1]
    assert batch.converged.all()
    for b in range(2):
        one = solve_equilibrium(P[b], mu[b], tau[b], fixed_point=False)
        np.testing.assert_allclose(batch.log_pi[b], one.log_pi, rtol=0, atol=1e-9)
        assert float(duality_gap(P[b], mu[b], tau[b], batch.pi[b])) <= 1e-12


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 30), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_shared_P_batch_matches_stack_chunks_and_one_by_one(n, B, seed):
    rng = np.random.default_rng(seed)
    P = random_preference(n, rng)
    mu = np.stack([random_reference(n, rng, 1.0) for _ in range(B)])
    tau = 10.0 ** rng.uniform(-2, 1, size=B)
    shared = solve_equilibrium(P, mu, tau)
    assert isinstance(shared, EquilibriumBatch) and len(shared) == B
    assert shared.converged.all()
    stacked = solve_equilibrium(np.stack([P] * B), mu, tau)
    chunked = solve_equilibrium(P, mu, tau, chunk=2)
    for b in range(B):
        assert float(duality_gap(P, mu[b], tau[b], shared.pi[b])) <= 1e-12
        one = solve_equilibrium(P, mu[b], tau[b], fixed_point=False)
        np.testing.assert_allclose(shared.log_pi[b], one.log_pi, rtol=0, atol=1e-9)
    np.testing.assert_allclose(stacked.log_pi, shared.log_pi, rtol=0, atol=1e-9)
    np.testing.assert_allclose(chunked.log_pi, shared.log_pi, rtol=0, atol=1e-9)


def test_a_broadcast_stack_is_solved_as_one_shared_P_in_bounded_memory():
    B, n = 2000, 100
    P = random_game(n, 0)
    view = np.broadcast_to(P, (B, n, n))  # 160 MB if it were materialised
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(B, n))
    mu = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    tracemalloc.start()
    try:
        batch = solve_equilibrium(view, mu, 0.1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert batch.converged.all() and batch.gap.max() <= 1e-12
    assert peak < view.size * 8 / 2  # half the materialised stack (measured ~49 MB)
    for b in (0, B - 1):
        assert float(duality_gap(P, mu[b], 0.1, batch.pi[b])) <= 1e-12


def test_chunk_bounds_the_games_solved_together():
    P = np.stack([random_game(12, s) for s in range(7)])
    a = solve_equilibrium(P, None, 0.05, chunk=3)
    b = solve_equilibrium(P, None, 0.05)
    np.testing.assert_allclose(a.log_pi, b.log_pi, rtol=0, atol=1e-12)
    for chunk in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="chunk must be an integer"):
            solve_equilibrium(P, None, 0.1, chunk=chunk)


def test_batch_memory_cap_refuses_in_one_line_with_the_estimate():
    """Issue 19 item 14: 10^7 games of 100 actions would need ~15 GiB of results alone."""
    view = np.broadcast_to(random_game(100, 0), (10**7, 100, 100))
    with pytest.raises(ValueError, match=r"needs about 15\.\d* GiB") as info:
        solve_equilibrium(view, None, 0.1)
    assert "\n" not in str(info.value)


def test_a_stack_with_one_bad_game_names_it():
    rng = np.random.default_rng(0)
    P = np.stack([random_preference(6, rng) for _ in range(5)])
    P[3, 0, 1] += 0.1  # P + P^T != 1 in game 3 only
    with pytest.raises(ValueError, match=r"game 3 of 5: P \+ P\.T must equal 1"):
        solve_equilibrium(P, None, 0.1)
    P[3, 0, 1] -= 0.1
    mu = np.stack([random_reference(6, rng) for _ in range(5)])
    mu[2] = [0.5, 0.5, 0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"game 2 of 5: mu must have full support"):
        solve_equilibrium(P, mu, 0.1)
    with pytest.raises(ValueError, match=r"game 4 of 5: P entries must lie in \[0, 1\]"):
        P[4] = np.where(np.eye(6, dtype=bool), 0.5, 2.0)
        solve_equilibrium(P, None, 0.1)


@pytest.mark.parametrize("where", [(5, 290), (290, 5), (150, 151), (299, 299), (0, 0)])
@pytest.mark.parametrize("value,match", [
    (np.nan, "non-finite"), (np.inf, "non-finite"), (-np.inf, "non-finite"),
    (1.5, r"must lie in \[0, 1\]"), (-0.25, r"must lie in \[0, 1\]"),
    ("shift", r"P \+ P\.T must equal 1")])
def test_the_tiled_input_check_sees_every_entry(where, value, match):
    """n = 300 spans several tiles of the one-pass check (tabular.game._range_and_asymmetry):
    a bad entry anywhere, on or off the diagonal, is reported as before."""
    P = random_game(300, 0)
    if value == "shift":
        P[where] += 1e-9 if P[where] < 0.5 else -1e-9
    else:
        P[where] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            solve_equilibrium(P, None, 0.1)
        with pytest.raises(ValueError, match=match):
            solve_equilibrium(np.stack([random_game(300, 1), P]), None, 0.1)


def test_complex_input_is_refused_in_one_line():
    """Issue 19 item 15: no ComplexWarning and silently dropped imaginary part."""
    P = random_game(4, 0)
    mu = np.full(4, 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for args in ((P + 0.1j, None, 0.1), (P.astype(complex), None, 0.1),
                     (P, mu.astype(complex), 0.1), (np.stack([P, P]) + 0j, None, 0.1)):
            with pytest.raises(ValueError, match="must be real") as info:
                solve_equilibrium(*args)
            assert "\n" not in str(info.value)
        with pytest.raises(ValueError, match="must be real"):
            duality_gap(P, None, 0.1, mu + 0j)


def test_fixed_point_option_must_be_a_bool():
    with pytest.raises(ValueError, match="fixed_point must be True or False"):
        solve_equilibrium(random_game(3, 0), None, 0.1, fixed_point="yes")
