"""Seconds per alignment step: one process vs two torchrun processes (gloo) with the same global batch.

Usage: ``python benchmarks/llm_ddp.py [--steps 20] [--batch-size 16] [--method online_ipo]
[--out benchmarks/measured/llm_ddp.json]``. Builds an untrained GPT-2 policy/reference and PM at the
pipeline's default size (2 layers, d = 64) on the synthetic task, so it needs no earlier run, then
runs ``align`` three times, each process on one thread:

- 1 process, 1 shard (the default run);
- 1 process, 2 shards (computes exactly what the 2 processes compute, one shard after the other);
- ``torchrun --standalone --nproc_per_node=2``, 2 shards (one per process, gradients all-reduced).

The step time is rank 0's mean over the steps (``done.json``'s ``step_time_s``); each setup runs
``--repeats`` times, interleaved, and the median is reported. ``--render`` prints the README table
from the JSON file, which also holds the machine and its load average before the run.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from llm.models import Codec, new_causal_lm, new_scorer, save_model, train_tokenizer  # noqa: E402
from llm.tasks import make_task  # noqa: E402
from tabular.files import atomic_write_json, package_versions  # noqa: E402


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
    subprocess.run(launch + argv + ["--out", out], env=env, check=True, capture_output=True, cwd=ROOT)
    with open(os.path.join(out, "done.json")) as f:
        return json.load(f)["step_time_s"]


SETUPS = (("1 process, 1 shard", 1, 1), ("1 process, 2 shards", 1, 2),
          ("torchrun 2 processes (gloo), 2 shards", 2, 2))


def render(path: str) -> str:
    """The README table from a results file."""
    d = json.load(open(path))
    lines = [f"{d['method']}, global batch {d['global_batch']}, {d['steps']} steps, median (min-max) of "
             f"{d['repeats']} interleaved repeats; {d['machine']}, torch {d['versions']['torch']}, "
             f"{d['date_utc']} UTC, load average {d['load_average_1min_before']:.1f} before.", "",
             "| setup | s / step | ratio to 1 process |", "|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['setup']} | {r['step_time_s']:.3f} ({min(r['all_s']):.3f}-{max(r['all_s']):.3f}) "
                     f"| {r['ratio_to_first']:.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="alignment steps per run")
    ap.add_argument("--batch-size", type=int, default=16, help="global batch (prompts per step)")
    ap.add_argument("--method", default="online_ipo", help="alignment method")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per setup, interleaved; the median is reported")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "measured", "llm_ddp.json"),
                    help="results JSON (written atomically)")
    ap.add_argument("--render", action="store_true", help="only print the table from --out")
    args = ap.parse_args()
    if args.render:
        print(render(args.out))
        return
    load_before = os.getloadavg()[0]  # other jobs on the shared machine
    times = {name: [] for name, _, _ in SETUPS}
    with tempfile.TemporaryDirectory() as root:
        sft, pm = untrained_models(root)
        argv = ["align", "--sft", sft, "--pm", pm, "--method", args.method, "--steps", str(args.steps),
                "--batch-size", str(args.batch_size), "--eval-every", "0", "--log-every", str(args.steps),
                "--threads", "1"]
        for repeat in range(args.repeats):  # interleaved, so that a change in the machine's load hits all
            for name, processes, shards in SETUPS:
                run_dir = os.path.join(root, f"run{repeat}-{processes}-{shards}")
                times[name].append(align(argv + ["--shards", str(shards)], processes, run_dir))
    rows = [{"setup": name, "processes": processes, "shards": shards,
             "step_time_s": statistics.median(times[name]), "all_s": times[name]}
            for name, processes, shards in SETUPS]
    for r in rows:
        r["ratio_to_first"] = r["step_time_s"] / rows[0]["step_time_s"]
    result = {"rows": rows, "method": args.method, "steps": args.steps, "global_batch": args.batch_size,
              "repeats": args.repeats, "load_average_1min_before": load_before,
              "model": "GPT-2, 2 layers, d = 64 (untrained), synthetic task",
              "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                         f"Python {platform.python_version()}",
              "versions": package_versions(),
              "command": " ".join(["python benchmarks/llm_ddp.py"] + sys.argv[1:])}
    atomic_write_json(args.out, result)
    print(render(args.out))


if __name__ == "__main__":
    main()
