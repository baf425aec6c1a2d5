"""What every chain-running stage shares (``pipeline``, ``study``, ``judges``, ``features``).

A **chain** is everything one seed trains: the SFT model (mu), the PM and RM
(:func:`train_chain_judges`), and the alignment runs of a stage; chain i of a stage uses seed
``--seed`` + i. Here: the flags a stage hands the stages it runs (:func:`stage_flags`), one
chain's evaluation on the ``test`` split (:func:`evaluate_chain`), intervals over chains
(:func:`chain_interval`), the judges' held-out metrics (:func:`judge_summary`), ``summary.json``
(:func:`summarise`, schema :data:`llm.report.SUMMARY_SCHEMA`), the run's provenance, the curves'
rows and the CSV writer. The stages themselves are :mod:`llm.pipeline`, :mod:`llm.study` and
:mod:`llm.judges`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import sys

import numpy as np

from opo_toolkit.files import atomic_write_text
from opo_toolkit.provenance import measured_provenance

from .config import PMConfig, SFTConfig
from .evaluate import across_chains, chain_matrices, t_halfwidth
from .models import load_causal_lm
from .report import SUMMARY_SCHEMA
from .sampling import sample_responses, stream_seed
from .scorers import load_scorer
from .train import run_sft, run_train_pm

__all__ = ["summarise", "judge_summary", "train_chain_judges", "stage_flags", "provenance", "label_of",
           "JUDGE_METRICS", "write_csv", "curve_rows", "chain_interval", "evaluate_chain"]


def write_csv(path: str, header: list[str], rows: list[list]) -> None:
    """Write ``header`` and ``rows`` as one CSV file, atomically (also the study's and judges' CSVs)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def curve_rows(run_dir: str, method: str, tau: float, beta: float, seed: int, judge: str) -> list[list]:
    """The periodic win rates against SFT an alignment run logged (``RUN_DIR/metrics.jsonl``), one row
    ``[method, tau, beta, seed, step, winrate_vs_sft, judge]`` per evaluation."""
    rows = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for r in map(json.loads, f):
            if "eval/winrate_vs_sft" in r:
                rows.append([method, tau, beta, seed, r["step"], r["eval/winrate_vs_sft"], judge])
    return rows


def label_of(method: str, judge: str) -> str:
    """Row/column name of an aligned policy: ``METHOD`` (learned PM/RM) or ``METHOD@gold``."""
    return method if judge == "pm" else f"{method}@{judge}"


def provenance(command: list[str] | None = None) -> dict:
    """Where a result comes from, as :func:`opo_toolkit.provenance.measured_provenance` (the one
    description every run and benchmark records) measures it, under ``measured``; and, read from
    it, the keys the summaries have always had: ``date_utc``, ``machine``, ``float_path`` (torch's
    CPU kernels and the variables that forced them: the round-off), ``versions``,
    ``git_commit``, ``git_dirty`` and the exact ``command``."""
    m = measured_provenance(["python", "-m", "llm", *(sys.argv[1:] if command is None else command)],
                            extra_packages=("matplotlib",))
    date = datetime.datetime.fromisoformat(m["date_utc"])
    return {"date_utc": date.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{m['cpu']['model']}, {m['cpu']['logical_cores']} CPUs, {m['platform']}",
            "float_path": {"cpu_capability": m["cpu"]["capability"], "env": m["cpu"]["float_path_env"]},
            "versions": m["versions"], "git_commit": m["git"]["commit"], "git_dirty": m["git"]["dirty"],
            "command": m["command"], "measured": m}


def chain_interval(values) -> dict:
    """One number per chain -> its mean with the 95 % t interval over chains: ``mean``, ``ci95`` (the
    half-width; nan for one chain), ``lo``, ``hi`` and the ``per_chain`` values."""
    v = np.asarray(values, np.float64)
    hw = t_halfwidth(v)
    return {"mean": float(v.mean()), "ci95": hw, "lo": float(v.mean() - hw), "hi": float(v.mean() + hw),
            "per_chain": v.tolist()}


