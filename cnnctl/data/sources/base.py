"""What a data source is, and what its loader gives: the pieces every source file is made of.

A source is declared once, in a file of its own under ``cnnctl.data.sources``, and
registered by name (``cnnctl.registry.SOURCES``)::

    NPZ = SOURCES.register(Source(name="npz", keys=("path", "x", "y", "reshape", "class_names"),
                                  required=("path",), load=load_npz))

``keys`` are the ``data:`` keys it reads (the recipe stage refuses the others, and
asks for ``required`` ones, before anything is loaded); ``load(spec, seed)`` gives
its ``Examples``: every label up front (for the stratified split and the class
counts) and a maker of a ``tf.data.Dataset`` of ``(x, y)`` for any subset of them.
In-memory sources slice arrays; file sources decode in parallel inside tf.data, so
no Python runs per example. TensorFlow is imported when a loader first runs.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import tf
from cnnctl.errors import RecipeError, UserError, closest_path
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec


@dataclass(frozen=True)
class Source:
    """A data source a recipe names in ``data.source``: its name, the keys it reads, and its loader.

    ``variants``: the names it takes after a colon (``keras:mnist``), which ``variants_of``
    names in messages ("keras.datasets has no 'mnst' here"); ``variant_pattern``: the form
    of any such name instead (``tfds:NAME``, a regular expression).
    """

    name: str
    load: Callable[[DataSpec, int], Examples]
    keys: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    variants_of: str = ""
    variant_pattern: str | None = None

    @property
    def listed(self) -> tuple[str, ...]:
        """How ``data.source`` names it: ``npz``; ``keras:mnist``, ``keras:cifar10``, ...; ``tfds:NAME``."""
        if self.variants:
            return tuple(f"{self.name}:{v}" for v in self.variants)
        return (f"{self.name}:NAME",) if self.variant_pattern else (self.name,)

    def accepts(self, variant: str | None) -> bool:
        """Whether ``name:variant`` (``variant`` None: the name alone) names this source."""
        if self.variants:
            return variant in self.variants
        if self.variant_pattern:
            return variant is not None and re.fullmatch(self.variant_pattern, variant) is not None
        return variant is None


def autotune() -> int:
    """``tf.data.AUTOTUNE``: tf.data chooses the parallelism."""
    return tf.data.AUTOTUNE


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
class Examples:
    """What a source's loader gives: its stored parts ("all", or some of train/validation/test) and their form."""

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


def array_examples(parts: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str], description: str,
                 value_range: tuple[float, float] | None = None) -> Examples:
    empty = [split for split, (x, _) in parts.items() if len(x) == 0]
    if empty:
        raise DataError(("path",), f"the {empty[0]} data has no examples")
    first = next(iter(parts.values()))[0]
    if value_range is None:
        value_range = (0.0, 255.0) if first.dtype == np.uint8 else _observed_range(parts)
    return Examples(
        parts={name: array_part(x, y) for name, (x, y) in parts.items()},
        class_names=class_names, element_shape=tuple(first.shape[1:]), dtype=str(first.dtype),
        value_range=value_range, description=description,
    )


def _observed_range(parts: dict) -> tuple[float, float]:
    lows, highs = zip(*((float(x.min()), float(x.max())) for x, _ in parts.values() if len(x)), strict=True)
    return min(lows), max(highs)


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


def check_paths(spec: DataSpec) -> None:
    """Every file, folder or pattern ``data.path`` names exists (a pattern: matches a file), or ``RecipeError`` at
    ``data.path`` (``data.path.SPLIT``): the cheap data check ``cnnctl check`` makes without ``--data``."""
    if spec.path is None or "path" not in SOURCES.get(spec.kind).keys:
        return
    paths = {"all": spec.path} if isinstance(spec.path, str) else dict(spec.path)
    for split, path in paths.items():
        key = ("path",) if split == "all" else ("path", split)
        if glob.has_magic(path) and not glob.glob(path):
            raise RecipeError(spec.problem(key, f"no file matches {path}"))
        if not glob.has_magic(path) and not os.path.exists(path):
            where = ".".join(("data", *key))
            raise RecipeError(spec.problem(key, f"{path} does not exist{closest_path(path)}; point {where} at your "
                                                f"data (--set {where}=PATH)"))


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


def eight_bit(x: np.ndarray) -> bool:
    """Whole numbers in 0..255 with some above 1: pixels of 8-bit images, written as text."""
    return bool(x.size and x.min() >= 0 and 1 < x.max() <= 255 and np.all(x == np.round(x)))


def reshaped(x: np.ndarray, spec: DataSpec, split: str) -> np.ndarray:
    if spec.reshape is None:
        return x
    size = int(np.prod(spec.reshape))
    if x[0].size != size:
        which = "the data" if split == "all" else f"the {split} data"
        raise DataError(("reshape",), f"{spec.reshape} holds {size} values but each example of {which} "
                                      f"has {x[0].size}")
    return x.reshape(len(x), *spec.reshape)
