"""``Run``: one run directory. Create it, lock it, write into it atomically, read what it holds.

Files that others read are written under a temporary name, fsynced and renamed
(``atomic_write_text``, ``save_model_atomic``), so a crash never leaves half a file
under its final name. ``cnnctl.run.layout`` names every file and folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnctl.errors import CnnctlError, UserError
from cnnctl.run import layout


@dataclass(frozen=True)
class Run:
    """A run directory (``runs/NAME/STAMP``). ``Run(path)`` takes it as it is; ``cnnctl.run.find_run`` checks a
    path a user gave and says what is wrong with it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def create(cls, runs_dir: str | os.PathLike, name: str) -> Run:
        """A new, empty run directory under ``runs_dir/name``; never one another process has."""
        parent = Path(runs_dir) / name
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot make the run folder {parent}: {exc.strerror or exc}") from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for k in range(1000):
            path = parent / (stamp if k == 0 else f"{stamp}-{k}")
            try:
                path.mkdir()  # atomic: fails if another process made it first
            except FileExistsError:
                continue
            return cls(path)
        raise UserError(f"{parent}: could not find a free run directory name for {stamp}")

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:  # a Run goes wherever a path does (open, shutil, os.path)
        return str(self.path)

    @property
    def name(self) -> str:
        """The recipe's name: the folder above the stamp (``runs/digits_cnn/20250101-120000`` -> digits_cnn)."""
        return self.path.parent.name

    def metrics(self) -> dict[str, Any]:
        """metrics.json, or an empty mapping before training has written it."""
        data = self.read_json(layout.METRICS) if (self.path / layout.METRICS).is_file() else {}
        return data if isinstance(data, dict) else {}

    @property
    def status(self) -> str | None:
        """``completed``, ``exporting``, ``interrupted``, ``failed``, or None when training never ended."""
        return self.metrics().get("status")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``.lock`` (pid and host) while a process writes into this run."""
        lock = self.path / layout.LOCK
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock.read_text(errors="replace").strip() or "unknown"
            if not _dead_here(holder):
                raise UserError(f"{self.path} is in use by another process ({holder}); "
                                f"if that process is dead, delete {lock}") from None
            print(f"warning: {self.path}: taking over the lock of a process that is gone ({holder})",
                  file=sys.stderr)
            lock.unlink(missing_ok=True)
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    def remove_leftovers(self) -> list[str]:
        """Remove the temporary files a killed process left in the run and its export/ folder (call it holding
        the lock: no other writer is then at work); the names removed."""
        removed = []
        for folder in (self.path, self.path / layout.EXPORT):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if layout.is_temporary(entry.name):
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                    removed.append(entry.name)
        return removed

    def write_json(self, name: str, data: Any) -> Path:
        return atomic_write_text(self.path / name, json.dumps(data, indent=2, sort_keys=False) + "\n")

    def read_json(self, name: str) -> Any:
        with open(self.path / name, encoding="utf-8") as f:
            return json.load(f)

    def update_json(self, file_name: str, /, **fields: Any) -> Path:
        """Set ``fields`` in the JSON file ``file_name`` of the run (created if missing), atomically."""
        data = self.read_json(file_name) if (self.path / file_name).exists() else {}
        data.update(fields)
        return self.write_json(file_name, data)


class WriteError(CnnctlError):
    """A file of the run could not be written (a full disk, a read-only folder): the job fails, exit 1.

    The file it was to replace is left as it was."""


def atomic_write_text(path: Path, text: str) -> Path:
    """Write to a temporary name, fsync, then rename: readers never see half a file."""
    tmp = layout.temporary_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {write_failure(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)  # whatever failed (text with no UTF-8 encoding too): no half file left
    return path


def save_model_atomic(model: Any, path: Path) -> Path:
    """``model.save`` to a temporary ``.keras`` file, fsync, then rename over ``path``."""
    tmp = layout.temporary_path(path, keep_suffix=True)
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as exc:  # h5py and zipfile report a full disk as OSError too
        raise WriteError(f"cannot write {path}: {write_failure(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_failure(exc: OSError) -> str:
    """Why a write failed, in words: a full disk is named as such."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return exc.strerror or str(exc)


def _dead_here(holder: str) -> bool:
    """True when ``holder`` ("pid N on HOST") names a process of this host that no longer runs."""
    parts = holder.split()
    if len(parts) != 4 or parts[0] != "pid" or not parts[1].isdigit() or parts[3] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
