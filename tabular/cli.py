"""Command line for the tabular sandbox: ``python -m tabular solve|run|equivalence``.

- ``solve``: the exact equilibrium of a game read from a file, with its certificate.
- ``run``: several algorithms on one game family, seeds as a batch axis (one vectorised run per
  algorithm); writes ``DIR/metrics.csv`` and ``DIR/config.json`` and prints a summary table.
- ``equivalence``: checks SPEC §5.1 / §5.5 numerically on a suite of games x tau and exits 1 when
  a check fails.

Every stage's flags come from its dataclass (:class:`SolveConfig`, :class:`RunConfig`,
:class:`EquivalenceConfig`); the resolved dataclass is what ``config.json`` / ``--json`` record.
A usage error is one line ``error: ...`` on stderr and exit code 2, raised before anything is
written.

``metrics.csv`` is in long format, one row per (algorithm, seed, step, metric):
``algorithm,form,game,seed,step,metric,value`` with ``form`` in {exact, sampled} and ``metric`` in
{kl_to_opt, gap, winrate_vs_mu, kl_to_ref, loss} (see :mod:`tabular.metrics`; ``loss`` is empty
(nan) for the mirror-descent methods, which have none). Long format keeps one schema whatever
metrics are added and loads directly into a pandas pivot.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .algorithms import AlgorithmConfig, make_state, run, step
from .files import atomic_write_json, atomic_write_text, check_output_dir, package_versions
from .game import (GAME_FAMILIES, check_allocation, load_matrix, load_vector, make_game,
                   validate_beta, validate_eta, validate_reference, validate_seed, validate_tau)
from .losses import LABEL_TYPES
from .methods import METHODS
from .solvers import mixture_fixed_point, solve_equilibrium

__all__ = ["SolveConfig", "RunConfig", "EquivalenceConfig", "build_parser", "main",
           "equivalence_suite"]

METRICS = ("kl_to_opt", "gap", "winrate_vs_mu", "kl_to_ref", "loss")


# --------------------------------------------------------------------------------------------
# Stage configs: one dataclass each; the flags are generated from the fields.
# --------------------------------------------------------------------------------------------
def _opt(help: str, default=MISSING, **kw):
    """A dataclass field whose ``help`` becomes the flag's help text."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class SolveConfig:
    """``solve``: the equilibrium ``pi* ∝ mu exp(P pi* / tau)`` of one game, with its certificate
    (duality gap, fixed-point residual; for tau = 0 the residual is the exploitability). Exit code
    0 when converged (gap <= 1e-12, or exploitability <= 1e-9 for tau = 0), 1 otherwise."""

    matrix: str = _opt("preference matrix P (.npy, .csv or .json; JSON may be {'P': [[...]]})")
    tau: float = _opt("KL-regularisation strength; 0 solves the unregularised zero-sum LP")
    mu: str | None = _opt("reference policy mu (.npy/.csv/.json); default uniform", None)
    json: bool = _opt("print the result as one JSON object on stdout", False)


@dataclass(frozen=True)
class RunConfig:
    """``run``: algorithms on one game, ``seeds`` runs each as one batch."""

    algorithms: str = _opt(f"comma-separated list from: {', '.join(METHODS)}")
    game: str = _opt("game FAMILY[:ARGS]: " + "; ".join(GAME_FAMILIES.values()))
    tau: float = _opt("KL-regularisation strength (> 0)")
    out: str = _opt("output directory (created; metrics.csv and config.json are written there)")
    steps: int = _opt("iterations per algorithm", 1000)
    seeds: int = _opt("runs per algorithm, executed as one batch (vectorised, not a loop)", 1)
    beta: float = _opt("geometric-mixture coefficient of ipo_md and nash_md_pg, in [0, 1]", 0.0)
    eta: float | None = _opt("constant mirror-descent step of nash_md / extragradient; "
                             "default: nash_md decays as 2/(tau(t+2)), extragradient 1/(2(tau+1))",
                             None)
    lr: float | None = _opt("learning rate of the gradient methods; default: AlgorithmConfig's "
                            "(SGD: min(0.5, 20 tau^2) for IPO, scaled per loss: /(2 tau^2) DPO, "
                            "/(2 tau) SLiC, x 4/tau policy gradient; Adam: 0.01)", None)
    optimizer: str = _opt("optimiser of the gradient methods on the softmax logits", "sgd",
                          choices=("sgd", "adam"))
    sampled: bool = _opt("sampled form (--batch pairs per step, labels drawn from P) instead of "
                         "the exact population update", False)
    batch: int = _opt("pairs (or samples) per game and seed per step in the sampled form", 64)
    label_type: str = _opt("labels given to the losses (SPEC §3)", "soft", choices=LABEL_TYPES)
    init: str = _opt("initial policy: mu (the paper's SFT start), uniform, or random logits "
                     "log mu + N(0, 1) (differs per seed)", "mu", choices=("mu", "uniform", "random"))
    mu: str | None = _opt("reference policy mu (.npy/.csv/.json); default uniform", None)
    record_every: int = _opt("record metrics every R steps (and at the last step)", 10)
    seed: int = _opt("seed of the game family (when the spec gives none) and of the sampler", 0)
    overwrite: bool = _opt("replace metrics.csv and config.json when --out already holds them "
                           "(without it such a folder is refused)", False)


