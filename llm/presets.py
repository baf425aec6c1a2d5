"""Named configurations for ``--preset`` (``sft``, ``train-pm``, ``align``, ``evaluate``, ``pipeline``).

``--preset gpu``: the project's GPT-2 at GPT-2-small shape (12 layers, d = 768, 12 heads; about
86 M parameters on the text task's 2,000-token vocabulary, ``python -m llm.presets`` builds it on
the CPU and counts), bf16 autocast, and batches sized for one H100/H200 (80-141 GB): 256 prompts
per alignment step (512 responses, ~46 k tokens through the policy's forward and backward).
Responses keep the text task's 24-token cap: the task's summaries are one line, and a new model's
position table is sized to its task (prompt 64 + response 24 + 8).

A preset fills only the fields that still hold their dataclass defaults, so an explicit flag wins
(a flag given *at* its default value cannot be told from an absent one and takes the preset's).
It is applied in ``RunConfig.validate``, so ``config.json`` records the resolved values and a
``--resume`` resolves them the same way. ``study`` keeps its own ``--preset quick|paper``.
"""

from __future__ import annotations

import dataclasses

from opo_toolkit.cliargs import UsageError

__all__ = ["PRESETS", "apply_preset", "gpu_parameter_count"]

# field name -> value, applied to whichever stage config has the field
PRESETS = {
    "gpu": {
        "n_layer": 12, "n_embd": 768, "n_head": 12,  # GPT-2 small
        "bf16": True,  # autocast; weights and AdamW state stay float32
        "batch_size": 256,  # sft: pairs, train-pm: pairs, align: prompts (x 2 responses)
        "align_batch_size": 256,  # pipeline's alignment runs
        "eval_prompts": 512,  # align/pipeline: the periodic gold win rate's prompts (x 2)
        # the CPU defaults (3e-3, 2e-3, 1e-3) are for 0.1 M-parameter models; these are the usual
        # scale for GPT-2 small (pretraining ~6e-4; fine-tuning lower), not yet tuned on a GPU
        "lr": {"SFTConfig": 6e-4, "PMConfig": 3e-4, "AlignConfig": 1e-4},
        "align_lr": 1e-4,
    },
}


def apply_preset(cfg) -> list[str]:
    """Set, in place, each field of ``cfg`` named by ``PRESETS[cfg.preset]`` that still holds its
    default; returns the ``--flag value`` it set. The gpu preset is sized for ``--task text``."""
    values = PRESETS[cfg.preset]
    if cfg.task != "text":
        raise UsageError(f"--preset {cfg.preset} is sized for --task text (given --task {cfg.task})")
    changed = []
    for f in dataclasses.fields(cfg):
        value = values.get(f.name)
        if isinstance(value, dict):  # per stage, by config class
            value = value.get(type(cfg).__name__)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if value is not None and getattr(cfg, f.name) == default and default != value:
            setattr(cfg, f.name, value)
            changed.append(f"--{f.name.replace('_', '-')} {value}")
    return changed


def gpu_parameter_count(task_name: str = "text") -> tuple[int, int]:
    """Build the gpu preset's policy on the CPU (construction only) and count its parameters.
    Returns (all parameters, parameters outside the token and position embeddings)."""
    from .models import new_causal_lm, train_tokenizer
    from .tasks import make_task

    task = make_task(task_name)
    vocab = train_tokenizer(task).get_vocab_size()
    p = PRESETS["gpu"]
    model = new_causal_lm(vocab, p["n_layer"], p["n_embd"], p["n_head"],
                          task.max_prompt_tokens + task.max_new_tokens + 8)
    total = sum(t.numel() for t in model.parameters())  # tied input/output embedding counted once
    embeddings = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    return total, total - embeddings


if __name__ == "__main__":
    total, body = gpu_parameter_count()
    print(f"--preset gpu: {PRESETS['gpu']}")
    print(f"GPT-2 policy on the text task, built on CPU: {total:,} parameters "
          f"({body:,} outside the token/position embeddings)")
