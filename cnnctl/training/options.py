"""What ``train:`` asks of Keras's ``compile`` and ``fit`` besides the model and the data.

- the names a run logs (``loss``, ``val_accuracy``, ...), which ``train.monitor`` and
  the callbacks' ``monitor`` must be one of;
- ``train.class_weight`` -> the ``class_weight`` mapping ``fit`` takes.

Each check raises ``RecipeError`` located at the key it is about.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from cnnctl.errors import RecipeError, did_you_mean
from cnnctl.recipe import Recipe

_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "iou")


def logged_names(model: keras.Model, recipe: Recipe, has_validation: bool) -> list[str]:
    """The values ``fit`` logs each epoch: loss, metrics, per-output values, and their val_ twins."""
    from cnnctl.model.objects import build_metrics

    metric_names = [m if isinstance(m, str) else m.name for m in keras.tree.flatten(build_metrics(recipe))]
    names = ["loss", *metric_names]
    if len(model.outputs) > 1:  # Keras 3 names them <output>_loss, <output>_<metric>
        names += [f"{o}_{m}" for o in model.output_names for m in ["loss", *metric_names]]
    return names + ([f"val_{n}" for n in names] if has_validation else [])


def check_monitored(monitor: str, known: list[str], has_validation: bool, recipe: Recipe, path: tuple,
                    *, default: bool = False) -> None:
    """``monitor`` (at ``path``) must be a logged name; ``default``: the user did not write it."""
    if monitor in known:
        return
    why = " (data.split.validation is 0: no val_ metrics)" if not has_validation and monitor.startswith("val_") else ""
    said = f"watches '{monitor}' by default, which is not a metric of this run" if default else \
        f"'{monitor}' is not a metric of this run"
    fix = "give monitor: one of" if default else "choose one of"
    raise RecipeError(recipe.problem(path, f"{said}{why}{did_you_mean(monitor, known)}; {fix} {', '.join(known)}"))


def check_monitor(model: keras.Model, recipe: Recipe, has_validation: bool) -> None:
    """``train.monitor`` (what picks best.keras) must be a value the run logs."""
    monitor = recipe.train.monitor
    if monitor is None:
        return
    if "monitor" not in recipe.train.model_fields_set and monitor.startswith("val_") and not has_validation:
        raise RecipeError(recipe.problem(
            ("data", "split", "validation"),
            f"no validation split, so no {monitor} for train.monitor to pick best.keras by (it watches {monitor} "
            "unless told otherwise); give a validation fraction above 0, or train.monitor: loss (the training loss) "
            "or null (no best.keras)"))
    check_monitored(monitor, logged_names(model, recipe, has_validation), has_validation, recipe, ("train", "monitor"))


def monitor_mode(monitor: str, mode: str) -> str:
    """``auto`` -> ``max`` for accuracy-like names, else ``min`` (as Keras's callbacks guess)."""
    if mode != "auto":
        return mode
    return "max" if any(word in monitor for word in _HIGHER_IS_BETTER) else "min"


def balanced_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """scikit-learn's ``balanced``: ``n / (classes * count)`` per class (1.0 for a class with no examples)."""
    counts = np.asarray(counts, dtype="float64")
    total, classes = counts.sum(), len(counts)
    with np.errstate(divide="ignore"):
        weights = total / (classes * counts)
    return np.where(counts > 0, weights, 1.0)


def class_weights(model: keras.Model, recipe: Recipe, *, class_names: Sequence[str] | None = None,
                  counts: np.ndarray | None = None) -> dict[int, float] | None:
    """``train.class_weight`` as ``fit`` takes it: ``{class index: weight}`` for every class.

    Without data (``cnnctl check``) the class count comes from the output's units and
    class names cannot be checked; ``balanced`` needs ``counts`` (the training split's).
    """
    spec = recipe.train.class_weight
    if spec is None:
        return None
    path = ("train", "class_weight")
    if len(model.outputs) > 1:
        names = ", ".join(recipe.graph.output_names)
        raise RecipeError(recipe.problem(path, f"Keras applies class_weight to a model with one output; this one "
                                         f"has {len(model.outputs)} ({names}); remove class_weight"))
    num_classes = len(class_names) if class_names is not None else int(model.outputs[0].shape[-1])
    if spec == "balanced":
        if counts is None:
            return None
        return {i: float(w) for i, w in enumerate(balanced_weights(counts))}
    weights = dict.fromkeys(range(num_classes), 1.0)
    given: dict[int, Any] = {}
    for key, value in spec.items():
        where = (*path, key)
        index = _class_index(key, num_classes, class_names, recipe, where)
        if index is None:
            continue
        if index in given:
            raise RecipeError(recipe.problem(where, f"class {index} is given twice ({given[index]!r} and {key!r})",
                                             key=True))
        given[index] = key
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise RecipeError(recipe.problem(where, f"a class weight is a number, 0 or more, got {value!r}"))
        weights[index] = float(value)
    return weights


def _class_index(key: Any, num_classes: int, class_names: Sequence[str] | None, recipe: Recipe,
                 where: tuple) -> int | None:
    """A class given by index (``3``) or by name (``cat``); None when names are unknown (no data)."""
    if isinstance(key, int) and not isinstance(key, bool):
        if 0 <= key < num_classes:
            return key
        raise RecipeError(recipe.problem(where, f"there is no class {key}: the classes are 0..{num_classes - 1}",
                                         key=True))
    if class_names is None:
        return None
    names = list(class_names)
    if str(key) in names:
        return names.index(str(key))
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise RecipeError(recipe.problem(where, f"unknown class {key!r}{did_you_mean(str(key), names)}; give a class "
                                     f"index 0..{num_classes - 1} or one of the class names: {shown}", key=True))
