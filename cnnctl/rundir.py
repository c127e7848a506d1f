"""The run directory: create it, lock it, write into it atomically, find it again.

Layout (DESIGN 2)::

    runs/<name>/<YYYYmmdd-HHMMSS>[-k]/
      recipe.yaml  model.keras  best.keras  checkpoints/  logs/train  logs/validation
      history.csv  metrics.json  export/
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnctl.errors import CnnctlError, UserError

RECIPE = "recipe.yaml"
LOCK = ".lock"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def create(cls, runs_dir: str | os.PathLike, name: str) -> RunDir:
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

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``.lock`` (pid and host) while a process writes into this run."""
        lock = self.path / LOCK
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
        import shutil

        removed = []
        for folder in (self.path, self.path / "export"):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if entry.name.startswith(".") and ".tmp-" in entry.name:
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {write_failure(exc)}") from None
    return path


def save_model_atomic(model: Any, path: Path) -> Path:
    """``model.save`` to a temporary ``.keras`` file, fsync, then rename over ``path``."""
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
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


def resolve_run(run: str, runs_dir: str | os.PathLike = "runs") -> RunDir:
    """A run directory from a path, or ``latest`` for the newest run under ``runs_dir``."""
    if run == "latest":
        candidates = sorted(Path(runs_dir).glob(f"*/*/{RECIPE}"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise UserError(f"no runs under {runs_dir}/ yet: train one with `cnnctl train RECIPE`, "
                            "or give the run directory")
        return RunDir(candidates[-1].parent)
    path = Path(run)
    if not path.exists():
        raise UserError(f"{run}: no such run directory")
    if not (path / RECIPE).is_file():
        hint = ""
        inner = sorted(path.glob(f"*/{RECIPE}")) or sorted(path.glob(f"*/*/{RECIPE}"))
        if inner:
            hint = f"; runs inside it include {inner[-1].parent}"
        raise UserError(f"{run} is not a run directory (it has no {RECIPE}){hint}")
    return RunDir(path)


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
