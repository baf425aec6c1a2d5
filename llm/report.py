"""``python -m llm report RUN_DIR``: the README's LLM tables, rendered from ``RUN_DIR/summary.json``.

Every result number of the LLM sections of ``README.md`` and ``llm/README.md`` is this module's
output for the committed reference summary (``llm/reference/summary.json``), pasted between
``<!-- llm-report:SECTION -->`` and ``<!-- /llm-report:SECTION -->`` markers; ``--write FILE``
replaces those blocks in place and a test fails when they differ from what this renders. The
study's reference (``llm/reference/study/summary.json``, its learned-PM condition) fills the blocks
tagged ``study`` (``<!-- llm-report:study.SECTION -->``, written with ``--tag study``), and its gold
condition (``summary_gold.json``) those tagged ``studygold``; each summary is one Holm family.

Sections: ``winrate`` (gold win rate against SFT per judge condition, mean and 95 % interval over
chains), ``order`` (the head-to-head orderings the chain-level intervals separate), ``paper``
(the paper's Table 2 ordering, claim by claim), ``judges`` (PM / RM against the gold judge:
accuracy, ECE, MAE, Brier, reliability), ``matrix`` (the side-by-side matrices) and ``provenance``
(date, machine, commit, command, wall time); for a study also ``selected`` (its selection on
``valid``: the selection chain's seed, the criterion, the number it maximised in bold). A
``python -m llm judges`` summary has ``provenance`` and ``judges``.

A run of one chain (``pipeline --seeds 1``, ``study --chains 1``) has no interval over chains: its
tables give the chain's numbers without intervals and say so, and no ordering or claim is stated.
A summary that is not what a pipeline, study or judges run writes is refused in one line (exit 2).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys

import numpy as np

from opo_toolkit.cliargs import Parser, one_line
from opo_toolkit.files import check_output_file
from opo_toolkit.stats import holm_adjust, t_halfwidth, t_pvalue
from tabular.methods import METHODS

from .config import JudgesConfig, PipelineConfig, StudyConfig
from .flag_values import number_words, recorded_config

__all__ = ["SUMMARY_SCHEMA", "current_schema", "render_report", "render_section", "replace_blocks",
           "read_summary", "check_documents",
           "head_to_head", "head_to_head_row", "display_name", "float_path_text", "JUDGE_TITLE", "SECTIONS",
           "MALFORMED", "summary_config", "main"]

SECTIONS = ("provenance", "winrate", "order", "paper", "judges", "matrix")

# The paper's Table 2 (SPEC §6: p(row beats column) by the stronger judge, mean over 3 seeds x 3x3
# comparisons), as head-to-head claims (a, b, p). A claim is read as the paper reads it: "a > b" where
# p is more than PAPER_TIE from 1/2, "a ≈ b" within it. PAPER_TIE = 0.025 is the spread the paper
# reports for its close pairs (0.515 (0.024) for online IPO against IPO-MD, which it does not rank).
PAPER_TIE = 0.025
PAPER_CLAIMS = (("online_ipo", "ipo_md", 0.515), ("ipo_md", "online_dpo", 0.600),
                ("ipo_md", "online_slic", 0.594), ("ipo_md", "nash_md_pg", 0.608),
                ("online_slic", "online_dpo", 0.507),
                ("online_dpo", "nash_md_pg", 0.520), ("online_slic", "nash_md_pg", 0.521),
                ("online_dpo", "rl", 0.727), ("online_slic", "rl", 0.728), ("nash_md_pg", "rl", 0.729),
                ("online_ipo", "rl", 0.791))

SUMMARY_SCHEMA = 3
"""The layout of the ``summary.json`` the pipeline and the study write (:func:`current_schema` reads
the older one)."""


def paper_claim(p: float) -> str:
    """">" (a beats b) or "~" (no difference) for the paper's p(a beats b), read with PAPER_TIE."""
    return "~" if abs(p - 0.5) <= PAPER_TIE else (">" if p > 0.5 else "<")


# How the tables name a judge condition (the ``judge`` of a win rate or a head-to-head row).
JUDGE_TITLE = {"pm": "learned PM (RL: learned RM)", "gold": "gold judge (RL: BT fit of gold)",
               "twins": "gold against pm condition (same method)"}
