"""``python -m llm compare``: bit-for-bit, within-interval and ordering checks on the committed
reference summary and perturbed copies of it (each check must be able to fail)."""

import copy
import json
import os

import pytest

from llm.cli import main
from llm.compare import compare_summaries, render_comparison
from llm.report import head_to_head, read_summary, replace_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(ROOT, "llm", "reference", "summary.json")


@pytest.fixture(scope="module")
def ref():
    with open(REFERENCE) as f:
        return json.load(f)


def _save(tmp_path, summary, name="run"):
    path = tmp_path / name / "summary.json"
    path.parent.mkdir()
    path.write_text(json.dumps(summary))
    return str(path.parent)


def test_a_summary_reproduces_itself_bit_for_bit_even_with_other_clock_and_provenance(ref):
    run = copy.deepcopy(ref)
    run["wall_time_s"] += 100.0
    run["step_time_s"]["rl"] *= 2
    run["provenance"]["date_utc"] = "2030-01-01 00:00:00"
    run["config"]["out"] = "elsewhere"
    run["config"]["threads"] = 2  # where and how a run is written is not a result
    c = compare_summaries(ref, run)
    assert c["bit_for_bit"] and c["reproduces"] and c["differing"] == 0 and c["numbers"] > 1000
    assert all(w["inside"] for w in c["winrates"]) and all(o["kept"] and o["separated_again"]
                                                            for o in c["orderings"])
    # the orderings the reference states are its Holm-separated head-to-heads (report.head_to_head)
    assert len(c["orderings"]) == sum(r["separated"] for r in head_to_head(ref)) >= 1


def test_a_round_off_difference_is_not_bit_for_bit_but_within_the_intervals(ref):
    run = copy.deepcopy(ref)
    run["judges"]["pm"]["brier"]["per_chain"][0] += 1e-12
    c = compare_summaries(ref, run)
    assert not c["bit_for_bit"] and c["differing"] == 1
    assert c["max_abs_diff"] == pytest.approx(1e-12, rel=1e-3)
    assert c["max_abs_diff_at"] == "judges.pm.brier.per_chain.0"
    assert c["within_intervals"] and c["reproduces"]
    assert "1 of " in render_comparison(ref, run) and "reproduces within the reference's intervals" in \
        render_comparison(ref, run)


def test_a_win_rate_outside_the_reference_interval_fails(ref):
    run = copy.deepcopy(ref)
    w = run["winrate_vs_sft"]["gold"]["rl"]
    w["mean"] = ref["winrate_vs_sft"]["gold"]["rl"]["hi"] + 1e-6
    c = compare_summaries(ref, run)
    bad = [r for r in c["winrates"] if not r["inside"]]
    assert [(r["judge"], r["method"]) for r in bad] == [("gold", "rl")]
    assert not c["within_intervals"] and not c["reproduces"]
    assert "does not reproduce" in render_comparison(ref, run)


def test_a_stated_ordering_that_flips_fails(ref):
    run = copy.deepcopy(ref)
    e = next(r for r in head_to_head(ref) if r["separated"] and r["judge"] == "pm")
    e = {"winner": e["a"], "loser": e["b"]} if e["p"] > 0.5 else {"winner": e["b"], "loser": e["a"]}
    labels, g = run["labels"], run["win_matrix_gold"]
    i, k = labels.index(e["winner"]), labels.index(e["loser"])
    g["mean"][i][k], g["mean"][k][i] = 0.45, 0.55
    c = compare_summaries(ref, run)
    flipped = [o for o in c["orderings"] if not o["kept"]]
    assert [(o["winner"], o["loser"]) for o in flipped] == [(e["winner"], e["loser"])]
    assert not c["reproduces"]


