"""Stage ``study``: the paper's protocol: sweep, select on validation, rerun with seeds, test.

Steps (every run is a run folder; ``--resume`` reuses finished runs and continues a killed one):
  1. the **selection chain** ``OUT/select``: SFT (mu), PM and RM trained with ``--select-seed``
     (default ``--seed`` + 1000), a seed no test chain uses (refused if it is one of ``--seed`` +
     0 .. max(``--chains``, ``--gold-chains``) - 1), so what is selected is tested on chains it never
     saw: no test policy is a sweep run or shares a trained model with one;
  2. sweep on the selection chain: every method over its tau grid (``--taus METHOD=T1,T2,..``; RL
     included) and, for IPO-MD and Nash-MD-PG, over the beta grid (``--betas``); each run records the
     gold win rate on the ``valid`` split every ``--eval-every`` steps (its checkpoints). RL is swept
     first and its checkpoint selected (by win rate against SFT); every other run also records its
     win rate against that fixed RL checkpoint's responses (``align --eval-vs``) -> ``sweep.csv``
     (``method,tau,beta,step,winrate_vs_sft,winrate_vs_rl``);
  3. selection (:func:`select_settings`): per method the (tau, beta, checkpoint step) with the highest
     validation win rate, by ``--select-against``: ``rl`` (default, the paper's criterion: RL against
     SFT, every other method against the selected RL checkpoint) or ``sft`` (every method against
     SFT) -> ``selected.csv`` (its ``criterion`` and ``select_seed`` columns say which). A checkpoint
     is rerun as a run of that many steps: alignment is deterministic per seed with a constant
     learning rate, so it is the same policy;
  4. the selected settings rerun on the **test chains**: ``--chains`` chains of the learned-PM
     condition (chain c: SFT, PM, RM and every alignment run retrained with seed ``--seed`` + c,
     ``OUT/chainC/selected``) and ``--gold-chains`` chains of the gold condition (aligned with the
     exact gold judge, RL with its Bradley-Terry fit; chain c seeded ``--seed`` + c, sharing chain
     c's SFT where it exists; no PM or RM is trained, as in ``pipeline --judges gold``;
     ``OUT/chainC/gold``). The selection made under the learned PM is used for both conditions;
  5. the final side-by-side matrices on the ``test`` split (mean and 95 % t interval over chains),
     each condition its own summary in the pipeline's format (:func:`llm.chains.summarise`, one
     Holm family each in ``python -m llm report``): ``summary.json`` and ``final_matrix.csv``
     (``judge,row,column,mean,ci95``; judged by the gold judge and the PM) for the learned-PM
     condition, ``summary_gold.json`` and ``final_matrix_gold.csv`` for the gold condition; both
     hold ``selected`` and ``selection`` (seed, criterion, the test chains' seeds); each chain's
     ``test_eval*.json`` names the run folders it tested (``policies``);
  6. the paper's figures' data against the **selected RL checkpoint** (selection chain, ``valid``
     split, exact gold): every sweep run's final policy against RL and against SFT ->
     ``sweep_vs_rl.csv`` (``method,tau,beta,opponent,winrate,eval_ci95``) for
     ``python -m figures --llm-study DIR``.
``--preset quick`` (default) shrinks the grids and sizes (and sets 20 gold chains) and prints what it
reduced; ``--preset paper`` keeps the flags as given.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from opo_toolkit.cliargs import shown_value
from opo_toolkit.files import atomic_write_json
from tabular.methods import METHODS

from .align import run_align
from .chains import (
    evaluate_chain,
    label_of,
    provenance,
    stage_flags,
    summarise,
    train_chain_judges,
    write_csv,
)
from .config import AlignConfig
from .models import load_causal_lm
from .runtime import claim_run_dir, setup_torch, stage_function, start_run_dir
from .sampling import sample_responses, stream_seed

__all__ = ["run_study", "select_settings", "apply_preset", "QUICK"]

# The quick preset: what it sets (printed by the study, so its output says what it reduced).
# Its tau grids start one step below where the first quick study (941dd80) selected every method's
# smallest tau, so that a selection inside the grid can be told from one at its edge.
QUICK = {"taus": {"online_ipo": (0.005, 0.02, 0.1), "ipo_md": (0.005, 0.02, 0.1),
                  "online_dpo": (0.025, 0.1, 0.5), "online_slic": (0.025, 0.1, 0.5),
                  "nash_md_pg": (0.0025, 0.01, 0.05), "rl": (0.0025, 0.01, 0.05)},
         "betas": (0.125, 0.5), "chains": 3, "sft_steps": 500, "pm_steps": 1000, "pm_pairs": 8000,
         "align_steps": 150, "eval_every": 50, "gold_chains": 20,
         "valid_prompts": 256, "n_prompts": 2048, "samples_per_prompt": 1}


def apply_preset(cfg):
    """``cfg`` with the preset's values; returns (config, [lines saying what changed], each value
    in its flag's words)."""
    if cfg.preset != "quick":
        return cfg, []
    changes = {k: v for k, v in QUICK.items() if getattr(cfg, k) != v}
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    lines = [f"--{k.replace('_', '-')} {shown_value(fields[k], v)} "
             f"(given {shown_value(fields[k], getattr(cfg, k))})" for k, v in changes.items()]
    return dataclasses.replace(cfg, **changes), lines


