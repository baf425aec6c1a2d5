"""Separate streams per run, the gold-judge condition and its Bradley-Terry fit."""

import json

import torch

from llm.align import gold_bradley_terry, run_align
from llm.config import AlignConfig
from llm.models import load_causal_lm
from llm.sampling import stream_seed
from llm.tasks import SyntheticTask


def test_stream_seeds_are_reproducible_distinct_and_valid_torch_seeds():
    keys = [(s, m, "curve", step) for s in range(3) for m in ("online_ipo", "rl") for step in (0, 25, 50)]
    seeds = [stream_seed(*k) for k in keys]
    assert seeds == [stream_seed(*k) for k in keys] and len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2 ** 63 for s in seeds)
    torch.Generator().manual_seed(max(seeds))  # accepted by torch


def test_gold_bt_fit_is_accurate_on_this_mostly_transitive_judge(tiny):
    task = SyntheticTask()
    sft, codec = load_causal_lm(tiny["sft"], "sft", task.max_prompt_tokens)
    w, acc = gold_bradley_terry(task, codec, sft, 5, "cpu", task.max_new_tokens, n_pairs=2048)
    assert w.shape == (5,) and 0.9 < acc <= 1.0
    assert w[0] > 0 and w[4] < 0  # coverage rewarded, an empty summary penalised, as every rater does


def _p_stat(out):
    with open(out / "metrics.jsonl") as f:
        return [json.loads(line)["charts/p_mean_abs_minus_half"] for line in f if "charts/p" in line]


def test_gold_condition_trains_without_a_pm_and_labels_differently_from_the_pm(tiny, tmp_path):
    flags = dict(sft=tiny["sft"], method="online_ipo", tau=0.1, steps=1, batch_size=8, eval_every=0,
                 log_every=1)
    done = run_align(AlignConfig(out=str(tmp_path / "g"), judge="gold", **flags), progress=False)  # no --pm
    run_align(AlignConfig(out=str(tmp_path / "p"), judge="pm", pm=tiny["pm"], **flags), progress=False)
    # same seed: the same first batch of pairs, labelled by two different judges
    gold, pm = _p_stat(tmp_path / "g"), _p_stat(tmp_path / "p")
    assert len(gold) == len(pm) == 1 and gold != pm
    assert done["steps"] == 1
    rl = run_align(AlignConfig(out=str(tmp_path / "r"), sft=tiny["sft"], judge="gold", method="rl", tau=0.1,
                               steps=2, batch_size=4, eval_every=0), progress=False)
    assert 0.9 < rl["bt_fit_accuracy"] <= 1.0
