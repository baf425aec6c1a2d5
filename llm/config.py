"""One configuration dataclass per stage; the CLI flags are built from their fields.

Every field has ``metadata["help"]`` (shown by ``--help`` with its default). :meth:`validate`
raises :class:`~llm.models.UsageError` with one line; the resolved config is written as
``config.json`` in every run folder and stored in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from tabular.game import validate_seed

from .models import UsageError
from .objectives import METHODS

__all__ = ["RunConfig", "SFTConfig", "PMConfig", "AlignConfig", "EvalConfig", "PipelineConfig",
           "StudyConfig", "STAGE_CONFIGS", "RESUMABLE_CHANGES", "MAX_SEED"]


def _f(default, help: str, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


# Fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = {"resume", "overwrite", "device", "threads", "out"}
# Seeds are limited to 32 bits: the stages derive further streams from them (seed + 2,
# 10_000 + seed, 1000 seed + 10 i + s in evaluate), which must stay inside torch's 64-bit range.
MAX_SEED = 2**32 - 1


def _positive_finite(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise UsageError(f"--{name} must be a finite number > 0, got {value}")


def _known_methods(methods) -> None:
    for m in methods:
        if m not in METHODS:
            raise UsageError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")


@dataclass
class RunConfig:
    """Fields shared by every stage."""

    out: str = _f("", "run folder (config.json, metrics, checkpoints, models)", required=True)
    seed: int = _f(0, "random seed (model init, batches, sampling)")
    task: str = _f("synthetic", "task: synthetic (facts with hidden salience) or text (stdlib docstrings)",
                   choices=("synthetic", "text"))
    task_seed: int = _f(0, "seed of the task's hidden judge and data splits (keep fixed across stages)")
    device: str = _f("auto", "auto (CUDA if present), cpu, cuda or cuda:N")
    bf16: bool = _f(False, "bf16 autocast on CUDA (ignored on CPU)")
    threads: int = _f(1, "torch CPU threads (the CI machine's 2 cores are shared; >1 sets OMP_WAIT_POLICY=PASSIVE)")
    checkpoint_every: int = _f(100, "write an atomic checkpoint (model, optimizer, RNG) every K steps")
    log_every: int = _f(10, "log metrics every K steps")
    resume: bool = _f(False, "continue the run in --out from its checkpoint")
    overwrite: bool = _f(False, "replace the run already in --out")
    preset: str = _f("none", "gpu: 12-layer d=768 GPT-2, bf16, batches for one H100/H200, --task text; fills "
                     "the flags left at their defaults (llm/presets.py)", choices=("none", "gpu"))

    def validate(self) -> None:
        if self.preset == "gpu":  # resolved here, so config.json records the values used
            from .presets import apply_preset
            apply_preset(self)
        if not self.out:
            raise UsageError("--out is required")
        if self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise UsageError("--checkpoint-every and --log-every must be >= 1")
        if self.resume and self.overwrite:
            raise UsageError("--resume and --overwrite exclude each other")
        for name in ("seed", "task_seed"):
            try:
                validate_seed(getattr(self, name), "--" + name.replace("_", "-"), MAX_SEED)
            except ValueError as e:
                raise UsageError(str(e)) from None
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            flag = f.name.replace("_", "-")
            if f.type in ("int", int) and f.name.endswith(("steps", "batch_size", "prompts", "pairs",
                                                          "per_prompt")) and value < 1:
                raise UsageError(f"--{flag} must be >= 1, got {value}")
            if f.name.endswith("lr") or f.name in ("tau", "temperature"):
                _positive_finite(flag, value)


@dataclass
class ModelShape:
    """Shape of a freshly built GPT-2 (used when no --init path is given)."""

    n_layer: int = _f(2, "GPT-2 layers of a new model")
    n_embd: int = _f(64, "GPT-2 width of a new model")
    n_head: int = _f(4, "GPT-2 attention heads of a new model")

    def validate(self) -> None:
        super().validate()
        for name in ("n_layer", "n_embd", "n_head"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise UsageError(f"--n-embd ({self.n_embd}) must be a multiple of --n-head ({self.n_head})")


@dataclass
class SFTConfig(ModelShape, RunConfig):
    """``sft``: supervised fine-tuning on the task's reference summaries; the result is mu."""

    init: str = _f("", "local causal LM to start from (with tokenizer.json); empty: new GPT-2 + new tokenizer")
    steps: int = _f(1000, "optimiser steps")
    batch_size: int = _f(64, "(prompt, reference summary) pairs per step")
    lr: float = _f(3e-3, "AdamW learning rate (linear warm-down to 10%)")


