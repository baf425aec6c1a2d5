"""Stage ``evaluate``: side-by-side win rates between policies, the paper's Table 2 format.

Steps:
  1. load every ``NAME=PATH`` policy (a NAME repeated = its seeds) and, optionally, the PM;
  2. sample ``samples_per_prompt`` responses per held-out prompt from each policy (fixed seeds);
  3. for every ordered pair of names (row, column) and every pair of their seeds, the mean over
     prompts of ``P(row's response > column's response)`` under the **gold judge** (exact
     probabilities) and under the **PM** (:func:`llm.scorers.pm_prob_rows`, exactly antisymmetric);
  4. the matrices of means and standard deviations (ddof = 1) over seed pairs (diagonal = 1/2),
     written to ``OUT/eval.json`` and printed as ``mean (std)``.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from opo_toolkit.cliargs import UsageError
from opo_toolkit.files import atomic_write_json
from opo_toolkit.progress import progress as progress_bar
from opo_toolkit.stats import t_halfwidth

from .align import read_prompt_file
from .models import check_context, load_causal_lm
from .runtime import open_stage, stage_function
from .sampling import sample_responses, stream_seed
from .scorers import load_scorer, pm_prob_rows

__all__ = ["run_evaluate", "win_matrices", "format_matrix", "chain_matrices", "across_chains", "t_halfwidth"]


@torch.no_grad()
def win_matrices(task, codec, prompts, responses: dict, pm=None, device="cpu", progress=False) -> dict:
    """Win-rate matrices ``p(row beats column)``: mean and std over seed pairs.

    Args:
      responses: ``{name: [(texts, rows) per seed]}``, all aligned with ``prompts``.
    Returns:
      dict with ``labels`` and ``gold_mean``, ``gold_std`` (and ``pm_mean``, ``pm_std`` with a PM),
      square lists; ``gold_per_seed_pair[row][col]`` holds the raw values.
    """
    names = list(responses)
    feats = {n: [task.features(prompts, texts) for texts, _ in responses[n]] for n in names}  # (N, F) each
    x_rows = [codec.prompt_ids(x) for x in prompts]
    k = len(names)
    out = {"labels": names}
    judges = ["gold"] + (["pm"] if pm is not None else [])
    for j in judges:
        out[f"{j}_mean"] = [[0.5] * k for _ in range(k)]
        out[f"{j}_std"] = [[0.0] * k for _ in range(k)]
        out[f"{j}_per_seed_pair"] = [[[0.5] for _ in range(k)] for _ in range(k)]
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    bar = progress_bar(len(pairs), desc="evaluate", unit="pair", disable=not progress)
    for a, b in pairs:
        bar.update(1)
        values = {j: [] for j in judges}
        for sa, (_, rows_a) in enumerate(responses[names[a]]):
            for sb, (_, rows_b) in enumerate(responses[names[b]]):
                values["gold"].append(
                    task.gold_prob_from_features(feats[names[a]][sa], feats[names[b]][sb]).mean())
                if pm is not None:
                    values["pm"].append(pm_prob_rows(pm, codec, x_rows, rows_a, rows_b, device).mean().item())
        for j in judges:
            v = np.array(values[j], dtype=np.float64)
            out[f"{j}_mean"][a][b], out[f"{j}_mean"][b][a] = float(v.mean()), float(1 - v.mean())
            out[f"{j}_std"][a][b] = out[f"{j}_std"][b][a] = float(v.std(ddof=1)) if v.size > 1 else 0.0
            out[f"{j}_per_seed_pair"][a][b] = v.tolist()
            out[f"{j}_per_seed_pair"][b][a] = (1 - v).tolist()
    bar.close()
    return out


@torch.no_grad()
def chain_matrices(task, codec, prompts: list[str], n_prompts: int, responses: dict, pm=None,
                   device="cpu", pm_prompts: int | None = None) -> dict:
    """One chain's side-by-side matrices: ``p(row beats column)`` averaged over the rows of
    ``prompts`` (``n_prompts`` distinct prompts repeated ``len(prompts) // n_prompts`` times, one
    response per row and policy), by the **exact gold probabilities** (not sampled 0/1 verdicts)
    and by the PM (on the first ``pm_prompts`` rows, default ``n_prompts``: one sample per prompt;
    its forward passes cost the most). Also the evaluation's own
    95 % half-width per entry: the normal interval over prompts of the per-prompt mean (samples
    averaged within a prompt first), ``1.96 s / sqrt(N)``.

    Args:
      responses: ``{name: (texts, rows)}`` aligned with ``prompts``.
    Returns: ``labels``, ``gold``, ``gold_eval_hw``, and with a PM ``pm`` (square lists).
    """
    names = list(responses)
    feats = {n: task.features(prompts, responses[n][0]) for n in names}  # (R, F)
    x_rows = [codec.prompt_ids(x) for x in prompts]
    k = len(names)
    n_pm = min(n_prompts, pm_prompts or n_prompts)
    out = {"labels": names, "gold": np.full((k, k), 0.5), "gold_eval_hw": np.zeros((k, k))}
    if pm is not None:
        out["pm"] = np.full((k, k), 0.5)
    for a in range(k):
        for b in range(a + 1, k):
            g = task.gold_prob_from_features(feats[names[a]], feats[names[b]])  # (R,)
            per_prompt = g.reshape(-1, n_prompts).mean(0)  # (N,): samples of a prompt averaged
            out["gold"][a, b], out["gold"][b, a] = g.mean(), 1 - g.mean()
            out["gold_eval_hw"][a, b] = out["gold_eval_hw"][b, a] = (1.96 * per_prompt.std(ddof=1)
                                                                     / np.sqrt(n_prompts))
            if pm is not None:  # the PM on one sample per prompt (its forward passes cost the most)
                q = pm_prob_rows(pm, codec, x_rows[:n_pm], responses[names[a]][1][:n_pm],
                                 responses[names[b]][1][:n_pm], device)
                out["pm"][a, b], out["pm"][b, a] = q.double().mean().item(), 1 - q.double().mean().item()
    return out


def across_chains(per_chain: list) -> dict:
    """Matrices of ``per_chain`` (one (k, k) array per chain) -> ``mean``, ``ci95`` (t half-width
    over chains, ddof = 1: includes the chain-to-chain variance of SFT, PM/RM and alignment) and
    ``per_chain`` (lists)."""
    v = np.stack([np.asarray(m, np.float64) for m in per_chain])  # (C, k, k)
    hw = np.vectorize(lambda i, j: t_halfwidth(v[:, i, j]))(*np.indices(v.shape[1:])) if len(v) > 1 \
        else np.full(v.shape[1:], np.nan)
    return {"mean": v.mean(0).tolist(), "ci95": hw.tolist(), "per_chain": v.transpose(1, 2, 0).tolist()}


def format_matrix(labels, mean, std) -> str:
    """The paper's Table 2 layout: ``p(row > column)`` as ``mean (std)``."""
    width = max(12, max(len(n) for n in labels) + 1)
    lines = [" " * width + "".join(f"{n[:13]:>15}" for n in labels)]
    for i, n in enumerate(labels):
        lines.append(f"{n:<{width}}"
                     + "".join(f"{mean[i][j]:>8.3f} ({std[i][j]:.3f})" for j in range(len(labels))))
    return "\n".join(lines)


