"""Run folders, devices, atomic checkpoints and metric logs shared by every stage.

Run folder ``OUT``: ``config.json`` (the resolved stage config), ``metrics.csv`` + ``metrics.jsonl``
(one row per logged step), ``checkpoint.pt`` (latest, written atomically: temp file + ``os.replace``,
so a kill leaves either the old or the new checkpoint, never half of one) and the stage's models.

A checkpoint holds the model and optimizer state, the step, the torch RNG states (global and the
run's own generators) and the config; :func:`load_checkpoint` refuses (one line naming the file) a
file it cannot read or whose config differs from the current one outside ``RESUMABLE_CHANGES``.

Every stage runs the same skeleton (:class:`Stage`): :func:`open_stage` (validate, device, join
torchrun's processes, check the folder, writing nothing) -> load inputs -> :meth:`Stage.begin`
(create the folder, ``config.json``) -> :meth:`Stage.resume` (checkpoint, metric log) -> loop over
:meth:`Stage.steps` with :meth:`Stage.log` and :func:`save_checkpoint` -> :meth:`Stage.finish`
(``done.json``). Under torchrun (:mod:`llm.distributed`) rank 0 alone reads and writes the folder
and tells the other processes what it found.

Safety of the folder (:func:`claim_run_dir`, used by every stage and by pipeline/study/judges):
``--out`` may not be, contain or lie inside one of the stage's inputs (``--overwrite`` would delete
it); the folder is locked for the whole run (:class:`opo_toolkit.runlock.RunLock`: a second process on
the same ``--out`` stops with one line naming the first; a lock left by a killed run is taken
over with a note). Every ``run_*`` stage function is wrapped by :func:`stage_function`, which
releases the folders the call opened however it ends and, on Ctrl-C, notes on the
``KeyboardInterrupt`` where the run stopped (the CLI prints that one line and exits 130).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
import os
import shutil

import torch

from opo_toolkit.cliargs import UsageError
from opo_toolkit.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_apart,
    check_output_dir,
)
from opo_toolkit.progress import progress as progress_bar
from opo_toolkit.runlock import LOCK_NAME, RunLock

from . import distributed
from .config import ADDED_FIELDS, RESUMABLE_CHANGES
from .flag_values import recorded_config
from .presets import PRESETS, apply_preset
from .tasks import make_task

__all__ = ["resolve_device", "autocast", "setup_torch", "open_stage", "Stage", "prepare_run_dir",
           "claim_run_dir", "stage_function", "start_run_dir", "write_config", "save_checkpoint",
           "load_checkpoint", "MetricLog", "CHECKPOINT"]

CHECKPOINT = "checkpoint.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown --device {name!r}") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return device


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked; a no-op context otherwise."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def setup_torch(config) -> torch.device:
    """Set the CPU threads and resolve ``--device``; refuse a torchrun launch of a stage that does
    not split its batch (only configs with ``shards`` run data-parallel), and ``--preset gpu``
    without a GPU (it would silently become a days-long CPU run without bf16)."""
    if distributed.launched_world_size() > 1 and not hasattr(config, "shards"):
        raise UsageError(f"{type(config).__name__} runs in one process; "
                         "torchrun runs sft, train-pm and align")
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    if getattr(config, "preset", "none") == "gpu" and device.type != "cuda":
        raise UsageError("--preset gpu is sized for one H100/H200 (a 12-layer d=768 GPT-2, 86 M parameters, "
                         "with bf16 autocast, which needs CUDA) and this run would be on the CPU: run it on "
                         "a GPU machine, or leave --preset out for the CPU sizes")
    return device


def read_done(out: str) -> dict | None:
    """The ``done.json`` of a finished run in ``out``, or None."""
    path = os.path.join(out, "done.json")
    if not os.path.isfile(path):
        return None
    try:  # written atomically, so a bad one was damaged after the run: say so, do not guess
        with open(path) as f:
            done = json.load(f)
        if not isinstance(done, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise UsageError(f"corrupt {path} ({' '.join(str(e).split())}); delete it to finish "
                         "the run again from its checkpoint") from None
    return done


class _OpenFolder:
    """A run folder this process runs in: its lock (rank 0) and how far the run has got."""

    def __init__(self, out: str, lock: RunLock | None):
        self.out, self.lock = out, lock
        self.step = self.total = self.checkpoint = self.bar = None
        self.begun = False  # start_run_dir has created or emptied the folder

    def where(self) -> str:
        """Where a run interrupted now stopped, and how to continue it (one line)."""
        if not self.begun:
            return f"interrupted before anything was written to {self.out}: rerun the same command"
        if not self.total:
            return f"interrupted in {self.out}; rerun the same command with --resume to continue"
        saved = (f"its last checkpoint is step {self.checkpoint}" if self.checkpoint
                 else "no checkpoint was written yet")
        done = max(self.step or 0, self.checkpoint or 0)  # a step ends with its checkpoint
        return (f"interrupted after {done} of {self.total} steps in {self.out} ({saved}); "
                "rerun the same command with --resume to continue from the checkpoint")


_OPEN: list[_OpenFolder] = []  # the run folders open in this process, outermost (a pipeline) first


def stage_function(run):
    """Decorator of the ``run_*`` stage functions: resolve ``--preset gpu`` (:func:`llm.presets.apply_preset`)
    into the config before the stage validates it; whatever way the call ends, release the run
    folders it opened (their locks); on Ctrl-C, note on the ``KeyboardInterrupt`` where the
    innermost run stopped (:func:`opo_toolkit.cliargs.run_command` prints the note)."""
    @functools.wraps(run)
    def wrapper(cfg, *args, **kwargs):
        depth = len(_OPEN)
        if getattr(cfg, "preset", None) in PRESETS:  # the stages' presets (the study's are its own)
            # the preset fills the flags left at their defaults before anything checks them
            # (validate() only checks), so config.json records the values used
            apply_preset(cfg)
        try:
            return run(cfg, *args, **kwargs)
        except KeyboardInterrupt as e:
            if len(_OPEN) > depth and not getattr(e, "__notes__", None):
                e.add_note(_OPEN[-1].where())
            for folder in _OPEN[depth:]:  # end a terminal's bar line before the one-line message
                if folder.bar is not None:
                    getattr(folder.bar, "interrupt", folder.bar.close)()
            raise
        finally:
            while len(_OPEN) > depth:
                folder = _OPEN.pop()
                if folder.lock is not None:
                    folder.lock.release()
    return wrapper


def claim_run_dir(cfg) -> bool:
    """Check ``cfg.out`` (:func:`prepare_run_dir`) with the folder locked; returns True when
    resuming. The lock is held until the :func:`stage_function` that called this returns; a refused
    folder is released at once (the lock file, and the folder when the lock created it, removed)."""
    try:
        check_output_dir(cfg.out)  # before the lock creates anything
        check_apart(cfg.out, cfg.inputs())
    except ValueError as e:
        raise UsageError(str(e)) from None
    lock = RunLock(cfg.out).acquire()
    try:
        resuming = prepare_run_dir(cfg)
    except BaseException:
        lock.release()
        raise
    _OPEN.append(_OpenFolder(cfg.out, lock))
    return resuming


def _check_run_dir(cfg) -> tuple[bool, dict | None]:
    resuming = claim_run_dir(cfg)
    return resuming, read_done(cfg.out) if resuming else None


def _shards(cfg) -> int:
    """The number of shards of each step's batch: ``--shards``, or one per process (``--shards 0``).
    The batch must split evenly over the shards and the shards over the processes."""
    world = distributed.world_size()
    shards = cfg.shards or world
    if shards % world:
        raise UsageError(f"--shards {shards} does not split over {world} processes; "
                         f"pass a multiple of {world}")
    if cfg.batch_size % shards:
        raise UsageError(f"--batch-size {cfg.batch_size} does not split into {shards} equal shards")
    return shards


def open_stage(cfg) -> "Stage":
    """The start every stage shares: validate ``cfg``, set threads and device, join torchrun's
    processes, check the run folder (rank 0; writing nothing) and build the task. When a resumed
    run had already finished, ``stage.finished`` holds its ``done.json`` and there is nothing to do."""
    cfg.validate()
    device = distributed.init(setup_torch(cfg))
    shards = _shards(cfg) if hasattr(cfg, "shards") else 1
    resuming, finished = distributed.on_rank_zero(_check_run_dir, cfg)
    if not distributed.is_writer():  # rank 0 holds the lock; the others only track their step
        _OPEN.append(_OpenFolder(cfg.out, None))
    task = None if finished else make_task(cfg.task, cfg.task_seed)
    return Stage(cfg, resuming, finished, device, task, shards)


class Stage:
    """One stage's run folder from open to finish; rank 0 writes, every process runs the steps.

    Attributes: ``cfg``, ``resuming``, ``finished`` (done.json of a finished run, else None),
    ``device``, ``task``, ``shards`` (of each step's batch), ``start`` (first step), ``rows``
    (logged metric rows), ``bar``."""

    def __init__(self, cfg, resuming: bool, finished: dict | None, device, task, shards: int = 1):
        self.cfg, self.resuming, self.finished, self.device, self.task = cfg, resuming, finished, device, task
        self.shards, self.writer = shards, distributed.is_writer()
        self.start, self._log, self.rows, self.bar = 0, None, [], None
        self.folder = _OPEN[-1] if _OPEN and _OPEN[-1].out == cfg.out else None  # for a Ctrl-C line
        self.total_steps = getattr(cfg, "steps", 0)  # a stage of phases (train-pm --pm-init rm) sets more

    def begin(self) -> None:
        """All inputs checked: create (or, with --overwrite, empty) the folder and write config.json."""
        if self.writer:
            start_run_dir(self.cfg, self.resuming)

    def resume(self, model, optimizer, generators: dict) -> int:
        """Restore the checkpoint when resuming and open the metric log. Returns the first step."""
        has_checkpoint = self.resuming and distributed.on_rank_zero(
            os.path.isfile, os.path.join(self.cfg.out, CHECKPOINT))
        if has_checkpoint:
            self.start, _ = load_checkpoint(self.cfg.out, self.cfg, model, optimizer, generators)
            if self.folder is not None:
                self.folder.checkpoint = self.start
        if self.writer:
            self._log = MetricLog(self.cfg.out, resume_step=self.start if self.resuming else None)
            self.rows = self._log.rows
        return self.start

    def steps(self, desc: str, progress: bool):
        """``range(start, total_steps)`` with a progress bar (rank 0)."""
        self.bar = progress_bar(self.total_steps, desc=desc, unit="step", initial=self.start,
                                disable=not (progress and self.writer))
        if self.folder is not None:
            self.folder.bar = self.bar
        for step in range(self.start, self.total_steps):
            if self.folder is not None:
                self.folder.step, self.folder.total = step, self.total_steps
            yield step
            self.bar.update(1)
        self.bar.close()

    def log_due(self, step: int) -> bool:
        return step % self.cfg.log_every == 0 or step == self.total_steps

    def checkpoint_due(self, step: int) -> bool:
        return step % self.cfg.checkpoint_every == 0

    def log(self, row: dict) -> None:
        if self._log is not None:
            self._log.log(row)
        else:
            self.rows.append(row)

    def finish(self, info: dict) -> dict:
        """Write ``done.json`` (rank 0); every process returns rank 0's ``info``."""
        if self.writer:
            atomic_write_json(os.path.join(self.cfg.out, "done.json"), info)
        return distributed.broadcast_object(info)


def prepare_run_dir(config) -> bool:
    """Check ``config.out`` may hold this run. Returns True when resuming. Writes nothing.

    A folder that already holds a run (``config.json``) is refused unless ``--resume`` (same stage)
    or ``--overwrite``; a non-empty folder that is not a run folder is never overwritten.
    """
    out = config.out
    try:
        check_output_dir(out)  # a file in the way, a read-only place: refused before any work
    except ValueError as e:
        raise UsageError(str(e)) from None
    existing = os.path.join(out, "config.json")
    has_run = os.path.isfile(existing)
    if has_run and _is_model_config(existing):  # a model folder is not a run: never replaced
        raise UsageError(f"--out {out} holds a model (its config.json is a transformers config), not a "
                         "run; it is never overwritten: choose another --out")
    if not has_run and os.path.isdir(out) and set(os.listdir(out)) - {LOCK_NAME}:
        raise UsageError(f"--out is a non-empty folder that holds no run: {out}"
                         + ("; --resume continues only a run of this stage" if config.resume else ""))
    if has_run and not (config.resume or config.overwrite):
        raise UsageError(f"{out} already holds a run; "
                         "pass --resume to continue it or --overwrite to replace it")
    if has_run and config.resume:
        try:
            with open(existing) as f:
                old = json.load(f)
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {existing}: {' '.join(str(e).split())}") from None
        fields = set(dataclasses.asdict(config))
        if set(old) - fields or (fields - set(old)) - ADDED_FIELDS:
            raise UsageError(f"{out} holds a run of another stage (its config.json has other fields); "
                             "--resume continues only a run of this stage")
        _check_same(old, dataclasses.asdict(config), existing, config)
        for name in (CHECKPOINT, "done.json", "metrics.jsonl", "metrics.csv"):
            path = os.path.join(out, name)
            if os.path.lexists(path) and not os.path.isfile(path):
                raise UsageError(f"cannot resume: {path} is not a regular file")
    return has_run and config.resume


def _is_model_config(path: str) -> bool:
    """Whether ``path`` is the ``config.json`` of a saved model (``model_type``), not of a run."""
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False  # a damaged run config: the checks of --resume name it
    return isinstance(config, dict) and "model_type" in config


def start_run_dir(config, resuming: bool) -> None:
    """Create (or, with --overwrite, empty) the run folder and write ``config.json``. Emptying
    keeps the folder's lock (:func:`claim_run_dir`)."""
    for folder in _OPEN:
        if folder.out == config.out:
            folder.begun = True
    if config.overwrite and os.path.isdir(config.out):
        for entry in os.scandir(config.out):
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    os.makedirs(config.out, exist_ok=True)
    if not resuming:
        write_config(config, os.path.join(config.out, "config.json"))


def write_config(config, path: str) -> None:
    atomic_write_text(path, json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True))


