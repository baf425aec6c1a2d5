"""Stage ``pipeline``: per chain seed, sft -> train-pm -> align (judges x methods) -> evaluate.

A **chain** is everything that one seed trains: the SFT model (mu), the PM and RM, and every
alignment run. ``--seeds C`` runs C chains, chain i with seed ``--seed`` + i, so the confidence
intervals include the chain-to-chain variance of every trained model, not only the alignment seed.
Each method is aligned under each ``--judges`` condition: ``pm`` (pairs labelled by the learned PM;
``rl`` rewarded by the learned RM) and ``gold`` (pairs labelled by the exact gold probabilities;
``rl`` rewarded by the gold judge's Bradley-Terry fit). Evaluation uses the ``test`` split (disjoint
documents from every other split), ``n_prompts`` prompts x ``samples_per_prompt`` responses per
policy, each policy its own sampling stream, and averages the **exact** gold probabilities (not
sampled 0/1 verdicts).

Writes into ``OUT``: ``chainC/sft``, ``chainC/pm``, ``chainC/align/JUDGE/METHOD`` (run folders),
``chainC/eval.json`` and
  - ``summary.json`` (:func:`llm.chains.summarise`): ``labels`` (rows/columns of the matrices: ``METHOD`` for
    the pm condition, ``METHOD@gold`` for the gold condition, then ``sft``), ``win_matrix_gold`` and
    ``win_matrix_pm`` (``mean``, ``ci95`` = 95 % t half-width over chains with ddof = 1,
    ``per_chain``), ``winrate_vs_sft`` (``{judge: {method: {mean, ci95, lo, hi, per_chain,
    eval_ci95}}}``; ``eval_ci95`` = the largest within-chain evaluation half-width), ``separated``
    (per condition, the head-to-head pairs whose unadjusted chain-level interval excludes 1/2; what
    the report states is the Holm-adjusted :func:`llm.report.head_to_head`), ``judges``
    (PM/RM held-out accuracy, ECE, MAE, Brier against gold; the gold BT fit's accuracy),
    ``reliability`` (PM and RM, pooled over chains), ``step_time_s``, ``provenance`` (date, machine,
    git commit, command), ``wall_time_s``;
  - ``curves.csv``: ``method,tau,beta,seed,step,winrate_vs_sft,judge`` (gold, ``valid`` split,
    every ``eval_every`` steps, all runs);
  - with ``--sweep``: ``tau_sweep.csv`` and ``beta_sweep.csv`` on chain 0 (the ``study`` stage is
    the full protocol).
With ``--resume`` finished stages are skipped and an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import os
import time

from opo_toolkit.files import atomic_write_json
from tabular.methods import METHODS

from .align import run_align
from .chains import (
    curve_rows,
    evaluate_chain,
    label_of,
    provenance,
    stage_flags,
    summarise,
    train_chain_judges,
    write_csv,
)
from .config import AlignConfig
from .runtime import claim_run_dir, setup_torch, stage_function, start_run_dir

__all__ = ["run_pipeline"]


@stage_function
def run_pipeline(cfg, progress: bool = True) -> dict:
    """Run every chain with ``cfg``; returns the ``summary.json`` contents."""
    from .tasks import make_task

    cfg.validate()
    device = setup_torch(cfg)
    resuming = claim_run_dir(cfg)
    start_run_dir(cfg, resuming)
    t_start, origin = time.perf_counter(), provenance()  # the code and command as they were at the start
    common = stage_flags(cfg)
    task = make_task(cfg.task, cfg.task_seed)
    curves, chains = [], []
    tau_rows, beta_rows = [], []
    needs_pm = "pm" in cfg.judges or cfg.sweep  # the sweeps align with the learned PM
    for i in range(cfg.seeds):
        root, c = os.path.join(cfg.out, f"chain{i}"), cfg.seed + i  # chain i's seed: --seed + i
        # 1. SFT (mu) ; 2. preference + reward models: retrained per chain seed
        # a gold-only run (--judges gold, no sweep) needs no PM or RM: each chain costs a third
        sft, pm = train_chain_judges(cfg, root, c, common, progress, judges=needs_pm)
        finished = {}

        def align(method, judge, tau, beta, folder):
            key = (method, judge, tau, beta if METHODS[method].uses_beta else None)
            if key not in finished:
                run_dir = os.path.join(root, folder)
                finished[key] = run_align(AlignConfig(
                    out=run_dir, seed=c, sft=sft["model"], pm=pm["pm"] if pm else "",
                    rm=pm.get("rm", "") if pm else "", judge=judge,
                    method=method, tau=tau, beta=beta, steps=cfg.align_steps, batch_size=cfg.align_batch_size,
                    lr=cfg.align_lr, eval_every=cfg.eval_every, eval_prompts=cfg.eval_prompts,
                    **common), progress)
                curves.extend(curve_rows(run_dir, method, tau, beta, c, judge))
            return finished[key]

        # 3. alignment runs, each judge condition
        runs = {label_of(m, j): align(m, j, cfg.tau_of(m), cfg.beta, os.path.join("align", j, m))
                for j in cfg.judges for m in cfg.methods}
        # 4. sweeps (chain 0 only; the study stage sweeps with seeds and a validation split)
        if cfg.sweep and i == 0:
            for method in ("online_ipo", "online_dpo"):
                for tau in cfg.sweep_taus:
                    r = align(method, "pm", tau, cfg.beta, os.path.join("sweep", f"{method}_tau{tau:g}"))
                    tau_rows.append([method, tau, c, r["final_winrate_vs_sft"]])
            for beta in cfg.sweep_betas:
                r = align("ipo_md", "pm", cfg.tau_of("ipo_md"), beta,
                          os.path.join("sweep", f"ipo_md_beta{beta:g}"))
                beta_rows.append(["ipo_md", beta, cfg.tau_of("ipo_md"), c, r["final_winrate_vs_sft"]])
        # 5. this chain's side-by-side evaluation on the test split (gold judge and PM)
        ev = evaluate_chain(cfg, c, task, device, sft["model"], pm["pm"] if pm else None,
                            {k: r["model"] for k, r in runs.items()})
        atomic_write_json(os.path.join(root, "eval.json"), ev)
        chain = {"eval": ev, "heldout": pm["heldout"] if pm else {},
                 "step_time_s": {k: r["step_time_s"] or float("nan") for k, r in runs.items()}}
        bt = [r.get("bt_fit_accuracy") for r in runs.values() if r.get("bt_fit_accuracy") is not None]
        if bt:
            chain["bt_fit_accuracy"] = bt[0]
        chains.append(chain)

    if cfg.sweep:
        write_csv(os.path.join(cfg.out, "tau_sweep.csv"), ["method", "tau", "seed", "winrate_vs_sft"],
                  tau_rows)
        write_csv(os.path.join(cfg.out, "beta_sweep.csv"),
                  ["method", "beta", "tau", "seed", "winrate_vs_sft"], beta_rows)
    write_csv(os.path.join(cfg.out, "curves.csv"),
              ["method", "tau", "beta", "seed", "step", "winrate_vs_sft", "judge"], curves)
    summary = summarise(cfg, chains, time.perf_counter() - t_start, origin)
    atomic_write_json(os.path.join(cfg.out, "summary.json"), summary)
    if progress:
        from .report import render_report

        print(render_report(summary))
    return summary
