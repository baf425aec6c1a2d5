"""A miniature ``pipeline`` run (tiny sizes, sweep on) checks the files the figures code reads."""

import csv
import json

from llm.config import PipelineConfig
from llm.pipeline import run_pipeline


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_pipeline_writes_summary_curves_and_sweeps(tmp_path):
    out = tmp_path / "pipe"
    cfg = PipelineConfig(out=str(out), n_layer=1, n_embd=16, n_head=2, methods=["online_ipo", "nash_md_pg"],
                         taus=["online_ipo=0.1", "nash_md_pg=0.02"],
                         seeds=2, sft_steps=20, pm_steps=10, pm_pairs=64, align_steps=4, align_batch_size=4,
                         eval_every=2, eval_prompts=8, n_prompts=16, sweep=True, sweep_taus=["0.1", "0.5"],
                         sweep_betas=["0.0", "1.0"], checkpoint_every=2)
    summary = run_pipeline(cfg, progress=False)
    with open(out / "summary.json") as f:
        assert json.load(f) == json.loads(json.dumps(summary))
    for key in ("config", "methods", "win_matrix_gold_mean", "win_matrix_gold_std", "win_matrix_pm_mean",
                "win_matrix_pm_std", "winrate_vs_sft", "pm_accuracy", "pm_calibration_error", "step_time_s",
                "wall_time_s"):
        assert key in summary, key
    assert summary["methods"] == ["online_ipo", "nash_md_pg"]
    labels = summary["matrix_labels"]
    assert labels == ["online_ipo", "nash_md_pg", "sft"]
    for key in ("win_matrix_gold_mean", "win_matrix_pm_mean"):
        m = summary[key]
        assert len(m) == 3 and all(len(row) == 3 for row in m)
        # computed, not filled in: every off-diagonal entry is a probability strictly inside
        # (0, 1) and not the 1/2 a made-up matrix would hold (antisymmetry is by construction)
        off = [m[i][j] for i in range(3) for j in range(3) if i != j]
        assert all(0 < v < 1 for v in off) and all(v != 0.5 for v in off), m
    for method in summary["methods"]:
        w = summary["winrate_vs_sft"][method]
        assert len(w["per_seed"]) == 2 and abs(w["mean"] - sum(w["per_seed"]) / 2) < 1e-12
        assert w["per_seed"][0] != w["per_seed"][1]  # two seeds, two different runs
        assert w["mean"] == summary["win_matrix_gold_mean"][labels.index(method)][labels.index("sft")]
        assert summary["step_time_s"][method] > 0

    curves = _csv(out / "curves.csv")
    assert list(curves[0]) == ["method", "tau", "beta", "seed", "step", "winrate_vs_sft"]
    ipo = [r for r in curves if r["method"] == "online_ipo" and r["seed"] == "0" and r["tau"] == "0.1"]
    assert [int(r["step"]) for r in ipo] == [0, 2, 4]
    keys = [(r["method"], r["tau"], r["beta"], r["seed"], r["step"]) for r in curves]
    assert len(keys) == len(set(keys))
    tau_rows = _csv(out / "tau_sweep.csv")
    assert list(tau_rows[0]) == ["method", "tau", "seed", "winrate_vs_sft"]
    assert sorted((r["method"], float(r["tau"])) for r in tau_rows) == [
        ("online_dpo", 0.1), ("online_dpo", 0.5), ("online_ipo", 0.1), ("online_ipo", 0.5)]
    # the sweep point equal to the main online_ipo run (tau 0.1, seed 0) reuses it
    main_ipo = [r for r in tau_rows if r["method"] == "online_ipo" and r["tau"] == "0.1"][0]
    assert float(main_ipo["winrate_vs_sft"]) == float(ipo[-1]["winrate_vs_sft"])
    beta_rows = _csv(out / "beta_sweep.csv")
    assert list(beta_rows[0]) == ["method", "beta", "tau", "seed", "winrate_vs_sft"]
    assert [float(r["beta"]) for r in beta_rows] == [0.0, 1.0]

    # --resume on a finished pipeline skips every stage and rewrites the same matrices
    again = run_pipeline(PipelineConfig(**{**cfg.__dict__, "resume": True}), progress=False)
    assert again["win_matrix_gold_mean"] == summary["win_matrix_gold_mean"]