@dataclass
class PMConfig(ModelShape, RunConfig):
    """``train-pm``: pairwise preference model (+ Bradley-Terry reward model) on gold comparisons."""

    sft: str = _f("", "SFT model folder (its samples are compared by the gold judge)", required=True)
    n_pairs: int = _f(4000, "training pairs of SFT samples labelled by the gold judge")
    heldout_pairs: int = _f(500, "held-out pairs (held-out prompts) for accuracy and calibration")
    steps: int = _f(800, "optimiser steps for each model")
    batch_size: int = _f(64, "pairs per step")
    lr: float = _f(2e-3, "AdamW learning rate (linear warm-down to 10%)")
    reward_model: bool = _f(True, "also train a Bradley-Terry reward model (for --method rl) into OUT/rm")


@dataclass
class AlignConfig(RunConfig):
    """``align``: online/offline preference optimisation of the SFT policy against mu = SFT."""

    sft: str = _f("", "SFT model folder: initial policy and frozen reference mu", required=True)
    pm: str = _f("", "preference model folder (pairwise methods, nash_md_pg, self_play)")
    rm: str = _f("", "reward model folder (method rl)")
    judge: str = _f("pm", "who labels the pairs: the learned pm (rl: the learned rm) or the exact gold judge "
                    "(rl: reward = the Bradley-Terry fit of the gold judge)", choices=("pm", "gold"))
    method: str = _f("online_ipo", "alignment method", choices=tuple(METHODS))
    tau: float = _f(0.1, "KL-regularisation strength tau (> 0); also the DPO/SLiC scale")
    beta: float = _f(0.125, "geometric-mixture coefficient beta in [0, 1] (ipo_md, nash_md_pg)")
    label_type: str = _f("soft", "labels from the PM probability", choices=("soft", "bernoulli", "hard"))
    logp_reduction: str = _f("sum", "sequence log-prob: sum of token log-probs, or per-token mean",
                             choices=("sum", "mean"))
    temperature: float = _f(1.0, "sampling temperature = temperature of the log-probs in the loss")
    steps: int = _f(150, "optimiser steps")
    batch_size: int = _f(16, "prompts per step (two responses each)")
    lr: float = _f(1e-3, "AdamW learning rate (constant)")
    max_new_tokens: int = _f(0, "response length cap (0: the task's default)")
    prompts: str = _f("", "file of training prompts, one per line (default: the task's train split)")
    eval_every: int = _f(25, "gold win rate vs SFT on held-out prompts every K steps (0: never)")
    eval_prompts: int = _f(64, "held-out prompts for the periodic win rate")

    def validate(self) -> None:
        super().validate()  # tau, temperature, lr: finite and > 0
        if not 0.0 <= self.beta <= 1.0:
            raise UsageError(f"--beta must be in [0, 1], got {self.beta}")
        if self.method == "rl" and self.label_type != "soft":
            raise UsageError("--label-type applies to methods labelled by the preference model; "
                             "rl uses the reward model's score")
        if self.method == "rl" and not self.rm and self.judge == "pm":
            raise UsageError("--method rl needs --rm (a reward model folder)")
        if self.method != "rl" and not self.pm and self.judge == "pm":
            raise UsageError(f"--method {self.method} needs --pm (a preference model folder)")
        if self.eval_every < 0 or self.max_new_tokens < 0:
            raise UsageError("--eval-every and --max-new-tokens must be >= 0")


