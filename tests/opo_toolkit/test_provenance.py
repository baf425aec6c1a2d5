"""opo_toolkit.provenance: every field read from the machine, and the load checks benchmarks rely on."""

import os
import subprocess

import pytest

from opo_toolkit.provenance import (
    LoadWindow,
    git_state,
    load_average,
    load_too_high,
    load_warning,
    load_window,
    measured_provenance,
)


def _load(one: float) -> dict:
    return {"1min": one, "5min": one, "15min": one}


def test_provenance_reads_the_machine(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    import torch

    low = os.getloadavg()[0]
    p = measured_provenance(command=["bench.py", "--x"])
    high = os.getloadavg()[0]
    assert min(low, high) - 0.01 <= p["load_average"]["1min"] <= max(low, high) + 0.01
    assert p["cpu"]["logical_cores"] == os.cpu_count() and p["cpu"]["model"]
    assert p["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()
    assert p["cpu"]["float_path_env"] == {"MKL_CBWR": "COMPATIBLE"}  # only the variables that are set
    assert p["threads"] == {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": "1",
                            "torch_interop": torch.get_num_interop_threads()}
    assert p["versions"]["torch"] == torch.__version__ and p["versions"]["numpy"]
    assert p["command"] == "bench.py --x"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=os.path.dirname(__file__)).stdout.strip()
    assert p["git"]["commit"] == head


def test_provenance_without_torch_info_leaves_the_kernel_fields_empty():
    p = measured_provenance(torch_info=False, extra_packages=("surely-not-a-package-here",))
    assert p["cpu"]["capability"] is None and p["threads"]["torch"] is None
    assert p["versions"]["surely-not-a-package-here"] is None


def test_git_state_dirty_and_outside_a_repository(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run(git + ["init", "-q"], check=True)
    (tmp_path / "f").write_text("a")
    subprocess.run(git + ["add", "f"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    clean = git_state(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "f").write_text("b")
    assert git_state(tmp_path) == {"commit": clean["commit"], "dirty": True}
    (tmp_path / "untracked").write_text("x")  # untracked files do not count
    (tmp_path / "f").write_text("a")
    assert git_state(tmp_path)["dirty"] is False


def test_load_window_records_before_and_after():
    with load_window() as w:
        assert set(w.before) == set(load_average()) and w.after is None
    assert set(w.after) == {"1min", "5min", "15min"}
    assert w.as_dict() == {"before": w.before, "after": w.after}


@pytest.mark.parametrize("before,after,own,threshold,expected", [
    (0.5, 1.8, 1, 1.0, False),  # after - own threads = 0.8: the others left a core free
    (0.5, 1.8, 0, 1.0, True),  # the same readings, nothing taken off: 1.8 > 1
    (1.5, 1.0, 1, 1.0, True),  # busy before the measurement started
    (1.0, 2.0, 1, 1.0, False),  # exactly at the threshold is not above it
    (0.2, 3.5, 1, 1.0, True),  # others arrived during the run: 2.5 > 1
])
def test_load_too_high_on_planted_windows(before, after, own, threshold, expected):
    window = LoadWindow(before=_load(before), after=_load(after))
    assert load_too_high(threshold, window, own_threads=own) is expected
    warning = load_warning(threshold, window, own_threads=own)
    assert (warning is not None) is expected
    if expected:
        assert f"{max(before, after - own):.2f}" in warning and f"above the {threshold:g}" in warning


def test_load_too_high_now_against_the_current_reading():
    now = os.getloadavg()[0]
    assert load_too_high(now + 100) is False
    assert load_too_high(-1.0) is True  # any load is above a negative threshold
