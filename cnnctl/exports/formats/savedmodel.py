"""``savedmodel``: the serving model as a TensorFlow SavedModel folder, reloaded with ``tf.saved_model.load``.

Signature ``serving_default``: input ``inputs`` (float32, [batch, *stored shape]),
outputs ``output_0``, ``output_1``, ... in the order of the model's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnctl._tfimport import tf
from cnnctl.errors import CnnctlError
from cnnctl.exports.format import Artifact, Format
from cnnctl.registry import FORMATS

if TYPE_CHECKING:
    import keras

SIGNATURE = "serving_default"


def write_savedmodel(serving: keras.Model, path: Path, options=None, data=None) -> dict:
    """``serving`` as a SavedModel folder at ``path`` (Keras's ``tf_saved_model`` export)."""
    serving.export(str(path), format="tf_saved_model", verbose=False)
    return {}


def load_savedmodel(path: Path, *, unsafe: bool = False) -> Artifact:
    """The SavedModel at ``path``, called through its ``serving_default`` signature."""
    loaded = tf.saved_model.load(str(path))
    if SIGNATURE not in loaded.signatures:
        raise CnnctlError(f"the SavedModel at {path} has no '{SIGNATURE}' signature")
    serve = loaded.signatures[SIGNATURE]
    (input_name,) = serve.structured_input_signature[1].keys()
    outputs = sorted(serve.structured_outputs, key=output_index)

    def predict(x: np.ndarray) -> list[np.ndarray]:
        result = loaded.signatures[SIGNATURE](**{input_name: tf.constant(x)})  # keeps ``loaded`` alive
        return [result[name].numpy() for name in outputs]

    return Artifact(input_name, outputs, predict, f"tf.saved_model (tensorflow {tf.__version__})",
                    {"signature": SIGNATURE})


def output_index(name: str) -> int:
    """``output_10`` sorts after ``output_9``."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def is_savedmodel(path: Path) -> bool:
    return (path / "saved_model.pb").is_file()


SAVEDMODEL = FORMATS.register(Format(name="savedmodel", title="SavedModel", file_name="savedmodel", folder=True,
                                     write=write_savedmodel, load=load_savedmodel, recognizes=is_savedmodel))
