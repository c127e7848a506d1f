"""What a path the user gave holds, judged by its first bytes, and why it is not what a command wanted.

Plain Python, no TensorFlow: the run finder, the model loader and predict tell a
recipe, an image, an HDF5 model or a truncated archive apart with it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

# what the image sources and predict read: what tf.io.decode_image decodes (TIFF it does not)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def describe_file(path: Path) -> str:
    """What the file at ``path`` holds, by its first bytes: "a zip archive", "a legacy HDF5 file", "a PNG image", ..."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "empty"
    if head.startswith(HDF5_MAGIC):
        return "a legacy HDF5 file"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "a zip archive" if zipfile.is_zipfile(path) else "a truncated zip archive"
    for magic, image in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                         (b"BM", "a BMP image"), (b"\x93NUMPY", "a NumPy array (.npy)")):
        if head.startswith(magic):
            return image
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "a TIFF image"
    if b"\0" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
                return "binary data"
        return "text"
    return "binary data"


def names_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` as the user wrote it names a folder: it ends with a slash (``Path`` would drop it)."""
    return os.fspath(path).endswith(("/", os.sep))


def not_a_model(path: Path, kind: str) -> str:
    """Why the file at ``path``, which holds ``kind`` (``describe_file``), is not a model cnnctl loads."""
    suffix = path.suffix.lower()
    if kind == "a legacy HDF5 file" or suffix in (".h5", ".hdf5"):
        return (f"{path} is a legacy HDF5 Keras model; cnnctl does not load them: Keras's safe mode does not apply "
                "to HDF5 files (CVE-2025-9905), so loading one could run code stored in it. If you trust it, convert "
                f"it once in Python, keras.saving.load_model('{path}').save('model.keras'), and give the .keras file")
    if kind == "a truncated zip archive":
        return (f"{path} is a truncated .keras archive (its end is missing: an interrupted copy or download?); "
                "copy or save it again")
    if kind == "empty":
        return f"{path} is empty, not a Keras model (an interrupted copy or save?); copy or save it again"
    if suffix in (".yaml", ".yml"):
        return (f"{path} is a recipe, not a model; train it first (cnnctl train {path}) and give the run directory "
                "it prints, or `latest`")
    if kind.endswith(" image"):
        return (f"{path} is {kind}, not a model; give the model first, then the images: "
                "cnnctl predict RUN|MODEL IMAGE...")
    if kind == "a zip archive":
        return f"{path} is a zip archive; a Keras model is a .keras file: rename it if it is one"
    return (f"{path} is {kind}, not a Keras model; give a run directory (runs/NAME/STAMP), `latest`, "
            "or a .keras file")
