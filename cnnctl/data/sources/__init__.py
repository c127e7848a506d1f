"""Data sources: where a recipe's examples come from, one file per source, registered by name.

Each module here declares one ``Source`` (its name, the ``data:`` keys it reads, the
ones it needs, and its loader) and registers it in ``cnnctl.registry.SOURCES``;
importing this package registers the built-in ones, in the order messages list them.
A source of your own is one more such file (or a ``SOURCES.register`` call anywhere
before the recipe is loaded)::

    from cnnctl.data.sources import Examples, Source, array_examples
    from cnnctl.registry import SOURCES

    def load_ramp(spec, seed):
        x = np.linspace(0, 1, spec.count, dtype="float32").reshape(-1, 1)
        return array_examples({"all": (x, (x[:, 0] > 0.5).astype("int32"))}, ["low", "high"], "a ramp")

    SOURCES.register(Source(name="ramp", keys=("count",), load=load_ramp))

Nothing here imports TensorFlow until a loader runs, so the recipe stage validates
``data.source`` and its keys against these declarations before anything heavy loads.
Imports only base modules: ``cnnctl.errors``, ``cnnctl.filekinds``, ``cnnctl.registry`` and ``cnnctl._tfimport``
(the lazy ``tf`` and ``keras``); the recipe's ``DataSpec`` is named in type hints only.
"""

import importlib

from cnnctl.data.sources.base import DataError, Examples, Part, Source, array_examples

BUILTINS = ("digits", "keras_datasets", "image_dir", "npz", "csv_file", "tfrecord", "synthetic", "tfds")
# imported (so registered, so listed in messages) in this order

for _module in BUILTINS:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["DataError", "Examples", "Part", "Source", "array_examples"]
