"""Streaming sources: image folders and TFRecord files, decoded in parallel inside tf.data.

Only file names (image_dir) or labels (tfrecord) are read up front; pixels are
decoded per epoch by tf.data (or once, with ``data.cache``), never all held in
memory unless the recipe asks for ``cache: memory``.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from cnnctl.data.sources import AUTOTUNE, DataError, Part, Source, encode_labels, shuffled, split_paths
from cnnctl.errors import UserError
from cnnctl.recipe.data_spec import IMAGE_EXTENSIONS, DataSpec

CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
COLOR_MODES = {count: mode for mode, count in CHANNELS.items()}  # 1 -> grayscale, 3 -> rgb, 4 -> rgba
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("validation", "val", "valid"), "test": ("test",)}
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
_TAIL = 4096  # bytes read at the end of each image file: where its format's end marker should be
_SHOWN = 5  # bad files listed by name
_RECORD_SHUFFLE = 10_000  # raw records in the shuffle buffer of a source read in order
_RANGE_SAMPLE = 1000  # records of each split that number features' value range is measured on


def decoder(spec: DataSpec):
    """bytes of a JPEG/PNG/BMP/GIF -> uint8 [height, width, channels] resized to ``data.image_size``.

    Files are decoded with the channels they have (TensorFlow refuses, e.g., a
    grayscale decode of a GIF), then converted to ``color_mode``.
    """
    channels, size = CHANNELS[spec.color_mode], spec.image_size

    def decode(data):
        image = tf.io.decode_image(data, channels=0, expand_animations=False)  # a GIF gives its first frame
        image = with_channels(tf.cast(image, tf.float32), channels)
        image = tf.image.resize(image, size, method=spec.interpolation)
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)

    return decode


_LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R BT.601, as tf.image.rgb_to_grayscale


def with_channels(image, channels: int):
    """A float image with 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels -> ``channels`` channels."""
    def grey(x):
        return x[..., :1] if x.shape[-1] in (1, 2) else tf.reduce_sum(x[..., :3] * _LUMA, axis=-1, keepdims=True)

    def opaque(x):
        return tf.ones_like(x[..., :1]) * 255.0

    def convert(have: int):
        def branch():
            x = tf.ensure_shape(image, [None, None, have])
            colour = tf.tile(x[..., :1], [1, 1, 3]) if have in (1, 2) else x[..., :3]
            alpha = x[..., -1:] if have in (2, 4) else opaque(x)
            return {1: grey(x), 3: colour, 4: tf.concat([colour, alpha], -1)}[channels]
        return branch

    converted = tf.switch_case(tf.shape(image)[-1] - 1, [convert(have) for have in (1, 2, 3, 4)])
    return tf.ensure_shape(converted, [None, None, channels])


# --- image_dir ---------------------------------------------------------------------------------


def load_image_dir(spec: DataSpec, seed: int) -> Source:
    """A folder of class sub-folders, or of train/ validation/ test/ folders that each hold them."""
    roots = _split_roots(spec)
    listed = {split: _list_images(root) for split, root in roots.items()}
    names = spec.class_names or sorted({c for files in listed.values() for c in files})
    unknown = sorted({c for files in listed.values() for c in files} - set(names))
    if unknown:
        raise DataError(("class_names",), f"folder '{unknown[0]}' is not one of data.class_names "
                                          f"({', '.join(names)}); add it, or move the folder away")
    decode = decoder(spec)
    found = {split: [(path, i) for i, name in enumerate(names) for path in files.get(name, [])]
             for split, files in listed.items()}
    looks = {path: _looks(path) for files in found.values() for path, _ in files}
    bad = [path for path, look in looks.items() if look == "bad"]
    if spec.on_error == "skip":  # every file decoded once, so that sizes and class counts are exact
        bad += undecodable(np.array([p for p, look in looks.items() if look != "bad"], str), decode)
    else:  # a file that ends where no image ends (cut short by a copy?) is decoded now: failing mid-epoch costs more
        bad += undecodable(np.array([p for p, look in looks.items() if look == "suspect"], str), decode)
    report_bad(bad, spec.on_error)
    parts, total, dropped = {}, 0, set(bad)
    for split, files in found.items():
        paths = [path for path, _ in files if path not in dropped]
        labels = [label for path, label in files if path not in dropped]
        if not paths:
            raise DataError(("path",), f"{roots[split]} has no images ({', '.join(IMAGE_EXTENSIONS)}) in class "
                                       "sub-folders; put each class's images in a folder named after it")
        parts[split] = _file_part(np.array(paths), np.array(labels, "int32"), decode)
        total += len(paths)
    every_file = np.concatenate([part.keys for part in parts.values()])
    shape = (*spec.image_size, CHANNELS[spec.color_mode])
    split_note = f", split folders {', '.join(s for s in roots if s != 'all')}" if "all" not in roots else ""
    return Source(parts=parts, class_names=names, element_shape=shape, dtype="uint8", value_range=(0.0, 255.0),
                  description=f"image_dir {spec.path} ({total} images, {len(names)} classes{split_note})",
                  verify=None if spec.on_error == "skip" else lambda: undecodable(every_file, decode))


def undecodable(paths: np.ndarray, decode) -> list[str]:
    """The files that fail to decode (truncated or corrupt past their header): one parallel decoding pass."""
    def attempt(index, path):  # the index depends on the pixels, so the decoding cannot be optimized away
        pixels = decode(tf.io.read_file(path))
        return index * tf.cast(tf.reduce_min(tf.cast(pixels, tf.int32)) >= 0, tf.int64)

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    ds = ds.map(attempt, num_parallel_calls=AUTOTUNE).ignore_errors()
    decoded = np.zeros(len(paths), bool)
    for batch in ds.batch(4096).as_numpy_iterator():
        decoded[batch] = True
    return [str(p) for p in paths[~decoded]]


def _split_roots(spec: DataSpec) -> dict[str, str]:
    paths = split_paths(spec)
    if "all" not in paths:
        for split, folder in paths.items():
            if not os.path.isdir(folder):
                raise DataError(("path", split), f"{folder} is not a folder; image_dir reads folders of class "
                                                 "sub-folders")
        return paths
    root = paths["all"]
    if not os.path.isdir(root):
        raise DataError(("path",), f"{root} is not a folder; image_dir reads a folder of class sub-folders")
    found = {}
    for split, folder_names in SPLIT_FOLDERS.items():
        for folder in folder_names:
            if os.path.isdir(os.path.join(root, folder)):
                found[split] = os.path.join(root, folder)
                break
    if found and "train" not in found:
        raise DataError(("path",), f"{root} has {', '.join(found)} folders but no train/ folder")
    return found or {"all": root}


def _list_images(root: str) -> dict[str, list[str]]:
    """{class folder name: sorted image paths}, searching each class folder recursively."""
    out = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        files = []
        for folder, dirs, names in os.walk(entry.path, followlinks=True):
            dirs.sort()
            files += [os.path.join(folder, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
        out[entry.name] = files
    return out


def _looks(path: str) -> str:
    """``ok``, ``bad`` (unreadable, or does not start like a JPEG, PNG, GIF or BMP) or ``suspect`` (does not end
    like one: maybe cut short). Cheap: a few bytes at each end, no decoding; a suspect is decoded to be sure."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL))
            tail = handle.read()
    except OSError:
        return "bad"
    if not any(head.startswith(magic) for magic in _MAGIC):
        return "bad"
    if head.startswith(b"\x89PNG"):
        ends = b"IEND" in tail
    elif head.startswith(b"\xff\xd8"):
        ends = b"\xff\xd9" in tail
    elif head.startswith(b"GIF"):
        ends = tail.rstrip(b"\0").endswith(b";")
    else:  # BMP: its header gives the file's size
        ends = size >= int.from_bytes(head[2:6], "little")
    return "ok" if ends else "suspect"


