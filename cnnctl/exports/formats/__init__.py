"""The export formats, one file each; importing this package registers them in ``cnnctl.registry.FORMATS``.

A format of your own is one more file like these: a writer, a loader that runs the
artifact with the format's own runtime, a test of what a path holds, and the
``Format`` row that names them (``cnnctl.exports.format``). TensorFlow is imported
when a writer or loader first runs, not here.
"""

import importlib

BUILTINS = ("savedmodel", "keras_file", "tflite", "onnx_file")  # imported (so registered, so listed) in this order

for _module in BUILTINS:
    importlib.import_module(f"{__name__}.{_module}")
