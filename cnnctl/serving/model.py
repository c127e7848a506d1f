"""A run's model with its preprocessing in front: examples as stored in, the model's outputs out.

During training the pipeline casts each batch to float32, applies ``data.augment``
in inference mode (a RandomCrop becomes a centre crop; the random layers do
nothing) and normalizes it. ``serving_model`` puts exactly those steps
(``cnnctl.data.preprocess.Preprocessing.layers``) in front of the trained model as
Keras layers, so ``cnnctl predict``, every export and anyone loading an export give
the values as stored (pixels 0-255, decoded and resized to ``data.image_size``) and
get what ``cnnctl eval`` measured::

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

from cnnctl.data.preprocess import Preprocessing
from cnnctl.data.record import DataRecord, StoredForm, read_record
from cnnctl.errors import UserError, closest_path
from cnnctl.filekinds import describe_file, not_a_model
from cnnctl.model.saved import load_keras_model
from cnnctl.recipe import Recipe, load_recipe
from cnnctl.run import Run, find_run, layout, run_of
from cnnctl.serving.outputs import logits_of

INPUT_NAME = "inputs"
PREPROCESSING = "preprocessing"
SERVING_SUFFIX = "_serving"  # a model named <model>_serving takes examples as stored (an export of cnnctl's)


@dataclass
class RunModel:
    """A trained model, the model that takes stored examples, and what its run knows about the data."""

    model: keras.Model  # takes preprocessed batches, as in training
    serving: keras.Model  # takes batches as stored (see the module's docstring)
    recipe: Recipe | None  # None for a .keras file outside any run
    record: DataRecord  # the run's data.json: class names, stored form, normalization
    source: str  # what was loaded, for messages
    run: Run | None = None  # the run it belongs to, if any

    @property
    def class_names(self) -> list[str]:
        return self.record.class_names

    @property
    def stored_shape(self) -> tuple:
        return tuple(self.record.stored.shape)

    @property
    def logits(self) -> list[bool | None]:
        """Per output, whether the recipe's loss takes logits (``from_logits: true``); None without a recipe."""
        return logits_of(self.recipe, len(self.model.outputs))

    def preprocessing(self) -> Preprocessing | None:
        """The run's preprocessing, for a model that needs it in front (None for a serving export or a lone file)."""
        if self.recipe is None or self.model is self.serving:
            return None
        return run_preprocessing(self.recipe, self.record)


def run_preprocessing(recipe: Recipe, record: DataRecord) -> Preprocessing:
    """The preprocessing of a run's validation and test splits, rebuilt from its recipe and data.json."""
    return Preprocessing.of(recipe.data, recipe.seed, record.stored, record.normalization)


def serving_model(model: keras.Model, preprocessing: Preprocessing) -> keras.Model:
    """``model`` behind ``preprocessing``: one input named ``inputs``, float32 of the stored shape."""
    if len(model.inputs) != 1:
        raise UserError(f"model '{model.name}' has {len(model.inputs)} inputs; cnnctl serves models of one input")
    inputs = keras.Input(shape=tuple(preprocessing.stored.shape), dtype="float32", name=INPUT_NAME)
    layers = preprocessing.layers()
    # training=False throughout: CenterCrop defaults to training=True, which would put the model after it
    # (Dropout, BatchNormalization) in training mode whenever the serving model is called without the flag.
    x = keras.Sequential(layers, name=PREPROCESSING)(inputs, training=False) if layers else inputs
    return keras.Model(inputs, model(x, training=False), name=f"{model.name}{SERVING_SUFFIX}")


def load_run_model(run: Run, model_file: str | Path = layout.MODEL, *, unsafe: bool = False) -> RunModel:
    """The run's ``model_file`` (a trained model, or a serving export of it) with its recipe and data record.

    ``unsafe``: load a model that Keras safe mode refuses (``cnnctl.model.saved``), trusting the file.
    """
    recipe = load_recipe(str(run / layout.RECIPE))
    record = read_record(run)
    path = run.path / model_file
    if not path.is_file():
        raise UserError(_missing_model(run, Path(model_file)))
    model = load_keras_model(path, unsafe=unsafe)
    serving = model if model.name.endswith(SERVING_SUFFIX) else serving_model(model, run_preprocessing(recipe, record))
    return RunModel(model, serving, recipe, record, str(path), run)


