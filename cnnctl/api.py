"""The Python API: every ``cnnctl`` command as one function (the commands are thin wrappers over these).

```python
import cnnctl

result = cnnctl.train("recipes/digits_cnn.yaml", overrides=["train.epochs=2"])
print(cnnctl.evaluate(result.run).metrics["accuracy"])
cnnctl.export("savedmodel", result.run)
```

A recipe to train or check is given as a path or a ``Recipe`` (``load_recipe``); a run as a
path, ``"latest"`` (the newest under ``runs_dir``) or a ``Run``; ``evaluate``, ``predict`` and
``load_model`` also take a ``.keras`` file (their ``target``). Results are dataclasses
(``TrainResult``, ``CheckReport``, ``EvalResult``, ``Predictions``, ``ExportResult``) whose
details are the JSON the commands print. Progress and warnings go to stderr; nothing
returns by printing, and nothing exits: a mistake in what the caller gave raises
``RecipeError`` or ``UserError`` (the command's exit 2), a job that fails ``CnnctlError``
(exit 1). Importing this module costs no TensorFlow; each function imports what it needs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnctl._tfimport import import_tensorflow
from cnnctl.errors import UserError, closest_path
from cnnctl.recipe import Recipe
from cnnctl.recipe import load_recipe as _load_recipe
from cnnctl.recipe.catalogue import builtin_path
from cnnctl.run import Run, find_run, layout

if TYPE_CHECKING:
    from cnnctl.serving.evaluate import EvalResult
    from cnnctl.serving.model import RunModel
    from cnnctl.serving.predict import Predictions
    from cnnctl.training.check import CheckReport
    from cnnctl.training.trainer import TrainResult

SPLITS = ("train", "validation", "test")

RecipeLike = str | os.PathLike | Recipe
RunLike = str | os.PathLike | Run


def load_recipe(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Recipe:
    """The recipe file at ``path``, validated, with ``overrides`` (``"train.epochs=3"``: a dotted key path and a
    YAML value) applied; ``RecipeError`` lists every problem with its file:line:col and key path."""
    _check_overrides(overrides)
    return _load_recipe(os.fspath(path), tuple(overrides))


def check(recipe: RecipeLike, overrides: Iterable[str] = (), *, data: bool = False,
          graph: str | os.PathLike | None = None) -> CheckReport:
    """Everything ``train`` would refuse in ``recipe``, found without training, and its model explained: layers,
    output shapes, parameters, multiply-adds, receptive field. ``data``: load the data too (split sizes, classes,
    every image decoded); ``graph``: draw the layer graph to this .svg or .png file."""
    problem = graph_problem(graph)
    if problem:
        raise UserError(problem)
    loaded = _recipe(recipe, overrides)  # recipe errors surface here, before TensorFlow loads
    import_tensorflow()
    from cnnctl.training.check import check_recipe

    return check_recipe(loaded, data=data, graph=graph)


def train(recipe: RecipeLike, overrides: Iterable[str] = (), *, runs_dir: str | os.PathLike = "runs",
          name: str | None = None, progress: bool = True, announce: Callable[[Run], None] | None = None,
          tensorboard: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``recipe`` into a new run directory ``runs_dir/NAME/STAMP`` (NAME: ``name``, or the recipe's).

    Returns the run and its metrics (metrics.json). ``progress``: Keras's progress on stderr;
    ``announce(run)`` is called once the recipe has passed every check and the run exists;
    ``tensorboard(url)``: also serve TensorBoard on ``runs_dir`` while training, at ``url``.
    Ctrl-C or SIGTERM stops after the current step with a checkpoint (``KeyboardInterrupt``).
    """
    _check_overrides(overrides)
    problem = name_problem(name)
    if problem:
        raise UserError(f"name: {problem}")
    if name is not None and not isinstance(recipe, Recipe):
        overrides = (f"name={json.dumps(name)}", *overrides)
    loaded = _recipe(recipe, overrides)
    if name is not None and isinstance(recipe, Recipe):
        loaded = _renamed(loaded, name)
    import_tensorflow()
    from cnnctl.training.trainer import train as train_run

    with _tensorboard_while_training(runs_dir, tensorboard):
        return train_run(loaded, os.fspath(runs_dir), progress=progress, announce=announce)


def resume(run: RunLike, recipe: str | os.PathLike | None = None, overrides: Iterable[str] = (), *,
           runs_dir: str | os.PathLike = "runs", force: bool = False, progress: bool = True,
           tensorboard: Callable[[str], None] | None = None) -> TrainResult:
    """Continue ``run`` from its newest checkpoint, with the recipe stored in it (``overrides`` applied: more
    ``train.epochs`` trains a finished run further). A ``recipe`` file given must say the same as the stored one;
    any change besides ``train.epochs`` needs ``force``. ``tensorboard``: as for ``train``."""
    from cnnctl.training.resume import resume_recipe

    _check_overrides(overrides)
    found = find_run(run, runs_dir)
    loaded = resume_recipe(found, os.fspath(recipe) if recipe is not None else None, tuple(overrides), force=force)
    import_tensorflow()
    from cnnctl.training.resume import resume as resume_run

    with _tensorboard_while_training(runs_dir, tensorboard):
        return resume_run(found, loaded, progress=progress)


