"""Data sources: each returns the whole labelled data set as arrays, before splitting.

Only ``digits`` exists yet; image folders, npz, csv, TFRecord and keras.datasets
come next (they will stream through tf.data rather than load arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ArraySource:
    x: np.ndarray  # (N, H, W, C) float32
    y: np.ndarray  # (N,) int32 class indices
    class_names: list[str]


def load_digits() -> ArraySource:
    """scikit-learn's bundled 8x8 digits (1,797 images, offline), pixels min-max scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype("float32")
    lo, hi = images.min(), images.max()  # 0 and 16
    x = ((images - lo) / (hi - lo))[..., None]
    return ArraySource(x=x, y=bunch.target.astype("int32"), class_names=[str(c) for c in bunch.target_names])


SOURCES = {"digits": load_digits}
