"""``python -m llm exact``: transformers trained on the enumerable task, measured against their exact targets.

Every prompt of :class:`llm.enumerable.EnumerableTask` is a tabular game, so each trained policy's
exact law is compared with the point :mod:`tabular` says its method should reach
(:mod:`llm.exact_targets`) — distances, not rankings of noisy win rates.

One run, top to bottom:
  1. per chain c (seed ``seed + c``): SFT a fresh GPT-2 by exact cross-entropy to the task's
     "human" response law (:meth:`EnumerableTask.human_law`) on train-split prompts; its exact law
     on the evaluation prompts is mu;
  2. per rho: the judge's exact games ``P_x`` on the evaluation prompts (train split and test split,
     reported apart) and every target, solved in one batch per split;
  3. per method: align a copy of the SFT policy with :func:`llm.align.alignment_loss` (the very
     losses and sampler of ``llm align``), labels the judge's exact soft probabilities (RL: the
     HodgeRank Bradley-Terry reward / 4), and every ``eval_every`` steps the exact metrics of
     :func:`llm.exact_targets.policy_metrics` on both splits;
  4. ``summary.json``: per (rho, method) the metrics over chains with 95 % t-intervals, and the
     stated comparisons with Holm-adjusted p-values (paired over chains, :mod:`llm.exact_report`).

Each (chain, rho, method) unit is written atomically to ``units/`` when done; a rerun with the same
``--out`` and ``--resume`` skips finished units (the SFT weights are saved per chain).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from opo_toolkit.cliargs import Parser, UsageError, add_dataclass_flags, config_from_args, run_command
from opo_toolkit.files import atomic_write_bytes, atomic_write_json, check_output_dir, package_versions
from opo_toolkit.progress import progress
from opo_toolkit.provenance import measured_provenance
from opo_toolkit.runlock import LOCK_NAME, RunLock

from .align import alignment_loss
from .config import MethodParams
from .enumerable import EnumerableTask, exact_law, mask_response_vocab, prompt_ids, response_index
from .exact_targets import TARGET_OF, policy_metrics, targets
from .judging import PairJudge, PromptBatch, RewardJudge
from .models import SPECIAL_TOKENS, new_causal_lm
from .sampling import Decoding, stream_seed

__all__ = ["ExactConfig", "run_exact", "main", "PRESETS", "METHODS"]

METHODS = ("online_ipo", "ipo_md", "nash_md_pg", "self_play", "online_dpo", "online_slic", "rl")
PAD, BOS, SEP, EOS = (SPECIAL_TOKENS.index(t) for t in ("<pad>", "<bos>", "<sep>", "<eos>"))


@dataclass
class ExactConfig:
    """Transformers on the enumerable task against their exact tabular targets (see module doc)."""

    out: str = ""
    """run folder: config.json, units/, summary.json"""
    preset: str = "small"
    """tiny (CI, seconds), small (the main job, minutes) or reference (the committed reference);
    fills every flag left at its default"""
    chains: int = 0
    """independent chains (each retrains SFT and every method with seed + chain); 0: the preset's"""
    rhos: str = ""
    """comma-separated intransitivity dials rho >= 0; empty: the preset's"""
    methods: str = ""
    """comma-separated methods (of online_ipo, ipo_md, nash_md_pg, self_play, online_dpo,
    online_slic, rl); empty: all"""
    tau: float = 0.1
    """KL regularisation of every method (RL's reward is the BT reward / 4, on the same scale)"""
    beta: float = 0.125
    """mixture coefficient of ipo_md and nash_md_pg (the paper's choice)"""
    steps: int = 0
    """alignment steps per method; 0: the preset's"""
    batch_size: int = 32
    """prompts per alignment step (two responses each)"""
    lr: float = 0.0
    """AdamW learning rate of alignment; 0: the preset's"""
    sft_steps: int = 0
    """SFT steps (exact cross-entropy, 32 prompts a step); 0: the preset's"""
    eval_every: int = 0
    """exact evaluation every K alignment steps (and at 0 and the end); 0: the preset's"""
    eval_prompts: int = 0
    """evaluation prompts per split (train and test); 0: the preset's"""
    n_layer: int = 0
    """GPT-2 layers; 0: the preset's"""
    n_embd: int = 0
    """GPT-2 width; 0: the preset's"""
    K: int = 0
    """content tokens (the response vocabulary); 0: the preset's"""
    L: int = 0
    """maximum response length in tokens; 0: the preset's (n = 1 + K + ... + K^L responses)"""
    prompt_len: int = 0
    """prompt length in content tokens (K^prompt_len documents, split 50/20/15/15); 0: the preset's"""
    task_seed: int = 0
    """seed of the judge's hidden token values and of the document splits"""
    seed: int = 0
    """chain c uses seed + c (model init, batches, sampling)"""
    threads: int = 1
    """torch CPU threads (per worker)"""
    workers: int = 1
    """chains trained in parallel processes (each chain is seeded alone: the files are the same for
    any number of workers); at most the number of cores is useful"""
    resume: bool = False
    """continue a run in --out: finished units are kept"""
    overwrite: bool = False
    """replace the run already in --out"""


