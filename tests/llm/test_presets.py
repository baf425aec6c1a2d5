"""``--preset gpu`` (llm/presets.py) and the FLOP/MFU arithmetic of benchmarks/gpu_check.py."""

import dataclasses
import importlib.util
import os

import pytest

from llm.cli import main
from llm.config import AlignConfig, PipelineConfig, SFTConfig
from llm.models import new_causal_lm
from llm.presets import PRESETS, apply_preset
from opo_toolkit.cliargs import UsageError


def _gpu_check():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "gpu_check.py")
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preset_fills_defaults_and_keeps_explicit_flags():
    cfg = AlignConfig(out="x", sft="y", judge="gold", task="text", preset="gpu", batch_size=8)
    before = dataclasses.replace(cfg)
    cfg.validate()
    assert cfg == before  # validate() only checks; the stage functions resolve the preset first
    apply_preset(cfg)
    cfg.validate()
    assert cfg.batch_size == 8  # given: kept
    assert cfg.bf16 is True and cfg.eval_prompts == PRESETS["gpu"]["eval_prompts"]  # defaults: filled
    sft = SFTConfig(out="x", task="text", preset="gpu")
    apply_preset(sft)
    assert (sft.n_layer, sft.n_embd, sft.n_head, sft.batch_size) == (12, 768, 12, 256)
    assert sft.lr == PRESETS["gpu"]["lr"]["SFTConfig"] and cfg.lr == PRESETS["gpu"]["lr"]["AlignConfig"]
    pipe = PipelineConfig(out="x", task="text", preset="gpu")
    apply_preset(pipe)
    assert pipe.align_batch_size == 256 and pipe.n_layer == 12
    plain = SFTConfig(out="x", task="text")
    plain.validate()
    assert (plain.n_layer, plain.bf16) == (2, False)  # no preset: nothing changes


def test_preset_refuses_the_synthetic_task(tmp_path, capsys):
    with pytest.raises(UsageError, match="sized for --task text"):
        apply_preset(SFTConfig(out="x", preset="gpu"))
    assert main(["sft", "--out", str(tmp_path / "run"), "--preset", "gpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--task text" in err and not (tmp_path / "run").exists()


def test_gpt2_parameter_count_matches_the_closed_form():
    # per block: qkv d*3d + 3d, out d*d + d, mlp d*4d + 4d and 4d*d + d, two layer norms 4d -> 12 d^2 + 13 d;
    # plus the token table V d (tied to the head), positions P d and the final norm 2 d
    V, P, L, d = 100, 30, 2, 64
    model = new_causal_lm(V, L, d, 4, P)
    assert sum(p.numel() for p in model.parameters()) == L * (12 * d * d + 13 * d) + V * d + P * d + 2 * d
    gpu_check = _gpu_check()
    assert gpu_check.matmul_params(model) == L * (12 * d * d + 13 * d) + V * d + 2 * d


def test_train_flops_and_peak():
    gpu_check = _gpu_check()
    # 6 N per token plus 12 L d S per token for attention: N = 10, L = 2, d = 4, S = 5, 3 sequences
    assert gpu_check.train_flops(10, 2, 4, 5, 3) == (6 * 10 + 12 * 2 * 4 * 5) * 5 * 3
    assert gpu_check.forward_flops(10, 2, 4, 5, 3) * 3 == gpu_check.train_flops(10, 2, 4, 5, 3)
    names = [name for name, _ in gpu_check.BF16_PEAK]
    assert names.index("H100 PCIe") < names.index("H100")  # the specific name matches first
