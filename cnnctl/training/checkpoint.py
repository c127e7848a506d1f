"""``RUN/checkpoints/``: cnnctl's own checkpoints, what ``--resume`` and crash recovery read.

A checkpoint is a folder and its manifest, side by side::

    checkpoints/ckpt-000000120/state.npz    every variable: model (seed states included), optimizer, metrics
    checkpoints/ckpt-000000120/state.json   epoch, step, history rows, best epoch, callbacks' counters
    checkpoints/ckpt-000000120.json         the manifest: epoch, step, and each file's size and SHA-256

The number is the training step the checkpoint was taken at. The folder is
written under a temporary name, every file fsynced, and renamed; the manifest is
written last, the same way. So a checkpoint without a valid manifest was never
finished and does not exist, and one whose files do not match their manifest
(a truncated or damaged file) is skipped with a warning for the one before it.
The newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnctl.run import layout
from cnnctl.run.rundir import WriteError, fsync_folder, write_failure

FOLDER = layout.CHECKPOINTS
FORMAT = 1
_PREFIX = "ckpt-"
_ARRAYS, _STATE = "state.npz", "state.json"


@dataclass
class Checkpoint:
    """A verified checkpoint: ``epoch`` epochs and then ``step`` batches of the next one were trained."""

    path: Path
    epoch: int
    step: int
    global_step: int
    state: dict[str, Any]
    arrays: dict[str, np.ndarray]


def write_checkpoint(run_path: Path, *, epoch: int, step: int, global_step: int, state: dict[str, Any],
                     arrays: dict[str, np.ndarray], keep: int) -> Path:
    """Write a checkpoint atomically (folder, then manifest), then drop all but the newest ``keep``."""
    folder = Path(run_path) / FOLDER
    name = f"{_PREFIX}{global_step:09d}"
    target, manifest = folder / name, folder / f"{name}.json"
    temporary = folder / f".{name}.tmp-{os.getpid()}"
    try:
        folder.mkdir(exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        files = {_ARRAYS: _write_file(temporary / _ARRAYS, lambda f: np.savez(f, **arrays)),
                 _STATE: _write_file(temporary / _STATE, lambda f: f.write(json.dumps(state).encode()))}
        fsync_folder(temporary)
        if manifest.exists() or target.exists():  # the same step again (a resumed run): the old one goes first
            manifest.unlink(missing_ok=True)
            fsync_folder(folder)
            shutil.rmtree(target, ignore_errors=True)
        os.replace(temporary, target)
        fsync_folder(folder)
        record = {"format": FORMAT, "epoch": epoch, "step": step, "global_step": global_step, "files": files}
        _write_file(manifest.with_name(f".{manifest.name}.tmp-{os.getpid()}"),
                    lambda f: f.write(json.dumps(record, indent=2).encode()), rename_to=manifest)
        fsync_folder(folder)
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise WriteError(f"cannot write the checkpoint of epoch {epoch + (1 if step else 0)}"
                         f"{f', step {step}' if step else ''} in {folder}: {write_failure(exc)}") from None
    prune(folder, keep)
    return target


def latest_checkpoint(run_path: Path) -> Checkpoint | None:
    """The newest checkpoint whose files match their manifest; a damaged one is skipped with a warning."""
    for manifest in reversed(_manifests(Path(run_path) / FOLDER)):
        try:
            return _read(manifest)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            print(f"warning: checkpoint {manifest.with_suffix('').name} is damaged ({exc}); using the one before it",
                  file=sys.stderr)
    return None


def clean(run_path: Path) -> None:
    """Remove what a killed writer left: temporary folders, and folders without a manifest (never finished)."""
    folder = Path(run_path) / FOLDER
    if not folder.is_dir():
        return
    finished = {m.with_suffix("").name for m in _manifests(folder)}
    for entry in folder.iterdir():
        unfinished = entry.is_dir() and entry.name.startswith(_PREFIX) and entry.name not in finished
        if entry.name.startswith(".") or unfinished:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def discard_after(run_path: Path, checkpoint: Checkpoint | None) -> None:
    """Remove every checkpoint newer than ``checkpoint`` (damaged ones a resumed run will overtake)."""
    newest = -1 if checkpoint is None else checkpoint.global_step
    for manifest in _manifests(Path(run_path) / FOLDER):
        if _step_of(manifest) > newest:
            _remove(manifest)


def prune(folder: Path, keep: int) -> None:
    for manifest in _manifests(folder)[:-keep]:
        _remove(manifest)


def _remove(manifest: Path) -> None:
    manifest.unlink(missing_ok=True)  # first: without its manifest the folder is no checkpoint
    shutil.rmtree(manifest.with_suffix(""), ignore_errors=True)


def _manifests(folder: Path) -> list[Path]:
    """Manifests, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{_PREFIX}*.json") if p.with_suffix("").name[len(_PREFIX):].isdigit()]
    return sorted(found, key=_step_of)


def _step_of(manifest: Path) -> int:
    return int(manifest.with_suffix("").name[len(_PREFIX):])


def _read(manifest: Path) -> Checkpoint:
    record = json.loads(manifest.read_text(encoding="utf-8"))
    if record.get("format") != FORMAT:
        raise ValueError(f"format {record.get('format')!r}, this cnnctl reads {FORMAT}")
    folder = manifest.with_suffix("")
    for name, expected in record["files"].items():
        path = folder / name
        size = path.stat().st_size
        if size != expected["size"]:
            raise ValueError(f"{name} has {size:,} bytes, its manifest says {expected['size']:,}")
        if _sha256(path) != expected["sha256"]:
            raise ValueError(f"{name} does not match its checksum")
    state = json.loads((folder / _STATE).read_text(encoding="utf-8"))
    with np.load(folder / _ARRAYS, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    return Checkpoint(folder, int(record["epoch"]), int(record["step"]), int(record["global_step"]), state, arrays)


def _write_file(path: Path, write, rename_to: Path | None = None) -> dict[str, Any]:
    """Write ``path`` through ``write(file)``, fsync it (and rename it to ``rename_to``); its size and SHA-256."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    if rename_to is not None:
        os.replace(path, rename_to)
        path = rename_to
    return {"size": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
