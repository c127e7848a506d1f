"""Import TensorFlow, and run its noisy native calls, without their notices on stderr.

TensorFlow's C++ code writes to file descriptor 2 directly, where Python's
``sys.stderr`` cannot catch it: absl lines at import that TF_CPP_MIN_LOG_LEVEL
cannot silence ("Could not find cuda drivers ...", oneDNN, CPU features: written
before logging is initialised), the TFLite converter's ``fully_quantize: 0,
inference_type: 6 ...`` and its MLIR ``loc(...)`` diagnostics of a failed
conversion, the interpreter's "Created TensorFlow Lite XNNPACK delegate" line.

``native_stderr(what)`` points fd 2 at the log that ``native_log(path)`` names (an
export names the run's ``logs/native.log``, see README "The run directory"), or at a
temporary file, for a block; the text survives there even if the call crashes.
Afterwards the captured lines that are none of the known notices are written back
to stderr (unless the call's errors come back as its exception, ``echo=False``), so
a real error still shows. Python's own writes (warnings, tracebacks, Keras's
progress) go on to stderr as they happen. The first ``import tensorflow``,
wherever it comes from, runs inside such a block (``_QuietImport``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

NOTICES = re.compile(
    r"absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc|cpu_feature_guard\.cc|cuInit"
    r"|^To enable the following instructions|oneDNN custom operations are on"
    r"|Created TensorFlow Lite XNNPACK delegate|^fully_quantize: \d"
)
"""Lines TensorFlow writes on fd 2 that say nothing to a cnnctl user (the converter's errors are in its exception)."""


class _State:
    log: Path | None = None  # where captured text goes (native_log)
    capturing = False  # fd 2 is the process's: one capture at a time, the outermost one
    stand_in: io.TextIOWrapper | None = None  # sys.stderr during a capture (_python_stderr_direct)
    lock = threading.Lock()


@contextlib.contextmanager
def native_log(path: Path | None) -> Iterator[None]:
    """Within the block, what ``native_stderr`` captures is appended to ``path`` (None: kept nowhere)."""
    before, _State.log = _State.log, path
    try:
        yield
    finally:
        _State.log = before


def native_log_path() -> Path | None:
    """Where ``native_stderr`` keeps what it captures now (None: nowhere)."""
    return _State.log


@contextlib.contextmanager
def native_stderr(what: str, *, echo: bool = True) -> Iterator[None]:
    """Run the block (``what`` it does, for the log) with fd 2 captured (see the module's docstring). ``echo=False``:
    nothing captured goes back to stderr (a call whose failures come back as exceptions with the same text). Does
    nothing when fd 2 is not open, and inside another capture."""
    with _State.lock:
        outermost, _State.capturing = not _State.capturing, True
    try:
        saved = os.dup(2) if outermost else None
    except OSError:  # no fd 2 to capture
        saved = None
    if saved is None:
        try:
            yield
        finally:
            if outermost:
                _State.capturing = False
        return
    capture, start = _capture_file(what)
    try:
        with _python_stderr_direct():
            _flush()
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                _flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        _State.capturing = False
        with capture:
            capture.seek(start)
            text = capture.read().decode(errors="replace")
            if not text.strip():
                capture.truncate(start - len(_header(what)))  # no entry for a quiet call
        kept = [line for line in text.splitlines() if line.strip() and not NOTICES.search(line)]
        if echo and kept:
            print("\n".join(kept), file=sys.stderr)


def _header(what: str) -> bytes:
    return f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n".encode()


def _capture_file(what: str) -> tuple:
    """The native log opened to append, after a header line (a temporary file if no log is named or it cannot be
    written), and where the capture starts. Written straight to the log, the text survives a crash of the call."""
    f = None
    if _State.log is not None:
        try:
            _State.log.parent.mkdir(parents=True, exist_ok=True)
            f = open(_State.log, "a+b")  # closed by native_stderr
        except OSError:
            f = None
    if f is None:
        f = tempfile.TemporaryFile(mode="w+b")
    f.write(_header(what))
    f.flush()
    return f, f.tell()


def _flush() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def _python_stderr_direct() -> Iterator[None]:
    """``sys.stderr`` writing to where fd 2 points now, through a copy of fd 2, for the block; only if it wrote to
    fd 2 (not when pytest or click's CliRunner holds it). Python's warnings, tracebacks and Keras's progress are
    not captured. The copy stays open: a logging handler made in the block may keep the stream."""
    stream = sys.stderr
    try:
        direct = stream.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        direct = False
    if not direct:
        yield
        return
    stream.flush()
    stand_in = _State.stand_in
    if stand_in is None or not os.path.samestat(os.fstat(stand_in.fileno()), os.fstat(2)):
        stand_in = _State.stand_in = io.TextIOWrapper(
            io.FileIO(os.dup(2), "w"), encoding=stream.encoding, errors=stream.errors, line_buffering=True,
            write_through=True)
    sys.stderr = stand_in
    try:
        yield
    finally:
        stand_in.flush()
        sys.stderr = stream


def import_tensorflow() -> None:
    """``import tensorflow`` once, with its start-up notices captured (any import of it is: see ``_QuietImport``)."""
    if "tensorflow" not in sys.modules:
        import tensorflow  # noqa: F401


class _QuietImport:
    """A finder that runs the first ``import tensorflow`` inside ``native_stderr()``, whichever module asks, and
    lists the devices there: TensorFlow probes CUDA then ("failed call to cuInit ..." on a machine without a GPU,
    which TF_CPP_MIN_LOG_LEVEL hides only when set). Devices listed, the threading options can still be set."""

    @classmethod
    def find_spec(cls, name: str, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module, run=run):
                    with native_stderr("import tensorflow"):
                        run(module)
                        with contextlib.suppress(Exception):  # the first op would probe CUDA (cuInit) outside
                            module.config.list_physical_devices()

                spec.loader.exec_module = exec_module
                return spec
        return None


if _QuietImport not in sys.meta_path:
    sys.meta_path.insert(0, _QuietImport)


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
