"""Nothing lost, nothing half-done (issue 19): an --out that overlaps an input, two runs on one
folder, Ctrl-C, outputs checked before anything is written, malformed summaries, one-chain runs,
chain seeds and grids checked up front, and the small refusals. A bad input exits 2 with one line
and changes nothing; Ctrl-C prints one line and exits 130."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import llm.train
from llm.chains import JUDGE_METRICS, summarise
from llm.cli import main
from llm.config import MAX_SEED, PipelineConfig
from llm.flag_values import recorded_config
from llm.models import load_codec, new_causal_lm, save_model
from llm.report import render_report
from opo_toolkit.runlock import LOCK_NAME, RunLock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(ROOT, "llm", "reference", "summary.json")


def snapshot(path):
    """Every file below ``path`` with a hash of its bytes (to show a refused command changed nothing)."""
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            found[os.path.join(root, name)] = "dir"
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                found[os.path.join(root, name)] = hashlib.sha256(f.read()).hexdigest()
    return found


def refused(argv, capsys, *fragments):
    """Run the CLI; assert exit 2 and one stderr line holding every fragment; return the line."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def model_copy(tiny, tmp_path):
    """A copy of the tiny SFT model folder (the user's model that --overwrite must not delete)."""
    path = tmp_path / "m"
    shutil.copytree(tiny["sft"], path)
    return path


# ---------------------------------------------------------------------------------------------
# 1. --out equal to, containing or inside an input folder
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["align", "sft", "evaluate"])
@pytest.mark.parametrize("where, relation", [("same", "is"), ("inside", "lies inside"),
                                             ("parent", "contains")])
def test_out_overlapping_an_input_is_refused_even_with_overwrite(tiny, model_copy, tmp_path, capsys,
                                                                 stage, where, relation):
    m = str(model_copy)
    out = {"same": m, "inside": os.path.join(m, "run"), "parent": str(tmp_path)}[where]
    argv = {"align": ["align", "--sft", m, "--judge", "gold", "--steps", "1", "--batch-size", "2",
                      "--eval-every", "0"],
            "sft": ["sft", "--init", m, "--steps", "1", "--batch-size", "2"],
            "evaluate": ["evaluate", "--models", f"a={m}", "--n-prompts", "2"]}[stage]
    before = snapshot(tmp_path)
    flag = {"align": "--sft", "sft": "--init", "evaluate": f"--models a={m}"}[stage]
    refused(argv + ["--out", out, "--overwrite"], capsys, f"{relation} the input {flag}")
    assert snapshot(tmp_path) == before  # the model (model.safetensors, tokenizer.json) untouched


def test_without_overwrite_a_model_folder_is_not_called_a_run(model_copy, capsys):
    line = refused(["align", "--sft", str(model_copy), "--judge", "gold", "--out", str(model_copy)], capsys,
                   "is the input --sft")
    assert "--overwrite" not in line and "already holds a run" not in line


def test_a_model_folder_that_is_not_an_input_is_never_called_a_run(tiny, tmp_path, capsys):
    other = tmp_path / "pm"
    shutil.copytree(tiny["pm"], other)
    before = snapshot(tmp_path)
    refused(["align", "--sft", tiny["sft"], "--judge", "gold", "--out", str(other), "--overwrite"], capsys,
            "holds a model", "never overwritten")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# 2. one writer per run folder
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_a_run_folder_in_use_is_refused_naming_the_holder(tiny, tmp_path, capsys, extra):
    out = tmp_path / "run"
    assert main(["align", "--out", str(out), "--sft", tiny["sft"], "--judge", "gold", "--steps", "1",
                 "--batch-size", "2", "--eval-every", "0"]) == 0
    capsys.readouterr()
    before = snapshot(out)
    with RunLock(out):  # another open file description: flock refuses it as it refuses a process
        refused(["align", "--out", str(out), "--sft", tiny["sft"], "--judge", "gold", "--steps", "1",
                 "--batch-size", "2", "--eval-every", "0", *extra], capsys,
                f"is in use by pid {os.getpid()}", "choose another --out")
        assert snapshot(out) == {**before, str(out / LOCK_NAME): snapshot(out)[str(out / LOCK_NAME)]}
    assert snapshot(out) == before


