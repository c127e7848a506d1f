"""The recipe schema: every section, its keys, their types and defaults.

The defaults here are documentation: ``cnnctl recipes`` and docs/recipe.md show
them. Validation is strict (``1`` is not ``true``, ``"3"`` is not ``3``) and
unknown keys are errors, so a typo never passes silently. Layer arguments are
checked later against the Keras class itself (``cnnctl.model.layers``), since
that needs Keras.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from cnnctl.recipe.yaml_loader import Located

EXPORT_FORMATS = ("savedmodel",)

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


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


def _layer(value: Any) -> Any:
    """A bare class name (``Flatten``) or ``{Conv2D: {filters: 32, ...}}``."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and len(value) == 1:
        (name, args), = value.items()
        if isinstance(name, str) and (args is None or isinstance(args, dict)):
            return value
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


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SplitSpec(Section):
    """Fractions of the whole data set held out, drawn seeded and stratified."""

    validation: Fraction = 0.1
    test: Fraction = 0.2

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitSpec:
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"validation ({self.validation}) + test ({self.test}) leave nothing to train on; "
                "their sum must be below 1"
            )
        return self


class DataSpec(Section):
    source: Literal["digits"] = "digits"
    split: SplitSpec = SplitSpec()
    batch_size: PositiveInt = 32
    shuffle: bool = True
    cache: bool = True


class ModelSpec(Section):
    input: Annotated[list[PositiveInt], Field(min_length=1)]
    layers: Annotated[list[LayerSpec], Field(min_length=1)]


class TrainSpec(Section):
    epochs: PositiveInt = 10
    optimizer: KerasObject = "adam"
    loss: KerasObject = "sparse_categorical_crossentropy"
    metrics: list[KerasObject] = ["accuracy"]
    monitor: str | None = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"


class LogSpec(Section):
    tensorboard: bool = True


class Recipe(Section):
    """A validated recipe. ``where(path)`` tells where a value came from."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    seed: int = 42
    data: DataSpec = DataSpec()
    model: ModelSpec
    train: TrainSpec = TrainSpec()
    log: LogSpec = LogSpec()
    export: list[Literal["savedmodel"]] = []

    _located: Located | None = PrivateAttr(default=None)

    def problem(self, path: tuple, message: str, *, key: bool = False):
        """A Problem located at ``path`` in the recipe file (or the --set that gave it)."""
        from cnnctl.errors import Problem
        from cnnctl.recipe.yaml_loader import format_path

        where = self._located.where(path, key=key) if self._located else ""
        return Problem(where, format_path(path), message)
