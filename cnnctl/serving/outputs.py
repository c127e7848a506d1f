"""How a model's outputs are read as classes: their names, whether they are logits, their class probabilities.

``cnnctl eval``, ``predict`` and the export checks read outputs the same way: a
vector of scores per example is a classification (softmax applied to logits), one
sigmoid unit scores two classes, anything else is shown as values.
"""

from __future__ import annotations

import keras
import numpy as np

from cnnctl.recipe import Recipe
from cnnctl.recipe.calls import split_spec
from cnnctl.recipe.train_spec import per_output


def output_names(model: keras.Model) -> list[str]:
    """One name per output: the output layers' names, or the model's name for a single output."""
    return list(model.output_names) if len(model.outputs) > 1 else [model.name]


def logits_of(recipe: Recipe | None, count: int) -> list[bool | None]:
    """Per output of the recipe's model (``count`` of them), whether its loss takes logits; None without one."""
    if recipe is None:
        return [None] * count
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


def predicted_classes(outputs: np.ndarray, logits: bool | None) -> np.ndarray:
    """Predicted classes, as eval and predict read them: argmax of the class scores; one unit is [1 - p, p]."""
    return class_scores(outputs.reshape(len(outputs), -1), logits).argmax(axis=1)
