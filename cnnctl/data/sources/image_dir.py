"""``image_dir``: a folder of class sub-folders, or of train/ validation/ test/ folders that each hold them.

Only file names are read up front; pixels are decoded per epoch by tf.data, in
parallel (or once, with ``data.cache``). Files that are not images, or that end
where no image ends, are found before training starts (``cnnctl.data.sources.images``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import tf
from cnnctl.data.sources.base import DataError, Examples, Part, Source, autotune, shuffled, split_paths
from cnnctl.data.sources.images import CHANNELS, decoder, looks, report_bad, undecodable
from cnnctl.filekinds import IMAGE_EXTENSIONS
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec

SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("validation", "val", "valid"), "test": ("test",)}


def load_image_dir(spec: DataSpec, seed: int) -> Examples:
    """A folder of class sub-folders, or of train/ validation/ test/ folders that each hold them."""
    roots = _split_roots(spec)
    listed = {split: _list_images(root) for split, root in roots.items()}
    names = spec.class_names or sorted({c for files in listed.values() for c in files})
    unknown = sorted({c for files in listed.values() for c in files} - set(names))
    if unknown:
        raise DataError(("class_names",), f"folder '{unknown[0]}' is not one of data.class_names "
                                          f"({', '.join(names)}); add it, or move the folder away")
    decode = decoder(spec.image_size, spec.color_mode, spec.interpolation)
    found = {split: [(path, i) for i, name in enumerate(names) for path in files.get(name, [])]
             for split, files in listed.items()}
    kinds = {path: looks(path) for files in found.values() for path, _ in files}
    bad = [path for path, look in kinds.items() if look == "bad"]
    if spec.on_error == "skip":  # every file decoded once, so that sizes and class counts are exact
        bad += undecodable(np.array([p for p, look in kinds.items() if look != "bad"], str), decode)
    else:  # a file that ends where no image ends (cut short by a copy?) is decoded now: failing mid-epoch costs more
        bad += undecodable(np.array([p for p, look in kinds.items() if look == "suspect"], str), decode)
    report_bad(bad, spec.on_error)
    parts, total, dropped = {}, 0, set(bad)
    for split, files in found.items():
        paths = [path for path, _ in files if path not in dropped]
        labels = [label for path, label in files if path not in dropped]
        if not paths:
            raise DataError(("path",), f"{roots[split]} has no images ({', '.join(IMAGE_EXTENSIONS)}) in class "
                                       "sub-folders; put each class's images in a folder named after it")
        parts[split] = file_part(np.array(paths), np.array(labels, "int32"), decode)
        total += len(paths)
    every_file = np.concatenate([part.keys for part in parts.values()])
    shape = (*spec.image_size, CHANNELS[spec.color_mode])
    split_note = f", split folders {', '.join(s for s in roots if s != 'all')}" if "all" not in roots else ""
    return Examples(parts=parts, class_names=names, element_shape=shape, dtype="uint8", value_range=(0.0, 255.0),
                  description=f"image_dir {spec.path} ({total} images, {len(names)} classes{split_note})",
                  verify=None if spec.on_error == "skip" else lambda: undecodable(every_file, decode))


def _split_roots(spec: DataSpec) -> dict[str, str]:
    paths = split_paths(spec)
    if "all" not in paths:
        for split, folder in paths.items():
            if not os.path.isdir(folder):
                raise DataError(("path", split), f"{folder} is not a folder; image_dir reads folders of class "
                                                 "sub-folders")
        return paths
    root = paths["all"]
    if not os.path.isdir(root):
        raise DataError(("path",), f"{root} is not a folder; image_dir reads a folder of class sub-folders")
    found = {}
    for split, folder_names in SPLIT_FOLDERS.items():
        for folder in folder_names:
            if os.path.isdir(os.path.join(root, folder)):
                found[split] = os.path.join(root, folder)
                break
    if found and "train" not in found:
        raise DataError(("path",), f"{root} has {', '.join(found)} folders but no train/ folder")
    return found or {"all": root}


def _list_images(root: str) -> dict[str, list[str]]:
    """{class folder name: sorted image paths}, searching each class folder recursively."""
    out = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        files = []
        for folder, dirs, names in os.walk(entry.path, followlinks=True):
            dirs.sort()
            files += [os.path.join(folder, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
        out[entry.name] = files
    return out


def file_part(paths: np.ndarray, labels: np.ndarray, decode) -> Part:
    def make(indices: np.ndarray, shuffle_seed=None, skip=0) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices((paths[indices], labels[indices]))
        ds = shuffled(ds, len(indices), shuffle_seed, skip)  # names, not decoded images: a full shuffle costs nothing
        return ds.map(lambda path, y: (decode(tf.io.read_file(path)), y), num_parallel_calls=autotune())

    return Part(labels=labels, make=make, keys=paths)




IMAGE_DIR = SOURCES.register(Source(
    name="image_dir", keys=("path", "image_size", "color_mode", "interpolation", "on_error", "class_names"),
    required=("path",), load=load_image_dir))
