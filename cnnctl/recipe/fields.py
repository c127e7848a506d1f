"""Building blocks shared by the recipe's sections: the strict base class and Keras-object fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr
from pydantic_core import PydanticCustomError

from cnnctl.errors import Problem

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class Section(BaseModel):
    """A strict, frozen section of a recipe that can say where its values came from.

    ``problem(path, message)`` locates ``path`` (relative to this section) in the recipe
    file, or in the ``--set`` that gave it, once ``cnnctl.recipe.load`` has called
    ``locate``: so a stage given one section (the data stage takes ``recipe.data``)
    reports ``recipe.yaml:12:5: data.augment[0].RandomFlip.mode: ...`` all the same.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)

    _located: Any = PrivateAttr(default=None)  # cnnctl.recipe.yaml_loader.Located: the document it was read from
    _prefix: tuple = PrivateAttr(default=())  # this section's key path in that document

    def locate(self, located: Any, prefix: tuple = ()) -> None:
        """Remember the document this section (and every section inside it) was read from, at ``prefix``."""
        self._located, self._prefix = located, tuple(prefix)
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Section):
                value.locate(located, (*prefix, name))

    def problem(self, path: tuple, message: str, *, key: bool = False) -> Problem:
        """A Problem located at ``path`` (relative to this section) in the recipe file (or the --set that gave it)."""
        from cnnctl.recipe.yaml_loader import format_path

        full = (*self._prefix, *path)
        if self._located is None:
            return Problem("", format_path(full), message)
        return self._located.problem(full, message, key=key)

    def boolean_problem(self, path: tuple, value: bool, expected: str) -> Problem:
        """``path: no`` where ``expected`` (a string, a name) was wanted: says how YAML read it."""
        from cnnctl.recipe.yaml_loader import boolean_message, key_name

        full = (*self._prefix, *path)
        word = self._located.words.get(full) if self._located is not None else None
        return self.problem(path, boolean_message(value, key_name(full), expected, word))


# Keys of Keras's serialized form ({class_name, config, module, registered_name}): Keras imports ``module``
# to find ``class_name``. A recipe names a class and its arguments instead, and never a module.
SERIALIZED_KEYS = ("class_name", "config", "module", "registered_name")
SERIALIZED_FORM = ("is Keras's serialized form (class_name, config, module, registered_name); a recipe names "
                   "the class and its arguments, {ClassName: {argument: value}}, and never a module to import")


def refuse_boolean(value: Any, expected: str) -> None:
    """A YAML boolean (an unquoted yes/no/on/off) where a name is expected: ``cnnctl.recipe.load`` says so."""
    if isinstance(value, bool):
        raise PydanticCustomError("yaml_bool", "expected {expected}", {"expected": expected})


def _refuse_serialized(value: Any) -> None:
    if isinstance(value, dict) and len(value) > 1 and set(value) & set(SERIALIZED_KEYS):
        raise ValueError(f"{{{', '.join(map(str, value))}}} {SERIALIZED_FORM}")


def _is_spec(value: Any) -> bool:
    """A Keras class name, or a one-key mapping of a class name to its arguments (or to nothing)."""
    if isinstance(value, str):
        return bool(value)
    if isinstance(value, dict) and len(value) == 1:
        (name, args), = value.items()
        return isinstance(name, str) and (args is None or isinstance(args, dict))
    return False


def _keras_object(value: Any) -> Any:
    """A Keras name (``adam``) or a one-key mapping ``{Adam: {learning_rate: 1.0e-3}}``."""
    if _is_spec(value):
        return value
    refuse_boolean(value, "a Keras name such as adam, or {Class: {arguments}}")
    _refuse_serialized(value)
    raise ValueError(
        "expected a Keras name (e.g. adam) or a one-key mapping of a class name to its "
        f"arguments (e.g. {{Adam: {{learning_rate: 1.0e-3}}}}), got {value!r}"
    )


KerasObject = Annotated[Any, AfterValidator(_keras_object)]


def _layer(value: Any) -> Any:
    """A bare class name (``Flatten``) or ``{Conv2D: {filters: 32, ...}}``."""
    if _is_spec(value):
        return value
    refuse_boolean(value, "a Keras layer such as Flatten or {Dense: {units: 10}}")
    _refuse_serialized(value)
    if isinstance(value, dict) and len(value) == 1:
        (name, args), = value.items()
        if isinstance(name, str) and " {" in name:  # "Dense {units: 10}": YAML split it at the ': ' inside
            cls = name.split(" {", 1)[0]
            raise ValueError(f"layer '{cls}' needs a ':' before its arguments: write {cls}: {{{name.split(' {', 1)[1]}"
                             f": {args}")
        raise ValueError(
            f"the arguments of layer '{name}' must be a mapping of argument names to values, "
            f"got {args!r}"
        )
    if isinstance(value, dict):
        raise ValueError(
            f"a layer is a one-key mapping from a Keras class name to its arguments; got "
            f"{len(value)} keys ({', '.join(map(str, value))}): is the indentation of the "
            "arguments off, or a '- ' missing before the next layer?"
        )
    raise ValueError(f"expected a Keras layer such as Flatten or {{Dense: {{units: 10}}}}, got {value!r}")


LayerSpec = Annotated[Any, AfterValidator(_layer)]
