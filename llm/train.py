"""Stages ``sft`` and ``train-pm``.

``run_sft`` steps: config -> seed -> task + tokenizer -> GPT-2 -> AdamW -> loop (batch of prompts,
reference summaries, token log-probs, mean NLL, step, log, checkpoint) -> save ``OUT/model`` (= mu).

``run_train_pm`` steps: load the SFT model -> sample pairs of SFT responses on ``pm``-split prompts
and label them with the exact gold probability -> train the PM (``--pm-form``, default a
Bradley-Terry term plus an antisymmetric pairwise residual, :func:`llm.scorers.pm_prob_rows`) and
the Bradley-Terry RM by soft-label cross-entropy (``--pm-init rm``, the default: the RM first, then
the PM from the RM's weights; ``scratch``: both side by side from fresh weights) -> held-out
accuracy and calibration against the gold probabilities -> save ``OUT/pm`` and ``OUT/rm``.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from opo_toolkit.files import atomic_write_json

from . import distributed
from .models import (
    Codec,
    check_context,
    load_causal_lm,
    new_causal_lm,
    save_model,
    train_tokenizer,
)
from .runtime import autocast, open_stage, save_checkpoint, stage_function
from .sampling import sample, token_logprobs
from .scorers import new_scorer, pm_prob_rows, rm_prob_rows

__all__ = ["run_sft", "run_train_pm", "pm_metrics"]


@stage_function
def run_sft(cfg, progress: bool = True) -> dict:
    """Supervised fine-tuning on reference summaries. Returns ``{"model": path, ...}``."""
    stage = open_stage(cfg)
    if stage.finished:
        return stage.finished
    device, task = stage.device, stage.task
    torch.manual_seed(cfg.seed)
    if cfg.init:
        model, codec = load_causal_lm(cfg.init, "--init model", task.max_prompt_tokens)
        # <bos> x <sep> then the summary and <eos>: refused here, not as an IndexError mid-run
        check_context(model, "--init model", task.max_prompt_tokens + 2 + task.max_new_tokens)
    else:
        codec = Codec(train_tokenizer(task), task.max_prompt_tokens)
        n_positions = task.max_prompt_tokens + task.max_new_tokens + 8
        model = new_causal_lm(codec.vocab_size, cfg.n_layer, cfg.n_embd, cfg.n_head, n_positions,
                              codec.pad_id)
    stage.begin()
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    prompts = task.prompts("train", 20000)
    stage.resume(model, optimizer, {})
    for step in stage.steps("sft", progress):
        rng = np.random.default_rng([cfg.seed, step])  # batch depends only on (seed, step): resumable
        batch = [prompts[i] for i in rng.integers(len(prompts), size=cfg.batch_size)]
        targets = [task.reference_summary(x, rng) for x in batch]
        prompt_ids, prompt_mask = codec.encode_prompts(batch)  # (B, P), every process the whole batch
        y, y_mask = codec.encode_summaries(targets, task.max_new_tokens)  # (B, T)
        for g in optimizer.param_groups:
            g["lr"] = cfg.lr * (1 - 0.9 * step / cfg.steps)
        optimizer.zero_grad(set_to_none=True)
        nll = 0.0
        for _, rows in distributed.local_shards(stage.shards, cfg.batch_size):
            with autocast(device, cfg.bf16):
                tok_logp = token_logprobs(model, prompt_ids[rows].to(device), prompt_mask[rows].to(device),
                                          y[rows].to(device), y_mask[rows].to(device))  # (B / shards, T)
            loss = -tok_logp.sum() / y_mask.sum()  # this shard's part of the batch's mean NLL per token
            loss.backward()
            nll += loss.item()
        distributed.all_reduce_grads(model.parameters())
        optimizer.step()
        if stage.log_due(step + 1):
            nll = distributed.all_sum({"nll": nll}, device)["nll"]
            stage.log({"step": step + 1, "loss/nll_per_token": nll})
            stage.bar.set_postfix(nll=f"{nll:.3f}")
        if stage.checkpoint_due(step + 1):
            save_checkpoint(cfg.out, step + 1, cfg, model, optimizer, {})
    path = os.path.join(cfg.out, "model")
    if stage.writer:
        save_model(model.cpu(), codec, path, {"stage": "sft", "task": cfg.task})
    return stage.finish({"model": path,
                         "final_nll": stage.rows[-1]["loss/nll_per_token"] if stage.rows else None})


def _sample_pairs(model, codec, task, prompts, seed, device, batch=512):
    """Two SFT responses per prompt and their exact gold preference. Returns rows and (N,) p."""
    gen = torch.Generator(device).manual_seed(seed)
    x_rows, y_rows, yp_rows, p = [], [], [], []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        ids, mask = codec.encode_prompts(chunk + chunk)  # (2b, P)
        resp, resp_mask = sample(model, None, ids.to(device), mask.to(device), task.max_new_tokens, gen,
                                 codec.eos_id, codec.pad_id)  # (2b, T)
        texts = codec.decode(resp)
        b = len(chunk)
        p.append(task.gold_prob(chunk, texts[:b], texts[b:]))
        rows = [codec.summary_ids(r) for r in resp.tolist()]
        x_rows += [codec.prompt_ids(x) for x in chunk]
        y_rows += rows[:b]
        yp_rows += rows[b:]
    return x_rows, y_rows, yp_rows, torch.tensor(np.concatenate(p), dtype=torch.float32)


def _soft_cross_entropy(q, p):
    q = q.clamp(1e-6, 1 - 1e-6)
    return -(p * torch.log(q) + (1 - p) * torch.log1p(-q)).mean()


def pm_metrics(q: torch.Tensor, p: torch.Tensor, bins: int = 10) -> dict:
    """Accuracy (sign agreement with the gold probability, ties excluded), expected calibration
    error (``bins`` equal-width bins of the prediction; |mean prediction - mean gold p| weighted by
    bin mass), mean absolute error, Brier score ``mean((q - p)^2)`` (against the exact probability:
    the Brier score against sampled 0/1 verdicts is this plus ``mean(p (1 - p))``) and the
    reliability diagram's bins, all against the exact gold probabilities ``p``."""
    q, p = q.double(), p.double()
    decided = p != 0.5
    acc = ((q[decided] > 0.5) == (p[decided] > 0.5)).double().mean().item()
    which = torch.clamp((q * bins).long(), max=bins - 1)
    ece = sum((which == b).double().mean().item()
              * abs(q[which == b].mean().item() - p[which == b].mean().item())
              for b in range(bins) if (which == b).any())
    reliability = [{"lo": b / bins, "hi": (b + 1) / bins, "count": int((which == b).sum()),
                    "mean_pred": q[which == b].mean().item() if (which == b).any() else None,
                    "mean_gold": p[which == b].mean().item() if (which == b).any() else None}
                   for b in range(bins)]  # the reliability diagram's points
    return {"accuracy": acc, "calibration_error": ece, "mean_abs_error": (q - p).abs().mean().item(),
            "brier": ((q - p) ** 2).mean().item(), "reliability": reliability}


