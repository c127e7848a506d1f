"""Model + datasets -> a trained run directory (DESIGN 2).

``train(recipe)`` checks everything that can reject the recipe (``prepare``),
then creates the run, writes the resolved recipe, trains with Keras's own
``fit`` (the recipe's callbacks, class weights, dtype policy, XLA and
steps_per_execution), and writes model.keras, metrics.json and the recipe's
exports. Keras's progress goes to stderr so that stdout carries only results.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

import cnnctl
from cnnctl.callbacks import build_callbacks, make_parent_dirs
from cnnctl.data import Datasets, build_datasets
from cnnctl.data.report import data_record
from cnnctl.errors import CnnctlError, RecipeError, UserError, first_line
from cnnctl.fit_checks import check_fits_data, check_outputs
from cnnctl.model import build
from cnnctl.model.objects import build_loss, build_metrics, build_optimizer
from cnnctl.model.schedules import is_schedule_spec
from cnnctl.recipe import Recipe, dump_recipe
from cnnctl.recipe.graph import split_spec
from cnnctl.rundir import RunDir, atomic_write_text, save_model_atomic
from cnnctl.train_options import (
    check_jit_compile,
    check_monitor,
    class_weights,
    logged_names,
    monitor_mode,
    steps_per_epoch,
)

_PLACEHOLDER_RUN = Path("RUN")  # `cnnctl check` validates callbacks' file names against a run that does not exist


@dataclass
class TrainResult:
    run: RunDir
    metrics: dict


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


class LearningRateLog(keras.callbacks.Callback):
    """Adds ``learning_rate`` to each epoch's logs (history.csv, progress): the optimizer's rate when the
    epoch ends (a schedule's value at the steps taken so far), before a callback such as ReduceLROnPlateau
    changes it. It runs first. Keras's own TensorBoard callback logs the same value."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class RunRecorder(keras.callbacks.Callback):
    """After each epoch: history.csv, checkpoints/last.keras (model + optimizer), state.json, best.keras.

    Every file is rewritten whole under a temporary name and renamed, so a crash
    leaves the previous epoch's files intact. Epochs are counted from 1. It runs after
    every other callback, so a checkpoint holds what they changed (ReduceLROnPlateau's
    learning rate, for instance).
    """

    def __init__(self, run: RunDir, monitor: str | None, mode: str):
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.mode = monitor_mode(monitor, mode) if monitor else mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.rows: list[dict] = []
        (run / "checkpoints").mkdir(exist_ok=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.rows.append({"epoch": epoch + 1, **logs})
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in self.rows]
        atomic_write_text(self.run / "history.csv", "\n".join(lines) + "\n")
        save_model_atomic(self.model, self.run / "checkpoints" / "last.keras")
        self.run.write_json("checkpoints/state.json", {"epoch": epoch + 1, "logs": logs})
        value = logs.get(self.monitor) if self.monitor else None
        if value is None or not np.isfinite(value):
            return
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best, self.best_epoch = value, epoch + 1
            save_model_atomic(self.model, self.run / "best.keras")


def versions() -> dict:
    import tensorflow as tf

    return {"cnnctl": cnnctl.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


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
                    has_validation=has_validation, schedule=_has_schedule(recipe))
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


def prepare(recipe: Recipe) -> Prepared:
    """Data and a compiled model, after every check that can reject the recipe: no run exists yet."""
    check_exports(recipe)
    data = build_datasets(recipe)
    built = build(recipe)
    model = built.model
    check_fits_data(model, data, recipe)
    per_epoch = steps_per_epoch(data.sizes["train"], recipe.data.batch_size)
    total = per_epoch * recipe.train.epochs
    compile_model(model, recipe, total_steps=total)
    has_validation = data.sizes["validation"] > 0
    check_monitor(model, recipe, has_validation)
    logged = logged_names(model, recipe, has_validation)
    build_callbacks(recipe, _PLACEHOLDER_RUN, logged=logged, has_validation=has_validation,
                    schedule=_has_schedule(recipe))
    weights = class_weights(model, recipe, class_names=data.class_names, counts=data.class_counts["train"])
    with undecodable_files(data):  # the first batch is the first image decoded
        _check_loss_fits(model, data, recipe)
    return Prepared(model, data, built.policy, per_epoch, total, weights, logged)


def _has_schedule(recipe: Recipe) -> bool:
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


@contextmanager
def undecodable_files(data: Datasets | None, run: RunDir | None = None, recorder: RunRecorder | None = None):
    """An image that fails to decode mid-epoch becomes a list of the files at fault (exit 2), not a traceback.

    Only files past a valid header get this far (``data.on_error`` handles the
    rest when the folder is listed); finding them takes one decoding pass, paid
    only on failure.
    """
    import tensorflow as tf

    try:
        yield
    except tf.errors.InvalidArgumentError:
        bad = data.verify() if data is not None and data.verify is not None else []
        if not bad:
            raise
        from cnnctl.data.files import describe_bad

        kept = f"; epochs 1-{len(recorder.rows)} are kept in {run.path}" if recorder and recorder.rows else ""
        raise UserError(f"{describe_bad(bad)}{kept}\nremove or replace them, run `cnnctl check RECIPE --data` to "
                        "find all of them before training, or set data.on_error: skip") from None


def train(recipe: Recipe, runs_dir: str = "runs", *, progress: bool = True,
          announce: Callable[[RunDir], None] | None = None) -> TrainResult:
    """Train ``recipe`` into a new run directory under ``runs_dir``; return it and its metrics."""
    started = time.perf_counter()
    plan = prepare(recipe)  # a recipe error leaves no run directory behind
    model, data = plan.model, plan.data
    run = RunDir.create(runs_dir, recipe.name)
    if announce is not None:  # once the recipe has passed every check and the run exists
        announce(run)
    with run.locked():
        atomic_write_text(run / "recipe.yaml", dump_recipe(recipe))
        run.write_json("data.json", data_record(data))  # the classes and normalization eval and export reuse

        recorder = RunRecorder(run, recipe.train.monitor, recipe.train.mode)
        extra = build_callbacks(recipe, run.path, logged=plan.logged, has_validation=plan.has_validation,
                                schedule=_has_schedule(recipe))
        make_parent_dirs(extra)
        callbacks: list[Any] = [LearningRateLog(), *extra]
        from cnnctl.tblog import tensorboard_callbacks  # [] when log.tensorboard is off
        callbacks.extend(tensorboard_callbacks(recipe, run, model, data))
        callbacks.append(recorder)  # last: its checkpoint holds what the others changed
        fit_started = time.perf_counter()
        with redirect_stdout(sys.stderr), undecodable_files(data, run, recorder):
            outputs = len(model.outputs)
            try:
                history = model.fit(
                    for_outputs(data.train_epochs(0, recipe.train.epochs), outputs),  # every epoch its own order
                    steps_per_epoch=data.steps_per_epoch,
                    validation_data=for_outputs(data["validation"], outputs) if plan.has_validation else None,
                    epochs=recipe.train.epochs,
                    shuffle=False,  # the pipeline shuffles; Keras warns if asked to on a Dataset
                    class_weight=plan.class_weight,
                    callbacks=callbacks,
                    verbose=(1 if sys.stderr.isatty() else 2) if progress else 0,  # a log file: one line per epoch
                )
            except RuntimeError as exc:  # TerminateOnNaN(raise_error=True)
                if "NaN or Inf loss" not in str(exc):
                    raise
                kept = (f"epoch {len(recorder.rows)} (the last finished) is in {run / 'checkpoints'}"
                        if recorder.rows else "no epoch had finished")
                raise CnnctlError(f"training stopped: {first_line(exc)} (TerminateOnNaN); {kept}") from None
        fit_seconds = time.perf_counter() - fit_started
        save_model_atomic(model, run / "model.keras")
        metrics = _metrics(recipe, plan, history, recorder, extra, fit_seconds=fit_seconds)
        if data.sizes["test"] > 0:
            with undecodable_files(data, run, recorder):
                test = model.evaluate(for_outputs(data["test"], len(model.outputs)), return_dict=True, verbose=0)
            metrics["test"] = {k: float(v) for k, v in test.items()}
        metrics["wall_seconds"] = round(time.perf_counter() - started, 3)
        run.write_json("metrics.json", metrics)

        if recipe.export:
            from cnnctl.export import write_export

            for fmt in recipe.export:
                write_export(fmt, run, model, data)
            metrics = run.read_json("metrics.json")
    return TrainResult(run=run, metrics=metrics)


def _metrics(recipe: Recipe, plan: Prepared, history: Any, recorder: RunRecorder, extra: list, *,
             fit_seconds: float) -> dict[str, Any]:
    """metrics.json, but for the test split and the wall time."""
    last = {k: float(v[-1]) for k, v in history.history.items() if k != "learning_rate"}
    epochs = len(history.epoch)
    metrics: dict[str, Any] = {
        "name": recipe.name,
        "epochs": epochs,
        "train": {k: v for k, v in last.items() if not k.startswith("val_")},
        "validation": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
    }
    if recorder.best_epoch is not None:
        metrics["best"] = {"monitor": recorder.monitor, "mode": recorder.mode,
                           "value": recorder.best, "epoch": recorder.best_epoch}
    model = plan.model
    metrics.update({
        "examples": plan.data.sizes,
        "params": model.count_params(),
        "train_seconds": round(fit_seconds, 3),
        "images_per_sec": round(plan.data.sizes["train"] * epochs / fit_seconds, 1),
        "training": {
            "epochs_planned": recipe.train.epochs,
            "stopped_by": _stopped_by(extra, epochs, recipe.train.epochs, last),
            "steps_per_epoch": plan.steps_per_epoch,
            "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            "learning_rate": recorder.rows[-1]["learning_rate"] if recorder.rows else None,
            "mixed_precision": plan.policy,
            "jit_compile": bool(model.jit_compile),
            "steps_per_execution": recipe.train.steps_per_execution,
            "class_weight": {str(k): v for k, v in plan.class_weight.items()} if plan.class_weight else None,
        },
        "versions": versions(),
    })
    return metrics


def _stopped_by(callbacks: list, epochs: int, planned: int, last: dict) -> str | None:
    """Which callback ended training before train.epochs, if one did."""
    if epochs >= planned:
        return None
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) and callback.stopped_epoch > 0:
            return "EarlyStopping"
    if any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks) and not np.isfinite(
            last.get("loss", 0.0)):
        return "TerminateOnNaN"
    return "a callback"
