"""Recipe -> a compiled model and its data, after every check that can reject the recipe (``prepare``).

``cnnctl check`` makes the checks that need no data (``check_training``);
``cnnctl train`` makes them all before a run directory exists, so a recipe
error leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from cnnctl.callbacks import build_callbacks
from cnnctl.data import Datasets, build_datasets
from cnnctl.errors import RecipeError, UserError, first_line
from cnnctl.fit_checks import check_fits_data, check_outputs
from cnnctl.model import build
from cnnctl.model.objects import build_loss, build_metrics, build_optimizer
from cnnctl.model.schedules import is_schedule_spec
from cnnctl.recipe import Recipe
from cnnctl.recipe.graph import split_spec
from cnnctl.train_options import check_jit_compile, check_monitor, class_weights, logged_names

_PLACEHOLDER_RUN = Path("RUN")  # `cnnctl check` validates callbacks' file names against a run that does not exist


def compile_model(model: keras.Model, recipe: Recipe, *, total_steps: int | None = None) -> None:
    """``model.compile`` with the recipe's optimizer, losses, metrics, jit_compile and steps_per_execution.

    Everything by keyword (Keras 3). Per-output settings (``loss: {exit1: ..., final: ...}``)
    become lists in the model's output order; one loss or one metric list applies to every
    output. ``total_steps`` (the run's optimizer steps) resolves a schedule's ``decay_steps:
    auto``. A model built under mixed_float16 gets Keras's LossScaleOptimizer explicitly, so
    that a saved model reloads with the same optimizer (Keras would wrap it only at compile).
    """
    outputs = recipe.graph.output_names
    several = len(outputs) > 1
    loss_weights = recipe.train.loss_weights
    if isinstance(loss_weights, dict):
        loss_weights = [loss_weights.get(name, 1.0) for name in outputs]
    metrics = build_metrics(recipe)
    if several and not isinstance(recipe.train.metrics, dict):
        metrics = [list(metrics) for _ in outputs]
    optimizer = build_optimizer(recipe, total_steps)
    if model.dtype_policy.name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    check_jit_compile(model, recipe)
    model.compile(optimizer=optimizer, loss=build_loss(recipe), loss_weights=loss_weights, metrics=metrics,
                  jit_compile=recipe.train.jit_compile, steps_per_execution=recipe.train.steps_per_execution)


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

    @property
    def has_validation(self) -> bool:
        return self.data.sizes["validation"] > 0


def check_training(model: keras.Model, recipe: Recipe) -> None:
    """What ``cnnctl check`` can tell without data: optimizer (schedule), losses, metrics, monitor, callbacks,
    class weights (by index), jit_compile."""
    check_outputs(model, recipe)
    compile_model(model, recipe)  # decay_steps: auto gets a placeholder step count (no data here)
    has_validation = recipe.data.split.validation > 0
    check_monitor(model, recipe, has_validation)
    build_callbacks(recipe, _PLACEHOLDER_RUN, logged=logged_names(model, recipe, has_validation),
                    has_validation=has_validation, schedule=has_schedule(recipe))
    class_weights(model, recipe)
    check_exports(recipe)


def check_exports(recipe: Recipe) -> None:
    """Each format in ``export:`` can be written here (onnx needs its extra): found now, not after training."""
    from cnnctl.export import require_runtime

    for i, spec in enumerate(recipe.export):
        try:
            require_runtime(spec)
        except UserError as exc:
            raise RecipeError(recipe.problem(("export", i), str(exc))) from None


def prepare(recipe: Recipe, normalization: dict | None = None) -> Prepared:
    """Data and a compiled model, after every check that can reject the recipe: no run exists yet.

    ``normalization``: a resumed run's stored standardization, used rather than adapted again.
    """
    check_exports(recipe)
    data = build_datasets(recipe, normalization)
    built = build(recipe)
    model = built.model
    check_fits_data(model, data, recipe)
    per_epoch = data.steps_per_epoch
    total = per_epoch * recipe.train.epochs
    compile_model(model, recipe, total_steps=total)
    has_validation = data.sizes["validation"] > 0
    check_monitor(model, recipe, has_validation)
    logged = logged_names(model, recipe, has_validation)
    build_callbacks(recipe, _PLACEHOLDER_RUN, logged=logged, has_validation=has_validation,
                    schedule=has_schedule(recipe))
    weights = class_weights(model, recipe, class_names=data.class_names, counts=data.class_counts["train"])
    with undecodable_files(data):  # the first batch is the first image decoded
        _check_loss_fits(model, data, recipe)
    return Prepared(model, data, built.policy, per_epoch, total, weights, logged)


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
    from cnnctl.data.files import bad_files_named

    return bad_files_named(data.verify if data is not None else None,
                           f"{kept.lstrip('; ')}{'; ' if kept else ''}remove or replace them, run `cnnctl check "
                           "RECIPE --data` to find all of them before training, or set data.on_error: skip")