# display names come from the one method table (tabular.methods.Method.display)
_NAMES = {**{m: spec.display or m for m, spec in METHODS.items()}, "sft": "SFT"}


def display_name(label: str) -> str:
    """How the tables name a policy label ``METHOD`` or ``METHOD@JUDGE``: ``online_ipo@gold`` ->
    ``online IPO @gold``."""
    method, _, judge = label.partition("@")
    return _NAMES.get(method, method) + (f" @{judge}" if judge else "")


def _has_interval(hw) -> bool:
    """A half-width over chains exists (one chain gives nan: no interval)."""
    return isinstance(hw, (int, float)) and math.isfinite(hw)


def _pm(mean, hw, digits: int = 3) -> str:
    """``mean ± half-width``, or the mean alone when there is no interval (one chain)."""
    return f"{mean:.{digits}f} ± {hw:.{digits}f}" if _has_interval(hw) else f"{mean:.{digits}f}"


def _ci(d: dict, digits: int = 3) -> str:
    """``mean ± half-width`` (the 95 % interval over chains); the mean alone for one chain."""
    return _pm(d["mean"], d["ci95"], digits)


def _one_chain(s: dict) -> bool:
    return s["chains"] < 2


# Said wherever an interval or an ordering would stand, when the run has one chain.
ONE_CHAIN = ("One chain: the numbers are that chain's, without an interval over chains, and no "
             "ordering is stated (the retraining variance needs two chains or more: --seeds / --chains).")


def float_path_text(fp: dict) -> str:
    """A run's recorded floating-point path (``provenance["float_path"]``, from
    :func:`opo_toolkit.provenance.measured_provenance`) in words: the torch CPU kernels and the
    variables that forced them."""
    env = " ".join(f"{k}={v}" for k, v in fp["env"].items())
    return f"torch CPU kernels {fp['cpu_capability']}" + (f", forced by {env}" if env else "")


def _origin(s: dict) -> str:
    """The first provenance line: command, commit, date, machine, CPU kernels, versions, wall time."""
    p, v = s["provenance"], s["provenance"]["versions"]
    return (f"Reference run: `{p['command']}` at commit `{(p['git_commit'] or 'unknown')[:10]}`"
            + (" (uncommitted changes)" if p.get("git_dirty") else "")
            + f", {p['date_utc']} UTC, on {p['machine']}"
            + (f" ({float_path_text(p['float_path'])})" if "float_path" in p else "") + "; "
            f"Python {v['python']}, torch {v['torch']}, transformers {v['transformers']}; "
            f"{s['wall_time_s'] / 60:.1f} min of "
            + ("pipeline" if s.get("kind") != "judges" else "run") + " time.")


def summary_config(s: dict) -> dict:
    """The config a summary records, its typed list flags read back whichever form they were
    recorded in (:func:`llm.flag_values.recorded_config`: values, or the words of a run from before the
    flags were typed): a judges run's, a study's (it has ``selected``) or a pipeline's."""
    cls = JudgesConfig if s.get("kind") == "judges" else StudyConfig if "selected" in s else PipelineConfig
    return recorded_config(cls, s["config"])


def _provenance(s: dict) -> str:
    c = summary_config(s)
    if s.get("kind") == "judges":
        return "\n".join([_origin(s), (
            f"{s['chains']} chains, seeds {c['seed']}-{c['seed'] + s['chains'] - 1}, each training SFT "
            f"({c['sft_steps']} steps), then the RM and the PM ({c['pm_form']}, init {c['pm_init']}; "
            f"{c['pm_steps']} steps each on {c['pm_pairs']} gold-labelled pairs), as the pipeline's chains "
            "do; scored on each chain's held-out pairs.")])
    # the pipeline's taus; a study's are grids, of which it selected one per method
    taus = {m: r["tau"] for m, r in s["selected"].items()} if "selected" in s else c["taus"]
    return "\n".join([
        _origin(s),
        ("1 chain (it trains" if s["chains"] == 1 else f"{s['chains']} chains (each retrains")
        + (" SFT and every alignment run with its seed; gold only, no PM or RM); " if _gold_only(s) else
           " SFT, PM, RM and every alignment run with its seed); ")
        + f"{s['n_eval_prompts']} test prompts x {s['samples_per_prompt']} "
        + ("sample" if s["samples_per_prompt"] == 1 else "samples") + " per policy"
        + (f" (the PM judges the first {s['n_pm_eval_prompts']})" if s.get("n_pm_eval_prompts") else "")
        + "; "
        f"{c['align_steps']} alignment steps of {c['align_batch_size']} prompts; "
        "taus " + ", ".join(f"{display_name(m)} {taus[m]:g}" for m in s["methods"])
        + "; " + _betas(s) + ".",
    ])


