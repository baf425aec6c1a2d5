"""The solver's fast paths (Newton-Krylov, batches, tau = 0 support solve), extreme tau and the
contract on bad options: each fast path against the plain dense-Newton path or the HiGHS LP, and
every answer judged by its own certificate."""

import math
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tabular_helpers import random_preference, random_reference

from tabular import (
    annotator_majority,
    duality_gap,
    exploitability,
    make_game,
    mixture_fixed_point,
    solve_equilibrium,
)
from tabular.solvers import EquilibriumBatch, _solve_zero_sum_lp, solve_zero_sum


@st.composite
def games(draw, n_min=2, n_max=40):
    n = draw(st.integers(n_min, n_max))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([0.0, 0.5, 2.0]))
    tau = 10.0 ** draw(st.floats(-2.0, 1.0))
    return random_preference(n, rng), random_reference(n, rng, spread), tau


# ---------------------------------------------------------------------------------------------
# Fast paths against the plain dense Newton path.
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(games())
def test_newton_krylov_matches_dense_newton(game):
    P, mu, tau = game
    dense = solve_equilibrium(P, mu, tau, linear="dense", fixed_point=False)
    krylov = solve_equilibrium(P, mu, tau, linear="krylov", fixed_point=False)
    assert dense.converged and krylov.converged
    assert krylov.gap <= 1e-12 and float(duality_gap(P, mu, tau, krylov.pi)) <= 1e-12
    np.testing.assert_allclose(krylov.log_pi, dense.log_pi, rtol=0, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 12), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_batch_matches_one_by_one(n, B, seed):
    rng = np.random.default_rng(seed)
    P = np.stack([random_preference(n, rng) for _ in range(B)])
    mu = np.stack([random_reference(n, rng, 0.5) for _ in range(B)])
    tau = 10.0 ** rng.uniform(-2, 1, size=B)
    batch = solve_equilibrium(P, mu, tau)
    assert isinstance(batch, EquilibriumBatch) and len(batch) == B
    assert batch.converged.all() and (batch.gap <= 1e-12).all()
    # Per-game certificates recomputed here, one game at a time.
    for b in range(B):
        assert float(duality_gap(P[b], mu[b], tau[b], batch.pi[b])) <= 1e-12
        one = solve_equilibrium(P[b], mu[b], tau[b], linear="dense", fixed_point=False)
        np.testing.assert_allclose(batch.log_pi[b], one.log_pi, rtol=0, atol=1e-9)
        assert batch[b].gap == batch.gap[b]


def test_batch_with_mixed_tau_including_zero_and_tiny(rng):
    P = np.stack([random_preference(5, rng) for _ in range(4)])
    tau = np.array([0.5, 0.0, 1e-300, 0.05])
    batch = solve_equilibrium(P, None, tau)
    assert batch.converged.all()
    assert batch.method[1] in ("support", "lp+support", "lp")
    assert (P[1] @ batch.pi[1]).max() - 0.5 <= 1e-12  # tau = 0: exploitability
    for b in (0, 2, 3):
        assert float(duality_gap(P[b], None, tau[b], batch.pi[b])) <= 1e-12


def test_batch_rejects_a_tau_of_the_wrong_shape(rng):
    P = np.stack([random_preference(3, rng) for _ in range(2)])
    with pytest.raises(ValueError, match="one entry per game"):
        solve_equilibrium(P, None, np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="tau"):
        solve_equilibrium(P, None, np.array([0.1, -1.0]))


@settings(max_examples=20, deadline=None)
@given(st.integers(3, 40), st.integers(0, 2**32 - 1))
def test_zero_sum_support_solve_is_an_equilibrium_and_matches_the_lp(n, seed):
    """Random games have a unique tau = 0 equilibrium (generically): the fast path and HiGHS must
    give the same point; ours must satisfy the LP conditions to 1e-12."""
    P = random_preference(n, np.random.default_rng(seed))
    eq = solve_zero_sum(P)
    assert eq.pi.min() >= 0 and abs(eq.pi.sum() - 1) <= 1e-12
    assert (P @ eq.pi).max() - 0.5 <= 1e-12
    lp = _solve_zero_sum_lp(P)
    np.testing.assert_allclose(eq.pi, lp.pi, atol=1e-7)


@pytest.mark.parametrize("spec", ["bt:300:0", "majority:300:3:0", "random:120:4"])
def test_zero_sum_families(spec):
    P = make_game(spec).P
    eq = solve_equilibrium(P, None, 0.0)
    assert eq.converged and (P @ eq.pi).max() - 0.5 <= 1e-12
    # tau = 0 has no fixed-point map: the residual is nan and the gap is 2 x the exploitability
    assert math.isnan(eq.residual) and eq.gap == 2 * float(exploitability(P, eq.pi))


# ---------------------------------------------------------------------------------------------
# Extreme tau (issue 8 §3): solve or explain, never numpy's "Singular matrix".
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [1e-8, 1e-10, 1e-13, 1e-30, 1e-300, 5e-324])
@pytest.mark.parametrize("spec", ["bt:6:5", "majority:40:5:3", "random:30:1", "cyclic:7"])
def test_tiny_tau_solves_with_a_certificate(spec, tau):
    P = make_game(spec).P
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no silent inaccuracy either
        eq = solve_equilibrium(P, None, tau)
    assert eq.converged and 0 <= eq.gap <= 1e-12
    assert float(duality_gap(P, None, tau, eq.pi)) == eq.gap
    # As tau -> 0 pi*_tau approaches the tau = 0 Nash set: exploitability O(tau log n).
    assert (P @ eq.pi).max() - 0.5 <= max(1e-12, 50 * tau)