def _check_same(old: dict, new: dict, path: str, config) -> None:
    """Refuse to resume where the recorded config differs from the current one (outside
    ``RESUMABLE_CHANGES``). A field of :data:`~llm.config.ADDED_FIELDS` the recorded config lacks
    counts as unchanged when the current run leaves it at its default. The recorded config is read
    through :func:`llm.flag_values.recorded_config`: a typed list flag recorded as a JSON list, or as
    the words of a run from before the flags were typed, equals the same value."""
    old = recorded_config(type(config), old)
    defaults = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(config) if f.name in ADDED_FIELDS}
    diff = sorted(k for k in set(old) | set(new)
                  if k not in RESUMABLE_CHANGES and old.get(k, defaults.get(k)) != new.get(k))
    if diff:
        raise UsageError(f"checkpoint/config mismatch in {path}: {', '.join(diff)} "
                         "differ from the current run")


def save_checkpoint(out: str, step: int, config, model, optimizer, generators: dict, extra=None) -> None:
    """Atomically write ``OUT/checkpoint.pt`` (temp file + rename). Under torchrun every process
    calls it with the generators of its own shards; rank 0 writes them all."""
    generators = distributed.gather_dicts({k: g.get_state() for k, g in generators.items()})
    if not distributed.is_writer():
        return
    state = {
        "step": step,
        "world_size": distributed.world_size(),  # with --shards 0 the processes are the shards
        # generator states are device-specific (a CUDA state does not fit a CPU generator)
        "device": next(model.parameters()).device.type,
        "config": dataclasses.asdict(config),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": generators,
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(os.path.join(out, CHECKPOINT), buf.getvalue())
    for folder in _OPEN:
        if folder.out == out:
            folder.checkpoint = step


def load_checkpoint(out: str, config, model, optimizer, generators: dict) -> tuple[int, dict]:
    """Restore a checkpoint into ``model``/``optimizer``/``generators``; returns (step, extra).
    Under torchrun rank 0 reads the file and sends it to the others (no shared folder needed).

    Raises :class:`UsageError` naming the file when it is unreadable or from another configuration.
    """
    here = next(model.parameters()).device.type
    state = distributed.on_rank_zero(_read_checkpoint, out, config, here)
    path = os.path.join(out, CHECKPOINT)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for k, g in generators.items():
            g.set_state(state["generators"][k])
    except (RuntimeError, KeyError, ValueError) as e:
        raise UsageError(f"checkpoint {path} does not match the model: {str(e).splitlines()[0]}") from None
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), state["extra"]


