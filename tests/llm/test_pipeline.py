"""A miniature ``pipeline`` run (tiny sizes, 2 chains, both judges) checks summary.json, the CSVs the
figures read, the chain-level intervals and determinism; the README's tables match the reference."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest

from llm.config import PipelineConfig, PMConfig
from llm.evaluate import t_halfwidth
from llm.pipeline import run_pipeline
from llm.report import SECTIONS, render_report, replace_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(ROOT, "llm", "reference", "summary.json")
TINY = dict(n_layer=1, n_embd=16, n_head=2, methods=["online_ipo", "rl"],
            taus={"online_ipo": 0.1, "rl": 0.05}, seeds=2, sft_steps=20, pm_steps=10,
            pm_pairs=64, align_steps=4, align_batch_size=4, eval_every=2, eval_prompts=8, n_prompts=16,
            samples_per_prompt=2, pm_eval_prompts=8, checkpoint_every=2)


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _stable(summary):
    """The summary without what a second run cannot repeat: clock times and provenance."""
    s = json.loads(json.dumps(summary))
    for k in ("wall_time_s", "step_time_s", "provenance"):
        s.pop(k)
    return s


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "run"
    cfg = PipelineConfig(out=str(out), **TINY)
    return out, cfg, run_pipeline(cfg, progress=False)


def test_summary_holds_both_judges_chain_intervals_and_provenance(tiny_pipeline):
    out, cfg, summary = tiny_pipeline
    with open(out / "summary.json") as f:
        assert json.load(f) == json.loads(json.dumps(summary))
    assert summary["chains"] == 2 and summary["judges_run"] == ["pm", "gold"]
    labels = summary["labels"]
    assert labels == ["online_ipo", "rl", "online_ipo@gold", "rl@gold", "sft"]
    for key in ("win_matrix_gold", "win_matrix_pm"):
        m = np.array(summary[key]["mean"])
        # computed, not filled in: every off-diagonal entry is a probability strictly inside (0, 1)
        # and not the 1/2 a made-up matrix would hold (antisymmetry itself is by construction)
        off = m[~np.eye(len(m), dtype=bool)]
        assert np.all((off > 0) & (off < 1) & (off != 0.5)), m
        per_chain = np.array(summary[key]["per_chain"])  # (k, k, chains)
        assert per_chain.shape == (5, 5, 2)
        np.testing.assert_allclose(per_chain.mean(-1), m, atol=1e-12)
    s = labels.index("sft")
    for judge in ("pm", "gold"):
        for method in cfg.methods:
            w = summary["winrate_vs_sft"][judge][method]
            row = labels.index(method if judge == "pm" else f"{method}@gold")
            assert w["per_chain"] == summary["win_matrix_gold"]["per_chain"][row][s]
            # the t interval over chains, ddof = 1, by hand: t_{.975, 1} = 12.706
            v = np.array(w["per_chain"])
            assert w["ci95"] == pytest.approx(12.7062047 * v.std(ddof=1) / np.sqrt(2), rel=1e-6)
            assert w["lo"] == pytest.approx(w["mean"] - w["ci95"]) and 0 < w["eval_ci95"] < 0.5
    # the stated orderings: t-tests by scipy's own routine, Holm written out here
    from scipy.stats import ttest_1samp

    from llm.report import head_to_head
    rows = head_to_head(summary)
    m = len(cfg.methods)
    assert len(rows) == 2 * m * (m - 1) // 2 + m
    raw = []
    for r in rows:
        la, lb = ((r["a"], r["b"]) if r["judge"] in ("pm", "twins")
                  else (f"{r['a']}@gold", f"{r['b']}@gold"))
        v = summary["win_matrix_gold"]["per_chain"][labels.index(la)][labels.index(lb)]
        raw.append(ttest_1samp(v, 0.5).pvalue)
        assert r["p_value"] == pytest.approx(raw[-1], rel=1e-9)
    order = np.argsort(raw)
    holm = np.maximum.accumulate([min(1.0, (len(raw) - i) * raw[k]) for i, k in enumerate(order)])
    for i, k in enumerate(order):
        assert rows[k]["p_holm"] == pytest.approx(holm[i], rel=1e-9)
        assert rows[k]["separated"] == (holm[i] < 0.05)
    assert 0 <= summary["judges"]["gold_bt_fit"]["accuracy"]["mean"] <= 1
    for who in ("pm", "rm"):
        for k in ("accuracy", "calibration_error", "mean_abs_error", "brier"):
            assert len(summary["judges"][who][k]["per_chain"]) == 2
        assert sum(b["count"] for b in summary["reliability"][who]) == 2 * PMConfig().heldout_pairs
    assert summary["n_pm_eval_prompts"] == 8 and summary["config"]["pm_form"] == "residual"
    p = summary["provenance"]
    assert p["command"].startswith("python -m llm") and p["date_utc"] and p["machine"]
    assert {"python", "torch", "transformers"} <= set(p["versions"])

    curves = _csv(out / "curves.csv")
    assert list(curves[0]) == ["method", "tau", "beta", "seed", "step", "winrate_vs_sft", "judge"]
    ipo = [r for r in curves if r["method"] == "online_ipo" and r["seed"] == "0" and r["judge"] == "gold"]
    assert [int(r["step"]) for r in ipo] == [0, 2, 4]
    keys = [(r["method"], r["judge"], r["seed"], r["step"]) for r in curves]
    assert len(keys) == len(set(keys))
    # no draw is shared between runs: the step-0 points (policy = SFT) all differ
    step0 = [r["winrate_vs_sft"] for r in curves if r["step"] == "0"]
    assert len(step0) == 8 and len(set(step0)) == 8


def test_pipeline_is_deterministic_and_resumes_to_the_same_summary(tiny_pipeline, tmp_path):
    _, cfg, summary = tiny_pipeline
    again = run_pipeline(dataclasses.replace(cfg, out=str(tmp_path / "again")), progress=False)
    assert _stable(again) == {**_stable(summary), "config": _stable(again)["config"]}
    resumed = run_pipeline(dataclasses.replace(cfg, resume=True), progress=False)
    assert _stable(resumed)["win_matrix_gold"] == _stable(summary)["win_matrix_gold"]


def test_report_renders_every_section_and_replaces_blocks(tiny_pipeline):
    _, _, summary = tiny_pipeline
    text = render_report(summary)
    assert "online IPO" in text and "gold judge (RL: BT fit of gold)" in text
    w = summary["winrate_vs_sft"]["gold"]["rl"]
    assert f"| RL | {summary['winrate_vs_sft']['pm']['rl']['mean']:.3f} ± " in text
    assert f"{w['mean']:.3f} ± {w['ci95']:.3f}" in text
    doc = "a\n<!-- llm-report:winrate -->\nstale\n<!-- /llm-report:winrate -->\nb\n"
    new = replace_blocks(doc, summary)
    assert "stale" not in new and new.startswith("a\n") and new.endswith("-->\nb\n")
    assert replace_blocks(new, summary) == new


def test_t_halfwidth_by_hand():
    # values 1, 2, 3: s = 1, t_{.975, 2} = 4.302653; half-width = 4.302653 / sqrt(3)
    assert t_halfwidth([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert np.isnan(t_halfwidth([0.5]))


# block tag -> the committed reference summary that renders those blocks, and the files that hold them
REFERENCES = {None: (REFERENCE, [os.path.join("docs", "llm.md"), os.path.join("llm", "README.md")]),
              "study": (os.path.join(ROOT, "llm", "reference", "study", "summary.json"),
                        [os.path.join("llm", "README.md")]),
              "studygold": (os.path.join(ROOT, "llm", "reference", "study", "summary_gold.json"),
                            [os.path.join("llm", "README.md")]),
              "judges": (os.path.join(ROOT, "llm", "reference", "judges", "summary.json"),
                         [os.path.join("llm", "README.md")]),
              "taufair": (os.path.join(ROOT, "llm", "reference", "tau_fair", "summary.json"),
                          [os.path.join("llm", "README.md")]),
              "taufair20": (os.path.join(ROOT, "llm", "reference", "tau_fair_gold20", "summary.json"),
                            [os.path.join("llm", "README.md")])}


@pytest.mark.parametrize("tag, readme", [(t, r) for t, (_, files) in REFERENCES.items() for r in files])
def test_readme_tables_equal_the_report_of_the_committed_reference(readme, tag):
    with open(os.path.join(ROOT, readme)) as f:
        text = f.read()
    marker = "<!-- llm-report:" + (f"{tag}." if tag else "")
    assert marker in text, f"{readme} has no {marker} block"
    path = REFERENCES[tag][0]
    with open(path) as f:
        summary = json.load(f)
    rel, flag = os.path.relpath(path, ROOT), f" --tag {tag}" if tag else ""
    assert replace_blocks(text, summary, tag) == text, (
        f"{readme}'s LLM tables differ from `python -m llm report {rel}{flag}`; "
        f"re-render them with `python -m llm report {rel}{flag} --write {readme}`")


def test_tagged_blocks_are_rendered_only_from_their_own_summary(tiny_pipeline):
    _, _, summary = tiny_pipeline
    doc = ("<!-- llm-report:winrate -->\nSTALE-UNTAGGED\n<!-- /llm-report:winrate -->\n"
           "<!-- llm-report:study.winrate -->\nSTALE-STUDY\n<!-- /llm-report:study.winrate -->\n")
    untagged, tagged = replace_blocks(doc, summary), replace_blocks(doc, summary, "study")
    assert "STALE-UNTAGGED" not in untagged and "STALE-STUDY" in untagged
    assert "STALE-UNTAGGED" in tagged and "STALE-STUDY" not in tagged


@pytest.mark.parametrize("doc, tag, message", [
    ("<!-- llm-report:winrate -->\nx\n<!-- /llm-report:order -->\n", None, "no matching"),
    ("<!-- llm-report:winrate -->\n<!-- llm-report:study.order -->\nx\n<!-- /llm-report:study.order -->\n"
     "<!-- /llm-report:winrate -->\n", None, "no matching"),
    ("<!-- llm-report:winrate -->\nx\n<!-- /llm-report:winrate -->\n", "stdy", "no <!-- llm-report:stdy."),
])
def test_broken_or_untargeted_blocks_are_refused_not_skipped(tiny_pipeline, doc, tag, message):
    _, _, summary = tiny_pipeline
    with pytest.raises(ValueError, match=message):
        replace_blocks(doc, summary, tag)


def test_reference_summary_records_where_it_comes_from():
    with open(REFERENCE) as f:
        summary = json.load(f)
    p = summary["provenance"]
    assert len(p["git_commit"]) == 40 and p["command"].startswith("python -m llm pipeline")
    assert summary["chains"] >= 3 and set(summary["judges_run"]) == {"pm", "gold"}
    assert set(SECTIONS) >= {"winrate", "order", "judges"}


def _chain(summary, i):
    """Chain i's numbers: judge metrics and win rates against SFT."""
    judges = {who: {k: v["per_chain"][i] for k, v in summary["judges"][who].items()} for who in ("pm", "rm")}
    if "winrate_vs_sft" not in summary:
        return judges
    return judges, {(j, m): w["per_chain"][i]
                    for j, d in summary["winrate_vs_sft"].items() for m, w in d.items()}


