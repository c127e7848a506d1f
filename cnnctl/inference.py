"""A run's model with its preprocessing in front: examples as stored in, the model's outputs out.

During training the pipeline casts each batch to float32, applies ``data.augment``
in inference mode (a RandomCrop becomes a centre crop; the random layers do
nothing) and normalizes it. ``serving_model`` puts exactly those steps in front of
the trained model as Keras layers, so ``cnnctl predict``, every export and anyone
loading an export give the values as stored (pixels 0-255, decoded and resized to
``data.image_size``) and get what ``cnnctl eval`` measured::

    inputs  float32 [batch, *stored shape]   e.g. [batch, 64, 64, 3], pixel values 0-255
      -> preprocessing (Sequential: CenterCrop, Rescaling; absent if nothing to do)
      -> the trained model
    outputs one tensor per model output
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnctl.data import Datasets, build_datasets
from cnnctl.data.preprocess import augmentation_layers
from cnnctl.errors import UserError, first_line
from cnnctl.model.saved import describe_file, load_keras_model, not_a_model
from cnnctl.recipe import Recipe, load_recipe
from cnnctl.rundir import RECIPE, RunDir

INPUT_NAME = "inputs"
PREPROCESSING = "preprocessing"


@dataclass
class RunModel:
    """A trained model, the model that takes stored examples, and what its run knows about the data."""

    model: keras.Model  # takes preprocessed batches, as in training
    serving: keras.Model  # takes batches as stored (see the module's docstring)
    recipe: Recipe | None  # None for a .keras file outside any run
    record: dict  # the run's data.json: class names, stored shape and dtype, normalization
    source: str  # what was loaded, for messages
    run: RunDir | None = None  # the run it belongs to, if any

    @property
    def class_names(self) -> list[str]:
        return self.record.get("class_names") or []

    @property
    def stored_shape(self) -> tuple:
        return tuple(self.record["stored"]["shape"])


def preprocessing_layers(recipe: Recipe, record: dict) -> list[keras.layers.Layer]:
    """The layers the pipeline applies to validation and test batches, in order, except those that do nothing."""
    stored = record["stored"]
    shape = tuple(stored["shape"])
    value_range = tuple(stored.get("value_range", (0.0, 255.0)))
    layers: list[keras.layers.Layer] = []
    if recipe.data.augment:
        probe = tf.random.stateless_uniform((2, *shape), seed=(1, 2), minval=value_range[0], maxval=value_range[1])
        for layer in augmentation_layers(recipe, value_range, shape).inference:
            out = layer(probe, training=False)
            if tuple(out.shape) != tuple(probe.shape) or not np.array_equal(out, probe):
                layers.append(layer)  # e.g. the centre crop of a RandomCrop; random layers are identities here
            probe = out
    norm = record.get("normalization") or {"normalize": "none"}
    if norm["normalize"] == "rescale":
        layers.append(keras.layers.Rescaling(norm["rescale"]))
    elif norm["normalize"] == "standardize":
        layers.append(standardize_layer(norm))
    return layers


def standardize_layer(record: dict) -> keras.layers.Rescaling:
    """The stored standardization, ``(x - mean) / sqrt(variance)`` per channel, as one ``Rescaling``.

    Keras's ``Normalization`` holds its statistics as captured tensors, which the
    ONNX converter turns into extra graph inputs; a ``Rescaling`` with per-channel
    ``scale`` and ``offset`` arrays becomes constants in every format. The results
    agree with the training pipeline's ``Normalization`` to float32 rounding.
    """
    mean = np.asarray(record["mean"], "float64")
    std = np.maximum(np.sqrt(np.asarray(record["variance"], "float64")), keras.backend.epsilon())
    return keras.layers.Rescaling(scale=(1.0 / std).astype("float32"), offset=(-mean / std).astype("float32"),
                                  name="standardize")


def serving_model(model: keras.Model, recipe: Recipe, record: dict) -> keras.Model:
    """``model`` behind the run's preprocessing: one input named ``inputs``, float32 of the stored shape."""
    if len(model.inputs) != 1:
        raise UserError(f"model '{model.name}' has {len(model.inputs)} inputs; cnnctl serves models of one input")
    inputs = keras.Input(shape=tuple(record["stored"]["shape"]), dtype="float32", name=INPUT_NAME)
    layers = preprocessing_layers(recipe, record)
    # training=False throughout: CenterCrop defaults to training=True, which would put the model after it
    # (Dropout, BatchNormalization) in training mode whenever the serving model is called without the flag.
    x = keras.Sequential(layers, name=PREPROCESSING)(inputs, training=False) if layers else inputs
    return keras.Model(inputs, model(x, training=False), name=f"{model.name}_serving")


