"""Stage ``align``: online / offline preference optimisation of the SFT policy (SPEC §4).

``run_align`` steps (nanoGPT/CleanRL style, top to bottom):
  1. config, seed; task; policy pi and frozen reference mu, both loaded from the SFT folder;
     the preference model (or, for ``rl``, the reward model); with ``--judge gold`` the exact gold
     judge labels the pairs instead (``rl``: the reward is its Bradley-Terry fit); AdamW;
  2. resume from ``OUT/checkpoint.pt`` if asked (model, optimizer, step, RNG states);
  3. loop: batch of prompts -> :func:`alignment_loss` (sample the pair from pi / mix_beta / mu with
     the KV-cached sampler, score it with the PM, log-probs of pi with gradient and of mu without,
     the method's loss from :mod:`tabular.losses`) -> step -> log -> every ``eval_every`` steps the
     gold-judge win rate against the SFT model on ``valid`` prompts (each run and step its own
     sampling stream, :func:`~llm.sampling.stream_seed`), and with ``--eval-vs POLICY`` the same
     sample's gold win rate against that fixed policy's responses (``eval/winrate_vs_opponent``;
     one stream per seed, so runs of one seed share them) -> checkpoint every K steps;
  4. save ``OUT/model`` and ``OUT/done.json`` (final win rate, seconds per step).

Paper mapping: the paper's tau is TRL's ``beta``; the paper's beta (mixture) is TRL's ``mixture_coef``.
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import torch

from opo_toolkit.cliargs import UsageError
from tabular.losses import make_labels

from . import distributed
from .config import MethodParams
from .judging import (
    GoldBradleyTerry,
    GoldJudge,
    LearnedPM,
    LearnedRM,
    PairJudge,
    PromptBatch,
    Responses,
    RewardJudge,
)
from .models import check_context, load_causal_lm, save_model
from .objectives import nash_md_pg_loss, pairwise_method_loss, rl_loss
from .runtime import autocast, open_stage, save_checkpoint, stage_function
from .sampling import Decoding, sample, sample_responses, sequence_logprob, stream_seed, token_logprobs
from .scorers import load_scorer
from .tasks import fit_bradley_terry

__all__ = ["run_align", "alignment_loss", "gold_bradley_terry", "read_prompt_file"]


def alignment_loss(params: MethodParams, policy, ref, batch: PromptBatch, judge: PairJudge | RewardJudge,
                   decoding: Decoding, *, generator: torch.Generator,
                   label_generator: torch.Generator | None = None):
    """Sample a pair per prompt as ``params.method`` says, score it, and return (scalar loss, stats).

    Args:
      params: the method and its hyperparameters (tau, beta, label type, log-prob reduction,
        temperature), validated once by :class:`~llm.config.MethodParams`.
      batch: the B prompts (ids, mask, texts where they are text).
      judge: a :class:`~llm.judging.PairJudge` (``P(y > y' | x)``: the pairwise methods and
        Nash-MD-PG) or, for ``rl``, a :class:`~llm.judging.RewardJudge` (``r(x, y)``).
      decoding: the responses' length cap, end and pad tokens.
      generator: the sampling stream.
      label_generator: the stream of Bernoulli labels.
    """
    m, tau, temperature = params.spec, params.tau, params.temperature
    needed = RewardJudge if m.kind == "rl" else PairJudge
    if not isinstance(judge, needed):
        raise TypeError(f"{params.method} is scored by a {needed.__name__}, got {type(judge).__name__}")
    B = len(batch)
    beta_y, beta_y_prime = params.betas()
    betas = torch.tensor([beta_y] * B + [beta_y_prime] * B, device=batch.ids.device)  # (2B,)
    both = batch.repeat(2)  # (2B, P): rows < B draw y, rows >= B draw y'
    response, resp_mask = sample(policy, ref, both.ids, both.mask, decoding.max_new_tokens, generator,
                                 decoding.eos_id, decoding.pad_id, beta=betas,
                                 temperature=temperature)  # (2B, T), samples carry no gradient
    responses = Responses(response, resp_mask)
    y, y_prime = responses.rows(0, B), responses.rows(B, 2 * B)
    # Nash-MD-PG / self-play score only y (y' is the opponent's sample): no log-probs for y'.
    n = B if m.kind == "pg" else 2 * B
    scored = (both.ids[:n], both.mask[:n], response[:n], resp_mask[:n])
    with torch.no_grad():
        ref_tok = token_logprobs(ref, *scored, temperature)  # (n, T)
    tok = token_logprobs(policy, *scored, temperature)  # (n, T), with grad
    stats = {"kl/seq_logratio_y": (tok[:B] - ref_tok[:B]).sum(-1).mean().item(),
             "charts/response_tokens": resp_mask.sum(-1).float().mean().item()}
    if m.kind == "pairwise":
        with torch.no_grad():
            p = judge.prob(batch, y, y_prime)  # (B,)
        logp = sequence_logprob(tok, resp_mask, params.logp_reduction)  # (2B,)
        ref_logp = sequence_logprob(ref_tok, resp_mask, params.logp_reduction)  # (2B,)
        losses = pairwise_method_loss(m.loss, logp[:B], logp[B:], ref_logp[:B], ref_logp[B:], p, tau,
                                      params.label_type, label_generator)  # (B,)
        stats["charts/margin_abs"] = ((logp[:B] - ref_logp[:B])
                                      - (logp[B:] - ref_logp[B:])).abs().mean().item()
    elif m.kind == "pg":
        with torch.no_grad():
            p = judge.prob(batch, y, y_prime)  # (B,)
        label = make_labels(p, params.label_type, label_generator)  # (B,), as the pairwise methods do
        losses = nash_md_pg_loss(tok[:B], ref_tok[:B], y.mask, label, tau)  # (B,), only y gets gradient
    else:
        with torch.no_grad():
            r = judge.reward(both, responses)  # (2B,)
        losses = rl_loss(tok, ref_tok, resp_mask, r, tau)  # (2B,)
        p = torch.sigmoid(r[:B] - r[B:])
    stats["charts/p_mean_abs_minus_half"] = (p - 0.5).abs().mean().item()
    loss = losses.mean()
    stats["loss/train"] = loss.item()
    return loss, stats


@torch.no_grad()
def gold_bradley_terry(task, codec, sft, seed: int, device, max_new_tokens: int, n_pairs: int = 8192):
    """The gold judge's Bradley-Terry fit (:func:`llm.tasks.fit_bradley_terry`) on pairs of SFT
    responses to ``pm``-split prompts: the reward of the ``rl`` baseline under ``--judge gold``.
    It cannot represent the judge's intransitive (majority-vote) part. Returns (F,) weights and the
    fit's accuracy against the gold judge on ``valid``-split pairs."""
    def pairs(split, s):
        prompts = task.prompts(split, n_pairs) * 2
        phi = task.features(prompts,
                            sample_responses(sft, codec, prompts, s, device, max_new_tokens)[0])  # (2N, F)
        return phi[:n_pairs] - phi[n_pairs:], task.gold_prob_from_features(phi[:n_pairs], phi[n_pairs:])

    w = fit_bradley_terry(*pairs("pm", seed))
    dphi, p = pairs("valid", seed + 1)  # held out: the fit's accuracy on the gold judge's decided pairs
    decided = p != 0.5
    accuracy = float(((dphi[decided] @ w > 0) == (p[decided] > 0.5)).mean())
    return w, accuracy


def read_prompt_file(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise UsageError(f"prompt file does not exist: {path}")
    with open(path, encoding="utf-8") as f:
        prompts = [line.strip() for line in f if line.strip()]
    if not prompts:
        raise UsageError(f"prompt file is empty: {path}")
    return prompts


@stage_function
def run_align(cfg, progress: bool = True) -> dict:
    """Align the SFT policy with ``cfg.method``; returns the ``done.json`` contents."""
    # -- config, inputs (all checks before anything is written) --
    stage = open_stage(cfg)
    if stage.finished:
        return stage.finished
    device, task = stage.device, stage.task
    prompts = read_prompt_file(cfg.prompts) if cfg.prompts else task.prompts("train", 20000)
    policy, codec = load_causal_lm(cfg.sft, "--sft model", task.max_prompt_tokens)
    ref = copy.deepcopy(policy)  # mu: the same SFT weights, loaded once
    params = cfg.method_params()  # the method and its hyperparameters, as alignment_loss reads them
    m = params.spec
    scorer = None
    if cfg.judge == "pm":
        if m.kind == "rl":
            scorer, scorer_codec = load_scorer(cfg.rm, "--rm reward model", task.max_prompt_tokens,
                                                   "bradley-terry")
        else:
            scorer, scorer_codec = load_scorer(cfg.pm, "--pm preference model", task.max_prompt_tokens,
                                                   "preference")
        if scorer_codec.tokenizer.to_str() != codec.tokenizer.to_str():
            raise UsageError("the scoring model's tokenizer differs from the SFT model's")
    max_new = cfg.max_new_tokens or task.max_new_tokens
    prompt_len = task.max_prompt_tokens + 2  # <bos> x <sep>
    check_context(policy, "--sft model", prompt_len + max_new)
    if scorer is not None:
        check_context(scorer, "the scoring model",
                      prompt_len + (max_new + 1 if m.kind == "rl" else 2 * max_new + 2))
    opponent = None  # --eval-vs: the fixed policy the periodic evaluation also compares with
    if cfg.eval_vs:
        opponent, opponent_codec = load_causal_lm(cfg.eval_vs, "--eval-vs policy", task.max_prompt_tokens)
        if opponent_codec.tokenizer.to_str() != codec.tokenizer.to_str():
            raise UsageError("the --eval-vs policy's tokenizer differs from the SFT model's")
        check_context(opponent, "--eval-vs policy", prompt_len + max_new)
    stage.begin()

    # -- seed, models, optimiser --
    torch.manual_seed(cfg.seed)
    # eval mode (dropout off) while training too: the samples, the log-probs in the loss and the
    # frozen reference must all be the same deterministic functions, or r_pi != 0 at step 0.
    policy.to(device).eval()
    ref.to(device).eval().requires_grad_(False)  # mu: frozen SFT model
    if scorer is not None:
        scorer.to(device).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    # random streams: the prompt batches are one stream every process shares; sampling and
    # Bernoulli labels are one stream per shard of the batch (shard 0: the seeds of a one-shard run)
    data_gen = torch.Generator().manual_seed(cfg.seed + 2)  # prompt batches
    my_shards = distributed.local_shards(stage.shards, cfg.batch_size)  # [(shard, rows)] of this process
    gens = {s: torch.Generator(device).manual_seed(distributed.shard_seed(cfg.seed, "sample", s))
            for s, _ in my_shards}  # sampling streams
    label_gens = {s: torch.Generator(device).manual_seed(distributed.shard_seed(cfg.seed + 1, "label", s))
                  for s, _ in my_shards}  # Bernoulli labels
    generators = {"data": data_gen}
    for s, _ in my_shards:
        suffix = f"/{s}" if s else ""  # shard 0 keeps the names of a one-shard checkpoint
        generators.update({"sample" + suffix: gens[s], "label" + suffix: label_gens[s]})
    start = stage.resume(policy, optimizer, generators)

    run_key = (cfg.seed, cfg.method, cfg.tau, cfg.beta, cfg.judge)  # names this run's random streams
    bt_accuracy = None
    if cfg.judge == "gold" and m.kind == "rl":  # r(x, y) = w . phi(x, y), the gold judge's BT fit
        bt_weights, bt_accuracy = gold_bradley_terry(task, codec, ref, stream_seed(*run_key, "bt-fit"),
                                                     device, max_new)
        judge = GoldBradleyTerry(task, codec, bt_weights)
    elif cfg.judge == "gold":  # exact P(y > y' | x) of the hidden judge
        judge = GoldJudge(task, codec)
    else:
        judge = LearnedRM(scorer, codec) if m.kind == "rl" else LearnedPM(scorer, codec)
    decoding = Decoding(max_new, codec.eos_id, codec.pad_id)

    # validation prompts (two responses each) and the SFT model's responses to them, for the curve;
    # every run and every step draws from its own stream (no draw shared between runs). Rank 0
    # evaluates: every process holds the same policy.
    eval_prompts = task.prompts("valid", cfg.eval_prompts) * 2
    sft_texts = []
    if cfg.eval_every and stage.writer:  # the SFT model's answers the policy is compared with, sampled once
        sft_texts, _ = sample_responses(ref, codec, eval_prompts, stream_seed(*run_key, "curve-sft"), device,
                                        max_new, cfg.temperature)

    opponent_texts = []  # --eval-vs: a fixed opponent's responses, one stream per seed (shared by runs)
    if cfg.eval_every and opponent is not None and stage.writer:
        opponent_texts, _ = sample_responses(opponent, codec, eval_prompts,
                                             stream_seed(cfg.seed, "curve-opponent"), device, max_new,
                                             cfg.temperature)
    del opponent

    @torch.no_grad()
    def evaluate(step) -> dict:
        """The gold win rates of one sample of the policy against SFT (and the --eval-vs opponent)."""
        texts, _ = sample_responses(policy, codec, eval_prompts, stream_seed(*run_key, "curve", step), device,
                                    max_new, cfg.temperature)
        out = {"eval/winrate_vs_sft": float(task.gold_prob(eval_prompts, texts, sft_texts).mean())}
        if opponent_texts:
            vs = task.gold_prob(eval_prompts, texts, opponent_texts)
            out["eval/winrate_vs_opponent"] = float(vs.mean())
        return out

    if start == 0 and cfg.eval_every and not stage.rows and stage.writer:
        stage.log({"step": 0, **evaluate(0)})

    # -- loop: sample, score, loss, step, log, checkpoint --
    step_times = []
    for step in stage.steps(f"align {cfg.method}", progress):
        t0 = time.perf_counter()
        idx = torch.randint(len(prompts), (cfg.batch_size,), generator=data_gen)  # the whole batch
        optimizer.zero_grad(set_to_none=True)
        totals = {}
        for s, rows in my_shards:
            texts = tuple(prompts[i] for i in idx[rows].tolist())
            prompt_ids, prompt_mask = codec.encode_prompts(list(texts))  # (B / shards, P)
            batch = PromptBatch(prompt_ids.to(device), prompt_mask.to(device), texts)
            with autocast(device, cfg.bf16):
                loss, stats = alignment_loss(params, policy, ref, batch, judge, decoding, generator=gens[s],
                                             label_generator=label_gens[s])
            (loss / stage.shards).backward()  # the batch's mean loss is the mean of the shards' means
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
        stats = {k: v / stage.shards for k, v in distributed.all_sum(totals, device).items()}  # batch means
        if not np.isfinite(stats["loss/train"]):  # e.g. a huge --lr: stop before saving a NaN policy
            raise UsageError(f"the loss became {stats['loss/train']} at step {step + 1}; lower --lr "
                             f"(no model or done.json is written; rerun with --overwrite)")
        distributed.all_reduce_grads(policy.parameters())
        optimizer.step()
        step_times.append(time.perf_counter() - t0)
        row = {"step": step + 1}
        if stage.log_due(step + 1):
            row.update(stats, **{"charts/step_time_s": float(np.mean(step_times[-cfg.log_every:]))})
            stage.bar.set_postfix(loss=f"{stats['loss/train']:.3f}", kl=f"{stats['kl/seq_logratio_y']:.2f}")
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps) and stage.writer:
            row.update(evaluate(step + 1))
        if len(row) > 1:
            stage.log(row)
        if stage.checkpoint_due(step + 1):
            save_checkpoint(cfg.out, step + 1, cfg, policy, optimizer, generators)

    # -- save --
    path = os.path.join(cfg.out, "model")
    if stage.writer:
        save_model(policy.cpu(), codec, path, {"stage": "align", "method": cfg.method, "tau": cfg.tau,
                                               "beta": cfg.beta})
    wins = [r["eval/winrate_vs_sft"] for r in stage.rows if "eval/winrate_vs_sft" in r]
    return stage.finish({"model": path, "method": cfg.method, "tau": cfg.tau, "beta": cfg.beta,
                         "seed": cfg.seed, "steps": cfg.steps,
                         "step_time_s": float(np.mean(step_times)) if step_times else None,
                         "final_winrate_vs_sft": wins[-1] if wins else None,
                         **({"bt_fit_accuracy": bt_accuracy} if bt_accuracy is not None else {})})