def test_seed_shifts_the_chains_chain_i_trains_with_seed_plus_i(tiny_pipeline, tmp_path):
    """``--seed 1 --seeds 1`` is chain 1 of ``--seed 0 --seeds 2``: the whole chain (SFT, PM/RM,
    alignment, evaluation streams) derives from the chain's seed, so --seed is not ignored."""
    _, cfg, summary = tiny_pipeline
    shifted = run_pipeline(dataclasses.replace(cfg, out=str(tmp_path / "s1"), seed=1, seeds=1),
                           progress=False)
    assert _chain(shifted, 0) == _chain(summary, 1)
    assert _chain(shifted, 0) != _chain(summary, 0)


def test_judges_stage_trains_the_pipelines_judges_and_pairs_pm_with_rm(tiny_pipeline, tmp_path):
    from llm.config import JudgesConfig
    from llm.judges import run_judges

    _, cfg, summary = tiny_pipeline
    shape = {k: getattr(cfg, k) for k in ("n_layer", "n_embd", "n_head", "sft_steps", "pm_steps", "pm_pairs")}
    out = tmp_path / "judges"
    judges = run_judges(JudgesConfig(out=str(out), seeds=2, **shape), progress=False)
    assert [_chain(judges, i) for i in (0, 1)] == [_chain(summary, i)[0] for i in (0, 1)]
    d = judges["pm_minus_rm_accuracy"]
    diff = np.subtract(judges["judges"]["pm"]["accuracy"]["per_chain"],
                       judges["judges"]["rm"]["accuracy"]["per_chain"])
    assert d["per_chain"] == diff.tolist() and d["ci95"] == pytest.approx(t_halfwidth(diff))
    rows = _csv(out / "judges.csv")
    assert [(r["seed"], r["judge"]) for r in rows] == [("0", "pm"), ("0", "rm"), ("1", "pm"), ("1", "rm")]
    assert float(rows[3]["accuracy"]) == judges["judges"]["rm"]["accuracy"]["per_chain"][1]
    with open(out / "summary.json") as f:
        assert json.load(f) == json.loads(json.dumps(judges))
    text = render_report(judges, ("provenance", "judges"))
    assert "2 chains, seeds 0-1" in text and "PM minus RM accuracy" in text


