"""Result files written atomically, and the package versions recorded beside them.

One implementation for every package (tabular CLI, figures, llm run folders): the bytes go to a
temporary file in the destination folder, which ``os.replace`` then renames over the target, so a
reader (or a run killed half-way) sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "package_versions",
           "check_output_dir", "check_output_file", "check_apart"]


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_output_dir(path) -> None:
    """Raise a one-line ``ValueError`` unless ``path`` is, or can be created as, a writable folder.

    Called before any computation and before anything is created: ``path`` itself is not made
    here. The nearest existing ancestor must be a folder in which a file can be created; that is
    probed with a temporary file, removed at once (``os.access`` says yes to root even on a
    read-only mount).
    """
    if not str(path).strip():
        # Path("") is "."; an empty --out would write into the working folder unasked.
        raise ValueError("--out is empty; name an output folder")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} exists and is not a folder")
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise ValueError(f"--out {path}: {existing} is a dangling symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot create --out {path}: {existing} is not a folder")
    _probe_writable(existing, f"--out {path}")


def check_apart(out, inputs: dict, flag: str = "--out") -> None:
    """Raise a one-line ``ValueError`` when the output ``out`` is, contains or lies inside one of
    ``inputs`` (``{flag: path}``; empty paths are skipped).

    Paths are compared after resolving symbolic links. An output folder that holds an input would
    be emptied by ``--overwrite``, and one inside an input folder would change that input.
    """
    target = Path(os.path.realpath(out))
    for name, path in inputs.items():
        if not path:
            continue
        source = Path(os.path.realpath(path))
        if target == source:
            relation = "is"
        elif target in source.parents:
            relation = "contains"
        elif source in target.parents:
            relation = "lies inside"
        else:
            continue
        raise ValueError(f"{flag} {out} {relation} the input {name} {path}; an output may not "
                         "overlap an input: choose another " + flag)


def _probe_writable(folder, what: str) -> None:
    """Create and remove a temporary file in ``folder`` (``os.access`` says yes to root even on a
    read-only mount); a one-line ValueError naming ``what`` when that fails."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
    except OSError as e:
        raise ValueError(f"{what} is not writable: cannot create a file in {folder} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path, flag: str) -> None:
    """Raise a one-line ``ValueError`` unless a file can be written at ``path`` atomically (a
    temporary file in its folder renamed over it): its folder exists and takes a new file, and
    ``path`` is not a folder. Writes nothing (the probe file is removed at once)."""
    if not str(path).strip():
        raise ValueError(f"{flag} is empty; name a file")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder, not a file")
    if path.exists() and not path.is_file():
        raise ValueError(f"{flag} {path} is not a regular file")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: the folder {folder} does not exist")
    _probe_writable(folder, f"{flag} {path}")


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def package_versions(names=("numpy", "scipy", "torch", "matplotlib", "transformers")) -> dict:
    """Python's and each installed package's version (None where a package is absent)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
