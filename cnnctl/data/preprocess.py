"""Preprocessing, defined once: ``data.augment`` (Keras image layers by name), then normalization.

``Preprocessing`` is what a batch of stored examples goes through before the model,
given two ways from the same layers:

- ``transform(training=...)``: a function ``(x, y, key) -> (x', y)`` for tf.data,
  which the pipeline maps over whole batches (vectorized; no Python per example);
- ``layers()``: the inference-mode steps as Keras layers, which the serving model puts
  in front of a trained model (so predict, eval and every export preprocess exactly as
  the validation and test splits were).

Training batches are augmented; every other split (and serving) runs the layers in
inference mode, where a ``RandomCrop`` crops the centre and the other random layers
do nothing. Normalization is one ``Rescaling`` layer: ``x * rescale``, or per channel
``x * (1 / std) - mean / std`` with the training split's statistics (a ``Rescaling`` of
arrays becomes constants in every export format, where Keras's ``Normalization``
would give the ONNX converter extra graph inputs).
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from cnnctl.data.record import Normalization, StoredForm
from cnnctl.errors import RecipeError, did_you_mean, first_line
from cnnctl.model.arguments import instantiate
from cnnctl.recipe.calls import split_spec
from cnnctl.recipe.data_spec import DataSpec

# Image layers that need the labels too, which a recipe's augment list cannot give them.
REFUSED_AUGMENTATIONS = {
    "CutMix": "it mixes labels as well as images, which cnnctl's augment stage does not do yet",
    "MixUp": "it mixes labels as well as images, which cnnctl's augment stage does not do yet",
}
_NOT_AUGMENTATIONS = {*REFUSED_AUGMENTATIONS, "MaxNumBoundingBoxes"}  # the last needs bounding boxes
_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
_DRAWS = 1 << 12  # seeds a layer may draw for one batch before it would reach the next batch's


@functools.cache
def augmentation_classes() -> dict[str, type]:
    """Keras's image preprocessing layers (RandomFlip, RandomCrop, RandomRotation, ...), by name."""
    from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
        BaseImagePreprocessingLayer,
    )

    return {name: obj for name in dir(keras.layers) if isinstance(obj := getattr(keras.layers, name), type)
            and issubclass(obj, BaseImagePreprocessingLayer) and name not in _NOT_AUGMENTATIONS}


@dataclass
class Augmentation:
    """``data.augment`` as Keras layers: for training batches, and for the other splits (inference mode)."""

    training: list[keras.layers.Layer]
    inference: list[keras.layers.Layer]

    @property
    def names(self) -> list[str]:
        return [type(layer).__name__ for layer in self.training]


def augmentation_layers(spec: DataSpec, seed: int, value_range: tuple[float, float], shape: tuple) -> Augmentation:
    """The layers of ``data.augment``, each seeded from the recipe's seed unless it gives one.

    Layers that take ``value_range`` (colour changes) get the source's pixel range
    (0-255 for 8-bit images, 0-1 for digits) unless the recipe sets it, since
    augmentation runs before normalization. ``RandomCrop`` crops the centre of
    validation and test images (Keras 3.15's RandomCrop leaves them whole in
    inference mode), so every split has one shape. Every layer is tried on a
    batch of ``shape`` now, so a bad argument is reported here, located, rather
    than from inside tf.data.
    """
    classes = augmentation_classes()
    training, inference = [], []
    batch = tf.zeros((2, *shape), tf.float32)
    for i, layer_spec in enumerate(spec.augment):
        name, args = split_spec(layer_spec)
        path = ("augment", i)
        if name in REFUSED_AUGMENTATIONS:
            raise RecipeError(spec.problem(path, f"{name} cannot be used in data.augment: "
                                                 f"{REFUSED_AUGMENTATIONS[name]}"))
        cls = classes.get(name)
        if cls is None:
            hint = did_you_mean(name, classes)
            known = "" if hint else f"; choose one of {', '.join(sorted(classes))}"
            raise RecipeError(spec.problem(path, f"'{name}' is not a Keras image preprocessing layer{hint}{known}"))
        args = dict(args or {})
        if name == "RandomFlip" and args.get("mode", "horizontal_and_vertical") not in _FLIP_MODES:
            raise RecipeError(spec.problem((*path, name, "mode"), f"RandomFlip's mode is one of "
                                           f"{', '.join(_FLIP_MODES)}, got {args['mode']!r}"))
        accepted = inspect.signature(cls.__init__).parameters
        if "seed" in accepted:
            args.setdefault("seed", seed + i)
        if "value_range" in accepted:
            args.setdefault("value_range", list(value_range))
        layer = instantiate(cls, args, spec, (*path, name))
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
            raise RecipeError(spec.problem((*path, name), f"{name} fails on a batch of shape {list(batch.shape)}: "
                                                          f"{first_line(exc)}")) from None
        batch = tf.zeros_like(out)
        training.append(layer)
        inference.append(infer)
    return Augmentation(training, inference)


