"""Recipe.data -> train / validation / test ``tf.data.Dataset``s.

Stages, in order: split (seeded, stratified), cache, shuffle (training only),
batch, prefetch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from cnnctl.data.sources import SOURCES, ArraySource
from cnnctl.recipe.schema import Recipe

SPLITS = ("train", "validation", "test")


@dataclass
class Datasets:
    """The batched splits and what a user wants to know about them."""

    splits: dict[str, tf.data.Dataset]
    sizes: dict[str, int]
    class_names: list[str]
    element_shape: tuple
    class_counts: dict[str, np.ndarray] = field(default_factory=dict)  # split -> examples per class
    arrays: dict[str, tuple] = field(repr=False, default_factory=dict)  # split -> (x, y)

    def __getitem__(self, split: str) -> tf.data.Dataset:
        return self.splits[split]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def split_indices(y: np.ndarray, validation: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded, stratified indices of each split; the same seed gives the same split."""
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(y))
    out = {"validation": everything[:0], "test": everything[:0]}
    rest = everything
    if test > 0:
        rest, out["test"] = train_test_split(everything, test_size=test, stratify=y, random_state=seed)
    if validation > 0:
        share = validation / (1.0 - test)
        rest, out["validation"] = train_test_split(rest, test_size=share, stratify=y[rest], random_state=seed)
    out["train"] = rest
    return out


def build_datasets(recipe: Recipe) -> Datasets:
    """The recipe's data, split and turned into batched, prefetched tf.data pipelines."""
    spec = recipe.data
    source: ArraySource = SOURCES[spec.source]()
    indices = split_indices(source.y, spec.split.validation, spec.split.test, recipe.seed)
    splits, arrays = {}, {}
    for name in SPLITS:
        x, y = source.x[indices[name]], source.y[indices[name]]
        arrays[name] = (x, y)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if spec.cache:
            ds = ds.cache()
        if name == "train" and spec.shuffle:
            ds = ds.shuffle(len(x), seed=recipe.seed, reshuffle_each_iteration=True)
        splits[name] = ds.batch(spec.batch_size).prefetch(tf.data.AUTOTUNE)
    return Datasets(
        splits=splits,
        sizes={name: len(indices[name]) for name in SPLITS},
        class_names=source.class_names,
        element_shape=tuple(source.x.shape[1:]),
        class_counts={name: np.bincount(arrays[name][1], minlength=len(source.class_names)) for name in SPLITS},
        arrays=arrays,
    )
