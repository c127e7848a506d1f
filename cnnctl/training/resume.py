"""``cnnctl train --resume RUN``: the recipe a run continues with, and the continuing.

The run's own ``recipe.yaml`` (the resolved recipe it was started with) is the
recipe; ``--set`` overrides apply to it, or to RECIPE when one is given. Only
``train.epochs`` may change (a finished run is trained further). Any other
change is refused with the diff of the two recipes, unless ``force``: the run's
history would otherwise mix two recipes without saying so. ``resume`` then
continues the run from its newest valid checkpoint (``cnnctl.training.checkpoint``).
"""

from __future__ import annotations

import difflib
import sys
import time
from collections.abc import Iterable

import yaml

from cnnctl.data.record import DataRecord, read_record
from cnnctl.errors import UserError
from cnnctl.recipe import Recipe, dump_recipe, load_recipe
from cnnctl.run import Run, atomic_write_text, layout
from cnnctl.training import checkpoint
from cnnctl.training.checkpoint import Checkpoint
from cnnctl.training.preflight import Prepared, prepare
from cnnctl.training.trainer import TrainResult, determinism, run_training, stopped_as

CHANGEABLE = (("train", "epochs"),)  # what a resumed run may change without --force


def resume_recipe(run: Run, recipe_path: str | None, overrides: Iterable[str] = (), *,
                  force: bool = False) -> Recipe:
    """The recipe to resume ``run`` with: its stored one, changed by ``overrides`` (train.epochs, or anything
    with ``force``); RECIPE, when given, must say the same as the stored one."""
    stored_path = str(run / layout.RECIPE)
    stored = load_recipe(stored_path)
    given = load_recipe(recipe_path or stored_path, overrides)
    before, after = _without_changeable(dump_recipe(stored)), _without_changeable(dump_recipe(given))
    if before == after:
        return given
    before, after = (yaml.safe_dump(d, sort_keys=False, default_flow_style=None) for d in (before, after))
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        fromfile=f"{stored_path} (the run's)", tofile="the recipe resumed with"))
    if not force:
        raise UserError(f"{run.path}: the recipe differs from the one the run was started with (a resumed run may "
                        f"change only train.epochs):\n{diff.rstrip()}\ngive --force to resume with the changed "
                        "recipe anyway; its history.csv then mixes the two")
    print(f"warning: resuming {run.path} with a changed recipe (--force):\n{diff.rstrip()}", file=sys.stderr)
    return given


def _without_changeable(text: str) -> dict:
    data = yaml.safe_load(text)
    for path in CHANGEABLE:
        node = data
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return data


def resume(run: Run, recipe: Recipe, *, progress: bool = True) -> TrainResult:
    """Continue ``run`` from its newest valid checkpoint; ``recipe`` is the run's own (``resume_recipe``).

    A run killed before its first checkpoint starts again from the beginning, in
    the same directory; one whose training had ended is finished (model.keras,
    test metrics, exports) or, with more ``train.epochs``, trained further.
    """
    started = time.perf_counter()
    determinism(recipe)
    with run.locked():  # a second process resuming the same run is refused here, before any work
        checkpoint.clean(run.path)  # what a killed writer left half-written
        run.remove_leftovers()
        start = checkpoint.latest_checkpoint(run.path)
        checkpoint.discard_after(run.path, start)  # damaged checkpoints the resumed run will write over
        if start is not None and recipe.train.epochs < start.epoch + (1 if start.step else 0):
            raise UserError(f"{run.path} has trained {start.epoch + (1 if start.step else 0)} epochs already; "
                            f"train.epochs={recipe.train.epochs} is fewer: give at least that many")
        done = run.metrics()
        if done.get("status") == "completed" and done.get("training", {}).get("epochs_planned") == recipe.train.epochs:
            print(f"{run.path} has finished its {recipe.train.epochs} epochs: nothing to resume (give "
                  "--set train.epochs=N to train it further)", file=sys.stderr)
            return TrainResult(run=run, metrics=done)
        with stopped_as(f"interrupted before training resumed; {run.path} is as it was: resume it again with "
                        f"cnnctl train --resume {run.path}"):
            stored = read_record(run) if (run / layout.DATA).is_file() else None  # None: a run of an older cnnctl
            plan = prepare(recipe, normalization=stored.normalization if stored is not None else None)
            if stored is not None:
                _check_same_data(plan, stored, run)
            atomic_write_text(run / layout.RECIPE, dump_recipe(recipe))  # train.epochs may have grown
            where = "the beginning (no checkpoint was written)" if start is None else _position(start, plan)
            print(f"resuming {run.path} from {where}", file=sys.stderr)
        return run_training(recipe, plan, run, start, progress=progress, started=started)


def _position(start: Checkpoint, plan: Prepared) -> str:
    if start.step:
        return f"epoch {start.epoch + 1}, step {start.step} of {plan.steps_per_epoch}"
    return f"the end of epoch {start.epoch}"


def _check_same_data(plan: Prepared, stored: DataRecord, run: Run) -> None:
    """The resumed run must read the data it started with: the same classes and split sizes."""
    data = plan.data
    if stored.class_names and stored.class_names != data.class_names:
        raise UserError(f"{run.path}: the data's classes changed since the run started "
                        f"({stored.class_names} then, {data.class_names} now); a resumed run must read the "
                        "same data: restore it, or train a new run")
    sizes = stored.sizes
    if sizes and sizes != {k: int(v) for k, v in data.sizes.items()}:
        raise UserError(f"{run.path}: the data's split sizes changed since the run started ({sizes} then, "
                        f"{data.sizes} now); a resumed run must read the same data: restore it, or train a new run")
