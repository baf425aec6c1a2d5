"""Tokens per second of ``llm.sampling.sample`` and seconds per online-IPO step, with a digest of outputs.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/sampling_speed.py --label after``. To compare
two versions of the code, run the same script against each checkout (``PYTHONPATH=OLD_CHECKOUT``)
with a different ``--label``: the ``digest`` (SHA-256 of every sampled token, every loss and the
parameters after the steps) must be identical, the times may differ. ``--render`` prints the
before/after table from ``benchmarks/measured/sampling_speed.json``.

Measurements (synthetic task's tokenizer, the pipeline's default GPT-2: 2 layers, d = 64; policy,
reference and PM with different seeds):
- ``sample pi``: B = 64 prompts x 64 new tokens from the policy (no ``<eos>``: every row full length);
- ``sample mix``: the same from the per-token mixture, beta = 0.5 (two models per token);
- ``sample eos``: policy, 64 new tokens, stopping at ``<eos>``;
- ``online_ipo step``: ``alignment_loss`` (pairs from pi, PM judge) + backward + AdamW, B = 32, 32 new tokens.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_common import machine, timed, tiny_models, versions  # noqa: E402

from llm.align import alignment_loss  # noqa: E402
from llm.models import Codec, new_scorer, train_tokenizer  # noqa: E402
from llm.sampling import pm_prob, sample  # noqa: E402
from llm.tasks import make_task  # noqa: E402
from tabular.files import atomic_write_json, check_output_dir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "measured" / "sampling_speed.json"


def measure(repeats: int, seed: int = 0) -> tuple[list[dict], str]:
    task = make_task("synthetic")
    codec = Codec(train_tokenizer(task), task.max_prompt_tokens)
    policy, ref = tiny_models(codec.vocab_size, pad_id=codec.pad_id, sharpen=4.0, seed=seed)
    torch.manual_seed(seed + 2)
    pm = new_scorer(codec.vocab_size, 2, 64, 4, 512, codec.pad_id).eval().requires_grad_(False)
    ref.requires_grad_(False)
    digest = hashlib.sha256()
    rows = []
    ids, mask = codec.encode_prompts(task.prompts("train", 64))

    def sampler(name, beta, eos):
        gen = torch.Generator().manual_seed(seed)
        out = {}

        def once():
            out["resp"], _ = sample(policy, ref if beta > 0 else None, ids, mask, 64, gen, eos, codec.pad_id, beta=beta)

        t = timed(once, repeats)
        tokens = int((out["resp"] != codec.pad_id).sum()) if eos is not None else out["resp"].numel()
        digest.update(out["resp"].numpy().tobytes())
        rows.append({"what": name, **t, "tokens": tokens, "tokens_per_s": tokens / t["median_s"]})

    sampler("sample pi", 0.0, None)
    sampler("sample mix", 0.5, None)
    sampler("sample eos", 0.0, codec.eos_id)

    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    gen, label_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    prompts = task.prompts("train", 32)
    p_ids, p_mask = codec.encode_prompts(prompts)
    stats = {}

    def judge(i, m, y, ym, yp, ypm):
        return pm_prob(pm, codec, i, m, y, ym, yp, ypm)

    def step():
        loss, s = alignment_loss("online_ipo", policy, ref, p_ids, p_mask, tau=0.1, beta=0.0, generator=gen,
                                 max_new_tokens=32, eos_id=codec.eos_id, pad_id=codec.pad_id, judge=judge,
                                 label_generator=label_gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stats.update(s)
        digest.update(repr(sorted(s.items())).encode())

    t = timed(step, repeats)
    rows.append({"what": "online_ipo step (B=32, 32 new tokens)", **t,
                 "tokens": int(2 * 32 * stats["charts/response_tokens"]),
                 "tokens_per_s": 2 * 32 * stats["charts/response_tokens"] / t["median_s"]})
    for p in policy.parameters():
        digest.update(p.detach().numpy().tobytes())
    return rows, digest.hexdigest()


def render(path: Path) -> str:
    data = json.loads(path.read_text())
    labels = list(data["runs"])
    first = data["runs"][labels[0]]
    lines = [f"Machine: {first['machine']}; {first['repeats']} runs each, tokens/s from the median wall "
             "time (min-max of the runs in brackets) and from the median CPU time of the process.", "",
             "| measurement | " + " | ".join(f"{lab}: tokens/s wall | {lab}: tokens/s CPU" for lab in labels)
             + (f" | {labels[-1]} / {labels[0]} (CPU)" if len(labels) > 1 else "") + " |",
             "|---|" + "---|" * (2 * len(labels) + (len(labels) > 1))]
    for i, row in enumerate(first["rows"]):
        cells = []
        for lab in labels:
            r = data["runs"][lab]["rows"][i]
            cells.append(f"{r['tokens_per_s']:,.0f} ({r['tokens'] / r['max_s']:,.0f}-{r['tokens'] / r['min_s']:,.0f})"
                         f" | {r['tokens'] / r['cpu_median_s']:,.0f}")
        ratio = ""
        if len(labels) > 1:
            last = data["runs"][labels[-1]]["rows"][i]
            ratio = f" | {row['cpu_median_s'] / last['cpu_median_s']:.2f}x"
        lines.append(f"| {row['what']} | " + " | ".join(cells) + ratio + " |")
    digests = {lab: data["runs"][lab]["digest"][:16] for lab in labels}
    same = len(set(digests.values())) == 1
    lines += ["", "Output digests (every sampled token, every loss, the parameters after the steps): "
              + ", ".join(f"{k} `{v}`" for k, v in digests.items())
              + (": identical." if same else ": DIFFERENT.")]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--label", default="after", help="name of this code version in the JSON")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS, help="JSON file; runs with other labels are kept")
    ap.add_argument("--render", action="store_true", help="print the markdown table from --out and exit")
    args = ap.parse_args(argv)
    if args.render:
        if not args.out.is_file():
            print(f"error: no results file {args.out}; run without --render first", file=sys.stderr)
            return 2
        print(render(args.out))
        return 0
    if args.repeats < 1:
        print("error: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:  # before minutes of measuring: the results file's folder must be writable
        check_output_dir(args.out.parent)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows, digest = measure(args.repeats, args.seed)
    for r in rows:
        print(f"{r['what']:>40}: {r['median_s'] * 1e3:8.1f} ms  [{r['min_s'] * 1e3:.1f}-{r['max_s'] * 1e3:.1f}]"
              f"  {r['tokens_per_s']:10,.0f} tokens/s")
    print(f"digest {digest}")
    data = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": {}}
    data["runs"][args.label] = {"rows": rows, "digest": digest, "repeats": args.repeats, "seed": args.seed,
                                "machine": machine(), "versions": versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, data)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
