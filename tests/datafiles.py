"""Data files a test writes itself, in every format cnnctl reads, from real images (scikit-learn digits).

The digits are scaled to 0..255 and, for image files, enlarged, so a model
trained on any of these files can learn something (and a broken loader shows).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def digits(count: int | None = None, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 [N, 8, 8], y int) of the first ``count`` digits whose class is below ``classes``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = bunch.target < classes
    x = np.round(bunch.images[keep] * 255 / 16).astype("uint8")
    y = bunch.target[keep]
    return (x[:count], y[:count]) if count else (x, y)


def write_image_dir(root: Path, count: int = 200, classes: int = 3, *, splits: dict[str, float] | None = None,
                    size: int = 16, formats: tuple[str, ...] = ("png", "jpg"), mode: str = "L") -> Path:
    """root/[split/]class_name/NNNN.ext images; ``splits`` maps folder names to shares of the images."""
    x, y = digits(count, classes)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    order = np.arange(len(x))
    folders = {"": order} if not splits else {}
    if splits:
        start = 0
        for folder, share in splits.items():
            end = start + round(share * len(x))
            folders[folder] = order[start:end]
            start = end
    for folder, indices in folders.items():
        for i in indices:
            target = root / folder / names[y[i]]
            target.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(x[i], mode="L").resize((size, size), Image.NEAREST).convert(mode)
            image.save(target / f"{i:04d}.{formats[i % len(formats)]}")
    return root


def write_npz(path: Path, count: int = 300, classes: int = 10, **keys) -> Path:
    x, y = digits(count, classes)
    arrays = {"x": x[..., None], "y": y} if not keys else {k: v(x, y) for k, v in keys.items()}
    np.savez(path, **arrays)
    return path


def write_csv(path: Path, count: int = 300, classes: int = 10, *, names: list[str] | None = None) -> Path:
    """One row per digit: pixel columns p0..p63 and a label column (class names if ``names``)."""
    x, y = digits(count, classes)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"p{i}" for i in range(64)), "label"])
        for image, label in zip(x, y, strict=True):
            writer.writerow([*image.reshape(-1).tolist(), names[label] if names else int(label)])
    return path


def write_tfrecord(path: Path, count: int = 300, classes: int = 10, *, encoded: bool = True,
                   gzip: bool = True) -> Path:
    """tf.train.Examples with 'image' (PNG bytes, or 64 floats in [0, 1]) and 'label' (int64)."""
    import io

    import tensorflow as tf

    x, y = digits(count, classes)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for image, label in zip(x, y, strict=True):
            if encoded:
                buffer = io.BytesIO()
                Image.fromarray(image, mode="L").save(buffer, format="PNG")
                feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()]))
            else:
                feature = tf.train.Feature(float_list=tf.train.FloatList(value=(image / 255.0).reshape(-1)))
            label_feature = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
            example = tf.train.Example(features=tf.train.Features(feature={"image": feature, "label": label_feature}))
            writer.write(example.SerializeToString())
    return path


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Save uint8 pixels ([H, W] grayscale, [H, W, 3] RGB, [H, W, 4] RGBA) in the format of the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, "uint8")).save(path)
    return path


def read_pixels(path: Path) -> np.ndarray:
    """The grayscale uint8 pixels [H, W] of an image file, as PIL decodes them (the reference for a decoder)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def write_class_folders(root: Path, counts: dict[str, int], size: int = 8, ext: str = "png") -> Path:
    """root/NAME/NNNN.ext with counts[NAME] images of one digit each (the i-th name gets digit i): any balance."""
    x, y = digits(classes=len(counts))
    for digit, (name, count) in enumerate(counts.items()):
        images = x[y == digit]
        assert count <= len(images), f"only {len(images)} images of digit {digit}"
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(images[i], mode="L").resize((size, size), Image.NEAREST).save(folder / f"{i:04d}.{ext}")
    return root
