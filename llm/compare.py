"""``python -m llm compare REFERENCE RUN``: does RUN reproduce the reference summary?

The README's LLM numbers come from one run on one machine (``llm/reference/summary.json``). Another
machine rounds differently, so it trains slightly different models and cannot repeat those numbers
bit for bit; what it can repeat is what the README concludes. This command checks both, in order:

1. **bit for bit**: every result number of the two ``summary.json`` files (all but clock times,
   provenance and the config) is equal (what the same command on the same machine must give);
2. **within the reference's intervals**: each win rate against SFT of RUN (its mean over chains)
   lies inside the reference's 95 % chain-level interval, and each head-to-head ordering the
   reference states (its ``separated`` pairs) keeps its direction in RUN (p(winner beats loser) > 1/2).
   Whether RUN's own intervals separate the pair again is reported beside it, not required: with 3
   chains a pair that the reference separates by a small margin is separated again only sometimes.

Exit status 0 when RUN reproduces the reference in either sense, 1 when it does not, 2 on bad input
(unreadable or malformed file, an output that cannot be written or is one of the summaries, or the
two runs were made with different settings), before anything is written. ``--write FILE --tag TAG``
renders the result into the ``<!-- llm-report:TAG.compare -->`` blocks of a markdown file.
"""

from __future__ import annotations

import json
import math
import os
import sys

from opo_toolkit.cliargs import Parser, one_line
from opo_toolkit.files import check_output_file

from .config import RESUMABLE_CHANGES
from .report import (
    JUDGE_TITLE,
    MALFORMED,
    check_documents,
    display_name,
    float_path_text,
    head_to_head,
    head_to_head_row,
    read_summary,
    replace_blocks,
    summary_config,
    write_outputs,
)

__all__ = ["compare_summaries", "render_comparison", "main"]

# Config fields that choose where and how a run is written, not what it computes.
_NOT_RESULTS = RESUMABLE_CHANGES | {"log_every", "checkpoint_every"}
# Summary entries a second run cannot repeat (clock times, where and when it ran), and the config
# (compared on its own: settings such as --threads may differ between the runs).
_NOT_REPEATABLE = {"provenance", "wall_time_s", "step_time_s", "config"}


def _leaves(x, path=()):
    """(path, number) for every number in a JSON tree."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (i,))
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield path, float(x)


def config_differences(ref: dict, run: dict) -> list[str]:
    """The result-changing settings in which two summaries' configs differ."""
    a, b = summary_config(ref), summary_config(run)  # typed list flags read in either recorded form
    return sorted(k for k in set(a) | set(b) if k not in _NOT_RESULTS and a.get(k) != b.get(k))


def compare_summaries(ref: dict, run: dict) -> dict:
    """The reproduction verdict of ``run`` against ``ref`` (both ``summary.json`` dicts).

    Returns ``{"numbers", "differing", "max_abs_diff", "max_abs_diff_at" (its path in the summary),
    "bit_for_bit", "winrates", "orderings",
    "judges", "within_intervals", "reproduces"}``; ``winrates``/``judges`` rows hold the reference's
    interval and RUN's mean, ``orderings`` rows the reference's separated pairs with RUN's p.
    """
    a, b = (dict(_leaves({k: v for k, v in s.items() if k not in _NOT_REPEATABLE})) for s in (ref, run))
    shared = a.keys() & b.keys()
    diffs = sorted((abs(a[p] - b[p]), ".".join(map(str, p))) for p in shared
                   if a[p] != b[p] and not (math.isnan(a[p]) and math.isnan(b[p])))  # NaN: one chain's ci95
    bit_for_bit = a.keys() == b.keys() and not diffs
    winrates = []
    for j in ref["judges_run"]:
        for m in ref["methods"]:
            r, x = ref["winrate_vs_sft"][j][m], run["winrate_vs_sft"][j][m]
            winrates.append({"judge": j, "method": m, "ref_mean": r["mean"], "lo": r["lo"], "hi": r["hi"],
                             "run_mean": x["mean"], "inside": r["lo"] <= x["mean"] <= r["hi"]})
    judges = []
    for who in ("pm", "rm"):
        if who in ref["judges"] and who in run["judges"]:
            r, x = ref["judges"][who]["accuracy"], run["judges"][who]["accuracy"]
            judges.append({"judge": who, "ref_mean": r["mean"], "lo": r["lo"], "hi": r["hi"],
                           "run_mean": x["mean"], "inside": r["lo"] <= x["mean"] <= r["hi"]})
    orderings = []
    run_rows = head_to_head(run)
    for e in head_to_head(ref):  # the orderings the reference states (Holm-adjusted, report.head_to_head)
        if not e["separated"]:
            continue
        win, lose = (e["a"], e["b"]) if e["p"] > 0.5 else (e["b"], e["a"])
        r = head_to_head_row(run_rows, e["judge"], win, lose) if run_rows else None
        p = r["p"] if r else float("nan")
        orderings.append({"judge": e["judge"], "winner": win, "loser": lose, "ref_p": max(e["p"], 1 - e["p"]),
                          "ref_p_holm": e["p_holm"], "run_p": p, "run_ci95": r["ci95"] if r else float("nan"),
                          "run_p_holm": r["p_holm"] if r else float("nan"), "kept": p > 0.5,
                          "separated_again": bool(r and r["separated"] and p > 0.5)})
    within = all(w["inside"] for w in winrates) and all(o["kept"] for o in orderings)
    return {"numbers": len(a), "differing": len(diffs) + len(a.keys() ^ b.keys()),
            "max_abs_diff": diffs[-1][0] if diffs else 0.0,
            "max_abs_diff_at": diffs[-1][1] if diffs else None,
            "bit_for_bit": bit_for_bit, "winrates": winrates,
            "judges": judges, "orderings": orderings, "within_intervals": within,
            "reproduces": bit_for_bit or within}


