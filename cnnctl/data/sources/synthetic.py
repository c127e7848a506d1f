"""``synthetic``: random images that can be learned, of any shape and class count: for benchmarks and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import tf
from cnnctl.data.sources.base import Examples, Part, Source, autotune, shuffled
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec


def load_synthetic(spec: DataSpec, seed: int) -> Examples:
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
        return shuffled(ds, len(indices), shuffle_seed, skip).map(example, num_parallel_calls=autotune())

    return Examples(parts={"all": Part(labels, make)}, class_names=[str(i) for i in range(classes)],
                  element_shape=shape, dtype="float32", value_range=(0.0, 1.0),
                  description=f"synthetic {list(shape)} x {spec.count}, {classes} classes")


SYNTHETIC = SOURCES.register(Source(name="synthetic", keys=("shape", "classes", "count"), required=("shape", "classes"),
                                    load=load_synthetic))
