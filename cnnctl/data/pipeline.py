"""A recipe's ``data:`` section and seed -> train / validation / test ``tf.data.Dataset``s.

Stages, in order: load (the source named by ``data.source``, from
``cnnctl.registry.SOURCES``), split (seeded, stratified, on labels only), decode
(parallel, inside the source), cache, shuffle (training only), batch, then one map
per batch that casts to float32, augments (training only; inference mode elsewhere)
and normalizes (``cnnctl.data.preprocess``), and prefetch. Augmentation and
normalization run on batches, after the cache, so cached examples stay
un-augmented and 8-bit. Problems are located in the recipe through the section
(``spec.problem``): the data stage never needs the whole recipe.

Training reads a stream of epochs (``Datasets.train_epochs``) in which
everything random is a function of the seed, the epoch and the batch's step:
epoch e is shuffled from its own seed, and the augmentation of each batch is
drawn from a seed state set for (e, step). So a run resumed at epoch e, step k
reads exactly the batches an uninterrupted run would have read from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from cnnctl.data.preprocess import Preprocessing, normalization_kind, standardization
from cnnctl.data.record import DataRecord, Normalization, StoredForm
from cnnctl.data.sources.base import DataError, Examples, shuffled
from cnnctl.errors import RecipeError, first_line
from cnnctl.recipe.data_spec import DataSpec
from cnnctl.registry import SOURCES

SPLITS = ("train", "validation", "test")
_FILE_CACHE_SHUFFLE = 10_000  # shuffle buffer after a file cache: bounded, since it holds decoded examples

AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Datasets:
    """The batched splits and what a user wants to know about them."""

    splits: dict[str, tf.data.Dataset]
    sizes: dict[str, int]
    class_names: list[str]
    element_shape: tuple  # what the model receives, after augmentation
    stored: StoredForm  # as decoded, before augmentation: shape, dtype, value range (pixels: 0-255)
    preprocessing: Preprocessing  # augmentation and normalization (``cnnctl.data.preprocess``)
    class_counts: dict[str, np.ndarray] = field(default_factory=dict)  # split -> examples per class
    source: str = ""  # a description of where the data came from
    verify: Callable[[], list[str]] | None = field(default=None, repr=False)  # see Examples.verify
    raw: dict[str, tf.data.Dataset] = field(default_factory=dict, repr=False)  # batches as stored, in order
    epochs: Callable[..., tf.data.Dataset] | None = field(default=None, repr=False)  # see train_epochs
    following: Callable[[tf.Variable], tf.data.Dataset] | None = field(default=None, repr=False)
    steps_per_epoch: int = 0  # training batches in an epoch

    def __getitem__(self, split: str) -> tf.data.Dataset:
        return self.splits[split]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def stored_shape(self) -> tuple:
        return tuple(self.stored.shape)

    @property
    def stored_dtype(self) -> str:
        return self.stored.dtype

    @property
    def value_range(self) -> tuple[float, float]:
        return self.stored.value_range

    @property
    def normalization(self) -> dict:
        """The normalization applied, as data.json stores it: ``{"normalize": "rescale", "rescale": 0.0039...}``."""
        return self.preprocessing.normalization.to_json()

    @property
    def augment(self) -> list[str]:
        return self.preprocessing.augment

    def record(self) -> DataRecord:
        """What a run stores in data.json: the classes and the preprocessing eval, predict and export reuse."""
        return DataRecord(class_names=list(self.class_names), stored=self.stored,
                          normalization=self.preprocessing.normalization, augment=tuple(self.augment),
                          source=self.source, sizes=dict(self.sizes),
                          class_counts={split: np.asarray(c).tolist() for split, c in self.class_counts.items()},
                          element_shape=tuple(self.element_shape))

    def train_epochs(self, first: int, last: int, skip_batches: int = 0) -> tf.data.Dataset:
        """The training batches of epochs ``first`` to ``last - 1`` (counted from 0) in one stream, the first
        epoch without its first ``skip_batches`` batches (a resumed epoch)."""
        return self.epochs(first, last, skip_batches)

    def train_epoch_of(self, epoch: tf.Variable) -> tf.data.Dataset:
        """One epoch of training batches, the one numbered by ``epoch`` when an iteration starts: what ``fit``
        reads, a callback setting the variable at each epoch's beginning (``cnnctl.training.state``)."""
        return self.following(epoch)

    def sample(self, split: str, count: int, *, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``count`` examples of ``split`` (x, y) as NumPy arrays: preprocessed, or as stored if ``raw``."""
        xs, ys, have = [], [], 0
        for x, y in (self.raw if raw else self.splits)[split]:
            xs.append(x.numpy())
            ys.append(y.numpy())
            have += len(y)
            if have >= count:
                break
        if not xs:
            shape, dtype = (self.stored_shape, self.stored_dtype) if raw else (self.element_shape, "float32")
            return np.zeros((0, *shape), dtype), np.zeros(0, "int32")
        return np.concatenate(xs)[:count], np.concatenate(ys)[:count]


def split_indices(y: np.ndarray, validation: float, test: float, seed: int,
                  class_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Seeded, stratified indices of each split; the same seed gives the same split.

    Stratifying needs two examples of every class present and at least one
    held-out example per class; a data set too small for that is split at
    random instead, with a warning.
    """
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(y))
    out = {"validation": everything[:0], "test": everything[:0]}

    warned: list[bool] = []

    def carve(pool: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
        counts = np.bincount(y[pool])
        present = counts[counts > 0]
        held_out = int(np.ceil(share * len(pool)))
        if present.min(initial=2) >= 2 and held_out >= len(present) and len(pool) - held_out >= len(present):
            return train_test_split(pool, test_size=share, stratify=y[pool], random_state=seed)
        if not warned:
            lone = [class_names[c] if class_names else str(c) for c in np.flatnonzero(counts == 1)]
            why = (f"class {', '.join(repr(c) for c in lone[:3])} has a single example" if lone else
                   f"{len(pool)} examples of {len(present)} classes are too few")
            print(f"warning: {why}, so the held-out splits cannot be stratified; splitting at random",
                  file=sys.stderr)
            warned.append(True)
        return train_test_split(pool, test_size=share, random_state=seed)

    rest = everything
    if test > 0:
        rest, out["test"] = carve(everything, test)
    if validation > 0:
        rest, out["validation"] = carve(rest, validation / (1.0 - test))
    out["train"] = rest
    return out


def load_source(spec: DataSpec, seed: int) -> Examples:
    """The examples of ``data.source``, with its problems located in the recipe."""
    try:
        return SOURCES.get(spec.kind).load(spec, seed)
    except DataError as exc:
        raise RecipeError(spec.problem(exc.key, exc.message)) from None


def assign_splits(examples: Examples, spec: DataSpec, seed: int) -> dict[str, tuple[str, np.ndarray]]:
    """{split: (stored part, indices into it)}: stored splits as they are, the rest carved from train/all."""
    split = spec.split
    parts = examples.parts
    base = "all" if "all" in parts else "train"
    test = 0.0 if "test" in parts else split.test
    validation = 0.0 if "validation" in parts else split.validation
    labels = parts[base].labels
    if len(labels) and (validation or test) and len(labels) * (1 - validation - test) < 1:
        raise RecipeError(spec.problem(("split",), f"{len(labels)} examples leave none to train on after the "
                                                   "validation and test shares"))
    try:
        carved = split_indices(labels, validation, test, seed, examples.class_names) if len(labels) else {}
    except ValueError as exc:  # scikit-learn's refusal of a split it cannot make
        raise RecipeError(spec.problem(("split",), f"cannot split {len(labels)} examples: "
                                                   f"{first_line(exc)}")) from None
    out = {}
    for name in SPLITS:
        if name in parts and name != base:
            out[name] = (name, np.arange(len(parts[name].labels)))
        else:
            out[name] = (base, carved.get(name, np.zeros(0, int)))
    return out


def build_datasets(spec: DataSpec, seed: int, normalization: Normalization | None = None) -> Datasets:
    """``spec`` (a recipe's data section) split and turned into batched, prefetched tf.data pipelines.

    ``seed`` is the recipe's: it draws the split, each epoch's shuffle and the
    augmentation. ``normalization`` (a run's stored record) replaces adapting
    ``standardize`` on the training split again.
    """
    examples = load_source(spec, seed)
    assigned = assign_splits(examples, spec, seed)
    if len(assigned["train"][1]) == 0:
        raise RecipeError(spec.problem((), "the training split is empty"))
    stored = StoredForm(tuple(examples.element_shape), examples.dtype, tuple(examples.value_range))
    kind = normalization_kind(spec, examples.dtype)
    if kind == "rescale":
        norm = Normalization("rescale", rescale=spec.rescale)
    elif kind == "standardize" and normalization is not None and normalization.kind == "standardize":
        norm = normalization
    elif kind == "standardize":
        part, idx = assigned["train"]
        norm = standardization(examples.parts[part].make(idx).batch(256).map(lambda x, y: tf.cast(x, tf.float32)))
    else:
        norm = Normalization()
    preprocessing = Preprocessing.of(spec, seed, stored, norm)
    part, idx = assigned["train"]
    epochs, following = _training_epochs(examples, part, idx, spec, seed,
                                         transform=preprocessing.transform(training=True))
    steps = -(-len(idx) // spec.batch_size)  # the last batch may be smaller
    splits = {"train": epochs(0, 1).apply(tf.data.experimental.assert_cardinality(steps))}  # epoch 1, as fit reads it
    for name in ("validation", "test"):
        part, idx = assigned[name]
        splits[name] = _pipeline(examples, part, idx, spec, split=name,
                                 transform=preprocessing.transform(training=False))
    labels = {name: examples.parts[part].labels[idx] for name, (part, idx) in assigned.items()}
    return Datasets(
        splits=splits,
        sizes={name: len(idx) for name, (_, idx) in assigned.items()},
        class_names=examples.class_names,
        element_shape=tuple(splits["train"].element_spec[0].shape[1:]),
        stored=stored,
        preprocessing=preprocessing,
        class_counts={n: np.bincount(y, minlength=len(examples.class_names)) for n, y in labels.items()},
        source=examples.description,
        verify=examples.verify,
        raw={name: examples.parts[part].make(idx).batch(spec.batch_size)
             for name, (part, idx) in assigned.items()},  # what eval, predict and exports take, in order
        epochs=epochs,
        following=following,
        steps_per_epoch=steps,
    )


def _pipeline(examples: Examples, part: str, indices: np.ndarray, spec: DataSpec, *, split: str,
              transform) -> tf.data.Dataset:
    """A held-out split: in its stored order, batched, preprocessed in parallel."""
    ds = examples.parts[part].make(indices)
    if spec.cache != "none":
        ds = _cached(ds, examples, part, indices, spec, split=split)
    return ds.batch(spec.batch_size).map(transform, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def _cached(ds: tf.data.Dataset, examples: Examples, part: str, indices: np.ndarray, spec: DataSpec, *,
            split: str) -> tf.data.Dataset:
    if spec.cache == "memory":
        return ds.cache()
    _make_cache_folder(spec)
    return ds.cache(f"{spec.cache}-{split}-{_fingerprint(spec, examples, part, indices)}")


_SEED_STRIDE = 1_000_003  # epoch e of seed s shuffles from s * stride + e: distinct for every epoch of every seed
_GRAPH_SEED = 1


def _training_epochs(examples: Examples, part_name: str, indices: np.ndarray, spec: DataSpec, seed: int, *,
                     transform):
    """``stream(first, last, skip_batches)`` and ``following(variable)``: see ``Datasets.train_epochs``.

    Each epoch is one shuffle of the training examples from the epoch's own seed
    (names or indices before decoding; decoded examples after a cache), then
    batches numbered by step; ``transform(epoch, step, x, y)`` augments a batch
    from that pair. A resumed epoch skips its first examples before they are decoded.
    """
    part, batch = examples.parts[part_name], spec.batch_size
    base = None
    if spec.cache != "none":  # the cache holds decoded examples in stored order; each epoch shuffles them
        base = _cached(part.make(indices), examples, part_name, indices, spec, split="train")
        buffer = len(indices) if spec.cache == "memory" else min(len(indices), _FILE_CACHE_SHUFFLE)

    def epoch(e, skip_batches=0):
        """Epoch ``e`` (a scalar tensor) from batch ``skip_batches`` on, as (epoch, step, (x, y)) elements."""
        # This function is traced into a graph of its own: a graph-level seed of its own makes the shuffle's
        # order a function of the epoch's seed alone, whatever global seed the process set before (and keeps
        # TensorFlow from comparing the seed tensor with 0 when that global seed is 0).
        tf.random.set_seed(_GRAPH_SEED)
        epoch_seed = tf.constant(seed, tf.int64) * _SEED_STRIDE + e if spec.shuffle else None
        skip = tf.cast(skip_batches, tf.int64) * batch
        ds = part.make(indices, epoch_seed, skip) if base is None else shuffled(base, buffer, epoch_seed, skip)
        steps = tf.data.Dataset.range(tf.cast(skip_batches, tf.int64), tf.constant(2**62, tf.int64))
        return tf.data.Dataset.zip((tf.data.Dataset.from_tensors(e).repeat(), steps, ds.batch(batch)))

    def preprocessed(ds: tf.data.Dataset) -> tf.data.Dataset:
        # Augmentation layers draw from seed states (set per batch by the transform): batches augmented in
        # parallel would race for them, so training batches with augmentation go one by one.
        parallel = None if spec.augment else AUTOTUNE
        return ds.map(lambda e, step, xy: transform(*xy, key=(e, step)), num_parallel_calls=parallel).prefetch(
            AUTOTUNE)

    def stream(first: int, last: int, skip_batches: int = 0) -> tf.data.Dataset:
        def one(e):
            return epoch(e, tf.where(tf.equal(e, first), tf.constant(skip_batches, tf.int64), tf.constant(0, tf.int64)))

        return preprocessed(tf.data.Dataset.range(first, last).flat_map(one))

    def following(variable: tf.Variable) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(lambda _: epoch(variable.read_value()))
        return preprocessed(ds).apply(tf.data.experimental.assert_cardinality(-(-len(indices) // batch)))

    return stream, following


def _make_cache_folder(spec: DataSpec) -> None:
    folder = os.path.dirname(spec.cache)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise RecipeError(spec.problem(("cache",), f"cannot create the cache folder {folder}: {exc.strerror}; "
                                                   "give a writable path prefix, or cache: memory")) from None


def _fingerprint(spec: DataSpec, examples: Examples, part_name: str, indices: np.ndarray) -> str:
    """Names a file cache after what it holds (data settings, files found, the split), so a stale one is never read."""
    decoded = spec.model_dump(exclude={"batch_size", "shuffle", "cache", "augment", "normalize", "rescale"})
    digest = hashlib.sha256(json.dumps({"data": decoded, "source": examples.description}, sort_keys=True).encode())
    part = examples.parts[part_name]
    digest.update(np.asarray(indices, "int64").tobytes())
    digest.update(part.labels[indices].astype("int32").tobytes())  # a file moved to another class folder
    if part.keys is not None:  # the files themselves: names, sizes and modification times
        for path in part.keys[indices]:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]
