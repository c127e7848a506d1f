"""The ``train:`` and ``log:`` sections of a recipe: Keras's own names and arguments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from cnnctl.recipe.fields import KerasObject, PositiveInt, Section, _keras_object


def _losses(value: Any) -> Any:
    """One loss for every output, or a mapping of output names to losses."""
    if isinstance(value, dict) and (len(value) > 1 or isinstance(next(iter(value.values()), None), str)):
        return {name: _keras_object(spec) for name, spec in value.items()}  # {output: loss, ...}
    return _keras_object(value)


def per_output(value: Any, outputs) -> bool:
    """Is ``train.loss`` given per output (``{output: loss}``) rather than as ``{Class: {args}}``?"""
    if not isinstance(value, dict):
        return False
    return len(value) > 1 or set(value) <= set(outputs) or isinstance(next(iter(value.values()), None), str)


def _metrics(value: Any) -> Any:
    if isinstance(value, list):
        return [_keras_object(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for name, specs in value.items():
            if not isinstance(specs, list):
                raise ValueError(f"metrics of output '{name}' must be a list, e.g. [accuracy], got {specs!r}")
            out[name] = [_keras_object(v) for v in specs]
        return out
    raise ValueError(f"expected a list of metrics, or a mapping of output names to lists, got {value!r}")


class TrainSpec(Section):
    """How the model is trained: Keras's own names and arguments."""

    epochs: PositiveInt = 10
    """Passes over the training split."""
    optimizer: KerasObject = "adam"
    """A Keras optimizer name or {Class: {args}}, e.g. {SGD: {learning_rate: 0.1, momentum: 0.9}}."""
    loss: Annotated[Any, AfterValidator(_losses)] = "sparse_categorical_crossentropy"
    """A Keras loss for every output, or {output: loss, ...} per output. Labels are class indices."""
    loss_weights: list[float] | dict[str, float] | None = None
    """Weights of the outputs' losses in the total: {output: weight} or a list in output order."""
    metrics: Annotated[Any, AfterValidator(_metrics)] = ["accuracy"]
    """Keras metrics for every output, or {output: [metrics]} per output."""
    monitor: str | None = "val_loss"
    """The logged value that picks best.keras (val_ + a loss or metric); null for none."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether monitor should fall or rise; auto guesses from its name."""


class LogSpec(Section):
    """What is logged during training."""

    tensorboard: bool = True
    """TensorBoard events in logs/train and logs/validation: per-epoch scalars and the graph."""