def read_record(run: RunDir) -> dict:
    """The run's data.json: its classes, stored shape, dtype and value range, and its preprocessing."""
    path = run / "data.json"
    if not path.is_file():
        if not _is_run(run.path):
            raise UserError(f"{run.path} holds a {RECIPE} but none of the files training writes ({', '.join(_MARKS)})"
                            ": it is not a run directory; give the run directory `cnnctl train` printed "
                            "(runs/NAME/STAMP), or `latest`")
        raise UserError(f"{run.path} has no data.json (a run of an older cnnctl?); train it again to evaluate, "
                        "predict or export with its preprocessing")
    try:
        record = run.read_json("data.json")
        if not isinstance(record, dict) or "shape" not in record.get("stored", {}):
            raise ValueError("it has no stored.shape")
    except (ValueError, AttributeError) as exc:  # not JSON, or not data.json's shape
        raise UserError(f"{path} is damaged ({first_line(exc)}); train the run again") from None
    return record


def run_datasets(run: RunDir, recipe: Recipe) -> Datasets:
    """The run's data, normalized with the statistics stored at training time (data.json)."""
    return build_datasets(recipe, normalization=read_record(run).get("normalization"))


def load_run_model(run: RunDir, model_file: str | Path = "model.keras", *, unsafe: bool = False) -> RunModel:
    """The run's ``model_file`` (a trained model, or a serving export of it) with its recipe and data record.

    ``unsafe``: load a model that Keras safe mode refuses (``cnnctl.model.saved``), trusting the file.
    """
    recipe = load_recipe(str(run / RECIPE))
    record = read_record(run)
    path = run.path / model_file
    if not path.is_file():
        raise UserError(_missing_model(run, Path(model_file)))
    model = load_keras_model(path, unsafe=unsafe)
    serving = model if model.name.endswith("_serving") else serving_model(model, recipe, record)
    return RunModel(model, serving, recipe, record, str(path), run)


def load_model_or_run(target: str, runs_dir: str = "runs", model_file: str = "model.keras", *,
                      unsafe: bool = False) -> RunModel:
    """``target``: a run directory, ``latest``, a ``.keras`` file inside a run (model.keras, best.keras, a copy,
    export/serving.keras), or a ``.keras`` file of its own, which is taken to want the values as stored.

    ``unsafe``: load a model that Keras safe mode refuses (``cnnctl.model.saved``), trusting the file.
    """
    path = Path(target)
    if target == "latest" or path.is_dir():
        return load_run_model(find_run(target, runs_dir), model_file, unsafe=unsafe)
    if not path.exists():
        from cnnctl.errors import closest_path

        raise UserError(f"{target}: no such run directory or model file{closest_path(target)}")
    if path.suffix != ".keras":
        raise UserError(not_a_model(path, describe_file(path)))
    run = _run_of(path)
    if run is not None:
        return load_run_model(run, path.resolve().relative_to(run.path.resolve()), unsafe=unsafe)
    model = load_keras_model(path, unsafe=unsafe)
    shape = tuple(model.inputs[0].shape[1:])
    labels = path.with_suffix(".labels.txt")  # written beside every export (cnnctl.export.labels_path)
    names = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else []
    record = {"class_names": names, "stored": {"shape": list(shape), "dtype": "float32"}}
    return RunModel(model, model, None, record, str(path))


def warn_if_changed(record: dict, split: str, examples: int) -> None:
    """A run's own split is carved again from the data as it is now: say so if it is not what training had."""
    trained = record.get("sizes", {}).get(split)
    if trained is not None and trained != examples:
        print(f"warning: the {split} split now has {examples} examples, {trained} at training time: the data "
              "changed, so the split may now hold examples the model was trained on", file=sys.stderr)


def to_stored_range(pixels: np.ndarray, record: dict) -> np.ndarray:
    """8-bit pixel values (0-255) put on the scale the run's data was stored in (e.g. digits: 0-1)."""
    low, high = record["stored"].get("value_range", (0.0, 255.0))
    if (low, high) == (0.0, 255.0):
        return pixels
    return (low + pixels.astype("float32") * ((high - low) / 255.0)).astype("float32")


def output_names(model: keras.Model) -> list[str]:
    """One name per output: the output layers' names, or the model's name for a single output."""
    return list(model.output_names) if len(model.outputs) > 1 else [model.name]


