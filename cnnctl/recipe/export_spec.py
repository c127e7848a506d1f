"""The ``export:`` list of a recipe: formats written after training, each with its options.

An entry is a format name, or a one-key mapping of a format to its options::

    export: [savedmodel, keras, tflite, {tflite: {quantize: int8}}, onnx]

The formats, and the schema of each one's options, are read from
``cnnctl.registry.FORMATS`` (declared in ``cnnctl.exports.formats``, which imports no
TensorFlow). A run stores each entry in the short form, so its recipe.yaml reloads
as written.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from cnnctl.recipe.fields import Section
from cnnctl.registry import FORMATS


class ExportOptions(Section):
    """The options of an export format (a format declares a subclass as its ``options``)."""

    EXAMPLE: ClassVar[str] = "{}"  # the options written in a recipe, for messages: "{quantize: int8}"

    @property
    def variant(self) -> str | None:
        """What tells an export with these options apart from the format's plain one (``int8``), or None: it
        names the export (``tflite_int8``) and its file (``model_int8.tflite``)."""
        return None


class NoOptions(ExportOptions):
    """A format without options: ``{savedmodel: {}}`` is the same as ``savedmodel``."""


class ExportSpec(Section):
    """One export: a registered format and its options (an instance of the format's options schema)."""

    format: str
    options: Any = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        """``tflite`` or ``{tflite: {quantize: int8}}`` -> ``{format: tflite, options: {...}}``."""
        from cnnctl.errors import did_you_mean

        if isinstance(value, ExportSpec):
            return value
        names = FORMATS.names()
        if isinstance(value, str):
            if value not in names:
                raise ValueError(f"unknown export format {value!r}{did_you_mean(value, names)}; "
                                 f"choose one of {', '.join(names)}")
            return {"format": value, "options": {}}  # the fields, not a recipe's form: the after-validator checks
        if not isinstance(value, dict) or len(value) != 1:
            many = f" ({len(value)} keys: list each format as its own entry)" if isinstance(value, dict) else ""
            raise ValueError(f"an export is a format name ({', '.join(names)}) or a one-key mapping of a format "
                             f"to its options, e.g. {{tflite: {{quantize: int8}}}}; got {value!r}{many}")
        (name, options), = value.items()
        if name not in names:
            raise PydanticCustomError("at_key", f"unknown export format {name!r}{did_you_mean(str(name), names)}; "
                                      f"choose one of {', '.join(names)}", {"at": name, "key": True})
        if options is not None and not isinstance(options, dict):
            schema = FORMATS.get(name).options
            message = (f"the options of {name} are a mapping, e.g. {{{name}: {schema.EXAMPLE}}}; got {options!r}"
                       if schema is not None else f"{name} takes no options: write {name} alone; got {options!r}")
            raise PydanticCustomError("at_key", message, {"at": name, "key": False})
        return {"format": name, "options": options or {}}

    @model_validator(mode="after")
    def _options_fit_format(self) -> ExportSpec:
        schema = FORMATS.get(self.format).options or NoOptions
        if isinstance(self.options, schema):
            return self
        try:
            options = schema.model_validate(self.options or {})
        except ValidationError as exc:  # located inside the entry: export[i].<format>.<key>
            raise PydanticCustomError("nested", "{count} problems in the options", {
                "at": self.format, "count": exc.error_count(), "known": list(schema.model_fields),
                "errors": exc.errors(include_url=False)}) from None
        object.__setattr__(self, "options", options)
        return self

    @property
    def variant(self) -> str | None:
        """What tells this export apart from the format's plain one (``int8`` for a quantized tflite), or None."""
        return self.options.variant

    @property
    def quantize(self) -> str | None:
        """A TFLite export's quantization, or None for a float export (and every other format)."""
        q = getattr(self.options, "quantize", "none")
        return None if q == "none" else q

    @property
    def label(self) -> str:
        """Names the export in metrics.json and in messages: ``tflite``, ``tflite_int8``."""
        return self.format if self.variant is None else f"{self.format}_{self.variant}"

    @model_serializer
    def _short(self) -> Any:
        options = self.options.model_dump(exclude_defaults=True)
        return {self.format: options} if options else self.format


def distinct_exports(entries: list[ExportSpec]) -> list[ExportSpec]:
    """The list as given; an export listed twice (same format and options) is an error."""
    seen = set()
    for i, entry in enumerate(entries):
        if entry.label in seen:
            raise PydanticCustomError("at_key", f"the export {entry.label} is listed twice",
                                      {"at": i, "key": False})
        seen.add(entry.label)
    return entries