@contextmanager
def _tensorboard_while_training(runs_dir: str | os.PathLike, announce: Callable[[str], None] | None):
    """TensorBoard on the runs folder, in a background thread, while the training in the ``with`` runs."""
    if announce is None:
        yield
        return
    from cnnctl.tensorboard.server import start

    os.makedirs(runs_dir, exist_ok=True)
    url, stop = start(runs_dir, port=None)
    announce(url)
    try:
        yield
    finally:
        stop()


def evaluate(target: RunLike, *, split: str = "test", data: str | os.PathLike | None = None, best: bool = False,
             runs_dir: str | os.PathLike = "runs", unsafe: bool = False, write: bool = True) -> EvalResult:
    """Metrics, per-class precision, recall and F1, and the confusion matrix of ``target`` (a run, or a .keras
    file) on ``split`` of the run's data, or on ``data`` (a recipe file whose data to use, or a folder of class
    folders). ``best``: the run's best.keras. ``write``: also write RUN/eval/ (report.json, PNGs) and the
    TensorBoard image. ``unsafe``: load a model Keras safe mode refuses, trusting the file."""
    if split not in SPLITS:
        raise UserError(f"split is one of {', '.join(SPLITS)}, got {split!r}")
    _must_exist(target, "run directory or model file")
    if data is not None:
        data = builtin_path(os.fspath(data))  # a built-in recipe's name, when no file or folder has it
        _must_exist(data, "recipe or folder (--data)")
    import_tensorflow()
    from cnnctl.serving.evaluate import evaluate as evaluate_model

    return evaluate_model(target, split, os.fspath(data) if data is not None else None, runs_dir=runs_dir,
                          model_file=layout.BEST if best else layout.MODEL, write=write, unsafe=unsafe)


def predict(target: RunLike, inputs: Sequence[str | os.PathLike], *, top_k: int = 3, best: bool = False,
            runs_dir: str | os.PathLike = "runs", on_error: str = "fail", unsafe: bool = False) -> Predictions:
    """The top ``top_k`` classes of each image file, folder of images or .npy array in ``inputs``, decoded and
    preprocessed exactly as training did; made batch by batch as the result is iterated. ``on_error``: ``fail``
    stops at an image that cannot be decoded (or a .npy array that is not of the model's input shape), ``skip``
    leaves it out with a warning naming it."""
    if isinstance(inputs, str | os.PathLike):  # one file or folder
        inputs = [inputs]
    if on_error not in ("fail", "skip"):
        raise UserError(f"on_error is fail or skip, got {on_error!r}")
    if top_k < 1:
        raise UserError(f"top_k is 1 or more, got {top_k}")
    _must_exist(target, "run directory or model file")
    for given in inputs:
        _must_exist(given, "file or folder")
    import_tensorflow()
    from cnnctl.serving.predict import predict as predict_files

    return predict_files(target, list(inputs), top_k=top_k, runs_dir=runs_dir,
                         model_file=layout.BEST if best else layout.MODEL, on_error=on_error, unsafe=unsafe)


@dataclass(frozen=True)
class ExportResult:
    """One export, written and checked: its record in metrics.json (``record``) and the figures most wanted."""

    record: dict[str, Any]

    @property
    def path(self) -> Path:
        return Path(self.record["path"])

    @property
    def format(self) -> str:
        return self.record["format"]

    @property
    def max_abs_diff(self) -> float:
        """The largest difference between the export's outputs and the Keras model's on the held-out examples."""
        return self.record["max_abs_diff"]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.record)


def export(fmt: str, run: RunLike, *, out: str | os.PathLike | None = None, force: bool = False,
           quantize: str | None = None, runs_dir: str | os.PathLike = "runs", unsafe: bool = False) -> ExportResult:
    """Export ``run``'s model with its preprocessing as ``fmt`` (savedmodel, keras, tflite, onnx), reload it with
    its own runtime and compare it with Keras on held-out data; record the result in RUN/metrics.json. ``out``:
    where to write (default RUN/export/...); ``force``: replace an earlier export there; ``quantize``: tflite's
    dynamic, float16 or int8."""
    from cnnctl.registry import FORMATS

    problem = export_problem(fmt, out, quantize)  # a flag mistake is told before TensorFlow loads
    if problem:
        raise UserError(problem[1])
    _must_exist(run, "run directory")
    if fmt in FORMATS:
        FORMATS.get(fmt).require()  # a missing extra (onnx) too
    import_tensorflow()
    from cnnctl.exports.writer import export_run

    found = find_run(run, runs_dir)
    return ExportResult(export_run(fmt, found, out=os.fspath(out) if out is not None else None, force=force,
                                   quantize=quantize, unsafe=unsafe))


