"""Provenance that is measured, not written: what a benchmark or a run was taken on, and how busy
the machine was while it ran.

One description for every benchmark and run (``benchmarks/*.py``; ``llm.pipeline`` can use it too):

- :func:`measured_provenance`: UTC date, load average now (1/5/15 min), CPU model and logical
  cores, torch's CPU kernel level (``torch.backends.cpu.get_cpu_capability()``) and the variables
  that force it (``ATEN_CPU_CAPABILITY``, ``MKL_CBWR``, ``ONEDNN_MAX_CPU_ISA``), threads (torch's
  and ``OMP_NUM_THREADS``), package versions, git commit and whether the tree is dirty, command.
- :func:`load_window`: ``with load_window() as w: ...`` records the load average before and after
  a measurement (``w.as_dict()`` for the results file).
- :func:`load_too_high` / :func:`load_warning`: whether the load average exceeds what a benchmark
  needs, so that it can refuse to write, or flag, a result taken on a busy machine.

The load average counts runnable processes (``os.getloadavg``), averaged over 1, 5 and 15 minutes;
on a machine with ``c`` cores a benchmark that runs ``t`` threads gets a core for each of them
only while the others' load stays below ``c - t``. The value read *after* a measurement includes
the benchmark's own threads.

Nothing here imports torch at module import: :func:`measured_provenance` imports it (if installed)
only when called with ``torch_info=True`` (the default), and reads it only if already imported with
``torch_info=None``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from .files import package_versions

__all__ = ["measured_provenance", "load_average", "LoadWindow", "load_window", "load_too_high",
           "load_warning", "cpu_model", "git_state", "FLOAT_PATH_ENV", "VERSIONED_PACKAGES"]

# Environment variables that choose the CPU kernels, hence the round-off (llm/README.md, "Another
# floating-point path").
FLOAT_PATH_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
VERSIONED_PACKAGES = ("numpy", "scipy", "torch", "transformers")
_REPO = Path(__file__).resolve().parents[1]


def load_average() -> dict:
    """The load average now: ``{"1min", "5min", "15min"}`` (None where the OS has none)."""
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):  # Windows has no load average
        return {"1min": None, "5min": None, "15min": None}
    return {"1min": round(one, 2), "5min": round(five, 2), "15min": round(fifteen, 2)}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(repo: Path = _REPO) -> dict:
    """``{"commit", "dirty"}`` of the checkout holding this code (None, None outside git); dirty
    means tracked files differ from the commit (untracked files are not counted)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def _torch_info(torch_info: bool | None) -> dict:
    """torch's kernel level and threads; ``{}`` if torch is absent, or not yet imported and
    ``torch_info`` is not True (importing torch costs seconds: a numpy-only benchmark skips it)."""
    if torch_info is False or (torch_info is None and "torch" not in sys.modules):
        return {}
    try:
        import torch
    except ImportError:
        return {}
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads()}


def measured_provenance(command: list[str] | str | None = None, torch_info: bool | None = True,
                        extra_packages=()) -> dict:
    """Where a result comes from, every field read from the machine at the time of the call.

    Args:
      command: the command line to record (default ``sys.argv``, as run).
      torch_info: read torch's CPU capability and threads (True: import torch if installed; None:
        only if already imported; False: never).
      extra_packages: more package names whose versions to record (e.g. ``("trl",)``); a package
        that is not installed gets None.

    Returns a JSON-ready dict: ``date_utc``, ``load_average`` (``1min``, ``5min``, ``15min``),
    ``cpu`` (``model``, ``logical_cores``, ``capability``, ``float_path_env``), ``threads``
    (``torch``, ``torch_interop``, ``OMP_NUM_THREADS``), ``platform``, ``versions`` (python, numpy,
    scipy, torch, transformers, extras; None where absent), ``git`` (``commit``, ``dirty``),
    ``command``.
    """
    torch_part = _torch_info(torch_info)
    if command is None:
        command = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": load_average(),
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(),
                "capability": torch_part.get("cpu_capability"),
                "float_path_env": {k: os.environ[k] for k in FLOAT_PATH_ENV if k in os.environ}},
        "threads": {"torch": torch_part.get("torch_threads"),
                    "torch_interop": torch_part.get("torch_interop_threads"),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "versions": package_versions((*VERSIONED_PACKAGES, *extra_packages)),
        "git": git_state(),
        "command": command if isinstance(command, str) else " ".join(command),
    }


@dataclasses.dataclass
class LoadWindow:
    """The load average (``{"1min", "5min", "15min"}``) before and after a measurement; ``after``
    is None until the ``with`` block ends. The ``after`` values include the measurement itself."""

    before: dict
    after: dict | None = None

    def as_dict(self) -> dict:
        return {"before": self.before, "after": self.after}


@contextlib.contextmanager
def load_window():
    """``with load_window() as w: measure()`` -> ``w.before``, ``w.after`` (load averages)."""
    window = LoadWindow(before=load_average())
    try:
        yield window
    finally:
        window.after = load_average()


def _others_load(window: LoadWindow | None, own_threads: float) -> float | None:
    """The 1-minute load of the others: now, or the larger of ``before`` and ``after - own_threads``."""
    if window is None:
        return load_average()["1min"]
    values = [window.before["1min"]]
    if window.after is not None and window.after["1min"] is not None:
        values.append(window.after["1min"] - own_threads)
    values = [v for v in values if v is not None]
    return max(values) if values else None


def load_too_high(threshold: float, window: LoadWindow | None = None, own_threads: float = 0) -> bool:
    """True if the others' 1-minute load average exceeds ``threshold``: now, or (given a ``window``)
    before the measurement or after it less the benchmark's ``own_threads`` (the ``after`` reading
    counts them). No load average (Windows): False.

    ``threshold`` is what the benchmark needs: ``t`` threads on ``c`` cores, each wanting a core of
    its own, stand the others' load up to ``c - t``.
    """
    load = _others_load(window, own_threads)
    return load is not None and load > threshold


def load_warning(threshold: float, window: LoadWindow | None = None, own_threads: float = 0) -> str | None:
    """A one-line flag for the results file if :func:`load_too_high`, else None."""
    if not load_too_high(threshold, window, own_threads):
        return None
    load = _others_load(window, own_threads)
    return (f"the other jobs' 1-minute load average reached {load:.2f}, above the {threshold:g} this "
            f"benchmark can stand on {os.cpu_count()} cores: they shared its cores, so times and ratios "
            f"are not those of a quiet machine")
