"""``tflite``: the serving model as a TFLite (LiteRT) flatbuffer, float or quantized, run by the TFLite interpreter.

Converted from the serving model's SavedModel with ``tf.lite.TFLiteConverter``;
its signature ``serving_default`` keeps the names: input ``inputs``, outputs
``output_0``, ... Input and outputs stay float32 whatever the quantization
(``{tflite: {quantize: ...}}`` in a recipe, ``--quantize`` on the command line):

- ``dynamic``: weights stored as int8, activations computed in float;
- ``float16``: weights stored as float16;
- ``int8``: weights and activations int8, their ranges calibrated on training
  examples as stored; an op without an int8 kernel stays float.

A quantized export cannot match Keras elementwise: it must predict the same class
on a share of the examples and lose at most so much accuracy (``QUANTIZED``).
Only TFLite's built-in ops are used: a model that would need TensorFlow ops
(Flex) fails to convert, since neither LiteRT nor TensorFlow's own interpreter
runs them without a custom build.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from cnnctl._tfimport import native_log_path, native_stderr, tf
from cnnctl.errors import CnnctlError, first_line
from cnnctl.exports.format import Artifact, Format, Tolerance, float_tolerance
from cnnctl.recipe.export_spec import ExportOptions
from cnnctl.registry import FORMATS

if TYPE_CHECKING:
    import keras

    from cnnctl.data.pipeline import Datasets

SIGNATURE = "serving_default"
REPRESENTATIVE_EXAMPLES = 200  # training examples int8 quantization calibrates on
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
QUANTIZED = {  # by the class they predict; measured figures: docs/export.md
    "dynamic": Tolerance(agreement=0.97, accuracy_drop=0.02),
    "float16": Tolerance(agreement=0.99, accuracy_drop=0.01),
    "int8": Tolerance(agreement=0.95, accuracy_drop=0.03),
}


class TfliteOptions(ExportOptions):
    """How a TFLite flatbuffer is quantized."""

    EXAMPLE: ClassVar[str] = "{quantize: int8}"

    quantize: Literal[QUANTIZATIONS] = "none"
    """none (float32), dynamic (int8 weights), float16 (float16 weights) or int8 (weights and activations, calibrated on training examples)."""  # noqa: E501

    @property
    def variant(self) -> str | None:
        return None if self.quantize == "none" else self.quantize


def tolerance(options: TfliteOptions, mixed: str | None) -> Tolerance:
    return QUANTIZED[options.quantize] if options.quantize != "none" else float_tolerance(options, mixed)


def write_tflite(serving: keras.Model, path: Path, options: TfliteOptions, data: Datasets) -> dict:
    """Convert ``serving`` (quantized as ``options`` say; int8 calibrated on training examples) and write it."""
    quantize = options.quantize if options.quantize != "none" else None
    calibration = data.sample("train", REPRESENTATIVE_EXAMPLES, raw=True)[0].astype("float32") \
        if quantize == "int8" else None
    with tempfile.TemporaryDirectory(prefix="cnnctl-tflite-") as saved:
        serving.export(saved, format="tf_saved_model", verbose=False)
        try:
            # the converter's notices and MLIR diagnostics go to the run's native log; its errors are in the exception
            with native_stderr(f"TFLite conversion ({quantize or 'float32'})", echo=False):
                content = _convert(saved, quantize, calibration)
        except Exception as exc:  # the converter's ConverterError: an op TFLite has no built-in kernel for
            log = native_log_path()
            more = f" (the converter's own output: {log})" if log is not None else ""
            raise CnnctlError(f"TFLite cannot convert this model: {_reason(exc)}{more}") from None
    path.write_bytes(content)
    return {} if calibration is None else {"calibration_examples": len(calibration)}


def _reason(exc: Exception) -> str:
    """The converter's complaint without its MLIR locations, and what to do when the cause is known."""
    text = str(exc)
    lines = [line for line in text.splitlines() if "error:" in line] or [first_line(exc)]
    reason = lines[0].rsplit("): ", 1)[-1].strip()  # after 'loc(callsite(fused[...]))): '
    if "TensorList" in text:
        reason += ("; recurrent layers (LSTM, GRU, SimpleRNN) need `unroll: true` in the recipe for TFLite, "
                   "or export savedmodel or onnx instead")
    return reason


def _convert(saved: str, quantize: str | None, calibration: np.ndarray | None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    return converter.convert()


def load_tflite(path: Path, *, unsafe: bool = False) -> Artifact:
    """The flatbuffer at ``path`` in the TFLite interpreter (LiteRT's, if ai_edge_litert is installed)."""
    interpreter, runtime = _interpreter(path)
    runner = interpreter.get_signature_runner(SIGNATURE)
    details = interpreter.get_signature_list()[SIGNATURE]
    (input_name,) = details["inputs"]
    outputs = sorted(details["outputs"], key=lambda name: int(name.rsplit("_", 1)[-1]))

    started = False

    def predict(x: np.ndarray) -> list[np.ndarray]:
        nonlocal started
        # the first run creates the XNNPACK delegate, which says so on fd 2
        with contextlib.nullcontext() if started else native_stderr("TFLite interpreter, first run"):
            result = runner(**{input_name: x})
        started = True
        return [result[name] for name in outputs]

    return Artifact(input_name, outputs, predict, runtime, {"signature": SIGNATURE})


def _interpreter(path: Path):
    try:
        from ai_edge_litert import __version__ as version
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_path=str(path)), f"ai_edge_litert {version}"
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated": still TF's own runtime in 2.21
        return tf.lite.Interpreter(model_path=str(path)), f"tf.lite.Interpreter (tensorflow {tf.__version__})"


def is_tflite(path: Path) -> bool:
    """The flatbuffer's file identifier, ``TFL3``, at bytes 4-8."""
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


def refuses(model: keras.Model) -> str | None:
    """A recurrent layer that is not unrolled loops over a TensorList, which the converter does not take with
    TFLite's built-in ops (TF 2.21: "'tf.TensorListReserve' op requires element_shape to be static")."""
    import keras

    for layer in model._flatten_layers(include_self=False):  # wrapped (Bidirectional) and nested layers too
        if isinstance(layer, keras.layers.RNN) and not layer.unroll:
            return (f"TFLite cannot convert the recurrent layer '{layer.name}' ({type(layer).__name__}) unless it is "
                    "unrolled: give it `unroll: true` (its sequence length must then be fixed), or export savedmodel "
                    "or onnx instead")
    return None


TFLITE = FORMATS.register(Format(name="tflite", title="TFLite", file_name="model.tflite", write=write_tflite,
                                 load=load_tflite, recognizes=is_tflite, options=TfliteOptions, float32_only=True,
                                 tolerance=tolerance, refuses=refuses))
