"""Stage ``study``: the paper's protocol: sweep, select on validation, rerun with seeds, test.

Steps (every run is a run folder; ``--resume`` reuses finished runs and continues a killed one):
  1. chain 0: SFT (mu), PM and RM;
  2. sweep: every method over its tau grid (``--taus METHOD=T1,T2,..``; RL included) and, for
     IPO-MD and Nash-MD-PG, over the beta grid (``--betas``), one seed; each run records the gold win
     rate against SFT on the ``valid`` split every ``--eval-every`` steps (its checkpoints) ->
     ``sweep.csv`` (``method,tau,beta,step,winrate_vs_sft``);
  3. selection: per method, the (tau, beta, checkpoint step) with the highest validation win rate
     -> ``selected.csv``. A checkpoint is rerun as a run of that many steps: alignment is
     deterministic per seed with a constant learning rate, so it is the same policy;
  4. the selected settings rerun on ``--chains`` chains (SFT, PM, RM and alignment retrained per
     chain seed, ``--seed`` + chain; chain 0 reuses step 1);
  5. the final side-by-side matrix on the ``test`` split, judged by the gold judge and by the PM
     (mean and 95 % t interval over chains) -> ``summary.json`` (the pipeline's format, rendered by
     ``python -m llm report``) and ``final_matrix.csv`` (``judge,row,column,mean,ci95``);
  6. the paper's figures' data against the **selected RL checkpoint** (chain 0, ``valid`` split,
     exact gold): every sweep run's final policy against RL and against SFT -> ``sweep_vs_rl.csv``
     (``method,tau,beta,opponent,winrate,eval_ci95``) for ``python -m figures --llm-study DIR``.
``--preset quick`` (default) shrinks the grids and sizes so that the study finishes in about
45 minutes on a 2-core CPU and prints what it reduced; ``--preset paper`` keeps the flags as given.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from tabular.files import atomic_write_json
from tabular.methods import METHODS

from .align import run_align
from .config import AlignConfig
from .models import load_causal_lm
from .pipeline import (
    curve_rows,
    evaluate_chain,
    provenance,
    stage_flags,
    summarise,
    train_chain_judges,
    write_csv,
)
from .runtime import claim_run_dir, setup_torch, stage_function, start_run_dir
from .sampling import sample_responses, stream_seed

__all__ = ["run_study", "select_settings", "apply_preset", "QUICK"]

# The quick preset: what it sets (printed by the study, so its output says what it reduced).
# Its tau grids start one step below where the first quick study (941dd80) selected every method's
# smallest tau, so that a selection inside the grid can be told from one at its edge.
QUICK = {"taus": ["online_ipo=0.005,0.02,0.1", "ipo_md=0.005,0.02,0.1", "online_dpo=0.025,0.1,0.5",
                  "online_slic=0.025,0.1,0.5", "nash_md_pg=0.0025,0.01,0.05", "rl=0.0025,0.01,0.05"],
         "betas": ["0.125", "0.5"], "chains": 3, "sft_steps": 500, "pm_steps": 1000, "pm_pairs": 8000,
         "align_steps": 150, "eval_every": 50,
         "valid_prompts": 256, "n_prompts": 2048, "samples_per_prompt": 1}


def apply_preset(cfg):
    """``cfg`` with the preset's values; returns (config, [lines saying what changed])."""
    if cfg.preset != "quick":
        return cfg, []
    changes = {k: v for k, v in QUICK.items() if getattr(cfg, k) != v}
    return dataclasses.replace(cfg, **changes), [f"--{k.replace('_', '-')} {v} (given {getattr(cfg, k)})"
                                                 for k, v in changes.items()]


def _grid(cfg) -> list[tuple[str, float, float]]:
    """(method, tau, beta) of every sweep run: the beta grid for the methods that use beta, else
    ``cfg.beta``."""
    taus = cfg.tau_grid
    return [(m, t, b) for m in cfg.methods for t in taus[m]
            for b in (cfg.beta_grid if METHODS[m].uses_beta else [cfg.beta])]


def select_settings(rows: list[dict]) -> dict:
    """Per method the sweep row (tau, beta, step > 0) with the highest validation win rate; ties go
    to the earlier step, then the smaller tau, then the smaller beta (the first in sorted order)."""
    best = {}
    for r in sorted(rows, key=lambda r: (r["method"], r["tau"], r["beta"], r["step"])):
        if r["step"] > 0 and (r["method"] not in best
                              or r["winrate_vs_sft"] > best[r["method"]]["winrate_vs_sft"]):
            best[r["method"]] = r
    return best


def _gold_vs(task, codec, prompts, n, a, b) -> tuple[float, float]:
    """Mean exact gold P(a > b) and its within-chain 95 % half-width over prompts."""
    g = task.gold_prob(prompts, a, b).reshape(-1, n).mean(0)
    return float(g.mean()), float(1.96 * g.std(ddof=1) / np.sqrt(n))


