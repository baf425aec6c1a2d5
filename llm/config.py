"""One configuration dataclass per stage; the CLI flags are built from their fields.

Every field has ``metadata["help"]`` (shown by ``--help`` with its default). :meth:`validate`
raises :class:`~opo_toolkit.cliargs.UsageError` with one line; the resolved config is written as
``config.json`` in every run folder and stored in every checkpoint.

:class:`MethodParams` is the one value that carries an alignment method and its hyperparameters
(tau, beta, label type, log-prob reduction, temperature) to :func:`llm.align.alignment_loss`; it
validates them once, with the tabular core's own checks (:func:`tabular.game.validate_tau`,
:func:`~tabular.game.validate_beta`). The methods are the table :mod:`tabular.methods`: the llm
runs the ones that learn from samples (:func:`tabular.methods.sampled_methods`).

The list flags hold typed values (the pipeline's ``--taus`` a mapping ``{method: tau}``, the
study's ``{method: (tau, ...)}``, the grids tuples of numbers); their words, the parsers that turn
words into values and the reading of recorded configs are :mod:`llm.flag_values`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from opo_toolkit.cliargs import UsageError
from tabular.game import validate_beta, validate_seed, validate_tau
from tabular.losses import LABEL_TYPES
from tabular.methods import METHODS, Method, sampled_methods

from .flag_values import (
    TAU_GRIDS,
    TAU_TABLE,
    checked,
    known_method,
    number_flag,
    numbers,
    tau_grids,
    tau_table,
)
from .sampling import LOGP_REDUCTIONS
from .scorers import PM_FORMS
from .tasks import TASKS

__all__ = ["RunConfig", "SFTConfig", "PMConfig", "AlignConfig", "EvalConfig", "PipelineConfig",
           "StudyConfig", "JudgesConfig", "MethodParams", "STAGE_CONFIGS", "RESUMABLE_CHANGES",
           "ADDED_FIELDS", "MAX_SEED"]


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


# Fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = {"resume", "overwrite", "device", "threads", "out"}
# Fields added to a stage after runs of it were recorded, whose default does what the stage did
# before: a recorded config without one resumes when the current run leaves it at its default.
# (A field whose default changed what the stage does, such as study's --select-against, is not one.)
ADDED_FIELDS = {"eval_vs"}
# Seeds are limited to 32 bits: the stages derive further streams from them (seed + 2,
# 10_000 + seed, 1000 seed + 10 i + s in evaluate), which must stay inside torch's 64-bit range.
MAX_SEED = 2**32 - 1
# Chains of the pipeline, study and judges stages: each retrains SFT, PM and RM (minutes at least on
# a CPU), so this is far above any run that could finish, and a typo such as 10**12 is refused.
MAX_CHAINS = 1000


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _at_least(cfg, low: int, *names: str) -> None:
    """Each named integer field is >= ``low``."""
    for name in names:
        value = getattr(cfg, name)
        if value < low:
            raise UsageError(f"{_flag(name)} must be >= {low}, got {value}")


def _positive_finite(flag: str, value) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                       and value > 0):
        raise UsageError(f"{flag} must be a finite number > 0, got {value}")
    return float(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _held(cfg, name: str, form: str, ok) -> None:
    """A typed list flag holds its typed value (its words parsed), else a one-line UsageError."""
    value = getattr(cfg, name)
    if not ok(value):
        raise UsageError(f"{_flag(name)} must hold {form} (its words parsed), got {value!r}")


def _number_tuple(value) -> bool:
    return isinstance(value, tuple) and all(map(_is_number, value))


def _method_map(value, holds) -> bool:
    """``value`` is a dict from method names to values for which ``holds``."""
    return isinstance(value, dict) and all(isinstance(m, str) and holds(v) for m, v in value.items())


@dataclass(frozen=True)
class MethodParams:
    """An alignment method and its hyperparameters: everything :func:`llm.align.alignment_loss`
    reads besides the models and the batch. Validated once, here (one-line UsageError)."""

    method: str
    """a sampled method of :data:`tabular.methods.METHODS` (``online_ipo``, ``ipo_md``, ``rl``, ...)"""
    tau: float
    """KL-regularisation strength (> 0); also the scale of DPO/SLiC"""
    beta: float
    """geometric-mixture coefficient in [0, 1] (read by the methods whose ``uses_beta``)"""
    label_type: str = "soft"
    """labels from the judge's probability: one of :data:`tabular.losses.LABEL_TYPES`"""
    logp_reduction: str = "sum"
    """sequence log-prob: ``sum`` of token log-probs or their ``mean``"""
    temperature: float = 1.0
    """sampling temperature = temperature of the log-probs in the loss (> 0)"""

    def __post_init__(self):
        known_method(self.method)
        object.__setattr__(self, "tau", checked("--tau", validate_tau, self.tau))
        object.__setattr__(self, "beta", checked("--beta", validate_beta, self.beta))
        object.__setattr__(self, "temperature", _positive_finite("--temperature", self.temperature))
        if self.label_type not in LABEL_TYPES:
            raise UsageError(f"--label-type must be one of {', '.join(LABEL_TYPES)}, got {self.label_type!r}")
        if self.logp_reduction not in LOGP_REDUCTIONS:
            raise UsageError(f"--logp-reduction must be one of {', '.join(LOGP_REDUCTIONS)}, "
                             f"got {self.logp_reduction!r}")
        if self.spec.kind == "rl" and self.label_type != "soft":
            raise UsageError("--label-type applies to methods labelled by the preference model; "
                             "rl uses the reward model's score")

    @property
    def spec(self) -> Method:
        """The method's entry of the shared table (kind, loss, where y and y' are drawn)."""
        return METHODS[self.method]

    def betas(self) -> tuple[float, float]:
        """Mixture coefficients ``(beta_y, beta_y')`` of the two responses (0: pi, 1: mu)."""
        return self.spec.betas(self.beta)


