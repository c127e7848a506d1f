"""An export format, as one row of a table: its name, file, options, extra, writer, loader and tolerance.

Each format is a file of its own under ``cnnctl.exports.formats`` that declares its
``Format`` and registers it in ``cnnctl.registry.FORMATS``; the writer
(``cnnctl.exports.writer``) knows formats only through these rows. Plain Python here
(no TensorFlow): the recipe stage reads the rows to validate ``export:``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnctl.errors import UserError

if TYPE_CHECKING:
    import keras

    from cnnctl.data.pipeline import Datasets
    from cnnctl.recipe.export_spec import ExportOptions


@dataclass(frozen=True)
class Tolerance:
    """Elementwise (``atol``, ``rtol``), or by predicted class (``agreement``, ``accuracy_drop``)."""

    atol: float | None = None
    rtol: float | None = None
    agreement: float | None = None  # least share of examples whose class matches Keras's
    accuracy_drop: float | None = None  # most the export's accuracy may fall below Keras's

    @property
    def elementwise(self) -> bool:
        return self.atol is not None

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


# A float export matches the Keras model elementwise, within what the dtype it computes in allows. Measured
# figures: docs/export.md.
FLOAT_TOLERANCES = {
    "float": Tolerance(atol=1e-5, rtol=1e-4),  # float32 throughout: measured <= 1.1e-6
    "mixed_float16": Tolerance(atol=5e-3, rtol=1e-2),  # a float16 Keras model: measured <= 1.3e-3
    "mixed_bfloat16": Tolerance(atol=4e-2, rtol=5e-2),  # bfloat16 keeps 8 bits of mantissa: measured <= 1.1e-2
}


def float_tolerance(options: ExportOptions, mixed: str | None) -> Tolerance:
    """The tolerance of a float export of a model computing in ``mixed`` (a mixed policy) or float32 (None)."""
    return FLOAT_TOLERANCES[mixed or "float"]


@dataclass
class Artifact:
    """An export loaded by its own runtime: its input and output names and a batch -> outputs function."""

    input: str
    outputs: list[str]
    predict: Callable[[Any], list[Any]]  # a float32 NumPy batch -> one array per output
    runtime: str
    details: dict = field(default_factory=dict)  # e.g. the signature name, the ONNX opset


@dataclass(frozen=True)
class Format:
    """One export format. ``write(serving, path, options, data)`` writes the serving model at ``path`` and
    returns what the export's record should say about how; ``load(path, unsafe=...)`` reloads it with the format's
    own runtime; ``recognizes(path)`` tells (by content) whether ``path`` holds an export of this format, which
    ``--force`` may replace."""

    name: str
    file_name: str  # under RUN/export/: a folder (``folder``) or a file
    write: Callable[[keras.Model, Path, ExportOptions, Datasets], dict]
    load: Callable[..., Artifact]
    recognizes: Callable[[Path], bool]
    title: str = ""  # its name in prose ("ONNX"); the name when empty
    folder: bool = False
    suffix: str | None = None  # the suffix a file given with --out must have (Keras saves only to .keras)
    options: type[ExportOptions] | None = None  # the schema of its options in a recipe; None: it takes none
    extra: str | None = None  # the pip extra it needs, e.g. "onnx" for pip install 'cnnctl[onnx]'
    packages: tuple[str, ...] = ()  # the modules that extra installs
    float32_only: bool = False  # computes in float32 only: a mixed-precision model goes as its float32 twin
    tolerance: Callable[[ExportOptions, str | None], Tolerance] = float_tolerance
    refuses: Callable[[keras.Model], str | None] | None = None  # why it cannot take a model: told before training

    def path_name(self, options: ExportOptions) -> str:
        """The file (or folder) name under RUN/export/: ``model.tflite``, or ``model_int8.tflite`` for a variant."""
        variant = options.variant
        if variant is None:
            return self.file_name
        stem, dot, suffix = self.file_name.partition(".")
        return f"{stem}_{variant}{dot}{suffix}"

    def require(self) -> None:
        """UserError (exit 2) naming the pip command when the packages this format needs are missing."""
        missing = [name for name in self.packages if importlib.util.find_spec(name) is None]
        if missing:
            raise UserError(f"exporting to {self.title or self.name} needs the optional packages "
                            f"{', '.join(self.packages)} ({', '.join(missing)} missing): pip install "
                            f"'cnnctl[{self.extra}]'")
