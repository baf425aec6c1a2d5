"""``python -m tabular``: two runs on one --out, a stale lock, and Ctrl-C (one line, exit 130)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import tabular.cli
from opo_toolkit.runlock import LOCK_NAME
from tabular import make_game
from tabular.cli import main

REPO = Path(__file__).resolve().parents[2]
LONG_RUN = ["run", "--algorithms", "online_ipo", "--game", "rps", "--tau", "0.1", "--steps", "10000000"]


def _start(*args):
    """``python -m tabular ARGS`` started in a subprocess with Ctrl-C delivered as in a terminal
    (a shell's background job would otherwise inherit SIGINT ignored)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "tabular", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path, proc, seconds=120):
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_run_on_a_busy_folder_stops_and_ctrl_c_is_one_line(tmp_path):
    """Two real processes on one --out: the second (even with --overwrite) exits 2 naming the first,
    changing nothing; Ctrl-C then stops the first with one line and exit 130, writing no result."""
    out = tmp_path / "run"
    first = _start(*LONG_RUN, "--out", str(out))
    try:
        _wait_for(out / LOCK_NAME, first)
        second = _start(*LONG_RUN, "--out", str(out), "--overwrite")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert err.count("\n") == 1 and err.startswith("python -m tabular run: error: ")
        assert f"is in use by pid {first.pid} on {socket.gethostname()}" in err
        assert os.listdir(out) == [LOCK_NAME] and first.poll() is None  # nothing changed, first runs on
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1] == (
        "python -m tabular run: interrupted before the results were written (run writes metrics.csv and "
        "config.json when every algorithm has finished; it does not resume): rerun the command")
    assert all(line.startswith("run: ") for line in lines[:-1])  # at most progress lines before it
    assert not out.exists()  # the lock made the folder; nothing else was written, so it is gone


def test_a_stale_lock_is_taken_over_with_a_one_line_note(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                             "started_utc": "2026-01-01 00:00:00", "command": "tabular"}))
    code = main(["run", "--algorithms", "online_ipo", "--game", "rps", "--tau", "0.1", "--steps", "5",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and f"pid {pid}" in notes[0] and "taking the lock over" in notes[0]
    assert sorted(os.listdir(out)) == ["config.json", "metrics.csv"]


def test_ctrl_c_in_solve_is_one_line_exit_130(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "P.npy", make_game("rps")[0])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tabular.cli, "solve_equilibrium", interrupted)
    assert main(["solve", "--matrix", str(tmp_path / "P.npy"), "--tau", "1"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "python -m tabular solve: interrupted; solve writes nothing: rerun the command\n"
    assert captured.out == ""