@dataclass
class RunConfig:
    """Fields shared by every stage."""

    out: str = _f("", "run folder (config.json, metrics, checkpoints, models)", required=True)
    seed: int = _f(0, "random seed (model init, batches, sampling)")
    task: str = _f("synthetic", "task: synthetic (facts with hidden salience) or text (stdlib docstrings)",
                   choices=lambda: tuple(TASKS))
    task_seed: int = _f(0, "seed of the task's hidden judge and data splits (keep fixed across stages)")
    device: str = _f("auto", "auto (CUDA if present), cpu, cuda or cuda:N")
    bf16: bool = _f(False, "bf16 autocast on CUDA (ignored on CPU)")
    threads: int = _f(1, "torch CPU threads (the CI machine's 2 cores are shared; "
                      ">1 sets OMP_WAIT_POLICY=PASSIVE)")
    checkpoint_every: int = _f(100, "write an atomic checkpoint (model, optimizer, RNG) every K steps")
    log_every: int = _f(10, "log metrics every K steps")
    resume: bool = _f(False, "continue the run in --out from its checkpoint")
    overwrite: bool = _f(False, "replace the run already in --out")
    preset: str = _f("none", "gpu: 12-layer d=768 GPT-2, bf16, batches for one H100/H200, --task text; fills "
                     "the flags left at their defaults (llm/presets.py)", choices=("none", "gpu"))

    def inputs(self) -> dict[str, str]:
        """``{flag: path}`` of the files and folders this stage reads: ``--out`` may not be,
        contain or lie inside any of them (:func:`opo_toolkit.files.check_apart`)."""
        return {}

    def validate(self) -> None:
        """Check the flags (one-line UsageErrors); changes nothing. A preset is resolved before,
        by :func:`llm.runtime.stage_function` (so config.json records the values used)."""
        if not self.out:
            raise UsageError("--out is required")
        _at_least(self, 1, "threads", "checkpoint_every", "log_every")
        if self.resume and self.overwrite:
            raise UsageError("--resume and --overwrite exclude each other")
        for name in ("seed", "task_seed"):
            try:
                validate_seed(getattr(self, name), _flag(name), MAX_SEED)
            except ValueError as e:
                raise UsageError(str(e)) from None


