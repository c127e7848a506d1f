"""Model + datasets -> a trained run directory (DESIGN 2).

``train(recipe)`` creates the run, writes the resolved recipe, builds the data
and the model, checks they fit together, trains with Keras's own ``fit``, and
writes model.keras, metrics.json and the recipe's exports. Keras's progress
bar goes to stderr so that stdout carries only results.
"""

from __future__ import annotations

import platform
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

import cnnctl
from cnnctl.data import Datasets, build_datasets
from cnnctl.errors import RecipeError, did_you_mean, first_line
from cnnctl.model import build_model
from cnnctl.model.objects import build_loss, build_metrics, build_optimizer
from cnnctl.recipe import Recipe, dump_recipe
from cnnctl.recipe.graph import split_spec
from cnnctl.recipe.schema import per_output
from cnnctl.rundir import RunDir, atomic_write_text, save_model_atomic

_SPARSE_LOSSES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "iou")


@dataclass
class TrainResult:
    run: RunDir
    metrics: dict


def compile_model(model: keras.Model, recipe: Recipe) -> None:
    """``model.compile`` with the recipe's optimizer, losses and metrics (by keyword: Keras 3).

    Per-output settings (``loss: {exit1: ..., final: ...}``) become lists in the
    model's output order; one loss or one metric list applies to every output.
    """
    outputs = recipe.graph.output_names
    several = len(outputs) > 1
    loss_weights = recipe.train.loss_weights
    if isinstance(loss_weights, dict):
        loss_weights = [loss_weights.get(name, 1.0) for name in outputs]
    metrics = build_metrics(recipe)
    if several and not isinstance(recipe.train.metrics, dict):
        metrics = [list(metrics) for _ in outputs]
    model.compile(optimizer=build_optimizer(recipe), loss=build_loss(recipe), loss_weights=loss_weights,
                  metrics=metrics)


def for_outputs(dataset, count: int):
    """Give every output of a multi-output model the same labels (e.g. the exits of an early-exit net)."""
    if count == 1:
        return dataset
    return dataset.map(lambda x, y: (x, (y,) * count))


def check_fits_data(model: keras.Model, data: Datasets, recipe: Recipe) -> None:
    """The model's inputs and output sizes must match the data, before any training."""
    graph = recipe.graph
    if len(model.inputs) != 1:
        names = ", ".join(graph.inputs)
        raise RecipeError(recipe.problem(
            ("model", "inputs"),
            f"the model has {len(model.inputs)} inputs ({names}) but data source '{recipe.data.source}' "
            "gives one; a model with several inputs needs a data source that gives several",
        ))
    expected = tuple(model.inputs[0].shape[1:])
    if expected != tuple(data.element_shape):
        where = ("model", "input") if recipe.model.input is not None else ("model", "inputs")
        raise RecipeError(recipe.problem(
            where, f"the model takes inputs of shape {list(expected)} but the data gives {list(data.element_shape)}",
        ))
    losses = recipe.train.loss if per_output(recipe.train.loss, graph.output_names) else None
    for i, (name, tensor) in enumerate(zip(graph.output_names, model.outputs, strict=True)):
        loss = losses.get(name) if losses else recipe.train.loss
        loss_name, _ = split_spec(loss) if loss is not None else ("", {})
        units = tensor.shape[-1]
        if loss_name in _SPARSE_LOSSES and units != data.num_classes:
            if recipe.model.layers is not None:
                where = ("model", "layers", len(recipe.model.layers) - 1)
            else:
                where = ("model", "graph", name) if name in (recipe.model.graph or {}) else ("model", "outputs", i)
            raise RecipeError(recipe.problem(
                where,
                f"output '{name}' gives {units} values but the data has {data.num_classes} classes "
                f"(labels 0..{data.num_classes - 1}); give its last layer {data.num_classes} units",
            ))


def monitor_mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if any(word in monitor for word in _HIGHER_IS_BETTER) else "min"


