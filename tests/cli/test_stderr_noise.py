"""stderr holds cnnctl's own lines and Keras's progress, not what TensorFlow's C++ code writes on file descriptor 2.

The real commands run in subprocesses (fd 2 a pipe, as in a terminal or a CI log): TFLite exports (float and
int8), a conversion that fails, and a resumed training (TensorFlow imported by the resume path). What TensorFlow
wrote is kept in the run's logs/native.log. The capture itself (cnnctl._tfimport.native_stderr) is checked in a
small Python process: Python's own writes and warnings stay live on stderr, unknown native lines still show, a
closed fd 2 is no error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import run_cli, train_text

pytestmark = pytest.mark.slow

# What TensorFlow printed through these commands before (issue 16, item 20)
NATIVE = re.compile(r"absl::InitializeLog|cuInit|cudart_stub|cuda_|oneDNN|cpu_feature_guard|To enable the following"
                    r"|XNNPACK|fully_quantize|inference_type|loc\(|SELECT_TF_OPS|Select TF ops|TensorListReserve\"")


def native_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NATIVE.search(line)]


def test_tflite_exports_float_and_int8_print_only_cnnctls_lines(digits_run, tmp_path):
    run = digits_run.copy(tmp_path)
    for args in (("tflite",), ("tflite", "--quantize", "int8")):
        result = run_cli("export", *args, str(run))
        assert result.returncode == 0, result.stderr[-3000:]
        assert native_lines(result.stderr) == [], result.stderr
        assert result.stderr.strip() == "", result.stderr  # a clean export says nothing on stderr
    log = (run / "logs" / "native.log").read_text()
    assert "Created TensorFlow Lite XNNPACK delegate" in log  # the interpreter's line, kept
    assert "fully_quantize: 0, inference_type: 6" in log  # int8's converter line, kept
    assert "--- " in log and "TFLite conversion (int8)" in log  # each capture under a header


# `cnnctl export tflite RUN` with the format's refusal of recurrent layers that are not unrolled taken away, so that
# the real converter gets such a model and fails as it does for any model it cannot take.
UNREFUSED_EXPORT = """
import dataclasses, sys
from cnnctl.registry import FORMATS
tflite = FORMATS.get("tflite")
FORMATS.unregister("tflite")
FORMATS.register(dataclasses.replace(tflite, refuses=None))
from cnnctl.cli import main
sys.argv = ["cnnctl", "export", "tflite", sys.argv[1]]
main()
"""


def test_a_failed_conversion_says_only_cnnctls_reason(tmp_path):
    """A GRU that is not unrolled (which check and export refuse before converting; refusal taken away here): the
    converter's MLIR diagnostics advise Select TF ops, which cnnctl's TFLite cannot run; only cnnctl's message (use
    `unroll: true`) reaches stderr."""
    run = train_text(textwrap.dedent("""
        name: rolled
        data: {source: digits, batch_size: 256}
        model:
          input: [8, 8, 1]
          layers:
            - Reshape: {target_shape: [8, 8]}
            - GRU: {units: 2}
            - Dense: {units: 10, activation: softmax}
        train: {epochs: 1}
        """), tmp_path / "runs")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as run_cli
    result = subprocess.run([sys.executable, "-c", UNREFUSED_EXPORT, str(run)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: TFLite cannot convert this model: "), result.stderr
    assert "`unroll: true`" in lines[0] and f"the converter's own output: {run / 'logs' / 'native.log'}" in lines[0]
    assert native_lines(result.stderr) == [], result.stderr
    log = (run / "logs" / "native.log").read_text()
    assert "loc(callsite(" in log  # the converter's own account, kept for whoever wants it


def test_a_resumed_training_shows_keras_progress_and_no_tensorflow_start_up_lines(digits_run, tmp_path):
    """`train --resume` imports TensorFlow through the training modules, not through the API's import: its
    start-up notices are captured all the same. The resumed epochs write no second graph into logs/train (TensorBoard
    warns of a run with two, see tests/tensorboard/test_server.py)."""
    run = digits_run.copy(tmp_path)
    epochs = len((run / "history.csv").read_text().splitlines()) - 1
    result = run_cli("train", "--resume", str(run), "--set", f"train.epochs={epochs + 1}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert native_lines(result.stderr) == [], result.stderr
    assert f"Epoch {epochs + 1}/{epochs + 1}" in result.stderr  # Keras's progress, untouched
    assert re.search(r"\d+/\d+ - \d+s - .*loss: ", result.stderr), result.stderr

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted((run / "logs" / "train").glob("events.out.tfevents.*"))
    assert len(files) == 2, files  # the first training's and the resumed one's
    graphs = [sum(event.HasField("graph_def") for event in EventFileLoader(str(f)).Load()) for f in files]
    assert sum(graphs) == 1, dict(zip(files, graphs, strict=True))


def test_the_python_api_imports_tensorflow_and_runs_an_op_quietly():
    """Without the command (which sets TF_CPP_MIN_LOG_LEVEL=3), TensorFlow's first op probed CUDA and logged
    "failed call to cuInit"; and an ``import tensorflow`` after ``import cnnctl`` printed the start-up notices."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import cnnctl, tensorflow as tf, keras\nprint(float(tf.constant(1.0) * 2), keras.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2.0 ") and native_lines(result.stderr) == [], result.stderr


CAPTURE = """
import os, sys, warnings
from pathlib import Path
from cnnctl._tfimport import native_log, native_stderr

with native_log(Path(sys.argv[1])):
    with native_stderr("a test"):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        print("python line", file=sys.stderr, flush=True)
        os.write(2, b"a native line nobody knows\\n")
        warnings.warn("a python warning")
        if len(sys.argv) > 2:
            raise ValueError("boom")
"""


def capture(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CAPTURE, str(tmp_path / "native.log"), *extra],
                          capture_output=True, text=True, timeout=60)


def test_the_capture_keeps_python_output_live_and_unknown_native_lines_shown(tmp_path):
    result = capture(tmp_path)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "XNNPACK" not in err
    assert "python line" in err and "UserWarning: a python warning" in err
    assert err.index("python line") < err.index("a native line nobody knows")  # Python's line was not held back
    log = (tmp_path / "native.log").read_text()
    assert "XNNPACK" in log and "a native line nobody knows" in log and "python line" not in log


def test_an_exception_in_the_capture_surfaces_with_what_was_captured(tmp_path):
    result = capture(tmp_path, "raise")
    assert result.returncode == 1
    assert "ValueError: boom" in result.stderr and "a native line nobody knows" in result.stderr
    assert "XNNPACK" not in result.stderr


def test_no_fd_2_is_no_error():
    """A process started with stderr closed (a daemon's, say) imports TensorFlow and runs a capture all the same."""
    code = ("import os; os.close(2)\nfrom cnnctl._tfimport import import_tensorflow\nimport_tensorflow()\n"
            "print('imported')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["imported"], result
    code = ("import os; os.close(2)\nfrom cnnctl._tfimport import native_stderr\nwith native_stderr('x'):\n"
            "    print('inside')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.split() == ["inside"], result