@stage_function
def run_train_pm(cfg, progress: bool = True) -> dict:
    """Train the preference model (``cfg.pm_form``) and the Bradley-Terry reward model on gold comparisons."""
    stage = open_stage(cfg)
    if stage.finished:
        return stage.finished
    device, task = stage.device, stage.task
    sft, codec = load_causal_lm(cfg.sft, "--sft model", task.max_prompt_tokens)
    check_context(sft, "--sft model", task.max_prompt_tokens + 2 + task.max_new_tokens)
    stage.begin()
    sft.to(device).eval()
    # every process samples the whole pair set (the same pairs: one stream); the steps are split
    train = _sample_pairs(sft, codec, task, task.prompts("pm", cfg.n_pairs), cfg.seed, device)
    held = _sample_pairs(sft, codec, task, task.prompts("valid", cfg.heldout_pairs), cfg.seed + 1, device)
    del sft
    torch.manual_seed(cfg.seed)
    n_positions = 2 * task.max_prompt_tokens + 2 * task.max_new_tokens + 8
    shape = (codec.vocab_size, cfg.n_layer, cfg.n_embd, cfg.n_head, n_positions, codec.pad_id)
    models = torch.nn.ModuleDict({"pm": new_scorer(*shape), "rm": new_scorer(*shape)}).to(device).train()
    models["pm"].config.pm_form = cfg.pm_form  # saved with the PM: pm_prob_rows reads it
    if not cfg.reward_model:
        del models["rm"]
    optimizer = torch.optim.AdamW(models.parameters(), lr=cfg.lr, weight_decay=0.0)
    # --pm-init rm: two phases of cfg.steps, the RM alone, then the PM from the RM's weights (params
    # without a gradient are left alone by AdamW); scratch: one phase, both side by side
    warm = cfg.pm_init == "rm"
    stage.total_steps = 2 * cfg.steps if warm else cfg.steps
    stage.resume(models, optimizer, {})
    x_rows, y_rows, yp_rows, p = train
    for step in stage.steps("train-pm", progress):
        if warm and step == cfg.steps:  # phase 2 starts (also when resumed exactly here)
            models["pm"].load_state_dict(models["rm"].state_dict())
        training = ["pm", "rm"] if not warm else ["rm"] if step < cfg.steps else ["pm"]
        training = [w for w in training if w in models]
        idx = np.random.default_rng([cfg.seed, step]).integers(len(x_rows), size=cfg.batch_size)
        for g in optimizer.param_groups:
            g["lr"] = cfg.lr * (1 - 0.9 * (step % cfg.steps) / cfg.steps)  # per phase
        optimizer.zero_grad(set_to_none=True)
        losses = {f"loss/{w}": 0.0 for w in training}
        prob = {"pm": pm_prob_rows, "rm": rm_prob_rows}
        for _, rows in distributed.local_shards(stage.shards, cfg.batch_size):
            part = idx[rows]  # this shard's pairs
            bx, by, byp = [x_rows[i] for i in part], [y_rows[i] for i in part], [yp_rows[i] for i in part]
            target = p[part].to(device)  # (B / shards,) exact gold P(y > y')
            with autocast(device, cfg.bf16):
                loss = {w: _soft_cross_entropy(prob[w](models[w], codec, bx, by, byp, device), target)
                        for w in training}
            (sum(loss.values()) / stage.shards).backward()  # batch mean = mean of the shards' means
            for w in training:
                losses[f"loss/{w}"] += loss[w].item() / stage.shards
        distributed.all_reduce_grads(models.parameters())
        optimizer.step()
        if stage.log_due(step + 1):
            losses = distributed.all_sum(losses, device)
            stage.log({"step": step + 1, **losses})
            stage.bar.set_postfix(**{k[5:]: f"{v:.3f}" for k, v in losses.items()})
        if stage.checkpoint_due(step + 1):
            save_checkpoint(cfg.out, step + 1, cfg, models, optimizer, {})
    info = {"pm": os.path.join(cfg.out, "pm")}
    if stage.writer:  # held-out metrics and the models: rank 0 (the others hold the same models)
        result = _heldout(models, codec, held, device, cfg.reward_model)
        atomic_write_json(os.path.join(cfg.out, "heldout.json"), result)
        info["heldout"] = result
        save_model(models["pm"].cpu(), codec, info["pm"],
                   {"stage": "train-pm", "kind": "preference", "pm_form": cfg.pm_form, **result["pm"]})
        if cfg.reward_model:
            info["rm"] = os.path.join(cfg.out, "rm")
            save_model(models["rm"].cpu(), codec, info["rm"],
                       {"stage": "train-pm", "kind": "bradley-terry", **result["rm"]})
    return stage.finish(info)


@torch.no_grad()
def _heldout(models, codec, held, device, reward_model: bool) -> dict:
    """:func:`pm_metrics` of the PM (and RM) on the held-out pairs."""
    models.eval()
    hx, hy, hyp, hp = held
    result = {"pm": pm_metrics(pm_prob_rows(models["pm"], codec, hx, hy, hyp, device).cpu(), hp)}
    if reward_model:
        result["rm"] = pm_metrics(rm_prob_rows(models["rm"], codec, hx, hy, hyp, device).cpu(), hp)
    result["gold_sft_pairs_mean_abs_p_minus_half"] = (hp - 0.5).abs().mean().item()
    return result
