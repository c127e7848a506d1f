"""Keras objects named in a recipe: layers, optimizers, losses, metrics, regularizers.

Learning-rate schedules are in ``cnnctl.model.schedules``, callbacks in ``cnnctl.training.callbacks``; every
argument list goes through ``cnnctl.model.arguments.instantiate``.

A recipe names Keras classes exactly as Keras spells them and passes their
keyword arguments unchanged. This module resolves those names over a vetted
list (never ``keras.layers.deserialize``, never an import), checks arguments
against the constructor's signature, and turns every mistake into a located
``RecipeError`` with a did-you-mean.
"""

from __future__ import annotations

import functools
from typing import Any

import keras

from cnnctl.errors import RecipeError, did_you_mean
from cnnctl.model.arguments import accepted_arguments, instantiate, refuse_module_path
from cnnctl.model.schedules import build_schedule, is_schedule_spec
from cnnctl.recipe.calls import split_spec
from cnnctl.recipe.schema import Recipe
from cnnctl.recipe.train_spec import per_output

# Arguments whose value is itself a layer spec (wrappers).
_NESTED_LAYER_ARGS = {"layer", "backward_layer"}

# Public keras.layers classes a recipe may not name, and why.
REFUSED_LAYERS = {
    "Lambda": "it runs arbitrary Python code; write the operation as layers, or use a cnnctl layer",
    "TFSMLayer": "it loads a SavedModel from disk at build time",
    "JaxLayer": "it wraps an arbitrary JAX function",
    "FlaxLayer": "it wraps an arbitrary Flax module",
    "TorchModuleWrapper": "it wraps an arbitrary PyTorch module",
    "Layer": "it is the abstract base class; name a concrete layer",
    "Wrapper": "it is an abstract base class; use Bidirectional or TimeDistributed",
    "InputLayer": "the input is declared by model.input",
    "RNN": "it needs a cell object; use SimpleRNN, LSTM or GRU",
    "StackedRNNCells": "it needs cell objects; stack SimpleRNN, LSTM or GRU layers instead",
    "Pipeline": "it needs layer objects; list the layers in model.layers instead",
}


@functools.cache
def layer_classes() -> dict[str, type]:
    """Every ``keras.layers`` class a recipe may name, and cnnctl's own layers, by name."""
    from cnnctl.model.custom_layers import CUSTOM_LAYERS

    out = {}
    for name in dir(keras.layers):
        obj = getattr(keras.layers, name)
        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer) and name not in REFUSED_LAYERS:
            out[name] = obj
    return {**out, **CUSTOM_LAYERS}


def build_layer(spec: Any, recipe: Recipe, path: tuple) -> keras.layers.Layer:
    """One layer from its recipe spec; ``path`` locates it in the recipe for errors."""
    name, args = split_spec(spec)
    return make_layer(name, args, recipe, path)


def make_layer(name: str, args: dict, recipe: Recipe, path: tuple) -> keras.layers.Layer:
    """``name(**args)`` for a vetted layer class; ``(*path, name, arg)`` locates each argument."""
    classes = layer_classes()
    if name in REFUSED_LAYERS:
        raise RecipeError(recipe.problem(path, f"layer {name} is not allowed in a recipe: {REFUSED_LAYERS[name]}"))
    refuse_module_path(name, "layer", recipe, path)
    cls = classes.get(name)
    if cls is None:
        blocks = list(recipe.model.blocks)
        hint = did_you_mean(name, [*classes, *blocks]) or _case_hint(name, classes)
        kind = "Keras layer or block" if blocks else "Keras layer"
        raise RecipeError(recipe.problem(path, f"unknown {kind} '{name}'{hint}"))
    args = dict(args)
    for key in _NESTED_LAYER_ARGS & set(args) & set(accepted_arguments(cls)):
        inner = args[key]
        if not _is_layer_spec(inner):
            raise RecipeError(recipe.problem((*path, name, key), f"{key} is a layer such as {{LSTM: {{units: 32}}}}, "
                                             f"got {inner!r}"))
        args[key] = build_layer(inner, recipe, (*path, name, key))
    return instantiate(cls, args, recipe, (*path, name))


def _is_layer_spec(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value)), str) and \
        isinstance(next(iter(value.values())), dict | None)


