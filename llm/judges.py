"""Stage ``judges``: the learned PM against the Bradley-Terry RM, over many chains.

The pipeline's 3 chains say how accurate its judges are, but too few to separate the PM from the RM:
a paired interval over 3 chains uses t(2) = 4.30. This stage trains, per chain seed (``--seed`` + i
for i < ``--seeds``), exactly what a pipeline chain trains before alignment: the SFT model, then the
RM and the PM (``train-pm``, same flags), and scores both against the exact gold judge on that
chain's held-out pairs (``valid``-split prompts). Chain i here is the pipeline's chain i, bit for bit.

Writes into ``OUT``: ``chainI/sft`` and ``chainI/pm`` (run folders), ``judges.csv``
(``seed,judge,accuracy,calibration_error,mean_abs_error,brier``) and ``summary.json``: ``config``,
``provenance``, ``chains``, ``judges`` and ``reliability`` (as in the pipeline's summary),
``pm_minus_rm_accuracy`` (``per_chain``, ``mean``, ``ci95`` = 95 % paired t half-width, ``lo``,
``hi``) and ``wall_time_s``; ``python -m llm report OUT`` renders it.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from opo_toolkit.files import atomic_write_json

from .chains import (
    JUDGE_METRICS,
    chain_interval,
    judge_summary,
    provenance,
    stage_flags,
    train_chain_judges,
    write_csv,
)
from .runtime import claim_run_dir, setup_torch, stage_function, start_run_dir

__all__ = ["run_judges"]


@stage_function
def run_judges(cfg, progress: bool = True) -> dict:
    """Train and score the judges of every chain with ``cfg``; returns the ``summary.json`` contents."""
    cfg.validate()
    setup_torch(cfg)
    resuming = claim_run_dir(cfg)
    start_run_dir(cfg, resuming)
    t0, origin = time.perf_counter(), provenance()
    common = stage_flags(cfg)
    chains, rows = [], []
    for i in range(cfg.seeds):
        root, seed = os.path.join(cfg.out, f"chain{i}"), cfg.seed + i
        _, pm = train_chain_judges(cfg, root, seed, common, progress)
        chains.append({"heldout": pm["heldout"]})
        rows += [[seed, who, *(pm["heldout"][who][k] for k in JUDGE_METRICS)] for who in ("pm", "rm")]
        if progress:
            print(f"chain {i} (seed {seed}): PM accuracy {pm['heldout']['pm']['accuracy']:.3f}, "
                  f"RM {pm['heldout']['rm']['accuracy']:.3f}", flush=True)
    judges, reliability = judge_summary(chains)
    diff = np.subtract(judges["pm"]["accuracy"]["per_chain"], judges["rm"]["accuracy"]["per_chain"])
    summary = {"schema": 1, "kind": "judges", "config": dataclasses.asdict(cfg), "provenance": origin,
               "chains": cfg.seeds, "judges": judges, "reliability": reliability,
               "pm_minus_rm_accuracy": chain_interval(diff), "wall_time_s": time.perf_counter() - t0}
    write_csv(os.path.join(cfg.out, "judges.csv"), ["seed", "judge", *JUDGE_METRICS], rows)
    atomic_write_json(os.path.join(cfg.out, "summary.json"), summary)
    if progress:
        from .report import render_report

        print(render_report(summary, ("provenance", "judges")))
    return summary
