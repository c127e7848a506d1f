"""``train.callbacks``: Keras callbacks by their own names and arguments, over a vetted list.

```yaml
callbacks:
  - EarlyStopping: {monitor: val_loss, patience: 3}
  - ReduceLROnPlateau
  - TerminateOnNaN
  - CSVLogger: {filename: log.csv}      # inside the run directory
```

cnnctl itself saves best.keras and checkpoints/, writes TensorBoard logs and
history.csv, so the Keras callbacks that do those jobs are refused with what to
use instead, as are those that run code or talk to the network. Arguments are
checked before training: names (with a did-you-mean), types (against each
argument's default), ``monitor`` against what the run logs, and file names,
which are relative to the run directory and may not leave it.
"""

from __future__ import annotations

import csv
import inspect
import io
from pathlib import Path, PurePosixPath
from typing import Any

import keras

from cnnctl.errors import RecipeError, did_you_mean
from cnnctl.model.arguments import check_argument_names, instantiate
from cnnctl.recipe import Recipe
from cnnctl.recipe.calls import split_spec
from cnnctl.run import atomic_write_text, layout
from cnnctl.training.options import check_monitored

ALLOWED = ("EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN", "CSVLogger", "SwapEMAWeights")

_OWNED_CHECKPOINTS = "cnnctl saves best.keras (the best epoch by train.monitor and train.mode) and checkpoints/ " \
    "after every epoch itself"
REFUSED = {
    "ModelCheckpoint": _OWNED_CHECKPOINTS + "; set train.monitor and train.mode to choose the best epoch",
    "BackupAndRestore": _OWNED_CHECKPOINTS,
    "OrbaxCheckpoint": _OWNED_CHECKPOINTS,
    "TensorBoard": "cnnctl writes TensorBoard logs to the run's logs/ itself; turn them on or off with log.tensorboard",
    "LambdaCallback": "it runs Python code, which a recipe cannot carry; use one of " + ", ".join(ALLOWED),
    "RemoteMonitor": "it sends the logs over the network; read history.csv or the TensorBoard logs of the run",
    "LearningRateScheduler": "it takes a Python function; give the optimizer's learning_rate a schedule instead, "
                             "e.g. {Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 1.0e-3, "
                             "decay_steps: auto}}}}",
    "ProgbarLogger": "cnnctl shows Keras's progress on stderr itself",
    "History": "cnnctl records every epoch in history.csv itself",
    "Callback": "it is the abstract base class",
    "CallbackList": "it is Keras's container of callbacks; list them in train.callbacks",
}
FILE_ARGUMENTS = {"CSVLogger": ("filename",)}
MONITORING = ("EarlyStopping", "ReduceLROnPlateau")
_COUNTS = {"patience", "cooldown", "start_from_epoch", "verbose"}  # whole numbers; other numbers may be fractions


def build_callbacks(recipe: Recipe, run_path: Path, *, logged: list[str], has_validation: bool,
                    schedule: bool) -> list[keras.callbacks.Callback]:
    """The recipe's callbacks, their files inside ``run_path``; ``logged``: the names the run logs.

    ``schedule``: the optimizer's learning rate is a schedule, which ReduceLROnPlateau cannot set.
    """
    out = []
    for i, spec in enumerate(recipe.train.callbacks):
        path = ("train", "callbacks", i)
        name, args = split_spec(spec)
        cls = _callback_class(name, recipe, path)
        where = (*path, name) if isinstance(spec, dict) else path
        _check_arguments(cls, args, recipe, where)
        if name in MONITORING:
            monitor = args.get("monitor", "val_loss")
            at = (*where, "monitor") if "monitor" in args else where
            check_monitored(monitor, logged, has_validation, recipe, at, default="monitor" not in args)
            if args.get("mode", "auto") not in ("auto", "min", "max"):
                raise RecipeError(recipe.problem((*where, "mode"), f"mode is auto, min or max, got {args['mode']!r}"
                                                 f"{did_you_mean(str(args['mode']), ['auto', 'min', 'max'])}"))
        if name == "ReduceLROnPlateau" and schedule:
            raise RecipeError(recipe.problem(where, "ReduceLROnPlateau sets the optimizer's learning rate, but "
                                             "the optimizer's learning_rate is a schedule, which fixes it in "
                                             "advance; remove one of the two"))
        if name == "SwapEMAWeights" and not _uses_ema(recipe):
            raise RecipeError(recipe.problem(where, "SwapEMAWeights needs an optimizer with use_ema: true, e.g. "
                                             "{Adam: {learning_rate: 1.0e-3, use_ema: true}}"))
        if name == "SwapEMAWeights":
            if args.get("swap_on_epoch") is False:
                raise RecipeError(recipe.problem((*where, "swap_on_epoch"), "cnnctl saves best.keras and "
                                                 "checkpoints at the end of each epoch, so they must hold the EMA "
                                                 "weights that validation measured: leave swap_on_epoch true"))
            args["swap_on_epoch"] = True  # best.keras gets the weights its val_ score belongs to
        for key in FILE_ARGUMENTS.get(name, ()):
            if key in args:
                args[key] = str(inside_run(args[key], run_path, recipe, (*where, key)))
        out.append(instantiate(cls, args, recipe, where))
    return out


