"""Seconds per alignment step: one process vs two torchrun processes (gloo) with the same global batch.

Usage: ``python benchmarks/llm_ddp.py [--steps 20] [--batch-size 16] [--method online_ipo] --write``.
Builds an untrained GPT-2 policy/reference and PM at the pipeline's default size (2 layers, d = 64)
on the synthetic task, so it needs no earlier run, then runs ``align`` three times, each process on
one thread:

- 1 process, 1 shard (the default run);
- 1 process, 2 shards (computes exactly what the 2 processes compute, one shard after the other);
- ``torchrun --standalone --nproc_per_node=2``, 2 shards (one per process, gradients all-reduced).

The step time is rank 0's mean over the steps (``done.json``'s ``step_time_s``); each setup runs
``--repeats`` times, interleaved (the order reversed every other repeat), and the median is
reported; the ratio to the first setup is taken per repeat (median, min-max). ``--write``
replaces ``benchmarks/measured/llm_ddp.json`` (refused with ``--smoke``), ``--out PATH`` writes
elsewhere, neither writes nothing; ``--render`` prints the README table from the results file,
which also holds the measured provenance and the load average before and after (``load_warning``
when other jobs held the two cores the torchrun setup needs). ``--smoke``: 1 step of 2 prompts,
one repeat (CI).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from trl_common import (  # noqa: E402
    benchmark_parser,
    destination,
    measure_provenance,
    positive_int,
    provenance_line,
    render_or_check,
    write_and_render,
)

from llm.models import Codec, new_causal_lm, save_model, train_tokenizer  # noqa: E402
from llm.scorers import new_scorer  # noqa: E402
from llm.tasks import make_task  # noqa: E402
from tabular.methods import sampled_methods  # noqa: E402

RESULTS = Path(ROOT) / "benchmarks" / "measured" / "llm_ddp.json"


def untrained_models(root: str) -> tuple[str, str]:
    """An untrained policy (= reference) and PM saved as the stages save theirs."""
    task = make_task("synthetic")
    codec = Codec(train_tokenizer(task), task.max_prompt_tokens)
    torch.manual_seed(0)
    n = task.max_prompt_tokens + task.max_new_tokens + 8
    sft, pm = os.path.join(root, "sft"), os.path.join(root, "pm")
    save_model(new_causal_lm(codec.vocab_size, 2, 64, 4, n, codec.pad_id), codec, sft)
    scorer = new_scorer(codec.vocab_size, 2, 64, 4, 2 * n, codec.pad_id)
    scorer.config.pm_form = "pairwise"  # the PM form the committed timings were measured with
    save_model(scorer, codec, pm)
    return sft, pm


def align(argv: list[str], processes: int, out: str) -> float:
    launch = [sys.executable, "-m", "llm"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
         "-m", "llm"]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    done = subprocess.run(launch + argv + ["--out", out], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        launcher = "torchrun" if processes > 1 else "python -m llm"
        raise RuntimeError(f"{launcher} align exited {done.returncode}: {tail}")
    with open(os.path.join(out, "done.json")) as f:
        return json.load(f)["step_time_s"]


SETUPS = (("1 process, 1 shard", 1, 1), ("1 process, 2 shards", 1, 2),
          ("torchrun 2 processes (gloo), 2 shards", 2, 2))


def render(path: Path) -> str:
    """The README table from a results file."""
    d = json.loads(Path(path).read_text())
    lines = [provenance_line(d), "",
             f"{d['method']}, global batch {d['global_batch']}, {d['steps']} steps, {d['model']}; median "
             f"(min-max) of {d['repeats']} interleaved repeats; ratio to 1 process: median (min-max) over "
             f"the repeats{' (`--smoke`)' if d.get('smoke') else ''}.", "",
             "| setup | s / step | ratio to 1 process |", "|---|---|---|"]
    for r in d["rows"]:
        q = r["ratio_to_first"]
        lines.append(f"| {r['setup']} | {r['step_time_s']:.3f} ({min(r['all_s']):.3f}-{max(r['all_s']):.3f}) "
                     f"| {q['median']:.2f} ({q['min']:.2f}-{q['max']:.2f}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = benchmark_parser(__doc__, RESULTS, smoke="1 step of 2 prompts, one repeat (CI)", seed=False)
    ap.add_argument("--steps", type=positive_int, default=20, help="alignment steps per run")
    ap.add_argument("--batch-size", type=positive_int, default=16, help="global batch (prompts per step)")
    ap.add_argument("--method", default="online_ipo", choices=sampled_methods(), help="alignment method")
    ap.add_argument("--repeats", type=positive_int, default=3,
                    help="runs per setup, interleaved; the median is reported")
    args = ap.parse_args(argv)
    code = render_or_check(args, render)
    if code is not None:
        return code
    if args.batch_size % 2:
        ap.error(f"--batch-size {args.batch_size}: two shards need an even global batch")
    steps, batch, repeats = (1, 2, 1) if args.smoke else (args.steps, args.batch_size, args.repeats)
    times = {name: [] for name, _, _ in SETUPS}
    data = {}
    with measure_provenance(data, threads=2), tempfile.TemporaryDirectory() as root:
        sft, pm = untrained_models(root)
        argv = ["align", "--sft", sft, "--pm", pm, "--method", args.method, "--steps", str(steps),
                "--batch-size", str(batch), "--eval-every", "0", "--log-every", str(steps), "--threads", "1"]
        for repeat in range(repeats):  # interleaved, so that a change in the machine's load hits all
            for name, processes, shards in (SETUPS if repeat % 2 == 0 else SETUPS[::-1]):
                run_dir = os.path.join(root, f"run{repeat}-{processes}-{shards}")
                times[name].append(align(argv + ["--shards", str(shards)], processes, run_dir))
    first = times[SETUPS[0][0]]
    rows = []
    for name, processes, shards in SETUPS:
        ratios = [t / f for t, f in zip(times[name], first)]
        rows.append({"setup": name, "processes": processes, "shards": shards,
                     "step_time_s": statistics.median(times[name]), "all_s": times[name],
                     "ratio_to_first": {"median": statistics.median(ratios), "min": min(ratios),
                                        "max": max(ratios), "all": ratios}})
    data.update(rows=rows, method=args.method, steps=steps, global_batch=batch, repeats=repeats,
                smoke=args.smoke, model="GPT-2, 2 layers, d = 64 (untrained), synthetic task")
    return write_and_render(destination(args), data, render)


if __name__ == "__main__":
    sys.exit(main())
