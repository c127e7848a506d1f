"""Import TensorFlow without its start-up noise on stderr.

The GPU-capable TensorFlow wheel prints absl lines at import on a machine without
CUDA ("Could not find cuda drivers ...") that TF_CPP_MIN_LOG_LEVEL cannot silence,
because they are written before logging is initialised. The import runs with
file descriptor 2 pointed at a temporary file; every line that is not one of
those known start-up notices is written back to stderr afterwards.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

_NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc|cpu_feature_guard\.cc"
    r"|^To enable the following instructions|oneDNN custom operations are on"
)


def import_tensorflow() -> None:
    """``import tensorflow`` once, with its known start-up notices filtered out."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines()
                    if line.strip() and not _NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class LazyModule:
    """A module imported when one of its attributes is first read: ``tf = LazyModule("tensorflow")``.

    For the modules that the recipe stage reads before anything heavy runs (the data
    sources and export formats, whose declarations it validates a recipe against):
    importing them costs nothing, and TensorFlow (with its start-up notices filtered
    out) or Keras comes in when the loader or writer first runs.
    """

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        if self._module is None:
            import importlib

            import_tensorflow()  # Keras imports it too
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


tf = LazyModule("tensorflow")
keras = LazyModule("keras")