def outputs_are_logits(loaded: RunModel) -> list[bool | None]:
    """Per output, whether the recipe's loss takes logits (``from_logits: true``); None without a recipe."""
    return logits_of(loaded.recipe, len(loaded.model.outputs))


def logits_of(recipe: Recipe | None, count: int) -> list[bool | None]:
    """Per output of the recipe's model (``count`` of them), whether its loss takes logits; None without one."""
    if recipe is None:
        return [None] * count
    from cnnctl.recipe.graph import split_spec
    from cnnctl.recipe.train_spec import per_output

    names = recipe.graph.output_names
    loss = recipe.train.loss
    specs = [loss.get(name, "") for name in names] if per_output(loss, names) else [loss] * len(names)
    flags = [bool(split_spec(spec)[1].get("from_logits")) if spec else False for spec in specs]
    return flags if len(flags) == count else [flags[0]] * count


def class_scores(values: np.ndarray, logits: bool | None) -> np.ndarray | None:
    """Class probabilities [N, classes] from one output's values, or None when it does not classify.

    One sigmoid unit (binary) becomes two columns, [1 - p, p]; logits go through a
    sigmoid or softmax. ``logits=None`` (a model without its recipe): values outside
    0..1, or rows that do not sum to 1, are taken for logits.
    """
    values = np.asarray(values, "float64")
    if values.ndim != 2:
        return None
    if logits is None:
        outside = values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0
        logits = outside or (values.shape[1] > 1 and not np.allclose(values.sum(axis=1), 1.0, atol=1e-3))
    if values.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-values[:, 0])) if logits else values[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    if logits:
        e = np.exp(values - values.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return values


def find_run(target: str, runs_dir: str = "runs") -> RunDir:
    """The run directory ``target`` names (a path, or ``latest``); a file or a folder of images is told as such."""
    from cnnctl.rundir import resolve_run

    path = Path(target)
    if target != "latest" and path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            raise UserError(not_a_model(path, "a recipe").replace("not a model", "not a run directory"))
        run = _run_of(path)
        inside = f" of the run {run.path}" if run is not None else ""
        raise UserError(f"{target} is a file{inside} ({describe_file(path)}), not a run directory; give the run "
                        "directory `cnnctl train` printed (runs/NAME/STAMP), or `latest`")
    if target != "latest" and path.is_dir() and not (path / RECIPE).exists() and _holds_class_folders(path):
        raise UserError(f"{target} is a folder of images, not a run directory; give a run (runs/NAME/STAMP or "
                        f"`latest`), and to evaluate on these images: cnnctl eval RUN --data {target}")
    return resolve_run(target, runs_dir)


_MARKS = ("data.json", "metrics.json", "model.keras", "checkpoints")  # what training writes into a run


def _is_run(folder: Path) -> bool:
    """A folder holding a recipe and something training wrote (a project folder often holds a recipe.yaml)."""
    return (folder / RECIPE).is_file() and any((folder / mark).exists() for mark in _MARKS)


def _holds_class_folders(folder: Path) -> bool:
    from cnnctl.data.files import IMAGE_EXTENSIONS

    try:
        return any(sub.is_dir() and any(f.suffix.lower() in IMAGE_EXTENSIONS for f in sub.iterdir() if f.is_file())
                   for sub in folder.iterdir())
    except OSError:  # unreadable: resolve_run says what it can
        return False


def _missing_model(run: RunDir, model_file: Path) -> str:
    """Why the run has no ``model_file``, and what to do."""
    metrics = run.read_json("metrics.json") if (run / "metrics.json").is_file() else {}
    status = metrics.get("status") if isinstance(metrics, dict) else None
    if model_file.name == "best.keras" and status == "completed":
        return (f"{run.path} has no best.keras: the run kept no best epoch (train.monitor: null, or nothing to "
                "monitor); leave out --best")
    if status != "completed" and model_file.name in ("model.keras", "best.keras"):
        state = f"its training {status}" if status in ("interrupted", "failed") else "its training did not finish"
        return (f"{run.path} has no {model_file.name}: {state}; resume it with cnnctl train --resume {run.path}"
                + (" (or give --best for the best epoch so far)" if (run / "best.keras").is_file() else ""))
    return f"{run.path / model_file}: no such model file in the run"


def _run_of(path: Path) -> RunDir | None:
    """The run directory a model file sits in (``RUN/model.keras``, ``RUN/export/serving.keras``), if any."""
    for parent in list(path.resolve().parents)[:2]:
        if _is_run(parent):
            return RunDir(Path(os.path.relpath(parent)) if not path.is_absolute() else parent)
    return None