@pytest.mark.parametrize("tau", [1e-30, 1e-300])
def test_tiny_tau_gap_is_not_trivially_small(tau):
    """converged means something at tiny tau: a policy far from equilibrium has gap
    -> 2 exploitability (0.2 here), not 2 tau KL ~ 1e-30."""
    P = make_game("majority:40:5:3").P
    uniform = np.full(40, 1 / 40)
    expl = (P @ uniform).max() - 0.5
    assert expl > 0.05
    assert float(duality_gap(P, None, tau, uniform)) == pytest.approx(2 * expl, rel=1e-9)


def test_tiny_tau_agrees_with_small_tau_solution():
    """pi*_tau is continuous in tau: at 1e-10 it equals the 1e-7 point within O(1e-7)."""
    P = make_game("random:30:1").P
    a = solve_equilibrium(P, None, 1e-7).pi
    b = solve_equilibrium(P, None, 1e-10).pi
    assert np.abs(a - b).max() <= 1e-5


# ---------------------------------------------------------------------------------------------
# Options that could make the solver loop for ever, and bad certificates' inputs (issue 8 §3, §5).
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"tau_path_ratio": 1.0}, "tau_path_ratio"),
    ({"tau_path_ratio": 2.0}, "tau_path_ratio"),
    ({"tau_path_ratio": float("nan")}, "tau_path_ratio"),
    ({"tau_path_ratio": 0.0}, "tau_path_ratio"),
    ({"tau_path_ratio": 1 - 1e-9}, "continuation stages"),
    ({"tau_start": float("nan")}, "tau_start"),
    ({"tau_start": 0.0}, "tau_start"),
    ({"tau_start": float("inf")}, "tau_start"),
    ({"max_iter": 0}, "max_iter"),
    ({"max_iter": 2.5}, "max_iter"),
    ({"gap_tol": -1.0}, "gap_tol"),
    ({"linear": "cholesky"}, "linear"),
])
def test_bad_solver_options_raise_one_line(kwargs, match):
    P = annotator_majority(40, 5, seed=3)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match) as err:
        solve_equilibrium(P, None, 1e-4, max_iter=kwargs.pop("max_iter", 3), **kwargs)
    assert "\n" not in str(err.value)
    assert time.perf_counter() - start < 5.0  # raised up front, not after a long loop


def test_issue_8_continuation_example_returns():
    """annotator_majority(40, 5, seed=3), tau 1e-4, max_iter 3: the path is bounded, so it returns
    (here the start from the tau = 0 solution converges) instead of looping."""
    P = annotator_majority(40, 5, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eq = solve_equilibrium(P, None, 1e-4, max_iter=3, tau_path_ratio=0.5)
    assert eq.gap == float(duality_gap(P, None, 1e-4, eq.pi))
    assert eq.converged == (eq.gap <= 1e-12)


@pytest.mark.parametrize("pi, match", [
    ([0.5, 0.6, 0.0], "sum to 1"),
    ([1.2, -0.2, 0.0], "min entry"),
    ([np.nan, 0.5, 0.5], "non-finite"),
    ([0.5, 0.5], "3 entries"),
])
def test_duality_gap_rejects_a_policy_off_the_simplex(pi, match):
    P = make_game("rps").P
    with pytest.raises(ValueError, match=match):
        duality_gap(P, None, 0.1, np.array(pi))


def test_duality_gap_rejects_bad_tau_and_bad_P():
    P = make_game("rps").P
    pi = np.full(3, 1 / 3)
    with pytest.raises(ValueError, match="tau"):
        duality_gap(P, None, -0.1, pi)
    with pytest.raises(ValueError, match="tau"):
        duality_gap(P, None, float("nan"), pi)
    with pytest.raises(ValueError, match="P \\+ P.T"):
        duality_gap(np.full((3, 3), 0.9), None, 0.1, pi)
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        duality_gap(P * 3 - 1, None, 0.1, pi)


@pytest.mark.parametrize("beta", [-0.5, 2.0, float("nan")])
def test_mixture_fixed_point_rejects_beta_outside_unit_interval(beta):
    P = make_game("rps").P
    with pytest.raises(ValueError, match="beta"):
        mixture_fixed_point(P, None, 0.1, beta)


@pytest.mark.slow
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_n_2000_krylov(tau):
    P = make_game("random:2000:0").P
    eq = solve_equilibrium(P, None, tau, fixed_point=False)  # the Krylov path itself
    assert eq.converged and eq.method == "newton-krylov"
    assert float(duality_gap(P, None, tau, eq.pi)) <= 1e-12


def test_batch_rejects_mu_of_the_wrong_shape(rng):
    P = np.stack([random_preference(3, rng) for _ in range(2)])
    with pytest.raises(ValueError, match="mu must have shape"):
        solve_equilibrium(P, np.full((3, 3), 1 / 3), 0.1)
    # One (n, n) P with a (B, n) mu is a batch of B games sharing P (issue 22: per-prompt games);
    # its tau must then be a scalar or (B,).
    with pytest.raises(ValueError, match="one entry per game"):
        solve_equilibrium(P[0], np.full((2, 3), 1 / 3), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="mu must have shape"):
        solve_equilibrium(P[0], np.full((2, 4), 1 / 4), 0.1)


def test_cli_solves_tau_1e_300(tmp_path, capsys):
    """Issue 8 §3: `tabular solve --tau 1e-300` used to end in "error: Singular matrix"."""
    import json

    from tabular.cli import main

    P = make_game("bt:6:5").P
    path = tmp_path / "P.npy"
    np.save(path, P)
    assert main(["solve", "--matrix", str(path), "--tau", "1e-300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converged"] and out["gap"] <= 1e-12
    assert float(duality_gap(P, None, 1e-300, np.array(out["pi"]))) <= 1e-12
