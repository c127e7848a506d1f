"""Checks that the model fits its data and its loss, before a run exists: located at the recipe key to change.

``check_outputs`` needs no data (``cnnctl check``); ``check_fits_data`` compares the
model's input and output sizes with what the data gives (``check --data``, ``train``).
"""

from __future__ import annotations

import keras

from cnnctl.data.pipeline import Datasets
from cnnctl.errors import RecipeError
from cnnctl.recipe import Recipe
from cnnctl.recipe.calls import split_spec
from cnnctl.recipe.train_spec import per_output
from cnnctl.recipe.yaml_loader import format_path

_SPARSE_LOSSES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}
_BINARY_LOSSES = {"binary_crossentropy", "BinaryCrossentropy", "binary_focal_crossentropy", "BinaryFocalCrossentropy"}


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
    given = tuple(data.element_shape)
    if len(expected) != len(given) or any(e is not None and e != g for e, g in zip(expected, given, strict=False)):
        where = ("model", "input") if recipe.model.input is not None else ("model", "inputs")
        raise RecipeError(recipe.problem(
            where, f"the model takes inputs of shape {list(expected)} but the data gives "
                   f"{list(data.element_shape)}{_shape_hint(expected, data, recipe)}",
        ))
    check_outputs(model, recipe)
    for i, name, tensor, _ in _outputs_with(model, recipe, _SPARSE_LOSSES):
        units = tensor.shape[-1]
        if units != data.num_classes:
            raise RecipeError(recipe.problem(
                _output_where(recipe, name, i),
                f"output '{name}' gives {units} values but the data has {data.num_classes} classes "
                f"({_names(data.class_names)}){_empty_classes(data)}; give its last layer {data.num_classes} units",
            ))
    for i, name, tensor, loss_name in _outputs_with(model, recipe, _BINARY_LOSSES):
        _check_binary(recipe, data, (i, name, tensor.shape[-1], loss_name))


def _check_binary(recipe: Recipe, data: Datasets, output: tuple) -> None:
    """A binary loss compares one probability per example with a label 0 or 1: one unit, at most two classes."""
    i, name, units, loss_name = output
    if data.num_classes > 2:
        raise RecipeError(recipe.problem(
            ("train", "loss"),
            f"output '{name}' is trained with {loss_name}, which takes labels 0 and 1, but the data has "
            f"{data.num_classes} classes ({_names(data.class_names)}); use sparse_categorical_crossentropy "
            f"and give the last layer {data.num_classes} units (softmax)",
        ))
    if units != 1:
        raise RecipeError(recipe.problem(
            _output_where(recipe, name, i),
            f"output '{name}' gives {units} values, but {loss_name} compares one probability per example with "
            "its label 0 or 1; give its last layer 1 unit (sigmoid), or use sparse_categorical_crossentropy",
        ))


def _names(names: list[str], shown: int = 12) -> str:
    return ", ".join(names[:shown]) + (" ..." if len(names) > shown else "")


def _empty_classes(data: Datasets) -> str:
    """``; 14 of these classes have no examples (4, 5, ...): check the labels`` when some class has none."""
    import numpy as np

    counts = [np.asarray(c) for c in data.class_counts.values() if len(c) == data.num_classes]
    if not counts:
        return ""
    empty = [data.class_names[i] for i in np.flatnonzero(np.sum(counts, axis=0) == 0)]
    if not empty:
        return ""
    these = "this class has" if len(empty) == 1 else f"{len(empty)} of these classes have"
    return f"; {these} no examples ({_names(empty, 6)}): check the labels (class indices count from 0)"


def check_outputs(model: keras.Model, recipe: Recipe) -> None:
    """Every output trained with a sparse classification loss gives one vector of class scores per example."""
    for i, name, tensor, loss_name in _outputs_with(model, recipe, _SPARSE_LOSSES):
        if len(tensor.shape) != 2:
            shape = tuple(tensor.shape[1:])
            raise RecipeError(recipe.problem(
                _output_where(recipe, name, i),
                f"output '{name}' gives {shape} per example, but {loss_name} needs one vector of class scores; "
                "add Flatten or GlobalAveragePooling2D before the last Dense layer",
            ))


