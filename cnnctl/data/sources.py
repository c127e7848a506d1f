"""Data sources: a recipe's ``data.source`` -> labelled examples, as tf.data, before splitting.

A source knows every label up front (for the stratified split and the class
counts) and makes a ``tf.data.Dataset`` of ``(x, y)`` for any subset of its
examples on demand. In-memory sources (digits, keras:*, npz, csv, synthetic)
slice arrays; streaming sources (image_dir, tfrecord, in ``files.py``) decode
files in parallel inside tf.data, so no Python runs per example.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from cnnctl.errors import UserError, closest_path, did_you_mean, first_line
from cnnctl.recipe.data_spec import DataSpec

AUTOTUNE = tf.data.AUTOTUNE


class DataError(Exception):
    """A data problem that a recipe key can fix; the pipeline locates it at ``data.<key>`` in the recipe."""

    def __init__(self, key: tuple, message: str):
        super().__init__(message)
        self.key, self.message = key, message


@dataclass
class Part:
    """The examples of one stored split: their labels, and a maker of their dataset.

    ``make(indices, shuffle_seed, skip)`` gives ``(x, y)`` for ``indices``
    (positions in ``labels``); with a seed (an int or a scalar tensor: the
    training pipeline passes one per epoch) it shuffles them once, as cheaply as
    the source allows (file names before decoding, arrays by index), then leaves
    out the first ``skip`` examples, before decoding them (a resumed epoch).
    """

    labels: np.ndarray  # int32 class indices
    make: Callable[..., tf.data.Dataset]
    keys: np.ndarray | None = None  # file paths, for a source that reads one file per example


@dataclass
class Source:
    """What a loader gives: its stored parts ("all", or some of train/validation/test) and their form."""

    parts: dict[str, Part]
    class_names: list[str]
    element_shape: tuple  # one example, before augmentation
    dtype: str  # of x as stored: uint8 for 8-bit images
    value_range: tuple[float, float]  # what a pixel can be, for augmentation layers' value_range
    description: str
    verify: Callable[[], list[str]] | None = None  # decodes everything once; returns what fails (files)


def shuffled(ds: tf.data.Dataset, buffer: int, seed=None, skip=0) -> tf.data.Dataset:
    """``ds`` shuffled once from ``seed`` (unchanged when it is None), without its first ``skip`` elements.

    The order is a function of the seed alone, never of how many times the data
    was read: the training pipeline gives each epoch a seed of its own, so a
    resumed run reads each epoch in the order an uninterrupted one did.
    """
    if seed is not None:
        ds = ds.shuffle(max(buffer, 1), seed=seed, reshuffle_each_iteration=False)
    return ds if isinstance(skip, int) and skip == 0 else ds.skip(skip)


def array_part(x: np.ndarray, y: np.ndarray) -> Part:
    def make(indices: np.ndarray, shuffle_seed=None, skip=0) -> tf.data.Dataset:
        return shuffled(tf.data.Dataset.from_tensor_slices((x[indices], y[indices])), len(indices), shuffle_seed, skip)

    return Part(labels=y, make=make)


def array_source(parts: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str], description: str,
                 value_range: tuple[float, float] | None = None) -> Source:
    empty = [split for split, (x, _) in parts.items() if len(x) == 0]
    if empty:
        raise DataError(("path",), f"the {empty[0]} data has no examples")
    first = next(iter(parts.values()))[0]
    if value_range is None:
        value_range = (0.0, 255.0) if first.dtype == np.uint8 else _observed_range(parts)
    return Source(
        parts={name: array_part(x, y) for name, (x, y) in parts.items()},
        class_names=class_names, element_shape=tuple(first.shape[1:]), dtype=str(first.dtype),
        value_range=value_range, description=description,
    )


def _observed_range(parts: dict) -> tuple[float, float]:
    lows, highs = zip(*((float(x.min()), float(x.max())) for x, _ in parts.values() if len(x)), strict=True)
    return min(lows), max(highs)


# --- in-memory sources -------------------------------------------------------------------------


def load_digits(spec: DataSpec, seed: int) -> Source:
    """scikit-learn's bundled 8x8 digits (1,797 images, offline), pixels min-max scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype("float32")
    lo, hi = images.min(), images.max()  # 0 and 16
    x = ((images - lo) / (hi - lo))[..., None]
    return array_source({"all": (x, bunch.target.astype("int32"))}, [str(c) for c in bunch.target_names],
                        "scikit-learn digits (8x8 grayscale, scaled to [0, 1])", value_range=(0.0, 1.0))


