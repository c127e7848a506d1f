"""``onnx``: the serving model as an ONNX graph (Keras's exporter, through tf2onnx), run by ONNX Runtime.

An optional extra: ``pip install 'cnnctl[onnx]'`` (onnx, onnxruntime, tf2onnx).
Input ``inputs`` (float32, [batch, *stored shape]; the batch axis is named
``batch``), outputs ``output_0``, ... in the order of the model's outputs.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnctl.errors import CnnctlError, first_line
from cnnctl.exports.format import Artifact, Format
from cnnctl.registry import FORMATS

if TYPE_CHECKING:
    import keras

    from cnnctl.data.pipeline import Datasets


def write_onnx(serving: keras.Model, path: Path, options, data: Datasets) -> dict:
    """Convert ``serving`` to ONNX at ``path``; name its outputs ``output_i`` and its batch axis ``batch``."""
    ONNX.require()
    import onnx

    example = data.sample("train", 1, raw=True)[0].astype("float32")
    serving(example[:1], training=False)  # Keras's ONNX exporter refuses a model never called
    tf2onnx_log = logging.getLogger("tf2onnx")
    level = tf2onnx_log.level
    tf2onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's numpy-2 shims warn about np.object and friends
            serving.export(str(path), format="onnx", verbose=False)
    except Exception as exc:  # an op tf2onnx cannot convert
        raise CnnctlError(f"ONNX conversion failed: {first_line(exc)}") from None
    finally:
        tf2onnx_log.setLevel(level)
    graph = onnx.load(str(path))
    constants = {init.name for init in graph.graph.initializer}
    for value in [v for v in graph.graph.input if v.name in constants]:  # e.g. Normalization's mean and variance:
        graph.graph.input.remove(value)  # constants, not inputs a caller must (or may) feed
    _rename_outputs(graph.graph, [f"output_{i}" for i in range(len(graph.graph.output))])
    for value in [*graph.graph.input, *graph.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return {"opset": max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))}


def _rename_outputs(graph, names: list[str]) -> None:
    renamed = {out.name: name for out, name in zip(graph.output, names, strict=True)}
    for node in graph.node:
        node.output[:] = [renamed.get(n, n) for n in node.output]
        node.input[:] = [renamed.get(n, n) for n in node.input]
    for out in graph.output:
        out.name = renamed[out.name]


def load_onnx(path: Path, *, unsafe: bool = False) -> Artifact:
    """The ONNX file at ``path`` in an ONNX Runtime CPU session."""
    ONNX.require()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    outputs = [o.name for o in session.get_outputs()]

    def predict(x: np.ndarray) -> list[np.ndarray]:
        return session.run(outputs, {given.name: x})

    return Artifact(given.name, outputs, predict, f"onnxruntime {onnxruntime.__version__}")


def is_onnx(path: Path) -> bool:
    """A protobuf that parses as an ONNX model with a graph."""
    try:
        import onnx

        return len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    except Exception:  # not protobuf, or not ONNX (or the extra is missing)
        return False


ONNX = FORMATS.register(Format(name="onnx", title="ONNX", file_name="model.onnx", write=write_onnx, load=load_onnx,
                               recognizes=is_onnx, extra="onnx", packages=("onnx", "onnxruntime", "tf2onnx"),
                               float32_only=True))