_PROBABILITIES = {**dict.fromkeys(_SPARSE_LOSSES | {"categorical_crossentropy", "CategoricalCrossentropy"}, "softmax"),
                  **dict.fromkeys(_BINARY_LOSSES, "sigmoid")}
_LOSS_CLASSES = {"sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                 "categorical_crossentropy": "CategoricalCrossentropy", "binary_crossentropy": "BinaryCrossentropy",
                 "binary_focal_crossentropy": "BinaryFocalCrossentropy"}


def output_warnings(model: keras.Model, recipe: Recipe) -> list[str]:
    """Outputs whose last activation does not give the probabilities their loss takes (``from_logits: false``):
    trained so, a classifier stays near chance without an error. One warning each, naming both fixes."""
    graph = recipe.graph
    losses = recipe.train.loss if per_output(recipe.train.loss, graph.output_names) else None
    warnings = []
    for i, (name, tensor) in enumerate(zip(graph.output_names, model.outputs, strict=True)):
        loss = losses.get(name) if losses else recipe.train.loss
        if loss is None:
            continue
        loss_name, args = split_spec(loss)
        wanted = _PROBABILITIES.get(loss_name)
        layer = tensor._keras_history[0]  # the layer that gives this output
        given = _activation_of(layer)
        if wanted is None or args.get("from_logits") or given is None or given == wanted:
            continue
        loss_class = _LOSS_CLASSES.get(loss_name, loss_name)
        at = format_path(_output_where(recipe, name, i))
        warnings.append(f"output '{name}' comes from {layer.name} ({type(layer).__name__}, {at}) with activation "
                        f"{given}, but {loss_name} takes probabilities, which {wanted} gives: trained so, the model "
                        f"stays near chance. Give {layer.name} activation: {wanted}, or make the loss take logits "
                        f"(train.loss: {{{loss_class}: {{from_logits: true}}}})")
    return warnings


def _activation_of(layer: keras.layers.Layer) -> str | None:
    """The name of the activation a layer ends with (``linear`` for none), or None when it is not known."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", None) if callable(activation) else str(activation)


def _outputs_with(model: keras.Model, recipe: Recipe, names: set[str]):
    """(index, name, tensor, loss name) of each output trained with one of the losses ``names``."""
    graph = recipe.graph
    losses = recipe.train.loss if per_output(recipe.train.loss, graph.output_names) else None
    for i, (name, tensor) in enumerate(zip(graph.output_names, model.outputs, strict=True)):
        loss = losses.get(name) if losses else recipe.train.loss
        loss_name, _ = split_spec(loss) if loss is not None else ("", {})
        if loss_name in names:
            yield i, name, tensor, loss_name


def _output_where(recipe: Recipe, name: str, index: int) -> tuple:
    if recipe.model.layers is not None:
        return ("model", "layers", len(recipe.model.layers) - 1)
    return ("model", "graph", name) if name in (recipe.model.graph or {}) else ("model", "outputs", index)


def _shape_hint(expected: tuple, data: Datasets, recipe: Recipe) -> str:
    """What to change so that the data's shape becomes the model's, named by the step that sets it."""
    if tuple(data.stored_shape) != tuple(data.element_shape):  # augmentation changed it (a crop)
        return (f"; the data is {list(data.stored_shape)} as decoded and data.augment makes it "
                f"{list(data.element_shape)}: change the crop, or the model's input")
    if recipe.data.kind in ("image_dir", "tfds") or (
            recipe.data.kind == "tfrecord" and data.stored_dtype == "uint8"):
        if len(expected) == 3 and None not in expected[:2]:
            mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(expected[2], "")
            settings = []
            if list(expected[:2]) != list(data.stored_shape[:2]):
                settings.append(f"data.image_size: [{expected[0]}, {expected[1]}]")
            if mode and mode != recipe.data.color_mode:
                settings.append(f"data.color_mode: {mode}")
            return f"; set {' and '.join(settings)}, or change the model's input" if settings else ""
        return ""
    if recipe.data.kind == "tfrecord":
        return f"; set the shape of the image feature in data.features to {list(expected)}, or change the model's input"
    if recipe.data.kind in ("npz", "csv"):
        return f"; set data.reshape: {list(expected)}, or change the model's input"
    return ""