def _betas(s: dict) -> str:
    """The beta of the runs: ``--beta``, or a study's selected beta of each method that uses one."""
    c = s["config"]
    if "selected" not in s:
        return f"beta {c['beta']:g}"
    used = [(m, r["beta"]) for m, r in s["selected"].items() if METHODS[m].uses_beta]
    if not used:
        return f"beta {c['beta']:g}"
    return "betas " + ", ".join(f"{display_name(m)} {b:g}" for m, b in used)


def _gold_only(s: dict) -> bool:
    """A run of the gold condition alone (``--judges gold``, a study's gold chains): no PM or RM trained."""
    return s.get("judges_run") == ["gold"] and not s.get("n_pm_eval_prompts")


def _winrate(s: dict) -> str:
    judges = s["judges_run"]
    head = "| method | " + " | ".join(f"{JUDGE_TITLE[j]}" for j in judges) + " |"
    lines = [head, "|---" * (len(judges) + 1) + "|"]
    for m in s["methods"]:
        lines.append(f"| {display_name(m)} | "
                     + " | ".join(_ci(s["winrate_vs_sft"][j][m]) for j in judges) + " |")
    eval_hw = max(s["winrate_vs_sft"][j][m]["eval_ci95"] for j in judges for m in s["methods"])
    if _one_chain(s):
        lines += ["", f"Gold-judge win rate against the SFT policy of the same chain (the mean of the exact "
                  f"gold probabilities over test prompts and samples). The evaluation's own 95 % half-width "
                  f"is at most {eval_hw:.4f}. {ONE_CHAIN}"]
    else:
        chain_hw = max(s["winrate_vs_sft"][j][m]["ci95"] for j in judges for m in s["methods"])
        sd = max(float(np.std(s["winrate_vs_sft"][j][m]["per_chain"], ddof=1))
                 for j in judges for m in s["methods"])
        lines += ["", "Gold-judge win rate against the SFT policy of the same chain (the mean of the exact "
                  "gold probabilities over test prompts and samples), mean ± 95 % t half-width over "
                  f"{s['chains']} chains (ddof = 1). The evaluation's own 95 % half-width within a chain "
                  f"is at most {eval_hw:.4f}; the chain-level half-widths (at most {chain_hw:.3f}) are "
                  f"the retraining variance of SFT{'' if _gold_only(s) else ', PM/RM'} and alignment: with "
                  "the largest chain-to-chain "
                  f"standard deviation measured here ({sd:.3f}), a ± 0.01 interval would need about "
                  f"{int(np.ceil((1.96 * sd / 0.01) ** 2))} chains."]
    pmj = s.get("winrate_vs_sft_pm_judge")
    if pmj:
        lines += ["", "The same policies judged by the chain's learned PM (what the pm-condition policies "
                  "were trained on):", "", head, "|---" * (len(judges) + 1) + "|"]
        for m in s["methods"]:
            lines.append(f"| {display_name(m)} | " + " | ".join(_ci(pmj[j][m]) for j in judges) + " |")
    return "\n".join(lines)


ALPHA = 0.05  # family-wise error rate of every stated ordering


