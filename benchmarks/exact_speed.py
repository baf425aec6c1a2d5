"""The enumerable task's two costs: one policy's exact law, and every per-prompt target of a chain.

Usage: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/exact_speed.py --write``.

- Exact law (:func:`llm.enumerable.exact_law`): one untrained GPT-2 (2 layers, d = 64) over the
  K = 8, L = 3 response space (585 responses) of 256 prompts, one thread: the prefix tree (one
  batched forward of the K^(L-1) = 64 longest prefixes per prompt) against scoring every response
  on its own (one sequence per response, :func:`llm.sampling.token_logprobs`), the two interleaved,
  on the same ``--naive-prompts`` prompts (the naive route is ~9x more sequences), and the tree
  alone on all 256 prompts. Both laws must agree to 1e-5 (float32 forwards).
- Targets: every tabular solve of one chain of the reference (K = 4, L = 3: 85 responses; 32 prompts
  per split, 2 splits, 3 values of rho; the equilibrium at tau and at tau / (1 - beta)) through one
  batched :func:`tabular.solve_equilibrium` per (rho, split) against a one-by-one loop, interleaved.

``--write`` replaces ``benchmarks/measured/exact_speed.json`` (refused with ``--smoke``), ``--out PATH``
writes elsewhere; ``--render`` prints the README table. ``--smoke``: 4 prompts, 1 repeat (CI).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
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

from llm.enumerable import EnumerableTask, exact_law, mask_response_vocab, prompt_ids  # noqa: E402
from llm.models import SPECIAL_TOKENS, new_causal_lm  # noqa: E402
from llm.sampling import sequence_logprob, token_logprobs  # noqa: E402
from tabular import solve_equilibrium  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "measured" / "exact_speed.json"
BOS, SEP, EOS = (SPECIAL_TOKENS.index(t) for t in ("<bos>", "<sep>", "<eos>"))


def policy(task):
    torch.manual_seed(0)
    model = new_causal_lm(len(SPECIAL_TOKENS) + task.K, n_layer=2, n_embd=64, n_head=4, n_positions=16)
    mask_response_vocab(model, len(SPECIAL_TOKENS) + task.K, EOS, task.K)
    return model.eval()


@torch.no_grad()
def naive_law(model, task, docs):
    """One sequence per (prompt, response): ``<bos> x <sep> y [<eos>]`` scored by token_logprobs."""
    tokens, lengths = task.space.tokens()
    n, L = len(lengths), task.L
    resp = torch.full((n, L + 1), SPECIAL_TOKENS.index("<pad>"))
    mask = torch.zeros((n, L + 1), dtype=torch.long)
    for i, (t, k) in enumerate(zip(tokens, lengths)):
        resp[i, :k] = torch.as_tensor(t[:k] + len(SPECIAL_TOKENS))
        mask[i, :k] = 1
        if k < L:
            resp[i, k], mask[i, k] = EOS, 1
    out = []
    for d in docs:
        ids = prompt_ids(task, np.repeat(d, n), BOS, SEP)
        logp = sequence_logprob(token_logprobs(model, ids, torch.ones_like(ids), resp, mask), mask)
        out.append(torch.exp(logp.double()).numpy())
    return np.array(out)


def measure(prompts: int, naive_prompts: int, repeats: int, smoke: bool) -> dict:
    task = EnumerableTask(K=8, L=3, prompt_len=3)
    model = policy(task)
    docs = np.resize(task.prompt_indices("train"), prompts)
    few = docs[:naive_prompts]
    tree, _ = exact_law(model, task, few, BOS, SEP, EOS)
    naive = naive_law(model, task, few)
    agree = float(np.abs(tree - naive).max())
    assert agree < 1e-5, agree
    pair = interleaved({"tree": lambda: exact_law(model, task, few, BOS, SEP, EOS),
                        "naive": lambda: naive_law(model, task, few)}, repeats)
    full = interleaved({"tree": lambda: exact_law(model, task, docs, BOS, SEP, EOS)}, repeats)["tree"]
    law = {"responses": task.space.n, "prompts": prompts, "naive_prompts": naive_prompts,
           "max_abs_diff": agree, "tree_few": pair["tree"], "naive_few": pair["naive"],
           "ratio": ratio_stats(pair["naive"], pair["tree"]), "tree_all": full}
    print(f"exact law: {prompts} prompts x {task.space.n} responses in {full['median_s']:.2f} s; "
          f"naive / tree on {naive_prompts} prompts {law['ratio']['median']:.1f}x", flush=True)

    # targets of one chain of the reference: K = 4, 3 rhos, 2 splits, the equilibrium at tau and at
    # tau/(1-beta)
    small = EnumerableTask(K=4, L=3, prompt_len=3)
    per_split = 2 if smoke else 32
    games = []
    for rho in (0.0, 0.5, 1.0):
        for split in ("train", "test"):
            d = small.prompt_indices(split)[:per_split]
            mu = small.human_law(d)
            for tau in (0.1, 0.1 / (1 - 0.125)):
                games.append((small.preference(d, rho), mu, tau))

    def batched():
        return [solve_equilibrium(P, mu, tau).gap.max() for P, mu, tau in games]

    def loop():
        return [max(solve_equilibrium(P[b], mu[b], tau).gap for b in range(len(mu)))
                for P, mu, tau in games]

    gaps = max(batched() + loop())
    t = interleaved({"batched": batched, "loop": loop}, repeats)
    solves = sum(len(mu) for _, mu, _ in games)
    tg = {"games": solves, "responses": small.space.n, "max_gap": float(gaps), "batched": t["batched"],
          "loop": t["loop"], "ratio": ratio_stats(t["loop"], t["batched"])}
    print(f"targets: {solves} games of n = {small.space.n}: batched {t['batched']['median_s']:.2f} s, loop "
          f"{t['loop']['median_s']:.2f} s ({tg['ratio']['median']:.1f}x), max gap {gaps:.1g}", flush=True)
    return {"law": law, "targets": tg}


def render(path: Path) -> str:
    d = json.loads(path.read_text())
    law, tg, c = d["law"], d["targets"], d["config"]
    return "\n".join([
        provenance_line(d), "",
        f"Median (min-max) of {c['repeats']} interleaved repeat(s), one thread"
        + (" (`--smoke`)" if c["smoke"] else "") + ":", "",
        "| work | ours | peer | peer / ours |", "|---|---|---|---|",
        f"| exact law, {law['naive_prompts']} prompts x {law['responses']} responses | prefix tree "
        f"{law['tree_few']['median_s']:.3f} s | one sequence per response "
        f"{law['naive_few']['median_s']:.3f} s | "
        f"{law['ratio']['median']:.1f}x ({law['ratio']['min']:.1f}-{law['ratio']['max']:.1f}) |",
        f"| exact law, {law['prompts']} prompts x {law['responses']} responses | prefix tree "
        f"{law['tree_all']['median_s']:.2f} s "
        f"({law['tree_all']['min_s']:.2f}-{law['tree_all']['max_s']:.2f}) | — | — |",
        f"| one chain's equilibria, {tg['games']} games of n = {tg['responses']} | batched "
        f"{tg['batched']['median_s']:.2f} s | one-by-one loop {tg['loop']['median_s']:.2f} s | "
        f"{tg['ratio']['median']:.1f}x ({tg['ratio']['min']:.1f}-{tg['ratio']['max']:.1f}) |",
        "", f"The two laws agree to {law['max_abs_diff']:.1g}; the largest duality gap of the solves is "
        f"{tg['max_gap']:.1g}."])


def main(argv=None) -> int:
    ap = benchmark_parser(__doc__, RESULTS, smoke="4 prompts, 1 repeat, 2 prompts per split (CI)", seed=False)
    ap.add_argument("--prompts", type=positive_int, default=256, help="prompts of the exact-law timing")
    ap.add_argument("--naive-prompts", type=positive_int, default=16,
                    help="prompts of the tree-vs-one-sequence-per-response comparison")
    ap.add_argument("--repeats", type=positive_int, default=3, help="interleaved repeats")
    args = ap.parse_args(argv)
    code = render_or_check(args, render)
    if code is not None:
        return code
    torch.set_num_threads(1)
    prompts, few, repeats = (4, 2, 1) if args.smoke else (args.prompts, min(args.naive_prompts, args.prompts),
                                                           args.repeats)
    data = {"config": {"prompts": prompts, "naive_prompts": few, "repeats": repeats, "smoke": args.smoke}}
    t0 = time.time()
    with measure_provenance(data, threads=1):
        data.update(measure(prompts, few, repeats, args.smoke))
    data["seconds"] = time.time() - t0
    return write_and_render(destination(args), data, render)


if __name__ == "__main__":
    sys.exit(main())