@dataclass
class EvalConfig(RunConfig):
    """``evaluate``: side-by-side win-rate matrix (mean, std over seed pairs), gold judge and PM."""

    models: list = _f([], "NAME=PATH entries; repeat a NAME for its seeds (e.g. sft=a online_ipo=b online_ipo=c)",
                      required=True)
    pm: str = _f("", "preference model folder for the PM-judged matrix (empty: gold judge only)")
    n_prompts: int = _f(256, "held-out prompts")
    samples_per_prompt: int = _f(1, "responses per prompt and model")
    max_new_tokens: int = _f(0, "response length cap (0: the task's default)")
    temperature: float = _f(1.0, "sampling temperature")
    prompts: str = _f("", "file of prompts, one per line (default: the task's held-out split)")

    def validate(self) -> None:
        super().validate()
        if not self.models:
            raise UsageError("--models needs at least one NAME=PATH")
        for entry in self.models:
            if "=" not in entry or not entry.split("=", 1)[0] or not entry.split("=", 1)[1]:
                raise UsageError(f"--models entry must be NAME=PATH, got {entry!r}")
        if self.max_new_tokens < 0:
            raise UsageError(f"--max-new-tokens must be >= 0, got {self.max_new_tokens}")


@dataclass
class PipelineConfig(ModelShape, RunConfig):
    """``pipeline``: sft -> train-pm -> align (methods x seeds) -> evaluate, the default CPU run."""

    methods: list = _f(["online_ipo", "ipo_md", "online_dpo", "online_slic", "nash_md_pg", "rl"],
                       "methods to align (each for every seed)")
    taus: list = _f(["online_ipo=0.05", "ipo_md=0.05", "online_dpo=0.5", "online_slic=0.5", "nash_md_pg=0.02",
                     "rl=0.05", "self_play=0.02", "offline_ipo=0.05", "offline_dpo=0.5", "offline_slic=0.5"],
                    "tau per method, METHOD=TAU")
    beta: float = _f(0.125, "mixture coefficient for ipo_md and nash_md_pg")
    seeds: int = _f(3, "chains: per chain seed, SFT, PM/RM and every alignment run are retrained")
    judges: list = _f(["pm", "gold"], "judge conditions: pm (learned PM; rl: learned RM) and/or gold (exact gold "
                      "judge; rl: its Bradley-Terry fit)")
    sft_steps: int = _f(500, "SFT steps (per chain)")
    pm_steps: int = _f(400, "preference/reward model steps (per chain)")
    pm_pairs: int = _f(8000, "gold-labelled training pairs for the PM")
    align_steps: int = _f(150, "alignment steps per run")
    align_batch_size: int = _f(16, "prompts per alignment step")
    align_lr: float = _f(1e-3, "alignment learning rate")
    eval_every: int = _f(50, "gold win rate vs SFT every K alignment steps (curves.csv)")
    eval_prompts: int = _f(64, "validation prompts for the curves")
    n_prompts: int = _f(2048, "test-split prompts for the final win-rate matrices")
    samples_per_prompt: int = _f(4, "responses per test prompt and policy")
    sweep: bool = _f(False, "also run the tau sweep (online_ipo vs online_dpo) and beta sweep (ipo_md) on chain 0")
    sweep_taus: list = _f(["0.02", "0.05", "0.2", "1.0"], "taus of the sweep (online_ipo and online_dpo)")
    sweep_betas: list = _f(["0.0", "0.25", "0.5", "1.0"], "betas of the ipo_md sweep (at ipo_md's tau)")
    sweep_seeds: int = _f(1, "seeds per sweep point")

    def tau_of(self, method: str) -> float:
        table = dict(t.split("=", 1) for t in self.taus)
        return float(table.get(method, 0.1))

    def validate(self) -> None:
        super().validate()
        _known_methods(self.methods)
        try:
            taus = [float(t.split("=", 1)[1]) for t in self.taus] + [float(v) for v in self.sweep_taus]
            betas = [float(b) for b in self.sweep_betas] + [self.beta]
        except (IndexError, ValueError):
            raise UsageError("--taus must be METHOD=TAU entries; sweep values must be numbers") from None
        if any(not (math.isfinite(t) and t > 0) for t in taus):
            raise UsageError(f"every tau must be a finite number > 0, got {', '.join(self.taus + self.sweep_taus)}")
        if any(not 0 <= b <= 1 for b in betas):
            raise UsageError("every beta must be in [0, 1]")
        if self.seeds < 1 or self.sweep_seeds < 1:
            raise UsageError("--seeds and --sweep-seeds must be >= 1")
        if not self.judges or any(j not in ("pm", "gold") for j in self.judges) or len(set(self.judges)) < len(self.judges):
            raise UsageError(f"--judges must be distinct entries of pm, gold; got {' '.join(self.judges)}")
        if self.samples_per_prompt < 1:
            raise UsageError(f"--samples-per-prompt must be >= 1, got {self.samples_per_prompt}")


