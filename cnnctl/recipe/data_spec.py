"""The ``data:`` section of a recipe: where the examples come from and how they are fed.

One flat section, like the arguments of ``keras.utils.image_dataset_from_directory``:
``source`` picks the loader and the keys that loader reads; a key given to a
source that ignores it is an error, so a misplaced key never passes silently.
The sources are read from ``cnnctl.registry.SOURCES`` (declared in
``cnnctl.data.sources``, which imports no TensorFlow).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from cnnctl.recipe.fields import Fraction, LayerSpec, PositiveInt, Section
from cnnctl.registry import SOURCES

PIPELINE_KEYS = ("source", "split", "batch_size", "shuffle", "cache", "augment", "normalize", "rescale")
"""Keys every source takes; each source reads some of the others (``cnnctl.data.sources``: its ``keys``)."""


def source_kind(source: str) -> str:
    """``keras:mnist`` -> ``keras``; ``image_dir`` -> ``image_dir``."""
    return source.split(":", 1)[0]


def source_listing() -> list[str]:
    """Every source as ``data.source`` names it: digits, keras:mnist, ..., tfds:NAME."""
    return [name for source in SOURCES for name in source.listed]


def _source(value: str) -> str:
    kind, colon, variant = value.partition(":")
    source = SOURCES.get(kind)
    if source is not None and source.accepts(variant if colon else None):
        return value
    if source is not None and source.variants:
        raise ValueError(f"{source.variants_of or source.name} has no '{variant}' here; choose one of "
                         f"{', '.join(source.variants)}")
    from cnnctl.errors import did_you_mean

    listed = source_listing()
    raise ValueError(f"unknown data source '{value}'{did_you_mean(value, listed)}; choose one of {', '.join(listed)}")


def _distinct(names: list[str]) -> list[str]:
    repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if repeated is not None:
        raise ValueError(f"class '{repeated}' is named twice; each class has one name and one index")
    return names


def _rescale(value: Any) -> float:
    """A number, or a fraction written as text: ``1/255``."""
    if isinstance(value, bool):
        raise ValueError(f"rescale is a number such as 1/255, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        from cnnctl.recipe.expr import ExprError, evaluate

        try:
            result = evaluate(value, {})
        except ExprError as exc:
            raise ValueError(f"rescale must be a number or arithmetic such as 1/255: {exc}") from None
        if isinstance(result, int | float) and not isinstance(result, bool):
            return float(result)
    raise ValueError(f"rescale is a number such as 1/255 or 0.5, got {value!r}")


class FeatureSpec(Section):
    """One feature of a TFRecord's tf.train.Example."""

    dtype: Literal["string", "float32", "int64"]
    """string for encoded images (PNG, JPEG, BMP, GIF: decoded and resized to image_size); float32 or int64 for numbers."""
    shape: list[Annotated[int, Field(gt=0)]] = []
    """The value's shape, e.g. [8, 8, 1] for a flattened float image, [] for a scalar label."""


class SplitSpec(Section):
    """Fractions held out, drawn seeded and stratified; a split read from its own folder or file is used as is."""

    validation: Fraction = 0.1
    """Share of all examples held out for validation (picks best.keras); of the training part when test comes as its own folder or file."""
    test: Fraction = 0.2
    """Share held out for the final test metrics; validation + test must be below 1. Ignored when test comes as its own folder or file."""

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitSpec:
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"validation ({self.validation}) + test ({self.test}) leave nothing to train on; "
                "their sum must be below 1"
            )
        return self


Path_ = str | dict[Literal["train", "validation", "test"], str]
Shape = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]