def build_optimizer(recipe: Recipe, total_steps: int | None = None) -> keras.optimizers.Optimizer:
    """``train.optimizer``; a schedule as its ``learning_rate`` gets ``total_steps`` for ``auto`` (see schedules)."""
    spec = recipe.train.optimizer
    path = ("train", "optimizer")
    name, args = split_spec(spec)
    refuse_module_path(name, "optimizer", recipe, path)
    classes = {n: c for n, c in vars(keras.optimizers).items()
               if isinstance(c, type) and issubclass(c, keras.optimizers.Optimizer)
               and n not in ("Optimizer", "LossScaleOptimizer", "MultiOptimizer")}
    by_lower = {n.lower(): n for n in classes}
    cls = classes.get(name) or classes.get(by_lower.get(name.lower(), ""))
    if cls is None:
        hint = did_you_mean(name, classes) if name[:1].isupper() else did_you_mean(name.lower(), by_lower)
        raise RecipeError(recipe.problem(path, f"unknown Keras optimizer '{name}'{hint}"))
    where = path + ((name,) if isinstance(spec, dict) else ())
    if isinstance(args.get("learning_rate"), int) and not isinstance(args["learning_rate"], bool):
        args["learning_rate"] = float(args["learning_rate"])  # Keras refuses the int 1 where 1.0 is fine
    elif is_schedule_spec(args.get("learning_rate")):
        args["learning_rate"] = build_schedule(args["learning_rate"], recipe, (*where, "learning_rate"), total_steps)
    return instantiate(cls, args, recipe, where)


def build_loss(recipe: Recipe) -> Any:
    """One loss, or a list in the model's output order when the recipe gives one per output."""
    spec, outputs = recipe.train.loss, recipe.graph.output_names
    if per_output(spec, outputs):
        return [_loss_or_metric(spec[name], keras.losses, keras.losses.Loss, recipe, ("train", "loss", name))
                if name in spec else None for name in outputs]
    if len(outputs) > 1:  # one loss for every output: Keras wants it once per output
        return [_loss_or_metric(spec, keras.losses, keras.losses.Loss, recipe, ("train", "loss")) for _ in outputs]
    return _loss_or_metric(spec, keras.losses, keras.losses.Loss, recipe, ("train", "loss"))


def build_metrics(recipe: Recipe) -> list:
    """A list of metrics, or a list of lists in output order when the recipe gives them per output."""
    spec = recipe.train.metrics
    if isinstance(spec, dict):
        return [[_loss_or_metric(m, keras.metrics, keras.metrics.Metric, recipe, ("train", "metrics", name, i))
                 for i, m in enumerate(spec.get(name, []))] for name in recipe.graph.output_names]
    return [
        _loss_or_metric(m, keras.metrics, keras.metrics.Metric, recipe, ("train", "metrics", i))
        for i, m in enumerate(spec)
    ]


def _loss_or_metric(spec: Any, module: Any, base: type, recipe: Recipe, path: tuple) -> Any:
    kind = "loss" if module is keras.losses else "metric"
    name, args = split_spec(spec)
    refuse_module_path(name, kind, recipe, path)
    if isinstance(spec, str):
        if kind == "metric" and name in ("accuracy", "acc", "crossentropy", "ce"):
            return name  # compile() picks the right variant for the loss
        try:
            module.get(name)
        except ValueError:
            known = [n for n in dir(module) if not n.startswith("_") and n not in ("get", "serialize", "deserialize")]
            if kind == "metric":
                known += ["accuracy", "crossentropy"]
            lower = [k for k in known if k.islower()]  # 'acuracy' means 'accuracy', not the class Accuracy
            hint = (did_you_mean(name, lower) if name.islower() else "") or did_you_mean(name, known)
            message = f"unknown Keras {kind} '{name}'{hint}"
            raise RecipeError(recipe.problem(path, message)) from None
        return name
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        known = [n for n in dir(module) if isinstance(getattr(module, n), type)]
        raise RecipeError(recipe.problem(path, f"unknown Keras {kind} class '{name}'{did_you_mean(name, known)}"))
    return instantiate(cls, args, recipe, (*path, name))


def _case_hint(name: str, choices) -> str:
    for choice in choices:
        if choice.lower() == name.lower():
            return f" (did you mean '{choice}'? Keras names are case-sensitive)"
    return ""
