"""``keras``: the serving model as a ``.keras`` file, reloaded as cnnctl loads every model (vetted, then in safe mode).

The model is named ``<model>_serving``, so ``cnnctl predict`` and ``cnnctl eval``
know it takes examples as stored and needs no preprocessing of theirs.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import keras
from cnnctl.exports.format import Artifact, Format
from cnnctl.registry import FORMATS

if TYPE_CHECKING:
    import keras as keras_module


def write_keras(serving: keras_module.Model, path: Path, options=None, data=None) -> dict:
    """``serving`` saved at ``path`` (which ends in ``.keras``)."""
    serving.save(path)
    return {}


def load_keras(path: Path, *, unsafe: bool = False) -> Artifact:
    """The ``.keras`` file at ``path``, loaded as cnnctl loads every model (vetted, in safe mode), called as
    ``model(x)``. ``unsafe``: the export of a model loaded with ``--unsafe`` (a Lambda layer) needs it too."""
    from cnnctl.model.saved import load_keras_model

    model = load_keras_model(path, unsafe=unsafe, warn=False)  # the user was warned when the run's model loaded
    outputs = [f"output_{i}" for i in range(len(model.outputs))]

    def predict(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in keras.tree.flatten(model(x))]  # as a user calls it: no ``training``

    mode = "safe_mode off: --unsafe" if unsafe else "safe_mode"
    return Artifact(model.inputs[0].name, outputs, predict, f"keras {keras.__version__} ({mode})",
                    {"model_name": model.name})


def is_keras_file(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


KERAS = FORMATS.register(Format(name="keras", title="Keras", file_name="serving.keras", suffix=".keras",
                                write=write_keras,
                                load=load_keras, recognizes=is_keras_file))
