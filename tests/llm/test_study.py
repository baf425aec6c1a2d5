"""The ``study`` protocol on a tiny configuration: sweep -> selection on validation -> chains -> test."""

import csv
import dataclasses
import json
import os

import pytest

from llm.cli import main
from llm.config import MAX_SEED, StudyConfig
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


def test_rl_criterion_selects_by_win_rate_against_the_selected_rl_checkpoint():
    rows = [{"method": "rl", "tau": 0.1, "beta": 0.0, "step": 2, "winrate_vs_sft": 0.7},
            {"method": "rl", "tau": 0.5, "beta": 0.0, "step": 2, "winrate_vs_sft": 0.8},
            # a: best against SFT at tau 0.1, best against RL at tau 0.5 step 4
            {"method": "a", "tau": 0.1, "beta": 0.0, "step": 0, "winrate_vs_sft": 0.5, "winrate_vs_rl": 0.9},
            {"method": "a", "tau": 0.1, "beta": 0.0, "step": 2, "winrate_vs_sft": 0.9, "winrate_vs_rl": 0.4},
            {"method": "a", "tau": 0.5, "beta": 0.0, "step": 2, "winrate_vs_sft": 0.6, "winrate_vs_rl": 0.5},
            {"method": "a", "tau": 0.5, "beta": 0.0, "step": 4, "winrate_vs_sft": 0.7, "winrate_vs_rl": 0.6}]
    by_rl, by_sft = select_settings(rows, "rl"), select_settings(rows, "sft")
    assert (by_rl["a"]["tau"], by_rl["a"]["step"], by_rl["a"]["criterion"]) == (0.5, 4, "rl")
    assert (by_sft["a"]["tau"], by_sft["a"]["step"], by_sft["a"]["criterion"]) == (0.1, 2, "sft")
    assert by_rl["rl"]["tau"] == by_sft["rl"]["tau"] == 0.5 and by_rl["rl"]["criterion"] == "sft"  # RL vs SFT
    with pytest.raises(ValueError, match="no winrate_vs_rl"):  # the rl criterion needs the win rates vs RL
        select_settings([{**rows[3], "winrate_vs_rl": None}], "rl")


@pytest.mark.parametrize("taus", [
    {"online_ipo": [0.01, 0.1, 1.0], "rl": [0.5, 0.05]},  # as config.json records the typed value
    ["online_ipo=0.01,0.1,1", "rl=0.5,0.05"],  # as a study from before the flags were typed did
])
def test_selected_section_names_selections_at_a_grid_edge_or_the_last_checkpoint(taus):
    s = {"config": {"taus": taus, "align_steps": 100, "eval_every": 50, "valid_prompts": 8},
         "selected": {"online_ipo": {"tau": 0.1, "beta": 0.1, "step": 50, "winrate_vs_sft": 0.6},
                      "rl": {"tau": 0.5, "beta": 0.1, "step": 100, "winrate_vs_sft": 0.7}}}
    text = render_section(s, "selected")
    assert "| 0.1 (0.01,0.1,1) |" in text and "| 0.5 (0.5,0.05) |" in text
    assert "end of its grid (the best tau may lie beyond it): RL (highest)." in text
    assert "last checkpoint (longer training may do better): RL." in text
    s["selected"]["rl"].update(tau=0.05, step=50)
    text = render_section(s, "selected")
    assert "beyond it): RL (lowest)." in text and "do better): none." in text


def test_quick_preset_says_what_it_changes():
    cfg, changes = apply_preset(StudyConfig(out="x"))
    assert cfg.chains == QUICK["chains"] and cfg.taus == QUICK["taus"]
    assert "--betas 0.125 0.5 (given 0 0.125 0.25 0.5)" in changes  # in the flags' words
    assert any(c.startswith("--taus online_ipo=0.005,0.02,0.1 ipo_md=0.005,0.02,0.1 ") for c in changes)
    same, none = apply_preset(StudyConfig(out="x", preset="paper"))
    assert none == [] and same == StudyConfig(out="x", preset="paper")


