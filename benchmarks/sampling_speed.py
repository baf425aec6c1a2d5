"""Tokens/s of ``llm.sampling`` before and after a change, interleaved in one process, with output digests.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/sampling_speed.py --baseline OLD_CHECKOUT --write``
(``OLD_CHECKOUT``: a folder holding the earlier ``llm/sampling.py``, e.g. made by
``git archive <commit> | tar -x -C OLD_CHECKOUT``). Without ``--baseline`` only the current code is
measured. ``--write`` replaces ``benchmarks/measured/sampling_speed.json`` (refused with
``--smoke``), ``--out PATH`` writes elsewhere, neither writes nothing. ``--render`` prints the table
from the results file. ``--smoke``: toy sizes, one repeat (CI). The results file records the
measured provenance and the load average before and after (``load_warning`` on a busy machine).

The two versions run alternately, repeat by repeat, in the same process on the same models, so
they share the load of the machine (separate processes on these shared cores differed by 15 % in
either direction from run to run); the ratio is taken per repeat and reported as its median and
range. Each version has its own copies of the models, optimiser and random generators, seeded
alike, and a SHA-256 ``digest`` of every sampled token, every loss and the parameters after its
steps: same seed, same outputs means equal digests.

Measurements (synthetic task's tokenizer, the pipeline's default GPT-2: 2 layers, d = 64; policy,
reference and PM with different seeds):
- ``sample pi``: B = 64 prompts x 64 new tokens from the policy (no ``<eos>``: every row full length);
- ``sample mix``: the same from the per-token mixture, beta = 0.5 (two models per token);
- ``sample eos``: policy, 64 new tokens, stopping at ``<eos>``;
- ``online_ipo step``: ``llm.align.alignment_loss`` (pairs from pi, PM judge) + backward + AdamW,
  B = 32, 32 new tokens, with the version's ``sample`` / ``token_logprobs`` / ``pm_prob``;
- ``profile`` (current code): the share of the mixture sampler's time inside the model forwards
  (cProfile), and the time ``pm_prob`` spends rebuilding PM inputs from token rows, against the step.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
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
    measure_provenance,
    positive_int,
    provenance_line,
    ratio_stats,
    render_or_check,
    tiny_models,
    write_and_render,
)

import llm.align  # noqa: E402
import llm.sampling  # noqa: E402
import llm.scorers  # noqa: E402
from llm.config import MethodParams  # noqa: E402
from llm.judging import PairJudge, PromptBatch  # noqa: E402
from llm.models import Codec, train_tokenizer  # noqa: E402
from llm.sampling import Decoding  # noqa: E402
from llm.scorers import new_scorer  # noqa: E402
from llm.tasks import make_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "measured" / "sampling_speed.json"


def load_sampling(checkout: Path):
    """``llm/sampling.py`` of another checkout, as a module of its own."""
    spec = importlib.util.spec_from_file_location("baseline_sampling", checkout / "llm" / "sampling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Version:
    """One code version with its own models, optimiser, generators and output digest."""

    def __init__(self, sampling, models, seed: int):
        self.sampling = sampling
        # the PM's pm_prob: in llm/sampling.py of checkouts before llm/scorers.py held it
        self.pm_prob = getattr(sampling, "pm_prob", llm.scorers.pm_prob)
        self.policy, self.ref, self.pm = (copy.deepcopy(m) for m in models)
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=1e-3)
        self.gen = {k: torch.Generator().manual_seed(seed) for k in ("pi", "mix", "eos", "step")}
        self.label_gen = torch.Generator().manual_seed(seed + 1)
        self.digest = hashlib.sha256()
        self.wall, self.cpu, self.tokens = {}, {}, {}

    def run(self, name, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        tokens = fn()
        self.wall.setdefault(name, []).append(time.perf_counter() - t0)
        self.cpu.setdefault(name, []).append(time.process_time() - c0)
        self.tokens[name] = tokens


FULL = {"sample_batch": 64, "sample_tokens": 64, "step_batch": 32, "step_tokens": 32}
SMOKE = {"sample_batch": 4, "sample_tokens": 8, "step_batch": 2, "step_tokens": 4}


def measure(sampling_modules: dict, repeats: int, seed: int = 0, sizes: dict = FULL):
    B, T = sizes["sample_batch"], sizes["sample_tokens"]  # sampler: B prompts x T new tokens
    B_step, T_step = sizes["step_batch"], sizes["step_tokens"]  # online-IPO step
    task = make_task("synthetic")
    codec = Codec(train_tokenizer(task), task.max_prompt_tokens)
    policy, ref = tiny_models(codec.vocab_size, pad_id=codec.pad_id, sharpen=4.0, seed=seed)
    torch.manual_seed(seed + 2)
    pm = new_scorer(codec.vocab_size, 2, 64, 4, 512, codec.pad_id).eval().requires_grad_(False)
    pm.config.pm_form = "pairwise"  # the PM form the committed timings were measured with
    ref.requires_grad_(False)
    runs = {label: Version(mod, (policy, ref, pm), seed) for label, mod in sampling_modules.items()}
    ids, mask = codec.encode_prompts(task.prompts("train", B))
    p_ids, p_mask = codec.encode_prompts(task.prompts("train", B_step))
    params = MethodParams("online_ipo", 0.1, 0.0)
    step_batch, decoding = PromptBatch(p_ids, p_mask), Decoding(T_step, codec.eos_id, codec.pad_id)

    class VersionPM(PairJudge):  # the learned PM through this version's pm_prob
        def __init__(self, v):
            self.v = v

        def prob(self, batch, y, y_prime):
            v = self.v
            return v.pm_prob(v.pm, codec, batch.ids, batch.mask, y.ids, y.mask, y_prime.ids,
                                      y_prime.mask)

    def sampler(v, key, beta, eos):
        def fn():
            resp, _ = v.sampling.sample(v.policy, v.ref if beta > 0 else None, ids, mask, T, v.gen[key], eos,
                                        codec.pad_id, beta=beta)
            v.digest.update(resp.numpy().tobytes())
            return int((resp != codec.pad_id).sum()) if eos is not None else resp.numel()
        return fn

    def step(v):
        def fn():
            names = ("sample", "token_logprobs")
            saved = {n: getattr(llm.align, n) for n in names}
            for n in names:  # alignment_loss with this version's sampling functions (and its pm_prob)
                setattr(llm.align, n, getattr(v.sampling, n))
            try:
                loss, s = llm.align.alignment_loss(params, v.policy, v.ref, step_batch, VersionPM(v),
                                                   decoding, generator=v.gen["step"],
                                                   label_generator=v.label_gen)
            finally:
                for n, f in saved.items():
                    setattr(llm.align, n, f)
            v.opt.zero_grad(set_to_none=True)
            loss.backward()
            v.opt.step()
            v.digest.update(repr(sorted(s.items())).encode())
            return int(round(2 * B_step * s["charts/response_tokens"]))
        return fn

    cases = [("sample pi", lambda v: sampler(v, "pi", 0.0, None)),
             ("sample mix", lambda v: sampler(v, "mix", 0.5, None)),
             ("sample eos", lambda v: sampler(v, "eos", 0.0, codec.eos_id)),
             (f"online_ipo step (B={B_step}, {T_step} new tokens)", step)]
    for name, make in cases:
        for v in runs.values():  # warm-up, outside the timing
            make(v)()
        for r in range(repeats):  # interleaved, the order reversed every other repeat
            for v in (list(runs.values()) if r % 2 == 0 else list(runs.values())[::-1]):
                v.run(name, make(v))
    out = {}
    for label, v in runs.items():
        for p in v.policy.parameters():
            v.digest.update(p.detach().numpy().tobytes())
        rows = []
        for name, _ in cases:
            w, c = v.wall[name], v.cpu[name]
            rows.append({"what": name, "median_s": statistics.median(w), "min_s": min(w), "max_s": max(w),
                         "cpu_median_s": statistics.median(c), "tokens": v.tokens[name],
                         "tokens_per_s": v.tokens[name] / statistics.median(w), "all_s": w, "all_cpu_s": c})
        out[label] = {"rows": rows, "digest": v.digest.hexdigest()}
    if len(runs) > 1:  # per repeat: first version's time / last version's (same repeat, back to back)
        first, last = out[list(runs)[0]]["rows"], out[list(runs)[-1]]["rows"]
        out["ratios"] = [{"what": a["what"], "cpu": ratio_stats(a, b, "all_cpu_s"), "wall": ratio_stats(a, b)}
                         for a, b in zip(first, last)]
    current = runs[list(runs)[-1]]
    out["profile"] = {"step_s": statistics.median(current.wall[cases[-1][0]]),
                      "forward_share_of_sampler": forward_share(current.policy, current.ref, ids, mask, codec,
                                                                seed, T),
                      "pm_input_rebuild_s": statistics.median(
                          [_timed(lambda: pm_input_rebuild(codec, p_ids, p_mask, seed, T_step))
                           for _ in range(repeats)])}
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_share(policy, ref, ids, mask, codec, seed, new_tokens: int) -> float:
    """cProfile of one mixture ``sample`` call: the share of its time inside the model forwards
    (``llm.sampling._forward_cached``, cumulative)."""
    import cProfile
    import pstats

    gen = torch.Generator().manual_seed(seed)
    prof = cProfile.Profile()
    prof.runcall(llm.sampling.sample, policy, ref, ids, mask, new_tokens, gen, None, codec.pad_id, beta=0.5)
    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    cum = {name: v[3] for (f, _, name), v in stats.items() if f == llm.sampling.__file__}
    return cum["_forward_cached"] / cum["sample"]


def pm_input_rebuild(codec, p_ids, p_mask, seed, new_tokens: int):
    """What ``pm_prob`` does before the PM forward: token rows -> summaries -> PM input batch (the
    step's prompts, ``new_tokens`` per response)."""
    y = torch.randint(codec.vocab_size, (p_ids.shape[0], new_tokens),
                      generator=torch.Generator().manual_seed(seed))
    ones = torch.ones_like(y)
    rows = llm.scorers.token_rows
    x, a, b = rows(p_ids, p_mask), [codec.summary_ids(r) for r in rows(y, ones)], \
        [codec.summary_ids(r) for r in rows(y.flip(0), ones)]
    return codec.pm_inputs(x + x, a + b, b + a)


def render(path: Path) -> str:
    data = json.loads(path.read_text())
    labels = data["labels"]
    two = len(labels) > 1
    lines = [provenance_line(data), "",
             f"{data['repeats']} interleaved runs per version{' (`--smoke`)' if data.get('smoke') else ''}; "
             "tokens/s from the median wall time (min-max of the runs in brackets) and from the median CPU "
             "time of the process"
             + (f"; {labels[-1]} / {labels[0]}: median (min-max) over the repeats of the ratio of the CPU "
                "times in the same repeat" if two else "") + ".", "",
             "| measurement | " + " | ".join(f"{lab}: tokens/s wall | {lab}: tokens/s CPU" for lab in labels)
             + (f" | {labels[-1]} / {labels[0]} (CPU) |" if two else " |"),
             "|---|" + "---|" * (2 * len(labels) + two)]
    first = data[labels[0]]["rows"]
    for i, row in enumerate(first):
        cells = []
        for lab in labels:
            r = data[lab]["rows"][i]
            cells.append(f"{r['tokens_per_s']:,.0f} ({r['tokens'] / r['max_s']:,.0f}-"
                         f"{r['tokens'] / r['min_s']:,.0f})"
                         f" | {r['tokens'] / r['cpu_median_s']:,.0f}")
        ratio = ""
        if two:
            c = data["ratios"][i]["cpu"]
            ratio = f" | {c['median']:.2f}x ({c['min']:.2f}-{c['max']:.2f})"
        lines.append(f"| {row['what']} | " + " | ".join(cells) + ratio + " |")
    prof = data["profile"]
    lines += ["", f"Profile ({labels[-1]}): the model forwards are "
              f"{prof['forward_share_of_sampler']:.0%} of the mixture "
              f"sampler's time (cProfile); rebuilding the PM inputs from token rows takes "
              f"{prof['pm_input_rebuild_s'] * 1e3:.1f} ms, "
              f"{prof['pm_input_rebuild_s'] / prof['step_s']:.1%} of the "
              "online-IPO step (wall time)."]
    digests = {lab: data[lab]["digest"][:16] for lab in labels}
    if two:
        same = len(set(digests.values())) == 1
        lines += ["", "Output digests (every sampled token, every loss, the parameters after the steps): "
                  + ", ".join(f"{k} `{v}`" for k, v in digests.items())
                  + (": identical." if same else ": DIFFERENT.")]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = benchmark_parser(__doc__, RESULTS, smoke="seconds: toy batch and lengths, 1 repeat (CI)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="checkout holding the earlier llm/sampling.py")
    ap.add_argument("--repeats", type=positive_int, default=None,
                    help="runs per version (default 5, --smoke 1)")
    args = ap.parse_args(argv)
    code = render_or_check(args, render)
    if code is not None:
        return code
    if args.baseline is not None and not (args.baseline / "llm" / "sampling.py").is_file():
        ap.error(f"--baseline {args.baseline} holds no llm/sampling.py")
    repeats = args.repeats or (1 if args.smoke else 5)
    modules = {"before": load_sampling(args.baseline)} if args.baseline else {}
    modules["after" if args.baseline else "current"] = llm.sampling
    data = {}
    with measure_provenance(data, threads=torch.get_num_threads()):
        data.update(measure(modules, repeats, args.seed, SMOKE if args.smoke else FULL))
    data.update(labels=list(modules), repeats=repeats, seed=args.seed, smoke=args.smoke,
                baseline=str(args.baseline) if args.baseline else None)
    return write_and_render(destination(args), data, render)


if __name__ == "__main__":
    sys.exit(main())
