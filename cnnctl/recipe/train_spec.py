"""The ``train:`` and ``log:`` sections of a recipe: Keras's own names and arguments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from cnnctl.recipe.fields import KerasObject, PositiveInt, Section, _keras_object

PRECISIONS = ("auto", "off", "float16", "bfloat16")


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


def _class_weight(value: Any) -> Any:
    """``balanced`` or a non-empty mapping; each class and weight is checked against the data later."""
    if value is None or value == "balanced":
        return value
    if isinstance(value, dict) and value:
        return value
    if isinstance(value, str):
        from cnnctl.errors import did_you_mean

        raise ValueError(f"class_weight is 'balanced' or a mapping of classes to weights, got {value!r}"
                         f"{did_you_mean(value, ['balanced'])}")
    raise ValueError("class_weight is 'balanced' or a mapping of classes (index or name) to weights, "
                     f"e.g. {{0: 1.0, 1: 5.0}}, got {value!r}")


def _precision(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``off`` as false: take it as meant."""
    return "off" if value is False else value


def _jit_compile(value: Any) -> Any:
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f"jit_compile is auto, true or false, got {value!r}")


class TrainSpec(Section):
    """How the model is trained: Keras's own names and arguments."""

    epochs: PositiveInt = 10
    """Passes over the training split."""
    optimizer: KerasObject = "adam"
    """A Keras optimizer name or {Class: {args}}; its learning_rate may be a schedule (see Training)."""
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
    callbacks: list[KerasObject] = []
    """Keras callbacks by name and arguments, e.g. [{EarlyStopping: {patience: 3}}, TerminateOnNaN]."""
    class_weight: Annotated[Any, AfterValidator(_class_weight)] = None
    """Class weights in the training loss: balanced, or {class index or name: weight}; one output only."""
    mixed_precision: Annotated[Literal[PRECISIONS], BeforeValidator(_precision)] = "auto"
    """float16 or bfloat16 compute, float32 weights and outputs; auto: float16 on GPUs of compute capability 7+."""
    jit_compile: Annotated[Any, AfterValidator(_jit_compile)] = "auto"
    """XLA-compile the training step (Keras's compile argument); auto: on a GPU, if every layer supports it."""
    steps_per_execution: PositiveInt = 1
    """Batches per compiled call (Keras's compile argument); more cuts Python overhead on small models."""
    checkpoint_every: Annotated[int, Field(ge=0)] = 0
    """Also checkpoint every N training steps, so a crash loses at most N; 0: at each epoch end only (see Resuming)."""
    keep_checkpoints: PositiveInt = 2
    """How many of the newest checkpoints checkpoints/ keeps; an older one stands in if the newest is damaged."""
    deterministic: bool = False
    """Deterministic ops (TensorFlow's enable_op_determinism): with the seed, the same weights run after run and resume."""


def _tensorboard(value: Any) -> Any:
    """``true`` (every default on), ``false`` (nothing written), or a mapping of options."""
    if value is True:
        return {}
    if value is False:
        return {"enabled": False}
    if isinstance(value, dict):
        return value
    raise ValueError("log.tensorboard is true, false, or a mapping of options such as "
                     f"{{histogram_freq: 0, profile_batch: [5, 10]}}, got {value!r}")


def _profile_batch(value: Any) -> Any:
    """Keras's ``profile_batch``: 0 (off), one batch number, or [first, last]."""
    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if count(value) and value >= 0:
        return value
    if isinstance(value, list) and len(value) == 2 and all(count(v) and v > 0 for v in value) and value[0] <= value[1]:
        return value
    raise ValueError(f"profile_batch is 0 (off), a batch number, or [first, last] batches counted from 1, e.g. [5, 10], got {value!r}")


class TensorBoardSpec(Section):
    """What `log.tensorboard` writes (docs/tensorboard.md): Keras's TensorBoard arguments where Keras has one."""

    enabled: bool = True
    """false writes no TensorBoard events at all (log.tensorboard: false says the same)."""
    histogram_freq: Annotated[int, Field(ge=0)] = 1
    """Weight histograms every N epochs; 0 for none (Keras's argument)."""
    write_graph: bool = True
    """The model's graph, for the Graphs dashboard (Keras's argument)."""
    input_images: Annotated[int, Field(ge=0, le=64)] = 16
    """How many training inputs, augmented and normalized, to show as a grid each epoch; 0 for none."""
    conv_filters: bool = True
    """The first convolution's kernels as an image grid each epoch."""
    confusion_matrix: bool = True
    """The validation split's confusion matrix as an image each epoch (up to 10,000 examples)."""
    hparams: bool = True
    """The recipe's values and the run's validation metrics in the HParams dashboard."""
    profile_batch: Annotated[Any, AfterValidator(_profile_batch)] = 0
    """Profile these training batches (Keras's argument): 0 for off, N, or [first, last]."""

    def __bool__(self) -> bool:
        return self.enabled


class LogSpec(Section):
    """What is logged during training."""

    tensorboard: Annotated[TensorBoardSpec, BeforeValidator(_tensorboard)] = Field(default=True, validate_default=True)
    """TensorBoard events in logs/: true (every default on), false, or a mapping of options (docs/tensorboard.md)."""