def load_model(target: RunLike, *, best: bool = False, runs_dir: str | os.PathLike = "runs",
               unsafe: bool = False) -> RunModel:
    """``target``'s trained model (a run's model.keras, or best.keras with ``best``; or a .keras file), vetted and
    loaded in Keras safe mode: ``.model`` takes batches preprocessed as in training, ``.serving`` examples as
    stored (the run's preprocessing in front); ``.recipe`` and ``.record`` (data.json) come with a run's."""
    _must_exist(target, "run directory or model file")
    import_tensorflow()
    from cnnctl.serving.model import load_model as load

    return load(target, runs_dir, layout.BEST if best else layout.MODEL, unsafe=unsafe)


def serve_tensorboard(runs_dir: str | os.PathLike = "runs", *, port: int | None = None, host: str = "127.0.0.1",
                      announce: Callable[[str], None] = print) -> None:
    """Serve TensorBoard on ``runs_dir`` (every run's logs) until Ctrl-C or SIGTERM; ``announce`` gets its address.
    Afterwards TensorBoard's threads may still run: a program should end without waiting for them."""
    import_tensorflow()  # TensorBoard imports it; here its start-up notices are filtered out
    from cnnctl.tensorboard.server import serve

    serve(runs_dir, port=port, host=host, announce=announce)


def _recipe(recipe: RecipeLike, overrides: Iterable[str]) -> Recipe:
    _check_overrides(overrides)
    if isinstance(recipe, Recipe):
        if tuple(overrides):
            raise UserError("overrides apply to a recipe file: give its path, or load it with "
                            "cnnctl.load_recipe(path, overrides)")
        return recipe
    return load_recipe(recipe, overrides)


def _renamed(recipe: Recipe, name: str) -> Recipe:
    return recipe.model_copy(update={"name": name})  # checked by name_problem


def _check_overrides(overrides: Iterable[str]) -> None:
    """``overrides`` is a list of ``KEY=VALUE`` strings: one string (a runs folder given in its place) is refused."""
    if isinstance(overrides, str | os.PathLike):
        raise TypeError(f"overrides is a list of 'KEY=VALUE' strings, got {overrides!r}; the runs folder is "
                        "given as runs_dir=")


def _must_exist(path: RunLike, what: str) -> None:
    """A missing path is told at once, before TensorFlow loads (``latest`` is looked up later)."""
    if isinstance(path, Run):
        return
    given = os.fspath(path)
    if given != "latest" and not os.path.exists(given):
        raise UserError(f"{given}: no such {what}{closest_path(given)}")


def graph_problem(graph: str | os.PathLike | None) -> str | None:
    """What is wrong with the file ``check`` draws the graph to, or None: its suffix, or a folder to write it in
    that does not exist (``check`` makes none) or is not a folder. No TensorFlow: told before any model is built."""
    if graph is None:
        return None
    given = os.fspath(graph)
    if os.path.splitext(given)[1].lower() not in (".svg", ".png"):
        return f"{given}: give a .svg or .png file name"
    folder = os.path.dirname(given) or "."
    if not os.path.exists(folder):
        return f"{given}: no folder {folder} to write the graph in{closest_path(folder)}; make it first"
    if not os.path.isdir(folder):
        return f"{given}: {folder} is not a folder"
    if os.path.isdir(given):
        return f"{given}: is a folder; give a .svg or .png file name"
    return None


def name_problem(name: str | None) -> str | None:
    """What is wrong with ``name`` as ``train``'s run name (the recipe's rule for ``name``), or None."""
    from cnnctl.recipe.schema import run_name

    try:
        run_name(name) if name is not None else None
    except ValueError as exc:
        fixed = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
        return f"{exc}{f'; e.g. {fixed!r}' if fixed and set(fixed) != {'.'} else ''}"
    return None


def export_problem(fmt: str, out: str | os.PathLike | None, quantize: str | None) -> tuple[str, str] | None:
    """(the option at fault, what is wrong) with ``export``'s ``out`` and ``quantize`` for ``fmt``, or None; the
    format table says which formats are quantized and which file suffix each needs. No TensorFlow."""
    from cnnctl.filekinds import names_folder
    from cnnctl.registry import FORMATS

    form = FORMATS.get(fmt)
    if form is None:
        return None  # the writer names the formats there are
    if quantize is not None and (form.options is None or "quantize" not in form.options.model_fields):
        quantized = [f.name for f in FORMATS if f.options is not None and "quantize" in f.options.model_fields]
        return "quantize", f"only {', '.join(quantized)} exports are quantized, not {fmt}"
    if out is not None and form.suffix is not None and not os.fspath(out).endswith(form.suffix) \
            and not names_folder(out):  # a folder: the export goes in it, under its default name
        return "out", (f"{os.fspath(out)}: a {form.title or form.name} export is a {form.suffix} file; give a name "
                       f"ending in {form.suffix}")
    return None
