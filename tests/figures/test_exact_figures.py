"""The enumerable-task figures, drawn from a tiny ``python -m llm exact`` run."""

from __future__ import annotations

import csv
import json

import pytest

from figures.exact_figures import EXACT_FIGURES, exact_figures, kl_curve_data, vs_rl_data


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from llm.exact import ExactConfig, run_exact

    out = tmp_path_factory.mktemp("exact") / "run"
    run_exact(ExactConfig(out=str(out), preset="tiny"), progress_bar=False)
    return out


def test_three_figures_with_their_numbers(tiny_run, tmp_path):
    written = exact_figures(tiny_run, tmp_path, "cmd")
    assert [name for name, _ in written] == list(EXACT_FIGURES)
    for name in EXACT_FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000 and (tmp_path / f"{name}.pdf").exists()
    summary = json.loads((tiny_run / "summary.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "exact_kl.csv")))
    # the CSV holds exactly the summary's curve, per method and rho
    e = summary["methods"]["1"]["online_ipo"]["test"]["curve"]
    mine = [float(r["kl_to_nash_mean"]) for r in rows if r["rho"] == "1" and r["method"] == "online_ipo"]
    assert mine == [p["mean"] for p in e["kl_to/nash"]]
    # predictions: online IPO ends at pi* (0), RL at the RLHF optimum's KL to pi*
    _, panels = kl_curve_data(summary)
    pred = {m: p for _, lines in panels[-1:] for m, _, _, _, p in lines}
    assert pred["online_ipo"] == 0.0
    assert pred["rl"] == summary["targets"]["1"]["test"]["kl/rlhf||nash"]["mean"] > 0
    rows, lines = vs_rl_data(summary)
    assert {r["method"] for r in rows} == {"online_ipo", "nash_md_pg"} and len(rows) == 4


def test_cli_skips_exact_without_results(tmp_path, monkeypatch):
    from figures.cli import main

    monkeypatch.chdir(tmp_path)  # no llm/reference/exact here
    assert main(["--only", "exact", "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    assert "exact_kl" in (tmp_path / "f" / "README.md").read_text()  # listed as skipped, with the reason
    assert not (tmp_path / "f" / "exact_kl.png").exists()
    with pytest.raises(SystemExit) as e:
        main(["--only", "exact", "--exact-results", str(tmp_path), "--out", str(tmp_path / "g")])
    assert e.value.code == 2
