"""``npz``: arrays in NumPy .npz files, x and y (or x_train, y_train, x_test, y_test as keras.datasets stores them).

No pickled objects are read (``allow_pickle=False``): a data file runs no code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnctl.data.sources.base import DataError, Examples, Source, array_examples, encode_labels, reshaped, split_paths
from cnnctl.errors import UserError, did_you_mean, first_line
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec


def load_npz(spec: DataSpec, seed: int) -> Examples:
    """Arrays in NumPy .npz files: x and y (or x_train/y_train/x_test/y_test, as keras.datasets stores them)."""
    x_key, y_key = spec.x or "x", spec.y or "y"
    if isinstance(x_key, list):
        raise DataError(("x",), f"an npz source reads one array as x, got {x_key}")
    parts = {}
    for split, path in split_paths(spec).items():
        with _open_npz(path) as arrays:  # no pickled objects: a data file runs no code
            keys = list(arrays.keys())
            if split == "all" and f"{x_key}_train" in keys and x_key not in keys:
                for stored in ("train", "validation", "test"):
                    if f"{x_key}_{stored}" in keys:
                        parts[stored] = (_npz_array(arrays, f"{x_key}_{stored}", path, "x"),
                                         _npz_array(arrays, f"{y_key}_{stored}", path, "y"))
                continue
            parts[split] = (_npz_array(arrays, x_key, path, "x"), _npz_array(arrays, y_key, path, "y"))
    parts = {split: (reshaped(x, spec, split), y) for split, (x, y) in parts.items()}
    labels, names = encode_labels({split: y for split, (_, y) in parts.items()}, spec)
    sizes = ", ".join(f"{split}: {len(y)}" for split, y in labels.items())
    return array_examples({split: (x, labels[split]) for split, (x, _) in parts.items()}, names,
                        f"npz {spec.path} ({sizes})")


def _open_npz(path: str):
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:  # not a NumPy file, or a truncated one
        raise UserError(f"{path} cannot be read as an .npz file: {first_line(exc)}") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise UserError(f"{path} holds a single array (.npy); an npz source reads x and y from an .npz "
                        "(np.savez(path, x=..., y=...))")
    return arrays


def _npz_array(arrays, key: str, path: str, which: str) -> np.ndarray:
    if key not in arrays:
        raise DataError((which,), f"{path} has no array '{key}'{did_you_mean(key, list(arrays.keys()))}; it has "
                        f"{', '.join(arrays.keys())} (name them with data.x and data.y)")
    return arrays[key]


NPZ = SOURCES.register(Source(name="npz", keys=("path", "x", "y", "reshape", "class_names"), required=("path",),
                              load=load_npz))
