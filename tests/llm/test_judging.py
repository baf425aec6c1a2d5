"""The batch and the judge objects (llm.judging): a judge is one class the loop calls, not a closure."""

import numpy as np
import pytest
import torch

from llm.align import alignment_loss, gold_bradley_terry
from llm.config import MethodParams
from llm.judging import (
    GoldBradleyTerry,
    GoldJudge,
    PairJudge,
    PromptBatch,
    Responses,
    RewardJudge,
    TableJudge,
    TableReward,
)
from llm.models import load_causal_lm
from llm.sampling import Decoding, sample
from llm.tasks import SyntheticTask


def test_a_prompt_batch_repeats_ids_masks_and_texts_together():
    ids = torch.arange(6).reshape(3, 2)
    batch = PromptBatch(ids, torch.ones_like(ids), ("a", "b", "c"))
    twice = batch.repeat(2)
    assert len(twice) == 6 and twice.texts == ("a", "b", "c") * 2
    assert torch.equal(twice.ids, torch.cat([ids, ids])) and torch.equal(twice.ids[4], ids[1])
    with pytest.raises(ValueError, match="2 prompt texts for 3 rows"):
        PromptBatch(ids, torch.ones_like(ids), ("a", "b"))
    with pytest.raises(ValueError, match="token ids only"):
        GoldJudge(SyntheticTask(), codec=None).prob(PromptBatch(ids, torch.ones_like(ids)), None, None)


class _OneToken(torch.nn.Module):
    """A causal LM whose next-token logits are one parameter vector whatever the prefix."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float64))

    def forward(self, input_ids, **unused):
        from types import SimpleNamespace
        return SimpleNamespace(logits=self.logits.expand(*input_ids.shape, -1), past_key_values=None)


def _one_token_step(method, judge, B=64):
    policy, ref = _OneToken(torch.zeros(3)), _OneToken(torch.zeros(3)).requires_grad_(False)
    prompt = torch.zeros(B, 1, dtype=torch.long)
    batch = PromptBatch(prompt, torch.ones_like(prompt), tuple(f"x{i}" for i in range(B)))
    return batch, alignment_loss(MethodParams(method, 0.5, 0.25), policy, ref, batch, judge,
                                 Decoding(1, None, 0), generator=torch.Generator().manual_seed(0))


def test_a_new_judge_plugs_into_the_loop_as_one_class():
    """A judge the loop has never seen: it receives the very batch (texts included) and the two
    responses of each prompt, and its answer is the label the loss uses."""
    calls = []

    class AlwaysFirst(PairJudge):  # prefers y whatever the pair: P(y > y') = 1
        def prob(self, batch, y, y_prime):
            calls.append((batch, y, y_prime))
            return torch.ones(len(batch))

    batch, (loss, stats) = _one_token_step("online_ipo", AlwaysFirst())
    (seen, y, y_prime), = calls
    assert seen is batch and seen.texts[5] == "x5"
    assert isinstance(y, Responses) and y.ids.shape == y_prime.ids.shape == (64, 1)
    assert stats["charts/p_mean_abs_minus_half"] == 0.5  # |1 - 1/2|: the judge's labels were used
    # policy = reference: every margin is 0, so the IPO loss is (0 - 1/(2 tau))^2 on every pair
    assert loss.item() == pytest.approx((1 / (2 * 0.5)) ** 2)


def test_the_loop_refuses_a_judge_of_the_wrong_kind():
    table = TableJudge(torch.full((3, 3), 0.5))
    reward = TableReward(torch.zeros(3))
    with pytest.raises(TypeError, match="rl is scored by a RewardJudge, got TableJudge"):
        _one_token_step("rl", table)
    with pytest.raises(TypeError, match="nash_md_pg is scored by a PairJudge, got TableReward"):
        _one_token_step("nash_md_pg", reward)
    _, (loss, _) = _one_token_step("rl", reward)  # a zero reward at policy = reference: loss 0
    assert loss.item() == 0.0


def test_the_gold_judge_and_its_bt_reward_read_the_batch_texts(tiny):
    """GoldJudge and GoldBradleyTerry are the task's exact judge and its BT fit on the decoded
    responses to the batch's own prompt texts."""
    task = SyntheticTask()
    sft, codec = load_causal_lm(tiny["sft"], "sft", task.max_prompt_tokens)
    prompts = task.prompts("train", 16)
    ids, mask = codec.encode_prompts(prompts)
    batch = PromptBatch(ids, mask, tuple(prompts))
    gen = torch.Generator().manual_seed(3)
    y, y_prime = (Responses(*sample(sft, None, ids, mask, task.max_new_tokens, gen, codec.eos_id,
                                    codec.pad_id)) for _ in range(2))
    texts, texts_prime = codec.decode(y.ids), codec.decode(y_prime.ids)
    p = GoldJudge(task, codec).prob(batch, y, y_prime)
    exact = task.gold_prob(prompts, texts, texts_prime).astype(np.float32)
    assert p.dtype == torch.float32 and np.array_equal(p.numpy(), exact)
    w, _ = gold_bradley_terry(task, codec, sft, 5, "cpu", task.max_new_tokens, n_pairs=256)
    reward = GoldBradleyTerry(task, codec, w)
    assert isinstance(reward, RewardJudge)
    r = reward.reward(batch, y)
    assert np.array_equal(r.numpy(), (task.features(prompts, texts) @ w).astype(np.float32))
