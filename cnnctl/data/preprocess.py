"""Batch preprocessing: augmentation by Keras layer names, then normalization.

Both run on whole batches inside tf.data (after ``batch``), so they are
vectorized and never call Python per example.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from cnnctl.errors import RecipeError, did_you_mean, first_line
from cnnctl.recipe.graph import split_spec
from cnnctl.recipe.schema import Recipe

# Image layers that need the labels too, which a recipe's augment list cannot give them.
REFUSED_AUGMENTATIONS = {
    "CutMix": "it mixes labels as well as images, which cnnctl's augment stage does not do yet",
    "MixUp": "it mixes labels as well as images, which cnnctl's augment stage does not do yet",
}
_NOT_AUGMENTATIONS = {*REFUSED_AUGMENTATIONS, "MaxNumBoundingBoxes"}  # the last needs bounding boxes


@functools.cache
def augmentation_classes() -> dict[str, type]:
    """Keras's image preprocessing layers (RandomFlip, RandomCrop, RandomRotation, ...), by name."""
    from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
        BaseImagePreprocessingLayer,
    )

    return {name: obj for name in dir(keras.layers) if isinstance(obj := getattr(keras.layers, name), type)
            and issubclass(obj, BaseImagePreprocessingLayer) and name not in _NOT_AUGMENTATIONS}


_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


@dataclass
class Augmentation:
    """``data.augment`` as Keras layers: for training batches, and for the other splits (inference mode)."""

    training: list[keras.layers.Layer]
    inference: list[keras.layers.Layer]

    @property
    def names(self) -> list[str]:
        return [type(layer).__name__ for layer in self.training]


def augmentation_layers(recipe: Recipe, value_range: tuple[float, float], shape: tuple) -> Augmentation:
    """The layers of ``data.augment``, each seeded from the recipe's seed unless it gives one.

    Layers that take ``value_range`` (colour changes) get the source's pixel range
    (0-255 for 8-bit images, 0-1 for digits) unless the recipe sets it, since
    augmentation runs before normalization. ``RandomCrop`` crops the centre of
    validation and test images (Keras 3.15's RandomCrop leaves them whole in
    inference mode), so every split has one shape. Every layer is tried on a
    batch of ``shape`` now, so a bad argument is reported here, located, rather
    than from inside tf.data.
    """
    from cnnctl.model.objects import instantiate

    classes = augmentation_classes()
    training, inference = [], []
    batch = tf.zeros((2, *shape), tf.float32)
    for i, spec in enumerate(recipe.data.augment):
        name, args = split_spec(spec)
        path = ("data", "augment", i)
        if name in REFUSED_AUGMENTATIONS:
            raise RecipeError(recipe.problem(path, f"{name} cannot be used in data.augment: "
                                                   f"{REFUSED_AUGMENTATIONS[name]}"))
        cls = classes.get(name)
        if cls is None:
            hint = did_you_mean(name, classes)
            known = "" if hint else f"; choose one of {', '.join(sorted(classes))}"
            raise RecipeError(recipe.problem(path, f"'{name}' is not a Keras image preprocessing layer{hint}{known}"))
        args = dict(args or {})
        if name == "RandomFlip" and args.get("mode", "horizontal_and_vertical") not in _FLIP_MODES:
            raise RecipeError(recipe.problem((*path, name, "mode"), f"RandomFlip's mode is one of "
                                             f"{', '.join(_FLIP_MODES)}, got {args['mode']!r}"))
        accepted = inspect.signature(cls.__init__).parameters
        if "seed" in accepted:
            args.setdefault("seed", recipe.seed + i)
        if "value_range" in accepted:
            args.setdefault("value_range", list(value_range))
        layer = instantiate(cls, args, recipe, (*path, name))
        infer = keras.layers.CenterCrop(layer.height, layer.width) if name == "RandomCrop" else layer
        if name == "RandomCrop" and (layer.height > batch.shape[1] or layer.width > batch.shape[2]):
            print(f"warning: data.augment[{i}]: RandomCrop {layer.height}x{layer.width} is larger than the "
                  f"{batch.shape[1]}x{batch.shape[2]} images; Keras enlarges them first", file=sys.stderr)
        try:
            out = layer(batch, training=True)
            infer(batch, training=False)
            if 0 in out.shape:
                raise ValueError(f"it gives empty images of shape {list(out.shape[1:])}")
        except Exception as exc:  # the layer's own complaint about its arguments or the input
            raise RecipeError(recipe.problem((*path, name), f"{name} fails on a batch of shape {list(batch.shape)}: "
                                                            f"{first_line(exc)}")) from None
        batch = tf.zeros_like(out)
        training.append(layer)
        inference.append(infer)
    return Augmentation(training, inference)


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
    """The standardization a run stored (``normalization_record``), as a built Keras layer."""
    layer = keras.layers.Normalization(axis=-1, mean=record["mean"], variance=record["variance"])
    layer.build((None, len(record["mean"])))  # built now, not inside the first tf.data map that calls it
    return layer


def batch_transform(augment: Augmentation, training: bool, kind: str, rescale: float,
                    standardize: keras.layers.Normalization | None, *, seed: int = 0):
    """``(x, y, key=None) -> (x', y)`` for a batch: float32, augmented (training) or in inference mode, normalized.

    ``key`` (epoch, step) makes the batch's augmentation a function of the
    recipe's seed and that pair alone (``reseed``), whatever was augmented before.
    """
    layers = augment.training if training else augment.inference

    def transform(x, y, key=None):
        x = tf.cast(x, tf.float32)
        if key is not None and training:
            reseed(layers, seed, *key)
        for layer in layers:
            x = layer(x, training=training)
        if kind == "rescale":
            x = x * rescale
        elif kind == "standardize":
            x = standardize(x)
        return x, y

    return transform


_DRAWS = 1 << 12  # seeds a layer may draw for one batch before it would reach the next batch's


def reseed(layers: list[keras.layers.Layer], seed: int, epoch, step) -> None:
    """Set each random layer's seed state to (its seed, a counter of epoch and step) before it augments a batch.

    Keras's random layers draw stateless random numbers from their SeedGenerator's
    state and advance it; setting it per batch makes every batch's draws
    independent of the batches before it, as a resumed run needs.
    """
    counter = tf.cast(epoch, tf.int64) * (1 << 40) + tf.cast(step, tf.int64) * _DRAWS
    for i, layer in enumerate(layers):
        generator = getattr(layer, "generator", None)
        if isinstance(generator, keras.random.SeedGenerator):
            state = generator.state
            state.assign(tf.cast(tf.stack([tf.constant(seed + 7919 * (i + 1), tf.int64), counter]), state.dtype))


def normalization_record(kind: str, rescale: float, standardize: keras.layers.Normalization | None) -> dict:
    """What a later ``eval``/``predict``/export must apply to raw pixels, as JSON."""
    if kind == "rescale":
        return {"normalize": "rescale", "rescale": rescale}
    if kind == "standardize":
        mean, variance = (np.asarray(v).reshape(-1).tolist() for v in (standardize.mean, standardize.variance))
        return {"normalize": "standardize", "mean": mean, "variance": variance}
    return {"normalize": "none"}