@dataclass
class StudyConfig(ModelShape, RunConfig):
    """``study``: the paper's protocol: tau (and beta) sweep, selection on validation, chains, test matrix."""

    preset: str = _f("quick", "quick: grids and sizes that finish in ~45 min on 2 CPU cores (printed); "
                     "paper: the flags as given", choices=("quick", "paper"))
    methods: list = _f(["online_ipo", "ipo_md", "online_dpo", "online_slic", "nash_md_pg", "rl"],
                       "methods to sweep, select and compare")
    taus: list = _f(["online_ipo=0.01,0.02,0.05,0.1,0.2,0.5,1", "ipo_md=0.01,0.02,0.05,0.1,0.2,0.5,1",
                     "online_dpo=0.05,0.1,0.2,0.5,1,2", "online_slic=0.05,0.1,0.2,0.5,1,2",
                     "nash_md_pg=0.005,0.01,0.02,0.05,0.1", "rl=0.005,0.01,0.02,0.05,0.1,0.2"],
                    "tau grid per method, METHOD=T1,T2,...")
    betas: list = _f(["0.0", "0.125", "0.25", "0.5"], "beta grid of ipo_md and nash_md_pg")
    beta: float = _f(0.125, "beta of the other methods' runs (unused by them; names the run)")
    chains: int = _f(3, "chains for the selected settings (SFT, PM/RM and alignment retrained per seed)")
    sft_steps: int = _f(1000, "SFT steps")
    pm_steps: int = _f(800, "preference/reward model steps")
    pm_pairs: int = _f(4000, "gold-labelled training pairs for the PM")
    align_steps: int = _f(300, "alignment steps of a sweep run (the last candidate checkpoint)")
    align_batch_size: int = _f(16, "prompts per alignment step")
    align_lr: float = _f(1e-3, "alignment learning rate")
    eval_every: int = _f(25, "candidate checkpoints: validation win rate every K steps")
    valid_prompts: int = _f(512, "validation prompts (selection and the figures against RL)")
    n_prompts: int = _f(2048, "test prompts for the final matrices")
    samples_per_prompt: int = _f(4, "responses per prompt and policy (validation figures and test)")

    def validate(self) -> None:
        super().validate()
        _known_methods(self.methods)
        try:
            grid = {m: [float(t) for t in v.split(",")] for m, v in (e.split("=", 1) for e in self.taus)}
            betas = [float(b) for b in self.betas]
        except ValueError:
            raise UsageError("--taus must be METHOD=T1,T2,... entries and --betas numbers") from None
        missing = [m for m in self.methods if m not in grid]
        if missing:
            raise UsageError(f"--taus lacks a grid for {', '.join(missing)}")
        if any(not (math.isfinite(t) and t > 0) for ts in grid.values() for t in ts) \
                or any(not 0 <= b <= 1 for b in betas):
            raise UsageError("every tau must be a finite number > 0 and every beta in [0, 1]")
        if self.chains < 1 or self.eval_every < 1 or self.samples_per_prompt < 1:
            raise UsageError("--chains, --eval-every and --samples-per-prompt must be >= 1")


STAGE_CONFIGS = {"sft": SFTConfig, "train-pm": PMConfig, "align": AlignConfig, "evaluate": EvalConfig,
                 "pipeline": PipelineConfig, "study": StudyConfig}