def _check_monitor(model: keras.Model, recipe: Recipe, has_validation: bool) -> None:
    monitor = recipe.train.monitor
    if monitor is None:
        return
    metric_names = [m if isinstance(m, str) else m.name for m in keras.tree.flatten(build_metrics(recipe))]
    names = ["loss", *metric_names]
    if len(model.outputs) > 1:  # Keras 3 names them <output>_loss, <output>_<metric>
        names += [f"{o}_{m}" for o in model.output_names for m in ["loss", *metric_names]]
    known = names + ([f"val_{n}" for n in names] if has_validation else [])
    if monitor not in known:
        why = ""
        if not has_validation and monitor.startswith("val_"):
            why = " (data.split.validation is 0: no val_ metrics)"
        raise RecipeError(recipe.problem(
            ("train", "monitor"),
            f"'{monitor}' is not a metric of this run{why}{did_you_mean(monitor, known)}; "
            f"choose one of {', '.join(known)}",
        ))


class RunRecorder(keras.callbacks.Callback):
    """After each epoch: history.csv, checkpoints/last.keras (model + optimizer), state.json, best.keras.

    Every file is rewritten whole under a temporary name and renamed, so a crash
    leaves the previous epoch's files intact. Epochs are counted from 1.
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


def check_training(model: keras.Model, recipe: Recipe) -> None:
    """What ``cnnctl check`` can tell without data: optimizer, losses, metrics and monitor exist."""
    compile_model(model, recipe)
    _check_monitor(model, recipe, recipe.data.split.validation > 0)


def prepare(recipe: Recipe) -> tuple[keras.Model, Datasets]:
    """Data and a compiled model, after every check that can reject the recipe: no run exists yet."""
    data = build_datasets(recipe)
    model = build_model(recipe)
    check_fits_data(model, data, recipe)
    compile_model(model, recipe)
    _check_monitor(model, recipe, data.sizes["validation"] > 0)
    _check_loss_fits(model, data, recipe)
    return model, data


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


def train(recipe: Recipe, runs_dir: str = "runs", *, progress: bool = True) -> TrainResult:
    """Train ``recipe`` into a new run directory under ``runs_dir``; return it and its metrics."""
    started = time.perf_counter()
    model, data = prepare(recipe)  # a recipe error leaves no run directory behind
    has_validation = data.sizes["validation"] > 0
    run = RunDir.create(runs_dir, recipe.name)
    with run.locked():
        atomic_write_text(run / "recipe.yaml", dump_recipe(recipe))

        recorder = RunRecorder(run, recipe.train.monitor, recipe.train.mode)
        callbacks: list[Any] = [recorder]
        if recipe.log.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run / "logs")))
        fit_started = time.perf_counter()
        with redirect_stdout(sys.stderr):
            outputs = len(model.outputs)
            history = model.fit(
                for_outputs(data["train"], outputs),
                validation_data=for_outputs(data["validation"], outputs) if has_validation else None,
                epochs=recipe.train.epochs,
                shuffle=False,  # the pipeline shuffles; Keras warns if asked to on a Dataset
                callbacks=callbacks,
                verbose=(1 if sys.stderr.isatty() else 2) if progress else 0,  # a log file gets one line per epoch
            )
        fit_seconds = time.perf_counter() - fit_started
        save_model_atomic(model, run / "model.keras")

        last = {k: float(v[-1]) for k, v in history.history.items()}
        metrics: dict[str, Any] = {
            "name": recipe.name,
            "epochs": len(history.epoch),
            "train": {k: v for k, v in last.items() if not k.startswith("val_")},
            "validation": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
        }
        if data.sizes["test"] > 0:
            test = model.evaluate(for_outputs(data["test"], len(model.outputs)), return_dict=True, verbose=0)
            metrics["test"] = {k: float(v) for k, v in test.items()}
        if recorder.best_epoch is not None:
            metrics["best"] = {"monitor": recorder.monitor, "mode": recorder.mode,
                               "value": recorder.best, "epoch": recorder.best_epoch}
        metrics.update({
            "examples": data.sizes,
            "params": model.count_params(),
            "train_seconds": round(fit_seconds, 3),
            "images_per_sec": round(data.sizes["train"] * len(history.epoch) / fit_seconds, 1),
            "wall_seconds": round(time.perf_counter() - started, 3),
            "versions": versions(),
        })
        run.write_json("metrics.json", metrics)

        if recipe.export:
            from cnnctl.export import write_export

            for fmt in recipe.export:
                write_export(fmt, run, model, data)
            metrics = run.read_json("metrics.json")
    return TrainResult(run=run, metrics=metrics)
