"""Seconds per alignment step for each method, and KV-cached vs no-cache sampling, on this machine.

Usage: ``python benchmarks/llm_step_time.py [--threads 1] [--steps 20]``. Builds an untrained GPT-2
policy/reference/PM at the pipeline's default size (2 layers, d=64) on the synthetic task, so it
needs no earlier run; prints one line per measurement.
"""

import argparse
import time

import torch

from llm.align import alignment_loss
from llm.config import MethodParams
from llm.models import Codec, new_causal_lm, new_scorer, train_tokenizer
from llm.sampling import pm_prob, rm_reward, sample
from llm.tasks import make_task
from tabular.methods import sampled_methods


def no_cache_sample(model, ids, mask, max_new, gen, eos_id, pad_id):
    """Baseline: rerun the whole prefix for every new token."""
    out = []
    for _ in range(max_new):
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen)))
        nxt = (torch.log_softmax(logits, -1) + gumbel).argmax(-1)
        out.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    return torch.stack(out, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = make_task("synthetic")
    codec = Codec(train_tokenizer(task), task.max_prompt_tokens)
    torch.manual_seed(0)
    policy = new_causal_lm(codec.vocab_size, 2, 64, 4, 64, codec.pad_id)
    ref = new_causal_lm(codec.vocab_size, 2, 64, 4, 64, codec.pad_id).requires_grad_(False)
    scorer = new_scorer(codec.vocab_size, 2, 64, 4, 64, codec.pad_id).requires_grad_(False)
    scorer.config.pm_form = "pairwise"  # the PM form the committed step times were measured with
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    prompts = task.prompts("train", args.batch_size * args.steps)
    gen = torch.Generator().manual_seed(0)
    for method in sampled_methods():
        times = []
        for s in range(args.steps):
            ids, mask = codec.encode_prompts(prompts[s * args.batch_size:(s + 1) * args.batch_size])
            t0 = time.perf_counter()
            loss, _ = alignment_loss(
                MethodParams(method, 0.1, 0.125), policy, ref, ids, mask, generator=gen,
                max_new_tokens=task.max_new_tokens, eos_id=codec.eos_id, pad_id=codec.pad_id,
                judge=lambda i, m, y, ym, yp, ypm: pm_prob(scorer, codec, i, m, y, ym, yp, ypm),
                reward=lambda i, m, y, ym: rm_reward(scorer, codec, i, m, y, ym))
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        print(f"step {method:>13}: {sorted(times)[len(times) // 2] * 1e3:7.1f} ms (median of {args.steps})")
    ids, mask = codec.encode_prompts(prompts[:64])
    with torch.no_grad():
        for name, fn in [("kv-cache", lambda: sample(policy, None, ids, mask, 16, gen, None, codec.pad_id)),
                         ("no-cache", lambda: no_cache_sample(policy, ids, mask, 16, gen, None,
                                                              codec.pad_id))]:
            t0 = time.perf_counter()
            for _ in range(5):
                fn()
            print(f"sample 64 x 16 tokens, {name}: {(time.perf_counter() - t0) / 5 * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
