"""``python -m llm features RUN_DIR``: what the aligned policies of a pipeline run say, feature by feature.

The gold judge scores a response through the task's features ``phi`` (synthetic task: coverage,
length, unfaithful tokens, order inversions, no content). This tool samples every policy of every
chain of a finished ``python -m llm pipeline`` run on the ``test`` split, exactly as the pipeline's
evaluation does (same prompts, same sampling streams), and reports the mean of each feature and
the exact gold win rate against the chain's SFT policy, per chain. It answers "what differs
between the RL policies of different chains?" with numbers instead of a guess.

Output: ``--json FILE`` (rows ``chain, seed, judge, method, <features>, win_vs_sft``, with the run
folder, the number of prompts and the feature names) and a markdown table on stdout
(``--write FILE --tag TAG`` replaces the block ``<!-- llm-report:TAG.features -->`` in FILE, through
:func:`llm.report.replace_blocks` like the report's and compare's blocks).
"""

from __future__ import annotations

import json
import os

from opo_toolkit.cliargs import Parser, UsageError, run_command
from opo_toolkit.files import atomic_write_json, atomic_write_text

__all__ = ["policy_features", "render_features", "main"]


def policy_features(run_dir: str, n_prompts: int | None = None, progress=None) -> dict:
    """Per chain, judge condition and method (and SFT): mean features of the policy's sampled test
    responses and their exact gold win rate against the chain's SFT responses."""
    import torch

    from .chains import label_of
    from .models import load_causal_lm
    from .sampling import sample_responses, stream_seed
    from .tasks import make_task

    with open(os.path.join(run_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg = cfg.get("config", cfg)
    task = make_task(cfg["task"], cfg["task_seed"])
    n = int(n_prompts or cfg["n_prompts"])
    prompts = task.prompts("test", n) * int(cfg.get("samples_per_prompt", 1))
    names = list(task.feature_names)
    rows = []
    for i in range(int(cfg["seeds"])):
        seed, root = int(cfg["seed"]) + i, os.path.join(run_dir, f"chain{i}")
        policies = {"sft": os.path.join(root, "sft", "model")}
        for judge in cfg["judges"]:
            for m in cfg["methods"]:
                policies[label_of(m, judge)] = os.path.join(root, "align", judge, m, "model")
        texts = {}
        for label, path in policies.items():
            if not os.path.isdir(path):
                raise UsageError(f"{path} is missing: is {run_dir} a finished pipeline run?")
            model, codec = load_causal_lm(path, label, task.max_prompt_tokens)
            # the pipeline's evaluation stream (llm.chains.evaluate_chain): the same responses
            texts[label] = sample_responses(model, codec, prompts, stream_seed(seed, label, "test"),
                                            torch.device("cpu"), task.max_new_tokens)[0]
            if progress:
                progress()
        for label, t in texts.items():
            method, _, judge = label.partition("@")
            phi = task.features(prompts, t).mean(0)
            row = {"chain": i, "seed": seed, "judge": (judge or "pm") if label != "sft" else "-",
                   "method": method, **dict(zip(names, map(float, phi)))}
            row["win_vs_sft"] = (0.5 if label == "sft"
                                 else float(task.gold_prob(prompts, t, texts["sft"]).mean()))
            rows.append(row)
    return {"run": os.path.abspath(run_dir), "n_prompts": n, "features": names, "rows": rows}


def render_features(data: dict, methods=("rl",)) -> str:
    """Markdown: for each judge condition and method in ``methods`` (and SFT), one row per chain."""
    names = data["features"]
    lines = ["| condition | method | chain | " + " | ".join(names) + " | win vs SFT |",
             "|---" * (len(names) + 4) + "|"]
    for r in data["rows"]:
        if r["method"] in methods or r["method"] == "sft":
            lines.append(f"| {r['judge']} | {r['method']} | {r['chain']} | "
                         + " | ".join(f"{r[k]:.3f}" for k in names) + f" | {r['win_vs_sft']:.3f} |")
    return "\n".join(lines)


def _replace_block(path: str, tag: str, body: str) -> None:
    from .report import replace_blocks

    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        new = replace_blocks(text, None, tag, render={"features": body}.__getitem__)
    except (ValueError, KeyError) as e:
        raise UsageError(f"{path}: {e}") from None
    atomic_write_text(path, new)


def main(argv=None) -> int:
    parser = Parser(prog="python -m llm features", description=(
        "What the aligned policies of a finished pipeline run say, feature by feature: samples every "
        "policy of every chain of RUN_DIR on the test split with the pipeline's own evaluation streams "
        "(so its gold win rates against SFT equal the run's summary), prints the mean of each gold "
        "feature per chain (RL and SFT by default) and writes every row with --json."))
    parser.add_argument("run_dir", help="a finished `python -m llm pipeline --out RUN_DIR` run folder")
    parser.add_argument("--n-prompts", type=int, default=0,
                        help="test prompts; 0: the run's own --n-prompts")
    parser.add_argument("--methods", default="rl", help="comma-separated methods for the table")
    parser.add_argument("--json", default="", help="write every row and the settings to this JSON file")
    parser.add_argument("--write", default="",
                        help="replace the block <!-- llm-report:TAG.features --> in FILE")
    parser.add_argument("--tag", default="rlfeatures", help="the block's tag for --write")

    def command():
        args = parser.parse_args(argv)
        if not os.path.isfile(os.path.join(args.run_dir, "config.json")):
            raise UsageError(f"{args.run_dir} holds no run (config.json missing)")
        if args.n_prompts < 0:
            raise UsageError(f"--n-prompts must be >= 0, got {args.n_prompts}")
        data = policy_features(args.run_dir, args.n_prompts or None)
        table = render_features(data, tuple(m.strip() for m in args.methods.split(",")))
        if args.json:
            atomic_write_json(args.json, data)
        if args.write:
            _replace_block(args.write, args.tag, table)
        print(table)
        return 0

    return run_command("python -m llm features", command)
