"""Stage ``pipeline``: sft -> train-pm -> align (methods x seeds) -> evaluate, in one process.

Writes into ``OUT``: ``sft/``, ``pm/``, ``align/METHOD/seedS/``, ``eval/`` (each a run folder) and
  - ``summary.json``: ``config``, ``methods`` (aligned methods), ``matrix_labels`` (rows/columns of
    the matrices: the methods then ``"sft"``), ``win_matrix_gold_mean``/``_std``,
    ``win_matrix_pm_mean``/``_std`` (p(row beats column), mean/std over seed pairs),
    ``winrate_vs_sft`` ({method: {mean, std, per_seed}} under the gold judge), ``pm_accuracy``,
    ``pm_calibration_error`` (held-out, against the exact gold probabilities), ``rm_accuracy``,
    ``step_time_s`` ({method: seconds per alignment step}), ``wall_time_s``;
  - ``curves.csv``: ``method,tau,beta,seed,step,winrate_vs_sft`` (gold, every ``eval_every`` steps);
  - with ``--sweep`` (default; ``--no-sweep`` skips it): ``tau_sweep.csv``
    (``method,tau,seed,winrate_vs_sft``; online_ipo and online_dpo) and ``beta_sweep.csv``
    (``method,beta,tau,seed,winrate_vs_sft``; ipo_md).
With ``--resume`` finished stages are skipped and an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time

import numpy as np

from tabular.files import atomic_write_json, atomic_write_text

from .align import run_align
from .config import AlignConfig, EvalConfig, PMConfig, SFTConfig
from .evaluate import format_matrix, run_evaluate
from .objectives import METHODS
from .runtime import prepare_run_dir, start_run_dir
from .train import run_sft, run_train_pm, setup_torch

__all__ = ["run_pipeline"]


def _write_csv(path: str, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _curve_rows(run_dir: str, method: str, tau: float, beta: float, seed: int) -> list[list]:
    rows = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for r in map(json.loads, f):
            if "eval/winrate_vs_sft" in r:
                rows.append([method, tau, beta, seed, r["step"], r["eval/winrate_vs_sft"]])
    return rows


def run_pipeline(cfg, progress: bool = True) -> dict:
    """Run every stage with ``cfg``; returns the ``summary.json`` contents."""
    cfg.validate()
    resuming = prepare_run_dir(cfg)
    setup_torch(cfg)
    start_run_dir(cfg, resuming)
    t_start = time.perf_counter()
    common = dict(task=cfg.task, task_seed=cfg.task_seed, device=cfg.device, bf16=cfg.bf16,
                  threads=cfg.threads, resume=cfg.resume, checkpoint_every=cfg.checkpoint_every,
                  log_every=cfg.log_every)
    shape = dict(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head)
    out = cfg.out

    # 1. SFT (mu) ; 2. preference + reward models
    sft = run_sft(SFTConfig(out=os.path.join(out, "sft"), seed=cfg.seed, steps=cfg.sft_steps, **shape, **common),
                  progress)
    pm = run_train_pm(PMConfig(out=os.path.join(out, "pm"), seed=cfg.seed, sft=sft["model"], steps=cfg.pm_steps,
                               n_pairs=cfg.pm_pairs, **shape, **common), progress)

    # 3. alignment runs (a sweep point equal to a main run reuses it)
    finished, curves = {}, []

    def align(method, seed, tau, beta, folder):
        key = (method, seed, tau, beta if METHODS[method].kind != "pairwise" or method == "ipo_md" else None)
        if key not in finished:
            finished[key] = run_align(AlignConfig(
                out=os.path.join(out, folder), seed=seed, sft=sft["model"], pm=pm["pm"], rm=pm.get("rm", ""),
                method=method, tau=tau, beta=beta, steps=cfg.align_steps, batch_size=cfg.align_batch_size,
                lr=cfg.align_lr, eval_every=cfg.eval_every, eval_prompts=cfg.eval_prompts, **common), progress)
            curves.extend(_curve_rows(os.path.join(out, folder), method, tau, beta, seed))
        return finished[key]

    runs = {m: [align(m, seed, cfg.tau_of(m), cfg.beta, os.path.join("align", m, f"seed{seed}"))
                for seed in range(cfg.seeds)] for m in cfg.methods}

    # 4. sweeps: final gold win rate vs SFT of each run (its last curve point)
    if cfg.sweep:
        tau_rows, beta_rows = [], []
        for method in ("online_ipo", "online_dpo"):
            for tau in map(float, cfg.sweep_taus):
                for seed in range(cfg.sweep_seeds):
                    r = align(method, seed, tau, cfg.beta, os.path.join("sweep", f"{method}_tau{tau:g}", f"seed{seed}"))
                    tau_rows.append([method, tau, seed, r["final_winrate_vs_sft"]])
        tau = cfg.tau_of("ipo_md")
        for beta in map(float, cfg.sweep_betas):
            for seed in range(cfg.sweep_seeds):
                r = align("ipo_md", seed, tau, beta, os.path.join("sweep", f"ipo_md_beta{beta:g}", f"seed{seed}"))
                beta_rows.append(["ipo_md", beta, tau, seed, r["final_winrate_vs_sft"]])
        _write_csv(os.path.join(out, "tau_sweep.csv"), ["method", "tau", "seed", "winrate_vs_sft"], tau_rows)
        _write_csv(os.path.join(out, "beta_sweep.csv"), ["method", "beta", "tau", "seed", "winrate_vs_sft"], beta_rows)
    _write_csv(os.path.join(out, "curves.csv"), ["method", "tau", "beta", "seed", "step", "winrate_vs_sft"], curves)

    # 5. side-by-side evaluation on held-out prompts (gold judge and PM)
    models = [f"{m}={r['model']}" for m in cfg.methods for r in runs[m]] + [f"sft={sft['model']}"]
    ev = run_evaluate(EvalConfig(out=os.path.join(out, "eval"), seed=cfg.seed, models=models, pm=pm["pm"],
                                 n_prompts=cfg.n_prompts, **common), progress=False)
    labels = ev["labels"]
    s = labels.index("sft")
    winrate = {}
    for i, m in enumerate(labels):
        if m != "sft":
            per_seed = [float(v) for v in ev["gold_per_seed_pair"][i][s]]
            winrate[m] = {"mean": float(np.mean(per_seed)), "std": float(np.std(per_seed)), "per_seed": per_seed}
    summary = {
        "config": dataclasses.asdict(cfg),
        "methods": list(cfg.methods),
        "matrix_labels": labels,
        "win_matrix_gold_mean": ev["gold_mean"], "win_matrix_gold_std": ev["gold_std"],
        "win_matrix_pm_mean": ev["pm_mean"], "win_matrix_pm_std": ev["pm_std"],
        "winrate_vs_sft": winrate,
        "pm_accuracy": pm["heldout"]["pm"]["accuracy"],
        "pm_calibration_error": pm["heldout"]["pm"]["calibration_error"],
        "pm_mean_abs_error": pm["heldout"]["pm"]["mean_abs_error"],
        "rm_accuracy": pm["heldout"].get("rm", {}).get("accuracy"),
        "step_time_s": {m: float(np.mean([r["step_time_s"] for r in runs[m] if r["step_time_s"]] or [float("nan")]))
                        for m in cfg.methods},
        "n_eval_prompts": ev["n_prompts"],
        "wall_time_s": time.perf_counter() - t_start,
    }
    atomic_write_json(os.path.join(out, "summary.json"), summary)
    if progress:
        print("gold judge, p(row > column), mean (std) over seed pairs:")
        print(format_matrix(labels, ev["gold_mean"], ev["gold_std"]))
        for m, w in winrate.items():
            print(f"{m:>12} vs sft (gold): {w['mean']:.3f} ({w['std']:.3f})  step {summary['step_time_s'][m]:.3f}s")
        print(f"PM held-out accuracy {summary['pm_accuracy']:.3f}, calibration error "
              f"{summary['pm_calibration_error']:.3f}; wall time {summary['wall_time_s']:.0f}s")
    return summary