@dataclass
class ModelShape:
    """Shape of a freshly built GPT-2 (used when no --init path is given)."""

    n_layer: int = _f(2, "GPT-2 layers of a new model")
    n_embd: int = _f(64, "GPT-2 width of a new model")
    n_head: int = _f(4, "GPT-2 attention heads of a new model")

    def validate(self) -> None:
        super().validate()
        _at_least(self, 1, "n_layer", "n_embd", "n_head")
        if self.n_embd % self.n_head:
            raise UsageError(f"--n-embd ({self.n_embd}) must be a multiple of --n-head ({self.n_head})")


@dataclass
class DataParallel:
    """The split of each step's batch (llm/distributed.py); one process with --shards N computes
    what torchrun's N processes compute together."""

    shards: int = _f(0, "split each step's batch into this many shards, each with its own random streams, "
                     "shared out over torchrun's processes (0: one per process)")

    def validate(self) -> None:
        super().validate()
        if self.shards < 0:
            raise UsageError(f"--shards must be >= 0, got {self.shards}")


@dataclass
class SFTConfig(DataParallel, ModelShape, RunConfig):
    """``sft``: supervised fine-tuning on the task's reference summaries; the result is mu."""

    init: str = _f("", "local causal LM to start from (with tokenizer.json); "
                   "empty: new GPT-2 + new tokenizer")
    steps: int = _f(1000, "optimiser steps")
    batch_size: int = _f(64, "(prompt, reference summary) pairs per step")
    lr: float = _f(3e-3, "AdamW learning rate (linear warm-down to 10%)")

    def inputs(self) -> dict[str, str]:
        return {"--init": self.init}

    def validate(self) -> None:
        super().validate()
        _at_least(self, 1, "steps", "batch_size")
        _positive_finite("--lr", self.lr)


@dataclass
class PMConfig(DataParallel, ModelShape, RunConfig):
    """``train-pm``: preference model (+ Bradley-Terry reward model) on gold comparisons."""

    sft: str = _f("", "SFT model folder (its samples are compared by the gold judge)", required=True)
    n_pairs: int = _f(4000, "training pairs of SFT samples labelled by the gold judge")
    heldout_pairs: int = _f(2000, "held-out pairs (valid-split prompts) for accuracy and calibration")
    steps: int = _f(1000, "optimiser steps for each model")
    batch_size: int = _f(64, "pairs per step")
    lr: float = _f(2e-3, "AdamW learning rate (linear warm-down to 10%)")
    reward_model: bool = _f(True, "also train a Bradley-Terry reward model (for --method rl) into OUT/rm")
    pm_form: str = _f("residual", "how the PM's logits give P(y > y'): residual = Bradley-Terry score "
                      "difference r(y) - r(y') plus an antisymmetric pairwise term "
                      "(g(y, y') - g(y', y)) / 2, one network; pairwise = the pair input only, both orders "
                      "averaged",
                      choices=PM_FORMS)
    pm_init: str = _f("rm", "rm: train the RM for --steps first, then start the PM from the RM's weights "
                      "(its score term begins at the RM's Bradley-Terry fit) and train it --steps more; "
                      "scratch: PM and RM side by side from fresh weights", choices=("rm", "scratch"))

    def inputs(self) -> dict[str, str]:
        return {"--sft": self.sft}

    def validate(self) -> None:
        super().validate()
        _at_least(self, 1, "n_pairs", "heldout_pairs", "steps", "batch_size")
        _positive_finite("--lr", self.lr)
        if self.pm_init == "rm" and not self.reward_model:
            raise UsageError("--pm-init rm starts the PM from the reward model; with --no-reward-model "
                             "pass --pm-init scratch")


