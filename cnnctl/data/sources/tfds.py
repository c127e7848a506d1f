"""``tfds:NAME``: a TensorFlow Datasets data set by name, when tensorflow-datasets is installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import tf
from cnnctl.data.sources.base import DataError, Examples, Source
from cnnctl.data.sources.images import CHANNELS, decoder
from cnnctl.data.sources.tfrecord import record_part
from cnnctl.errors import UserError
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec


def load_tfds(spec: DataSpec, seed: int) -> Examples:
    """A TensorFlow Datasets data set by name (``tfds:NAME``), if tensorflow-datasets is installed."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(("source",), "tfds sources need the tensorflow-datasets package: "
                                     "pip install tensorflow-datasets") from None
    name = spec.source.split(":", 1)[1]
    try:
        builder = tfds.builder(name)
        builder.download_and_prepare()
    except Exception as exc:  # network errors, unknown names: tfds raises many kinds
        raise UserError(f"could not prepare tfds:{name}: {str(exc).splitlines()[0]}; TensorFlow Datasets "
                        "downloads it once into ~/tensorflow_datasets") from None
    label = builder.info.features["label"]
    decode = decoder(spec.image_size, spec.color_mode, spec.interpolation)
    parts = {}
    for split in ("train", "validation", "test"):
        if split not in builder.info.splits:
            continue
        stored = builder.as_dataset(split=split, as_supervised=True, decoders={"image": tfds.decode.SkipDecoding()})
        labels = np.concatenate([y for _, y in stored.batch(4096).as_numpy_iterator()]).astype("int32")
        parts[split] = record_part(stored, labels, lambda image, y: (decode(image), tf.cast(y, tf.int32)))
    return Examples(parts=parts, class_names=list(label.names), element_shape=(*spec.image_size,
                    CHANNELS[spec.color_mode]), dtype="uint8", value_range=(0.0, 255.0),
                    description=f"tfds {name}")


TFDS = SOURCES.register(Source(name="tfds", keys=("image_size", "color_mode", "interpolation"),
                               variant_pattern=r"[a-z0-9_]+(/[\w.-]+)?(:[\d.*]+)?", load=load_tfds))