def load_npz(spec: DataSpec, seed: int) -> Source:
    """Arrays in NumPy .npz files: x and y (or x_train/y_train/x_test/y_test, as keras.datasets stores them)."""
    x_key, y_key = spec.x or "x", spec.y or "y"
    if isinstance(x_key, list):
        raise DataError(("x",), f"an npz source reads one array as x, got {x_key}")
    parts = {}
    for split, path in split_paths(spec).items():
        with _open_npz(path) as arrays:  # no pickled objects: a data file runs no code
            keys = list(arrays.keys())
            if split == "all" and f"{x_key}_train" in keys and x_key not in keys:
                for stored in ("train", "validation", "test"):
                    if f"{x_key}_{stored}" in keys:
                        parts[stored] = (_npz_array(arrays, f"{x_key}_{stored}", path, "x"),
                                         _npz_array(arrays, f"{y_key}_{stored}", path, "y"))
                continue
            parts[split] = (_npz_array(arrays, x_key, path, "x"), _npz_array(arrays, y_key, path, "y"))
    parts = {split: (_reshaped(x, spec, split), y) for split, (x, y) in parts.items()}
    labels, names = encode_labels({split: y for split, (_, y) in parts.items()}, spec)
    sizes = ", ".join(f"{split}: {len(y)}" for split, y in labels.items())
    return array_source({split: (x, labels[split]) for split, (x, _) in parts.items()}, names,
                        f"npz {spec.path} ({sizes})")


def _open_npz(path: str):
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:  # not a NumPy file, or a truncated one
        raise UserError(f"{path} cannot be read as an .npz file: {first_line(exc)}") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise UserError(f"{path} holds a single array (.npy); an npz source reads x and y from an .npz "
                        "(np.savez(path, x=..., y=...))")
    return arrays


def _npz_array(arrays, key: str, path: str, which: str) -> np.ndarray:
    if key not in arrays:
        raise DataError((which,), f"{path} has no array '{key}'{did_you_mean(key, list(arrays.keys()))}; it has "
                        f"{', '.join(arrays.keys())} (name them with data.x and data.y)")
    return arrays[key]


def load_csv(spec: DataSpec, seed: int) -> Source:
    """A table with a header row: a label column and numeric feature columns (or flattened pixels + reshape).

    With ``reshape``, whole-number pixels in 0..255 are kept as 8-bit images (so
    ``normalize: auto`` rescales them); without it the columns are float32 features.
    """
    parts = {split: _read_csv(path, spec) for split, path in split_paths(spec).items()}
    labels, names = encode_labels({split: y for split, (_, y) in parts.items()}, spec)
    parts = {split: (_reshaped(x, spec, split), labels[split]) for split, (x, _) in parts.items()}
    if spec.reshape is not None and all(_eight_bit(x) for x, _ in parts.values()):
        parts = {split: (x.astype("uint8"), y) for split, (x, y) in parts.items()}  # pixels: rescaled by auto
    rows = sum(len(y) for _, y in parts.values())
    return array_source(parts, names, f"csv {spec.path} ({rows} rows)")