def load_model(target: str | os.PathLike | Run, runs_dir: str | os.PathLike = "runs",
               model_file: str = layout.MODEL, *, unsafe: bool = False) -> RunModel:
    """``target``: a run directory (or ``Run``), ``latest``, a ``.keras`` file inside a run (model.keras,
    best.keras, a copy, export/serving.keras), or a ``.keras`` file of its own, which is taken to want the values
    as stored. ``model_file``: which model of a run (model.keras or best.keras).

    ``unsafe``: load a model that Keras safe mode refuses (``cnnctl.model.saved``), trusting the file.
    """
    if isinstance(target, Run):
        return load_run_model(target, model_file, unsafe=unsafe)
    target = os.fspath(target)
    path = Path(target)
    if target == "latest" or path.is_dir():
        return load_run_model(find_run(target, runs_dir), model_file, unsafe=unsafe)
    if not path.exists():
        raise UserError(f"{target}: no such run directory or model file{closest_path(target)}")
    if path.suffix != ".keras":
        raise UserError(not_a_model(path, describe_file(path)))
    run = run_of(path)
    if run is not None:
        return load_run_model(run, path.resolve().relative_to(run.path.resolve()), unsafe=unsafe)
    model = load_keras_model(path, unsafe=unsafe)
    if not model.name.endswith(SERVING_SUFFIX):  # a serving export holds its preprocessing; a trained model does not
        print(f"warning: {bare_model_warning(path)}", file=sys.stderr)
    labels = path.with_suffix(".labels.txt")  # written beside every export (cnnctl.exports.writer.labels_path)
    names = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else []
    record = DataRecord(class_names=names, stored=StoredForm(tuple(model.inputs[0].shape[1:])))
    return RunModel(model, model, None, record, str(path))


def bare_model_warning(path: Path) -> str:
    """What is assumed of a trained model's file outside any run, which has no record of its preprocessing."""
    return (f"{path} is outside any run, so nothing records how its inputs were preprocessed: cnnctl assumes none "
            "(image files go in as pixels 0-255, .npy values as they are, with no rescaling or normalization); a "
            "model trained on rescaled inputs (e.g. 1/255: digits' 0-1) gives confident wrong answers so. Give its "
            "run directory instead (or the run's model.keras in place), or a Keras export of the run (cnnctl export "
            "keras RUN), which holds its preprocessing")


def warn_if_changed(record: DataRecord, split: str, examples: int) -> None:
    """A run's own split is carved again from the data as it is now: say so if it is not what training had."""
    trained = record.sizes.get(split)
    if trained is not None and trained != examples:
        print(f"warning: the {split} split now has {examples} examples, {trained} at training time: the data "
              "changed, so the split may now hold examples the model was trained on", file=sys.stderr)


# How a run's training ended, by metrics.json's status, as the reason it has no model.keras.
_TRAINING_ENDED = {"interrupted": "its training was interrupted", "failed": "its training failed"}


def _missing_model(run: Run, model_file: Path) -> str:
    """Why the run has no ``model_file``, and what to do."""
    status = run.status
    if model_file.name == layout.BEST and status == "completed":
        return (f"{run.path} has no {layout.BEST}: the run kept no best epoch (train.monitor: null, or nothing to "
                "monitor); leave out --best")
    if status != "completed" and model_file.name in (layout.MODEL, layout.BEST):
        state = _TRAINING_ENDED.get(status, "its training did not finish")
        return (f"{run.path} has no {model_file.name}: {state}; resume it with cnnctl train --resume {run.path}"
                + (" (or give --best for the best epoch so far)" if (run / layout.BEST).is_file() else ""))
    return f"{run.path / model_file}: no such model file in the run"
