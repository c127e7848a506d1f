"""Recipe.model -> keras.Model, and the per-call rows ``cnnctl check`` prints.

The recipe stage (``cnnctl.recipe.graph``) has already expanded blocks and
resolved ``from``/``share`` into a flat list of calls; here each call becomes a
Keras layer call. A plain chain becomes ``keras.Sequential``, anything else a
functional ``keras.Model``, as a Keras user would have written it. The model is
built under the dtype policy of ``train.mixed_precision`` (``cnnctl.model.precision``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import keras

from cnnctl.errors import Problem, RecipeError, first_line
from cnnctl.model.objects import layer_classes, make_layer
from cnnctl.model.precision import is_mixed, policy_scope, resolve_policy
from cnnctl.recipe.graph import Call, Graph
from cnnctl.recipe.schema import Recipe


@dataclass
class Built:
    """A model with what was learnt while building it: the layer and output of every call."""

    model: keras.Model
    graph: Graph
    layers: dict[str, keras.layers.Layer]  # call key -> layer (the shared one for a share call)
    tensors: dict[str, Any]  # call key or input name -> symbolic output
    policy: str = "float32"  # the Keras dtype policy it was built with


def build_model(recipe: Recipe) -> keras.Model:
    """The recipe's model, built (its weights exist), seeded by ``recipe.seed``."""
    return build(recipe).model


def build(recipe: Recipe) -> Built:
    """Build under the recipe's dtype policy; the global policy is restored afterwards."""
    policy = resolve_policy(recipe.train.mixed_precision)
    with policy_scope(policy):
        return dataclasses.replace(_build(recipe, float32_outputs=is_mixed(policy)), policy=policy)


def _build(recipe: Recipe, *, float32_outputs: bool) -> Built:
    keras.utils.set_random_seed(recipe.seed)
    graph = recipe.graph
    layers = _construct_layers(recipe, graph, float32_outputs)
    inputs = {name: keras.Input(shape=tuple(spec.shape), dtype=spec.dtype, name=name)
              for name, spec in graph.inputs.items()}
    tensors: dict[str, Any] = dict(inputs)
    if graph.sequential:
        model = keras.Sequential(name=recipe.name)
        model.add(next(iter(inputs.values())))
        for call in graph.calls:
            layer = layers[call.key]
            try:
                model.add(layer)
            except Exception as exc:  # Keras raises ValueError, TypeError or backend errors here
                raise RecipeError(_shape_problem(recipe, call, layers, tensors, exc)) from None
            tensors[call.key] = layer.output
    else:
        for call in graph.calls:
            given = [tensors[key] for key in call.inputs]
            try:
                tensors[call.key] = layers[call.key](given[0] if len(given) == 1 else given)
            except Exception as exc:  # as above: any complaint of a layer about its inputs
                raise RecipeError(_shape_problem(recipe, call, layers, tensors, exc)) from None
        outputs = [tensors[key] for key in graph.outputs]
        model = keras.Model(
            inputs=list(inputs.values()) if len(inputs) > 1 else next(iter(inputs.values())),
            outputs=outputs if len(outputs) > 1 else outputs[0],
            name=recipe.name,
        )
    return Built(model, graph, layers, tensors)


def _construct_layers(recipe: Recipe, graph: Graph, float32_outputs: bool = False) -> dict[str, keras.layers.Layer]:
    """Every layer object, before any is called: all bad layers are reported at once.

    With ``float32_outputs`` (a mixed policy) the layers that produce the model's
    outputs compute in float32, unless the recipe gives them a dtype.
    """
    calls = {call.key: call for call in graph.calls}
    output_layers = {calls[key].share or key for key in graph.outputs} if float32_outputs else set()
    problems: list[Problem] = []
    for block in sorted(set(recipe.model.blocks) & set(layer_classes())):
        problems.append(recipe.problem(("model", "blocks", block),
                                       f"block '{block}' has the name of a Keras layer; rename it", key=True))
    layers: dict[str, keras.layers.Layer] = {}
    for call in graph.calls:
        if call.share is not None:
            continue
        args = call.args
        if call.key in output_layers and "dtype" not in args:
            args = {**args, "dtype": "float32"}
        try:
            layers[call.key] = make_layer(call.cls, args, recipe, call.path)
        except RecipeError as exc:
            problems += [dataclasses.replace(p, message=p.message + call.context) for p in exc.problems]
    if problems:
        seen: set = set()
        raise RecipeError([p for p in problems if not ((p.where, p.path) in seen or seen.add((p.where, p.path)))])
    for call in graph.calls:
        if call.share is not None:
            layers[call.key] = layers[call.share]
    return layers


def _shape_problem(recipe: Recipe, call: Call, layers: dict, tensors: dict, exc: Exception) -> Problem:
    """Name the layer that cannot take its input, the layer(s) that gave it, and their shapes."""
    cls = type(layers[call.key]).__name__
    sources = [f"{_label(key, layers)}, of shape {shape_text(shape_of(tensors[key]))}" for key in call.inputs]
    reason = first_line(exc).split("is incompatible with the layer: ")[-1].split(" Full shape received")[0]
    if len(sources) == 1:
        message = f"{cls} cannot take the output of {sources[0]}: {reason}"
    else:
        message = f"{cls} cannot combine {' and '.join(sources)}: {reason}"
    return recipe.problem(call.path, message + call.context)


def _label(key: str, layers: dict) -> str:
    if key not in layers:
        return f"input '{key}'"
    layer = layers[key]
    return f"'{layer.name}' ({type(layer).__name__})"


def shape_of(tensor: Any) -> tuple:
    """The shape of a symbolic output (the first, for a layer that returns several)."""
    first = tensor[0] if isinstance(tensor, (list, tuple)) else tensor
    return tuple(first.shape)


def shape_text(shape: tuple) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


@dataclass(frozen=True)
class LayerRow:
    """One call of one layer, as ``cnnctl check`` shows it."""

    name: str
    cls: str
    output_shape: list  # without the batch dimension
    params: int  # 0 for a call that reuses a layer listed earlier
    trainable_params: int
    inputs: list[str]  # names of the rows (or model inputs) it reads
    shares: str | None  # the name of the layer whose weights it reuses


def summarize(built: Built) -> list[LayerRow]:
    """One row per layer call, in graph order."""
    rows, names = [], {name: name for name in built.graph.inputs}
    for call in built.graph.calls:
        layer = built.layers[call.key]
        name = layer.name if call.share is None else call.key
        names[call.key] = name
        shared = call.share is not None
        trainable = 0 if shared else sum(math.prod(w.shape) for w in layer.trainable_weights)
        rows.append(LayerRow(
            name=name,
            cls=type(layer).__name__,
            output_shape=list(shape_of(built.tensors[call.key]))[1:],
            params=0 if shared else layer.count_params(),
            trainable_params=trainable,
            inputs=[names[key] for key in call.inputs],
            shares=layer.name if shared else None,
        ))
    return rows
