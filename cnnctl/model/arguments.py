"""The one validator of Keras objects named in a recipe: ``cls(**args)`` with every mistake located.

Layers, optimizers, losses, metrics, schedules, callbacks and augmentation layers all
go through ``instantiate``: argument names are checked against the constructor's
signature (unknown -> did-you-mean), YAML booleans where Keras wants a name or a
number are named as such, Keras's serialized form and module paths are refused (a
recipe never names code to import), regularizers, initializers and constraints are
resolved by name, and the constructor's own complaint is located at the argument it
is about. ``where`` is what locates a path in the recipe (``cnnctl.errors.Locator``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import keras

from cnnctl.errors import Locator, Problem, RecipeError, did_you_mean, first_line
from cnnctl.recipe.fields import SERIALIZED_FORM, SERIALIZED_KEYS

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



def module_path(name: Any, kind: str) -> str | None:
    """Why ``os.system``, ``keras.layers.Lambda`` or ``module:function`` is refused; None for a plain name."""
    if not (isinstance(name, str) and ("." in name or ":" in name)):
        return None
    last = name.replace(":", ".").rsplit(".", 1)[-1]
    example = f" ('{last}')" if name.startswith(("keras.", "tf.keras.", "tensorflow.keras.")) else ""
    article = "an" if kind[:1] in "aeiou" else "a"
    return (f"'{name}' is a module path; {article} {kind} is named by its Keras name alone{example}, and a recipe "
            "cannot name a module or function to import")


def refuse_module_path(name: Any, kind: str, where: Locator, path: tuple) -> None:
    message = module_path(name, kind)
    if message is not None:
        raise RecipeError(where.problem(path, message))


def check_argument_names(cls: type, args: dict, where: Locator, path: tuple) -> None:
    """Every name in ``args`` is a keyword argument of ``cls``: the unknown ones, each with a did-you-mean."""
    allowed = accepted_arguments(cls)
    problems = []
    for key in args:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            if key in SERIALIZED_KEYS or key == "custom_objects":
                hint = ": a recipe gives a class's arguments only, and never names a module or code to import"
            problems.append(where.problem((*path, key), f"{cls.__name__} has no argument '{key}'{hint}", key=True))
    if problems:
        raise RecipeError(problems)


def instantiate(cls: type, args: dict, where: Locator, path: tuple) -> Any:
    """``cls(**args)`` after checking the argument names and resolving nested objects."""
    check_argument_names(cls, args, where, path)
    problems: list[Problem] = []
    for key, value in args.items():
        problem = _argument_problem(cls, key, value, where, (*path, key))
        if problem is not None:
            problems.append(problem)
    if problems:
        raise RecipeError(problems)
    kwargs = {}
    for key, value in args.items():
        family = next((m for suffix, m in _FAMILIES.items() if key.endswith(suffix)), None)
        kwargs[key] = value if family is None else _family_object(family, key, value, where, (*path, key))
    try:
        return cls(**kwargs)
    except Exception as exc:  # a constructor's complaint about its arguments, whatever its type
        message = first_line(exc)
        if any(isinstance(v, bool) and (k in message or "bool" in message) for k, v in args.items()):
            message += " (YAML reads unquoted yes/no/on/off as true/false: quote the value if you meant a word)"
        named = [k for k in args if f"{k}=" in message or f"`{k}`" in message or f"'{k}'" in message]
        if len(named) == 1 and isinstance(args[named[0]], str):
            message += f" (the value is the string {args[named[0]]!r})"
        raise RecipeError(where.problem((*path, named[0]) if len(named) == 1 else path, message)) from None


def _argument_problem(cls: type, key: str, value: Any, where: Locator, path: tuple) -> Any:
    """A boolean where Keras wants a string or a number; Keras's serialized form; an activation's module path."""
    default = _defaults(cls).get(key, inspect.Parameter.empty)
    family = any(key.endswith(suffix) for suffix in _FAMILIES)  # _family_object says what it takes
    if isinstance(value, bool) and key not in _BOOLEAN_TOO and not family:
        if key in _CHOICES and isinstance(default, str | type(None)):
            choices = "'valid', 'same' or 'causal'" if key == "padding" and "causal" in (cls.__doc__ or "") \
                else _CHOICES[key]
            return where.boolean_problem(path, value, f"a string ({choices})")
        if isinstance(default, str):
            return where.boolean_problem(path, value, f"a string (default '{default}')")
        if key in _NAME_ARGUMENTS and default in (None, inspect.Parameter.empty):
            return where.boolean_problem(path, value, _NAME_ARGUMENTS[key])
        if (isinstance(default, int | float) and not isinstance(default, bool)) or \
                (key in _NUMBER_ARGUMENTS and not isinstance(default, bool)):
            shown = "" if default is inspect.Parameter.empty or default is None else f" (default {default})"
            return where.problem(path, f"got the boolean {str(value).lower()}, but {key} is a number{shown}; YAML "
                                        "reads an unquoted yes/no/on/off as a boolean and Keras would take it as "
                                        f"{int(value)}: write the number")
    found = _serialized(value, path)
    if found is not None:
        at, keys = found
        return where.problem(at, f"{{{', '.join(map(str, keys))}}} {SERIALIZED_FORM}")
    if key.endswith("activation") and module_path(value, "activation"):
        return where.problem(path, module_path(value, "activation"))
    return _unknown_name(key, value, where, path)


def _unknown_name(key: str, value: Any, where: Locator, path: tuple) -> Any:
    """An activation, initializer, regularizer or constraint named by a word Keras does not know: located at the
    argument, with a did-you-mean (Keras would say "Could not interpret ..." at the layer, once built)."""
    if not isinstance(value, str) or module_path(value, "name"):
        return None
    module, kind = None, ""
    if key.endswith("activation"):
        module, kind = keras.activations, "activation"
    else:
        family = next((suffix for suffix in _FAMILIES if key.endswith(suffix)), None)
        if family is not None:
            module, kind = _FAMILIES[family], family.lstrip("_")
    if module is None:
        return None
    try:
        module.get(value)
        return None
    except (ValueError, TypeError):
        known = [n for n in dir(module) if not n.startswith("_") and n not in ("get", "serialize", "deserialize")]
        words = [n for n in known if n.islower()]
        hint = did_you_mean(value, words) or did_you_mean(value, known)
        listed = "" if hint else f"; Keras's {kind}s are {', '.join(words)}"
        return where.problem(path, f"unknown {kind} '{value}'{hint}{listed}")


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


def _family_object(module: Any, key: str, value: Any, where: Locator, path: tuple) -> Any:
    """A regularizer, initializer or constraint: a name, a shorthand, or ``{Class: {args}}``."""
    family = key.rsplit("_", maxsplit=1)[-1]
    if isinstance(value, str):
        refuse_module_path(value, family, where, path)
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, bool):
        none = " (or null for none)" if family != "initializer" else ""
        raise RecipeError(where.boolean_problem(path, value, f"a Keras {family} name or {{Class: {{arguments}}}}"
                                                 f"{none}"))
    if isinstance(value, dict) and set(map(str, value)) & set(SERIALIZED_KEYS):
        raise RecipeError(where.problem(path, f"{{{', '.join(map(str, value))}}} {SERIALIZED_FORM}"))
    if module is keras.regularizers and isinstance(value, dict) and value and set(value) <= {"l1", "l2"}:
        for name, factor in value.items():
            if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor >= 0:
                raise RecipeError(where.problem((*path, name), f"{name} is a non-negative number such as 1.0e-4, "
                                                 f"got {factor!r}"))
        return keras.regularizers.L1L2(l1=value.get("l1", 0.0), l2=value.get("l2", 0.0))
    if isinstance(value, dict) and len(value) == 1:
        (name, args), = value.items()
        cls = getattr(module, str(name), None)
        if isinstance(cls, type):
            if args is not None and not isinstance(args, dict):
                raise RecipeError(where.problem((*path, name), f"the arguments of {name} must be a mapping of "
                                                 f"argument names to values, e.g. {{{name}: {{...}}}}, got {args!r}"))
            return instantiate(cls, dict(args or {}), where, (*path, name))
        known = [n for n in dir(module) if isinstance(getattr(module, n), type)]
        if module is keras.regularizers:
            known += ["l1", "l2"]
        refuse_module_path(name, family, where, (*path, name))
        raise RecipeError(where.problem(path, f"unknown {family} '{name}'{did_you_mean(name, known)}"))
    shorthand = " ({l1: x}, {l2: x} or {l1: x, l2: y})" if module is keras.regularizers else ""
    raise RecipeError(
        where.problem(path, f"expected a Keras name{shorthand} or {{ClassName: {{arguments}}}}, got {value!r}")
    )
