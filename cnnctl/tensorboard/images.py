"""The images cnnctl writes to TensorBoard besides Keras's: training inputs, conv filters, and the grids they go in."""

from __future__ import annotations

import contextlib
import io
import math

import keras
import numpy as np

from cnnctl.data.pipeline import Datasets
from cnnctl.data.preprocess import Preprocessing
from cnnctl.data.record import image_shaped
from cnnctl.pictures import font
from cnnctl.recipe.data_spec import DataSpec

MAX_FILTERS = 256  # kernels shown; a wider first layer shows its first 256


def input_sample(data: Datasets, spec: DataSpec, seed: int, count: int):
    """(raw examples, labels, transform): the first ``count`` training examples as stored, and a transform that
    augments and normalizes them as training does, with its own seeded copy of the preprocessing layers (so
    drawing the grid never takes random draws from the training pipeline). None when inputs are not images."""
    if not shows_images(data.element_shape) or "train" not in data.raw:
        return None
    x, y = data.sample("train", count, raw=True)
    with contextlib.redirect_stderr(io.StringIO()):  # its warnings were printed when the data was built
        preprocessing = Preprocessing.of(spec, seed, data.stored, data.preprocessing.normalization)
    transform = preprocessing.transform(training=True)
    return x, y, lambda batch: np.asarray(transform(batch, None)[0])


def shows_images(shape) -> bool:
    """Are inputs of this shape (one example) drawn as images? Only H x W x C with 1, 3 or 4 channels."""
    return image_shaped(shape)


def display(x: np.ndarray) -> np.ndarray:
    """Images (n, h, w, c), each min-max scaled to 0..1 on its own; RGBA -> RGB."""
    x = np.asarray(x, np.float32)[..., :3]
    low = x.min(axis=(1, 2, 3), keepdims=True)
    span = x.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (x - low) / np.where(span > 0, span, 1), 0.5)


def first_conv(model: keras.Model) -> keras.layers.Layer | None:
    """The first Conv2D, DepthwiseConv2D, SeparableConv2D or Conv1D layer, nested models included."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Conv1D)
    for layer in model.layers:
        if isinstance(layer, kinds):
            return layer
        if getattr(layer, "layers", None):
            found = first_conv(layer)
            if found is not None:
                return found
    return None


def filter_tiles(layer: keras.layers.Layer) -> np.ndarray:
    """One tile per output filter (n, h, w, 1 or 3), each min-max scaled to 0..1.

    Conv2D: 1 or 3 input channels as grey or RGB, more averaged. DepthwiseConv2D and
    SeparableConv2D: each depthwise kernel in grey. Conv1D: each filter as a grey
    (input channels x kernel size) map.
    """
    if isinstance(layer, keras.layers.SeparableConv2D):
        kernel = keras.ops.convert_to_numpy(layer.depthwise_kernel)
    else:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
    kernel = kernel.astype(np.float32)
    if isinstance(layer, keras.layers.Conv1D):  # (k, in, out) -> (out, in, k, 1)
        tiles = np.transpose(kernel, (2, 1, 0))[..., None]
    elif isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):  # (kh, kw, in, m)
        kh, kw = kernel.shape[:2]
        tiles = np.transpose(kernel.reshape(kh, kw, -1), (2, 0, 1))[..., None]
    else:  # (kh, kw, in, out) -> (out, kh, kw, in)
        tiles = np.transpose(kernel, (3, 0, 1, 2))
        if tiles.shape[-1] not in (1, 3):
            tiles = tiles.mean(axis=-1, keepdims=True)
    return display(tiles[:MAX_FILTERS])


def tile_grid(tiles: np.ndarray, captions: list[str] | None = None, *, min_side: int = 64,
              max_side: int = 160, pad: int = 2) -> np.ndarray:
    """Tiles (n, h, w, c) in 0..1 -> one uint8 RGB grid image, about square: tiles enlarged a whole number of
    times (nearest) to at least ``min_side`` pixels or shrunk to at most ``max_side``, an optional caption under
    each, ``pad`` white pixels between them."""
    from PIL import Image, ImageDraw

    n, h, w = tiles.shape[:3]
    side = max(h, w)
    scale = math.ceil(min_side / side) if side < min_side else min(max_side / side, 1.0)  # whole pixels up
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    caption_px = 14 if captions else 0
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = Image.new("RGB", (columns * (tw + pad) + pad, rows * (th + caption_px + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    caption_font = font(10)
    for k in range(n):
        pixels = np.rint(tiles[k] * 255).astype(np.uint8)
        tile = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
        tile = tile.resize((tw, th), Image.NEAREST if scale >= 1 else Image.BILINEAR)
        left = pad + (k % columns) * (tw + pad)
        top = pad + (k // columns) * (th + caption_px + pad)
        grid.paste(tile, (left, top))
        if captions:
            text = captions[k] if len(captions[k]) <= tw // 6 else captions[k][: max(1, tw // 6 - 1)] + "…"
            draw.text((left + tw / 2, top + th + 1), text, fill=(0, 0, 0), font=caption_font, anchor="ma")
    return np.asarray(grid, dtype=np.uint8)
