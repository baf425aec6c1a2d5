"""CLI: a smoke run, --help, and every bad input (one line on stderr, exit 2, nothing written)."""

import json
import os
import shutil

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from llm.cli import main
from llm.config import AlignConfig
from llm.models import new_causal_lm
from llm.runtime import save_checkpoint, write_config


def files_under(path):
    """Every file and folder below ``path`` (to check that a refused command wrote nothing)."""
    found = set()
    for root, dirs, files in os.walk(path):
        found |= {os.path.join(root, n) for n in dirs + files}
    return found


def run_cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def align_argv(tiny, out, *extra):
    return ["align", "--out", str(out), "--sft", tiny["sft"], "--pm", tiny["pm"], "--steps", "2",
            "--batch-size", "4", "--eval-every", "0", *extra]


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(stage in out for stage in ("sft", "train-pm", "align", "evaluate", "pipeline"))


def test_align_smoke_writes_a_run_folder(tiny, tmp_path, capsys):
    code, err = run_cli(align_argv(tiny, tmp_path / "run", "--log-every", "1"), capsys)
    assert code == 0, err
    names = set(os.listdir(tmp_path / "run"))
    assert {"config.json", "metrics.csv", "metrics.jsonl", "model", "done.json"} <= names
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["steps"] == 2


def _vocab_mismatch_model(tiny, tmp_path):
    path = tmp_path / "mismatch"
    shutil.copytree(tiny["sft"], path)
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(["<pad>", "<bos>", "<sep>", "<eos>", "<unk>",
                                                                  "<vs>", "extra"])}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path / "tokenizer.json"))
    return str(path)


BAD = {
    "unknown method": lambda t, p: ["--method", "online_magic"],
    "tau zero": lambda t, p: ["--tau", "0"],
    "tau negative": lambda t, p: ["--tau", "-1"],
    "beta above one": lambda t, p: ["--beta", "1.5"],
    "beta below zero": lambda t, p: ["--beta", "-0.1"],
    "nonexistent model": lambda t, p: ["--sft", str(p / "nowhere")],
    "not a causal LM": lambda t, p: ["--sft", t["pm"]],
    "vocab mismatch": lambda t, p: ["--sft", _vocab_mismatch_model(t, p)],
    "empty prompt file": lambda t, p: ["--prompts", str(_empty_file(p))],
    "non-number tau": lambda t, p: ["--tau", "abc"],
}