def render_comparison(ref: dict, run: dict, c: dict | None = None) -> str:
    """The verdict ``c`` of :func:`compare_summaries` (computed when not given) as markdown:
    provenance of both runs, then the checks."""
    c = c or compare_summaries(ref, run)

    def origin(s):
        p = s["provenance"]
        fp = f" ({float_path_text(p['float_path'])})" if "float_path" in p else ""
        return (f"`{p['command']}` at `{(p['git_commit'] or 'unknown')[:10]}`, {p['date_utc']} UTC, on "
                f"{p['machine']}{fp}, {s['wall_time_s'] / 60:.1f} min")

    n_in = sum(w["inside"] for w in c["winrates"])
    n_kept = sum(o["kept"] for o in c["orderings"])
    n_again = sum(o["separated_again"] for o in c["orderings"])
    if c["bit_for_bit"]:
        verdict = f"**reproduces bit for bit**: all {c['numbers']} numbers equal"
    else:
        verdict = (f"{c['differing']} of {c['numbers']} numbers differ (largest difference "
                   f"{c['max_abs_diff']:.3g}, at {c['max_abs_diff_at']}); **"
                   + ("reproduces within the reference's intervals" if c["within_intervals"]
                      else "does not reproduce") + "**")
    lines = [f"Reference: {origin(ref)}.", f"Run: {origin(run)}.", "",
             f"Verdict: {verdict}. Win rates against SFT inside the reference's 95 % interval: "
             f"{n_in} of {len(c['winrates'])}; orderings the reference states that keep their direction: "
             f"{n_kept} of {len(c['orderings'])} (separated again by the run's own Holm-adjusted tests: "
             f"{n_again}).",
             "", "| condition | method | reference mean [95 % interval] | run mean | inside |",
             "|---|---|---|---|---|"]
    rows = ([(JUDGE_TITLE[w["judge"]], display_name(w["method"]), w) for w in c["winrates"]]
            + [("held-out accuracy", w["judge"].upper(), w) for w in c["judges"]])
    for condition, who, w in rows:
        lines.append(f"| {condition} | {who} | {w['ref_mean']:.3f} [{w['lo']:.3f}, {w['hi']:.3f}] | "
                     f"{w['run_mean']:.3f} | {'yes' if w['inside'] else 'NO'} |")
    if c["orderings"]:
        lines += ["", "| condition | ordering the reference states | reference p (Holm p) | "
                  "run p ± 95 % (Holm p) | direction kept | separated again |", "|---|---|---|---|---|---|"]
        for o in c["orderings"]:
            lines.append(f"| {JUDGE_TITLE[o['judge']]} | "
                         f"{display_name(o['winner'])} beats {display_name(o['loser'])} | "
                         f"{o['ref_p']:.3f} ({o['ref_p_holm']:.2g}) | {o['run_p']:.3f} ± {o['run_ci95']:.3f} "
                         f"({o['run_p_holm']:.2g}) | "
                         f"{'yes' if o['kept'] else 'NO'} | {'yes' if o['separated_again'] else 'no'} |")
    return "\n".join(lines)


def _summary_path(path: str) -> str:
    return path if path.endswith(".json") else os.path.join(path, "summary.json")


def main(argv=None) -> int:
    parser = Parser(prog="python -m llm compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", help="the reference run folder or its summary.json "
                                          "(e.g. llm/reference/summary.json)")
    parser.add_argument("run", help="the run to check: a pipeline run folder or its summary.json")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the verdict (every check, as numbers) to FILE (not one of the "
                             "summaries compared)")
    parser.add_argument("--write", nargs="+", default=[], metavar="FILE",
                        help="re-render the <!-- llm-report:TAG.compare --> blocks of these markdown files")
    parser.add_argument("--tag", default=None,
                        help="with --write: the tag TAG of the blocks to fill (e.g. rerun, otherfp)")
    args = parser.parse_args(argv)
    if args.write and not args.tag:
        parser.error("--write needs --tag (the blocks are <!-- llm-report:TAG.compare -->)")
    inputs = {"REFERENCE": _summary_path(args.reference), "RUN": _summary_path(args.run)}
    try:
        # every output checked before anything is read or written: --json and --write must be
        # writable files that are not the summaries compared (nor each other)
        docs = check_documents(args.write, inputs)
        if args.json is not None:
            check_output_file(args.json, "--json")
            for flag, path in {**inputs, **{f"--write {n}": n for n in args.write}}.items():
                if os.path.realpath(args.json) == os.path.realpath(path):
                    raise ValueError(f"--json {args.json} is the input {flag}; choose another file")
        ref, run = read_summary(inputs["REFERENCE"]), read_summary(inputs["RUN"])
        differ = config_differences(ref, run)
        if differ:
            raise ValueError("the two runs were made with different settings: " + ", ".join(differ))
        verdict = compare_summaries(ref, run)
        text = render_comparison(ref, run, verdict)
        outputs = {name: replace_blocks(doc, None, args.tag, render=lambda sec: {"compare": text}[sec])
                   for name, doc in docs.items()}
        if args.json is not None:
            outputs[args.json] = json.dumps(verdict, indent=2, default=str) + "\n"
    except (OSError, *MALFORMED) as e:
        print(f"python -m llm compare: error: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 2
    code = write_outputs("python -m llm compare", outputs)
    if code:
        return code
    print(text)
    return 0 if verdict["reproduces"] else 1