def head_to_head(s: dict) -> list[dict]:
    """Every head-to-head test a summary's ``order`` section renders, Holm-adjusted as one family.

    Per judge condition, each unordered pair of methods (``p`` = p(a beats b) by the gold judge,
    mean over chains; a two-sided t-test of the per-chain values against 1/2); with both conditions,
    also each method's twins (``m@gold`` against ``m``). The family is all of them together (15 pairs
    x 2 conditions + 6 twins = 36 for the full pipeline), adjusted by Holm's step-down procedure
    (:func:`opo_toolkit.stats.holm_adjust`; family-wise error <= ALPHA under any dependence). Rows:
    ``judge`` ("pm", "gold" or "twins"), ``a``, ``b``, ``p``, ``ci95``, ``p_value``, ``p_holm``,
    ``separated`` (p_holm < ALPHA). The report and ``llm compare`` both read this one list; a run of
    one chain has no test (empty list)."""
    if _one_chain(s):
        return []
    labels, g = s["labels"], s["win_matrix_gold"]
    pairs = []
    for j in s["judges_run"]:
        lab = [m if j == "pm" else f"{m}@{j}" for m in s["methods"]]
        pairs += [(j, s["methods"][x], s["methods"][y], lab[x], lab[y])
                  for x in range(len(lab)) for y in range(x + 1, len(lab))]
    if {"pm", "gold"} <= set(s["judges_run"]):
        pairs += [("twins", f"{m}@gold", m, f"{m}@gold", m) for m in s["methods"]]
    rows = []
    for j, a, b, la, lb in pairs:
        i, k = labels.index(la), labels.index(lb)
        rows.append({"judge": j, "a": a, "b": b, "p": g["mean"][i][k], "ci95": g["ci95"][i][k],
                     "p_value": t_pvalue(g["per_chain"][i][k], 0.5)})
    for r, adj in zip(rows, holm_adjust([r["p_value"] for r in rows])):
        r["p_holm"] = float(adj)
        r["separated"] = bool(adj < ALPHA)
    return rows


def head_to_head_row(rows, judge, a, b):
    """The head-to-head row of (a, b) under ``judge``, oriented as asked (p -> 1 - p if stored as b, a)."""
    for r in rows:
        if r["judge"] == judge and (r["a"], r["b"]) == (a, b):
            return r
        if r["judge"] == judge and (r["a"], r["b"]) == (b, a):
            return {**r, "a": a, "b": b, "p": 1.0 - r["p"]}
    raise KeyError((judge, a, b))


def _family_note(rows) -> str:
    return (f"two-sided t-tests over chains of p(a beats b) = 1/2, Holm-adjusted over the {len(rows)} "
            f"head-to-head tests of this summary as one family (family-wise error {ALPHA:g})")


def _twins(s: dict, rows) -> str:
    """Each method aligned with the gold judge against itself aligned with the learned PM."""
    cells = []
    for m in s["methods"]:
        r = head_to_head_row(rows, "twins", f"{m}@gold", m)
        verdict = "separated" if r["separated"] else "not separated"
        cells.append(f"{display_name(m)} {r['p']:.3f} ± {r['ci95']:.3f} "
                     f"(Holm p {r['p_holm']:.2g}, {verdict})")
    return ("- the same method, gold condition against pm condition, p(@gold beats pm) by the gold judge: "
            + "; ".join(cells) + ".")


def _order(s: dict) -> str:
    if _one_chain(s):
        return f"- {ONE_CHAIN}"
    rows = head_to_head(s)
    lines = [f"- Stated only where the adjusted p-value is below {ALPHA:g}: {_family_note(rows)}."]
    lines += [_twins(s, rows)] if {"pm", "gold"} <= set(s["judges_run"]) else []
    for j in s["judges_run"]:
        sep = [r for r in rows if r["judge"] == j and r["separated"]]
        wins = {m: sorted((r["b"] if r["p"] > 0.5 else r["a"]) for r in sep
                          if (r["a"] if r["p"] > 0.5 else r["b"]) == m) for m in s["methods"]}
        ranked = sorted(s["methods"], key=lambda m: -s["winrate_vs_sft"][j][m]["mean"])
        lines.append(f"- {JUDGE_TITLE[j]}: " + "; ".join(
            f"{display_name(m)} beats "
            + (", ".join(display_name(x) for x in wins[m]) if wins[m] else "no method")
            for m in ranked if wins[m]) + ("" if sep else "no head-to-head pair is separated") + ".")
        unsep = [(r["a"], r["b"]) for r in rows if r["judge"] == j and not r["separated"]]
        if unsep:
            lines.append("  Not separated after the adjustment: "
                         + ", ".join(f"{display_name(a)} / {display_name(b)}" for a, b in unsep) + ".")
    return "\n".join(lines)