def test_sft_ctrl_c_and_a_concurrent_run_through_real_processes(tmp_path, capsys):
    """``python -m llm sft`` in a subprocess: while it runs, a second sft on its --out (with
    --overwrite) exits 2 naming it; Ctrl-C (SIGINT) then stops it with one line saying where it
    stopped and how to resume, exit 130; the run resumes from that checkpoint."""
    out = tmp_path / "sft"
    flags = ["--out", str(out), "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--batch-size", "4",
             "--checkpoint-every", "5", "--log-every", "5"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "llm", "sft", "--steps", "1000000", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        end = time.monotonic() + 300
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end
            time.sleep(0.05)
        refused(["sft", "--steps", "1000000", *flags, "--overwrite"], capsys, f"is in use by pid {proc.pid}")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and all(line.startswith("sft: ") for line in lines[:-1])  # progress
    assert lines[-1].startswith("python -m llm sft: interrupted after ")
    assert " of 1000000 steps in " in lines[-1]
    assert lines[-1].endswith("rerun the same command with --resume to continue from the checkpoint")
    assert "its last checkpoint is step " in lines[-1] and not (out / LOCK_NAME).exists()
    import torch

    step = torch.load(out / "checkpoint.pt", weights_only=False)["step"]
    assert f"its last checkpoint is step {step}" in lines[-1]


def test_judges_ctrl_c_names_the_inner_run_and_resumes(tmp_path, capsys, monkeypatch):
    """Ctrl-C inside a chain's stage: the line names that stage's folder and step; --resume on the
    judges command goes on from the checkpoint."""
    out = tmp_path / "j"
    argv = ["judges", "--out", str(out), "--seeds", "2", "--sft-steps", "4", "--pm-steps", "2",
            "--pm-pairs", "16", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
            "--checkpoint-every", "2"]
    real = llm.train.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(llm.train, "save_checkpoint", save_then_interrupt)
    assert main(argv) == 130
    monkeypatch.setattr(llm.train, "save_checkpoint", real)
    err = capsys.readouterr().err.strip().splitlines()
    sft = out / "chain0" / "sft"
    assert err == [f"python -m llm judges: interrupted after 2 of 4 steps in {sft} (its last checkpoint is "
                   "step 2); rerun the same command with --resume to continue from the checkpoint"]
    assert not (out / LOCK_NAME).exists() and not (sft / LOCK_NAME).exists()
    assert main(argv + ["--resume"]) == 0


def test_ctrl_c_before_the_run_folder_is_written_says_nothing_was_written(tiny, tmp_path, capsys,
                                                                        monkeypatch):
    import llm.align

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(llm.align, "load_causal_lm", interrupted)  # while the models load
    out = tmp_path / "run"
    assert main(["align", "--out", str(out), "--sft", tiny["sft"], "--judge", "gold"]) == 130
    assert capsys.readouterr().err == (f"python -m llm align: interrupted before anything was written to "
                                       f"{out}: rerun the same command\n")
    assert not out.exists()  # the folder the lock made is gone with it


# ---------------------------------------------------------------------------------------------
# 3, 11, 12, 13. compare and report: outputs checked first, inputs never replaced, bad summaries
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def run_dir(tmp_path):
    path = tmp_path / "RUN"
    path.mkdir()
    shutil.copy(REFERENCE, path / "summary.json")
    return path


@pytest.mark.parametrize("json_at, message", [
    ("RUN/summary.json", "is the input RUN"), ("REF", "is the input REFERENCE"),
    ("nodir/v.json", "does not exist"), ("RUN", "is a folder"), ("/proc/v.json", "not writable")])
def test_compare_checks_json_before_writing_anything(run_dir, tmp_path, capsys, json_at, message):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- llm-report:x.compare -->\nOLD\n<!-- /llm-report:x.compare -->\n")
    target = {"RUN/summary.json": run_dir / "summary.json", "REF": REFERENCE, "RUN": run_dir}.get(
        json_at, json_at if json_at.startswith("/") else tmp_path / json_at)
    before = snapshot(tmp_path)
    refused(["compare", REFERENCE, str(run_dir), "--json", str(target), "--write", str(doc), "--tag", "x"],
            capsys, message)
    assert snapshot(tmp_path) == before  # neither the summary nor the document was rewritten


@pytest.mark.parametrize("write, message", [("/proc/version", "not writable"),
                                            ("missing.md", "does not exist"),
                                            ("RUN/summary.json", "is the input RUN_DIR")])
def test_report_checks_its_documents_before_writing(run_dir, tmp_path, capsys, write, message):
    target = write if write.startswith("/") else str(tmp_path / write)
    before = snapshot(tmp_path)
    refused(["report", str(run_dir), "--write", target], capsys, message)
    assert snapshot(tmp_path) == before


def test_report_refuses_a_document_without_blocks_and_leaves_it(run_dir, tmp_path, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text("# notes\nno report blocks here\n")
    os.utime(doc, (1, 1))
    refused(["report", str(run_dir), "--write", str(doc)], capsys, "no <!-- llm-report:SECTION --> block")
    assert doc.read_text() == "# notes\nno report blocks here\n" and doc.stat().st_mtime == 1


def _malformed(kind):
    with open(REFERENCE) as f:
        s = json.load(f)
    if kind == "config list":
        s["config"] = [1, 2]
    elif kind == "deep nesting":
        return "[" * 100_000 + "]" * 100_000
    elif kind == "top-level list":
        return "[1, 2]"
    elif kind == "top-level string":
        return '"summary"'
    elif kind == "1x1 matrix":
        s["win_matrix_gold"]["mean"] = [[0.5]]
    return json.dumps(s)


@pytest.mark.parametrize("kind", ["config list", "deep nesting", "top-level list", "top-level string",
                                  "1x1 matrix"])
@pytest.mark.parametrize("tool", ["report", "compare"])
def test_a_malformed_summary_is_one_line_exit_2(tmp_path, capsys, kind, tool):
    bad = tmp_path / "bad" / "summary.json"
    bad.parent.mkdir()
    bad.write_text(_malformed(kind))
    argv = ["report", str(bad)] if tool == "report" else ["compare", REFERENCE, str(bad)]
    refused(argv, capsys)


# ---------------------------------------------------------------------------------------------
# 5. one chain: rendered without intervals, saying so
# ---------------------------------------------------------------------------------------------
def _one_chain_summary():
    """What ``pipeline --seeds 1`` summarises: the reference's chain 0 as the only chain."""
    with open(REFERENCE) as f:
        ref = json.load(f)
    cfg = PipelineConfig(**{**recorded_config(PipelineConfig, ref["config"]), "seeds": 1})
    chain0 = lambda m: np.asarray(m["per_chain"])[:, :, 0].tolist()  # noqa: E731
    heldout = {who: {**{k: ref["judges"][who][k]["per_chain"][0] for k in JUDGE_METRICS},
                     "reliability": ref["reliability"][who]} for who in ("pm", "rm")}
    always_half = ref["judges"]["always_half"]["mean_abs_error"]["per_chain"][0]
    heldout["gold_sft_pairs_mean_abs_p_minus_half"] = always_half
    chain = {"eval": {"labels": ref["labels"], "gold": chain0(ref["win_matrix_gold"]),
                      "pm": chain0(ref["win_matrix_pm"]), "gold_eval_hw": ref["win_matrix_gold_eval_ci95"]},
             "heldout": heldout, "step_time_s": ref["step_time_s"],
             "bt_fit_accuracy": ref["judges"]["gold_bt_fit"]["accuracy"]["per_chain"][0]}
    return summarise(cfg, [chain], 1.0, ref["provenance"])


def test_one_chain_renders_without_intervals_and_says_so(tmp_path, capsys):
    summary = _one_chain_summary()
    assert summary["chains"] == 1 and np.isnan(summary["winrate_vs_sft"]["gold"]["rl"]["ci95"])
    text = render_report(summary)  # was: ValueError (cannot convert float NaN to integer)
    assert "nan" not in text.lower() and " ± " not in text.split("| judge vs gold")[0]
    assert text.count("One chain: the numbers are that chain's") >= 3  # winrate, order, paper
    # no ordering and no verdict on a claim from one chain
    assert "(agrees)" not in text and "(differs)" not in text and "separated" not in text
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))  # NaN as JSON writes it, as run_pipeline writes it
    assert main(["report", str(path)]) == 0
    assert "One chain" in capsys.readouterr().out


