"""Command line for the tabular sandbox: ``python -m tabular solve|run|equivalence``.

- ``solve``: the exact equilibrium of a game read from a file, with its certificate.
- ``run``: several algorithms on one game family, seeds as a batch axis (one vectorised run per
  algorithm); writes ``DIR/metrics.csv`` and ``DIR/config.json`` and prints a summary table. It
  holds ``DIR``'s lock while it runs (:mod:`opo_toolkit.runlock`): a second run on ``DIR`` exits 2.
- ``equivalence``: checks SPEC §5.1 / §5.5 numerically on a suite of games x tau and exits 1 when
  a check fails.

Every stage's flags come from its dataclass (:class:`SolveConfig`, :class:`RunConfig`,
:class:`EquivalenceConfig`); the resolved dataclass is what ``config.json`` / ``--json`` record.
The flags, the one-line usage errors (``python -m tabular COMMAND: error: ...``, exit code 2,
raised before anything is written) and the parser come from :mod:`opo_toolkit.cliargs`, shared with
``llm``, ``figures`` and ``proofs_check``; the equivalence experiment is :mod:`tabular.equivalence`.
This module parses, validates, calls the library and writes the results; it holds no numerics.

``metrics.csv`` is in long format, one row per (algorithm, seed, step, metric):
``algorithm,form,game,seed,step,metric,value`` with ``form`` in {exact, sampled} and ``metric`` in
{kl_to_opt, gap, winrate_vs_mu, kl_to_ref, loss} (see :mod:`tabular.metrics`; ``loss`` is empty
(nan) for the mirror-descent methods, which have none). Long format keeps one schema whatever
metrics are added and loads directly into a pandas pivot.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from opo_toolkit.cliargs import Parser, add_dataclass_flags, config_from_args, fields_from, flag, run_command
from opo_toolkit.files import atomic_write_json, atomic_write_text, check_output_dir, package_versions
from opo_toolkit.runlock import RunLock

from .algorithms import AlgorithmConfig, run
from .equivalence import EquivalenceConfig, equivalence_suite, equivalence_table, max_abs_difference
from .game import (
    GAME_FAMILIES,
    check_allocation,
    load_matrix,
    load_vector,
    make_game,
    validate_beta,
    validate_eta,
    validate_seed,
    validate_tau,
)
from .losses import LABEL_TYPES
from .methods import METHODS
from .solvers import solve_equilibrium

__all__ = ["SolveConfig", "RunConfig", "EquivalenceConfig", "build_parser", "main",
           "equivalence_suite"]

METRICS = ("kl_to_opt", "gap", "winrate_vs_mu", "kl_to_ref", "loss")


# --------------------------------------------------------------------------------------------
# Stage configs: one dataclass each; the flags are generated from the fields.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SolveConfig:
    """``solve``: the equilibrium ``pi* ∝ mu exp(P pi* / tau)`` of one game, with its certificate
    (duality gap, fixed-point residual; for tau = 0 the residual is the exploitability). Exit code
    0 when converged (gap <= 1e-12, or exploitability <= 1e-9 for tau = 0), 1 otherwise."""

    matrix: str = flag("preference matrix P (.npy, .csv or .json; JSON may be {'P': [[...]]})")
    tau: float = flag("KL-regularisation strength; 0 solves the unregularised zero-sum LP")
    mu: str | None = flag("reference policy mu (.npy/.csv/.json); default uniform", None)
    json: bool = flag("print the result as one JSON object on stdout", False)


# The hyperparameters ``run`` passes to every algorithm: type and default are AlgorithmConfig's
# (declared there once); here only what --help says.
ALGORITHM_FLAGS = {
    "beta": {"help": "geometric-mixture coefficient of ipo_md and nash_md_pg, in [0, 1]"},
    "eta": {"help": "constant mirror-descent step of nash_md / extragradient; default: nash_md "
                    "decays as 2/(tau(t+2)), extragradient 1/(2(tau+1))"},
    "lr": {"help": "learning rate of the gradient methods; default: AlgorithmConfig's (SGD: "
                   "min(0.5, 20 tau^2) for IPO, scaled per loss: /(2 tau^2) DPO, /(2 tau) SLiC, "
                   "x 4/tau policy gradient; Adam: 0.01)"},
    "optimizer": {"help": "optimiser of the gradient methods on the softmax logits",
                  "choices": ("sgd", "adam")},
    "sampled": {"help": "sampled form (--batch pairs per step, labels drawn from P) instead of the "
                        "exact population update"},
    "batch": {"help": "pairs (or samples) per game and seed per step in the sampled form"},
    "label_type": {"help": "labels given to the losses (SPEC §3)", "choices": LABEL_TYPES},
}


@dataclass(frozen=True)
@fields_from(AlgorithmConfig, after="seeds", flags=ALGORITHM_FLAGS)
class RunConfig:
    """``run``: algorithms on one game, ``seeds`` runs each as one batch."""

    algorithms: str = flag(f"comma-separated list from: {', '.join(METHODS)}")
    game: str = flag("game FAMILY[:ARGS]: " + "; ".join(GAME_FAMILIES.values()))
    tau: float = flag("KL-regularisation strength (> 0)")
    out: str = flag("output directory (created; metrics.csv and config.json are written there)")
    steps: int = flag("iterations per algorithm", 1000)
    seeds: int = flag("runs per algorithm, executed as one batch (vectorised, not a loop)", 1)
    # here: the ALGORITHM_FLAGS fields beta, eta, lr, optimizer, sampled, batch, label_type
    init: str = flag("initial policy: mu (the paper's SFT start), uniform, or random logits "
                     "log mu + N(0, 1) (differs per seed)", "mu", choices=("mu", "uniform", "random"))
    mu: str | None = flag("reference policy mu (.npy/.csv/.json); default uniform", None)
    record_every: int = flag("record metrics every R steps (and at the last step)", 10)
    seed: int = flag("seed of the game family (when the spec gives none) and of the sampler", 0)
    overwrite: bool = flag("replace metrics.csv and config.json when --out already holds them "
                           "(without it such a folder is refused)", False)


CONFIGS = {"solve": SolveConfig, "run": RunConfig, "equivalence": EquivalenceConfig}


# --------------------------------------------------------------------------------------------
# Parser: usage errors are one line "python -m tabular COMMAND: error: ..." and exit code 2.
# --------------------------------------------------------------------------------------------
def build_parser() -> Parser:
    parser = Parser(
        prog="python -m tabular",
        description="Tabular preference games: exact equilibria, online IPO / IPO-MD / Nash-MD / "
                    "online DPO / SLiC / Nash-MD-PG / RL in exact and sampled forms, and the "
                    "equivalence checks of Calandriello et al. 2024 (arXiv 2403.08635).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, helptext in (
        ("solve", "exact equilibrium of a game from a file, with its certificate"),
        ("run", "run algorithms on a game (seeds batched); write metrics.csv, config.json; print a "
                "summary"),
        ("equivalence", "check online IPO == Nash-MD limit == pi*, and constant-eta Nash-MD == "
                        "IPO-MD(eta tau); exit 1 on failure"),
    ):
        add_dataclass_flags(sub.add_parser(name, help=helptext, description=CONFIGS[name].__doc__),
                            CONFIGS[name])
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command = {"solve": cmd_solve, "run": cmd_run, "equivalence": cmd_equivalence}[args.command]
    config = config_from_args(CONFIGS[args.command], args)
    # the input checks of tabular.game raise ValueError (numpy's LinAlgError is one too)
    return run_command(f"{parser.prog} {args.command}", lambda: command(config), errors=(ValueError,),
                       interrupted=INTERRUPTED[args.command])


# What Ctrl-C prints (one line, exit 130): none of the commands writes before it has finished.
INTERRUPTED = {
    "solve": "interrupted; solve writes nothing: rerun the command",
    "run": "interrupted before the results were written (run writes metrics.csv and config.json "
           "when every algorithm has finished; it does not resume): rerun the command",
    "equivalence": "interrupted; equivalence writes nothing: rerun the command",
}


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
        result = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                  for k, v in result.items()}
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
    if cfg.eta is not None:
        validate_eta(cfg.eta)
    hyper = {name: getattr(cfg, name) for name in ALGORITHM_FLAGS}
    # eta is the step of the mirror-descent methods (nash_md, extragradient) only: the others get
    # None, and an --eta that no algorithm of the list uses is refused rather than ignored.
    uses_eta = [name for name in names if name in METHODS and METHODS[name].kind == "md"]
    if cfg.eta is not None and not uses_eta:
        raise ValueError(f"--eta is the step of nash_md / extragradient; none of {', '.join(names)} "
                         "uses it")
    algos = [AlgorithmConfig(name, tau=tau, **(hyper if name in uses_eta else hyper | {"eta": None}))
             for name in names]
    n = P.shape[0]
    records = cfg.steps // cfg.record_every + 2
    # the batch of games (numpy and torch copies), and per algorithm the recorded policies and
    # metrics (8 bytes each) and their CSV rows (~60 bytes per value)
    check_allocation(3 * 8.0 * cfg.seeds * n * n
                     + len(algos) * records * cfg.seeds * (8.0 * (n + len(METRICS)) + 60 * len(METRICS)),
                     f"--seeds {cfg.seeds} x --steps {cfg.steps} / --record-every {cfg.record_every} "
                     f"on {n} actions")
    check_output_dir(cfg.out)
    _check_held(cfg)
    return algos, P, mu, scores


def _check_held(cfg: RunConfig) -> None:
    held = [name for name in ("metrics.csv", "config.json") if (Path(cfg.out) / name).exists()]
    if held and not cfg.overwrite:
        raise ValueError(f"--out {cfg.out} already holds {' and '.join(held)}; pass --overwrite to "
                         "replace them")


def _metrics_csv(results, game: str) -> str:
    """``results``: ``(AlgorithmConfig, RunResult, distance to the limit or None)`` per algorithm."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["algorithm", "form", "game", "seed", "step", "metric", "value"])
    for algo, res, _ in results:
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
    for algo, res, lim in results:
        form = "sampled" if algo.sampled else "exact"
        last = {m: float(np.mean(res.metrics[m][-1])) for m in METRICS}
        lim_s = f"{lim:11.2e}" if lim is not None else f"{'-':>11}"
        lines.append(f"{algo.name:<14} {form:<8} {last['gap']:11.3e} {last['kl_to_opt']:12.3e} "
                     f"{last['kl_to_ref']:11.3e} {last['winrate_vs_mu']:10.4f} {lim_s}")
    return "\n".join(lines)


