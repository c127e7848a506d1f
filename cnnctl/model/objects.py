"""Keras objects named in a recipe: layers, optimizers, losses, metrics, regularizers.

Learning-rate schedules are in ``cnnctl.model.schedules``, callbacks in ``cnnctl.callbacks``.

A recipe names Keras classes exactly as Keras spells them and passes their
keyword arguments unchanged. This module resolves those names over a vetted
list (never ``keras.layers.deserialize``, never an import), checks arguments
against the constructor's signature, and turns every mistake into a located
``RecipeError`` with a did-you-mean.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import keras

from cnnctl.errors import RecipeError, did_you_mean, first_line
from cnnctl.recipe.fields import SERIALIZED_FORM, SERIALIZED_KEYS
from cnnctl.recipe.graph import split_spec
from cnnctl.recipe.schema import Recipe, per_output

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

# Arguments whose value is itself a layer spec (wrappers).
_NESTED_LAYER_ARGS = {"layer", "backward_layer"}

# A YAML boolean is refused where the argument's default is a string (padding: no) or a number (rate: off,
# which Keras would take as 0), and for these arguments without such a default; except where Keras takes a
# boolean too.
_NAME_ARGUMENTS = {"activation": "a Keras activation such as relu", "recurrent_activation": "a Keras activation such "
                   "as sigmoid", "data_format": "'channels_last' or 'channels_first'", "name": "a string"}
_NUMBER_ARGUMENTS = {"units", "filters", "kernel_size", "rate", "input_dim", "output_dim", "num_heads", "key_dim",
                     "height", "width", "factor", "n", "groups", "axis", "max_value", "target_shape"}
_BOOLEAN_TOO = {"use_cudnn", "save_freq", "verbose"}  # "auto" or a bool; "epoch", an int or False; 0, 1 or a bool
_CHOICES = {"padding": "'valid' or 'same'", "data_format": "'channels_last' or 'channels_first'"}

_FAMILIES = {
    "_regularizer": keras.regularizers,
    "_initializer": keras.initializers,
    "_constraint": keras.constraints,
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
    _refuse_module_path(name, "layer", recipe, path)
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


def _module_path(name: Any, kind: str) -> str | None:
    """Why ``os.system``, ``keras.layers.Lambda`` or ``module:function`` is refused; None for a plain name."""
    if not (isinstance(name, str) and ("." in name or ":" in name)):
        return None
    last = name.replace(":", ".").rsplit(".", 1)[-1]
    example = f" ('{last}')" if name.startswith(("keras.", "tf.keras.", "tensorflow.keras.")) else ""
    article = "an" if kind[:1] in "aeiou" else "a"
    return (f"'{name}' is a module path; {article} {kind} is named by its Keras name alone{example}, and a recipe "
            "cannot name a module or function to import")


def _refuse_module_path(name: Any, kind: str, recipe: Recipe, path: tuple) -> None:
    message = _module_path(name, kind)
    if message is not None:
        raise RecipeError(recipe.problem(path, message))


def instantiate(cls: type, args: dict, recipe: Recipe, path: tuple) -> Any:
    """``cls(**args)`` after checking the argument names and resolving nested objects."""
    allowed = accepted_arguments(cls)
    problems = []
    for key in args:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            if key in SERIALIZED_KEYS or key == "custom_objects":
                hint = ": a recipe gives a class's arguments only, and never names a module or code to import"
            problems.append(recipe.problem((*path, key), f"{cls.__name__} has no argument '{key}'{hint}", key=True))
    if problems:
        raise RecipeError(problems)
    for key, value in args.items():
        problem = _argument_problem(cls, key, value, recipe, (*path, key))
        if problem is not None:
            problems.append(problem)
    if problems:
        raise RecipeError(problems)
    kwargs = {}
    for key, value in args.items():
        family = next((m for suffix, m in _FAMILIES.items() if key.endswith(suffix)), None)
        kwargs[key] = value if family is None else _family_object(family, key, value, recipe, (*path, key))
    try:
        return cls(**kwargs)
    except Exception as exc:  # a constructor's complaint about its arguments, whatever its type
        message = first_line(exc)
        if any(isinstance(v, bool) and (k in message or "bool" in message) for k, v in args.items()):
            message += " (YAML reads unquoted yes/no/on/off as true/false: quote the value if you meant a word)"
        named = [k for k in args if f"{k}=" in message or f"`{k}`" in message or f"'{k}'" in message]
        if len(named) == 1 and isinstance(args[named[0]], str):
            message += f" (the value is the string {args[named[0]]!r})"
        raise RecipeError(recipe.problem((*path, named[0]) if len(named) == 1 else path, message)) from None


def _argument_problem(cls: type, key: str, value: Any, recipe: Recipe, path: tuple) -> Any:
    """A boolean where Keras wants a string or a number; Keras's serialized form; an activation's module path."""
    default = _defaults(cls).get(key, inspect.Parameter.empty)
    family = any(key.endswith(suffix) for suffix in _FAMILIES)  # _family_object says what it takes
    if isinstance(value, bool) and key not in _BOOLEAN_TOO and not family:
        if key in _CHOICES and isinstance(default, str | type(None)):
            choices = "'valid', 'same' or 'causal'" if key == "padding" and "causal" in (cls.__doc__ or "") \
                else _CHOICES[key]
            return recipe.boolean_problem(path, value, f"a string ({choices})")
        if isinstance(default, str):
            return recipe.boolean_problem(path, value, f"a string (default '{default}')")
        if key in _NAME_ARGUMENTS and default in (None, inspect.Parameter.empty):
            return recipe.boolean_problem(path, value, _NAME_ARGUMENTS[key])
        if (isinstance(default, int | float) and not isinstance(default, bool)) or \
                (key in _NUMBER_ARGUMENTS and not isinstance(default, bool)):
            shown = "" if default is inspect.Parameter.empty or default is None else f" (default {default})"
            return recipe.problem(path, f"got the boolean {str(value).lower()}, but {key} is a number{shown}; YAML "
                                        "reads an unquoted yes/no/on/off as a boolean and Keras would take it as "
                                        f"{int(value)}: write the number")
    found = _serialized(value, path)
    if found is not None:
        where, keys = found
        return recipe.problem(where, f"{{{', '.join(map(str, keys))}}} {SERIALIZED_FORM}")
    if key.endswith("activation") and _module_path(value, "activation"):
        return recipe.problem(path, _module_path(value, "activation"))
    return None


def _serialized(value: Any, path: tuple) -> tuple[tuple, list] | None:
    """Where ``value`` holds a mapping with Keras's serialization keys (class_name, module, ...), if it does."""
    if isinstance(value, dict):
        if set(map(str, value)) & set(SERIALIZED_KEYS):
            return path, list(value)
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _serialized(v, (*path, k))
        if found is not None:
            return found
    return None