def _verdict(s: dict, judge: str, a: str, b: str, claim: str, rows=None) -> str:
    if _one_chain(s):
        labels, g = s["labels"], s["win_matrix_gold"]
        la, lb = (m if judge == "pm" else f"{m}@{judge}" for m in (a, b))
        return f"{g['mean'][labels.index(la)][labels.index(lb)]:.3f}: no interval (one chain)"
    r = head_to_head_row(head_to_head(s) if rows is None else rows, judge, a, b)
    if not r["separated"]:
        here = "not separated"
    else:
        here = "a > b" if r["p"] > 0.5 else "a < b"
    agrees = {(">", "a > b"): "agrees", ("~", "not separated"): "agrees"}.get((claim, here), "differs")
    return f"{r['p']:.3f} ± {r['ci95']:.3f}, Holm p {r['p_holm']:.2g}: {here} ({agrees})"


def _paper(s: dict) -> str:
    judges = s["judges_run"]
    claims = [c for c in PAPER_CLAIMS if c[0] in s["methods"] and c[1] in s["methods"]]
    rows = head_to_head(s)
    lines = ["| a vs b | paper's Table 2 (row a, column b) | "
             + " | ".join(f"here, {JUDGE_TITLE[j]}: p(a beats b)" for j in judges)
             + " |", "|---" * (len(judges) + 2) + "|"]
    verdicts = {}
    for a, b, p in claims:
        claim = paper_claim(p)
        verdicts[a, b] = [_verdict(s, j, a, b, claim, rows) for j in judges]
        lines.append(f"| {display_name(a)} vs {display_name(b)} | "
                     f"{p:.3f}: {'a > b' if claim == '>' else 'a ≈ b'} | "
                     + " | ".join(verdicts[a, b]) + " |")
    if _one_chain(s):
        return "\n".join(lines + ["", "No claim is checked: " + ONE_CHAIN])
    n = {j: sum("(agrees)" in verdicts[a, b][i] for a, b, _ in claims) for i, j in enumerate(judges)}
    lines += ["", "Claims that agree: "
              + ", ".join(f"{n[j]} of {len(claims)} ({JUDGE_TITLE[j]})" for j in judges)
              + f". The paper's p is read as \"a ≈ b\" within {PAPER_TIE:g} of 1/2 (its own spread for close "
              "pairs), else \"a > b\". Here \"a ≈ b\" agrees when the adjusted test cannot separate the two; "
              "\"a > b\" only when it does; the p-values are those of the order section's Holm family."]
    return "\n".join(lines)


