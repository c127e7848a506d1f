"""The ``keras:NAME`` source: ``keras.datasets`` (mnist, fashion_mnist, cifar10, cifar100).

Keras downloads each once into KERAS_HOME/datasets and reads it from there; an
interrupted download (a cached file cut short) and having no connection are each
one clear message.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from cnnctl._tfimport import keras
from cnnctl.data.sources.base import Examples, Source, array_examples
from cnnctl.errors import UserError, first_line
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")

KERAS_CLASS_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


# What keras.datasets.NAME keeps under KERAS_HOME/datasets (the names keras.utils.get_file gives them).
KERAS_CACHE_FILES = {
    "mnist": ["mnist.npz"],
    "fashion_mnist": [f"fashion-mnist/{part}-{kind}-idx{rank}-ubyte.gz" for part in ("train", "t10k")
                      for kind, rank in (("labels", 1), ("images", 3))],
    "cifar10": ["cifar-10-batches-py-target_archive"],
    "cifar100": ["cifar-100-python-target_archive"],
}


def load_keras(spec: DataSpec, seed: int) -> Examples:
    """keras.datasets.NAME: downloaded once into KERAS_HOME/datasets (~/.keras/datasets), then read from there.

    A cached file cut short (an interrupted download) is found: Keras checks the
    checksum of some and downloads them again (a failure then says so); a damaged
    file it does not check is deleted, and the message says which.
    """
    name = spec.source.split(":", 1)[1]
    cache = keras_cache()
    expected = [os.path.join(cache, f) for f in KERAS_CACHE_FILES.get(name, [])]
    cached = [path for path in expected if os.path.exists(path)]
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data from ..." on stdout
            (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as exc:  # keras raises a bare Exception on a failed download
        raise UserError(_keras_failure(name, first_line(exc), cache, expected, cached)) from None
    if x_train.ndim == 3:  # mnist, fashion_mnist: (N, 28, 28) grayscale
        x_train, x_test = x_train[..., None], x_test[..., None]
    y_train, y_test = y_train.reshape(-1).astype("int32"), y_test.reshape(-1).astype("int32")
    classes = int(max(y_train.max(), y_test.max())) + 1
    names = KERAS_CLASS_NAMES.get(name, [str(i) for i in range(classes)])
    return array_examples({"train": (x_train, y_train), "test": (x_test, y_test)}, names,
                          f"keras.datasets.{name} ({x_train.shape[1]}x{x_train.shape[2]}, uint8)")


def keras_cache() -> str:
    """The folder keras.datasets downloads into: KERAS_HOME/datasets, or /tmp/.keras/datasets if it is read-only."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    if not os.access(home, os.W_OK):  # as keras.utils.get_file falls back
        home = os.path.join("/tmp", ".keras")
    return os.path.join(home, "datasets")


def _keras_failure(name: str, reason: str, cache: str, expected: list[str], cached: list[str]) -> str:
    """Why keras:NAME could not be loaded: a damaged cached file (deleted, and named), or no connection."""
    gone = [path for path in cached if not os.path.exists(path)]
    if gone:  # Keras deletes a cached file whose checksum is wrong, and a download that fails
        return (f"could not load keras:{name}: the cached file {gone[0]} was incomplete or damaged (an interrupted "
                f"download?): its checksum did not match, so Keras deleted it and downloaded it again, which failed: "
                f"{reason}. Run again with a connection to download it anew")
    damaged = [path for path in cached if _damaged(path)]
    for path in damaged:
        os.remove(path)
    files = ", ".join(damaged)
    if damaged and len(cached) == len(expected):  # nothing was downloaded: reading the damaged file failed
        return (f"could not load keras:{name}: the cached file {files} is damaged ({reason}: an interrupted "
                "download?); cnnctl deleted it. Run again with a connection to download it anew")
    return (f"could not load keras:{name}: {reason}. Keras downloads it once into {cache} and reads it from there "
            "afterwards; without a connection, save the images as a folder of class sub-folders and use "
            "`source: image_dir`, or as arrays with `source: npz`"
            + (f". The cached file {files} was damaged too; cnnctl deleted it" if damaged else ""))


def _damaged(path: str) -> bool:
    """Does the cached file fail to decompress to its end (a .gz, .npz or tar archive cut short)?"""
    import gzip
    import tarfile
    import zipfile

    try:
        if path.endswith(".gz"):
            with gzip.open(path) as handle:
                while handle.read(1 << 20):
                    pass
        elif path.endswith(".npz"):
            with zipfile.ZipFile(path) as archive:
                return archive.testzip() is not None
        else:  # the cifar downloads: tar.gz archives
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile():
                        archive.extractfile(member).read()
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError):
        return True
    return False


KERAS = SOURCES.register(Source(name="keras", variants=KERAS_DATASETS, variants_of="keras.datasets",
                                load=load_keras))