def test_judges_stage_refuses_one_chain(tmp_path, capsys):
    from llm.cli import main

    assert main(["judges", "--out", str(tmp_path / "j"), "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and err.count("\n") == 1 and not (tmp_path / "j").exists()


def test_features_tool_resamples_the_evaluation_exactly(tiny_pipeline, tmp_path, capsys):
    """`llm features` samples each policy with the evaluation's own streams: its gold win rates
    against SFT equal the summary's per-chain numbers exactly, so its features describe the very
    responses the summary scored."""
    from llm.cli import main
    from llm.features import policy_features, render_features

    out, cfg, summary = tiny_pipeline
    data = policy_features(str(out))
    policies = [r for r in data["rows"] if r["method"] != "sft"]
    assert len(policies) == cfg.seeds * len(cfg.judges) * len(cfg.methods)
    for r in policies:
        assert r["win_vs_sft"] == summary["winrate_vs_sft"][r["judge"]][r["method"]]["per_chain"][r["chain"]]
        assert 0 <= r["no_content"] <= 1 and r["length"] >= 0
    doc = tmp_path / "doc.md"
    start, end = "<!-- llm-report:rlfeatures.features -->", "<!-- /llm-report:rlfeatures.features -->"
    doc.write_text(f"a\n{start}\nold\n{end}\nb\n")
    assert main(["features", str(out), "--json", str(tmp_path / "f.json"), "--write", str(doc)]) == 0
    assert render_features(data) in doc.read_text() and json.loads((tmp_path / "f.json").read_text()) == data
    capsys.readouterr()
    assert main(["features", str(tmp_path / "nothing")]) == 2  # no run there: one line, exit 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_llm_readme_rl_features_block_is_the_render_of_the_committed_features():
    from llm.features import render_features

    with open(os.path.join(ROOT, "llm", "reference", "tau_fair", "features.json")) as f:
        data = json.load(f)
    with open(os.path.join(ROOT, "llm", "README.md"), encoding="utf-8") as f:
        text = f.read()
    start, end = "<!-- llm-report:rlfeatures.features -->", "<!-- /llm-report:rlfeatures.features -->"
    block = text.split(start)[1].split(end)[0].strip()
    assert block == render_features(data).strip()


def test_a_gold_only_run_trains_no_learned_judge(tiny_pipeline, tmp_path):
    """--judges gold: no PM or RM is trained (the chain costs SFT + alignment only), the summary has
    no PM matrix, and the gold numbers equal the both-conditions run's gold condition (same seeds:
    the gold condition never reads the PM)."""
    from llm.report import SECTIONS, render_report

    _, _, both = tiny_pipeline
    out = tmp_path / "gold"
    summary = run_pipeline(PipelineConfig(out=str(out), **{**TINY, "judges": ["gold"]}), progress=False)
    assert not (out / "chain0" / "pm").exists() and (out / "chain0" / "sft").exists()
    assert summary["win_matrix_pm"] is None and summary["winrate_vs_sft_pm_judge"] is None
    assert summary["judges_run"] == ["gold"] and summary["reliability"] == {}
    for m in TINY["methods"]:
        assert summary["winrate_vs_sft"]["gold"][m] == both["winrate_vs_sft"]["gold"][m]
    text = render_report(summary, SECTIONS)
    assert "No learned judge" in text and "gold judge" in text
