"""Learning-rate schedules named in a recipe, where Keras takes them: the optimizer's ``learning_rate``.

```yaml
optimizer: {Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.0, warmup_target: 1.0e-3,
                                                 warmup_steps: 100, decay_steps: auto}}}}
```

Any ``keras.optimizers.schedules`` class, with its own arguments. Keras's schedule
constructors check almost nothing (a string learning rate fails at the first
training step, deep inside ``fit``), so the arguments are checked here: numbers,
step counts, flags. ``decay_steps: auto`` (``first_decay_steps: auto`` for
CosineDecayRestarts) is the run's training steps minus ``warmup_steps``:
``train.epochs * ceil(training examples / data.batch_size)`` steps in all.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import keras

from cnnctl.errors import RecipeError, did_you_mean, first_line
from cnnctl.model.arguments import check_argument_names, instantiate
from cnnctl.recipe.schema import Recipe

AUTO_STEPS = ("decay_steps", "first_decay_steps")  # the arguments that take `auto`
# `cnnctl check` has no data, hence no step count: `auto` becomes this placeholder there,
# so that everything else about the schedule can still be checked.
PLACEHOLDER_STEPS = 1000

_NUMBERS = {"initial_learning_rate", "decay_rate", "end_learning_rate", "power", "alpha", "warmup_target",
            "t_mul", "m_mul"}
_FLAGS = {"staircase", "cycle"}


@functools.cache
def schedule_classes() -> dict[str, type]:
    """Every ``keras.optimizers.schedules`` class by name (not the abstract base)."""
    base = keras.optimizers.schedules.LearningRateSchedule
    return {name: cls for name, cls in vars(keras.optimizers.schedules).items()
            if isinstance(cls, type) and issubclass(cls, base) and cls is not base}


def is_schedule_spec(value: Any) -> bool:
    """Does an optimizer's ``learning_rate`` name a schedule (rather than give a number)?"""
    return isinstance(value, dict) or (isinstance(value, str) and value in schedule_classes())


def build_schedule(spec: Any, recipe: Recipe, path: tuple, total_steps: int | None) -> Any:
    """``{CosineDecay: {...}}`` at ``path`` -> a Keras schedule; ``total_steps`` resolves ``auto``."""
    classes = schedule_classes()
    if isinstance(spec, str):
        example = _example(classes[spec])
        raise RecipeError(recipe.problem(path, f"{spec} needs its arguments: {{{spec}: {{{example}}}}}"))
    if len(spec) != 1:
        raise RecipeError(recipe.problem(path, "a learning-rate schedule is a one-key mapping of a "
                                         f"keras.optimizers.schedules class to its arguments, got {len(spec)} keys"))
    (name, args), = spec.items()
    cls = classes.get(name)
    if cls is None:
        hint = did_you_mean(name, classes) or did_you_mean(str(name).lower(), {c.lower(): c for c in classes})
        raise RecipeError(recipe.problem((*path, name), f"unknown learning-rate schedule '{name}'{hint}; "
                                         f"keras.optimizers.schedules has {', '.join(classes)}", key=True))
    where = (*path, name)
    if args is not None and not isinstance(args, dict):
        raise RecipeError(recipe.problem(where, f"the arguments of {name} are a mapping, e.g. "
                                         f"{{{name}: {{{_example(cls)}}}}}, got {args!r}"))
    args = _checked(cls, dict(args or {}), recipe, where)
    args = _resolve_auto(args, recipe, where, total_steps)
    schedule = instantiate(cls, args, recipe, where)
    try:  # Keras computes nothing until the first step: compute two values now
        for step in (0, 1):
            float(keras.ops.convert_to_numpy(schedule(step)))
    except Exception as exc:  # whatever the backend raises about these arguments
        raise RecipeError(recipe.problem(where, f"{name} cannot compute a learning rate from these arguments: "
                                         f"{first_line(exc)}")) from None
    return schedule


def _checked(cls: type, args: dict, recipe: Recipe, where: tuple) -> dict:
    """Unknown and missing arguments, then each value's type; ints become floats where Keras wants floats."""
    check_argument_names(cls, args, recipe, where)
    missing = [p.name for p in _params(cls) if p.default is p.empty and p.name not in args]
    if missing:
        raise RecipeError(recipe.problem(where, f"{cls.__name__} needs {' and '.join(missing)}, e.g. "
                                         f"{{{cls.__name__}: {{{_example(cls)}}}}}"))
    out = {}
    for key, value in args.items():
        out[key] = _typed(cls.__name__, key, value, recipe, (*where, key))
    return out


def _typed(cls: str, key: str, value: Any, recipe: Recipe, path: tuple) -> Any:
    def wrong(expected: str) -> RecipeError:
        return RecipeError(recipe.problem(path, f"{cls}.{key} is {expected}, got {value!r}"))

    if key in _NUMBERS:
        if value is None and key == "warmup_target":
            return None
        if not _is_number(value):
            raise wrong("a number" + (" (or null: no warmup)" if key == "warmup_target" else ""))
        return float(value)
    if key in AUTO_STEPS:
        if value == "auto":
            return value
        if not _is_int(value) or value <= 0:
            raise wrong("a number of steps above 0, or auto (the run's steps minus warmup_steps)")
    elif key == "warmup_steps":
        if not _is_int(value) or value < 0:
            raise wrong("a number of steps (0 or more)")
    elif key in _FLAGS:
        if not isinstance(value, bool):
            raise wrong("true or false")
    elif key == "boundaries":
        if not isinstance(value, list) or not value or not all(_is_int(v) and v >= 0 for v in value):
            raise wrong("a list of step numbers, e.g. [1000, 2000]")
        if value != sorted(set(value)):
            raise wrong("a list of step numbers in increasing order")
    elif key == "values":
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            raise wrong("a list of learning rates, one more than boundaries, e.g. [1.0e-3, 1.0e-4, 1.0e-5]")
        return [float(v) for v in value]
    elif key == "name" and not isinstance(value, str):
        raise wrong("a string")
    return value


def _resolve_auto(args: dict, recipe: Recipe, where: tuple, total_steps: int | None) -> dict:
    for key in AUTO_STEPS:
        if args.get(key) != "auto":
            continue
        if total_steps is None:
            args[key] = PLACEHOLDER_STEPS  # no data here (`cnnctl check`): see PLACEHOLDER_STEPS
            continue
        warmup = args.get("warmup_steps", 0)
        steps = total_steps - warmup
        if steps <= 0:
            raise RecipeError(recipe.problem(
                (*where, "warmup_steps" if warmup else key),
                f"{key}: auto is the run's {total_steps} training steps minus warmup_steps ({warmup}), which "
                "leaves none to decay over; lower warmup_steps or raise train.epochs",
            ))
        args[key] = steps
    return args


def _params(cls: type) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]


def _example(cls: type) -> str:
    """The required arguments of ``cls`` as a YAML flow mapping with placeholders."""
    sample = {"initial_learning_rate": "1.0e-3", "decay_steps": "auto", "first_decay_steps": "auto",
              "decay_rate": "0.5", "boundaries": "[1000, 2000]", "values": "[1.0e-3, 1.0e-4, 1.0e-5]"}
    return ", ".join(f"{p.name}: {sample.get(p.name, '...')}" for p in _params(cls) if p.default is p.empty)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
