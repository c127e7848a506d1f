"""Pictures as cnnctl draws them (Pillow only): one font, and PNG files written whole.

The layer graph (``cnnctl.model.draw``), the confusion matrix
(``cnnctl.serving.confusion``) and the TensorBoard image grids
(``cnnctl.tensorboard.images``) draw with these.
"""

from __future__ import annotations

import functools
import os
import secrets
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
    """Write an HxW (grey) or HxWx3 (RGB) uint8 image as a PNG, whole (``write_atomic``)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return write_atomic(Path(path), buffer.getvalue())


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file of its own in the same folder, fsync it, then rename it over ``path``:
    a reader never sees half a picture, and two writers never share a temporary file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
