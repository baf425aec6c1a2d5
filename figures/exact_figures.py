"""Figures of the enumerable-task experiment (``python -m llm exact``), drawn from its ``summary.json``.

- ``exact_kl``: KL(pi_t || pi*) over training steps per method (mean over chains, 95 % band), one
  panel per rho, with the tabular prediction of where each method ends drawn in (dashed):
  0 for online IPO / self-play, KL(tok_mix || pi*) for IPO-MD / Nash-MD-PG, KL(RLHF optimum || pi*)
  for RL, KL(DPO limit || pi*) for online DPO (its certified stationary point,
  :mod:`tabular.pairwise_limits`); online SLiC has no point limit (no line).
- ``exact_per_prompt``: per test prompt, the trained policy's exact win rate against SFT (mean over
  chains) against its target's (the tabular prediction), per method, at the largest rho.
- ``exact_vs_rl``: the Nash methods' exact win rate against the trained RL policy across rho
  (transformer, mean and 95 % interval over chains) beside the tabular prediction
  (pi* or the per-token mixture point against the RLHF optimum).

Compute (``*_data``: rows for the CSV and what to draw) and draw (``draw_*``) are apart, as in
:mod:`figures.llm_figures`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .common import FLOOR, finish, floor, pyplot

__all__ = ["exact_figures", "EXACT_FIGURES", "kl_curve_data", "per_prompt_data", "vs_rl_data"]

EXACT_FIGURES = ("exact_kl", "exact_per_prompt", "exact_vs_rl")
_PREDICTED_KL_TO_NASH = {"nash": None, "tok_mix": "kl/tok_mix||nash", "rlhf": "kl/rlhf||nash",
                         "dpo": "kl/dpo||nash"}
_COLORS = {"online_ipo": "C0", "ipo_md": "C1", "nash_md_pg": "C2", "self_play": "C3", "online_dpo": "C4",
           "online_slic": "C5", "rl": "C7"}


def kl_curve_data(summary: dict, split: str = "test"):
    rows, panels = [], []
    for rho in sorted(summary["methods"], key=float):
        lines = []
        tsum = summary["targets"][rho][split]
        for method, e in summary["methods"][rho].items():
            curve = e[split]["curve"]
            mean = [p["mean"] for p in curve["kl_to/nash"]]
            half = [p["halfwidth"] for p in curve["kl_to/nash"]]
            # a method without a point limit (SLiC) has no predicted final KL to draw
            key = _PREDICTED_KL_TO_NASH.get(e["target"]) if e["point_limit"] else None
            predicted = (0.0 if e["target"] == "nash" and e["point_limit"]
                         else (tsum[key]["mean"] if key in tsum else None))
            for s, m, h in zip(curve["step"], mean, half):
                rows.append({"rho": rho, "split": split, "method": method, "step": s,
                             "kl_to_nash_mean": m, "kl_to_nash_halfwidth95": h,
                             "predicted_final": predicted, "chains": e["chains"]})
            lines.append((method, curve["step"], np.array(mean), np.nan_to_num(np.array(half)), predicted))
        panels.append((rho, lines))
    return rows, panels


def draw_kl_curves(panels, split):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.0), squeeze=False, sharey=True)
    # A band whose 95 % interval includes 0 (two chains: t = 12.7) has no lower end on a log axis:
    # it is cut at the axis's bottom, a decade below the smallest positive value drawn, instead of
    # reaching down to the 1e-16 floor and squeezing every curve into the top of the panel.
    shown = [v for _, lines in panels for _, _, mean, half, predicted in lines
             for v in [*mean, *(mean - half), predicted or 0.0] if v > 0]
    bottom = max(min(shown) / 10, FLOOR) if shown else FLOOR
    for ax, (rho, lines) in zip(axes[0], panels):
        for method, steps, mean, half, predicted in lines:
            c = _COLORS.get(method)
            ax.plot(steps, floor(mean), marker=".", color=c, label=method)
            ax.fill_between(steps, np.maximum(mean - half, bottom), floor(mean + half), color=c, alpha=0.15)
            if predicted:
                ax.axhline(predicted, color=c, ls="--", lw=1)
        ax.set(yscale="log", title=f"rho = {rho}", xlabel="alignment step",
               ylabel=f"KL(pi_t || pi*), {split} prompts")
        ax.set_ylim(bottom=bottom)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Transformers against the exact equilibrium pi*; dashed: where tabular says each "
                 "method ends (online IPO / self-play: 0; online SLiC has no point limit);\nbands: 95 % "
                 "intervals over chains, cut at the bottom edge where they include 0", fontsize=9)
    fig.tight_layout()
    return fig


def per_prompt_data(summary: dict, split: str = "test"):
    rho = max(summary["methods"], key=float)
    rows, points = [], []
    for method, e in summary["methods"][rho].items():
        pp = e[split].get("per_prompt")
        if not pp:
            continue
        for i, (a, p) in enumerate(zip(pp["achieved_win_vs_sft"], pp["predicted_win_vs_sft"])):
            rows.append({"rho": rho, "split": split, "method": method, "target": e["target"],
                         "prompt": i, "predicted_win_vs_sft": p, "achieved_win_vs_sft": a})
        points.append((method, e["target"], pp["predicted_win_vs_sft"], pp["achieved_win_vs_sft"]))
    return rows, (rho, points)


def draw_per_prompt(data, split):
    rho, points = data
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    lo = min(min(p + a) for _, _, p, a in points) - 0.02
    hi = max(max(p + a) for _, _, p, a in points) + 0.02
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls=":")
    for method, target, predicted, achieved in points:
        ax.scatter(predicted, achieved, s=14, color=_COLORS.get(method), label=f"{method} (target {target})")
    ax.set(xlabel="predicted: target's exact win rate vs SFT",
           ylabel="achieved: policy's exact win rate vs SFT",
           title=f"Per {split} prompt, rho = {rho} (mean over chains)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def vs_rl_data(summary: dict, split: str = "test"):
    rows, lines = [], {}
    for r in summary["families"].get("win_vs_rl", []):
        if r["split"] != split:
            continue
        method = r["method"]
        target = summary["methods"][f"{r['rho']:g}"][method]["target"]
        pred = summary["targets"][f"{r['rho']:g}"][split][f"win/{target}_vs_rlhf"]["mean"]
        rows.append({"rho": r["rho"], "split": split, "method": method, "win_vs_rl_mean": r["win"]["mean"],
                     "win_vs_rl_halfwidth95": r["win"]["halfwidth"], "p_holm": r["p_holm"],
                     "tabular_prediction": pred})
        lines.setdefault(method, []).append((r["rho"], r["win"]["mean"], r["win"]["halfwidth"], pred))
    return rows, lines


def draw_vs_rl(lines, split):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for k, (method, pts) in enumerate(sorted(lines.items())):
        pts = sorted(pts)
        rho = np.array([p[0] for p in pts]) + 0.01 * (k - 1.5)
        c = _COLORS.get(method)
        ax.errorbar(rho, [p[1] for p in pts], yerr=np.nan_to_num([p[2] for p in pts]), marker="o", color=c,
                    capsize=3, label=f"{method} (transformer)")
        ax.plot(rho, [p[3] for p in pts], ls="--", marker="x", color=c, alpha=0.7,
                label=f"{method} (tabular)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="intransitivity dial rho", ylabel=f"exact win rate against RL ({split} prompts)",
           title="Nash methods vs RL: transformer (95 % CI over chains) and tabular prediction")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def exact_figures(results: Path, out: Path, command: str):
    """Draw the three figures from ``results/summary.json``. Returns [(name, caption)]."""
    with open(results / "summary.json") as f:
        summary = json.load(f)
    chains = max(e["chains"] for m in summary["methods"].values() for e in m.values())
    src = f"{results}/summary.json ({chains} chains)"
    written = []
    rows, panels = kl_curve_data(summary)
    written.append(finish(draw_kl_curves(panels, "test"), out, EXACT_FIGURES[0], rows,
                          f"KL(pi_t || pi*) of each transformer over training (test prompts), dashed: the "
                          f"tabular prediction, from {src}; `{command}`."))
    rows, data = per_prompt_data(summary)
    if data[1]:
        written.append(finish(draw_per_prompt(data, "test"), out, EXACT_FIGURES[1], rows,
                              f"Achieved vs predicted exact win rate against SFT per test prompt, "
                              f"from {src}; `{command}`."))
    rows, lines = vs_rl_data(summary)
    if lines:
        written.append(finish(draw_vs_rl(lines, "test"), out, EXACT_FIGURES[2], rows,
                              f"Exact win rate of the Nash methods against the trained RL policy across rho, "
                              f"beside tabular's pi* / mixture point against the RLHF optimum, from {src}; "
                              f"`{command}`."))
    return written
