"""Building blocks shared by the recipe's sections: the strict base class and Keras-object fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)


def _keras_object(value: Any) -> Any:
    """A Keras name (``adam``) or a one-key mapping ``{Adam: {learning_rate: 1.0e-3}}``."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and len(value) == 1:
        (name, args), = value.items()
        if isinstance(name, str) and (args is None or isinstance(args, dict)):
            return value
    raise ValueError(
        "expected a Keras name (e.g. adam) or a one-key mapping of a class name to its "
        f"arguments (e.g. {{Adam: {{learning_rate: 1.0e-3}}}}), got {value!r}"
    )


KerasObject = Annotated[Any, AfterValidator(_keras_object)]


