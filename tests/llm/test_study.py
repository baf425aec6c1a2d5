"""The ``study`` protocol on a tiny configuration: sweep -> selection on validation -> chains -> test."""

import csv
import dataclasses

import pytest

from llm.cli import main
from llm.config import StudyConfig
from llm.report import render_section
from llm.study import QUICK, apply_preset, run_study, select_settings


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_selection_takes_the_best_validation_point_and_never_step_zero():
    rows = [{"method": "a", "tau": 0.1, "beta": 0.0, "step": 0, "winrate_vs_sft": 0.9},
            {"method": "a", "tau": 0.1, "beta": 0.0, "step": 2, "winrate_vs_sft": 0.6},
            {"method": "a", "tau": 0.5, "beta": 0.0, "step": 2, "winrate_vs_sft": 0.7},
            {"method": "a", "tau": 0.5, "beta": 0.0, "step": 4, "winrate_vs_sft": 0.7},
            {"method": "b", "tau": 0.1, "beta": 0.5, "step": 4, "winrate_vs_sft": 0.55}]
    best = select_settings(rows)
    assert (best["a"]["tau"], best["a"]["step"]) == (0.5, 2)  # a tie goes to the earlier checkpoint
    assert best["b"]["beta"] == 0.5


def test_selected_section_names_selections_at_a_grid_edge_or_the_last_checkpoint():
    from llm.report import render_section

    s = {"config": {"taus": ["online_ipo=0.01,0.1,1", "rl=0.5,0.05"], "align_steps": 100, "eval_every": 50,
                    "valid_prompts": 8},
         "selected": {"online_ipo": {"tau": 0.1, "beta": 0.1, "step": 50, "winrate_vs_sft": 0.6},
                      "rl": {"tau": 0.5, "beta": 0.1, "step": 100, "winrate_vs_sft": 0.7}}}
    text = render_section(s, "selected")
    assert "end of its grid (the best tau may lie beyond it): RL (highest)." in text
    assert "last checkpoint (longer training may do better): RL." in text
    s["selected"]["rl"].update(tau=0.05, step=50)
    text = render_section(s, "selected")
    assert "beyond it): RL (lowest)." in text and "do better): none." in text


def test_quick_preset_says_what_it_changes():
    cfg, changes = apply_preset(StudyConfig(out="x"))
    assert cfg.chains == QUICK["chains"] and cfg.taus == QUICK["taus"]
    assert any(c.startswith("--taus ") for c in changes)
    same, none = apply_preset(StudyConfig(out="x", preset="paper"))
    assert none == [] and same == StudyConfig(out="x", preset="paper")


def test_tiny_study_selects_reruns_and_resumes(tmp_path):
    cfg = StudyConfig(out=str(tmp_path / "study"), preset="paper", n_layer=1, n_embd=16, n_head=2,
                      methods=["online_ipo", "rl"], taus=["online_ipo=0.1,0.5", "rl=0.05"], chains=2,
                      sft_steps=20, pm_steps=10, pm_pairs=64, align_steps=4, align_batch_size=4, eval_every=2,
                      valid_prompts=8, n_prompts=16, samples_per_prompt=2, checkpoint_every=2)
    summary = run_study(cfg, progress=False)
    sweep = _csv(tmp_path / "study" / "sweep.csv")
    assert {(r["method"], float(r["tau"])) for r in sweep} == {("online_ipo", 0.1), ("online_ipo", 0.5),
                                                                ("rl", 0.05)}
    selected = {r["method"]: r for r in _csv(tmp_path / "study" / "selected.csv")}
    best_ipo = max((r for r in sweep if r["method"] == "online_ipo" and r["step"] != "0"),
                   key=lambda r: float(r["winrate_vs_sft"]))
    assert float(selected["online_ipo"]["valid_winrate_vs_sft"]) == float(best_ipo["winrate_vs_sft"])
    assert summary["chains"] == 2 and summary["labels"] == ["online_ipo", "rl", "sft"]
    # the report's provenance names the selected taus (a study's --taus are grids, not one tau each)
    taus = f"taus online IPO {float(selected['online_ipo']['tau']):g}, RL {float(selected['rl']['tau']):g};"
    assert taus in render_section(summary, "provenance")
    sel, ipo = render_section(summary, "selected"), selected["online_ipo"]
    assert (f"| online IPO | {float(ipo['tau']):g} (0.1,0.5) | — | {ipo['step']} | "
            f"{float(ipo['valid_winrate_vs_sft']):.3f} |" in sel)
    final = _csv(tmp_path / "study" / "final_matrix.csv")
    assert {r["judge"] for r in final} == {"gold", "pm"} and len(final) == 2 * 9
    vs_rl = _csv(tmp_path / "study" / "sweep_vs_rl.csv")
    assert len(vs_rl) == 3 * 2 and {r["opponent"] for r in vs_rl} == {"rl", "sft"}
    # the figures package draws the paper's figures from the study folder, against the selected RL
    from pathlib import Path

    from figures.llm_figures import STUDY_FIGURES, llm_figures

    (tmp_path / "fig").mkdir()
    written, skipped = llm_figures(Path(cfg.out), tmp_path / "fig", "test")
    drawn = {n for n, _ in written}
    assert set(STUDY_FIGURES) - {"fig7b_llm_study_ipo_md_beta"} <= drawn  # no ipo_md in this tiny study
    assert "fig6a_llm_win_matrix" in drawn
    assert any(n == "fig7b_llm_study_ipo_md_beta" and "no ipo_md rows" in why for n, why in skipped)
    for n in drawn:
        assert (tmp_path / "fig" / f"{n}.png").stat().st_size > 1000
    fig_rows = _csv(tmp_path / "fig" / "fig7a_llm_study_vs_tau.csv")
    assert {(r["opponent"], r["method"], float(r["tau"]), float(r["winrate"])) for r in fig_rows} == {
        (r["opponent"], r["method"], float(r["tau"]), float(r["winrate"])) for r in vs_rl
        if not (r["opponent"] == "rl" and r["method"] == "rl")}
    # resuming a finished study reuses every run and gives the same matrices
    again = run_study(dataclasses.replace(cfg, resume=True), progress=False)
    assert again["win_matrix_gold"] == summary["win_matrix_gold"]


@pytest.mark.parametrize("argv, message", [
    (["--methods", "rl", "--taus", "online_ipo=0.1"], "lacks a grid for"),
    (["--taus", "online_ipo=x"], "--taus online_ipo=x: tau must be a number, got 'x'"),
    (["--taus", "online_ipo"], "--taus entries must be METHOD=VALUE[,VALUE...], got 'online_ipo'"),
    (["--betas", "2"], "--betas 2: beta must lie in [0, 1], got beta = 2.0"),
    (["--methods", "online_ipo", "--taus", "online_ipo=inf"],
     "--taus online_ipo=inf: tau > 0 required, got tau = inf"),
    (["--methods", "no_such"], "unknown method 'no_such'"),
])
def test_study_bad_flags_are_one_line_usage_errors(tmp_path, capsys, argv, message):
    rc = main(["study", "--out", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "s").exists()


def test_study_help_lists_the_protocol(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    assert "--preset" in capsys.readouterr().out