@stage_function
def run_evaluate(cfg, progress: bool = True) -> dict:
    """Evaluate ``cfg.models`` side by side on held-out prompts; returns the matrices."""
    stage = open_stage(cfg)  # evaluate writes no done.json: never "finished"
    device, task = stage.device, stage.task
    prompts = read_prompt_file(cfg.prompts) if cfg.prompts else task.prompts("heldout", cfg.n_prompts)
    prompts = prompts * cfg.samples_per_prompt
    models, codec = {}, None
    max_new = cfg.max_new_tokens or task.max_new_tokens
    for entry in cfg.models:
        name, path = entry.split("=", 1)
        model, c = load_causal_lm(path, f"--models {name}", task.max_prompt_tokens)
        check_context(model, f"--models {entry}", task.max_prompt_tokens + 2 + max_new)
        if codec is not None and c.tokenizer.to_str() != codec.tokenizer.to_str():
            raise UsageError(f"--models {name}={path} uses another tokenizer than the first model")
        codec = c
        models.setdefault(name, []).append(model)
    pm = None
    if cfg.pm:
        pm, pm_codec = load_scorer(cfg.pm, "--pm preference model", task.max_prompt_tokens, "preference")
        if pm_codec.tokenizer.to_str() != codec.tokenizer.to_str():
            raise UsageError(f"--pm {cfg.pm} uses another tokenizer than the policies")
        pm.to(device).eval()
    if pm is not None:
        check_context(pm, "--pm preference model", task.max_prompt_tokens + 2 * max_new + 4)
    stage.begin()
    responses = {name: [sample_responses(m, codec, prompts, stream_seed(cfg.seed, name, "evaluate", s),
                                         device, max_new, cfg.temperature) for s, m in enumerate(ms)]
                 for name, ms in models.items()}
    result = win_matrices(task, codec, prompts, responses, pm, device, progress)
    result["models"] = cfg.models
    result["n_prompts"] = len(prompts)
    atomic_write_json(os.path.join(cfg.out, "eval.json"), result)
    if progress:
        print("gold judge, p(row > column), mean (std) over seed pairs:")
        print(format_matrix(result["labels"], result["gold_mean"], result["gold_std"]))
        if pm is not None:
            print("preference model:")
            print(format_matrix(result["labels"], result["pm_mean"], result["pm_std"]))
    return result
