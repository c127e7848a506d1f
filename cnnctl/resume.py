"""``cnnctl train --resume RUN``: the recipe a run continues with.

The run's own ``recipe.yaml`` (the resolved recipe it was started with) is the
recipe; ``--set`` overrides apply to it, or to RECIPE when one is given. Only
``train.epochs`` may change (a finished run is trained further). Any other
change is refused with the diff of the two recipes, unless ``force``: the run's
history would otherwise mix two recipes without saying so.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable

import yaml

from cnnctl.errors import UserError
from cnnctl.recipe import Recipe, dump_recipe, load_recipe
from cnnctl.rundir import RECIPE, RunDir

CHANGEABLE = (("train", "epochs"),)  # what a resumed run may change without --force


def resume_recipe(run: RunDir, recipe_path: str | None, overrides: Iterable[str] = (), *,
                  force: bool = False) -> Recipe:
    """The recipe to resume ``run`` with: its stored one, changed by ``overrides`` (train.epochs, or anything
    with ``force``); RECIPE, when given, must say the same as the stored one."""
    stored_path = str(run / RECIPE)
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
