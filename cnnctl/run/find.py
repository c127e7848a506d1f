"""The one run finder: a path a user gave (or ``latest``) -> a ``Run``, or one message saying what it is instead.

Every command that takes a run (``train --resume``, ``eval``, ``predict``, ``export``)
finds it here, so the same wrong path gets the same answer everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnctl.errors import UserError, closest_path
from cnnctl.filekinds import IMAGE_EXTENSIONS, describe_file, not_a_model
from cnnctl.run import layout
from cnnctl.run.rundir import Run

_GIVE = "give the run directory `cnnctl train` printed (runs/NAME/STAMP), or `latest`"


def find_run(target: str | os.PathLike | Run, runs_dir: str | os.PathLike = "runs") -> Run:
    """The run ``target`` names: a run directory, or ``latest`` (the newest run under ``runs_dir``)."""
    if isinstance(target, Run):
        return target
    target = os.fspath(target)
    if target == "latest":
        return latest_run(runs_dir)
    path = Path(target)
    if not path.exists():
        raise UserError(f"{target}: no such run directory{closest_path(target)}")
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            raise UserError(not_a_model(path, "a recipe").replace("not a model", "not a run directory"))
        run = run_of(path)
        inside = f" of the run {run.path}" if run is not None else ""
        raise UserError(f"{target} is a file{inside} ({describe_file(path)}), not a run directory; {_GIVE}")
    if not (path / layout.RECIPE).is_file():
        if holds_class_folders(path):
            raise UserError(f"{target} is a folder of images, not a run directory; give a run (runs/NAME/STAMP or "
                            f"`latest`), and to evaluate on these images: cnnctl eval RUN --data {target}")
        inner = sorted(path.glob(f"*/{layout.RECIPE}")) or sorted(path.glob(f"*/*/{layout.RECIPE}"))
        hint = f"; runs inside it include {inner[-1].parent}" if inner else ""
        raise UserError(f"{target} is not a run directory (it has no {layout.RECIPE}){hint}")
    if not is_run(path):
        raise UserError(f"{target} holds a {layout.RECIPE} but none of the files training writes "
                        f"({', '.join(layout.TRAINING_MARKS)}): it is not a run directory; {_GIVE}")
    return Run(path)


def latest_run(runs_dir: str | os.PathLike = "runs") -> Run:
    """The run under ``runs_dir`` whose recipe was written last."""
    candidates = sorted(Path(runs_dir).glob(f"*/*/{layout.RECIPE}"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        none = "yet" if Path(runs_dir).is_dir() else "(the folder does not exist)"
        none = f"no runs under {runs_dir}/ {none}"
        raise UserError(f"{none}; train one with `cnnctl train RECIPE`, give the run directory, or give --runs-dir "
                        "the folder that holds your runs")
    return Run(candidates[-1].parent)


def is_run(folder: Path) -> bool:
    """A folder holding a recipe and something training wrote (a project folder often holds a recipe.yaml)."""
    return (folder / layout.RECIPE).is_file() and any((folder / mark).exists() for mark in layout.TRAINING_MARKS)


def run_of(path: Path) -> Run | None:
    """The run a file sits in (``RUN/model.keras``, ``RUN/export/serving.keras``), if any."""
    for parent in list(path.resolve().parents)[:2]:
        if is_run(parent):
            return Run(Path(os.path.relpath(parent)) if not path.is_absolute() else parent)
    return None


def holds_class_folders(folder: Path) -> bool:
    """Does ``folder`` hold sub-folders of images (a data set, given where a run was wanted)?"""
    try:
        return any(sub.is_dir() and any(f.suffix.lower() in IMAGE_EXTENSIONS for f in sub.iterdir() if f.is_file())
                   for sub in folder.iterdir())
    except OSError:  # unreadable: the caller says what it can
        return False
