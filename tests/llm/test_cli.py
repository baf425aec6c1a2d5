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
    return AlignConfig(out=str(out), sft=tiny["sft"], pm=tiny["pm"], steps=2, batch_size=4, eval_every=0, **kw)


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
    save_checkpoint(str(out), 1, _config(tiny, out, tau=3.0), model, torch.optim.AdamW(model.parameters()), {})
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
    from llm.models import UsageError

    cfg = AlignConfig(out=str(tmp_path / "run"), sft="x", rm="y", method="rl", label_type="hard")
    with pytest.raises(UsageError, match="label-type"):
        cfg.validate()
    assert not (tmp_path / "run").exists()
