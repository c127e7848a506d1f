"""Recipe -> a compiled model, its data and its callbacks, after every check that can reject the recipe.

``cnnctl check`` makes the checks that need no data (``check_training``);
``cnnctl train`` makes them all (``prepare``) before a run directory exists, so a
recipe error leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from cnnctl.data.pipeline import Datasets, build_datasets
from cnnctl.data.preprocess import augmentation_layers
from cnnctl.data.record import Normalization
from cnnctl.data.sources.images import bad_files_named
from cnnctl.errors import RecipeError, first_line
from cnnctl.model import build
from cnnctl.model.compile import compile_model
from cnnctl.model.report import dead_node_warnings
from cnnctl.model.schedules import is_schedule_spec
from cnnctl.recipe import Recipe
from cnnctl.recipe.calls import split_spec
from cnnctl.registry import FORMATS
from cnnctl.training.callbacks import build_callbacks
from cnnctl.training.fit_checks import check_fits_data, check_outputs, output_warnings
from cnnctl.training.options import check_monitor, class_weights, logged_names

PLACEHOLDER_RUN = Path("RUN")  # callbacks' files are checked (and built) against a run that does not exist yet


def for_outputs(dataset, count: int):
    """Give every output of a multi-output model the same labels (e.g. the exits of an early-exit net)."""
    if count == 1:
        return dataset
    return dataset.map(lambda x, y: (x, (y,) * count))


@dataclass
class Prepared:
    """A compiled model, its data, and what ``fit`` needs: every check that can reject the recipe is done."""

    model: keras.Model
    data: Datasets
    policy: str  # the Keras dtype policy the model was built with
    steps_per_epoch: int
    total_steps: int
    class_weight: dict[int, float] | None
    logged: list[str]  # the values fit logs each epoch (monitor candidates)
    callbacks: list  # the recipe's Keras callbacks, their files under PLACEHOLDER_RUN (``place_in_run``)
    warnings: list[str]  # what does not stop training but would surprise: dead nodes, outputs without probabilities

    @property
    def has_validation(self) -> bool:
        return self.data.sizes["validation"] > 0


def check_training(model: keras.Model, recipe: Recipe) -> list[str]:
    """What ``cnnctl check`` can tell without data: optimizer (schedule), losses, metrics, monitor, callbacks,
    class weights (by index), jit_compile, exports, and the augmentation layers on the model's input shape.
    Returns the warnings that do not stop training (``output_warnings``)."""
    check_outputs(model, recipe)
    compile_model(model, recipe)  # decay_steps: auto gets a placeholder step count (no data here)
    has_validation = recipe.data.split.validation > 0
    check_monitor(model, recipe, has_validation)
    build_callbacks(recipe, PLACEHOLDER_RUN, logged=logged_names(model, recipe, has_validation),
                    has_validation=has_validation, schedule=has_schedule(recipe))
    class_weights(model, recipe)
    check_exports(recipe, model)
    shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else None
    if recipe.data.augment and shape is not None and None not in shape:  # the data's range is known only with data
        augmentation_layers(recipe.data, recipe.seed, (0.0, 255.0), shape)
    return output_warnings(model, recipe)


def check_exports(recipe: Recipe, model: keras.Model | None = None) -> None:
    """Each format in ``export:`` can be written here (onnx needs its extra) and takes ``model`` (a format may
    know it cannot, e.g. TFLite and a recurrent layer not unrolled): found now, not after training."""
    from cnnctl.errors import UserError

    for i, spec in enumerate(recipe.export):
        form = FORMATS.get(spec.format)
        try:
            form.require()
        except UserError as exc:
            raise RecipeError(recipe.problem(("export", i), str(exc))) from None
        reason = form.refuses(model) if model is not None and form.refuses is not None else None
        if reason is not None:
            raise RecipeError(recipe.problem(("export", i), reason))


def prepare(recipe: Recipe, normalization: Normalization | None = None) -> Prepared:
    """Data, a compiled model and the recipe's callbacks, after every check that can reject the recipe: no run
    exists yet. ``normalization``: a resumed run's stored standardization, used rather than adapted again."""
    check_exports(recipe)
    data = build_datasets(recipe.data, recipe.seed, normalization)
    built = build(recipe)
    model = built.model
    check_exports(recipe, model)
    check_fits_data(model, data, recipe)
    per_epoch = data.steps_per_epoch
    total = per_epoch * recipe.train.epochs
    compile_model(model, recipe, total_steps=total)
    has_validation = data.sizes["validation"] > 0
    check_monitor(model, recipe, has_validation)
    logged = logged_names(model, recipe, has_validation)
    callbacks = build_callbacks(recipe, PLACEHOLDER_RUN, logged=logged, has_validation=has_validation,
                                schedule=has_schedule(recipe))
    weights = class_weights(model, recipe, class_names=data.class_names, counts=data.class_counts["train"])
    with undecodable_files(data):  # the first batch is the first image decoded
        _check_loss_fits(model, data, recipe)
    warnings = dead_node_warnings(recipe.graph) + output_warnings(model, recipe)
    return Prepared(model, data, built.policy, per_epoch, total, weights, logged, callbacks, warnings)


def has_schedule(recipe: Recipe) -> bool:
    """Is the optimizer's learning rate a schedule (which ReduceLROnPlateau cannot set)?"""
    _, args = split_spec(recipe.train.optimizer)
    return is_schedule_spec(args.get("learning_rate"))


def _check_loss_fits(model: keras.Model, data: Datasets, recipe: Recipe) -> None:
    """Compute the loss on one batch, so a loss that cannot take these labels fails now, located."""
    outputs = len(model.outputs)
    x, y = next(iter(for_outputs(data["train"], outputs).take(1)))
    try:
        model.compute_loss(x=x, y=y, y_pred=model(x, training=False), training=False)
    except Exception as exc:  # Keras's rank/shape complaints come as ValueError or TF errors
        reason = first_line(exc)
        raise RecipeError(recipe.problem(
            ("train", "loss"),
            f"the loss cannot compare the labels with the model's outputs ({reason}); the labels are class "
            f"indices 0..{data.num_classes - 1}, which sparse_categorical_crossentropy expects",
        )) from None


def undecodable_files(data: Datasets | None, kept: str = ""):
    """An image that fails to decode mid-epoch becomes a list of the files at fault (exit 2), not a traceback.

    Only files past a valid header and end get this far (the folder's listing
    finds the rest); finding them takes one decoding pass, paid only on failure.
    ``kept`` says what of the run is kept (training).
    """
    return bad_files_named(data.verify if data is not None else None,
                           f"{kept.lstrip('; ')}{'; ' if kept else ''}remove or replace them, run `cnnctl check "
                           "RECIPE --data` to find all of them before training, or set data.on_error: skip")
