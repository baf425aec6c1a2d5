"""Data parallelism (llm/distributed.py): two CPU processes under torchrun (gloo) compute what one
process computes with the same shards of the same global batch, and only rank 0 writes.

The comparison is exact (``torch.equal``), not within a tolerance: each shard runs the same
operations on the same rows with the same random stream in both set-ups, and the all-reduce of two
gradients is one IEEE addition per element, which is commutative, so the one-process accumulation
``g0 + g1`` and gloo's sum agree bit for bit (OMP_NUM_THREADS=1 fixes the kernels' summation order).
A tolerance would only hide a stream or a scale that differs; the shards = 1 twin below shows the
comparison is sensitive to one.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from llm.align import run_align
from llm.cli import main
from llm.config import AlignConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Run by each torchrun process: record every write below the runs' folder (audit hook), run the CLI
# commands of a JSON file one after the other (one process group), then leave the group as
# ``python -m llm`` does (a barrier, then destroy_process_group; no atexit teardown).
WORKER = r'''
import json, os, sys
out, record = os.path.realpath(sys.argv[1]), sys.argv[2]
with open(sys.argv[3]) as f:
    commands = json.load(f)
writes = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
    elif event == "os.rename":  # also os.replace: the destination is the file written
        path, writing = args[1], True
    elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.chmod"):
        path, writing = args[0], True
    else:
        return
    if writing and not isinstance(path, int):
        path = os.path.realpath(os.fsdecode(path))
        if path == out or path.startswith(out + os.sep):
            writes.append(event + " " + path)

sys.addaudithook(hook)
from llm.cli import main
from llm.distributed import shutdown
codes = [main(argv) for argv in commands]
shutdown(completed=codes == [0] * len(codes))  # as llm/__main__.py does: barrier, then destroy
threads = []  # the threads left now: gloo's would be torn down at interpreter shutdown (SIGABRT)
for task in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{task}/comm") as f:
        threads.append(f.read().strip())
with open(f"{record}.{os.environ['RANK']}.json", "w") as f:
    json.dump({"codes": codes, "writes": writes, "world": os.environ["WORLD_SIZE"], "threads": threads}, f)
'''

# ipo_md with Bernoulli labels: both per-shard streams (mixture sampling and labels) are used.
ARGS = dict(method="ipo_md", label_type="bernoulli", steps=3, batch_size=4, eval_every=0,
            checkpoint_every=2, log_every=1, max_new_tokens=6)
# sft and train-pm: a few steps of a smaller model, the batch split in two as well
SFT_ARGS = dict(steps=3, batch_size=4, checkpoint_every=2, log_every=1, n_layer=1, n_embd=16, n_head=2)
PM_ARGS = dict(SFT_ARGS, n_pairs=32, heldout_pairs=16)


def _flags(kw):
    return [x for k, v in kw.items() for x in ("--" + k.replace("_", "-"), str(v))]


def _argv(tiny, **kw):
    return ["align", "--sft", tiny["sft"], "--pm", tiny["pm"], *_flags({**ARGS, **kw})]


def _one_process(tiny, out, **kw):
    return run_align(AlignConfig(out=str(out), sft=tiny["sft"], pm=tiny["pm"], **{**ARGS, **kw}),
                     progress=False)


def _weights(run):
    return load_file(os.path.join(run, "model", "model.safetensors"))


def _metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "charts/step_time_s"} for line in f]


@pytest.fixture(scope="module")
def two_processes(tiny, tmp_path_factory):
    """The align run of two torchrun processes (gloo); returns its folder and each rank's record."""
    root = tmp_path_factory.mktemp("ddp")
    worker, runs, record, commands = (root / "worker.py", root / "runs", root / "record",
                                      root / "commands.json")
    worker.write_text(WORKER)
    out = runs / "align"
    commands.write_text(json.dumps([
        _argv(tiny) + ["--out", str(out)],
        ["sft", "--out", str(runs / "sft"), *_flags(SFT_ARGS)],
        ["train-pm", "--out", str(runs / "pm"), "--sft", tiny["sft"], *_flags(PM_ARGS)]]))
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(worker), str(runs), str(record), str(commands)]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = {}
    for rank in (0, 1):
        with open(f"{record}.{rank}.json") as f:
            records[rank] = json.load(f)
    return {"out": str(out), "runs": str(runs), "records": records}