class DataSpec(Section):
    """Where the examples come from and how they are fed."""

    source: Annotated[str, AfterValidator(_source)] = "digits"
    """digits (scikit-learn's 8x8 digits, offline), keras:mnist, keras:fashion_mnist, keras:cifar10, keras:cifar100, image_dir, npz, csv, tfrecord, synthetic, or tfds:NAME."""
    path: Path_ | None = None
    """The folder (image_dir), file (npz, csv) or file or glob (tfrecord); or {train: ..., test: ...} to give splits as their own files. Relative to the recipe file."""
    image_size: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)] = [256, 256]
    """[height, width] every decoded image is resized to (image_dir, tfrecord images)."""
    color_mode: Literal["grayscale", "rgb", "rgba"] = "rgb"
    """Channels of decoded images: 1, 3 or 4."""
    interpolation: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"] = "bilinear"
    """How images are resized to image_size."""
    on_error: Literal["fail", "skip"] = "fail"
    """An unreadable or empty image file: fail (list them and stop) or skip (drop them with a warning)."""
    class_names: Annotated[list[str], Field(min_length=1), AfterValidator(_distinct)] | None = None
    """The classes in label order (default: sorted folder names, or the sorted distinct labels)."""
    x: str | list[str] | None = None
    """The array (npz, default x), the feature columns (csv, default all but y) or the feature (tfrecord, default image)."""
    y: str | None = None
    """The label array (npz, default y), column (csv, default label) or feature (tfrecord, default label)."""
    reshape: Shape | None = None
    """Reshape each example, e.g. [28, 28, 1] for a flattened image in a csv row or an npz of vectors."""
    features: dict[str, FeatureSpec] | None = None
    """The TFRecord feature spec: {name: {dtype, shape}}."""
    compression: Literal["auto", "GZIP", "ZLIB", "none"] = "auto"
    """TFRecord compression; auto means GZIP for names ending .gz, none otherwise."""
    shape: Shape | None = None
    """synthetic: the shape of one example, e.g. [32, 32, 3]."""
    classes: Annotated[int, Field(ge=2)] | None = None
    """synthetic: the number of classes."""
    count: PositiveInt = 1000
    """synthetic: the number of examples (all splits together)."""

    split: SplitSpec = SplitSpec()
    """Seeded, stratified held-out splits (see data.split)."""
    batch_size: PositiveInt = 32
    """Examples per training step."""
    shuffle: bool = True
    """Reshuffle the training split every epoch (seeded)."""
    cache: str = "none"
    """Keep decoded examples after the first epoch: none, memory, or a file path prefix (relative to the recipe file)."""
    augment: list[LayerSpec] = []
    """Keras random preprocessing layers applied to training batches, e.g. [{RandomFlip: {mode: horizontal}}]."""
    normalize: Literal["auto", "none", "rescale", "standardize"] = "auto"
    """After augmentation: rescale (multiply by rescale), standardize (mean and variance of the training split, per channel), none, or auto (rescale for 8-bit images, else none)."""
    rescale: Annotated[Any, AfterValidator(_rescale), Field(validate_default=True)] = "1/255"
    """The factor of normalize: rescale; a number or arithmetic such as 1/255."""

    @model_validator(mode="after")
    def _keys_fit_source(self) -> DataSpec:
        source = SOURCES.get(self.kind)
        given = {name for name in self.model_fields_set if name not in PIPELINE_KEYS}
        stray = sorted(given - set(source.keys))
        if stray:
            users = sorted(s.name for s in SOURCES if stray[0] in s.keys)
            read_by = f" (it is read by {', '.join(users)})" if users else ""
            others = f"; nor {', '.join(stray[1:])}" if len(stray) > 1 else ""
            raise _at(stray[0], f"source '{self.source}' does not read {stray[0]}{read_by}{others}; remove them "
                      "or change data.source", key=True)
        missing = [name for name in source.required if getattr(self, name) is None]
        if missing:
            raise _at("source", f"source '{self.source}' needs data.{missing[0]}{_EXAMPLES.get(missing[0], '')}")
        if self.cache == "":
            raise _at("cache", "cache is none, memory, or a file path prefix")
        return self

    @property
    def kind(self) -> str:
        """The source's registered name: ``keras`` for ``keras:mnist``."""
        return source_kind(self.source)

    def source_keys(self) -> tuple[str, ...]:
        """The keys this section's source reads (its stored recipe keeps only these and the pipeline's)."""
        return SOURCES.get(self.kind).keys


def _at(name: str, message: str, *, key: bool = False) -> PydanticCustomError:
    """An error located at ``data.<name>`` (its key when ``key``) rather than at ``data`` (see recipe.load)."""
    return PydanticCustomError("at_key", message, {"at": name, "key": key})


_EXAMPLES = {
    "path": " (e.g. path: photos/ for a folder of class sub-folders, or the data file)",
    "features": " (e.g. features: {image: {dtype: string}, label: {dtype: int64}})",
    "shape": " (e.g. shape: [32, 32, 3])",
    "classes": " (e.g. classes: 10)",
}
