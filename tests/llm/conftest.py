"""Shared tiny fixtures: a 1-layer d=32 GPT-2 SFT model and PM/RM on the synthetic task, built once."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny synthetic pipeline: SFT (mu) and preference/reward models. Returns their paths."""
    from llm.config import PMConfig, SFTConfig
    from llm.train import run_sft, run_train_pm

    root = tmp_path_factory.mktemp("tiny")
    shape = dict(n_layer=1, n_embd=32, n_head=2)
    sft = run_sft(SFTConfig(out=str(root / "sft"), steps=300, batch_size=32, lr=1e-2, **shape),
                  progress=False)
    pm = run_train_pm(PMConfig(out=str(root / "pm"), sft=sft["model"], steps=300, n_pairs=1024,
                               heldout_pairs=256, batch_size=32, lr=3e-3, **shape), progress=False)
    return {"root": str(root), "sft": sft["model"], "pm": pm["pm"], "rm": pm["rm"], "heldout": pm["heldout"]}

