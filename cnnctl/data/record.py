"""What a run stores of its data (``data.json``), typed: classes, split sizes, how examples are stored, preprocessing.

Training writes it once the data is built; ``cnnctl eval``, ``predict`` and every
export read it back to preprocess new examples exactly as training did, and
``--resume`` to check the data has not changed. Plain Python: no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnctl.errors import UserError, first_line
from cnnctl.run import Run, layout

NORMALIZATIONS = ("none", "rescale", "standardize")


@dataclass(frozen=True)
class Normalization:
    """``data.normalize`` as applied: ``none``, ``rescale`` (x * rescale) or ``standardize`` ((x - mean) / std, per
    channel, with the training split's statistics)."""

    kind: str = "none"
    rescale: float | None = None
    mean: tuple[float, ...] | None = None
    variance: tuple[float, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "rescale":
            return {"normalize": "rescale", "rescale": self.rescale}
        if self.kind == "standardize":
            return {"normalize": "standardize", "mean": list(self.mean), "variance": list(self.variance)}
        return {"normalize": "none"}

    @classmethod
    def from_json(cls, data: dict | None) -> Normalization:
        data = data or {"normalize": "none"}
        kind = data.get("normalize", "none")
        if kind not in NORMALIZATIONS:
            raise ValueError(f"normalize is {kind!r}, not one of {', '.join(NORMALIZATIONS)}")
        if kind == "rescale":
            return cls("rescale", rescale=float(data["rescale"]))
        if kind == "standardize":
            mean, variance = (tuple(map(float, data[key])) for key in ("mean", "variance"))
            return cls("standardize", mean=mean, variance=variance)
        return cls()


def image_shaped(shape) -> bool:
    """Is one example of this shape an image: height x width x 1, 3 or 4 channels? An (a, b) example without a
    channel axis may as well be a sequence of a steps of b features, so it is not."""
    shape = tuple(shape)
    return len(shape) == 3 and shape[-1] in (1, 3, 4)


@dataclass(frozen=True)
class StoredForm:
    """How one example is stored, before any preprocessing: its shape, dtype and the range its values take."""

    shape: tuple
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 255.0)

    @property
    def is_image(self) -> bool:
        """Height x width x 1, 3 or 4 channels: what image files decode to (``image_shaped``)."""
        return image_shaped(self.shape)

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "value_range": [float(v) for v in self.value_range]}

    @classmethod
    def from_json(cls, data: dict) -> StoredForm:
        low, high = data.get("value_range", (0.0, 255.0))  # runs of older cnnctl versions lack it
        return cls(tuple(data["shape"]), data.get("dtype", "float32"), (float(low), float(high)))


@dataclass(frozen=True)
class DataRecord:
    """``data.json``: everything a later command needs to know about the data a run was trained on."""

    class_names: list[str]
    stored: StoredForm
    normalization: Normalization = Normalization()
    augment: tuple[str, ...] = ()
    source: str = ""
    sizes: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, list[int]] = field(default_factory=dict)
    element_shape: tuple | None = None  # what the model receives (a crop changes it)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "class_names": list(self.class_names),
            "sizes": dict(self.sizes),
            "class_counts": {split: list(counts) for split, counts in self.class_counts.items()},
            "stored": self.stored.to_json(),
            "element_shape": list(self.element_shape) if self.element_shape is not None else None,
            "normalization": self.normalization.to_json(),
            "augment": list(self.augment),
        }

    @classmethod
    def from_json(cls, data: Any) -> DataRecord:
        """A record from its JSON form; ``ValueError`` when ``data`` is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("stored"), dict) or "shape" not in data["stored"]:
            raise ValueError("it has no stored.shape")
        try:
            element = data.get("element_shape")
            return cls(class_names=[str(n) for n in data.get("class_names") or []],
                       stored=StoredForm.from_json(data["stored"]),
                       normalization=Normalization.from_json(data.get("normalization")),
                       augment=tuple(data.get("augment") or ()), source=str(data.get("source", "")),
                       sizes={k: int(v) for k, v in (data.get("sizes") or data.get("examples") or {}).items()},
                       class_counts={k: [int(c) for c in v] for k, v in (data.get("class_counts") or {}).items()},
                       element_shape=tuple(element) if element is not None else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from None


def read_record(run: Run) -> DataRecord:
    """The run's data.json, or a UserError saying why it cannot be read and what to do."""
    path = run / layout.DATA
    if not path.is_file():
        raise UserError(f"{run.path} has no {layout.DATA} (a run of an older cnnctl?); train it again to evaluate, "
                        "predict or export with its preprocessing")
    try:
        return DataRecord.from_json(run.read_json(layout.DATA))
    except (ValueError, OSError) as exc:  # not JSON, or not data.json's shape
        raise UserError(f"{path} is damaged ({first_line(exc)}); train the run again") from None