@dataclass
class AlignConfig(DataParallel, RunConfig):
    """``align``: online/offline preference optimisation of the SFT policy against mu = SFT."""

    sft: str = _f("", "SFT model folder: initial policy and frozen reference mu", required=True)
    pm: str = _f("", "preference model folder (pairwise methods, nash_md_pg, self_play)")
    rm: str = _f("", "reward model folder (method rl)")
    judge: str = _f("pm", "who labels the pairs: the learned pm (rl: the learned rm) or the exact gold judge "
                    "(rl: reward = the Bradley-Terry fit of the gold judge)", choices=("pm", "gold"))
    method: str = _f("online_ipo", "alignment method (a sampled method of tabular.methods.METHODS)",
                     choices=lambda: tuple(sampled_methods()))
    tau: float = _f(0.1, "KL-regularisation strength tau (> 0); also the DPO/SLiC scale")
    beta: float = _f(0.125, "geometric-mixture coefficient beta in [0, 1] (ipo_md, nash_md_pg)")
    label_type: str = _f("soft", "labels from the PM probability", choices=LABEL_TYPES)
    logp_reduction: str = _f("sum", "sequence log-prob: sum of token log-probs, or per-token mean",
                             choices=LOGP_REDUCTIONS)
    temperature: float = _f(1.0, "sampling temperature = temperature of the log-probs in the loss")
    steps: int = _f(150, "optimiser steps")
    batch_size: int = _f(16, "prompts per step (two responses each)")
    lr: float = _f(1e-3, "AdamW learning rate (constant)")
    max_new_tokens: int = _f(0, "response length cap (0: the task's default)")
    prompts: str = _f("", "file of training prompts, one per line (default: the task's train split)")
    eval_every: int = _f(25, "gold win rate vs SFT on held-out prompts every K steps (0: never)")
    eval_prompts: int = _f(64, "held-out prompts for the periodic win rate")
    eval_vs: str = _f("", "policy folder (e.g. a selected RL checkpoint): every periodic evaluation also "
                      "records the gold win rate against its responses on the same prompts "
                      "(eval/winrate_vs_opponent; the study's --select-against rl); empty: none")

    def inputs(self) -> dict[str, str]:
        return {"--sft": self.sft, "--pm": self.pm, "--rm": self.rm, "--prompts": self.prompts,
                "--eval-vs": self.eval_vs}

    def method_params(self) -> MethodParams:
        """The method and its hyperparameters as the loss reads them (validated on construction)."""
        return MethodParams(self.method, self.tau, self.beta, self.label_type, self.logp_reduction,
                            self.temperature)

    def validate(self) -> None:
        super().validate()
        kind = self.method_params().spec.kind
        if kind == "rl" and not self.rm and self.judge == "pm":
            raise UsageError("--method rl needs --rm (a reward model folder)")
        if kind != "rl" and not self.pm and self.judge == "pm":
            raise UsageError(f"--method {self.method} needs --pm (a preference model folder)")
        _at_least(self, 1, "steps", "batch_size", "eval_prompts")
        _at_least(self, 0, "eval_every", "max_new_tokens")
        _positive_finite("--lr", self.lr)


@dataclass
class EvalConfig(RunConfig):
    """``evaluate``: side-by-side win-rate matrix (mean, std over seed pairs), gold judge and PM."""

    models: list = _f([], "NAME=PATH entries; repeat a NAME for its seeds "
                      "(e.g. sft=a online_ipo=b online_ipo=c)",
                      required=True)
    pm: str = _f("", "preference model folder for the PM-judged matrix (empty: gold judge only)")
    n_prompts: int = _f(256, "held-out prompts")
    samples_per_prompt: int = _f(1, "responses per prompt and model")
    max_new_tokens: int = _f(0, "response length cap (0: the task's default)")
    temperature: float = _f(1.0, "sampling temperature")
    prompts: str = _f("", "file of prompts, one per line (default: the task's held-out split)")

    def inputs(self) -> dict[str, str]:
        models = {f"--models {entry}": entry.partition("=")[2] for entry in self.models}
        return {**models, "--pm": self.pm, "--prompts": self.prompts}

    def validate(self) -> None:
        super().validate()
        if not self.models:
            raise UsageError("--models needs at least one NAME=PATH")
        for entry in self.models:
            if "=" not in entry or not entry.split("=", 1)[0] or not entry.split("=", 1)[1]:
                raise UsageError(f"--models entry must be NAME=PATH, got {entry!r}")
        _at_least(self, 1, "n_prompts", "samples_per_prompt")
        _at_least(self, 0, "max_new_tokens")
        _positive_finite("--temperature", self.temperature)


