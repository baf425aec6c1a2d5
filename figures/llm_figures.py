"""Figure 6: the LLM figures, drawn from the results folder of ``python -m llm pipeline --out DIR``.

Inputs (each optional; a figure whose input is missing or malformed is skipped with a reason):

- ``DIR/summary.json``: ``methods`` and ``win_matrix_gold``'s ``mean`` and ``ci95`` (older summaries:
  ``win_matrix_gold_mean`` and ``win_matrix_gold_ci95`` or ``_std``) (square, ``p(row beats column)``;
  rows/columns are ``matrix_labels`` when present, else
  ``methods`` or, when the matrix has one more row, ``["sft"] + methods``) -> ``fig6a_llm_win_matrix``
  (Table 2-style annotated heatmap, mean ± 95 % half-width over chains).
- ``DIR/tau_sweep.csv`` (method,tau,seed,winrate_vs_sft) -> ``fig6b_llm_winrate_vs_tau``.
- ``DIR/curves.csv`` (method,tau,beta,seed,step,winrate_vs_sft) -> ``fig6c_llm_training_curves``.
- ``DIR/beta_sweep.csv`` (method,beta,tau,seed,winrate_vs_sft) -> ``fig6d_llm_ipo_md_beta``.
- ``DIR/summary.json``: ``reliability`` (``{pm|rm: [{lo, hi, count, mean_pred, mean_gold}]}``) ->
  ``fig6e_llm_judge_reliability`` (reliability diagram of the learned PM and RM against the exact
  gold probabilities, with the share of pairs per bin).

From a ``python -m llm study --out DIR`` folder (recognised by ``selected.csv``), the paper's LLM
figures against the **selected RL checkpoint**, each with the evaluation's 95 % band:

- ``DIR/sweep_vs_rl.csv`` (method,tau,beta,opponent,winrate,eval_ci95) -> ``fig7a_llm_study_vs_tau``
  (win rate against RL and against SFT across tau, per method: the paper's Figs. 1, 3, 4) and
  ``fig7b_llm_study_ipo_md_beta`` (IPO-MD across beta against RL: Fig. 5);
- ``DIR/sweep.csv`` (method,tau,beta,step,winrate_vs_sft) -> ``fig7c_llm_study_checkpoints``
  (validation win rate against SFT over checkpoints, one line per tau: Fig. 2).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from opo_toolkit.stats import t_halfwidth

from .common import finish, pyplot

LLM_FIGURES = ("fig6a_llm_win_matrix", "fig6b_llm_winrate_vs_tau", "fig6c_llm_training_curves",
               "fig6d_llm_ipo_md_beta", "fig6e_llm_judge_reliability")
STUDY_FIGURES = ("fig7a_llm_study_vs_tau", "fig7b_llm_study_ipo_md_beta", "fig7c_llm_study_checkpoints")
SWEEP_VS_RL_COLUMNS = ("method", "tau", "beta", "opponent", "winrate", "eval_ci95")


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path.name} lacks column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path.name} has no rows")
    return rows


def _read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _stats(values):
    """Mean, 95 % t half-width over seeds/chains (ddof = 1; 0 for one value: no band) and count."""
    v = np.asarray(values, np.float64)
    hw = t_halfwidth(v) if v.size > 1 else 0.0
    return v.mean(), hw, v.size


@dataclass(frozen=True)
class WinMatrix:
    """A side-by-side win-rate matrix ``mean[i, j] = p(labels[i] beats labels[j])`` with its spread."""

    mean: np.ndarray
    spread: np.ndarray
    spread_name: str
    """``ci95`` (95 % half-width over chains) or ``std`` (older summaries: std over seed pairs)."""
    labels: list[str]
    what: str


def win_matrix_data(summary: dict) -> tuple[list[dict], WinMatrix]:
    """The matrix of ``summary.json`` with its row/column labels checked; returns the CSV rows too."""
    gold = summary.get("win_matrix_gold")
    if isinstance(gold, dict) and "mean" in gold and "ci95" in gold:  # schema 2 and 3
        flat = {"win_matrix_gold_mean": gold["mean"], "win_matrix_gold_ci95": gold["ci95"]}
    else:  # older summaries: flat keys only, the spread a ci95 or (older still) a std
        flat = summary
    spread = "win_matrix_gold_ci95" if "win_matrix_gold_ci95" in flat else "win_matrix_gold_std"
    for key, where in (("methods", summary), ("win_matrix_gold_mean", flat), (spread, flat)):
        if key not in where:
            raise ValueError(f"summary.json lacks key {key!r}")
    mean = np.asarray(flat["win_matrix_gold_mean"], np.float64)
    std = np.asarray(flat[spread], np.float64)
    what = (f"mean ± 95 % half-width over {summary.get('chains', '?')} chains" if spread.endswith("ci95")
            else "mean ± std over seed pairs")
    methods = list(summary["methods"])
    if mean.ndim != 2 or mean.shape[0] != mean.shape[1] or std.shape != mean.shape:
        raise ValueError(f"win matrices must be square and of equal shape, got {mean.shape} and {std.shape}")
    k = mean.shape[0]
    if "matrix_labels" in summary:  # the llm pipeline states the row/column order explicitly
        labels = list(summary["matrix_labels"])
        if len(labels) != k:
            raise ValueError(f"win matrix is {k}x{k} but matrix_labels lists {len(labels)} names")
    elif k == len(methods) + 1:
        labels = ["sft"] + methods
    elif k == len(methods):
        labels = methods
    else:
        raise ValueError(f"win matrix is {k}x{k} but summary.json lists {len(methods)} methods")
    matrix = WinMatrix(mean, std, spread.rsplit("_", 1)[1], labels, what)
    csv_rows = [{"row": labels[i], "column": labels[j], "mean": mean[i, j], matrix.spread_name: std[i, j]}
                for i in range(k) for j in range(k)]
    return csv_rows, matrix


def draw_win_matrix(matrix: WinMatrix):
    plt = pyplot()
    mean, std, labels, k = matrix.mean, matrix.spread, matrix.labels, len(matrix.labels)
    fig, ax = plt.subplots(figsize=(1.25 * k + 2.5, 1.0 * k + 1.6))
    im = ax.imshow(mean, cmap="RdBu_r", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{mean[i, j]:.3f}\n±{std[i, j]:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(mean[i, j] - 0.5) > 0.3 else "black")
    ax.set_xticks(range(k), labels, rotation=30, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("column method")
    ax.set_ylabel("row method")
    ax.set_title(f"Side-by-side win rate p(row beats column), gold judge\n"
                 f"({matrix.what}; @gold: aligned with the gold judge)")
    fig.colorbar(im, ax=ax, label="p(row > column) (probability)")
    fig.tight_layout()
    return fig


def _win_matrix(d: Path, out: Path, command: str):
    csv_rows, matrix = win_matrix_data(_read_json(d / "summary.json"))
    return finish(draw_win_matrix(matrix), out, LLM_FIGURES[0], csv_rows, f"Table 2-style side-by-side "
                  f"win-rate matrix of the LLM methods ({matrix.what}) from {d}/summary.json; `{command}`.")


@dataclass(frozen=True)
class Sweep:
    """A win-rate sweep figure: mean ``winrate_vs_sft`` ± 95 % t-interval over seeds against column
    ``x`` of ``DIR/file``, one line per method and per value of the ``split`` columns."""

    name: str
    file: str
    x: str
    split: tuple[str, ...]
    xlabel: str
    log_x: bool
    title: str
    caption: str
    """With ``{d}`` (the results folder) and ``{command}`` filled in by :func:`_sweep`."""


TAU_SWEEP = Sweep(LLM_FIGURES[1], "tau_sweep.csv", "tau", (), "regularisation τ", True,
                  "LLM: win rate against the SFT policy vs τ (mean ± 95 % CI over seeds)",
                  "LLM win rate against SFT as a function of τ for online IPO vs online DPO, from "
                  "{d}/tau_sweep.csv; `{command}`.")
BETA_SWEEP = Sweep(LLM_FIGURES[3], "beta_sweep.csv", "beta", ("tau",), "mixture coefficient β", False,
                   "LLM: IPO-MD across β (mean ± 95 % CI over seeds)",
                   "LLM IPO-MD win rate against SFT across the mixture coefficient β, from "
                   "{d}/beta_sweep.csv; `{command}`.")
FIRST_METHODS = ("online_ipo", "online_dpo")  # the paper's comparison leads the legend; the rest sorted
SYMBOLS = {"tau": "τ", "beta": "β"}


def sweep_lines(sweep: Sweep, rows: list[dict]) -> tuple[list[dict], list[tuple[str, list, np.ndarray]]]:
    """Group ``rows`` of a sweep CSV into lines: returns the CSV rows of the figure (method, the split
    columns, x, mean, ci95, seeds) and ``(label, xs, (len(xs), 2) mean and half-width)`` per line."""
    groups = defaultdict(list)
    for r in rows:
        line = (r["method"], *(float(r[c]) for c in sweep.split))
        groups[line, float(r[sweep.x])].append(float(r["winrate_vs_sft"]))
    rank = {m: i for i, m in enumerate(FIRST_METHODS)}
    csv_rows, lines = [], []
    for line in sorted({ln for ln, _ in groups}, key=lambda ln: (rank.get(ln[0], len(rank)), ln)):
        xs = sorted(x for ln, x in groups if ln == line)
        st = np.array([_stats(groups[line, x])[:2] for x in xs])
        split = dict(zip(sweep.split, line[1:]))
        lines.append((line[0] + "".join(f", {SYMBOLS[c]}={v:g}" for c, v in split.items()), xs, st))
        csv_rows += [{"method": line[0], **split, sweep.x: x, "mean": a, "ci95": b,
                      "seeds": len(groups[line, x])} for x, (a, b) in zip(xs, st)]
    return csv_rows, lines


def draw_sweep(sweep: Sweep, lines):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, xs, st in lines:
        ax.errorbar(xs, st[:, 0], yerr=st[:, 1], marker="o", capsize=3, label=label)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    if sweep.log_x:
        ax.set_xscale("log")
    ax.set(xlabel=sweep.xlabel, ylabel="win rate vs SFT (probability)", title=sweep.title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _sweep(sweep: Sweep, d: Path, out: Path, command: str):
    rows = _read_csv(d / sweep.file, ("method", sweep.x, *sweep.split, "seed", "winrate_vs_sft"))
    csv_rows, lines = sweep_lines(sweep, rows)
    caption = sweep.caption.format(d=d, command=command)
    return finish(draw_sweep(sweep, lines), out, sweep.name, csv_rows, caption)


def curve_panels(rows: list[dict]) -> tuple[list[dict], list[tuple[str, list]]]:
    """``curves.csv`` rows -> the figure's CSV rows and, per method (one panel each), its lines
    ``(label, steps, (len(steps), 2) mean and 95 % half-width over chains)``."""
    groups = defaultdict(lambda: defaultdict(list))
    for r in rows:  # one line per (tau, beta, judge); older files have no judge column (= the PM)
        groups[r["method"]][(float(r["tau"]), float(r["beta"]), r.get("judge") or "pm",
                             int(float(r["step"])))].append(float(r["winrate_vs_sft"]))
    csv_rows, panels = [], []
    for m in sorted(groups):
        lines = []
        for t, b, j in sorted({(t, b, j) for (t, b, j, _) in groups[m]}):
            steps = sorted(s for (tt, bb, jj, s) in groups[m] if (tt, bb, jj) == (t, b, j))
            st = np.array([_stats(groups[m][(t, b, j, s)])[:2] for s in steps])
            label = f"τ={t:g}" + (f", β={b:g}" if m in ("ipo_md", "nash_md_pg") else "") + f", judge {j}"
            lines.append((label, steps, st))
            csv_rows += [{"method": m, "tau": t, "beta": b, "judge": j, "step": s, "mean": a, "ci95": sd,
                          "seeds": len(groups[m][(t, b, j, s)])} for s, (a, sd) in zip(steps, st)]
        panels.append((m, lines))
    return csv_rows, panels


def draw_curves(panels):
    plt = pyplot()
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.8 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (m, lines) in zip(axes.flat, panels):
        for label, steps, st in lines:
            ax.plot(steps, st[:, 0], marker=".", label=label)
            ax.fill_between(steps, st[:, 0] - st[:, 1], st[:, 0] + st[:, 1], alpha=0.2)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(title=m, xlabel="training step", ylabel="win rate vs SFT (probability)", ylim=(0, 1))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("LLM: gold win rate against SFT over training (validation prompts), "
                 "mean ± 95 % CI over chains")
    fig.tight_layout()
    return fig


def _curves(d: Path, out: Path, command: str):
    csv_rows, panels = curve_panels(
        _read_csv(d / "curves.csv", ("method", "tau", "beta", "seed", "step", "winrate_vs_sft")))
    return finish(draw_curves(panels), out, LLM_FIGURES[2], csv_rows, f"LLM win rate against SFT over "
                  f"training steps, one line per τ (and β), one panel per method, from {d}/curves.csv; "
                  f"`{command}`.")


class NotApplicable(Exception):
    """The run has no data of this kind by design (e.g. a gold-only run has no learned judge)."""


def reliability_data(summary: dict) -> tuple[list[dict], dict]:
    """The ``reliability`` bins of ``summary.json`` (``{judge: [{lo, hi, count, mean_pred, mean_gold}]}``)
    and the CSV rows (one per judge and bin)."""
    if summary.get("reliability") == {} and summary.get("judges_run") == ["gold"]:
        raise NotApplicable("a gold-only run (--judges gold) trains no PM or RM")
    if not isinstance(summary.get("reliability"), dict) or not summary["reliability"]:
        raise ValueError("summary.json lacks key 'reliability'")
    bins = summary["reliability"]
    return [{"judge": who, **b} for who, judge_bins in bins.items() for b in judge_bins], bins


def draw_reliability(reliability: dict):
    plt = pyplot()
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="calibrated")
    for i, (who, bins) in enumerate(reliability.items()):
        full = [b for b in bins if b["count"]]
        ax.plot([b["mean_pred"] for b in full], [b["mean_gold"] for b in full], marker="o", label=who.upper())
        total = sum(b["count"] for b in bins)
        centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
        axh.bar(np.array(centres) + (i - 0.5) * 0.04, [b["count"] / total for b in bins], width=0.04,
                label=who.upper())
    ax.set(ylabel="mean gold probability",
           title="Learned judges vs the exact gold judge (valid pairs, pooled chains)")
    ax.legend()
    ax.grid(alpha=0.3)
    axh.set(xlabel="predicted P(y > y')", ylabel="share of pairs")
    axh.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _reliability(d: Path, out: Path, command: str):
    csv_rows, reliability = reliability_data(_read_json(d / "summary.json"))
    return finish(draw_reliability(reliability), out, LLM_FIGURES[4], csv_rows, f"Reliability diagram of "
                  f"the learned PM and RM against the exact gold probabilities, with the share of held-out "
                  f"pairs per bin, from {d}/summary.json; `{command}`.")


def _selected(d: Path) -> dict:
    return {r["method"]: r for r in _read_csv(d / "selected.csv", ("method", "tau", "beta", "step"))}


def study_vs_tau_panels(rows: list[dict], selected: dict) -> tuple[list[dict], list[tuple[str, list]]]:
    """``sweep_vs_rl.csv`` rows -> CSV rows and, per opponent (rl, sft), the lines
    ``(method, [(tau, winrate, eval_ci95)])``; a mixture method at its selected beta only."""
    csv_rows, panels = [], []
    for opp in ("rl", "sft"):
        lines = []
        for m in sorted({r["method"] for r in rows} - {"rl"} if opp == "rl" else {r["method"] for r in rows}):
            beta = selected[m]["beta"] if m in selected else None  # mixture methods: the selected beta
            pts = sorted((float(r["tau"]), float(r["winrate"]), float(r["eval_ci95"])) for r in rows
                         if r["method"] == m and r["opponent"] == opp and (beta is None or r["beta"] == beta))
            if not pts:
                continue
            lines.append((m, pts))
            csv_rows += [{"opponent": opp, "method": m, "tau": a, "winrate": b, "eval_ci95": c}
                         for a, b, c in pts]
        panels.append((opp, lines))
    return csv_rows, panels


def draw_study_vs_tau(panels):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, (opp, lines) in zip(axes, panels):
        for m, pts in lines:
            t, w, hw = map(np.array, zip(*pts))
            ax.plot(t, w, marker="o", label=m)
            ax.fill_between(t, w - hw, w + hw, alpha=0.2)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set(xlabel="regularisation τ", ylabel="gold win rate (probability)",
               title=f"against the {'selected RL checkpoint' if opp == 'rl' else 'SFT policy'}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("LLM study: win rate across τ (validation prompts, selection chain; "
                 "band: 95 % evaluation interval)")
    fig.tight_layout()
    return fig


def _study_vs_tau(d: Path, out: Path, command: str):
    rows = _read_csv(d / "sweep_vs_rl.csv", SWEEP_VS_RL_COLUMNS)
    csv_rows, panels = study_vs_tau_panels(rows, _selected(d))
    return finish(draw_study_vs_tau(panels), out, STUDY_FIGURES[0], csv_rows, f"Win rate across τ of every "
                  f"swept method against the selected RL checkpoint and against SFT (the paper's Figs. 1, "
                  f"3-4), from {d}/sweep_vs_rl.csv; `{command}`.")


def study_beta_lines(rows: list[dict]) -> tuple[list[dict], list[tuple[float, list]]]:
    """``sweep_vs_rl.csv`` rows -> CSV rows and, per tau, IPO-MD's ``[(beta, winrate, eval_ci95)]``
    against the selected RL checkpoint."""
    rows = [r for r in rows if r["method"] == "ipo_md" and r["opponent"] == "rl"]
    if not rows:
        raise ValueError("sweep_vs_rl.csv has no ipo_md rows against rl")
    csv_rows, lines = [], []
    for t in sorted({float(r["tau"]) for r in rows}):
        pts = sorted((float(r["beta"]), float(r["winrate"]), float(r["eval_ci95"]))
                     for r in rows if float(r["tau"]) == t)
        lines.append((t, pts))
        csv_rows += [{"tau": t, "beta": x, "winrate": y, "eval_ci95": z} for x, y, z in pts]
    return csv_rows, lines


def draw_study_beta(lines):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for t, pts in lines:
        b, w, hw = map(np.array, zip(*pts))
        ax.errorbar(b, w, yerr=hw, marker="o", capsize=3, label=f"τ={t:g}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="mixture coefficient β", ylabel="gold win rate vs selected RL (probability)",
           title="LLM study: IPO-MD across β against the selected RL checkpoint")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _study_beta(d: Path, out: Path, command: str):
    csv_rows, lines = study_beta_lines(_read_csv(d / "sweep_vs_rl.csv", SWEEP_VS_RL_COLUMNS))
    return finish(draw_study_beta(lines), out, STUDY_FIGURES[1], csv_rows, f"IPO-MD across β against the "
                  f"selected RL checkpoint (the paper's Fig. 5), from {d}/sweep_vs_rl.csv; `{command}`.")


def study_checkpoint_panels(rows: list[dict], selected: dict) -> tuple[list[dict], list[tuple]]:
    """``sweep.csv`` rows -> CSV rows and, per method, ``(method, [(tau, [(step, winrate)])], selected
    (step, winrate) or None)``; a mixture method at its selected beta only."""
    csv_rows, panels = [], []
    for m in sorted({r["method"] for r in rows}):
        beta = selected[m]["beta"] if m in selected else None
        lines = []
        for t in sorted({float(r["tau"]) for r in rows if r["method"] == m}):
            pts = sorted((int(float(r["step"])), float(r["winrate_vs_sft"])) for r in rows
                         if r["method"] == m and float(r["tau"]) == t and (beta is None or r["beta"] == beta))
            lines.append((t, pts))
            csv_rows += [{"method": m, "tau": t, "step": s_, "winrate_vs_sft": w} for s_, w in pts]
        best = ((int(float(selected[m]["step"])), float(selected[m]["valid_winrate_vs_sft"]))
                if m in selected else None)
        panels.append((m, lines, best))
    return csv_rows, panels


def draw_study_checkpoints(panels):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False, sharey=True)
    for ax, (m, lines, best) in zip(axes[0], panels):
        for t, pts in lines:
            ax.plot(*zip(*pts), marker=".", label=f"τ={t:g}")
        if best is not None:
            ax.plot([best[0]], [best[1]], "k*", ms=12, label="selected")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(title=m, xlabel="training step", ylabel="validation win rate vs SFT")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("LLM study: validation win rate over checkpoints per τ (selection chain; one seed: no band)")
    fig.tight_layout()
    return fig


def _study_checkpoints(d: Path, out: Path, command: str):
    csv_rows, panels = study_checkpoint_panels(
        _read_csv(d / "sweep.csv", ("method", "tau", "beta", "step", "winrate_vs_sft")), _selected(d))
    return finish(draw_study_checkpoints(panels), out, STUDY_FIGURES[2], csv_rows, f"Validation win rate "
                  f"against SFT over checkpoints, per τ, with the selected point (the paper's Fig. 2), from "
                  f"{d}/sweep.csv; `{command}`.")


def llm_figures(results: Path | None, out: Path, command: str, why_none: str = ""):
    """Draw every LLM figure whose data exists. Returns ``(written, skipped)``:
    ``written`` = [(name, caption)], ``skipped`` = [(name, reason)]."""
    inputs = [(LLM_FIGURES[0], "summary.json", _win_matrix),
              (TAU_SWEEP.name, TAU_SWEEP.file, partial(_sweep, TAU_SWEEP)),
              (LLM_FIGURES[2], "curves.csv", _curves),
              (BETA_SWEEP.name, BETA_SWEEP.file, partial(_sweep, BETA_SWEEP)),
              (LLM_FIGURES[4], "summary.json", _reliability)]
    if results is not None and (results / "selected.csv").is_file():  # a study folder
        inputs += [(STUDY_FIGURES[0], "sweep_vs_rl.csv", _study_vs_tau),
                   (STUDY_FIGURES[1], "sweep_vs_rl.csv", _study_beta),
                   (STUDY_FIGURES[2], "sweep.csv", _study_checkpoints)]
    written, skipped = [], []
    for name, fname, fn in inputs:
        if results is None:
            skipped.append((name, why_none))
            continue
        if not (results / fname).is_file():
            skipped.append((name, f"{results / fname} does not exist"))
            continue
        try:  # OverflowError: int(float("inf")) from a step of inf, a malformed file and not a crash
            written.append(fn(results, out, command))
        except NotApplicable as e:
            skipped.append((name, str(e)))
        except (ValueError, KeyError, TypeError, OverflowError, json.JSONDecodeError) as e:
            skipped.append((name, f"{results / fname} is malformed: {e}"))
    return written, skipped