PRESETS = {
    "tiny": dict(K=4, L=3, prompt_len=3, chains=2, rhos="0,1", methods="online_ipo,nash_md_pg,rl", steps=4,
                 lr=1e-3, sft_steps=4, eval_every=2, eval_prompts=4, n_layer=1, n_embd=16),
    "small": dict(K=4, L=3, prompt_len=3, chains=2, rhos="0,1", methods="online_ipo,nash_md_pg,online_dpo,rl",
                  steps=300, lr=1e-3, sft_steps=150, eval_every=50, eval_prompts=32, n_layer=2, n_embd=64),
    "reference": dict(K=4, L=3, prompt_len=3, chains=20, rhos="0,0.5,1", steps=300, lr=1e-3, sft_steps=150,
                      eval_every=50, eval_prompts=32, n_layer=2, n_embd=64),
}


def resolve(cfg: ExactConfig) -> ExactConfig:
    """Fill the flags left at their defaults from the preset, then check everything (UsageError)."""
    if cfg.preset not in PRESETS:
        raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, got {cfg.preset!r}")
    fill = {k: v for k, v in PRESETS[cfg.preset].items() if getattr(cfg, k) in (0, 0.0, "")}
    cfg = dataclasses.replace(cfg, **fill)
    if not cfg.out:
        raise UsageError("--out is required")
    try:
        check_output_dir(cfg.out)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for name in ("chains", "steps", "sft_steps", "eval_every", "eval_prompts", "n_layer", "n_embd", "K", "L",
                 "prompt_len",
                 "batch_size", "threads", "workers"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
    n = sum(cfg.K ** k for k in range(cfg.L + 1))
    if not (2 <= cfg.K <= 16 and n <= 5000):
        raise UsageError(f"--K {cfg.K} and --L {cfg.L} give {n} responses per prompt; need 2 <= K <= 16 and "
                         "at most 5000 responses")
    if not 20 <= cfg.K ** cfg.prompt_len <= 100_000:
        raise UsageError(f"--K ** --prompt-len = {cfg.K ** cfg.prompt_len} documents; need 20 .. 100000 so "
                         "that every split holds a prompt")
    if cfg.chains > 1000:
        raise UsageError(f"--chains must be at most 1000, got {cfg.chains}")
    if cfg.n_embd % 4:
        raise UsageError(f"--n-embd must be a multiple of 4 (4 attention heads), got {cfg.n_embd}")
    if not (np.isfinite(cfg.lr) and cfg.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {cfg.lr}")
    if not 0 < cfg.beta < 1:
        raise UsageError(f"--beta must lie in (0, 1), got {cfg.beta}")
    if not (np.isfinite(cfg.tau) and cfg.tau > 0):
        raise UsageError(f"--tau must be a positive number, got {cfg.tau}")
    rhos(cfg), methods(cfg)
    if not 0 <= cfg.seed <= 2**32 - 1 - cfg.chains:
        raise UsageError(f"--seed must lie in [0, 2^32 - 1 - chains], got {cfg.seed}")
    return cfg


def rhos(cfg) -> list[float]:
    try:
        values = [float(v) for v in cfg.rhos.split(",")]
    except ValueError:
        raise UsageError(f"--rhos must be comma-separated numbers, got {cfg.rhos!r}") from None
    if any(not np.isfinite(v) or v < 0 for v in values) or len(set(values)) != len(values):
        raise UsageError(f"--rhos must be distinct finite numbers >= 0, got {cfg.rhos!r}")
    return values


def methods(cfg) -> list[str]:
    names = [m.strip() for m in (cfg.methods or ",".join(METHODS)).split(",")]
    bad = [m for m in names if m not in METHODS]
    if bad or len(set(names)) != len(names):
        raise UsageError(f"--methods must be distinct names from {', '.join(METHODS)}, got {cfg.methods!r}")
    return names


def make_task(cfg) -> EnumerableTask:
    probs = np.full(cfg.L + 1, 0.9 / cfg.L)
    probs[0] = 0.1  # the SFT data: 10 % empty responses, the other lengths alike
    return EnumerableTask(seed=cfg.task_seed, K=cfg.K, L=cfg.L, prompt_len=cfg.prompt_len,
                          length_probs=tuple(probs))


# -- models -------------------------------------------------------------------------------------
def new_policy(cfg, task, seed: int):
    torch.manual_seed(seed)
    model = new_causal_lm(len(SPECIAL_TOKENS) + task.K, n_layer=cfg.n_layer, n_embd=cfg.n_embd,
                          n_head=4, n_positions=task.prompt_len + 2 + task.L + 1, pad_id=PAD)
    mask_response_vocab(model, len(SPECIAL_TOKENS) + task.K, EOS, task.K)
    return model.eval()  # dropout off: samples, losses and the exact law are the same function


def train_sft(cfg, task, seed: int, bar=None):
    """Exact cross-entropy ``-sum_y h_x(y) log pi(y|x)`` to the human law on train prompts."""
    model = new_policy(cfg, task, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(stream_seed(seed, "sft-batches"))
    train = task.prompt_indices("train")
    for _ in range(cfg.sft_steps):
        docs = train[rng.integers(len(train), size=32)]
        log_law, _ = exact_law(model, task, docs, BOS, SEP, EOS, grad=True, float64=False)
        loss = -(torch.as_tensor(task.human_law(docs), dtype=torch.float32) * log_law).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update(1)
    return model


def doc_of_prompt(task, ids: torch.Tensor) -> np.ndarray:
    """(B, prompt_len + 2) ``<bos> x <sep>`` -> (B,) document indices (x read in base K)."""
    x = ids[:, 1:1 + task.prompt_len].cpu().numpy() - len(SPECIAL_TOKENS)
    return (x * task.K ** np.arange(task.prompt_len - 1, -1, -1)).sum(1)


class ExactJudge(PairJudge):
    """The enumerable task's exact gold judge on token ids: ``P_x(y > y')`` at intransitivity ``rho``."""

    def __init__(self, task, rho: float):
        self.task, self.rho = task, rho

    def prob(self, batch, y, y_prime):
        task = self.task
        p = task.pair_preference(doc_of_prompt(task, batch.ids), response_index(task, y.ids, y.mask),
                                 response_index(task, y_prime.ids, y_prime.mask), self.rho)
        return torch.as_tensor(p, dtype=torch.float32)


class ExactBTReward(RewardJudge):
    """RL's reward on the enumerable task: the judge's HodgeRank Bradley-Terry reward / 4 (the scale
    of ``P - 1/2``)."""

    def __init__(self, task, rho: float):
        self.task, self.rho = task, rho

    def reward(self, batch, y):
        docs, idx = doc_of_prompt(self.task, batch.ids), response_index(self.task, y.ids, y.mask)
        r = self.task.bt_reward(docs, self.rho)[np.arange(len(idx)), idx] / 4.0
        return torch.as_tensor(r, dtype=torch.float32)


def make_judge(task, rho: float, params: MethodParams) -> PairJudge | RewardJudge:
    """Who scores ``params.method``'s samples at intransitivity ``rho``: the exact judge, or for
    ``rl`` its Bradley-Terry reward."""
    return ExactBTReward(task, rho) if params.spec.kind == "rl" else ExactJudge(task, rho)


# -- one unit: one chain, one rho, one method ---------------------------------------------------
def align_unit(cfg, task, sft, rho: float, method: str, seed: int, evals: dict, bar=None) -> dict:
    """Align a copy of ``sft`` with ``method``; exact metrics on both splits every eval_every steps."""
    policy, ref = copy.deepcopy(sft), copy.deepcopy(sft).requires_grad_(False)
    params = MethodParams(method, cfg.tau, cfg.beta)
    judge = make_judge(task, rho, params)
    decoding = Decoding(task.L, EOS, PAD)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(stream_seed(seed, rho, method, "sample"))
    rng = np.random.default_rng(stream_seed(seed, rho, method, "batches"))
    train = task.prompt_indices("train")
    curve, final = [], {}

    def evaluate(step):
        row = {"step": step}
        for split, ev in evals.items():
            law, outside = exact_law(policy, task, ev["docs"], BOS, SEP, EOS)
            final[split] = law / law.sum(-1, keepdims=True)
            m = policy_metrics(law, ev["P"], ev["mu"], cfg.tau, ev["targets"])
            row.update({f"{split}/{k}": float(v.mean()) for k, v in m.items()})
            row[f"{split}/mass_outside"] = float(np.abs(outside).max())
            if step == cfg.steps:
                row[f"{split}/per_prompt"] = {k: v.tolist() for k, v in m.items()
                                              if k.startswith("win_vs/") or k.startswith("kl_to/")}
        return row

    curve.append(evaluate(0))
    for step in range(1, cfg.steps + 1):
        docs = train[rng.integers(len(train), size=cfg.batch_size)]
        ids = prompt_ids(task, docs, BOS, SEP)
        batch = PromptBatch(ids, torch.ones_like(ids))
        loss, stats = alignment_loss(params, policy, ref, batch, judge, decoding, generator=gen)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{method} at rho={rho}: the loss became {loss.item()} at step {step}; "
                               f"lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve.append(evaluate(step))
        if bar is not None:
            bar.update(1)
    return {"method": method, "rho": rho, "target": TARGET_OF[method], "curve": curve}, final


def cross_summary(evals: dict, laws: dict) -> dict:
    """Between the trained policies of one chain and rho, per split: exact win rates
    ``win[a][b] = pi_a^T P pi_b`` and ``kl[a][b] = KL(pi_a || pi_b)`` (means over prompts)."""
    from .exact_targets import kl, win_rate

    out = {}
    for split, ev in evals.items():
        names = sorted(laws)
        out[split] = {
            "win": {a: {b: float(win_rate(ev["P"], laws[a][split], laws[b][split]).mean()) for b in names}
                    for a in names},
            "kl": {a: {b: float(kl(laws[a][split], laws[b][split]).mean()) for b in names} for a in names}}
    return out


def split_evals(cfg, task, sft, rho: float) -> dict:
    """Per split: the evaluation prompts, mu (the SFT law), P and every exact target."""
    out = {}
    for split in ("train", "test"):
        docs = task.prompt_indices(split)[: cfg.eval_prompts]
        mu, outside = exact_law(sft, task, docs, BOS, SEP, EOS)
        mu = mu / mu.sum(-1, keepdims=True)
        P = task.preference(docs, rho)
        tg = targets(P, mu, cfg.tau, cfg.beta, task.bt_reward(docs, rho), task.space)
        out[split] = {"docs": docs, "mu": mu, "P": P, "targets": tg,
                      "mu_outside": float(np.abs(outside).max())}
    return out


def target_summary(evals: dict, task, rho: float) -> dict:
    """What the targets are, per split (means over prompts): distances between them, certificates,
    and the judge's transitivity measures."""
    from .enumerable import bt_agreement, intransitive_share
    from .exact_targets import kl, win_rate

    out = {}
    for split, ev in evals.items():
        laws, P, mu = ev["targets"]["laws"], ev["P"], ev["mu"]
        logits = task.logits(ev["docs"], rho)
        row = {f"certificate/{k}": float(np.max(v)) for k, v in ev["targets"]["certificates"].items()}
        row.update({
            "intransitive_share": float(intransitive_share(logits).mean()),
            "bt_agreement_uniform": float(bt_agreement(logits).mean()),
            "bt_agreement_mu": float(bt_agreement(logits, mu).mean()),
            "kl/tok_mix||seq_mix": float(kl(laws["tok_mix"], laws["seq_mix"]).mean()),
            "kl/nash||tok_mix": float(kl(laws["nash"], laws["tok_mix"]).mean()),
            "kl/tok_mix||nash": float(kl(laws["tok_mix"], laws["nash"]).mean()),
            "kl/seq_mix||nash": float(kl(laws["seq_mix"], laws["nash"]).mean()),
            "kl/nash||sft": float(kl(laws["nash"], mu).mean()),
            "kl/rlhf||sft": float(kl(laws["rlhf"], mu).mean()),
            "kl/rlhf||nash": float(kl(laws["rlhf"], laws["nash"]).mean()),
            "kl/dpo||nash": float(kl(laws["dpo"], laws["nash"]).mean()),
            "kl/dpo||rlhf": float(kl(laws["dpo"], laws["rlhf"]).mean()),
            "kl/dpo||sft": float(kl(laws["dpo"], mu).mean()),
            "win/dpo_vs_nash": float(win_rate(P, laws["dpo"], laws["nash"]).mean()),
            "win/nash_vs_rlhf": float(win_rate(P, laws["nash"], laws["rlhf"]).mean()),
            "win/tok_mix_vs_rlhf": float(win_rate(P, laws["tok_mix"], laws["rlhf"]).mean()),
            "win/nash_vs_sft": float(win_rate(P, laws["nash"], mu).mean()),
            "win/rlhf_vs_sft": float(win_rate(P, laws["rlhf"], mu).mean()),
            "mu_outside": ev["mu_outside"],
            "per_prompt": {**{f"win/{t}_vs_sft": win_rate(P, laws[t], mu).tolist() for t in laws},
                           **{f"win/{t}_vs_rlhf": win_rate(P, laws[t], laws["rlhf"]).tolist() for t in laws}},
        })
        out[split] = row
    return out


# -- the run ------------------------------------------------------------------------------------
def _unit_path(out, chain, rho, name):
    return os.path.join(out, "units", f"chain{chain:03d}", f"rho{rho:g}", f"{name}.json")


def run_exact(cfg: ExactConfig, progress_bar: bool = True) -> dict:
    cfg = resolve(cfg)
    with RunLock(cfg.out):  # one writer per folder (a second run exits 2 naming the first)
        try:
            return _run_locked(cfg, progress_bar)
        except KeyboardInterrupt as e:
            e.add_note(f"interrupted; the finished units are kept in {cfg.out}/units: rerun with --resume "
                       "to continue")
            raise


def run_chain(cfg: ExactConfig, chain: int, bar=None) -> int:
    """Every unit of one chain not yet in ``cfg.out`` (SFT, then per rho the targets, the methods and
    their cross comparisons). Self-contained: seeded by ``seed + chain`` alone, so chains may run in
    any order or in parallel processes and give the same files."""
    rho_list, method_list = rhos(cfg), methods(cfg)
    seed = cfg.seed + chain
    task = make_task(cfg)
    sft_path = os.path.join(cfg.out, "units", f"chain{chain:03d}", "sft.pt")
    if os.path.exists(sft_path):
        sft = new_policy(cfg, task, seed)
        sft.load_state_dict(torch.load(sft_path, weights_only=True))
        if bar is not None:
            bar.update(cfg.sft_steps)
    else:
        sft = train_sft(cfg, task, seed, bar)
        os.makedirs(os.path.dirname(sft_path), exist_ok=True)
        buf = io.BytesIO()
        torch.save(sft.state_dict(), buf)
        atomic_write_bytes(sft_path, buf.getvalue())
    for rho in rho_list:
        todo = [m for m in method_list if not os.path.exists(_unit_path(cfg.out, chain, rho, m))]
        tpath = _unit_path(cfg.out, chain, rho, "_targets")
        if not todo and os.path.exists(_unit_path(cfg.out, chain, rho, "_cross")):
            if bar is not None:
                bar.update(len(method_list) * cfg.steps)
            continue
        evals = split_evals(cfg, task, sft, rho)
        if not os.path.exists(tpath):
            os.makedirs(os.path.dirname(tpath), exist_ok=True)
            atomic_write_json(tpath, target_summary(evals, task, rho))
        if bar is not None:
            bar.update((len(method_list) - len(todo)) * cfg.steps)
        for m in todo:
            if bar is not None:
                bar.set_postfix_str(f"chain {chain} rho {rho:g} {m}")
            unit, final = align_unit(cfg, task, sft, rho, m, seed, evals, bar)
            path = _unit_path(cfg.out, chain, rho, m)
            buf = io.BytesIO()
            np.savez(buf, **final)  # the final laws, for the cross-method comparisons
            atomic_write_bytes(path[:-5] + ".npz", buf.getvalue())
            atomic_write_json(path, unit)
        laws = {}
        for m in method_list:
            with np.load(_unit_path(cfg.out, chain, rho, m)[:-5] + ".npz") as f:
                laws[m] = {k: f[k] for k in f.files}
        atomic_write_json(_unit_path(cfg.out, chain, rho, "_cross"), cross_summary(evals, laws))
    return chain


def _chain_in_worker(cfg: ExactConfig, chain: int) -> int:
    torch.set_num_threads(cfg.threads)
    return run_chain(cfg, chain)


def _run_chains_in_workers(cfg: ExactConfig, bar, per_chain: int) -> None:
    """Chains in ``cfg.workers`` spawned processes (the bar advances a chain at a time); the first
    failure stops the rest, finished units stay for --resume."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_chain_in_worker, cfg, c) for c in range(cfg.chains)]
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    bar.update(per_chain)
                    bar.set_postfix_str(f"chain {f.result()} done")  # re-raises a worker's error
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _run_locked(cfg: ExactConfig, progress_bar: bool) -> dict:
    cfg_path = os.path.join(cfg.out, "config.json")
    entries = [e for e in os.listdir(cfg.out) if e != LOCK_NAME]
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            old = json.load(f)
        new = dataclasses.asdict(dataclasses.replace(cfg, resume=False, overwrite=False))
        # --chains may change on --resume: more chains continue the run, fewer summarise its first ones
        # --workers changes how the chains are scheduled, not what they compute
        if cfg.resume and {**old, "chains": 0, "workers": 0} != {**new, "chains": 0, "workers": 0}:
            raise UsageError(f"--resume: the run in {cfg.out} was made with other settings "
                             f"(see its config.json)")
        if not cfg.resume and not cfg.overwrite:
            raise UsageError(f"{cfg.out} already holds a run: pass --resume to continue it or --overwrite")
        if cfg.overwrite:
            for e in entries:
                p = os.path.join(cfg.out, e)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    elif entries:
        raise UsageError(f"--out {cfg.out} is not empty and holds no run of this stage")
    torch.set_num_threads(cfg.threads)
    atomic_write_json(cfg_path, dataclasses.asdict(dataclasses.replace(cfg, resume=False, overwrite=False)))
    rho_list, method_list = rhos(cfg), methods(cfg)
    t_start = time.time()
    per_chain = cfg.sft_steps + len(rho_list) * len(method_list) * cfg.steps
    with progress(cfg.chains * per_chain, desc="exact", unit="step", disable=not progress_bar) as bar:
        if cfg.workers == 1:
            for chain in range(cfg.chains):
                run_chain(cfg, chain, bar)
        else:
            _run_chains_in_workers(cfg, bar, per_chain)
    from .exact_report import summarise

    summary = summarise(cfg.out, cfg)
    # wall time over every invocation that trained or summarised this run (timing.json; a run
    # summarised before timing.json existed counts its summary's seconds as its first invocation)
    timing_path = os.path.join(cfg.out, "timing.json")
    if os.path.exists(timing_path):
        with open(timing_path) as f:
            timing = json.load(f)
    else:
        timing = []
        old_summary = os.path.join(cfg.out, "summary.json")
        if os.path.exists(old_summary):
            with open(old_summary) as f:
                timing.append({"seconds": json.load(f).get("seconds", 0.0), "note": "first invocation"})
    timing.append({"seconds": time.time() - t_start, "argv": sys.argv[1:], "chains": cfg.chains})
    atomic_write_json(timing_path, timing)
    summary["seconds"] = float(sum(t["seconds"] for t in timing))
    summary["versions"] = package_versions()
    summary["provenance"] = measured_provenance()
    atomic_write_json(os.path.join(cfg.out, "summary.json"), summary)
    return summary


def build_parser() -> Parser:
    parser = Parser(prog="python -m llm exact", description=(
        "Transformers on the enumerable task (every prompt a tabular game), each trained policy's exact "
        "law measured against the point tabular solves for its method. Presets: tiny (CI, seconds), small "
        "(the main job, minutes), reference (the committed llm/reference/exact: 20 chains x rho 0, 0.5, 1 "
        "x 7 methods). Writes OUT/config.json, OUT/units/ (one file per chain, rho and method; --resume "
        "skips the finished ones) and OUT/summary.json; `python -m llm exact-report OUT` renders its "
        "tables. Flags left at 0 or empty take the preset's value."))
    add_dataclass_flags(parser, ExactConfig)
    return parser


def main(argv=None) -> int:
    def command():
        args = build_parser().parse_args(argv)
        cfg = config_from_args(ExactConfig, args)
        summary = run_exact(cfg)
        print(f"wrote {os.path.join(cfg.out, 'summary.json')} ({summary['seconds']:.0f} s)")
        return 0

    return run_command("python -m llm exact", command)


if __name__ == "__main__":
    sys.exit(main())