def test_cli_exit_status_json_and_rendered_block(ref, tmp_path, capsys):
    same = _save(tmp_path, ref, "same")
    doc = tmp_path / "doc.md"
    doc.write_text("x\n<!-- llm-report:repro.compare -->\nstale\n<!-- /llm-report:repro.compare -->\n")
    assert main(["compare", REFERENCE, same, "--json", str(tmp_path / "v.json"), "--write", str(doc),
                 "--tag", "repro"]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["bit_for_bit"] is True
    assert "stale" not in doc.read_text() and "reproduces bit for bit" in doc.read_text()
    worse = copy.deepcopy(ref)
    worse["winrate_vs_sft"]["pm"]["online_ipo"]["mean"] = 0.0
    assert main(["compare", REFERENCE, _save(tmp_path, worse, "worse")]) == 1
    assert "| NO |" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    (lambda s: s["config"].__setitem__("seeds", 5), "different settings: seeds"),
    (lambda s: s.pop("winrate_vs_sft"), "KeyError"),
])
def test_cli_refuses_runs_that_cannot_be_compared_with_one_line(ref, tmp_path, capsys, change, message):
    other = copy.deepcopy(ref)
    change(other)
    assert main(["compare", REFERENCE, _save(tmp_path, other)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["compare", REFERENCE, str(tmp_path / "missing")]) == 2


def test_write_needs_a_tag(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", REFERENCE, REFERENCE, "--write", str(tmp_path / "doc.md")])
    assert e.value.code == 2 and "--write needs --tag" in capsys.readouterr().err


# llm/README.md block tag -> (the committed reference summary, the committed summary of the run
# compared with it)
STUDY = os.path.join(ROOT, "llm", "reference", "study")
COMPARISONS = {"rerun": (REFERENCE, os.path.join(ROOT, "llm", "reference", "rerun", "summary.json")),
               "otherfp": (REFERENCE, os.path.join(ROOT, "llm", "reference", "other_fp", "summary.json")),
               "pinned": (REFERENCE, os.path.join(ROOT, "llm", "reference", "pinned_avx2", "summary.json")),
               "studyrerun": (os.path.join(STUDY, "summary.json"),
                              os.path.join(ROOT, "llm", "reference", "study_rerun", "summary.json")),
               "studygoldrerun": (os.path.join(STUDY, "summary_gold.json"),
                                  os.path.join(ROOT, "llm", "reference", "study_rerun", "summary_gold.json"))}


@pytest.mark.parametrize("tag", list(COMPARISONS))
def test_llm_readme_comparisons_equal_what_compare_renders_from_the_committed_runs(tag):
    with open(os.path.join(ROOT, "llm", "README.md")) as f:
        text = f.read()
    assert f"<!-- llm-report:{tag}.compare -->" in text
    reference, run = (read_summary(path) for path in COMPARISONS[tag])  # as the CLI reads them
    rendered = render_comparison(reference, run)
    ref_rel, rel = (os.path.relpath(path, ROOT) for path in COMPARISONS[tag])
    assert replace_blocks(text, None, tag, render={"compare": rendered}.__getitem__) == text, (
        f"re-render with `python -m llm compare {ref_rel} {rel} --write llm/README.md --tag {tag}`")


def test_the_other_float_path_run_records_the_kernels_it_forced():
    with open(COMPARISONS["otherfp"][1]) as f:
        fp = json.load(f)["provenance"]["float_path"]
    assert fp["cpu_capability"] == "DEFAULT" and fp["env"] == {"ATEN_CPU_CAPABILITY": "default",
                                                               "MKL_CBWR": "COMPATIBLE"}


def test_a_schema_2_summary_reads_as_schema_3_and_compares_with_one_number_for_number(tmp_path):
    """Schema 2 stored the gold matrix's mean and ci95 twice (flat copies for the figures); the
    reader drops the copies (checked equal first), so a schema 2 reference and a schema 3 run of
    the same numbers compare bit for bit, and a copy that disagrees is refused."""
    from llm.report import SUMMARY_SCHEMA, current_schema

    with open(REFERENCE) as f:
        raw = json.load(f)
    assert raw["schema"] == 2 and raw["win_matrix_gold_mean"] == raw["win_matrix_gold"]["mean"]
    now = current_schema(raw)
    assert now["schema"] == SUMMARY_SCHEMA == 3
    assert "win_matrix_gold_mean" not in now and "win_matrix_gold_ci95" not in now
    assert now["win_matrix_gold"] == raw["win_matrix_gold"] and len(now) == len(raw) - 2
    written = _save(tmp_path, now, "schema3")
    c = compare_summaries(read_summary(REFERENCE), read_summary(os.path.join(written, "summary.json")))
    assert c["bit_for_bit"] and c["differing"] == 0
    bad = copy.deepcopy(raw)
    bad["win_matrix_gold_ci95"][0][1] += 1e-12
    with pytest.raises(ValueError, match="win_matrix_gold_ci95 differs from win_matrix_gold's ci95"):
        current_schema(bad)


def test_a_one_chain_run_with_no_interval_reproduces_itself(ref):
    """One chain has no 95 % interval (NaN): the same NaN in both summaries is the same number."""
    one = copy.deepcopy(ref)
    one["winrate_vs_sft"]["pm"]["rl"]["ci95"] = float("nan")
    c = compare_summaries(one, copy.deepcopy(one))
    assert c["bit_for_bit"] and c["differing"] == 0
    other = copy.deepcopy(one)
    other["winrate_vs_sft"]["pm"]["rl"]["ci95"] = 0.1  # NaN against a number still differs
    assert compare_summaries(one, other)["differing"] == 1