@dataclass(frozen=True)
class EquivalenceConfig:
    """``equivalence``: online IPO, IPO-MD and Nash-MD against the exact points (SPEC §5.1, §5.5)."""

    games: str = _opt("comma-separated game specs of the suite",
                      "bt:5,rps,cyclic:5,perturbed_rps,random:8,majority:7")
    taus: str = _opt("comma-separated tau values", "1,0.5,0.2")
    steps: int = _opt("maximum steps of exact online IPO and IPO-MD (SGD; they converge linearly "
                      "and stop once pi moves by <= 1e-15 over 50 steps)", 3000)
    lr: float = _opt("SGD learning rate of online IPO and IPO-MD, one value for every tau of the "
                     "suite. Stability needs lr < 2 Re(l)/|l|^2 over the eigenvalues l of the "
                     "linearised update, whose rotational part grows like 1/tau on intransitive "
                     "games: lr 0.5 oscillates on rock-paper-scissors at tau = 0.2", 0.25)
    nash_md_steps: int = _opt("steps of Nash-MD with the decaying step 2/(tau(t+2)) (rate 1/T)", 2000)
    eta: float = _opt("constant Nash-MD step; its limit is the IPO-MD point with beta = eta tau",
                      0.25)
    sampled_steps: int = _opt("steps of sampled online IPO", 200)
    batch: int = _opt("pairs per step of sampled online IPO", 2048)
    sampled_seeds: int = _opt("seeds of sampled online IPO (one batch); distances are averaged", 4)
    mu_seed: int = _opt("seed of the reference mu = softmax(N(0, 1/4)); -1 for uniform mu "
                        "(uniform mu makes rps/cyclic trivial: pi* = mu)", 0)
    tol: float = _opt("max-abs tolerance of the exact limits", 1e-10)
    json: bool = _opt("print the results as JSON on stdout instead of a table", False)


def _add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> None:
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        help_text = meta.pop("help")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        py_type = {"int": int, "float": float, "str": str, "float | None": float,
                   "str | None": str}[f.type]
        kwargs = dict(type=py_type, help=help_text, **meta)
        if f.default is MISSING:
            kwargs.update(required=True, default=argparse.SUPPRESS)  # no "(default: None)"
        else:
            kwargs["default"] = f.default
        parser.add_argument(flag, **kwargs)


def _config_from_args(cls, args):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