def _read_csv(path: str, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and labels (text) of a csv, a row at a time: memory for the arrays, not the text."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        y_name = spec.y or "label"
        if header and y_name not in header:
            raise DataError(("y",), f"{path} has no column '{y_name}'{did_you_mean(y_name, header)}; its columns "
                            f"are {', '.join(header[:12])}{' ...' if len(header) > 12 else ''} (name it with data.y)")
        x_names = spec.x if isinstance(spec.x, list) else [spec.x] if spec.x else [h for h in header if h != y_name]
        for name in x_names:
            if name not in header:
                raise DataError(("x",), f"{path} has no column '{name}'{did_you_mean(name, header)}")
        y_col, x_cols = (header.index(y_name), [header.index(n) for n in x_names]) if header else (0, [])
        labels = []
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise UserError(f"{path}:{line}: {len(row)} fields where the header has {len(header)}")
            labels.append(row[y_col])
    if not labels:
        raise UserError(f"{path} has no data rows; a csv source needs a header row and one row per example")
    try:  # NumPy's C parser: fast, and memory for the array only
        x = np.loadtxt(path, delimiter=",", skiprows=1, usecols=x_cols, dtype="float32", quotechar='"', ndmin=2)
    except ValueError:
        _raise_bad_cell(path, header, x_cols)
        raise
    return x, np.array(labels)


def _raise_bad_cell(path: str, header: list[str], columns: list[int]) -> None:
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            bad = next((c for c in columns if not _is_number(row[c])), None) if line > 1 else None
            if bad is not None:
                raise UserError(f"{path}:{line}: column '{header[bad]}' is '{row[bad]}', not a number; "
                                "feature columns must be numeric (list them with data.x)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_synthetic(spec: DataSpec, seed: int) -> Source:
    """Random images that can be learned: each class is a fixed random pattern plus as much noise.

    Generated inside tf.data from (index, label) with stateless random ops, so a
    large ``count`` costs no memory and the same seed gives the same examples.
    """
    shape, classes = tuple(spec.shape), spec.classes
    labels = np.random.default_rng(seed).integers(0, classes, spec.count).astype("int32")
    patterns = tf.random.stateless_uniform((classes, *shape), seed=[seed, 0])

    def example(index, label):
        noise = tf.random.stateless_uniform(shape, seed=tf.stack([tf.constant(seed, tf.int64), index + 1]))
        return 0.5 * tf.gather(patterns, label) + 0.5 * noise, label

    def make(indices: np.ndarray, shuffle_seed=None, skip=0) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices((indices.astype("int64"), labels[indices]))
        return shuffled(ds, len(indices), shuffle_seed, skip).map(example, num_parallel_calls=AUTOTUNE)

    return Source(parts={"all": Part(labels, make)}, class_names=[str(i) for i in range(classes)],
                  element_shape=shape, dtype="float32", value_range=(0.0, 1.0),
                  description=f"synthetic {list(shape)} x {spec.count}, {classes} classes")


# --- shared helpers ----------------------------------------------------------------------------


def split_paths(spec: DataSpec, *, globs: bool = False) -> dict[str, str]:
    """``data.path`` as {split: existing path}; one path is the split ``all``; a mapping needs ``train``."""
    paths = {"all": spec.path} if isinstance(spec.path, str) else dict(spec.path)
    if "all" not in paths and "train" not in paths:
        raise DataError(("path",), f"a mapping of split files needs train (it has {', '.join(paths)})")
    for split, path in paths.items():
        key = ("path",) if split == "all" else ("path", split)
        if glob.has_magic(path):
            if not globs:
                raise DataError(key, f"{path} is a pattern; source '{spec.source}' reads one file per split")
        elif not os.path.exists(path):
            raise DataError(key, f"{path} does not exist{closest_path(path)}")
    return paths


def encode_labels(labels: dict[str, np.ndarray], spec: DataSpec) -> tuple[dict[str, np.ndarray], list[str]]:
    """Class indices (int32) for every split, and the class names in index order.

    Whole numbers are used as indices (0..max, the Keras convention); anything
    else (text) becomes the index of its name in ``data.class_names`` or in the
    sorted distinct labels.
    """
    values = np.concatenate([np.asarray(y).reshape(-1) for y in labels.values()])
    numeric = _whole_numbers(values)
    if numeric is not None:
        if numeric.size and numeric.min() < 0:
            raise UserError(f"labels must be class indices 0, 1, ...; the data has label {int(numeric.min())}")
        count = int(numeric.max()) + 1 if numeric.size else 0
        names = spec.class_names or [str(i) for i in range(count)]
        if len(names) < count:
            raise DataError(("class_names",), f"the data has labels up to {count - 1} but data.class_names "
                                              f"names {len(names)} classes")
        return {s: _whole_numbers(np.asarray(y).reshape(-1)).astype("int32") for s, y in labels.items()}, names
    text = values.astype(str)
    fractional = _fractional(values)
    if fractional is not None:
        raise DataError(("y",), f"the labels are numbers but {fractional} is not a whole number; class labels are "
                                "whole numbers 0, 1, ... or names (cnnctl trains classifiers, not regressions)")
    names = spec.class_names or sorted(set(text.tolist()))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(text.tolist()) - set(index))
    if unknown:
        raise DataError(("class_names",), f"label '{unknown[0]}' is not in data.class_names ({', '.join(names)})")
    return {s: np.array([index[v] for v in np.asarray(y).reshape(-1).astype(str)], "int32")
            for s, y in labels.items()}, names


def _fractional(values: np.ndarray) -> str | None:
    """The first label that is a number but not a whole one, when every label is a number."""
    try:
        numbers = values.astype("float64")
    except ValueError:
        return None
    bad = np.flatnonzero(numbers != np.round(numbers))
    return str(values[bad[0]]) if len(bad) else None


def _whole_numbers(values: np.ndarray) -> np.ndarray | None:
    try:
        numbers = values.astype("float64")
    except ValueError:
        return None
    if numbers.size and not np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
        return None
    return numbers.astype("int64")


def _eight_bit(x: np.ndarray) -> bool:
    """Whole numbers in 0..255 with some above 1: pixels of 8-bit images, written as text."""
    return bool(x.size and x.min() >= 0 and 1 < x.max() <= 255 and np.all(x == np.round(x)))


def _reshaped(x: np.ndarray, spec: DataSpec, split: str) -> np.ndarray:
    if spec.reshape is None:
        return x
    size = int(np.prod(spec.reshape))
    if x[0].size != size:
        which = "the data" if split == "all" else f"the {split} data"
        raise DataError(("reshape",), f"{spec.reshape} holds {size} values but each example of {which} "
                                      f"has {x[0].size}")
    return x.reshape(len(x), *spec.reshape)