def normalization_kind(spec: DataSpec, stored_dtype: str) -> str:
    """The normalization ``data.normalize`` asks for; ``auto`` is rescale for 8-bit images, else none."""
    if spec.normalize == "auto":
        return "rescale" if stored_dtype == "uint8" else "none"
    return spec.normalize


def standardization(train: tf.data.Dataset) -> Normalization:
    """Per-channel mean and variance of the (un-augmented) training batches, by Keras's ``Normalization.adapt``."""
    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(train)
    mean, variance = (np.asarray(v).reshape(-1).tolist() for v in (layer.mean, layer.variance))
    return Normalization("standardize", mean=tuple(mean), variance=tuple(variance))


def normalization_layer(norm: Normalization) -> keras.layers.Rescaling | None:
    """The normalization as one ``Rescaling`` (see the module's docstring); None for ``none``."""
    if norm.kind == "rescale":
        return keras.layers.Rescaling(norm.rescale)
    if norm.kind == "standardize":
        mean = np.asarray(norm.mean, "float64")
        std = np.maximum(np.sqrt(np.asarray(norm.variance, "float64")), keras.backend.epsilon())
        return keras.layers.Rescaling(scale=(1.0 / std).astype("float32"), offset=(-mean / std).astype("float32"),
                                      name="standardize")
    return None


class Preprocessing:
    """What a batch of stored examples goes through before the model: augmentation, then normalization.

    ``Preprocessing.of(spec, seed, stored, normalization)`` builds (and checks) the
    layers; each instance has its own random layers, seeded from the recipe.
    """

    def __init__(self, augmentation: Augmentation, normalization: Normalization, stored: StoredForm, seed: int):
        self.augmentation, self.normalization, self.stored, self.seed = augmentation, normalization, stored, seed
        self._normalize = normalization_layer(normalization)

    @classmethod
    def of(cls, spec: DataSpec, seed: int, stored: StoredForm, normalization: Normalization) -> Preprocessing:
        augmentation = augmentation_layers(spec, seed, stored.value_range, tuple(stored.shape))
        return cls(augmentation, normalization, stored, seed)

    @property
    def augment(self) -> list[str]:
        """The augmentation layers' class names."""
        return self.augmentation.names

    def transform(self, *, training: bool):
        """``(x, y, key=None) -> (x', y)`` for a batch: float32, augmented (``training``) or in inference mode,
        normalized. ``key`` (epoch, step) makes a training batch's augmentation a function of the recipe's seed
        and that pair alone (``reseed``), whatever was augmented before."""
        layers = self.augmentation.training if training else self.augmentation.inference
        normalize, seed = self._normalize, self.seed

        def transform(x, y, key=None):
            x = tf.cast(x, tf.float32)
            if key is not None and training:
                reseed(layers, seed, *key)
            for layer in layers:
                x = layer(x, training=training)
            if normalize is not None:
                x = normalize(x)
            return x, y

        return transform

    def layers(self) -> list[keras.layers.Layer]:
        """The inference-mode steps as Keras layers, in order, leaving out the augmentation layers that change
        nothing there (Keras's random layers pass inputs through; a RandomCrop's centre crop stays), as found by
        running each on a random batch of the stored shape and range."""
        low, high = self.stored.value_range
        probe = tf.random.stateless_uniform((2, *self.stored.shape), seed=(1, 2), minval=low, maxval=high)
        layers = []
        for layer in self.augmentation.inference:
            out = layer(probe, training=False)
            if tuple(out.shape) != tuple(probe.shape) or not np.array_equal(out, probe):
                layers.append(layer)
            probe = out
        return layers + ([self._normalize] if self._normalize is not None else [])


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


def pixels_to_stored(pixels, stored: StoredForm):
    """8-bit pixel values (0-255, as image files decode) put on the scale the run's data was stored in (digits:
    0-1); unchanged when that is 0-255. Takes a NumPy array or a tensor."""
    low, high = stored.value_range
    if (low, high) == (0.0, 255.0):
        return pixels
    return low + pixels * ((high - low) / 255.0)
