"""``tfrecord``: tf.train.Example records with a declared feature spec; encoded images are decoded as image_dir's.

Records can only be read in order, so a split is a mask over their positions and
a shuffle moves raw bytes; only the labels are read up front.
"""

from __future__ import annotations

import glob
from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import tf
from cnnctl.data.sources.base import DataError, Examples, Part, Source, autotune, encode_labels, shuffled, split_paths
from cnnctl.data.sources.images import CHANNELS, decoder, tf_message
from cnnctl.errors import UserError
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec

_RECORD_SHUFFLE = 10_000  # raw records in the shuffle buffer of a source read in order
_RANGE_SAMPLE = 1000  # records of each split that number features' value range is measured on


def load_tfrecord(spec: DataSpec, seed: int) -> Examples:
    """tf.train.Example records with a declared feature spec; encoded images are decoded like image_dir's."""
    x_name = spec.x or "image"
    y_name = spec.y or "label"
    for key, name in (("x", x_name), ("y", y_name)):
        if not isinstance(name, str) or name not in spec.features:
            raise DataError(("features",), f"data.features has no feature '{name}' (data.{key}); it declares "
                                           f"{', '.join(spec.features)}")
    x_spec, y_spec = spec.features[x_name], spec.features[y_name]
    if y_spec.dtype != "int64" or y_spec.shape:
        raise DataError(("features", y_name), "the label feature is a scalar class index: {dtype: int64}")
    image = x_spec.dtype == "string"
    decode = decoder(spec.image_size, spec.color_mode, spec.interpolation) if image else None
    x_feature = tf.io.FixedLenFeature([] if image else x_spec.shape, getattr(tf, x_spec.dtype))
    y_feature = tf.io.FixedLenFeature([], tf.int64)

    def parse(record):
        example = tf.io.parse_single_example(record, {x_name: x_feature, y_name: y_feature})
        x = decode(example[x_name]) if image else example[x_name]
        return x, tf.cast(example[y_name], tf.int32)

    def label_of(record):
        return tf.io.parse_single_example(record, {y_name: y_feature})[y_name]

    parts, raw_labels = {}, {}
    low, high = np.inf, -np.inf  # of number features: what augmentation layers take as value_range
    for split, pattern in split_paths(spec, globs=True).items():
        files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not files:
            raise DataError(("path",), f"no file matches {pattern}")
        compression = spec.compression
        if compression == "auto":
            compression = "GZIP" if files[0].endswith(".gz") else "none"
        records = tf.data.TFRecordDataset(files, compression_type="" if compression == "none" else compression)
        try:
            raw_labels[split] = np.concatenate(
                [b for b in records.map(label_of, num_parallel_calls=autotune()).batch(4096).as_numpy_iterator()]
                or [np.zeros(0, "int64")])
            for x, _ in records.take(_RANGE_SAMPLE).map(parse).batch(_RANGE_SAMPLE):  # the spec must fit the data
                low, high = min(low, float(tf.reduce_min(x))), max(high, float(tf.reduce_max(x)))
        except tf.errors.OpError as exc:
            raise UserError(f"cannot read the TFRecord files {pattern} (compression {compression}) with the "
                            f"declared data.features: {tf_message(exc)}; check data.compression and "
                            "data.features") from None
        parts[split] = records
    labels, names = encode_labels(raw_labels, spec)
    shape = (*spec.image_size, CHANNELS[spec.color_mode]) if image else tuple(x_spec.shape)
    return Examples(
        parts={split: record_part(records, labels[split], parse) for split, records in parts.items()},
        class_names=names, element_shape=shape, dtype="uint8" if image else x_spec.dtype,
        value_range=(0.0, 255.0) if image else (low, high),
        description=f"tfrecord {spec.path} ({sum(len(v) for v in labels.values())} records)",
    )


def record_part(records: tf.data.Dataset, labels: np.ndarray, parse) -> Part:
    """Records can only be read in order: a subset is a mask over positions, shuffled as raw bytes."""

    def make(indices: np.ndarray, shuffle_seed=None, skip=0) -> tf.data.Dataset:
        count = len(indices)
        keep = np.zeros(len(labels), bool)
        keep[indices] = True
        mask = tf.constant(keep)

        def kept(position, _):
            return tf.gather(mask, position)

        def record_only(_, record):
            return record

        # a known length, so Keras does not warn that the input "ran out of data" at the first epoch's end
        ds = records.enumerate().filter(kept).map(record_only).apply(tf.data.experimental.assert_cardinality(count))
        return shuffled(ds, min(count, _RECORD_SHUFFLE), shuffle_seed, skip).map(parse, num_parallel_calls=autotune())

    return Part(labels=labels, make=make)


TFRECORD = SOURCES.register(Source(
    name="tfrecord", keys=("path", "x", "y", "features", "compression", "image_size", "color_mode", "interpolation",
                           "class_names"),
    required=("path", "features"), load=load_tfrecord))