def _callback_class(name: str, recipe: Recipe, path: tuple) -> type:
    if name in REFUSED:
        raise RecipeError(recipe.problem(path, f"callback {name} is not available in a recipe: {REFUSED[name]}"))
    if name in ALLOWED:
        return getattr(keras.callbacks, name)
    hint = did_you_mean(name, ALLOWED) or did_you_mean(name.lower(), {n.lower(): n for n in ALLOWED}) or \
        did_you_mean(name, REFUSED)
    if hint and name.lower() in {n.lower() for n in ALLOWED}:
        hint = f" (did you mean '{next(n for n in ALLOWED if n.lower() == name.lower())}'? names are case-sensitive)"
    raise RecipeError(recipe.problem(path, f"unknown callback '{name}'{hint}; a recipe may use {', '.join(ALLOWED)}"))


def _check_arguments(cls: type, args: dict, recipe: Recipe, where: tuple) -> None:
    """Known names (did-you-mean), then each value's type against the type of its default."""
    check_argument_names(cls, args, recipe, where)
    defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
    for key, value in args.items():
        expected = _expected_type(defaults.get(key, inspect.Parameter.empty), counts=key in _COUNTS)
        if expected is None:
            continue
        kind, ok = expected
        if not ok(value):
            raise RecipeError(recipe.problem((*where, key), f"{cls.__name__}.{key} is {kind}, got {value!r}"))


def _expected_type(default: Any, *, counts: bool) -> tuple[str, Any] | None:
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if counts:
        return "a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if isinstance(default, (int, float)):  # Keras writes min_delta=0 for a number
        return "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    return None  # no default (a required argument) or None: Keras checks it


def inside_run(value: Any, run_path: Path, recipe: Recipe, path: tuple) -> Path:
    """A file name relative to the run directory, kept inside it and off cnnctl's own files."""
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(recipe.problem(path, f"a file name inside the run directory, e.g. log.csv, got {value!r}"))
    relative = PurePosixPath(value.replace("\\", "/"))
    if relative.is_absolute() or Path(value).is_absolute() or ".." in relative.parts:
        raise RecipeError(recipe.problem(path, f"{value!r} leaves the run directory; give a name inside it, "
                                         "e.g. log.csv or logs_extra/log.csv (files are written in the run)"))
    parts = [p for p in relative.parts if p != "."]
    if not parts or (len(parts) == 1 and parts[0] in layout.FILES) or parts[0] in layout.FOLDERS:
        own = [name for name in layout.FILES if name != layout.LOCK]
        raise RecipeError(recipe.problem(path, f"{value!r} is where cnnctl writes its own files "
                                         f"({', '.join(own)}, {'/, '.join(layout.FOLDERS)}/); choose another name"))
    return run_path.joinpath(*parts)


def _uses_ema(recipe: Recipe) -> bool:
    _, args = split_spec(recipe.train.optimizer)
    return args.get("use_ema") is True


def place_in_run(callbacks: list, placeholder: Path, run_path: Path) -> None:
    """Move the callbacks' files (``CSVLogger: {filename: extra/log.csv}``), built under ``placeholder`` before the
    run existed, into ``run_path``, and create their folders."""
    for callback in callbacks:
        for key in FILE_ARGUMENTS.get(type(callback).__name__, ()):
            path = run_path / Path(getattr(callback, key)).relative_to(placeholder)
            path.parent.mkdir(parents=True, exist_ok=True)
            setattr(callback, key, str(path))


def continue_csv_logs(callbacks: list, epochs_done: int) -> None:
    """CSVLogger files of a resumed run: keep the rows of the epochs the checkpoint holds, then append."""
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.CSVLogger):
            continue
        callback.append = True
        try:
            with open(callback.filename, newline="") as f:
                rows = list(csv.reader(f))
        except FileNotFoundError:
            continue
        kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs_done]  # 0-based
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        atomic_write_text(Path(callback.filename), text.getvalue())
