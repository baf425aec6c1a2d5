"""One writer per output folder: the lock every stage that writes a run folder takes first.

Two processes given the same ``--out`` (started together, or the second with ``--overwrite`` while
the first still runs) would interleave their metric logs and leave a model from one and a config
from the other. :class:`RunLock` makes the second one stop with a one-line error naming the first.

The lock is ``OUT/.run.lock``, held with ``fcntl.flock``: the kernel releases it when its process
ends, however it ends, so a lock can never outlive its holder. The file records who holds it
(pid, host, start time, command); a file that can be locked but names another process is what a
killed run left behind: it is taken over with a one-line note (``on_stale``). A refused or finished
run removes the file, and the folder too when the lock created it and nothing else was written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from .cliargs import UsageError

__all__ = ["RunLock", "LOCK_NAME", "FolderInUse"]

LOCK_NAME = ".run.lock"


class FolderInUse(UsageError):
    """Another live process holds the folder's lock (a usage error: one line, exit 2)."""


def _holder(text: str) -> dict:
    try:
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except ValueError:
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')} (started "
            f"{info.get('started_utc', '?')} UTC: {info.get('command', '?')})")


def _alive(pid) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunLock:
    """The lock of the folder ``path`` (a context manager; :meth:`acquire` / :meth:`release`).

    ``acquire`` creates the folder (and its missing parents) when it does not exist, then
    ``path/.run.lock``; it raises :class:`FolderInUse` naming the holder when another live process
    has it. ``on_stale(message)`` is called (default: print it to stderr as ``note: ...``) when a
    lock left by a process that no longer runs is taken over.
    """

    def __init__(self, path, on_stale=None):
        self.path = Path(path)
        self.file = self.path / LOCK_NAME
        self.on_stale = on_stale or (lambda message: print(f"note: {message}", file=sys.stderr, flush=True))
        self._fd: int | None = None
        self._created: list[Path] = []  # folders this lock created, deepest last

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self.held:
            return self
        missing = []
        p = self.path
        while not p.exists():
            missing.append(p)
            p = p.parent
        self.path.mkdir(parents=True, exist_ok=True)
        self._created = list(reversed(missing))
        try:
            while True:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    os.close(fd)
                    if e.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                        raise
                    try:
                        info = _holder(self.file.read_text())
                    except OSError:
                        info = {}
                    raise FolderInUse(f"{self.path} is in use by {_describe(info)}; wait for it to "
                                      "finish or choose another --out") from None
                try:  # the holder may have removed the file between our open and our lock
                    same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            with os.fdopen(os.dup(fd), "r") as f:
                old = _holder(f.read())
            if old and old.get("pid") != os.getpid():
                here = old.get("host") == socket.gethostname()
                state = ("no longer runs" if not here or not _alive(old.get("pid"))
                         else "is running but does not hold the lock")
                self.on_stale(f"{self.path} was locked by {_describe(old)}, which {state}; "
                              "taking the lock over")
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                    "command": " ".join([os.path.basename(sys.argv[0] or "python")] + sys.argv[1:])}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            self._fd = fd
        except BaseException:
            self._remove_created()
            raise
        return self

    def release(self) -> None:
        """Remove the lock file (still holding the lock, so no one else sees a half-removed one),
        then the folders the lock created if nothing else was written into them."""
        if self._fd is None:
            return
        try:
            os.unlink(self.file)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in reversed(self._created):
            try:
                folder.rmdir()  # only an empty folder: a run that wrote something keeps it
            except OSError:
                break
        self._created = []

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