def _grid(cfg) -> list[tuple[str, float, float]]:
    """(method, tau, beta) of every sweep run: the beta grid for the methods that use beta, else
    ``cfg.beta``."""
    return [(m, t, b) for m in cfg.methods for t in cfg.taus[m]
            for b in (cfg.betas if METHODS[m].uses_beta else [cfg.beta])]


def select_settings(rows: list[dict], against: str = "sft") -> dict:
    """Per method the sweep row (tau, beta, step > 0) with the highest validation win rate; ties go
    to the earlier step, then the smaller tau, then the smaller beta (the first in sorted order).

    ``against="sft"``: the win rate against SFT (``winrate_vs_sft``) for every method; ``"rl"`` (the
    paper's): RL by its win rate against SFT, every other method by its win rate against the fixed,
    selected RL checkpoint (``winrate_vs_rl``; a method whose rows lack it is refused). Each selected
    row is returned with ``criterion`` (``sft`` or ``rl``) and ``winrate_vs_rl`` (None if absent)."""
    if against not in ("sft", "rl"):
        raise ValueError(f"against must be sft or rl, got {against!r}")
    best = {}
    for r in sorted(rows, key=lambda r: (r["method"], r["tau"], r["beta"], r["step"])):
        key = "winrate_vs_sft" if against == "sft" or r["method"] == "rl" else "winrate_vs_rl"
        if r["step"] <= 0:
            continue
        if r.get(key) is None:
            raise ValueError(f"{r['method']} tau {r['tau']:g} beta {r['beta']:g} step {r['step']}: no {key} "
                             "to select by")
        if r["method"] not in best or r[key] > best[r["method"]][key]:
            best[r["method"]] = r
    return {m: {"winrate_vs_rl": None, **r,
                "criterion": "sft" if against == "sft" or m == "rl" else "rl"} for m, r in best.items()}


def _gold_vs(task, codec, prompts, n, a, b) -> tuple[float, float]:
    """Mean exact gold P(a > b) and its within-chain 95 % half-width over prompts."""
    g = task.gold_prob(prompts, a, b).reshape(-1, n).mean(0)
    return float(g.mean()), float(1.96 * g.std(ddof=1) / np.sqrt(n))


