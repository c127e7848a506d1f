"""The serving model as a ``.keras`` file, reloaded with ``keras.saving.load_model(safe_mode=True)``.

The model is named ``<model>_serving``, so ``cnnctl predict`` and ``cnnctl eval``
know it takes examples as stored and needs no preprocessing of theirs.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from cnnctl.export.check import Artifact


def write_keras(serving: keras.Model, path: Path) -> None:
    """``serving`` saved at ``path`` (which ends in ``.keras``)."""
    serving.save(path)


def load_keras(path: Path) -> Artifact:
    """The ``.keras`` file at ``path``, loaded in safe mode and called as ``model(x)``."""
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    outputs = [f"output_{i}" for i in range(len(model.outputs))]

    def predict(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in keras.tree.flatten(model(x))]  # as a user calls it: no ``training``

    return Artifact(model.inputs[0].name, outputs, predict, f"keras {keras.__version__} (safe_mode)",
                    {"model_name": model.name})