class BadFiles(UserError):
    """Image files that cannot be decoded; ``files`` lists them, the message names the first few and what to do."""

    def __init__(self, files: list[str], advice: str):
        self.files = list(files)
        super().__init__(f"{describe_bad(self.files)}\n{advice}")


def report_bad(bad: list[str], on_error: str) -> None:
    """Fail listing the files (``on_error: fail``) or warn about them on stderr (``skip``)."""
    if not bad:
        return
    if on_error == "fail":
        raise BadFiles(bad, "remove or replace them, or set data.on_error: skip to leave them out")
    print(f"warning: {describe_bad(bad)}\nthey are left out (data.on_error: skip)", file=sys.stderr)


@contextmanager
def bad_files_named(verify: Callable[[], list[str]] | None, advice: str):
    """A file that fails to decode while a dataset is read becomes ``BadFiles`` naming every such file (found by
    ``verify``, one decoding pass paid only on failure), not a TensorFlow traceback."""
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        bad = verify() if verify is not None else []
        if not bad:
            raise
        raise BadFiles(bad, advice) from None


def describe_bad(bad: list[str]) -> str:
    """``N image files cannot be decoded ...:`` and the first few paths, one per line."""
    shown = "\n  ".join(bad[:_SHOWN]) + (f"\n  ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else "")
    files = f"{len(bad)} image file{'s' if len(bad) > 1 else ''}"
    return f"{files} cannot be decoded (empty, truncated or not an image):\n  {shown}"


def _file_part(paths: np.ndarray, labels: np.ndarray, decode) -> Part:
    def make(indices: np.ndarray, shuffle_seed=None, skip=0) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices((paths[indices], labels[indices]))
        ds = shuffled(ds, len(indices), shuffle_seed, skip)  # names, not decoded images: a full shuffle costs nothing
        return ds.map(lambda path, y: (decode(tf.io.read_file(path)), y), num_parallel_calls=AUTOTUNE)

    return Part(labels=labels, make=make, keys=paths)


# --- tfrecord ----------------------------------------------------------------------------------


def load_tfrecord(spec: DataSpec, seed: int) -> Source:
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
    decode = decoder(spec) if image else None
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
                [b for b in records.map(label_of, num_parallel_calls=AUTOTUNE).batch(4096).as_numpy_iterator()]
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
    return Source(
        parts={split: _record_part(records, labels[split], parse) for split, records in parts.items()},
        class_names=names, element_shape=shape, dtype="uint8" if image else x_spec.dtype,
        value_range=(0.0, 255.0) if image else (low, high),
        description=f"tfrecord {spec.path} ({sum(len(v) for v in labels.values())} records)",
    )


def _record_part(records: tf.data.Dataset, labels: np.ndarray, parse) -> Part:
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
        return shuffled(ds, min(count, _RECORD_SHUFFLE), shuffle_seed, skip).map(parse, num_parallel_calls=AUTOTUNE)

    return Part(labels=labels, make=make)


def tf_message(exc: tf.errors.OpError) -> str:
    """TensorFlow's error message without its graph-function and op annotations."""
    text = re.sub(r"\{\{[^}]*\}\}", "", exc.message.splitlines()[0])
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip(" .;") or type(exc).__name__


# --- tfds --------------------------------------------------------------------------------------


def load_tfds(spec: DataSpec, seed: int) -> Source:
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
    decode = decoder(spec)
    parts = {}
    for split in ("train", "validation", "test"):
        if split not in builder.info.splits:
            continue
        stored = builder.as_dataset(split=split, as_supervised=True, decoders={"image": tfds.decode.SkipDecoding()})
        labels = np.concatenate([y for _, y in stored.batch(4096).as_numpy_iterator()]).astype("int32")
        parts[split] = _record_part(stored, labels, lambda image, y: (decode(image), tf.cast(y, tf.int32)))
    return Source(parts=parts, class_names=list(label.names), element_shape=(*spec.image_size,
                  CHANNELS[spec.color_mode]), dtype="uint8", value_range=(0.0, 255.0),
                  description=f"tfds {name}")