def _validate_chain_count(cfg, name: str) -> None:
    """``cfg.<name>`` chains, chain i seeded ``--seed`` + i: at most :data:`MAX_CHAINS`, and every
    chain's seed within :data:`MAX_SEED`, checked before the first chain starts."""
    count = getattr(cfg, name)
    if count > MAX_CHAINS:
        raise UsageError(f"{_flag(name)} {count}: at most {MAX_CHAINS} chains (each retrains SFT, PM and RM)")
    if cfg.seed + count - 1 > MAX_SEED:
        raise UsageError(f"{_flag(name)} {count} with --seed {cfg.seed}: chain i uses seed --seed + i, and "
                         f"the last, {cfg.seed + count - 1}, exceeds {MAX_SEED}; lower --seed to at most "
                         f"{MAX_SEED - count + 1}")


def _validate_chains(cfg) -> None:
    """The checks of what the pipeline and the study share: methods and the sizes of each chain's stages."""
    for method in cfg.methods:
        known_method(method)
    if len(set(cfg.methods)) < len(cfg.methods):
        raise UsageError(f"--methods lists a method twice: {' '.join(cfg.methods)}")
    _at_least(cfg, 1, "align_steps", "align_batch_size", "n_prompts", "samples_per_prompt")
    _positive_finite("--align-lr", cfg.align_lr)
    checked("--beta", validate_beta, cfg.beta)


@dataclass
class JudgeTraining:
    """How each chain trains its PM and RM (train-pm's flags, as the pipeline, the study and the
    judges stage set them)."""

    pm_steps: int = _f(1000, "preference/reward model steps (per chain)")
    pm_pairs: int = _f(8000, "gold-labelled training pairs for the PM")
    pm_form: str = _f("residual", "the PM's form (train-pm --pm-form)", choices=PM_FORMS)
    pm_init: str = _f("rm", "how the PM starts (train-pm --pm-init)", choices=("rm", "scratch"))

    def validate(self) -> None:
        super().validate()
        _at_least(self, 1, "sft_steps", "pm_steps", "pm_pairs")


@dataclass
class JudgesConfig(JudgeTraining, ModelShape, RunConfig):
    """``judges``: SFT, RM and PM retrained on many chains, scored against gold (PM - RM accuracy)."""

    seeds: int = _f(10, "chains: chain i trains with seed --seed + i, as the pipeline's chain i does")
    sft_steps: int = _f(500, "SFT steps (per chain)")

    def validate(self) -> None:
        if self.preset != "none":
            raise UsageError(f"--preset {self.preset} applies to sft, train-pm, align, evaluate and "
                             "pipeline; judges takes its model shape and sizes from its own flags")
        super().validate()
        _at_least(self, 2, "seeds")  # a paired interval needs two chains
        _validate_chain_count(self, "seeds")


