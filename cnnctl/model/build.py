"""Recipe.model -> keras.Model, and the layer table ``cnnctl check`` prints."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras

from cnnctl.errors import RecipeError
from cnnctl.model.objects import build_layer, split_spec
from cnnctl.recipe.schema import Recipe

INPUT_NAME = "image"


def build_model(recipe: Recipe) -> keras.Model:
    """A built ``keras.Sequential`` from ``model: {input, layers}``.

    Layers are added one at a time so that a shape mistake names the layer
    that cannot take its input, and that input's shape.
    """
    keras.utils.set_random_seed(recipe.seed)
    layers, problems = [], []
    for i, spec in enumerate(recipe.model.layers):  # construct all first: report every bad layer at once
        try:
            layers.append(build_layer(spec, recipe, ("model", "layers", i)))
        except RecipeError as exc:
            problems += exc.problems
    if problems:
        raise RecipeError(problems)
    model = keras.Sequential(name=recipe.name)
    model.add(keras.Input(shape=tuple(recipe.model.input), name=INPUT_NAME))
    incoming = (None, *recipe.model.input)
    for i, (spec, layer) in enumerate(zip(recipe.model.layers, layers, strict=False)):
        try:
            model.add(layer)
        except Exception as exc:  # Keras raises ValueError, TypeError or backend errors here
            name, _ = split_spec(spec)
            before = "the input" if i == 0 else f"layers[{i - 1}]"
            raise RecipeError(
                recipe.problem(
                    ("model", "layers", i),
                    f"{name} cannot take the output of {before}, of shape {_shape(incoming)}: "
                    f"{str(exc).strip().splitlines()[0]}",
                )
            ) from None
        incoming = tuple(layer.output.shape)
    return model


@dataclass(frozen=True)
class LayerRow:
    name: str
    cls: str
    output_shape: list  # without the batch dimension
    params: int
    trainable_params: int


def summarize(model: keras.Model) -> list[LayerRow]:
    """One row per layer: name, Keras class, output shape (batch aside), parameters."""
    rows = []
    for layer in model.layers:
        shape = list(layer.output.shape)[1:]
        trainable = sum(math.prod(w.shape) for w in layer.trainable_weights)
        rows.append(LayerRow(layer.name, type(layer).__name__, shape, layer.count_params(), trainable))
    return rows


def summary_dict(model: keras.Model) -> dict:
    """The JSON ``cnnctl check --json`` prints."""
    rows = summarize(model)
    layers = []
    for row in rows:
        item = asdict(row)
        item["class"] = item.pop("cls")
        layers.append(item)
    return {
        "name": model.name,
        "input_shape": list(model.inputs[0].shape)[1:],
        "layers": layers,
        "params": model.count_params(),
        "trainable_params": sum(r.trainable_params for r in rows),
        "non_trainable_params": model.count_params() - sum(r.trainable_params for r in rows),
    }


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"