def summarise(cfg, chains: list[dict], wall_time_s: float, origin: dict | None = None, judges=None) -> dict:
    """``summary.json`` from the per-chain results (evaluation matrices, held-out judge metrics);
    ``judges``: the judge conditions the policies were aligned under (default ``cfg.judges``)."""
    judges_run = list(judges or cfg.judges)
    labels = chains[0]["eval"]["labels"]
    s = labels.index("sft")
    gold = across_chains([c["eval"]["gold"] for c in chains])
    has_pm = all("pm" in c["eval"] for c in chains)  # a gold-only run has no PM matrix
    pm = across_chains([c["eval"]["pm"] for c in chains]) if has_pm else None
    eval_hw = np.max([c["eval"]["gold_eval_hw"] for c in chains], axis=0)
    winrate, winrate_pm, separated = {}, {}, {}
    for judge in judges_run:
        rows = [label_of(m, judge) for m in cfg.methods]
        winrate[judge], winrate_pm[judge] = {}, {}
        for m, lab in zip(cfg.methods, rows):
            i = labels.index(lab)
            winrate[judge][m] = {**chain_interval(gold["per_chain"][i][s]), "eval_ci95": float(eval_hw[i, s])}
            if has_pm:
                winrate_pm[judge][m] = chain_interval(pm["per_chain"][i][s])
        separated[judge] = [  # head to head: a beats b on every machine the chain interval covers
            {"winner": a, "loser": b, "p": gold["mean"][labels.index(la)][labels.index(lb)],
             "ci95": gold["ci95"][labels.index(la)][labels.index(lb)]}
            for a, la in zip(cfg.methods, rows) for b, lb in zip(cfg.methods, rows)
            if a != b and gold["mean"][labels.index(la)][labels.index(lb)]
            - gold["ci95"][labels.index(la)][labels.index(lb)] > 0.5]
    judges, reliability = judge_summary(chains)
    step_time = {label_of(m, j): float(np.mean([c["step_time_s"][label_of(m, j)] for c in chains]))
                 for j in judges_run for m in cfg.methods}
    return {
        "schema": SUMMARY_SCHEMA,
        "config": dataclasses.asdict(cfg),
        "provenance": origin or provenance(),
        "chains": len(chains),
        "methods": list(cfg.methods),
        "judges_run": judges_run,
        "labels": labels,
        "matrix_labels": labels,
        "win_matrix_gold": gold,
        "win_matrix_gold_eval_ci95": eval_hw.tolist(),
        "win_matrix_pm": pm,
        "winrate_vs_sft": winrate,
        "winrate_vs_sft_pm_judge": winrate_pm if has_pm else None,
        "separated": separated,
        "judges": judges,
        "reliability": reliability,
        "step_time_s": step_time,
        "n_eval_prompts": cfg.n_prompts,
        "n_pm_eval_prompts": min(cfg.n_prompts, cfg.pm_eval_prompts) if has_pm else 0,
        "samples_per_prompt": cfg.samples_per_prompt,
        "wall_time_s": wall_time_s,
    }


# What train-pm's held-out scoring reports for each judge, against the exact gold probabilities.
JUDGE_METRICS = ("accuracy", "calibration_error", "mean_abs_error", "brier")


def stage_flags(cfg, resume: bool | None = None) -> dict:
    """The run flags a chain-running stage (pipeline, study, judges) hands each stage it runs."""
    return dict(task=cfg.task, task_seed=cfg.task_seed, device=cfg.device, bf16=cfg.bf16,
                threads=cfg.threads, resume=cfg.resume if resume is None else resume,
                checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every)


