"""The ``export:`` list of a recipe: formats written after training, each with its options.

An entry is a format name, or a one-key mapping of a format to its options::

    export: [savedmodel, keras, tflite, {tflite: {quantize: int8}}, onnx]

A run stores each entry in that short form, so its recipe.yaml reloads as written.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_serializer, model_validator
from pydantic_core import PydanticCustomError

from cnnctl.recipe.fields import Section

FORMATS = ("savedmodel", "keras", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


class NoOptions(Section):
    """A format without options: ``{savedmodel: {}}`` is the same as ``savedmodel``."""


class TfliteOptions(Section):
    """How a TFLite flatbuffer is quantized."""

    quantize: Literal[QUANTIZATIONS] = "none"
    """none (float32), dynamic (int8 weights), float16 (float16 weights) or int8 (weights and activations, calibrated on training examples)."""


class ExportSpec(Section):
    """One export: exactly one of the formats, with its options."""

    savedmodel: NoOptions | None = None
    keras: NoOptions | None = None
    tflite: TfliteOptions | None = None
    onnx: NoOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        from cnnctl.errors import did_you_mean

        if isinstance(value, ExportSpec):
            return value
        if isinstance(value, str):
            if value not in FORMATS:
                raise ValueError(f"unknown export format {value!r}{did_you_mean(value, FORMATS)}; "
                                 f"choose one of {', '.join(FORMATS)}")
            return {value: {}}
        if not isinstance(value, dict) or len(value) != 1:
            many = f" ({len(value)} keys: list each format as its own entry)" if isinstance(value, dict) else ""
            raise ValueError(f"an export is a format name ({', '.join(FORMATS)}) or a one-key mapping of a format "
                             f"to its options, e.g. {{tflite: {{quantize: int8}}}}; got {value!r}{many}")
        (name, options), = value.items()
        if options is not None and not isinstance(options, dict) and name in FORMATS:
            message = (f"the options of tflite are a mapping, e.g. {{tflite: {{quantize: int8}}}}; got {options!r}"
                       if name == "tflite" else f"{name} takes no options: write {name} alone; got {options!r}")
            raise PydanticCustomError("at_key", message, {"at": name, "key": False})
        return {name: {} if options is None else options}

    @property
    def format(self) -> str:
        return next(name for name in FORMATS if getattr(self, name) is not None)

    @property
    def quantize(self) -> str | None:
        """The TFLite quantization, or None for a float export."""
        q = self.tflite.quantize if self.tflite is not None else "none"
        return None if q == "none" else q

    @property
    def label(self) -> str:
        """Names the export in metrics.json and in messages: ``tflite``, ``tflite_int8``."""
        return self.format if self.quantize is None else f"{self.format}_{self.quantize}"

    @model_serializer
    def _short(self) -> Any:
        options = getattr(self, self.format).model_dump(exclude_defaults=True)
        return {self.format: options} if options else self.format


def export_spec(fmt: str | ExportSpec, quantize: str | None = None) -> ExportSpec:
    """``fmt`` (a format name, a recipe entry) and a quantization as one ``ExportSpec``; ValueError if wrong."""
    if isinstance(fmt, ExportSpec):
        if quantize not in (None, "none") and quantize != fmt.quantize:
            raise ValueError(f"quantize={quantize!r} given for the export {fmt.label}")
        return fmt
    if quantize not in (None, "none"):
        if fmt != "tflite":
            raise ValueError(f"only tflite exports are quantized, not {fmt}")
        if quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize is one of {', '.join(QUANTIZATIONS[1:])}, got {quantize!r}")
        return ExportSpec.model_validate({"tflite": {"quantize": quantize}})
    return ExportSpec.model_validate(fmt)


def distinct_exports(entries: list[ExportSpec]) -> list[ExportSpec]:
    """The list as given; an export listed twice (same format and options) is an error."""
    seen = set()
    for i, entry in enumerate(entries):
        if entry.label in seen:
            raise PydanticCustomError("at_key", f"the export {entry.label} is listed twice",
                                      {"at": i, "key": False})
        seen.add(entry.label)
    return entries
