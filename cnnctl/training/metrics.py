"""What metrics.json says of a run: its status, final metrics, best epoch, timings, training settings, versions."""

from __future__ import annotations

import platform
from typing import Any

import keras
import numpy as np

from cnnctl._version import __version__
from cnnctl.recipe import Recipe
from cnnctl.training.options import monitor_mode
from cnnctl.training.preflight import Prepared
from cnnctl.training.state import RunState


def versions() -> dict:
    import tensorflow as tf

    return {"cnnctl": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def run_metrics(recipe: Recipe, plan: Prepared, state: RunState) -> dict[str, Any]:
    """metrics.json, but for the test split, the wall time and the exports."""
    rows = state.rows
    last = {k: v for k, v in rows[-1].items() if k not in ("epoch", "learning_rate")} if rows else {}
    epochs = len(rows)
    metrics: dict[str, Any] = {
        "name": recipe.name,
        "status": "completed",
        "epochs": epochs,
        "train": {k: v for k, v in last.items() if not k.startswith("val_")},
        "validation": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
    }
    if state.best_epoch is not None:
        mode = monitor_mode(recipe.train.monitor, recipe.train.mode)
        metrics["best"] = {"monitor": recipe.train.monitor, "mode": mode, "value": state.best,
                           "epoch": state.best_epoch}
    model = plan.model
    seconds = max(state.seconds(), 1e-9)
    metrics.update({
        "examples": plan.data.sizes,
        "params": model.count_params(),
        "train_seconds": round(seconds, 3),
        "images_per_sec": round(plan.data.sizes["train"] * epochs / seconds, 1),
        "training": {
            "epochs_planned": recipe.train.epochs,
            "stopped_by": stopped_by(state.callbacks, epochs, recipe.train.epochs),
            "steps_per_epoch": plan.steps_per_epoch,
            "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            "learning_rate": rows[-1]["learning_rate"] if rows else None,
            "mixed_precision": plan.policy,
            "jit_compile": bool(model.jit_compile),
            "steps_per_execution": recipe.train.steps_per_execution,
            "class_weight": {str(k): v for k, v in plan.class_weight.items()} if plan.class_weight else None,
            "resumed": state.resumes,
        },
        "versions": versions(),
    })
    return metrics


def stopped_by(callbacks: list, epochs: int, planned: int) -> str | None:
    """Which callback ended training before train.epochs, if one did."""
    if epochs >= planned:
        return None
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) and callback.stopped_epoch > 0:
            return "EarlyStopping"
    return "a callback"