@functools.cache
def _defaults(cls: type) -> dict[str, Any]:
    """The default of each keyword argument ``cls`` takes (``inspect.Parameter.empty`` for a required one)."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        for p in params:
            out.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out


def accepted_arguments(cls: type) -> list[str]:
    """Keyword arguments ``cls`` takes, including the base Layer's (name, dtype, ...)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def _family_object(module: Any, key: str, value: Any, recipe: Recipe, path: tuple) -> Any:
    """A regularizer, initializer or constraint: a name, a shorthand, or ``{Class: {args}}``."""
    family = key.rsplit("_", maxsplit=1)[-1]
    if isinstance(value, str):
        _refuse_module_path(value, family, recipe, path)
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, bool):
        none = " (or null for none)" if family != "initializer" else ""
        raise RecipeError(recipe.boolean_problem(path, value, f"a Keras {family} name or {{Class: {{arguments}}}}"
                                                 f"{none}"))
    if isinstance(value, dict) and set(map(str, value)) & set(SERIALIZED_KEYS):
        raise RecipeError(recipe.problem(path, f"{{{', '.join(map(str, value))}}} {SERIALIZED_FORM}"))
    if module is keras.regularizers and isinstance(value, dict) and value and set(value) <= {"l1", "l2"}:
        for name, factor in value.items():
            if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor >= 0:
                raise RecipeError(recipe.problem((*path, name), f"{name} is a non-negative number such as 1.0e-4, "
                                                 f"got {factor!r}"))
        return keras.regularizers.L1L2(l1=value.get("l1", 0.0), l2=value.get("l2", 0.0))
    if isinstance(value, dict) and len(value) == 1:
        (name, args), = value.items()
        cls = getattr(module, str(name), None)
        if isinstance(cls, type):
            if args is not None and not isinstance(args, dict):
                raise RecipeError(recipe.problem((*path, name), f"the arguments of {name} must be a mapping of "
                                                 f"argument names to values, e.g. {{{name}: {{...}}}}, got {args!r}"))
            return instantiate(cls, dict(args or {}), recipe, (*path, name))
        known = [n for n in dir(module) if isinstance(getattr(module, n), type)]
        if module is keras.regularizers:
            known += ["l1", "l2"]
        _refuse_module_path(name, family, recipe, (*path, name))
        raise RecipeError(recipe.problem(path, f"unknown {family} '{name}'{did_you_mean(name, known)}"))
    shorthand = " ({l1: x}, {l2: x} or {l1: x, l2: y})" if module is keras.regularizers else ""
    raise RecipeError(
        recipe.problem(path, f"expected a Keras name{shorthand} or {{ClassName: {{arguments}}}}, got {value!r}")
    )


def build_optimizer(recipe: Recipe, total_steps: int | None = None) -> keras.optimizers.Optimizer:
    """``train.optimizer``; a schedule as its ``learning_rate`` gets ``total_steps`` for ``auto`` (see schedules)."""
    from cnnctl.model.schedules import build_schedule, is_schedule_spec

    spec = recipe.train.optimizer
    path = ("train", "optimizer")
    name, args = split_spec(spec)
    _refuse_module_path(name, "optimizer", recipe, path)
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
    _refuse_module_path(name, kind, recipe, path)
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