def test_tiny_study_selects_reruns_and_resumes(tmp_path):
    cfg = StudyConfig(out=str(tmp_path / "study"), preset="paper", n_layer=1, n_embd=16, n_head=2,
                      methods=["online_ipo", "rl"], taus={"online_ipo": (0.1, 0.5), "rl": (0.05,)}, chains=2,
                      sft_steps=20, pm_steps=10, pm_pairs=64, align_steps=4, align_batch_size=4, eval_every=2,
                      valid_prompts=8, n_prompts=16, samples_per_prompt=2, checkpoint_every=2, gold_chains=3)
    summary = run_study(cfg, progress=False)
    out = tmp_path / "study"
    sweep = _csv(out / "sweep.csv")
    assert {(r["method"], float(r["tau"])) for r in sweep} == {("online_ipo", 0.1), ("online_ipo", 0.5),
                                                                ("rl", 0.05)}
    selected = {r["method"]: r for r in _csv(out / "selected.csv")}
    # the default criterion is the paper's: online IPO by its win rate against the selected RL checkpoint
    best_ipo = max((r for r in sweep if r["method"] == "online_ipo" and r["step"] != "0"),
                   key=lambda r: float(r["winrate_vs_rl"]))
    assert float(selected["online_ipo"]["valid_winrate_vs_rl"]) == float(best_ipo["winrate_vs_rl"])
    assert (selected["online_ipo"]["criterion"], selected["rl"]["criterion"]) == ("rl", "sft")
    assert {r["winrate_vs_rl"] for r in sweep if r["method"] == "rl"} == {""}
    assert summary["selection"] == {"seed": 1000, "against": "rl", "folder": "select",
                                    "test_chain_seeds": [0, 2]}
    assert summary["chains"] == 2 and summary["labels"] == ["online_ipo", "rl", "sft"]
    # selection chain disjoint from the test chains: every selection run has --select-seed, every test
    # run its chain's seed, and no test chain evaluated a sweep run (nor anything of the selection chain)
    configs = [(p, json.loads(p.read_text())) for p in out.rglob("config.json")  # run folders' configs
               if p.parent != out and (p.parent / "done.json").exists()]
    rl = selected["rl"]
    rl_rerun = int(rl["step"]) != cfg.align_steps  # the selected RL checkpoint, rerun on the selection chain
    # select: sft, pm, 3 sweep runs (+ RL's checkpoint); chains 0-1: sft, pm, 2 selected, 2 gold;
    # chain 2: sft, 2 gold
    assert len(configs) == 5 + rl_rerun + 2 * 6 + 3
    rl_path = (out / "select" / "selected" / f"rl_tau{float(rl['tau']):g}_beta0.125_step{rl['step']}"
               if rl_rerun else out / "select" / "sweep" / f"rl_tau{float(rl['tau']):g}_beta0.125") / "model"
    assert {c["eval_vs"] for p, c in configs if "sweep" in p.parts and c["method"] == "online_ipo"} == {
        str(rl_path)}
    assert {c["seed"] for p, c in configs if "select" in p.relative_to(out).parts} == {1000}
    for p, c in configs:
        top = p.relative_to(out).parts[0]
        if top != "select":
            assert c["seed"] == int(top.removeprefix("chain")), p
    for c, name in [(0, "test_eval.json"), (1, "test_eval.json"), (0, "test_eval_gold.json"),
                    (2, "test_eval_gold.json")]:
        policies = json.loads((out / f"chain{c}" / name).read_text())["policies"]
        assert policies and all(os.path.realpath(path).startswith(str(out / f"chain{c}") + os.sep)
                                and "sweep" not in path for path in policies.values()), policies
    # the gold condition: 3 chains, the first two sharing the learned-PM chains' SFT, none training a PM
    gold = json.loads((out / "summary_gold.json").read_text())
    assert gold["chains"] == 3 and gold["judges_run"] == ["gold"]
    assert gold["selection"] == summary["selection"]
    assert gold["labels"] == ["online_ipo@gold", "rl@gold", "sft"] and gold["win_matrix_pm"] is None
    assert (out / "chain1" / "pm").is_dir() and not (out / "chain2" / "pm").exists()
    ipo = selected["online_ipo"]
    run = f"online_ipo_tau{float(ipo['tau']):g}_beta{float(ipo['beta']):g}_step{ipo['step']}"
    assert json.loads((out / "chain0" / "gold" / run / "config.json").read_text())["sft"] == str(
        out / "chain0" / "sft" / "model")
    assert "gold only, no PM or RM" in render_section(gold, "provenance")
    assert len(_csv(out / "final_matrix_gold.csv")) == 9
    # the report's provenance names the selected taus (a study's --taus are grids, not one tau each)
    taus = f"taus online IPO {float(selected['online_ipo']['tau']):g}, RL {float(selected['rl']['tau']):g};"
    assert taus in render_section(summary, "provenance")
    sel, ipo = render_section(summary, "selected"), selected["online_ipo"]
    assert (f"| online IPO | {float(ipo['tau']):g} (0.1,0.5) | — | {ipo['step']} | "
            f"{float(ipo['valid_winrate_vs_sft']):.3f} | **{float(ipo['valid_winrate_vs_rl']):.3f}** |"
            in sel)
    assert "seed 1000; the test chains' seeds are 0-2" in sel and "the paper's criterion" in sel
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
    (["--preset", "paper", "--chains", "3", "--select-seed", "2"],
     "--select-seed 2 is the seed of test chain 2 (--seed + 2); the selection chain must be disjoint"),
    (["--seed", "10", "--select-seed", "29"], "--select-seed 29 is the seed of test chain 19"),  # 20 gold
    (["--preset", "paper", "--select-seed", "1000", "--gold-chains", "1001"],
     "--gold-chains 1001: at most 1000"),
    (["--select-seed", "-2"],
     f"--select-seed: a seed (or -1: --seed + 1000) must lie in [0, {MAX_SEED}], got -2"),
    (["--select-seed", str(2**33)],
     f"--select-seed: a seed (or -1: --seed + 1000) must lie in [0, {MAX_SEED}], got {2**33}"),
    (["--gold-chains", "-1"], "--gold-chains must be >= 0, got -1"),
    (["--seed", str(MAX_SEED - 5), "--preset", "paper", "--chains", "1"],
     "--select-seed -1 means --seed + 1000 = 4294968290, which exceeds"),
    (["--methods", "online_ipo", "--taus", "online_ipo=0.1"],
     "--select-against rl selects against the selected RL"),
])
def test_study_bad_flags_are_one_line_usage_errors(tmp_path, capsys, argv, message):
    rc = main(["study", "--out", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "s").exists()


def test_study_help_lists_the_protocol(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    assert "--preset" in text and "--select-seed" in text and "--gold-chains" in text
    assert "--select-against {rl,sft}" in text