# --------------------------------------------------------------------------------------------
# Parser: usage errors are one line and exit code 2.
# --------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we want one line
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(
        prog="python -m tabular", formatter_class=fmt,
        description="Tabular preference games: exact equilibria, online IPO / IPO-MD / Nash-MD / "
                    "online DPO / SLiC / Nash-MD-PG / RL in exact and sampled forms, and the "
                    "equivalence checks of Calandriello et al. 2024 (arXiv 2403.08635).")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name, cls, helptext in (
        ("solve", SolveConfig, "exact equilibrium of a game from a file, with its certificate"),
        ("run", RunConfig, "run algorithms on a game (seeds batched); write metrics.csv, "
                           "config.json; print a summary"),
        ("equivalence", EquivalenceConfig, "check online IPO == Nash-MD limit == pi*, and "
                                           "constant-eta Nash-MD == IPO-MD(eta tau); exit 1 on failure"),
    ):
        p = sub.add_parser(name, help=helptext, description=cls.__doc__, formatter_class=fmt)
        _add_dataclass_arguments(p, cls)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "solve":
            return cmd_solve(_config_from_args(SolveConfig, args))
        if args.command == "run":
            return cmd_run(_config_from_args(RunConfig, args))
        return cmd_equivalence(_config_from_args(EquivalenceConfig, args))
    except ValueError as e:  # numpy's LinAlgError is a ValueError too
        message = " ".join(str(e).split()) or type(e).__name__  # one line, whatever raised it
        print(f"error: {message}", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------------
def cmd_solve(cfg: SolveConfig) -> int:
    P = load_matrix(cfg.matrix)
    if P.ndim != 2:
        raise ValueError(f"{cfg.matrix}: expected one (n, n) matrix, got shape {P.shape}")
    mu = None if cfg.mu is None else load_vector(cfg.mu, P.shape[0])
    tau = validate_tau(cfg.tau, allow_zero=True)
    eq = solve_equilibrium(P, mu, tau)
    result = {"pi": eq.pi.tolist(), "gap": eq.gap, "residual": eq.residual,
              "iterations": eq.iterations, "method": eq.method, "converged": eq.converged,
              "tau": eq.tau, "n": int(P.shape[0]), "message": eq.message}
    if cfg.json:
        # strict JSON: the log-space residual scales like round-off / tau and can overflow at tiny
        # tau (the gap is the certificate there); a non-finite number is written as null
        result = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
        print(json.dumps(result, allow_nan=False))
    else:
        with np.printoptions(precision=17, floatmode="maxprec", linewidth=100):
            print(f"pi* = {eq.pi}")
        residual_name, residual = ("exploitability", eq.gap / 2) if tau == 0 else ("residual", eq.residual)
        print(f"gap = {eq.gap:.3e}   {residual_name} = {residual:.3e}   "
              f"iterations = {eq.iterations}   method = {eq.method}   converged = {eq.converged}")
    return 0 if eq.converged else 1


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def _validate_run(cfg: RunConfig):
    """Everything that can be wrong with a run, checked before the output directory exists."""
    if cfg.steps < 1:
        raise ValueError(f"steps must be >= 1, got {cfg.steps}")
    if cfg.seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {cfg.seeds}")
    if cfg.record_every < 1:
        raise ValueError(f"record-every must be >= 1, got {cfg.record_every}")
    validate_seed(cfg.seed)
    names = [a.strip() for a in cfg.algorithms.split(",") if a.strip()]
    if not names:
        raise ValueError("no algorithm given (--algorithms a,b,...)")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate algorithm in {cfg.algorithms!r}")
    tau = validate_tau(cfg.tau)
    validate_beta(cfg.beta)
    P, scores = make_game(cfg.game, seed=cfg.seed)
    mu = None if cfg.mu is None else load_vector(cfg.mu, P.shape[0])
    if "rl" in names and scores is None:
        raise ValueError(f"rl needs a Bradley-Terry game (bt:N[:SEED]); got {cfg.game!r}")
    algos = []
    for name in names:
        # eta applies to the mirror-descent methods only; elsewhere it would be rejected as unused.
        eta = cfg.eta if name in METHODS and METHODS[name].kind == "md" else None
        algos.append(AlgorithmConfig(name, tau=tau, beta=cfg.beta, eta=eta, lr=cfg.lr,
                                     optimizer=cfg.optimizer, sampled=cfg.sampled,
                                     batch=cfg.batch, label_type=cfg.label_type))
    if cfg.eta is not None:
        validate_eta(cfg.eta)
    n = P.shape[0]
    records = cfg.steps // cfg.record_every + 2
    # the batch of games (numpy and torch copies), and per algorithm the recorded policies and
    # metrics (8 bytes each) and their CSV rows (~60 bytes per value)
    check_allocation(3 * 8.0 * cfg.seeds * n * n
                     + len(algos) * records * cfg.seeds * (8.0 * (n + len(METRICS)) + 60 * len(METRICS)),
                     f"--seeds {cfg.seeds} x --steps {cfg.steps} / --record-every {cfg.record_every} "
                     f"on {n} actions")
    check_output_dir(cfg.out)
    held = [name for name in ("metrics.csv", "config.json") if (Path(cfg.out) / name).exists()]
    if held and not cfg.overwrite:
        raise ValueError(f"--out {cfg.out} already holds {' and '.join(held)}; pass --overwrite to "
                         "replace them")
    return algos, P, mu, scores


def _metrics_csv(results, game: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["algorithm", "form", "game", "seed", "step", "metric", "value"])
    for algo, res in results:
        form = "sampled" if algo.sampled else "exact"
        for metric in METRICS:
            values = res.metrics[metric]  # (K, B)
            for k, t in enumerate(res.steps):
                for b in range(values.shape[1]):
                    v = values[k, b]
                    w.writerow([algo.name, form, game, b, int(t), metric,
                                "" if math.isnan(v) else repr(float(v))])
    return buf.getvalue()


def _summary_table(results) -> str:
    head = f"{'algorithm':<14} {'form':<8} {'gap':>11} {'KL(pi*||pi)':>12} {'KL(pi||mu)':>11} " \
           f"{'win vs mu':>10} {'|pi-limit|':>11}"
    lines = [head, "-" * len(head)]
    for algo, res in results:
        form = "sampled" if algo.sampled else "exact"
        last = {m: float(np.mean(res.metrics[m][-1])) for m in METRICS}
        lim = res.extra.get("limit_distance")
        lim_s = f"{lim:11.2e}" if lim is not None else f"{'-':>11}"
        lines.append(f"{algo.name:<14} {form:<8} {last['gap']:11.3e} {last['kl_to_opt']:12.3e} "
                     f"{last['kl_to_ref']:11.3e} {last['winrate_vs_mu']:10.4f} {lim_s}")
    return "\n".join(lines)


def cmd_run(cfg: RunConfig) -> int:
    from .algorithms import limit_point
    from .progress import progress

    algos, P, mu, scores = _validate_run(cfg)
    n = P.shape[0]
    mu_vec = np.full(n, 1.0 / n) if mu is None else mu
    eq = solve_equilibrium(P, mu_vec, cfg.tau)  # one pi* for every seed: the game is the same
    # Seeds are a batch axis: the game is repeated S times and each algorithm runs once.
    P_batch = np.repeat(P[None], cfg.seeds, axis=0)
    results = []
    with progress(total=cfg.steps * len(algos), desc="run", unit="step") as bar:
        for algo in algos:
            bar.set_postfix_str(algo.name)
            res = run(algo, P_batch, mu_vec, steps=cfg.steps, seed=cfg.seed,
                      record_every=cfg.record_every, scores=scores, init=cfg.init,
                      pi_star=eq.pi, progress=bar.update)
            limit = limit_point(algo, P, mu_vec, scores=scores)
            if limit is not None:
                res = res.with_extra(limit_distance=float(np.abs(res.final_pi - limit.pi).max()))
            results.append((algo, res))

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "command": "run",
        "config": asdict(cfg),
        "algorithms": [asdict(a) | {"effective_lr": a.effective_lr if a.kind != "md" else None}
                       for a in algos],
        "game": {"spec": cfg.game, "P": P.tolist(), "mu": mu_vec.tolist(),
                 "scores": None if scores is None else np.asarray(scores).tolist()},
        "pi_star": {"pi": eq.pi.tolist(), "gap": eq.gap, "residual": eq.residual,
                    "method": eq.method, "iterations": eq.iterations, "converged": eq.converged},
        "final": {a.name: {"final_pi_mean": r.final_pi.mean(0).tolist(),
                           "limit_distance": r.extra.get("limit_distance")} for a, r in results},
        "metrics_format": "long: algorithm,form,game,seed,step,metric,value",
        "versions": package_versions(("numpy", "scipy", "torch")),
    }
    atomic_write_text(out / "metrics.csv", _metrics_csv(results, cfg.game))
    atomic_write_json(out / "config.json", config)
    print(f"game {cfg.game} (n = {n}), tau = {cfg.tau}, {cfg.seeds} seed(s), {cfg.steps} steps; "
          f"pi* gap {eq.gap:.2e}; means over seeds at the last step:")
    print(_summary_table(results))
    print(f"wrote {out / 'metrics.csv'} and {out / 'config.json'}")
    return 0