def _judges(s: dict) -> str:
    j = s["judges"]
    if not s["reliability"]:  # a gold-only run trains no PM or RM
        return ("No learned judge: this run aligned with the gold judge only (no PM or RM trained)."
                + (f" BT fit of gold (RL's reward): accuracy {_ci(j['gold_bt_fit']['accuracy'])}."
                   if "gold_bt_fit" in j else ""))
    lines = ["| judge vs gold (valid-split SFT pairs) | accuracy | ECE (10 bins) | MAE | Brier |",
             "|---|---|---|---|---|"]
    form = s["config"].get("pm_form")  # recorded since the form became a choice
    for who, title in (("pm", f"PM ({form})" if form else "PM"), ("rm", "Bradley-Terry RM")):
        if who in j:
            lines.append(f"| {title} | "
                         + " | ".join(_ci(j[who][k])
                                      for k in ("accuracy", "calibration_error", "mean_abs_error", "brier"))
                         + " |")
    if "always_half" in j:
        lines.append(f"| always 1/2 | | | {_ci(j['always_half']['mean_abs_error'])} | |")
    if "gold_bt_fit" in j:
        lines.append(f"| BT fit of gold (RL's reward, gold condition) | {_ci(j['gold_bt_fit']['accuracy'])} "
                     "| | | |")
    if "pm" in j and "rm" in j and len(j["pm"]["accuracy"]["per_chain"]) > 1:
        diff = np.subtract(j["pm"]["accuracy"]["per_chain"], j["rm"]["accuracy"]["per_chain"])
        lines += ["", "PM minus RM accuracy on the same held-out pairs, chain by chain: "
                  + ", ".join(f"{d:+.3f}" for d in diff)
                  + f"; mean {diff.mean():+.3f} ± {t_halfwidth(diff):.3f} "
                  "(95 % paired t interval over chains)."]
    lines += ["", "Reliability (pooled over chains; bins of the prediction): mean prediction -> mean gold "
              "probability (pairs)", "", "| bin | " + " | ".join(w.upper() for w in s["reliability"]) + " |",
              "|---" * (len(s["reliability"]) + 1) + "|"]
    whos = list(s["reliability"])
    for b in range(len(s["reliability"][whos[0]])):
        lo, hi = s["reliability"][whos[0]][b]["lo"], s["reliability"][whos[0]][b]["hi"]
        cells = []
        for w in whos:
            r = s["reliability"][w][b]
            cells.append(f"{r['mean_pred']:.3f} -> {r['mean_gold']:.3f} ({r['count']})" if r["count"]
                         else "—")
        lines.append(f"| [{lo:.1f}, {hi:.1f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _matrix(s: dict) -> str:
    labels = s["labels"]
    g = s["win_matrix_gold"]
    lines = []
    for j in s["judges_run"]:
        rows = [lab for lab in labels if lab == "sft" or (("@" in lab) == (j != "pm") and
                                                           (j == "pm" or lab.endswith("@" + j)))]
        idx = [labels.index(r) for r in rows]
        spread = "one chain: no intervals" if _one_chain(s) else "mean ± 95 % half-width over chains"
        lines += [f"p(row beats column), gold judge, {JUDGE_TITLE[j]} condition ({spread}):",
                  "", "| | " + " | ".join(display_name(r) for r in rows) + " |",
                  "|---" * (len(rows) + 1) + "|"]
        for r, i in zip(rows, idx):
            lines.append(f"| {display_name(r)} | " + " | ".join(
                "—" if i == k else _pm(g["mean"][i][k], g["ci95"][i][k]) for k in idx) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()


def _selected(s: dict) -> str:
    """A study's selection on the ``valid`` split (its selection chain, ``OUT/select``; chain 0 in
    studies from before it): per method its tau, beta and checkpoint."""
    if "selected" not in s:
        raise KeyError("selected (only a study's summary.json has it)")
    c = summary_config(s)
    sel = s.get("selection")  # absent in a study from before the disjoint selection chain
    vs_rl = any(r.get("winrate_vs_rl") is not None for r in s["selected"].values())
    lines = ["| method | tau (grid) | beta | checkpoint step (of "
             f"{c['align_steps']}) | valid win rate vs SFT |"
             + (" valid win rate vs selected RL |" if vs_rl else ""),
             "|---|---|---|---|---|" + ("---|" if vs_rl else "")]
    grids = {m: ",".join(number_words(g)) for m, g in c["taus"].items()}
    for m, r in s["selected"].items():
        beta = f"{r['beta']:g}" if METHODS[m].uses_beta else "—"
        mark = {"sft": "", "rl": ""}
        if sel:  # the number the selection maximised, in bold
            mark[r.get("criterion", "sft")] = "**"
        rl_cell = ("—" if r.get("winrate_vs_rl") is None else
                   f"{mark['rl']}{r['winrate_vs_rl']:.3f}{mark['rl']}")
        lines.append(f"| {display_name(m)} | {r['tau']:g} ({grids.get(m, '?')}) | {beta} | {r['step']} | "
                     f"{mark['sft']}{r['winrate_vs_sft']:.3f}{mark['sft']} |"
                     + (f" {rl_cell} |" if vs_rl else ""))
    grid_of = {m: sorted(g) for m, g in c["taus"].items()}
    edge = [f"{display_name(m)} ({'lowest' if r['tau'] == grid_of[m][0] else 'highest'})"
            for m, r in s["selected"].items() if len(grid_of.get(m, [])) > 1 and r["tau"] in
            (grid_of[m][0], grid_of[m][-1])]
    last = [display_name(m) for m, r in s["selected"].items() if r["step"] == c["align_steps"]]
    n = c.get("valid_prompts")
    lines += ["", "Selected tau at an end of its grid (the best tau may lie beyond it): "
              + (", ".join(edge) if edge else "none") + ". Selected at the last checkpoint (longer "
              "training may do better): " + (", ".join(last) if last else "none") + "."]
    if not sel:
        lines += ["", f"Selected on chain 0 by the gold win rate against SFT on {n} `valid` prompts x 2 "
                  f"responses, every {c['eval_every']} steps (the highest; ties to the earlier step); the "
                  "selection's own noise is not in the chain intervals of the tables that follow."]
        return "\n".join(lines)
    lo, hi = sel["test_chain_seeds"]
    criterion = ("RL by the gold win rate against SFT, every other method by the gold win rate against "
                 "that fixed, selected RL checkpoint (the paper's criterion)" if sel["against"] == "rl" else
                 "every method by the gold win rate against SFT")
    lines += ["", f"Selected on a selection chain of its own (seed {sel['seed']}; the test chains' seeds "
              f"are {lo}-{hi}, so no test policy is a sweep run or shares a trained model with one): "
              f"{criterion}, "
              f"on {n} `valid` prompts x 2 responses, every {c['eval_every']} steps (the highest, in bold; "
              "ties to the earlier step). The selection's own noise is not in the chain intervals of the "
              "tables that follow."]
    return "\n".join(lines)


_RENDER = {"provenance": _provenance, "winrate": _winrate, "order": _order, "paper": _paper,
           "judges": _judges, "matrix": _matrix, "selected": _selected}


def render_section(summary: dict, section: str) -> str:
    return _RENDER[section](summary)


def render_report(summary: dict, sections=SECTIONS) -> str:
    return "\n\n".join(render_section(summary, sec) for sec in sections)


_BLOCK = re.compile(r"(<!-- llm-report:((?:(\w+)\.)?(\w+)) -->\n)(.*?)(<!-- /llm-report:\2 -->)", re.S)


def replace_blocks(text: str, summary: dict | None, tag: str | None = None, render=None) -> str:
    """``text`` with every ``<!-- llm-report:SECTION -->`` block (with ``tag``: every
    ``<!-- llm-report:TAG.SECTION -->`` block) re-rendered from ``summary``; other blocks untouched.
    ``render(SECTION)`` replaces :func:`render_section` (``python -m llm compare`` renders its own)."""
    render_block = render or (lambda section: render_section(summary, section))
    blocks = _BLOCK.findall(text)
    if len(blocks) != len(re.findall(r"^<!-- llm-report:", text, re.M)):  # unclosed, misnamed or nested
        raise ValueError("an <!-- llm-report:NAME --> block has no matching <!-- /llm-report:NAME --> "
                         "(or holds another block)")
    if not any(b[2] == (tag or "") for b in blocks):  # nothing to render: refused, not rewritten unchanged
        raise ValueError(f"no <!-- llm-report:{tag}.SECTION --> block" if tag is not None
                         else "no <!-- llm-report:SECTION --> block")

    def sub(m):
        if m.group(3) != tag:
            return m.group(0)
        return m.group(1) + render_block(m.group(4)) + "\n" + m.group(6)
    return _BLOCK.sub(sub, text)


# What rendering or comparing a summary of the wrong shape raises (a list where an object belongs,
# a 1 x 1 matrix, a missing key, nesting deeper than Python recurses): refused in one line.
MALFORMED = (KeyError, TypeError, IndexError, AttributeError, ValueError, RecursionError, ZeroDivisionError)


def read_summary(path: str) -> dict:
    """The JSON object in ``path`` (a ``summary.json``); a one-line ``ValueError`` for anything else:
    JSON that is not an object, nesting too deep to read, a ``config`` that is not an object."""
    try:
        with open(path) as f:
            summary = json.load(f)
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a summary") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path} holds a JSON {type(summary).__name__}, not a summary object")
    if not isinstance(summary.get("config", {}), dict):
        raise ValueError(f"{path}: its config is not an object")
    return current_schema(summary)


# Schema 2 summaries also stored the gold matrix's mean and 95 % half-widths under flat names (for
# the figures), the same numbers twice; schema 3 keeps them once, under ``win_matrix_gold``.
_SCHEMA_2_COPIES = ("win_matrix_gold_mean", "win_matrix_gold_ci95")


def current_schema(summary: dict) -> dict:
    """A pipeline or study ``summary.json`` as the current schema (:data:`SUMMARY_SCHEMA`) writes it:
    a schema 2 summary without its second copies of the gold matrix (each equal to its first,
    checked), so summaries of either schema compare number for number."""
    if summary.get("schema") != 2 or not isinstance(summary.get("win_matrix_gold"), dict):
        return summary
    gold = summary["win_matrix_gold"]
    for name in _SCHEMA_2_COPIES:
        if name in summary and summary[name] != gold.get(name.rpartition("_")[2]):
            raise ValueError(f"{name} differs from win_matrix_gold's {name.rpartition('_')[2]}: not a "
                             "summary this code wrote")
    return {**{k: v for k, v in summary.items() if k not in _SCHEMA_2_COPIES}, "schema": SUMMARY_SCHEMA}


def check_documents(names, inputs: dict) -> dict:
    """``{name: text}`` of the ``--write`` files, each checked before anything is written (one-line
    ``ValueError`` / ``OSError``): an existing regular file, in a folder that takes the temporary
    file of an atomic write, and not one of ``inputs`` (``{flag: path}``)."""
    docs = {}
    for name in names:
        check_output_file(name, "--write")
        if not os.path.isfile(name):
            raise ValueError(f"--write {name} does not exist (it must hold llm-report blocks)")
        for flag, path in inputs.items():
            if os.path.realpath(name) == os.path.realpath(path):
                raise ValueError(f"--write {name} is the input {flag}; choose another file")
        with open(name) as f:
            docs[name] = f.read()
    return docs


def write_outputs(prog: str, outputs: dict) -> int:
    """Write ``{path: text}`` atomically (every output was checked first); 0, or 2 after one line
    when the system still refuses (a full disk)."""
    from opo_toolkit.files import atomic_write_text

    for name, text in outputs.items():
        try:
            atomic_write_text(name, text)
        except OSError as e:
            print(f"{prog}: error: cannot write {name}: {one_line(e.strerror or e)}", file=sys.stderr)
            return 2
    return 0


def main(argv=None) -> int:
    parser = Parser(prog="python -m llm report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir",
                        help="a pipeline run folder (with summary.json), or the summary file itself")
    parser.add_argument("--sections", nargs="+", choices=list(_RENDER), default=None,
                        help="sections to print (default: " + " ".join(SECTIONS) + "; for a judges run: "
                             "provenance judges; selected: a study's selection)")
    parser.add_argument("--write", nargs="+", default=[], metavar="FILE",
                        help="re-render the llm-report blocks of these markdown files in place")
    parser.add_argument("--tag", default=None,
                        help="re-render the blocks <!-- llm-report:TAG.SECTION --> instead of the untagged "
                             "ones (e.g. --tag study for the study's reference summary)")
    args = parser.parse_args(argv)
    path = args.run_dir if args.run_dir.endswith(".json") else os.path.join(args.run_dir, "summary.json")
    try:
        docs = check_documents(args.write, {"RUN_DIR": path})  # every output checked before any work
        summary = read_summary(path)
        judges_run = summary.get("kind") == "judges"
        sections = args.sections or (("provenance", "judges") if judges_run else SECTIONS)
        text = render_report(summary, sections)
        docs = {name: replace_blocks(doc, summary, args.tag) for name, doc in docs.items()}
    except (OSError, *MALFORMED) as e:  # ValueError: JSONDecodeError, a bad --taus, no block
        print(f"python -m llm report: error: cannot render {path}: {type(e).__name__}: {one_line(e)}",
              file=sys.stderr)
        return 2
    code = write_outputs("python -m llm report", docs)
    if code == 0:
        print(text)
    return code
