"""``python -m figures [--quick] [--out DIR] [--seed N] [--only NAMES] [--llm-results DIR]``.

Regenerates every figure into ``DIR`` (default ``figures/out``): per figure a PNG, a PDF and a CSV
of the numbers plotted, plus ``README.md`` (one caption line per figure, with the command that
produced it, and the LLM figures skipped and why) and ``config.json`` (arguments, sizes, package
versions). Every file is written atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from opo_toolkit.cliargs import Parser, add_dataclass_flags, config_from_args, flag
from opo_toolkit.files import atomic_write_json, atomic_write_text, check_output_dir, package_versions
from tabular.game import MAX_SEED, validate_seed

from .common import DEFAULT_SIZES, QUICK_SIZES

TABULAR_FIGURES = ("simplex", "convergence", "equivalence", "dpo", "bias")
ALL_NAMES = TABULAR_FIGURES + ("llm", "exact")
DEFAULT_LLM_RESULTS = Path("runs/pipeline")
DEFAULT_EXACT_RESULTS = Path("llm/reference/exact")  # the committed reference of `python -m llm exact`


@dataclass(frozen=True)
class FiguresConfig:
    """Regenerate the paper's figures and the tabular evidence."""

    quick: bool = flag("much smaller sizes (< ~60 s; used by the tests)", False)
    out: Path = flag("output folder", Path("figures/out"))
    seed: int = flag("seed of the random games and of the sampled runs", 0)
    only: str = flag(f"comma-separated subset of: {', '.join(ALL_NAMES)}", ",".join(ALL_NAMES))
    llm_results: Path | None = flag(f"results folder of `python -m llm pipeline --out DIR` (default: "
                                    f"{DEFAULT_LLM_RESULTS} if it exists)", None)
    exact_results: Path | None = flag(f"run folder of `python -m llm exact --out DIR` (default: the "
                                      f"committed reference {DEFAULT_EXACT_RESULTS} if it exists)", None)
    no_progress: bool = flag("hide the progress bar", False)


def build_parser() -> Parser:
    parser = Parser(prog="python -m figures", description=FiguresConfig.__doc__)
    add_dataclass_flags(parser, FiguresConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = config_from_args(FiguresConfig, parser.parse_args(argv))
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in ALL_NAMES]
    if not only or unknown:
        parser.error(f"--only: unknown figure name(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(ALL_NAMES)}")
    try:
        validate_seed(args.seed, "--seed", MAX_SEED - 10_000)  # the figures derive seed + k streams
        check_output_dir(args.out)
    except ValueError as e:
        parser.error(str(e))
    if args.llm_results is not None and not args.llm_results.is_dir():
        parser.error(f"--llm-results {args.llm_results} is not a folder")
    if args.exact_results is not None and not (args.exact_results / "summary.json").is_file():
        parser.error(f"--exact-results {args.exact_results} holds no summary.json")
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    from opo_toolkit.progress import progress

    from . import tabular_figures as tf
    from .llm_figures import llm_figures

    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and the machine is shared)
    sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    command = "python -m figures " + " ".join(shlex.quote(a) for a in argv) if argv else "python -m figures"
    command = command.strip()

    work = {"simplex": lambda s: 12, "convergence": tf.convergence_work, "equivalence": tf.equivalence_work,
            "dpo": tf.dpo_work, "bias": tf.bias_work}
    funcs = {"simplex": tf.figure_simplex, "convergence": tf.figure_convergence,
             "equivalence": tf.figure_equivalence, "dpo": tf.figure_dpo, "bias": tf.figure_bias}
    todo = [n for n in TABULAR_FIGURES if n in only]
    captions, timings = [], {}
    bar = progress(total=sum(work[n](sizes) for n in todo), unit="run", disable=args.no_progress,
                   desc="figures")
    for name in todo:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        captions += funcs[name](args.out, sizes, args.seed, lambda: bar.update(1))
        timings[name] = time.perf_counter() - t0
    bar.close()

    skipped = []
    if "llm" in only:
        results = args.llm_results
        why = ""
        if results is None:
            if DEFAULT_LLM_RESULTS.is_dir():
                results = DEFAULT_LLM_RESULTS
            else:
                why = (f"no --llm-results given and {DEFAULT_LLM_RESULTS} does not exist "
                       "(run `python -m llm pipeline --out runs/pipeline` first)")
        written, skipped = llm_figures(results, args.out, command, why)
        captions += [(n, c) for n, c in written]
        for n, reason in skipped:
            print(f"figures: skipped {n}: {reason}", file=sys.stderr)

    if "exact" in only:
        from .exact_figures import EXACT_FIGURES, exact_figures

        results = args.exact_results
        if results is None and (DEFAULT_EXACT_RESULTS / "summary.json").is_file():
            results = DEFAULT_EXACT_RESULTS
        if results is None:
            reason = f"no --exact-results given and {DEFAULT_EXACT_RESULTS}/summary.json does not exist"
            skipped += [(n, reason) for n in EXACT_FIGURES]
            print(f"figures: skipped exact: {reason}", file=sys.stderr)
        else:
            try:
                captions += exact_figures(results, args.out, command)
            except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
                skipped += [(n, f"{results}/summary.json is malformed: {e}") for n in EXACT_FIGURES]
                print(f"figures: skipped exact: {results}/summary.json is malformed: {e}", file=sys.stderr)

    lines = ["# Figures", "", f"Produced by `{command}` (sizes: {'quick' if args.quick else 'default'}, "
             f"seed {args.seed}); each figure has a PNG, a PDF and a CSV of the numbers plotted.", ""]
    for name, caption in captions:
        if not caption.rstrip().endswith("`."):
            caption = f"{caption} Command: `{command}`."
        lines.append(f"- **{name}** ({name}.png, {name}.pdf, {name}.csv): {caption}")
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- **{n}**: skipped: {reason}." for n, reason in skipped]
    atomic_write_text(args.out / "README.md", "\n".join(lines) + "\n")
    # written last, with the README: a run that stopped half-way leaves no config claiming outputs
    flags = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(args).items()}
    atomic_write_json(args.out / "config.json", {
        "command": command, "args": flags, "sizes": dataclasses.asdict(sizes),
        "versions": package_versions(("numpy", "scipy", "torch", "matplotlib", "tqdm"))})
    total = sum(timings.values())
    print(f"figures: wrote {len(captions)} figure(s) to {args.out} in {total:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in timings.items())})")
    return 0