def _empty_file(p):
    (p / "empty.txt").write_text("\n  \n")
    return p / "empty.txt"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_align_input_is_one_line_exit_2_nothing_written(tiny, tmp_path, capsys, case):
    extra = BAD[case](tiny, tmp_path)
    before = files_under(tmp_path)
    code, err = run_cli(align_argv(tiny, tmp_path / "run", *extra), capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert files_under(tmp_path) == before


def _config(tiny, out, **kw):
    return AlignConfig(out=str(out), sft=tiny["sft"], pm=tiny["pm"], steps=2, batch_size=4, eval_every=0,
                       **kw)


def test_run_folder_with_another_run_is_refused_without_resume_or_overwrite(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    write_config(_config(tiny, out, tau=0.7), str(out / "config.json"))
    before = files_under(tmp_path)
    code, err = run_cli(align_argv(tiny, out), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "already holds a run" in err
    code, err = run_cli(align_argv(tiny, out, "--resume"), capsys)  # different config: mismatch
    assert code == 2 and len(err.strip().splitlines()) == 1 and "config.json" in err
    assert files_under(tmp_path) == before
    code, err = run_cli(align_argv(tiny, out, "--overwrite"), capsys)
    assert code == 0, err


def test_corrupt_checkpoint_names_the_file(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    write_config(_config(tiny, out), str(out / "config.json"))
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = files_under(tmp_path)
    code, err = run_cli(align_argv(tiny, out, "--resume"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(out / "checkpoint.pt") in err and "corrupt" in err
    assert files_under(tmp_path) == before


def test_checkpoint_from_another_configuration_names_the_file(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    write_config(_config(tiny, out), str(out / "config.json"))
    model = new_causal_lm(8, n_layer=1, n_embd=8, n_head=1)
    save_checkpoint(str(out), 1, _config(tiny, out, tau=3.0), model, torch.optim.AdamW(model.parameters()),
                    {})
    before = files_under(tmp_path)
    code, err = run_cli(align_argv(tiny, out, "--resume"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(out / "checkpoint.pt") in err and "tau" in err
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("argv", [
    ["sft", "--init", "/nonexistent/model"],
    ["train-pm", "--sft", "/nonexistent/model"],
    ["evaluate", "--models", "sft"],
    ["evaluate", "--models", "sft=/nonexistent/model"],
    ["pipeline", "--taus", "online_ipo=0"],
    ["pipeline", "--methods", "online_magic"],
    ["pipeline", "--beta", "2"],
])
def test_bad_input_of_other_stages(tmp_path, capsys, argv):
    code, err = run_cli([argv[0], "--out", str(tmp_path / "run"), *argv[1:]], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_rl_rejects_label_type(tmp_path):
    """--label-type is for preference-labelled methods; rl is scored by the reward model."""
    from llm.config import AlignConfig
    from opo_toolkit.cliargs import UsageError

    cfg = AlignConfig(out=str(tmp_path / "run"), sft="x", rm="y", method="rl", label_type="hard")
    with pytest.raises(UsageError, match="label-type"):
        cfg.validate()
    assert not (tmp_path / "run").exists()


# ---- issue 8 ----------------------------------------------------------------------------------
def test_help_of_every_stage_in_process_and_one_subprocess():
    """`--help` of each stage: format every subparser in-process (a "%" in a help string crashed
    `sft --help`), and run the first command a new user types in a real process."""
    import subprocess
    import sys
    from pathlib import Path

    from llm.cli import _TOOLS, build_parser

    parser = build_parser()
    stages = parser._subparsers._group_actions[0].choices
    # every stage, and the tools (own parsers, no run folder: report, compare, ...)
    stage_names = {"sft", "train-pm", "align", "evaluate", "pipeline", "study", "judges"}
    assert set(stages) == stage_names | set(_TOOLS)
    assert {"report", "compare"} <= set(_TOOLS)
    for name, sub in stages.items():
        text = sub.format_help()
        if name in _TOOLS:
            continue
        assert "--out" in text and "(default:" in text, name
    assert "10%" in stages["sft"].format_help()
    from llm.compare import main as compare_main
    from llm.report import main as report_main

    for tool in (report_main, compare_main):
        with pytest.raises(SystemExit) as e:
            tool(["--help"])
        assert e.value.code == 0
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "llm", "sft", "--help"], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
                          timeout=120)
    assert proc.returncode == 0 and "--n-embd" in proc.stdout and not proc.stderr, proc.stderr


def _a_file(p):
    (p / "afile").write_text("mine")
    return p / "afile"


BAD.update({
    "seed above 2**32 - 1": lambda t, p: ["--seed", str(2**70)],
    "seed negative": lambda t, p: ["--seed", "-1"],
    "synthetic models on the text task": lambda t, p: ["--task", "text"],
    "responses longer than the model's context":
        lambda t, p: ["--max-new-tokens", "5000", "--temperature", "50"],
    "lr inf": lambda t, p: ["--lr", "inf"],
    "tau inf": lambda t, p: ["--tau", "inf"],
    "temperature inf": lambda t, p: ["--temperature", "inf"],
    "out under a file": lambda t, p: ["--out", str(_a_file(p) / "out")],
    "out is a file": lambda t, p: ["--out", str(_a_file(p))],
    "out in a read-only place": lambda t, p: ["--out", "/proc/no_such_dir/out"],
})


@pytest.mark.parametrize("argv", [
    ["sft", "--task-seed", "-1"],
    ["sft", "--seed", "-1"],
    ["sft", "--n-embd", "30", "--n-head", "4"],
    ["sft", "--n-head", "0"],
    ["sft", "--n-embd", "-8"],
    ["sft", "--n-layer", "0"],
    ["sft", "--lr", "nan"],
    ["evaluate", "--models", "a=/nonexistent", "--samples-per-prompt", "0"],
    ["evaluate", "--models", "a=/nonexistent", "--temperature", "inf"],
    ["pipeline", "--taus", "online_ipo=inf"],
    ["pipeline", "--align-lr", "inf"],
])
def test_more_bad_input_refused_before_the_run_folder(tmp_path, capsys, argv):
    code, err = run_cli([argv[0], "--out", str(tmp_path / "run"), *argv[1:]], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_evaluate_with_too_long_responses_is_refused(tiny, tmp_path, capsys):
    code, err = run_cli(["evaluate", "--out", str(tmp_path / "run"), "--models", f"sft={tiny['sft']}",
                         "--max-new-tokens", "5000"], capsys)
    assert code == 2 and "positions" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_folder_without_a_run(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("the user's own numbers\n")
    code, err = run_cli(align_argv(tiny, out, "--resume"), capsys)
    assert code == 2 and "holds no run" in err and len(err.strip().splitlines()) == 1
    assert (out / "metrics.csv").read_text() == "the user's own numbers\n"
    assert os.listdir(out) == ["metrics.csv"]


def test_resume_refuses_a_run_of_another_stage(tiny, tmp_path, capsys):
    from llm.config import SFTConfig

    out = tmp_path / "run"
    out.mkdir()
    write_config(SFTConfig(out=str(out)), str(out / "config.json"))
    code, err = run_cli(align_argv(tiny, out, "--resume"), capsys)
    assert code == 2 and "another stage" in err and len(err.strip().splitlines()) == 1


def _killed_after_first_checkpoint(tiny, out, monkeypatch, capsys):
    """An align run (4 steps, checkpoint every 2) stopped right after its step-2 checkpoint."""
    import llm.align

    real = llm.align.save_checkpoint

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # what a kill right after the atomic checkpoint leaves

    monkeypatch.setattr(llm.align, "save_checkpoint", save_then_die)
    # Ctrl-C: one line saying where the run stopped and how to go on, exit 130 (no traceback)
    assert main(align_argv(tiny, out, "--steps", "4", "--checkpoint-every", "2", "--log-every", "1")) == 130
    monkeypatch.setattr(llm.align, "save_checkpoint", real)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m llm align: interrupted after 2 of 4 steps in {out} (its last checkpoint is "
                   "step 2); rerun the same command with --resume to continue from the checkpoint"]
    assert not os.path.exists(out / ".run.lock")  # the lock is released on the way out


def test_resume_truncates_a_torn_last_metrics_line(tiny, tmp_path, capsys, monkeypatch):
    """A kill during the (non-atomic) append leaves half a JSON line at the end of metrics.jsonl;
    resume drops it and the log equals an uninterrupted run's."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    extra = ("--steps", "4", "--checkpoint-every", "2", "--log-every", "1")
    assert run_cli(align_argv(tiny, straight, *extra), capsys)[0] == 0
    _killed_after_first_checkpoint(tiny, killed, monkeypatch, capsys)
    with open(killed / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss/tr')  # torn: no closing brace, no newline
    code, err = run_cli(align_argv(tiny, killed, *extra, "--resume"), capsys)
    assert code == 0, err

    def rows(d):
        with open(d / "metrics.jsonl") as f:
            return [{k: v for k, v in json.loads(line).items() if k != "charts/step_time_s"} for line in f]

    assert rows(killed) == rows(straight) and [r["step"] for r in rows(killed)] == [1, 2, 3, 4]


def test_resume_refuses_a_bad_line_before_the_end(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _killed_after_first_checkpoint(tiny, out, monkeypatch, capsys)
    text = (out / "metrics.jsonl").read_text()
    (out / "metrics.jsonl").write_text("garbage\n" + text)
    before = files_under(tmp_path)
    code, err = run_cli(align_argv(tiny, out, "--steps", "4", "--checkpoint-every", "2", "--log-every", "1",
                                   "--resume"), capsys)
    assert code == 2 and "line 1" in err and len(err.strip().splitlines()) == 1
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("damage",
                         ["corrupt done.json", "checkpoint.pt is a folder", "done.json is a folder"])
def test_resume_with_damaged_run_files_is_one_line(tiny, tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert run_cli(align_argv(tiny, out), capsys)[0] == 0
    if damage == "corrupt done.json":
        (out / "done.json").write_text("{not json")
    else:
        name = damage.split()[0]
        (out / "done.json").unlink()  # an unfinished run, so resume would reach the checkpoint
        (out / name).unlink(missing_ok=True)
        (out / name).mkdir()
    before = files_under(tmp_path)
    code, err = run_cli(align_argv(tiny, out, "--resume"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert damage.split()[0] in err
    assert files_under(tmp_path) == before


def test_resume_on_another_device_says_so(tiny, tmp_path, capsys):
    """Generator states are device-specific: a checkpoint written on CUDA is refused on CPU with a
    message naming the devices (not "does not match the model")."""
    out = tmp_path / "run"
    out.mkdir()
    write_config(_config(tiny, out), str(out / "config.json"))
    model = new_causal_lm(8, n_layer=1, n_embd=8, n_head=1)
    save_checkpoint(str(out), 1, _config(tiny, out), model, torch.optim.AdamW(model.parameters()), {})
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["device"] == "cpu"
    state["device"] = "cuda"  # as save_checkpoint records it for a model on a GPU
    torch.save(state, out / "checkpoint.pt")
    before = files_under(tmp_path)
    code, err = run_cli(align_argv(tiny, out, "--resume", "--device", "cpu"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "written on cuda" in err and "--device cuda" in err
    assert files_under(tmp_path) == before


def test_a_diverging_run_stops_without_a_model(tiny, tmp_path, capsys):
    """--lr 1e30 is finite (accepted) but the loss turns NaN at step 2: one line, exit 2, and no
    done.json or model that would pass for a finished run."""
    out = tmp_path / "run"
    code, err = run_cli(align_argv(tiny, out, "--lr", "1e30", "--steps", "6"), capsys)
    assert code == 2 and "the loss became nan" in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "done.json").exists() and not (out / "model").exists()


def test_report_usage_error_is_one_line(capsys):
    """`llm report` uses the shared parser: one line, exit 2, no usage block."""
    from llm.report import main as report_main

    with pytest.raises(SystemExit) as e:
        report_main(["--bogus", "llm/reference/summary.json"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == "python -m llm report: error: unrecognized arguments: --bogus\n"