@dataclass
class PipelineConfig(JudgeTraining, ModelShape, RunConfig):
    """``pipeline``: sft -> train-pm -> align (methods x seeds) -> evaluate, the default CPU run."""

    methods: list = _f(["online_ipo", "ipo_md", "online_dpo", "online_slic", "nash_md_pg", "rl"],
                       "methods to align (each for every seed)")
    taus: dict[str, float] = _f({name: m.llm_tau for name, m in sampled_methods().items()
                                 if m.llm_tau is not None},
                                "tau per method, METHOD=TAU (defaults: the rows' llm_tau, tabular.methods)",
                                **TAU_TABLE)
    beta: float = _f(0.125, "mixture coefficient for ipo_md and nash_md_pg")
    seeds: int = _f(3, "chains: per chain seed, SFT, PM/RM and every alignment run are retrained")
    judges: list = _f(["pm", "gold"], "judge conditions: pm (learned PM; rl: learned RM) and/or gold "
                      "(exact gold judge; rl: its Bradley-Terry fit)")
    sft_steps: int = _f(500, "SFT steps (per chain)")
    align_steps: int = _f(150, "alignment steps per run")
    align_batch_size: int = _f(16, "prompts per alignment step")
    align_lr: float = _f(1e-3, "alignment learning rate")
    eval_every: int = _f(50, "gold win rate vs SFT every K alignment steps (curves.csv)")
    eval_prompts: int = _f(64, "validation prompts for the curves")
    n_prompts: int = _f(8192, "test-split prompts for the final win-rate matrices")
    samples_per_prompt: int = _f(1, "responses per test prompt and policy (for a fixed number of samples, "
                                 "more prompts narrow the interval more than more samples per prompt)")
    pm_eval_prompts: int = _f(2048, "of those, the prompts the PM judges in its side-by-side matrix (one "
                              "response each; the PM's forward passes cost the most)")
    sweep: bool = _f(False, "also run the tau sweep (online_ipo vs online_dpo) and beta sweep (ipo_md) "
                     "on chain 0")
    sweep_taus: tuple[float, ...] = _f((0.02, 0.05, 0.2, 1.0),
                                       "taus of the sweep (online_ipo and online_dpo)",
                                       **number_flag("--sweep-taus", validate_tau, "TAU"))
    sweep_betas: tuple[float, ...] = _f((0.0, 0.25, 0.5, 1.0), "betas of the ipo_md sweep (at ipo_md's tau)",
                                        **number_flag("--sweep-betas", validate_beta, "BETA"))
    sweep_seeds: int = _f(1, "seeds per sweep point")

    def tau_of(self, method: str) -> float:
        """The tau of ``method`` from ``--taus`` (a one-line UsageError when it has none)."""
        if method not in self.taus:
            raise UsageError(f"--taus lacks a tau for {method}")
        return self.taus[method]

    def validate(self) -> None:
        super().validate()
        _validate_chains(self)
        _held(self, "taus", "a mapping {method: tau}", lambda v: _method_map(v, _is_number))
        tau_table(self.taus)  # every entry: a known method, tau > 0
        for method in self.methods + (["ipo_md"] if self.sweep else []):  # the beta sweep runs ipo_md
            self.tau_of(method)
        for name, check in (("sweep_taus", validate_tau), ("sweep_betas", validate_beta)):
            _held(self, name, "a tuple of numbers", _number_tuple)
            numbers(getattr(self, name), _flag(name), check)  # each in range, no value twice
        if not (self.sweep_taus and self.sweep_betas):
            raise UsageError("--sweep-taus and --sweep-betas need at least one value each")
        _at_least(self, 1, "seeds", "sweep_seeds", "eval_prompts", "pm_eval_prompts")
        _at_least(self, 0, "eval_every")
        _validate_chain_count(self, "seeds")
        if (not self.judges or any(j not in ("pm", "gold") for j in self.judges)
                or len(set(self.judges)) < len(self.judges)):
            raise UsageError(f"--judges must be distinct entries of pm, gold; got {' '.join(self.judges)}")


