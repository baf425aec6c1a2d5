"""Shared pieces of the figures: sizes, games, recorded runs, atomic writes (:func:`finish`), plot helpers.

Nothing here re-implements an algorithm, a loss or the run loop: :func:`trajectory` is
``tabular.run`` recorded at the requested iterations (log-spaced, so log-x plots start at
iteration 1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opo_toolkit.files import atomic_write_bytes, atomic_write_text
from tabular import AlgorithmConfig, run, solve_equilibrium
from tabular.game import annotator_majority, bradley_terry_random, cyclic, random_game
from tabular.metrics import kl_log

FLOOR = 1e-16  # values below this (float64 round-off, or tiny negative KL) are drawn at FLOOR


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of every figure; ``default`` targets ~3-5 min on 2 cores, ``quick`` < 60 s."""

    simplex_steps: int = 400
    """Iterations of each trajectory on the 2-simplex (fig 1)."""
    n_actions: int = 5
    """Actions of the benchmark games (figs 2, 3, 5) and of the intransitive blend (fig 4)."""
    conv_steps: int = 3000
    """Iterations of the convergence runs (fig 2)."""
    conv_seeds: int = 10
    """Seeds of the sampled runs (fig 2); the band is the 2.5-97.5 percentile over seeds."""
    equiv_steps: int = 6000
    """Iterations of exact online IPO, IPO-MD and constant-eta Nash-MD (fig 3)."""
    equiv_nash_steps: int = 10000
    """Iterations of Nash-MD with the decaying step (fig 3b)."""
    equiv_games: int = 4
    """How many of the 4 benchmark games enter the equivalence grid (fig 3)."""
    dpo_steps: int = 4000
    """Iterations of online IPO / DPO / SLiC before reading off their limits (fig 4)."""
    dpo_alphas: int = 11
    """Points of the Bradley-Terry -> cyclic blend, alpha in [0, 1] (fig 4)."""
    dpo_taus: int = 7
    """Points of the tau sweep, tau in [0.03, 3] log-spaced (fig 4)."""
    bias_steps: int = 6000
    """Iterations of exact IPO-MD per beta (fig 5)."""
    bias_betas: int = 11
    """Points of the beta grid in [0, 1] (fig 5)."""


DEFAULT_SIZES = Sizes()
QUICK_SIZES = Sizes(simplex_steps=150, n_actions=4, conv_steps=120, conv_seeds=10, equiv_steps=600,
                    equiv_nash_steps=400, equiv_games=2, dpo_steps=400, dpo_alphas=3, dpo_taus=3,
                    bias_steps=1500, bias_betas=3)


# --------------------------------------------------------------------------------------------
# Step sizes: the library defaults (``AlgorithmConfig.effective_lr``: each method row's ``sgd_lr``,
# min(0.5, 20 tau^2) for IPO, scaled per loss), recorded in the CSVs. Gradient methods need
# lr = O(tau^2) on intransitive games (the rotational part of the dynamics grows like 1/tau); see
# tabular/methods.py.
# --------------------------------------------------------------------------------------------
def algorithm_lr(name: str, tau: float) -> float | None:
    """Learning rate used in the figures (None for the mirror-descent methods, which take none)."""
    return AlgorithmConfig(name, tau=tau).effective_lr


def config(name: str, tau: float, **kwargs) -> AlgorithmConfig:
    return AlgorithmConfig(name, tau=tau, lr=kwargs.pop("lr", algorithm_lr(name, tau)), **kwargs)


# --------------------------------------------------------------------------------------------
# Games.
# --------------------------------------------------------------------------------------------
def reference_policy(n: int, seed: int) -> np.ndarray:
    """A fixed non-uniform reference ``mu ∝ exp(0.7 N(0, 1))`` (on cyclic games with uniform mu the
    uniform policy already is pi*, so every trajectory from mu would be a single point)."""
    logits = 0.7 * np.random.default_rng(10_000 + seed).normal(size=n)
    mu = np.exp(logits - logits.max())
    return mu / mu.sum()


