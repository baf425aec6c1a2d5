"""The equivalence experiment (SPEC §5.1, §5.5): ``python -m tabular equivalence``.

On a suite of games x tau, with a reference ``mu = softmax(N(0, 1/4))``:

1. exact online IPO (SGD, run until pi stops moving) reaches the equilibrium pi* of
   ``pi* ∝ mu exp(P pi* / tau)`` (SPEC §5.1) to ``tol``;
2. Nash-MD with the decaying step ``2 / (tau (t + 2))`` stays within Munos et al.'s bound
   ``KL(pi* || pi_T) <= 8 / (tau^2 (T + 1))``, its KL non-increasing up to round-off;
3. Nash-MD with a constant step eta reaches the IPO-MD point with ``beta = eta tau`` (SPEC §5.5,
   Eq. 13) to ``tol``.

Sampled online IPO and exact IPO-MD are run too; their distances are reported, not checked.

:func:`equivalence_suite` returns one dict per (game, tau) with the max-abs distances, the bound
ratio and the pass/fail flags; :func:`equivalence_table` renders them. The CLI
(:mod:`tabular.cli`) only parses the flags and prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opo_toolkit.cliargs import flag

from .algorithms import AlgorithmConfig, make_state, run, step
from .game import make_game, validate_eta, validate_reference, validate_seed, validate_tau
from .limits import mixture_fixed_point
from .solvers import solve_equilibrium

__all__ = ["EquivalenceConfig", "equivalence_case", "equivalence_suite", "equivalence_table",
           "max_abs_difference"]


@dataclass(frozen=True)
class EquivalenceConfig:
    """``equivalence``: online IPO, IPO-MD and Nash-MD against the exact points (SPEC §5.1, §5.5)."""

    games: str = flag("comma-separated game specs of the suite",
                      "bt:5,rps,cyclic:5,perturbed_rps,random:8,majority:7")
    taus: str = flag("comma-separated tau values", "1,0.5,0.2")
    steps: int = flag("maximum steps of exact online IPO and IPO-MD (SGD; they converge linearly "
                      "and stop once pi moves by <= 1e-15 over 50 steps)", 3000)
    lr: float = flag("SGD learning rate of online IPO and IPO-MD, one value for every tau of the "
                     "suite. Stability needs lr < 2 Re(l)/|l|^2 over the eigenvalues l of the "
                     "linearised update, whose rotational part grows like 1/tau on intransitive "
                     "games: lr 0.5 oscillates on rock-paper-scissors at tau = 0.2", 0.25)
    nash_md_steps: int = flag("steps of Nash-MD with the decaying step 2/(tau(t+2)) (rate 1/T)", 2000)
    eta: float = flag("constant Nash-MD step; its limit is the IPO-MD point with beta = eta tau",
                      0.25)
    sampled_steps: int = flag("steps of sampled online IPO", 200)
    batch: int = flag("pairs per step of sampled online IPO", 2048)
    sampled_seeds: int = flag("seeds of sampled online IPO (one batch); distances are averaged", 4)
    mu_seed: int = flag("seed of the reference mu = softmax(N(0, 1/4)); -1 for uniform mu "
                        "(uniform mu makes rps/cyclic trivial: pi* = mu)", 0)
    tol: float = flag("max-abs tolerance of the exact limits", 1e-10)
    json: bool = flag("print the results as JSON on stdout instead of a table", False)


def _parse_list(text: str, cast, what: str):
    try:
        values = [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be a comma-separated list, got {text!r}") from None
    if not values:
        raise ValueError(f"{what} is empty")
    return values


def _reference_mu(n: int, mu_seed: int) -> np.ndarray:
    if mu_seed < 0:
        return np.full(n, 1.0 / n)
    logits = np.random.default_rng(mu_seed).normal(0.0, 0.5, size=n)
    mu = np.exp(logits - logits.max())
    return validate_reference(mu / mu.sum(), n)


def max_abs_difference(a, b) -> float:
    """``max |a - b|`` over every entry (a distance between policies, or batches of them)."""
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def _run_to_limit(algo: AlgorithmConfig, P, mu, max_steps: int, check_every: int = 50,
                  still: float = 1e-15):
    """Iterate an exact method until ``pi`` stops moving (max-abs change over ``check_every``
    steps <= ``still``) or ``max_steps``; returns ``(pi, steps)``. Stopping on stillness, not on
    the distance to the expected limit, keeps the check independent of the answer."""
    state = make_state(algo, P, mu)
    previous = np.exp(state.log_pi.numpy()[0])
    while state.t < max_steps:
        for _ in range(min(check_every, max_steps - state.t)):
            step(state)
        pi = np.exp(state.log_pi.numpy()[0])
        if np.abs(pi - previous).max() <= still:
            break
        previous = pi
    return np.exp(state.log_pi.numpy()[0]), state.t


def equivalence_case(P, mu, tau: float, cfg: EquivalenceConfig) -> dict:
    """All methods on one game at one tau; distances, bound ratios and pass/fail flags."""
    eq = solve_equilibrium(P, mu, tau)
    beta = cfg.eta * tau
    md_point = mixture_fixed_point(P, mu, tau, beta)

    ipo, ipo_steps = _run_to_limit(AlgorithmConfig("online_ipo", tau=tau, lr=cfg.lr), P, mu,
                                   cfg.steps)
    n = P.shape[0]
    sampled = run(AlgorithmConfig("online_ipo", tau=tau, lr=cfg.lr, sampled=True,
                                  batch=cfg.batch),
                  np.repeat(P[None], cfg.sampled_seeds, 0), mu, steps=cfg.sampled_steps,
                  record_every=cfg.sampled_steps, pi_star=eq.pi, seed=0).final_pi  # (S, n)
    decay = run(AlgorithmConfig("nash_md", tau=tau), P, mu, steps=cfg.nash_md_steps,
                record_every=max(1, cfg.nash_md_steps // 20), pi_star=eq.pi)
    # Constant eta contracts KL by about (1 - eta tau) per step: run to well below round-off.
    const_steps = int(math.ceil(40.0 / beta))
    nmd_eta = run(AlgorithmConfig("nash_md", tau=tau, eta=cfg.eta), P, mu, steps=const_steps,
                  record_every=const_steps, pi_star=eq.pi).final_pi[0]
    ipo_md, ipo_md_steps = _run_to_limit(AlgorithmConfig("ipo_md", tau=tau, beta=beta, lr=cfg.lr),
                                         P, mu, cfg.steps)

    kl_traj = decay.metrics["kl_to_opt"][:, 0]
    bound = 8.0 / (tau ** 2 * (decay.steps + 1))
    # Round-off allowance for "KL non-increasing": KL is a sum of n terms of size O(1).
    increase = float(np.diff(kl_traj).max()) if kl_traj.size > 1 else 0.0
    finals = {"online_ipo": ipo, "online_ipo_sampled": sampled.mean(0), "nash_md_decay":
              decay.final_pi[0], "nash_md_eta": nmd_eta, "ipo_md": ipo_md}
    case = {
        "n": n, "tau": tau, "pi_star_gap": eq.gap, "beta": beta,
        "dist_to_pi_star": {k: max_abs_difference(v, eq.pi) for k, v in finals.items()},
        "dist_to_ipo_md_point": {k: max_abs_difference(v, md_point.pi) for k, v in finals.items()},
        "pairwise": {f"{a}|{b}": max_abs_difference(finals[a], finals[b])
                     for i, a in enumerate(finals) for b in list(finals)[i + 1:]},
        "online_ipo_sampled_dist_per_seed_mean": float(np.abs(sampled - eq.pi).max(1).mean()),
        "nash_md_decay_kl_final": float(kl_traj[-1]),
        "nash_md_decay_bound_ratio_max": float((kl_traj / bound).max()),
        "nash_md_decay_kl_max_increase": increase,
        "nash_md_eta_steps": const_steps, "online_ipo_steps": ipo_steps,
        "ipo_md_steps": ipo_md_steps,
    }
    case["checks"] = {
        "online_ipo_reaches_pi_star": case["dist_to_pi_star"]["online_ipo"] <= cfg.tol,
        "nash_md_decay_within_bound": bool(np.all(kl_traj <= bound)),
        "nash_md_decay_approaches_pi_star": increase <= 1e-12 * max(1.0, float(kl_traj[0]))
                                            and kl_traj[-1] < kl_traj[0] + 1e-15,
        "nash_md_eta_reaches_ipo_md_point":
            case["dist_to_ipo_md_point"]["nash_md_eta"] <= cfg.tol,
    }
    case["checks"] = {k: bool(v) for k, v in case["checks"].items()}
    case["passed"] = all(case["checks"].values())
    return case


def equivalence_suite(cfg: EquivalenceConfig) -> list[dict]:
    taus = [validate_tau(t) for t in _parse_list(cfg.taus, float, "taus")]
    specs = _parse_list(cfg.games, str, "games")
    for name, value in (("steps", cfg.steps), ("nash-md-steps", cfg.nash_md_steps),
                        ("sampled-steps", cfg.sampled_steps), ("batch", cfg.batch),
                        ("sampled-seeds", cfg.sampled_seeds)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    validate_eta(cfg.eta)
    if cfg.mu_seed != -1:
        validate_seed(cfg.mu_seed, "mu-seed (or -1)")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"lr > 0 required, got lr = {cfg.lr}")
    if not cfg.tol > 0:
        raise ValueError(f"tol must be > 0, got {cfg.tol}")
    for tau in taus:
        if cfg.eta * tau > 1:
            raise ValueError(f"Nash-MD needs eta * tau <= 1, got eta = {cfg.eta}, tau = {tau}")
        if 40.0 / (cfg.eta * tau) > 10**7:  # the constant-eta run takes ceil(40 / (eta tau)) steps
            raise ValueError(f"constant-eta Nash-MD would need {40.0 / (cfg.eta * tau):.3g} steps at "
                             f"eta = {cfg.eta}, tau = {tau} (limit 1e7); raise --eta or tau")
    games = [(spec, make_game(spec).P) for spec in specs]  # all validated before any run
    cases = []
    for spec, P in games:
        mu = _reference_mu(P.shape[0], cfg.mu_seed)
        for tau in taus:
            cases.append({"game": spec} | equivalence_case(P, mu, tau, cfg))
    return cases


def equivalence_table(cases) -> str:
    """The printed table of :func:`equivalence_suite`'s cases: distances to pi*, then to IPO-MD*."""
    cols = ("online_ipo", "online_ipo_sampled", "nash_md_decay", "nash_md_eta", "ipo_md")
    head = (f"{'game':<14} {'tau':>5} | "
            + " ".join(f"{c:>18}" for c in cols)
            + f" | {'|NMD_eta-IPOMD*|':>16} {'|IPOMD-IPOMD*|':>14} {'KL/bound':>9} {'ok':>3}")
    lines = [head, "-" * len(head)]
    for c in cases:
        d = c["dist_to_pi_star"]
        lines.append(
            f"{c['game']:<14} {c['tau']:>5g} | "
            + " ".join(f"{d[k]:18.2e}" for k in cols)
            + f" | {c['dist_to_ipo_md_point']['nash_md_eta']:16.2e} "
              f"{c['dist_to_ipo_md_point']['ipo_md']:14.2e} "
              f"{c['nash_md_decay_bound_ratio_max']:9.1e} {'yes' if c['passed'] else 'NO':>3}")
    return "\n".join(lines)