# --------------------------------------------------------------------------------------------
# equivalence
# --------------------------------------------------------------------------------------------
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


def _max_abs(a, b) -> float:
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
        "dist_to_pi_star": {k: _max_abs(v, eq.pi) for k, v in finals.items()},
        "dist_to_ipo_md_point": {k: _max_abs(v, md_point.pi) for k, v in finals.items()},
        "pairwise": {f"{a}|{b}": _max_abs(finals[a], finals[b])
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
    games = [(spec, make_game(spec)[0]) for spec in specs]  # all validated before any run
    cases = []
    for spec, P in games:
        mu = _reference_mu(P.shape[0], cfg.mu_seed)
        for tau in taus:
            cases.append({"game": spec} | equivalence_case(P, mu, tau, cfg))
    return cases


def _equivalence_table(cases) -> str:
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


def cmd_equivalence(cfg: EquivalenceConfig) -> int:
    start = time.perf_counter()
    cases = equivalence_suite(cfg)
    passed = all(c["passed"] for c in cases)
    if cfg.json:
        print(json.dumps({"config": asdict(cfg), "passed": passed, "cases": cases}))
    else:
        print("max-abs distance of each method's last iterate to pi* (exact equilibrium), then to "
              "the IPO-MD point IPO-MD*:")
        print(_equivalence_table(cases))
        print(f"pairwise distances between methods are in --json. IPO-MD* = the IPO-MD point "
              f"with beta = eta tau (eta = {cfg.eta}); KL/bound = max_T KL(pi*||pi_T) / "
              f"(8 / (tau^2 (T+1))) for decaying-step Nash-MD.")
        for c in cases:
            for name, ok in c["checks"].items():
                if not ok:
                    print(f"FAILED {c['game']} tau={c['tau']}: {name}")
        print(f"{'PASS' if passed else 'FAIL'}: {len(cases)} cases in "
              f"{time.perf_counter() - start:.1f} s")
    return 0 if passed else 1