def train_chain_judges(cfg, root: str, seed: int, common: dict, progress: bool,
                       judges: bool = True) -> tuple[dict, dict | None]:
    """One chain's SFT model (``ROOT/sft``) and its PM and RM (``ROOT/pm``), trained with ``seed``:
    what every chain of the pipeline, the study and the judges stage trains before alignment.
    ``judges=False`` (a gold-only chain: nothing is aligned with or judged by a learned model)
    trains SFT alone and returns ``(sft, None)``."""
    shape = dict(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head)
    sft = run_sft(SFTConfig(out=os.path.join(root, "sft"), seed=seed, steps=cfg.sft_steps, **shape, **common),
                  progress)
    if not judges:
        return sft, None
    pm = run_train_pm(PMConfig(out=os.path.join(root, "pm"), seed=seed, sft=sft["model"], steps=cfg.pm_steps,
                               n_pairs=cfg.pm_pairs, pm_form=cfg.pm_form, pm_init=cfg.pm_init, **shape,
                               **common), progress)
    return sft, pm


def judge_summary(chains: list[dict]) -> tuple[dict, dict]:
    """``judges`` (PM/RM held-out accuracy, ECE, MAE, Brier against gold, each an interval over
    chains; the always-1/2 MAE; the gold BT fit's accuracy) and ``reliability`` (pooled bins) of
    ``chains``, each ``{"heldout": train-pm's heldout.json, ["bt_fit_accuracy": float]}``."""
    judges = {who: {k: chain_interval([c["heldout"][who][k] for c in chains]) for k in JUDGE_METRICS}
              for who in ("pm", "rm") if who in chains[0]["heldout"]}
    if all("gold_sft_pairs_mean_abs_p_minus_half" in c["heldout"] for c in chains):  # none gold-only
        judges["always_half"] = {"mean_abs_error": chain_interval(
            [c["heldout"]["gold_sft_pairs_mean_abs_p_minus_half"] for c in chains])}
    if any("bt_fit_accuracy" in c for c in chains):
        judges["gold_bt_fit"] = {"accuracy": chain_interval([c["bt_fit_accuracy"] for c in chains
                                                             if "bt_fit_accuracy" in c])}
    reliability = {who: _pool_reliability([c["heldout"][who]["reliability"] for c in chains])
                   for who in ("pm", "rm") if who in chains[0]["heldout"]}
    return judges, reliability


def _pool_reliability(per_chain: list[list[dict]]) -> list[dict]:
    """Reliability bins pooled over chains (count-weighted means of prediction and gold)."""
    out = []
    for bins in zip(*per_chain):
        full = [b for b in bins if b["count"]]
        n = sum(b["count"] for b in full)
        out.append({"lo": bins[0]["lo"], "hi": bins[0]["hi"], "count": n,
                    "mean_pred": sum(b["count"] * b["mean_pred"] for b in full) / n if n else None,
                    "mean_gold": sum(b["count"] * b["mean_gold"] for b in full) / n if n else None})
    return out


def evaluate_chain(cfg, chain: int, task, device, sft_path: str, pm_path: str | None, policies: dict) -> dict:
    """Sample every policy of one chain on the ``test`` split and build its matrices (the PM's too,
    unless ``pm_path`` is None)."""
    prompts = task.prompts("test", cfg.n_prompts) * cfg.samples_per_prompt
    max_new = task.max_new_tokens
    responses = {}
    for name, path in {**policies, "sft": sft_path}.items():
        model, codec = load_causal_lm(path, name, task.max_prompt_tokens)
        responses[name] = sample_responses(model, codec, prompts, stream_seed(chain, name, "test"), device,
                                           max_new)
    pm = None
    if pm_path is not None:  # a gold-only chain has no PM: the gold matrix alone
        pm, _ = load_scorer(pm_path, "--pm preference model", task.max_prompt_tokens, "preference")
        pm.to(device).eval()
    ev = chain_matrices(task, codec, prompts, cfg.n_prompts, responses, pm, device, cfg.pm_eval_prompts)
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ev.items()}