def benchmark_games(n: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``{label: (P, BT scores or None)}``: Bradley-Terry, cyclic, random, annotator majority."""
    P_bt, scores = bradley_terry_random(n, seed)
    return {
        f"bt:{n}": (P_bt, scores),
        f"cyclic:{n}": (cyclic(n), None),
        f"random:{n}": (random_game(n, seed + 1), None),
        f"majority:{n}": (annotator_majority(n, 3, seed + 2), None),
    }


def equilibria(P: np.ndarray, mu: np.ndarray, tau: float) -> np.ndarray:
    """pi* for each game of a batch ``P`` (B, n, n); ``mu`` (n,) or (B, n)."""
    mu = np.broadcast_to(mu, P.shape[:2])
    return np.stack([solve_equilibrium(P[b], mu[b], tau).pi for b in range(P.shape[0])])


# --------------------------------------------------------------------------------------------
# The recording loop.
# --------------------------------------------------------------------------------------------
def log_steps(steps: int, points: int = 120) -> np.ndarray:
    """0 and about ``points`` log-spaced iterations in [1, steps] (always including ``steps``)."""
    grid = np.unique(np.round(np.logspace(0, np.log10(max(steps, 1)), points)).astype(int))
    return np.concatenate([[0], grid[grid <= steps]])


def trajectory(cfg: AlgorithmConfig, P, mu, steps: int, record_at=None, *, seed: int = 0,
               scores=None, init_log_pi=None, pi_star=None) -> dict:
    """:func:`tabular.run` on a batch of games, recorded at ``record_at`` (default: every step).

    Returns ``{"steps": (K,), "log_pi": (K, B, n), "pi_star": (B, n), <metric>: (K, B)}``; metrics
    as in :func:`tabular.metrics.policy_metrics` (``kl_to_opt`` = KL(pi* || pi_t), ``gap``, ...).
    ``init_log_pi`` (B, n) overrides the start pi_0 = mu.
    """
    res = run(cfg, P, mu, steps=steps, seed=seed, scores=scores, pi_star=pi_star,
              record_at=range(steps + 1) if record_at is None else record_at,
              init="mu" if init_log_pi is None else init_log_pi)
    return {"steps": res.steps, "log_pi": res.log_pi, "pi_star": res.pi_star, **res.metrics}


def kl_to(pi_star, log_pi) -> np.ndarray:
    """KL(pi* || pi) from ``log pi``."""
    with np.errstate(divide="ignore"):
        return kl_log(np.log(pi_star), log_pi)


# --------------------------------------------------------------------------------------------
# Atomic output.
# --------------------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows of dicts -> CSV (columns: union of keys in first-seen order); floats in repr precision."""
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(float(v)) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def save_figure(fig, out: Path, name: str) -> list[str]:
    """Write ``name.png`` and ``name.pdf`` atomically; returns the file names."""
    import matplotlib.pyplot as plt

    files = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=130 if ext == "png" else None, bbox_inches="tight")
        atomic_write_bytes(Path(out) / f"{name}.{ext}", buf.getvalue())
        files.append(f"{name}.{ext}")
    plt.close(fig)
    return files


def finish(fig, out: Path, name: str, rows: list[dict], caption: str) -> tuple[str, str]:
    """The end of every figure: ``name.png``, ``name.pdf`` (:func:`save_figure`) and ``name.csv`` (the
    numbers plotted, :func:`write_csv`) written atomically into ``out``; returns ``(name, caption)``."""
    save_figure(fig, out, name)
    write_csv(Path(out) / f"{name}.csv", rows)
    return name, caption


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (imported on first use: the CLI's usage
    errors and ``--help`` stay fast)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def floor(x) -> np.ndarray:
    """Clip to :data:`FLOOR` for log axes (the CSVs keep the raw values)."""
    return np.maximum(np.asarray(x, np.float64), FLOOR)