def cmd_run(cfg: RunConfig) -> int:
    algos, P, mu, scores = _validate_run(cfg)
    # one writer per folder: a second run on this --out (even with --overwrite) stops here, naming
    # the first; the folder is checked again under the lock
    with RunLock(cfg.out):
        _check_held(cfg)
        return _run_locked(cfg, algos, P, mu, scores)


def _run_locked(cfg: RunConfig, algos, P, mu, scores) -> int:
    from opo_toolkit.progress import progress

    from .limits import limit_point

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
            # the run result stays as run() returned it; the distance to theory's limit is its own value
            limit = limit_point(algo, P, mu_vec, scores=scores)
            distance = None if limit is None else max_abs_difference(res.final_pi, limit.pi)
            results.append((algo, res, distance))

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "command": "run",
        "config": asdict(cfg),
        "algorithms": [asdict(a) | {"effective_lr": a.effective_lr} for a in algos],
        "game": {"spec": cfg.game, "P": P.tolist(), "mu": mu_vec.tolist(),
                 "scores": None if scores is None else np.asarray(scores).tolist()},
        "pi_star": {"pi": eq.pi.tolist(), "gap": eq.gap, "residual": eq.residual,
                    "method": eq.method, "iterations": eq.iterations, "converged": eq.converged},
        "final": {a.name: {"final_pi_mean": r.final_pi.mean(0).tolist(),
                           "limit_distance": d} for a, r, d in results},
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
# equivalence (the experiment is tabular.equivalence)
# --------------------------------------------------------------------------------------------
def cmd_equivalence(cfg: EquivalenceConfig) -> int:
    start = time.perf_counter()
    cases = equivalence_suite(cfg)
    passed = all(c["passed"] for c in cases)
    if cfg.json:
        print(json.dumps({"config": asdict(cfg), "passed": passed, "cases": cases}))
    else:
        print("max-abs distance of each method's last iterate to pi* (exact equilibrium), then to "
              "the IPO-MD point IPO-MD*:")
        print(equivalence_table(cases))
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
