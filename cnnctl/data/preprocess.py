"""Batch preprocessing: augmentation by Keras layer names, then normalization.

Both run on whole batches inside tf.data (after ``batch``), so they are
vectorized and never call Python per example.
"""

from __future__ import annotations

import functools
import inspect

import keras
import numpy as np
import tensorflow as tf

from cnnctl.errors import RecipeError, did_you_mean
from cnnctl.recipe.graph import split_spec
from cnnctl.recipe.schema import Recipe


@functools.cache
def augmentation_classes() -> dict[str, type]:
    """Keras's image preprocessing layers (RandomFlip, RandomCrop, RandomRotation, ...), by name."""
    from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
        BaseImagePreprocessingLayer,
    )

    return {name: obj for name in dir(keras.layers) if isinstance(obj := getattr(keras.layers, name), type)
            and issubclass(obj, BaseImagePreprocessingLayer)}


def augmentation_layers(recipe: Recipe, value_range: tuple[float, float]) -> list[keras.layers.Layer]:
    """The layers of ``data.augment``, each seeded from the recipe's seed unless it gives one.

    Layers that take ``value_range`` (colour changes) get the source's pixel range
    (0-255 for 8-bit images, 0-1 for digits) unless the recipe sets it, since
    augmentation runs before normalization.
    """
    from cnnctl.model.objects import instantiate

    classes = augmentation_classes()
    layers = []
    for i, spec in enumerate(recipe.data.augment):
        name, args = split_spec(spec)
        path = ("data", "augment", i)
        cls = classes.get(name)
        if cls is None:
            hint = did_you_mean(name, classes)
            known = "" if hint else f"; choose one of {', '.join(sorted(classes))}"
            raise RecipeError(recipe.problem(path, f"'{name}' is not a Keras image preprocessing layer{hint}{known}"))
        args = dict(args or {})
        accepted = inspect.signature(cls.__init__).parameters
        if "seed" in accepted:
            args.setdefault("seed", recipe.seed + i)
        if "value_range" in accepted:
            args.setdefault("value_range", list(value_range))
        layers.append(instantiate(cls, args, recipe, (*path, name)))
    return layers


def normalization(recipe: Recipe, source_dtype: str) -> str:
    """The normalization ``data.normalize`` asks for; ``auto`` is rescale for 8-bit images, else none."""
    kind = recipe.data.normalize
    if kind == "auto":
        return "rescale" if source_dtype == "uint8" else "none"
    return kind


def standardizer(train: tf.data.Dataset) -> keras.layers.Normalization:
    """A per-channel ``keras.layers.Normalization`` adapted on the (un-augmented) training batches."""
    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(train)
    return layer


def keras_normalization(record: dict) -> keras.layers.Normalization:
    """The standardization a run stored (``normalization_record``), as a Keras layer."""
    return keras.layers.Normalization(axis=-1, mean=record["mean"], variance=record["variance"])


def batch_transform(augment: list[keras.layers.Layer], training: bool, kind: str, rescale: float,
                    standardize: keras.layers.Normalization | None):
    """``(x, y) -> (x', y)`` for a batch: float32, augmented (training) or in inference mode, normalized."""

    def transform(x, y):
        x = tf.cast(x, tf.float32)
        for layer in augment:
            x = layer(x, training=training)
        if kind == "rescale":
            x = x * rescale
        elif kind == "standardize":
            x = standardize(x)
        return x, y

    return transform


def normalization_record(kind: str, rescale: float, standardize: keras.layers.Normalization | None) -> dict:
    """What a later ``eval``/``predict``/export must apply to raw pixels, as JSON."""
    if kind == "rescale":
        return {"normalize": "rescale", "rescale": rescale}
    if kind == "standardize":
        mean, variance = (np.asarray(v).reshape(-1).tolist() for v in (standardize.mean, standardize.variance))
        return {"normalize": "standardize", "mean": mean, "variance": variance}
    return {"normalize": "none"}