def test_two_chains_still_give_intervals():
    """Twin: the reference (3 chains) keeps its intervals and orderings."""
    with open(REFERENCE) as f:
        text = render_report(json.load(f))
    assert "One chain" not in text and " ± " in text and "beats" in text


# ---------------------------------------------------------------------------------------------
# 6, 7, 9. chain seeds and counts, duplicate grid entries, --preset gpu without a GPU
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, fragment", [
    (["study", "--seed", str(MAX_SEED), "--chains", "2"], f"exceeds {MAX_SEED}"),
    (["study", "--preset", "quick", "--seed", str(MAX_SEED - 1), "--chains", "1"], f"exceeds {MAX_SEED}"),
    (["judges", "--seed", str(MAX_SEED), "--seeds", "2"], f"lower --seed to at most {MAX_SEED - 1}"),
    (["judges", "--seeds", "1000000000000"], "at most 1000 chains"),
    (["pipeline", "--seed", str(MAX_SEED), "--seeds", "2"], "exceeds"),
    (["study", "--taus", "online_ipo=0.1,0.1"], "gives 0.1 twice"),
    (["study", "--taus", "online_ipo=0.1,1e-1"], "gives 0.1 twice"),
    (["study", "--betas", "0.5", "0.5"], "--betas gives 0.5 twice"),
    (["study", "--methods", "online_ipo", "online_ipo"], "lists a method twice"),
    (["pipeline", "--sweep", "--sweep-taus", "0.2", "0.20"], "--sweep-taus gives 0.2 twice"),
    (["sft", "--task", "text", "--preset", "gpu", "--device", "cpu"], "--preset gpu is sized for one H100"),
    (["judges", "--task", "text", "--preset", "gpu"], "judges takes its model shape"),
])
def test_chain_seeds_grids_and_presets_are_checked_before_anything_runs(tmp_path, capsys, argv, fragment):
    out = tmp_path / "out"
    refused(argv + ["--out", str(out)], capsys, fragment)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# 8, 17. sft --init with too few positions; an upper-case .GGUF file
# ---------------------------------------------------------------------------------------------
def test_sft_init_with_too_few_positions_is_refused_before_the_run(tiny, tmp_path, capsys):
    codec = load_codec(tiny["sft"])
    short = tmp_path / "short"  # 16 positions; the synthetic task needs <bos> 16 <sep> + 6 = 24
    save_model(new_causal_lm(codec.vocab_size, 1, 16, 2, 16, codec.pad_id), codec, str(short))
    out = tmp_path / "run"
    refused(["sft", "--init", str(short), "--out", str(out), "--steps", "2", "--batch-size", "2"], capsys,
            "has 16 positions but this run's inputs need up to 24")
    assert not out.exists()


def test_an_upper_case_gguf_file_is_read_as_gguf(tmp_path, capsys):
    model = tmp_path / "m.GGUF"
    model.write_bytes(b"not a gguf file")
    line = refused(["align", "--sft", str(model), "--judge", "gold", "--out", str(tmp_path / "run")], capsys)
    assert "gguf" in line.lower() and "does not exist" not in line
    assert not (tmp_path / "run").exists()
