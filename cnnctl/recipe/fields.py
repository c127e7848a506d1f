"""Building blocks shared by the recipe's sections: the strict base class and Keras-object fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)


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
    raise ValueError(
        "expected a Keras name (e.g. adam) or a one-key mapping of a class name to its "
        f"arguments (e.g. {{Adam: {{learning_rate: 1.0e-3}}}}), got {value!r}"
    )


KerasObject = Annotated[Any, AfterValidator(_keras_object)]


def _layer(value: Any) -> Any:
    """A bare class name (``Flatten``) or ``{Conv2D: {filters: 32, ...}}``."""
    if _is_spec(value):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (name, args), = value.items()
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
