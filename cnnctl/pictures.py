"""Pictures as cnnctl draws them (Pillow only): one font, and PNG files written whole.

The layer graph (``cnnctl.model.draw``), the confusion matrix
(``cnnctl.serving.confusion``) and the TensorBoard image grids
(``cnnctl.tensorboard.images``) draw with these.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np


@functools.lru_cache(maxsize=32)
def font(size: int):
    """Pillow's built-in font at ``size`` pixels (loaded once per size); the bitmap font without FreeType."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an HxW (grey) or HxWx3 (RGB) uint8 image as a PNG: a temporary name in the same folder, then a rename."""
    from PIL import Image

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(f, format="PNG")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
