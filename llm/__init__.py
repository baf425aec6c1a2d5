"""Online preference optimisation of transformer language models (Calandriello et al. 2024).

The same losses as the tabular sandbox (imported from :mod:`tabular.losses`, never redefined) on
Hugging Face ``transformers`` models: SFT -> preference model -> online IPO, IPO-MD,
online DPO/SLiC, Nash-MD-PG, self-play, RL and offline baselines -> side-by-side evaluation with a
gold judge. CLI: ``python -m llm sft|train-pm|align|evaluate|pipeline --help``.

Public API (imported lazily, so ``python -m llm --threads 2`` can set the OpenMP wait policy
before torch loads):

- stages: ``run_sft``, ``run_train_pm``, ``run_align``, ``run_evaluate``, ``run_pipeline`` and their
  configs ``SFTConfig``, ``PMConfig``, ``AlignConfig``, ``EvalConfig``, ``PipelineConfig``, and
  ``MethodParams`` (:mod:`llm.config`: a method and its hyperparameters, validated once);
- tasks (:mod:`llm.tasks`): ``SyntheticTask``, ``TextTask``, ``make_task``, ``majority_prob``;
- models (:mod:`llm.models`): ``Codec``, ``ChatCodec`` (a pretrained model's own tokenizer and chat
  template), ``smollm2_gguf_path``, ``train_tokenizer``, ``new_causal_lm``, ``load_causal_lm``,
  ``save_model`` (bad input: ``opo_toolkit.cliargs.UsageError``);
- the preference and reward models (:mod:`llm.scorers`): ``PM_FORMS``, ``new_scorer``,
  ``load_scorer``, ``pm_prob`` / ``pm_prob_rows`` (the antisymmetric PM), ``rm_prob_rows``,
  ``rm_reward``;
- sampling (:mod:`llm.sampling`): ``Decoding`` (length cap, end and pad tokens), ``sample``
  (per-token geometric mixture with KV caches), ``sample_responses``, ``token_logprobs``,
  ``sequence_logprob``;
- methods: the shared table :data:`tabular.methods.METHODS` (the llm runs its ``sampled_methods()``);
- the batch and the judges (:mod:`llm.judging`): ``PromptBatch``, ``Responses``, the interfaces
  ``PairJudge`` (``P(y > y' | x)``) and ``RewardJudge`` (``r(x, y)``), and ``LearnedPM``,
  ``LearnedRM``, ``GoldJudge``, ``GoldBradleyTerry``, ``TableJudge``, ``TableReward``;
- objectives (:mod:`llm.objectives`): ``pairwise_method_loss``, ``nash_md_pg_loss``, ``rl_loss``,
  ``kl_to_go``; ``alignment_loss`` (:mod:`llm.align`): sample, score and loss of one step;
- evaluation (:mod:`llm.evaluate`): ``win_matrices``, ``format_matrix``; ``main`` (:mod:`llm.cli`).
- every stage's skeleton (:mod:`llm.runtime`): ``open_stage`` -> ``Stage`` (begin, resume, steps,
  log, finish), ``save_checkpoint`` / ``load_checkpoint``, ``MetricLog``; data parallelism under
  ``torchrun`` (:mod:`llm.distributed`): shards of the batch with their own streams, all-reduce.
"""

import importlib

_API = {
    "run_sft": "train", "run_train_pm": "train", "pm_metrics": "train",
    "run_align": "align", "alignment_loss": "align",
    "run_evaluate": "evaluate", "win_matrices": "evaluate", "format_matrix": "evaluate",
    "sample_responses": "sampling",
    "run_pipeline": "pipeline",
    "SFTConfig": "config", "PMConfig": "config", "AlignConfig": "config", "EvalConfig": "config",
    "PipelineConfig": "config", "MethodParams": "config",
    "SyntheticTask": "tasks", "TextTask": "tasks", "make_task": "tasks", "majority_prob": "tasks",
    "Codec": "models", "ChatCodec": "models", "smollm2_gguf_path": "models", "train_tokenizer": "models",
    "new_causal_lm": "models", "new_scorer": "scorers",
    "load_causal_lm": "models", "load_scorer": "scorers", "save_model": "models",
    "sample": "sampling", "token_logprobs": "sampling", "sequence_logprob": "sampling",
    "pm_prob": "scorers", "PM_FORMS": "scorers", "pm_prob_rows": "scorers", "rm_prob_rows": "scorers",
    "rm_reward": "scorers",
    "PromptBatch": "judging", "Responses": "judging", "PairJudge": "judging", "RewardJudge": "judging",
    "LearnedPM": "judging", "LearnedRM": "judging", "GoldJudge": "judging", "GoldBradleyTerry": "judging",
    "TableJudge": "judging", "TableReward": "judging", "Decoding": "sampling",
    "pairwise_method_loss": "objectives", "nash_md_pg_loss": "objectives",
    "rl_loss": "objectives", "kl_to_go": "objectives",
    "main": "cli", "PRESETS": "presets", "apply_preset": "presets",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'llm' has no attribute {name!r}")


def __dir__():
    return __all__