@dataclass
class StudyConfig(JudgeTraining, ModelShape, RunConfig):
    """``study``: the paper's protocol: tau (and beta) sweep, selection on validation, chains, test matrix."""

    preset: str = _f("quick", "quick: grids and sizes of the reference run, 20 gold chains (22 min on 2 CPU "
                     "cores at 1 thread; printed); "
                     "paper: the flags as given", choices=("quick", "paper"))
    methods: list = _f(["online_ipo", "ipo_md", "online_dpo", "online_slic", "nash_md_pg", "rl"],
                       "methods to sweep, select and compare")
    taus: dict[str, tuple[float, ...]] = _f(
        {"online_ipo": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
         "ipo_md": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
         "online_dpo": (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
         "online_slic": (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
         "nash_md_pg": (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1),
         "rl": (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)},
        "tau grid per method, METHOD=T1,T2,...", **TAU_GRIDS)
    betas: tuple[float, ...] = _f((0.0, 0.125, 0.25, 0.5), "beta grid of ipo_md and nash_md_pg",
                                  **number_flag("--betas", validate_beta, "BETA"))
    beta: float = _f(0.125, "beta of the other methods' runs (unused by them; names the run)")
    chains: int = _f(3, "test chains of the learned-PM condition: chain i retrains SFT, PM/RM and reruns "
                     "every selected setting with seed --seed + i (no test policy is a sweep run)")
    gold_chains: int = _f(0, "test chains of the gold condition (selected settings aligned with the exact "
                          "gold judge; RL: its Bradley-Terry fit): chain i seeded --seed + i, its SFT shared "
                          "with learned-PM chain i where that exists; no PM or RM trained "
                          "(summary_gold.json); 0: none")
    select_seed: int = _f(-1, "seed of the selection chain (its SFT, PM, RM and every sweep run, in "
                          "OUT/select); -1: --seed + 1000. It may not be a test chain's seed (--seed + 0 .. "
                          "max(--chains, --gold-chains) - 1): what is selected is tested on chains it "
                          "never saw")
    select_against: str = _f("rl", "checkpoint selection on valid: rl (the paper's): RL selected by win rate "
                             "vs SFT, every other method by win rate vs that fixed, selected RL checkpoint; "
                             "sft: every method by win rate vs SFT", choices=("rl", "sft"))
    sft_steps: int = _f(1000, "SFT steps")
    align_steps: int = _f(300, "alignment steps of a sweep run (the last candidate checkpoint)")
    align_batch_size: int = _f(16, "prompts per alignment step")
    align_lr: float = _f(1e-3, "alignment learning rate")
    eval_every: int = _f(25, "candidate checkpoints: validation win rate every K steps")
    valid_prompts: int = _f(512, "validation prompts (selection and the figures against RL)")
    n_prompts: int = _f(2048, "test prompts for the final matrices")
    samples_per_prompt: int = _f(4, "responses per prompt and policy (validation figures and test)")
    pm_eval_prompts: int = _f(2048, "of the test prompts, those the PM judges in its side-by-side matrix")

    def validate(self) -> None:
        super().validate()
        _validate_chains(self)
        _held(self, "taus", "a mapping {method: (tau, ...)}", lambda v: _method_map(v, _number_tuple))
        tau_grids(self.taus)  # every grid: a known method, taus > 0, none twice
        missing = [m for m in self.methods if m not in self.taus]
        if missing:
            raise UsageError(f"--taus lacks a grid for {', '.join(missing)}")
        _held(self, "betas", "a tuple of numbers", _number_tuple)
        numbers(self.betas, "--betas", validate_beta)  # each in [0, 1], none twice
        if not self.betas:
            raise UsageError("--betas needs at least one value")
        _at_least(self, 1, "chains", "eval_every", "valid_prompts", "pm_eval_prompts")
        _at_least(self, 0, "gold_chains")
        _validate_chain_count(self, "chains")
        _validate_chain_count(self, "gold_chains")
        if self.select_seed != -1:
            checked("--select-seed", lambda v: validate_seed(v, "a seed (or -1: --seed + 1000)", MAX_SEED),
                    self.select_seed)
        seed, tests = self.selection_seed, max(self.chains, self.gold_chains)
        if seed > MAX_SEED:  # -1: --seed + 1000
            raise UsageError(f"--select-seed -1 means --seed + 1000 = {seed}, which exceeds {MAX_SEED}; "
                             "pass --select-seed")
        if self.seed <= seed < self.seed + tests:
            raise UsageError(f"--select-seed {seed} is the seed of test chain {seed - self.seed} (--seed + "
                             f"{seed - self.seed}); the selection chain must be disjoint from the test "
                             "chains")
        if self.select_against == "rl" and "rl" not in self.methods:
            raise UsageError("--select-against rl selects against the selected RL checkpoint: --methods must "
                             "include rl (or pass --select-against sft)")

    @property
    def selection_seed(self) -> int:
        """The selection chain's seed: ``--select-seed``, or ``--seed`` + 1000 for -1."""
        return self.seed + 1000 if self.select_seed == -1 else self.select_seed


STAGE_CONFIGS = {"sft": SFTConfig, "train-pm": PMConfig, "align": AlignConfig, "evaluate": EvalConfig,
                 "pipeline": PipelineConfig, "study": StudyConfig, "judges": JudgesConfig}
