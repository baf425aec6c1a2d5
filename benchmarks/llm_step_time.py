"""Seconds per alignment step for each method, and KV-cached vs no-cache sampling, on this machine.

Usage: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/llm_step_time.py [--threads 1] [--steps 20]
[--batch-size 16] --write``. Builds an untrained GPT-2 policy/reference/PM at the pipeline's default
size (2 layers, d = 64) on the synthetic task, so it needs no earlier run.

- Step time: one ``llm.align.alignment_loss`` + backward + AdamW step per sampled method, the
  methods interleaved step by step (step s of every method, then step s + 1, ...), so a change in
  the shared machine's load hits them all; median (min-max) over ``--steps``.
- Sampling: 64 prompts x 16 new tokens from the policy with ``llm.sampling.sample`` (KV cache)
  and with a baseline that reruns the whole prefix for every token, alternating within each of
  ``--repeats`` repeats; the no-cache / cache ratio per repeat, median (min-max).

``--write`` replaces ``benchmarks/measured/llm_step_time.json`` (refused with ``--smoke``), ``--out
PATH`` writes elsewhere, neither writes nothing; ``--render`` prints the README table from the
results file. The file records the measured provenance and the load average before and after
(``load_warning`` when other jobs held the cores the benchmark needed). ``--smoke``: 2 steps of 2
prompts, 4 x 4 tokens sampled, one repeat (CI).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_common import (  # noqa: E402
    benchmark_parser,
    destination,
    interleaved,
    measure_provenance,
    positive_int,
    provenance_line,
    ratio_stats,
    render_or_check,
    write_and_render,
)

from llm.align import alignment_loss  # noqa: E402
from llm.config import MethodParams  # noqa: E402
from llm.judging import LearnedPM, LearnedRM, PromptBatch  # noqa: E402
from llm.models import Codec, new_causal_lm, train_tokenizer  # noqa: E402
from llm.sampling import Decoding, sample  # noqa: E402
from llm.scorers import new_scorer  # noqa: E402
from llm.tasks import make_task  # noqa: E402
from tabular.methods import sampled_methods  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "measured" / "llm_step_time.json"


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


def measure(steps: int, batch_size: int, sample_batch: int, sample_tokens: int, repeats: int) -> dict:
    task = make_task("synthetic")
    codec = Codec(train_tokenizer(task), task.max_prompt_tokens)
    torch.manual_seed(0)
    policy = new_causal_lm(codec.vocab_size, 2, 64, 4, 64, codec.pad_id)
    ref = new_causal_lm(codec.vocab_size, 2, 64, 4, 64, codec.pad_id).requires_grad_(False)
    scorer = new_scorer(codec.vocab_size, 2, 64, 4, 64, codec.pad_id).requires_grad_(False)
    scorer.config.pm_form = "pairwise"  # the PM form the committed step times were measured with
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    prompts = task.prompts("train", batch_size * steps)
    gen = torch.Generator().manual_seed(0)
    methods = list(sampled_methods())
    times = {m: [] for m in methods}
    decoding = Decoding(task.max_new_tokens, codec.eos_id, codec.pad_id)
    for s in range(steps):  # interleaved: step s of every method, then step s + 1
        ids, mask = codec.encode_prompts(prompts[s * batch_size:(s + 1) * batch_size])
        batch = PromptBatch(ids, mask)
        for method in (methods if s % 2 == 0 else methods[::-1]):
            t0 = time.perf_counter()
            params = MethodParams(method, 0.1, 0.125)
            judge = LearnedRM(scorer, codec) if params.spec.kind == "rl" else LearnedPM(scorer, codec)
            loss, _ = alignment_loss(params, policy, ref, batch, judge, decoding, generator=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times[method].append(time.perf_counter() - t0)
    rows = [{"method": m, "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "all_s": t}
            for m, t in times.items()]
    for r in rows:
        print(f"step {r['method']:>13}: {r['median_s'] * 1e3:7.1f} ms (median of {steps})", flush=True)
    ids, mask = codec.encode_prompts(task.prompts("train", sample_batch))
    with torch.no_grad():
        timing = interleaved(
            {"kv_cache": lambda: sample(policy, None, ids, mask, sample_tokens, gen, None, codec.pad_id),
             "no_cache": lambda: no_cache_sample(policy, ids, mask, sample_tokens, gen, None, codec.pad_id)},
            repeats)
    sampling = {"batch": sample_batch, "new_tokens": sample_tokens, **timing,
                "ratio": ratio_stats(timing["no_cache"], timing["kv_cache"])}
    k, n = timing["kv_cache"]["median_s"], timing["no_cache"]["median_s"]
    print(f"sample {sample_batch} x {sample_tokens} tokens: KV cache {k * 1e3:.1f} ms, "
          f"no cache {n * 1e3:.1f} ms, {sampling['ratio']['median']:.1f}x", flush=True)
    return {"steps": rows, "sampling": sampling, "max_new_tokens": task.max_new_tokens}


def render(path: Path) -> str:
    d = json.loads(path.read_text())
    c, s = d["config"], d["sampling"]
    lines = [provenance_line(d), "",
             f"Untrained GPT-2 (2 layers, d = 64) on the synthetic task, {c['batch_size']} prompts per step, "
             f"up to {d['max_new_tokens']} new tokens, {c['threads']} thread(s); median (min-max) of "
             f"{c['steps']} steps per method, the methods interleaved step by step"
             + (" (`--smoke`)" if c["smoke"] else "") + ":", "",
             "| method | ms / step |", "|---|---|"]
    for r in d["steps"]:
        lines.append(f"| {r['method']} | {r['median_s'] * 1e3:,.1f} ({r['min_s'] * 1e3:,.1f}-"
                     f"{r['max_s'] * 1e3:,.1f}) |")
    k, n, ratio = s["kv_cache"], s["no_cache"], s["ratio"]
    lines += ["", f"Sampling {s['batch']} prompts x {s['new_tokens']} new tokens from the policy, median "
              f"(min-max) of {k['repeats']} interleaved repeats: KV cache {k['median_s'] * 1e3:,.1f} ms "
              f"({k['min_s'] * 1e3:,.1f}-{k['max_s'] * 1e3:,.1f}), rerunning the prefix for every token "
              f"{n['median_s'] * 1e3:,.1f} ms ({n['min_s'] * 1e3:,.1f}-{n['max_s'] * 1e3:,.1f}): the cache "
              f"is {ratio['median']:.1f}x faster ({ratio['min']:.1f}-{ratio['max']:.1f}x over the repeats)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = benchmark_parser(__doc__, RESULTS, smoke="2 steps of 2 prompts, 4 x 4 tokens sampled, 1 repeat (CI)",
                          seed=False)
    ap.add_argument("--threads", type=positive_int, default=1, help="torch threads")
    ap.add_argument("--steps", type=positive_int, default=20, help="steps per method")
    ap.add_argument("--batch-size", type=positive_int, default=16, help="prompts per step")
    ap.add_argument("--repeats", type=positive_int, default=5, help="sampling repeats (cache vs no cache)")
    args = ap.parse_args(argv)
    code = render_or_check(args, render)
    if code is not None:
        return code
    torch.set_num_threads(args.threads)
    if args.smoke:
        steps, batch, sample_batch, sample_tokens, repeats = 2, 2, 4, 4, 1
    else:
        steps, batch, sample_batch, sample_tokens, repeats = args.steps, args.batch_size, 64, 16, args.repeats
    data = {"config": {"threads": args.threads, "steps": steps, "batch_size": batch, "repeats": repeats,
                       "smoke": args.smoke}}
    with measure_provenance(data, threads=args.threads):
        data.update(measure(steps, batch, sample_batch, sample_tokens, repeats))
    return write_and_render(destination(args), data, render)


if __name__ == "__main__":
    sys.exit(main())