def test_two_processes_equal_one_process_with_two_shards(tiny, two_processes, tmp_path):
    one = tmp_path / "one"
    _one_process(tiny, one, shards=2)
    ddp, single = _weights(two_processes["out"]), _weights(str(one))
    assert ddp.keys() == single.keys()
    assert all(torch.equal(ddp[k], single[k]) for k in ddp), "parameters differ"
    assert _metrics(two_processes["out"]) == _metrics(str(one))  # the logged batch means too
    state = torch.load(os.path.join(two_processes["out"], "checkpoint.pt"), weights_only=False)
    assert state["world_size"] == 2 and {"sample", "sample/1", "label", "label/1"} <= set(state["generators"])


def test_the_comparison_sees_a_different_split(tiny, two_processes, tmp_path):
    """Twin: the same global batch in one shard (one sampling stream) gives other parameters."""
    one = tmp_path / "one"
    _one_process(tiny, one, shards=1)
    ddp, single = _weights(two_processes["out"]), _weights(str(one))
    assert not all(torch.equal(ddp[k], single[k]) for k in ddp)


def test_sft_and_train_pm_two_processes_equal_one_process_with_two_shards(tiny, two_processes, tmp_path):
    from llm.config import PMConfig, SFTConfig
    from llm.train import run_sft, run_train_pm

    run_sft(SFTConfig(out=str(tmp_path / "sft"), shards=2, **SFT_ARGS), progress=False)
    run_train_pm(PMConfig(out=str(tmp_path / "pm"), sft=tiny["sft"], shards=2, **PM_ARGS), progress=False)
    for run, model in (("sft", "model"), ("pm", "pm"), ("pm", "rm")):
        ddp = load_file(os.path.join(two_processes["runs"], run, model, "model.safetensors"))
        single = load_file(os.path.join(tmp_path, run, model, "model.safetensors"))
        assert all(torch.equal(ddp[k], single[k]) for k in ddp), (run, model)
        assert _metrics(os.path.join(two_processes["runs"], run)) == _metrics(os.path.join(tmp_path, run))


def test_the_process_group_is_gone_when_the_command_ends(two_processes):
    """distributed.shutdown leaves no gloo thread behind, so nothing of the group is left for
    interpreter shutdown to tear down (where it aborted a rank with SIGABRT after its work was done,
    at random: transformers' import of torch.distributed.nn.functional had kept the group alive)."""
    for rank, rec in two_processes["records"].items():
        assert rec["threads"] and not [t for t in rec["threads"] if "gloo" in t], (rank, rec["threads"])


def test_only_rank_zero_writes(two_processes):
    records = two_processes["records"]
    assert records[0]["codes"] == records[1]["codes"] == [0, 0, 0] and records[0]["world"] == "2"
    assert records[1]["writes"] == []
    written = " ".join(records[0]["writes"])  # the hook sees rank 0's writes: it can fail
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "done.json", "model", "heldout.json", "rm"):
        assert os.sep + name in written, name
    assert {"config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt", "model", "done.json"} <= \
        set(os.listdir(two_processes["out"]))


def test_resume_with_another_number_of_processes_is_refused(tiny, two_processes, tmp_path, capsys):
    """With --shards 0 (one shard per process) the run of 2 processes, stopped after its step-2
    checkpoint (done.json removed), may not be continued by one process."""
    out = tmp_path / "stopped"
    shutil.copytree(two_processes["out"], out)
    os.remove(out / "done.json")
    code = main(_argv(tiny) + ["--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "written by 2 process(es)" in err and "--nproc_per_node=2" in err


def test_resume_restores_every_shards_streams(tiny, tmp_path, monkeypatch):
    """Killed after the step-2 checkpoint and resumed, a two-shard run equals an uninterrupted one:
    the checkpoint holds the second shard's sampling and label streams as well."""
    import llm.align

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _one_process(tiny, straight, shards=2)
    real = llm.align.save_checkpoint

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(llm.align, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _one_process(tiny, killed, shards=2)
    monkeypatch.setattr(llm.align, "save_checkpoint", real)
    state = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert {"sample", "label", "sample/1", "label/1", "data"} == set(state["generators"])
    _one_process(tiny, killed, shards=2, resume=True)
    a, b = _weights(str(straight)), _weights(str(killed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(str(straight)) == _metrics(str(killed))
