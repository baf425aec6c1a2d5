"""opo_toolkit/files.py and opo_toolkit/runlock.py: outputs that overlap inputs, outputs that cannot be
written, and the one-writer lock of a run folder (held, released, stale)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from opo_toolkit.cliargs import UsageError
from opo_toolkit.files import check_apart, check_output_file
from opo_toolkit.runlock import LOCK_NAME, FolderInUse, RunLock


@pytest.mark.parametrize("out, relation", [("m", "is"), ("m/sub", "lies inside"), (".", "contains"),
                                           ("link", "is")])
def test_an_output_overlapping_an_input_is_refused(tmp_path, monkeypatch, out, relation):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "m")  # the same folder by another name
    with pytest.raises(ValueError, match=f"--out {out} {relation} the input --sft m") as e:
        check_apart(out, {"--sft": "m", "--pm": ""})
    assert "\n" not in str(e.value)


def test_outputs_apart_from_the_inputs_pass(tmp_path):
    (tmp_path / "m").mkdir()
    check_apart(tmp_path / "m2", {"--sft": str(tmp_path / "m")})  # a shared name prefix is not a parent
    check_apart(tmp_path / "out", {"--sft": str(tmp_path / "m"), "--rm": ""})


@pytest.mark.parametrize("where, message", [
    ("folder", "is a folder"), ("nodir/v.json", "does not exist"), ("/proc/version", "not writable"),
    ("", "is empty")])
def test_an_output_file_that_cannot_be_written_is_refused_before_writing(tmp_path, where, message):
    (tmp_path / "folder").mkdir()
    path = where if where.startswith("/") or not where else str(tmp_path / where)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=message):
        check_output_file(path, "--json")
    assert sorted(os.listdir(tmp_path)) == before  # the probe file is gone


def test_a_writable_output_file_passes(tmp_path):
    check_output_file(str(tmp_path / "v.json"), "--json")
    assert os.listdir(tmp_path) == []


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    out = tmp_path / "a" / "run"
    with RunLock(out):
        info = json.loads((out / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(FolderInUse, match=f"is in use by pid {os.getpid()} on") as e:
            RunLock(out).acquire()  # another open file description: flock refuses it, as for a process
        assert isinstance(e.value, UsageError) and "\n" not in str(e.value)
        assert (out / LOCK_NAME).exists()  # the refused attempt left the holder's lock alone
    assert not (tmp_path / "a").exists()  # nothing was written: the folders the lock made are gone


def test_a_released_lock_keeps_a_folder_with_results(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        (out / "metrics.csv").write_text("x\n")
    assert os.listdir(out) == ["metrics.csv"]
    with RunLock(out):  # and can be taken again
        pass


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(done.stdout)


def test_a_stale_lock_of_a_killed_process_is_taken_over_with_a_note(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    pid = _dead_pid()
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                             "started_utc": "2026-01-01 00:00:00", "command": "x"}))
    notes = []
    with RunLock(out, on_stale=notes.append):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(notes) == 1 and f"pid {pid}" in notes[0] and "no longer runs" in notes[0]
    assert not (out / LOCK_NAME).exists()


def test_a_lock_of_a_live_process_is_not_stale(tmp_path):
    """Twin of the stale case: a lock held by another running process is refused, not taken over."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from opo_toolkit.runlock import RunLock\n"
                               f"RunLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep
                                       + os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    try:
        assert holder.stdout.readline().strip() == "held"
        notes = []
        with pytest.raises(FolderInUse, match=f"pid {holder.pid}"):
            RunLock(out, on_stale=notes.append).acquire()
        assert notes == []
    finally:
        holder.kill()
        holder.wait()
    with RunLock(out, on_stale=notes.append):  # killed: its lock is now stale
        pass
    assert len(notes) == 1 and f"pid {holder.pid}" in notes[0]