@stage_function
def run_study(cfg, progress: bool = True) -> dict:
    """Run the study protocol; returns its ``summary.json`` contents."""
    from .tasks import make_task

    cfg.validate()
    cfg, reduced = apply_preset(cfg)
    cfg.validate()  # the preset's chains and grids pass the same checks (seed range, duplicates)
    if progress and reduced:
        print("study --preset quick reduces: " + "; ".join(reduced), flush=True)
    device = setup_torch(cfg)
    resuming = claim_run_dir(cfg)
    start_run_dir(cfg, resuming)
    t0, origin = time.perf_counter(), provenance()
    task = make_task(cfg.task, cfg.task_seed)
    common = stage_flags(cfg, resume=True)  # a study always reuses its finished runs

    def chain_models(c):  # chain c's seed is --seed + c
        root = os.path.join(cfg.out, f"chain{c}")
        return (root, *train_chain_judges(cfg, root, cfg.seed + c, common, progress))

    def align(root, sft, pm, c, method, tau, beta, steps, eval_every, folder):
        return run_align(AlignConfig(
            out=os.path.join(root, folder), seed=cfg.seed + c, sft=sft["model"], pm=pm["pm"], rm=pm["rm"],
            method=method,
            tau=tau, beta=beta, steps=steps, batch_size=cfg.align_batch_size, lr=cfg.align_lr,
            eval_every=eval_every, eval_prompts=cfg.valid_prompts, **common), progress)

    # 1-2. chain 0 and the sweep (validation curves)
    root0, sft0, pm0 = chain_models(0)
    sweep_rows, sweep_runs = [], {}
    for m, t, b in _grid(cfg):
        folder = os.path.join("sweep", f"{m}_tau{t:g}_beta{b:g}")
        sweep_runs[(m, t, b)] = align(root0, sft0, pm0, 0, m, t, b, cfg.align_steps, cfg.eval_every, folder)
        sweep_rows += [{"method": m, "tau": t, "beta": b, "step": r[4], "winrate_vs_sft": r[5]}
                       for r in curve_rows(os.path.join(root0, folder), m, t, b, cfg.seed, "pm")]
    write_csv(os.path.join(cfg.out, "sweep.csv"), ["method", "tau", "beta", "step", "winrate_vs_sft"],
              [[r[k] for k in ("method", "tau", "beta", "step", "winrate_vs_sft")] for r in sweep_rows])
    # 3. selection on the validation split
    selected = select_settings(sweep_rows)
    write_csv(os.path.join(cfg.out, "selected.csv"),
              ["method", "tau", "beta", "step", "valid_winrate_vs_sft"],
              [[m, s["tau"], s["beta"], s["step"], s["winrate_vs_sft"]] for m, s in selected.items()])
    if progress:
        for m, s in selected.items():
            print(f"selected {m}: tau {s['tau']:g}, beta {s['beta']:g}, step {s['step']} "
                  f"(valid win rate vs SFT {s['winrate_vs_sft']:.3f})", flush=True)

    # 4-5. selected settings on every chain; the final matrices on the test split
    chains = []
    for c in range(cfg.chains):
        root, sft, pm = (root0, sft0, pm0) if c == 0 else chain_models(c)
        runs = {m: (sweep_runs[(m, s["tau"], s["beta"])] if c == 0 and s["step"] == cfg.align_steps else
                    align(root, sft, pm, c, m, s["tau"], s["beta"], s["step"], 0,
                          os.path.join("selected", f"{m}_tau{s['tau']:g}_beta{s['beta']:g}_step{s['step']}")))
                for m, s in selected.items()}  # chain 0 at the sweep's last step: the sweep run itself
        if c == 0 and "rl" in runs:
            chains_rl0 = runs["rl"]["model"]  # the selected RL checkpoint the figures compare with
        ev = evaluate_chain(cfg, cfg.seed + c, task, device, sft["model"], pm["pm"],
                            {m: r["model"] for m, r in runs.items()})
        atomic_write_json(os.path.join(root, "test_eval.json"), ev)
        chains.append({"eval": ev, "heldout": pm["heldout"],
                       "step_time_s": {m: r["step_time_s"] or float("nan") for m, r in runs.items()}})
    summary = summarise(cfg, chains, time.perf_counter() - t0, origin,
                        judges=["pm"])  # aligned with the learned PM
    summary["selected"] = selected
    summary["preset_reduced"] = reduced
    labels = summary["labels"]
    write_csv(os.path.join(cfg.out, "final_matrix.csv"), ["judge", "row", "column", "mean", "ci95"],
              [[j, labels[a], labels[b], summary[f"win_matrix_{j}"]["mean"][a][b],
                summary[f"win_matrix_{j}"]["ci95"][a][b]]
               for j in ("gold", "pm") for a in range(len(labels)) for b in range(len(labels))])

    # 6. every sweep policy against the selected RL checkpoint (and SFT), chain 0, validation split
    if "rl" in selected:
        prompts = task.prompts("valid", cfg.valid_prompts) * cfg.samples_per_prompt
        rl_path = chains_rl0
        opponents = {}
        for name, path in (("rl", rl_path), ("sft", sft0["model"])):
            model, codec = load_causal_lm(path, name, task.max_prompt_tokens)
            opponents[name] = sample_responses(model, codec, prompts,
                                               stream_seed(cfg.seed, name, "study-valid"), device,
                                               task.max_new_tokens)[0]
        rows = []
        for (m, t, b), r in sweep_runs.items():
            model, codec = load_causal_lm(r["model"], m, task.max_prompt_tokens)
            texts = sample_responses(model, codec, prompts, stream_seed(cfg.seed, m, t, b, "study-valid"),
                                     device, task.max_new_tokens)[0]
            for opp, opp_texts in opponents.items():
                rows.append([m, t, b, opp,
                             *_gold_vs(task, codec, prompts, cfg.valid_prompts, texts, opp_texts)])
        write_csv(os.path.join(cfg.out, "sweep_vs_rl.csv"),
                  ["method", "tau", "beta", "opponent", "winrate", "eval_ci95"], rows)
    summary["wall_time_s"] = time.perf_counter() - t0
    atomic_write_json(os.path.join(cfg.out, "summary.json"), summary)
    if progress:
        from .report import render_report

        print(render_report(summary, ("winrate", "order", "matrix")))
        print(f"study wall time {summary['wall_time_s'] / 60:.1f} min")
    return summary
