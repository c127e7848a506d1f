"""``digits``: scikit-learn's bundled 8x8 digits, offline: the default source for demos and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnctl.data.sources.base import Examples, Source, array_examples
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec


def load_digits(spec: DataSpec, seed: int) -> Examples:
    """scikit-learn's bundled 8x8 digits (1,797 images, offline), pixels min-max scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype("float32")
    lo, hi = images.min(), images.max()  # 0 and 16
    x = ((images - lo) / (hi - lo))[..., None]
    return array_examples({"all": (x, bunch.target.astype("int32"))}, [str(c) for c in bunch.target_names],
                        "scikit-learn digits (8x8 grayscale, scaled to [0, 1])", value_range=(0.0, 1.0))


DIGITS = SOURCES.register(Source(name="digits", load=load_digits))