def _read_checkpoint(out: str, config, here: str) -> dict:
    path = os.path.join(out, CHECKPOINT)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError("not a checkpoint of this project")
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"corrupt checkpoint {path}: {reason}") from None
    _check_same(state["config"], dataclasses.asdict(config), path, config)
    if state.get("device", here) != here:
        raise UsageError(f"checkpoint {path} was written on {state['device']} and this run is on {here}: "
                         f"the random-number streams are device-specific; resume with --device "
                         f"{state['device']}")
    written_by, world = state.get("world_size", 1), distributed.world_size()
    if written_by != world and not getattr(config, "shards", 1):
        raise UsageError(f"checkpoint {path} was written by {written_by} process(es), "
                         "one shard each (--shards 0), "
                         f"and this run has {world}: resume it with torchrun --nproc_per_node={written_by}")
    return state


def _read_rows(path: str) -> list[dict]:
    """The rows of a ``metrics.jsonl``. A torn last line (a kill during the append, which is not
    atomic) is dropped: the rewrite that follows truncates it. A bad line elsewhere is refused."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("no integer 'step'")
        except ValueError as e:
            if i == len(lines) - 1:  # the file does not end with a newline: the torn last append
                break
            raise UsageError(f"cannot resume: {path} line {i + 1} is not a metrics row ({e})") from None
        rows.append(row)
    return rows


class MetricLog:
    """Append rows to ``metrics.csv`` and ``metrics.jsonl``; on resume, drop rows after the checkpoint."""

    def __init__(self, out: str, name: str = "metrics", resume_step: int | None = None):
        self.csv_path = os.path.join(out, name + ".csv")
        self.jsonl_path = os.path.join(out, name + ".jsonl")
        self.rows: list[dict] = []
        if resume_step is not None and os.path.isfile(self.jsonl_path):
            self.rows = [r for r in _read_rows(self.jsonl_path) if r["step"] <= resume_step]
        self._rewrite()

    def log(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_csv()

    def _rewrite(self) -> None:
        atomic_write_text(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def _write_csv(self) -> None:
        keys = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()  # rewritten whole at each log, atomically: never half a file
        writer = csv.DictWriter(buf, fieldnames=keys or ["step"])
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buf.getvalue())
