"""Images as the image sources read them: decoding (any channels -> the recipe's), and the files that fail to decode.

``decoder(image_size, color_mode, interpolation)`` turns the bytes of a JPEG, PNG, BMP, GIF or WebP into uint8 pixels of
``data.image_size`` and ``data.color_mode``: the image_dir, tfrecord and tfds sources
and ``cnnctl predict`` all decode with it. A file that fails to decode is found
cheaply where possible (its first and last bytes), and otherwise by one parallel
decoding pass that runs only when reading failed; ``BadFiles`` names them.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import tf
from cnnctl.data.sources.base import autotune
from cnnctl.errors import UserError

if TYPE_CHECKING:
    pass

CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
COLOR_MODES = {count: mode for mode, count in CHANNELS.items()}  # 1 -> grayscale, 3 -> rgb, 4 -> rgba
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
_TAIL = 4096  # bytes read at the end of each image file: where its format's end marker should be
_SHOWN = 5  # bad files listed by name



def decoder(image_size: list[int], color_mode: str, interpolation: str = "bilinear"):
    """bytes of a JPEG/PNG/BMP/GIF/WebP -> uint8 [height, width, channels] resized to ``image_size`` (a recipe's
    ``data.image_size``, ``data.color_mode`` and ``data.interpolation``).

    Files are decoded with the channels they have (TensorFlow refuses, e.g., a
    grayscale decode of a GIF), then converted to ``color_mode``.
    """
    channels, size = CHANNELS[color_mode], list(image_size)

    def decode(data):
        image = tf.io.decode_image(data, channels=0, expand_animations=False)  # a GIF gives its first frame
        image = with_channels(tf.cast(image, tf.float32), channels)
        image = tf.image.resize(image, size, method=interpolation)
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


def undecodable(paths: np.ndarray, decode) -> list[str]:
    """The files that fail to decode (truncated or corrupt past their header): one parallel decoding pass."""
    def attempt(index, path):  # the index depends on the pixels, so the decoding cannot be optimized away
        pixels = decode(tf.io.read_file(path))
        return index * tf.cast(tf.reduce_min(tf.cast(pixels, tf.int32)) >= 0, tf.int64)

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    ds = ds.map(attempt, num_parallel_calls=autotune()).ignore_errors()
    decoded = np.zeros(len(paths), bool)
    for batch in ds.batch(4096).as_numpy_iterator():
        decoded[batch] = True
    return [str(p) for p in paths[~decoded]]


def looks(path: str) -> str:
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


def tf_message(exc: Exception) -> str:
    """TensorFlow's error message without its graph-function and op annotations."""
    text = re.sub(r"\{\{[^}]*\}\}", "", exc.message.splitlines()[0])
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip(" .;") or type(exc).__name__