def _curves(run_dir: str) -> list[tuple[int, float, float | None]]:
    """``(step, winrate_vs_sft, winrate_vs_rl)`` of every periodic evaluation a sweep run logged
    (``winrate_vs_rl``: its ``--eval-vs`` win rate against the selected RL checkpoint, else None)."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [(r["step"], r["eval/winrate_vs_sft"], r.get("eval/winrate_vs_opponent"))
                for r in map(json.loads, f) if "eval/winrate_vs_sft" in r]


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
    select_seed = cfg.selection_seed

    def align(root, sft, pm, seed, method, tau, beta, steps, eval_every, folder, judge="pm", eval_vs=""):
        return run_align(AlignConfig(
            out=os.path.join(root, folder), seed=seed, sft=sft["model"], pm=pm["pm"] if pm else "",
            rm=pm["rm"] if pm else "", judge=judge, method=method, tau=tau, beta=beta, steps=steps,
            batch_size=cfg.align_batch_size, lr=cfg.align_lr, eval_every=eval_every,
            eval_prompts=cfg.valid_prompts, eval_vs=eval_vs, **common), progress)

    def run_name(m, s):
        return f"{m}_tau{s['tau']:g}_beta{s['beta']:g}_step{s['step']}"

    # 1-2. the selection chain (its own seed, never a test chain's) and the sweep (validation curves):
    # RL first; with --select-against rl its selected checkpoint is every other run's --eval-vs opponent
    sel_root = os.path.join(cfg.out, "select")
    sft0, pm0 = train_chain_judges(cfg, sel_root, select_seed, common, progress)
    grid = sorted(_grid(cfg), key=lambda g: g[0] != "rl")  # stable: RL's runs first, then the rest in order
    sweep_rows, sweep_runs, rl_model = [], {}, ""

    def selected_rl():  # the selected RL checkpoint (a k-step rerun unless k is the sweep's last step)
        s = select_settings([r for r in sweep_rows if r["method"] == "rl"])["rl"]
        return (sweep_runs[("rl", s["tau"], s["beta"])]["model"] if s["step"] == cfg.align_steps else
                align(sel_root, sft0, pm0, select_seed, "rl", s["tau"], s["beta"], s["step"], 0,
                      os.path.join("selected", run_name("rl", s)))["model"])

    for m, t, b in grid:
        if m != "rl" and not rl_model and "rl" in cfg.methods:  # every RL run is done: select RL
            rl_model = selected_rl()
        folder = os.path.join("sweep", f"{m}_tau{t:g}_beta{b:g}")
        sweep_runs[(m, t, b)] = align(sel_root, sft0, pm0, select_seed, m, t, b, cfg.align_steps,
                                      cfg.eval_every, folder, eval_vs=rl_model if m != "rl" else "")
        sweep_rows += [{"method": m, "tau": t, "beta": b, "step": step, "winrate_vs_sft": vs_sft,
                        "winrate_vs_rl": vs_rl}
                       for step, vs_sft, vs_rl in _curves(os.path.join(sel_root, folder))]
    if "rl" in cfg.methods and not rl_model:  # RL alone
        rl_model = selected_rl()
    columns = ["method", "tau", "beta", "step", "winrate_vs_sft", "winrate_vs_rl"]
    write_csv(os.path.join(cfg.out, "sweep.csv"), columns,
              [["" if r[k] is None else r[k] for k in columns] for r in sweep_rows])
    # 3. selection on the validation split of the selection chain
    selected = select_settings(sweep_rows, cfg.select_against)
    write_csv(os.path.join(cfg.out, "selected.csv"),
              ["method", "tau", "beta", "step", "valid_winrate_vs_sft", "valid_winrate_vs_rl", "criterion",
               "select_seed"],
              [[m, s["tau"], s["beta"], s["step"], s["winrate_vs_sft"],
                "" if s["winrate_vs_rl"] is None else s["winrate_vs_rl"], s["criterion"], select_seed]
               for m, s in selected.items()])
    if progress:
        for m, s in selected.items():
            vs_rl = "" if s["winrate_vs_rl"] is None else f", vs RL {s['winrate_vs_rl']:.3f}"
            print(f"selected {m} by win rate vs {s['criterion']}: tau {s['tau']:g}, beta {s['beta']:g}, "
                  f"step {s['step']} (valid win rate vs SFT {s['winrate_vs_sft']:.3f}{vs_rl})", flush=True)

    # 4-5. the selected settings rerun on every test chain (seed --seed + c: SFT, PM/RM and alignment
    # retrained; no test policy is a sweep run); the final matrices on the test split
    def test_chain(c, judge):
        root = os.path.join(cfg.out, f"chain{c}")
        sft, pm = train_chain_judges(cfg, root, cfg.seed + c, common, progress, judges=judge == "pm")
        sub = "selected" if judge == "pm" else "gold"
        runs = {label_of(m, judge): align(root, sft, pm, cfg.seed + c, m, s["tau"], s["beta"], s["step"], 0,
                                          os.path.join(sub, run_name(m, s)), judge=judge)
                for m, s in selected.items()}
        policies = {k: r["model"] for k, r in runs.items()}
        ev = evaluate_chain(cfg, cfg.seed + c, task, device, sft["model"], pm["pm"] if pm else None, policies)
        ev["policies"] = {**policies, "sft": sft["model"]}  # which run folders this chain tested
        atomic_write_json(os.path.join(root, "test_eval.json" if judge == "pm" else "test_eval_gold.json"),
                          ev)
        chain = {"eval": ev, "heldout": pm["heldout"] if pm else {},
                 "step_time_s": {k: r["step_time_s"] or float("nan") for k, r in runs.items()}}
        bt = [r["bt_fit_accuracy"] for r in runs.values() if r.get("bt_fit_accuracy") is not None]
        if bt:
            chain["bt_fit_accuracy"] = bt[0]
        return chain

    selection = {"seed": select_seed, "against": cfg.select_against, "folder": "select",
                 "test_chain_seeds": [cfg.seed, cfg.seed + max(cfg.chains, cfg.gold_chains) - 1]}

    def finish(chains, judge, name, matrix_csv):
        summary = summarise(cfg, chains, time.perf_counter() - t0, origin, judges=[judge])
        summary.update(selected=selected, selection=selection, preset_reduced=reduced)
        labels = summary["labels"]
        judged = ("gold", "pm") if summary["win_matrix_pm"] is not None else ("gold",)
        write_csv(os.path.join(cfg.out, matrix_csv), ["judge", "row", "column", "mean", "ci95"],
                  [[j, labels[a], labels[b], summary[f"win_matrix_{j}"]["mean"][a][b],
                    summary[f"win_matrix_{j}"]["ci95"][a][b]]
                   for j in judged for a in range(len(labels)) for b in range(len(labels))])
        summary["wall_time_s"] = time.perf_counter() - t0
        atomic_write_json(os.path.join(cfg.out, name), summary)
        return summary

    summary = finish([test_chain(c, "pm") for c in range(cfg.chains)], "pm", "summary.json",
                     "final_matrix.csv")  # aligned with the learned PM
    gold = (finish([test_chain(c, "gold") for c in range(cfg.gold_chains)], "gold", "summary_gold.json",
                   "final_matrix_gold.csv") if cfg.gold_chains else None)

    # 6. every sweep policy against the selected RL checkpoint (and SFT), selection chain, validation split
    if "rl" in selected:
        rl_path = rl_model
        prompts = task.prompts("valid", cfg.valid_prompts) * cfg.samples_per_prompt
        opponents = {}
        for name, path in (("rl", rl_path), ("sft", sft0["model"])):
            model, codec = load_causal_lm(path, name, task.max_prompt_tokens)
            opponents[name] = sample_responses(model, codec, prompts,
                                               stream_seed(select_seed, name, "study-valid"), device,
                                               task.max_new_tokens)[0]
        rows = []
        for (m, t, b), r in sweep_runs.items():
            model, codec = load_causal_lm(r["model"], m, task.max_prompt_tokens)
            texts = sample_responses(model, codec, prompts, stream_seed(select_seed, m, t, b, "study-valid"),
                                     device, task.max_new_tokens)[0]
            for opp, opp_texts in opponents.items():
                rows.append([m, t, b, opp,
                             *_gold_vs(task, codec, prompts, cfg.valid_prompts, texts, opp_texts)])
        write_csv(os.path.join(cfg.out, "sweep_vs_rl.csv"),
                  ["method", "tau", "beta", "opponent", "winrate", "eval_ci95"], rows)
    for s, name in ((summary, "summary.json"), (gold, "summary_gold.json")):
        if s is not None:  # the whole study's wall time in both
            s["wall_time_s"] = time.perf_counter() - t0
            atomic_write_json(os.path.join(cfg.out, name), s)
    if progress:
        from .report import render_report

        for s in (summary, gold):
            if s is not None:
                print(render_report(s, ("selected", "winrate", "order")))
        print(f"study wall time {summary['wall_time_s'] / 60:.1f} min")
    return summary
